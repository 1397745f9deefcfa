"""Weight penalties with Keras 3's names, formulas and configs.

``reg(w)`` is the penalty as a float, exactly Keras's (L2 is ``l2 * sum(w**2)``,
no 1/2); ``reg.gradient(w)`` is its derivative with respect to ``w``, which the
training code adds into the weight's gradient.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import math

import numpy as np
from ._serialization import Registry
from ._typing import Array, ArrayLike, Config, IdentifierLike

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "orthogonal_regularizer", "get", "serialize", "deserialize"]

MODULE = "keras.regularizers"
EPSILON = 1e-7  # keras.backend.epsilon()


def _validate_float(value, name):
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or math.isinf(value) or math.isnan(value) or value < 0):
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class of the weight penalties: ``reg(w) -> float`` and ``reg.gradient(w)``.

    A layer adds ``reg(w)`` to its ``losses`` and ``reg.gradient(w)`` to the
    weight's gradient during training.
    """

    def __call__(self, w: ArrayLike) -> float:
        """The penalty of ``w``.

        Parameters
        ----------
        w : array_like
            A weight.

        Returns
        -------
        float
        """
        return 0.0

    def gradient(self, w: ArrayLike) -> Array:
        """The derivative of the penalty with respect to ``w``.

        Parameters
        ----------
        w : array_like

        Returns
        -------
        numpy.ndarray
            ``w``'s shape.
        """
        return np.zeros_like(np.asarray(w))

    def get_config(self) -> Config:
        """The regularizer's arguments (Keras 3's keys)."""
        raise NotImplementedError(f"{self} does not implement get_config()")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """A regularizer from ``get_config()`` output.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Regularizer
        """
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Penalty(Regularizer):
    # Shared by L1, L2 and L1L2, which are unrelated classes in Keras.
    def __init__(self, l1: float, l2: float) -> None:
        self.l1 = _validate_float(l1, "l1")
        self.l2 = _validate_float(l2, "l2")

    def __call__(self, w: ArrayLike) -> float:
        w = np.asarray(w)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.sum(np.abs(w)))
        if self.l2:
            penalty += self.l2 * float(np.sum(np.square(w)))
        return penalty

    def gradient(self, w: ArrayLike) -> Array:
        w = np.asarray(w)
        return (self.l1 * np.sign(w) + 2.0 * self.l2 * w).astype(w.dtype, copy=False)


class L1L2(_Penalty):
    """``l1 * sum(|w|) + l2 * sum(w**2)``.

    Parameters
    ----------
    l1 : float, default 0.0
        Non-negative.
    l2 : float, default 0.0
        Non-negative.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__(0.0 if l1 is None else l1, 0.0 if l2 is None else l2)

    def get_config(self) -> Config:
        return {"l1": self.l1, "l2": self.l2}


class L1(_Penalty):
    """``l1 * sum(|w|)``; its gradient is the subgradient ``l1 * sign(w)``.

    Parameters
    ----------
    l1 : float, default 0.01
        Non-negative.
    """

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(0.01 if l1 is None else l1, 0.0)

    def get_config(self) -> Config:
        return {"l1": self.l1}


class L2(_Penalty):
    """``l2 * sum(w**2)`` (no 1/2, as Keras).

    Parameters
    ----------
    l2 : float, default 0.01
        Non-negative.
    """

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(0.0, 0.01 if l2 is None else l2)

    def get_config(self) -> Config:
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """``factor * 0.5 * sum_{i != j} |<n_i, n_j>| / (size * (size - 1) / 2)`` over the
    L2-normalised rows (``mode="rows"``) or columns of a 2-D weight.

    Parameters
    ----------
    factor : float, default 0.01
        Non-negative.
    mode : {"rows", "columns"}, default "rows"
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows") -> None:
        self.factor = _validate_float(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError('Invalid value for argument `mode`. Expected one of {"rows", '
                             f'"columns"}}. Received: mode={mode!r}')
        self.mode = mode

    def _rows(self, w):
        w = np.asarray(w)
        if w.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. "
                             f"Received: inputs.shape={w.shape}")
        return w if self.mode == "rows" else w.T

    @staticmethod
    def _inv_norm(x):
        # Keras's ops.normalize: x * min(rsqrt(sum x**2), 1 / epsilon).
        with np.errstate(divide="ignore"):
            return np.minimum(1.0 / np.sqrt(np.sum(np.square(x), axis=1, keepdims=True)),
                              1.0 / EPSILON)

    def _scale(self, size):
        return self.factor * 0.5 / (size * (size - 1.0) / 2.0)

    def __call__(self, w: ArrayLike) -> float:
        x = self._rows(w)
        n = x * self._inv_norm(x)
        product = n @ n.T
        np.fill_diagonal(product, 0.0)
        return float(self._scale(x.shape[0]) * np.sum(np.abs(product)))

    def gradient(self, w: ArrayLike) -> Array:
        x = self._rows(w)
        r = self._inv_norm(x)
        n = x * r
        s = np.sign(n @ n.T)
        np.fill_diagonal(s, 0.0)
        g = 2.0 * self._scale(x.shape[0]) * (s @ n)  # d penalty / d n (s is symmetric)
        # Back through n = x * r(x), r = |x|^-1 (constant where clipped at 1/epsilon).
        unclipped = r < 1.0 / EPSILON
        dx = r * g - unclipped * r ** 3 * x * np.sum(x * g, axis=1, keepdims=True)
        dx = dx.astype(x.dtype, copy=False)
        return dx if self.mode == "rows" else dx.T

    def get_config(self) -> Config:
        return {"factor": self.factor, "mode": self.mode}


# Keras 3 exports the classes under lower-case names as well.
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_CLASSES = [L1, L2, L1L2, OrthogonalRegularizer]
_BY_NAME: Dict[str, Any] = {**{c.__name__: c for c in _CLASSES}, "l1": L1, "l2": L2,
                            "l1l2": L1L2, "orthogonal_regularizer": OrthogonalRegularizer}
# Keras 3's table spells L1L2 "l1l2" (so 'l1_l2' raises there); the tf.keras 2
# string 'l1_l2' meant l1=l2=0.01, as Keras's L1L2 docstring still says.
_BY_NAME["l1_l2"] = lambda: L1L2(l1=0.01, l2=0.01)


def _unknown(identifier):
    return ValueError(f"Could not interpret regularizer identifier: {identifier!r}. "
                      f"Expected one of: {', '.join(sorted(_BY_NAME))}; a config dict; "
                      "a Regularizer; a callable; or None.")


_REGISTRY = Registry("regularizer", MODULE, _BY_NAME, classes={**_BY_NAME, "l1_l2": L1L2},
                     optional=True,
                     callable_fallback=lambda fn: fn, unknown=_unknown)


def serialize(regularizer: Optional[Callable[..., Any]]) -> Optional[Config]:
    """Keras 3's dict form of a regularizer (None stays None).

    Parameters
    ----------
    regularizer : Regularizer or None

    Returns
    -------
    dict or None

    Raises
    ------
    ValueError
        For an object without ``get_config``.
    """
    return _REGISTRY.serialize(regularizer)


def deserialize(config: Mapping[str, Any]) -> Any:
    """A regularizer from ``{"class_name", "config"}`` (with or without ``module``).

    Parameters
    ----------
    config : dict

    Returns
    -------
    Regularizer

    Raises
    ------
    ValueError
        For an unknown class.
    """
    return _REGISTRY.deserialize(config)


def get(identifier: IdentifierLike) -> Optional[Callable[..., Any]]:
    """A regularizer from None, a Keras name, a config dict, an instance, a class or a callable.

    Parameters
    ----------
    identifier : str, dict, Regularizer, class, callable or None
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
