"""Weight constraints with Keras 3's names, formulas and configs.

``constraint(w)`` returns the projected weight; the training code applies it
after each optimizer step, as Keras does.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import re

import numpy as np
from ._serialization import Registry
from ._typing import Array, ArrayLike, Config, IdentifierLike

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg",
           "unit_norm", "min_max_norm", "get", "serialize", "deserialize"]

MODULE = "keras.constraints"
EPSILON = 1e-7  # keras.backend.epsilon()


def _as_float(w):
    w = np.asarray(w)
    # Keras computes norms in floatx for integer weights.
    return w if w.dtype.kind == "f" else w.astype("float32")


def _norms(w, axis):
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class Constraint:
    """Base class of the weight constraints: ``con(w) -> numpy.ndarray`` (the identity here).

    Applied to the weight after every optimizer step.
    """

    def __call__(self, w: ArrayLike) -> Array:
        """``w`` projected onto the constraint.

        Parameters
        ----------
        w : array_like
            A weight.

        Returns
        -------
        numpy.ndarray
            ``w``'s shape.
        """
        return w

    def get_config(self) -> Config:
        """The constraint's arguments (Keras 3's keys)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """A constraint from ``get_config()`` output.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Constraint
        """
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Rescale each slice along ``axis`` to norm at most ``max_value``.

    Parameters
    ----------
    max_value : float, default 2
    axis : int or sequence of int, default 0
        The axes the norms are taken over.
    """

    def __init__(self, max_value: float = 2, axis: Union[int, Sequence[int]] = 0) -> None:
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w: ArrayLike) -> Array:
        w = _as_float(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> Config:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Zero the negative weights."""

    def __call__(self, w: ArrayLike) -> Array:
        return np.maximum(np.asarray(w), 0)


class UnitNorm(Constraint):
    """Rescale each slice along ``axis`` to unit norm.

    Parameters
    ----------
    axis : int or sequence of int, default 0
    """

    def __init__(self, axis: Union[int, Sequence[int]] = 0) -> None:
        self.axis = axis

    def __call__(self, w: ArrayLike) -> Array:
        w = _as_float(w)
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self) -> Config:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each slice's norm ``rate`` of the way into ``[min_value, max_value]``.

    Parameters
    ----------
    min_value : float, default 0.0
    max_value : float, default 1.0
    rate : float, default 1.0
        1 projects fully; smaller values move part of the way.
    axis : int or sequence of int, default 0
    """

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0,
                 axis: Union[int, Sequence[int]] = 0) -> None:
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w: ArrayLike) -> Array:
        w = _as_float(w)
        norms = _norms(w, self.axis)
        desired = (self.rate * np.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> Config:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


# Keras 3 exports the classes under snake_case names as well.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = [MaxNorm, NonNeg, UnitNorm, MinMaxNorm]
_BY_NAME = {**{c.__name__: c for c in _CLASSES},
            **{re.sub(r"(?<!^)(?=[A-Z])", "_", c.__name__).lower(): c for c in _CLASSES}}


def _unknown(identifier):
    return ValueError(f"Could not interpret constraint identifier: {identifier!r}. "
                      f"Expected one of: {', '.join(sorted(_BY_NAME))}; a config dict; "
                      "a Constraint; a callable; or None.")


_REGISTRY = Registry("constraint", MODULE, _BY_NAME, classes=_BY_NAME, optional=True,
                     callable_fallback=lambda fn: fn, unknown=_unknown)


def serialize(constraint: Optional[Callable[..., Any]]) -> Optional[Config]:
    """Keras 3's dict form of a constraint (None stays None).

    Parameters
    ----------
    constraint : Constraint or None

    Returns
    -------
    dict or None

    Raises
    ------
    ValueError
        For an object without ``get_config``.
    """
    return _REGISTRY.serialize(constraint)


def deserialize(config: Mapping[str, Any]) -> Any:
    """A constraint from ``{"class_name", "config"}`` (with or without ``module``).

    Parameters
    ----------
    config : dict

    Returns
    -------
    Constraint

    Raises
    ------
    ValueError
        For an unknown class.
    """
    return _REGISTRY.deserialize(config)


def get(identifier: IdentifierLike) -> Optional[Callable[..., Any]]:
    """A constraint from None, a Keras name, a config dict, an instance, a class or a callable.

    Parameters
    ----------
    identifier : str, dict, Constraint, class, callable or None
        A callable is returned as is.

    Returns
    -------
    callable or None

    Raises
    ------
    ValueError
        For an unknown name or anything else.
    """
    return _REGISTRY.get(identifier)
