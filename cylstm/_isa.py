"""``CYLSTM_ISA``: cap the instruction set the compiled kernels use, for this
process -- to measure (or test) the AVX2 or plain-BLAS paths on an AVX-512
machine, as an AVX2-only CPU would run them.

``CYLSTM_ISA=avx512|avx2|none`` is read once, when the CPU backend is made,
and passed to the kernels' force hook (``recurrent_isa(level)`` of
``cylstm._kernels.lstm_forward`` and ``lstm_backward``, ``fused_isa(level)``
of ``lstm_step``). It caps: a CPU without the level keeps its own lower one.
What it reaches: the packed recurrent product of the forward and backward
time loops (packed with the forward module's level; the panel width then
selects the kernel), the fused step kernel (fused_step.h), lstm_step's
one-step and few-row kernels (step_fused.h), and the elementwise loops of
the unfused path (gate activations, cell update, backward step: each module
picks their variant from its own level, see isa.h). The quantized kernels
take their level per call instead (``force``).
Unset or empty: the kernels choose from the CPU's features.
"""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["ENV", "LEVELS", "requested_level", "apply_env_cap", "cap_kernels", "kernel_levels",
           "restore_kernel_levels"]

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


def _hooks():
    """(module name, force hook) of each kernel module that has one."""
    import importlib
    hooks = []
    for name in _MODULES:
        module = importlib.import_module(f"cylstm._kernels.{name}")
        # lstm_step names its hook fused_isa (the one-step and few-row kernels)
        hook = getattr(module, "recurrent_isa", None) or getattr(module, "fused_isa", None)
        if hook is not None:
            hooks.append((name, hook))
    return hooks


def cap_kernels(level: int) -> int:
    """Cap every kernel module's level at `level` (0 none, 1 AVX2, 2 AVX-512;
    a CPU without it keeps its own lower one); the level in use afterwards.
    ``cap_kernels(2)`` undoes a cap (each module detects its best again)."""
    used = level
    for _, hook in _hooks():
        used = hook(level)
    return used


def kernel_levels() -> dict[str, int]:
    """The level each kernel module uses now, by module name (for
    :func:`restore_kernel_levels`)."""
    return {name: hook() for name, hook in _hooks()}


def restore_kernel_levels(levels: dict[str, int]) -> None:
    """Set each module's level back to what :func:`kernel_levels` returned."""
    for name, hook in _hooks():
        if name in levels:
            hook(levels[name])


def apply_env_cap() -> Optional[int]:
    """Pass ``CYLSTM_ISA`` to the kernels' force hooks; the level in use
    afterwards (None when the variable is unset: nothing is imported)."""
    level = requested_level()
    if level is None:
        return None
    return cap_kernels(level)
