"""``CYLSTM_ISA``: cap the instruction set the compiled kernels use, for this
process -- to measure (or test) the AVX2 or plain-BLAS paths on an AVX-512
machine, as an AVX2-only CPU would run them.

``CYLSTM_ISA=avx512|avx2|none`` is read once, when the CPU backend is made,
and passed to the kernels' force hook (``recurrent_isa(level)`` of
``cylstm._kernels.lstm_forward``; the same hook of any other kernel module
that has one). It caps: a CPU without the level keeps its own lower one.
What it reaches: the packed recurrent product of the forward and backward
time loops (packed with the forward module's level; the panel width then
selects the kernel), the fused step kernel (fused_step.h) and lstm_step's
one-step and few-row kernels (step_fused.h). What it does not: the gate loops compiled with
``target_clones`` (the loader picks their clone from the CPU's features).
Unset or empty: the kernels choose from the CPU's features.
"""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["ENV", "LEVELS", "requested_level", "apply_env_cap"]

ENV = "CYLSTM_ISA"
LEVELS = {"none": 0, "avx2": 1, "avx512": 2}
# Kernel modules that may expose a ``recurrent_isa(force)`` (or, lstm_step,
# ``fused_isa(force)``) hook.
_MODULES = ("lstm_forward", "lstm_step", "lstm_backward")


def requested_level() -> Optional[int]:
    """The level ``CYLSTM_ISA`` asks for (0 none, 1 AVX2, 2 AVX-512), or None.

    Raises
    ------
    ValueError
        If the variable holds anything else.
    """
    value = os.environ.get(ENV, "").strip().lower()
    if not value:
        return None
    if value not in LEVELS:
        raise ValueError(f"The environment variable {ENV} must be one of "
                         f"{', '.join(LEVELS)} (or unset); got {value!r}.")
    return LEVELS[value]


def apply_env_cap() -> Optional[int]:
    """Pass ``CYLSTM_ISA`` to the kernels' force hooks; the level in use
    afterwards (None when the variable is unset: nothing is imported)."""
    level = requested_level()
    if level is None:
        return None
    import importlib
    used = None
    for name in _MODULES:
        module = importlib.import_module(f"cylstm._kernels.{name}")
        # lstm_step names its hook fused_isa (the one-step and few-row kernels)
        hook = getattr(module, "recurrent_isa", None) or getattr(module, "fused_isa", None)
        if hook is not None:
            used = hook(level)
    return used
