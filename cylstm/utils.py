"""Utilities with ``keras.utils`` names: ``pad_sequences``, ``to_categorical``,
``set_random_seed`` and the ``Progbar`` that ``fit`` prints."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Tuple

import math
import os
import random
import sys
import time

import numpy as np

from . import initializers as _initializers
from .preprocessing.sequence import pad_sequences
from ._typing import Array, ArrayLike

__all__ = ["pad_sequences", "to_categorical", "set_random_seed", "get_random_seed", "Progbar"]

_state = {"seed": None, "rng": np.random.default_rng()}


def set_random_seed(seed: int) -> None:
    """Seed everything cylstm draws from, as ``keras.utils.set_random_seed``.

    Seeds Python's ``random``, NumPy's global generator, the generator of
    unseeded weight initializers, and the one ``fit`` shuffles with, so a
    program gives the same weights and the same training run every time.
    (Layers built with their own ``seed=`` keep using it.)

    Parameters
    ----------
    seed : int

    Raises
    ------
    ValueError
        If ``seed`` is not an integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError("Expected `seed` argument to be an integer. "
                         f"Received: seed={seed!r} (of type {type(seed)})")
    seed = int(seed)
    _state["seed"] = seed
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _initializers.set_global_seed(seed)
    _state["rng"] = np.random.default_rng(seed)


def get_random_seed() -> Optional[int]:
    """The last seed given to ``set_random_seed``.

    Returns
    -------
    int or None
        None if it was never called.
    """
    return _state["seed"]


def _training_rng():
    """The generator ``fit`` shuffles with (reseeded by ``set_random_seed``)."""
    return _state["rng"]


def to_categorical(x: ArrayLike, num_classes: Optional[int] = None) -> Array:
    """One-hot encode integer class vectors (float64 output, as Keras for NumPy input).

    Parameters
    ----------
    x : array_like of int
        Class indices; a trailing axis of size 1 is dropped.
    num_classes : int, optional
        Default: ``max(x) + 1``.

    Returns
    -------
    numpy.ndarray
        ``x.shape + (num_classes,)``.

    Raises
    ------
    ValueError
        For an index outside ``[0, num_classes)``.
    """
    x = np.array(x, dtype="int64")
    input_shape = x.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = tuple(input_shape[:-1])
    x = x.reshape(-1)
    if not num_classes:
        num_classes = int(np.max(x)) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"Class indices must be in [0, {num_classes}); got values from "
                         f"{x.min()} to {x.max()}.")
    categorical = np.zeros((x.shape[0], num_classes))
    categorical[np.arange(x.shape[0]), x] = 1
    return categorical.reshape(input_shape + (num_classes,))


def _print(message):
    try:
        sys.stdout.write(message)
    except UnicodeEncodeError:
        encoding = sys.stdout.encoding or "utf-8"
        sys.stdout.write(message.replace("━", "=").encode(encoding, errors="ignore")
                         .decode(encoding))
    sys.stdout.flush()


class Progbar:
    """Keras 3's progress bar (``keras.utils.Progbar``), drawn the same way.

    verbose=1: ``n/N ━━━━━━━━━━━━━━━━━━━━ ETA/elapsed time/step - name: value``,
    redrawn in place with backspaces and ``\\r``; verbose=2: one line when done.

    Parameters
    ----------
    target : int or None
        The total number of steps (None if unknown).
    width : int, default 20
        The bar's width in characters.
    verbose : int, default 1
        0 silent, 1 bar, 2 one line at the end.
    interval : float, default 0.05
        Minimum seconds between redraws.
    stateful_metrics : iterable of str, optional
        Names shown as given (not averaged over steps).
    stateless_metrics : iterable of str, optional
        Names averaged over steps (every other name is then shown as given);
        at most one of the two lists.
    unit_name : str, default "step"
        The unit in the timing text.
    """

    def __init__(self, target: Optional[int], width: int = 20, verbose: int = 1,
                 interval: float = 0.05, stateful_metrics: Optional[Iterable[str]] = None,
                 stateless_metrics: Optional[Iterable[str]] = None,
                 unit_name: str = "step") -> None:
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be "
                             "provided.")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics = set(stateful_metrics)
            self.stateless_metrics = None
        elif stateless_metrics is not None:
            self.stateful_metrics = None
            self.stateless_metrics = set(stateless_metrics)
        else:
            self.stateful_metrics = set()
            self.stateless_metrics = None
        self._dynamic_display = ((hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
                                 or "ipykernel" in sys.modules or "posix" in sys.modules
                                 or "PYCHARM_HOSTED" in os.environ)
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def update(self, current: int, values: Optional[Sequence[Tuple[str, Any]]] = None,
               finalize: Optional[bool] = None) -> None:
        """Move the bar to step ``current``.

        Parameters
        ----------
        current : int
            The step reached.
        values : list of (str, value), optional
            Values to show (averaged over steps unless stateful).
        finalize : bool, optional
            Whether this is the last update (default: ``current >= target``).
        """
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            if self.stateful_metrics is not None:
                stateless = k not in self.stateful_metrics
            else:
                stateless = k in self.stateless_metrics
            if stateless:
                if finalize:
                    self._values[k] = [v, 1]
                else:
                    base = max(current - self._seen_so_far, 1)
                    if k not in self._values:
                        self._values[k] = [v * base, base]
                    else:
                        self._values[k][0] += v * base
                        self._values[k][1] += base
            else:
                self._values[k] = [v, 1]
        self._seen_so_far = current

        message = ""
        special_char_len = 0
        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)

        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            message += ("\b" * self._prev_total_width + "\r") if self._dynamic_display else "\n"
            if self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                bar = f"\x1b[1m{f'%{numdigits}d/%d' % (current, self.target)}\x1b[0m "
                special_char_len += 8
                prog_width = int(self.width * float(current) / self.target)
                if prog_width > 0:
                    bar += f"\33[32m{'━' * prog_width}\x1b[0m"
                    special_char_len += 9
                bar += f"\33[37m{'━' * (self.width - prog_width)}\x1b[0m"
                special_char_len += 9
            else:
                bar = "%7d/Unknown" % current
            message += bar
            if self.target is not None and self.target > 0 and not finalize:
                eta = time_per_unit * (self.target - current)
                if eta > 3600:
                    eta_format = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
                elif eta > 60:
                    eta_format = "%d:%02d" % (eta // 60, eta % 60)
                else:
                    eta_format = "%ds" % eta
                info = f" \x1b[1m{eta_format}\x1b[0m"
            else:
                info = f" \x1b[1m{now - self._start:.0f}s\x1b[0m"
            special_char_len += 8
            info += self._format_time(time_per_unit, self.unit_name)
            for k in self._values_order:
                info += f" - {k}:"
                total, count = self._values[k]
                avg = float(np.mean(total)) / max(1, count)
                info += f" {avg:.4f}" if abs(avg) > 1e-3 else f" {avg:.4e}"
            message += info
            total_width = len(bar) + len(info) - special_char_len
            if self._prev_total_width > total_width:
                message += " " * (self._prev_total_width - total_width)
            if finalize:
                message += "\n"
            _print(message)
            self._prev_total_width = total_width
        elif self.verbose == 2:
            if finalize and self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                count = f"%{numdigits}d/%d" % (current, self.target)
                info = f"{count} - {now - self._start:.0f}s"
                info += f" -{self._format_time(time_per_unit, self.unit_name)}"
                for k in self._values_order:
                    info += f" - {k}:"
                    total, count = self._values[k]
                    avg = float(np.mean(total)) / max(1, count)
                    info += f" {avg:.4f}" if avg > 1e-3 else f" {avg:.4e}"
                _print(info + "\n")
        self._last_update = now

    def add(self, n: int, values: Optional[Sequence[Tuple[str, Any]]] = None) -> None:
        """Advance the bar by ``n`` steps.

        Parameters
        ----------
        n : int
        values : list of (str, value), optional
            As in ``update``.
        """
        self.update(self._seen_so_far + n, values)

    @staticmethod
    def _format_time(time_per_unit, unit_name):
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
        return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"

    def _estimate_step_duration(self, current, now):
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit
