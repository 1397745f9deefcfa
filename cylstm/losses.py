"""Losses with Keras 3's names, formulas, reduction and masking, plus their gradients.

Each loss class computes, like Keras, per-sample values (``call``: the mean over
the last axis for the regression losses and binary cross-entropy, the sum over
classes for categorical cross-entropy), then reduces them with
``"sum_over_batch_size"`` (the sum divided by the number of per-sample values).
``loss(y_true, y_pred)`` returns that number as a Python float, and
``loss.value_and_grad(y_true, y_pred, sample_weight=None, mask=None)`` returns
``(value, d value / d y_pred)`` with the gradient in ``y_pred``'s shape and dtype,
which is what ``Sequential.fit`` backpropagates.

Keras details kept (SPEC 7b and ``keras/src/losses``):

- ``y_true`` and ``y_pred`` whose ranks differ by one with a trailing axis of 1
  are squeezed/expanded to the same rank (``(B,)`` against ``(B, 1)``).
- Cross-entropies on probabilities clip to ``[1e-7, 1 - 1e-7]`` and take
  ``log(p)`` (no ``+ eps``); the gradient is zero where the clip is active.
  Categorical cross-entropy first divides the probabilities by their sum.
- A mask (what the model's last layer reports, e.g. after
  ``Embedding(mask_zero=True)`` and ``LSTM(return_sequences=True)``) weights the
  per-sample values by ``mask * size / count(mask)``, so the loss is the mean
  over unmasked positions, as Keras's ``apply_mask``.

Computation happens in ``y_pred``'s float dtype (float32 or float64).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple, Type, Union

import numpy as np

from .layers.base import unique_name
from ._serialization import Registry
from ._typing import Array, ArrayLike, Config

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "Huber", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "mean_squared_error",
    "mean_absolute_error", "huber", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "mse", "mae", "get", "serialize", "deserialize",
]

EPSILON = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _float_dtype(y_pred, dtype=None):
    if dtype is not None:
        return np.dtype(dtype)
    kind = np.asarray(y_pred).dtype
    return kind if kind in (np.float32, np.float64) else np.dtype("float32")


def squeeze_or_expand_to_same_rank(x1: Array, x2: Array,
                                   expand_rank_1: bool = True) -> Tuple[Array, Array]:
    """Keras's rule: make ranks equal when they differ by one trailing axis of size 1.

    Parameters
    ----------
    x1, x2 : numpy.ndarray
    expand_rank_1 : bool, default True
        Expand a rank-1 array instead of squeezing the other.

    Returns
    -------
    tuple of numpy.ndarray
    """
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _check_same_shape(y_true, y_pred, name):
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: `y_true` and `y_pred` must have the same shape (after "
                         f"Keras's rank adjustment); got y_true.shape={y_true.shape}, "
                         f"y_pred.shape={y_pred.shape}.")


def _clip(p):
    dt = p.dtype.type
    lo, hi = dt(EPSILON), dt(1.0) - dt(EPSILON)
    return np.clip(p, lo, hi), (p >= lo) & (p <= hi)


def _sigmoid(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1 + ex)
    return out


def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _log_softmax(x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


# -- per-sample functions: (values, d values / d y_pred) --------------------------
# Each takes arrays already cast to the compute dtype and returns the per-sample
# values (y_pred's shape without its last axis) and, when ``grad`` is set, the
# gradient of each value with respect to y_pred (y_pred's shape).

def _mse(y_true, y_pred, grad):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    _check_same_shape(y_true, y_pred, "mean_squared_error")
    diff = y_pred - y_true
    values = np.mean(np.square(diff), axis=-1)
    if not grad:
        return values, None
    return values, diff * y_pred.dtype.type(2.0 / max(diff.shape[-1], 1))


def _mae(y_true, y_pred, grad):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    _check_same_shape(y_true, y_pred, "mean_absolute_error")
    diff = y_pred - y_true
    values = np.mean(np.abs(diff), axis=-1)
    if not grad:
        return values, None
    return values, np.sign(diff) * y_pred.dtype.type(1.0 / max(diff.shape[-1], 1))


def _huber(y_true, y_pred, grad, delta=1.0):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    _check_same_shape(y_true, y_pred, "huber")
    dt = y_pred.dtype.type
    delta = dt(delta)
    error = y_pred - y_true
    abs_error = np.abs(error)
    small = abs_error <= delta
    half = dt(0.5)
    values = np.mean(np.where(small, half * np.square(error),
                              delta * abs_error - half * np.square(delta)), axis=-1)
    if not grad:
        return values, None
    g = np.where(small, error, delta * np.sign(error))
    return values, g * dt(1.0 / max(error.shape[-1], 1))


def _bce(y_true, y_pred, grad, from_logits=False):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    _check_same_shape(y_true, y_pred, "binary_crossentropy")
    dt = y_pred.dtype.type
    n = dt(1.0 / max(y_pred.shape[-1], 1))
    if from_logits:
        # sigmoid_cross_entropy_with_logits: max(x, 0) - x z + log(1 + exp(-|x|))
        x, z = y_pred, y_true
        elementwise = np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))
        values = np.mean(elementwise, axis=-1)
        return values, ((_sigmoid(x) - z) * n if grad else None)
    p, inside = _clip(y_pred)
    one = dt(1)
    elementwise = -(y_true * np.log(p) + (one - y_true) * np.log(one - p))
    values = np.mean(elementwise, axis=-1)
    if not grad:
        return values, None
    g = -(y_true / p - (one - y_true) / (one - p))
    return values, np.where(inside, g, dt(0)) * n


def _cce(y_true, y_pred, grad, from_logits=False):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    _check_same_shape(y_true, y_pred, "categorical_crossentropy")
    dt = y_pred.dtype.type
    if from_logits:
        logp = _log_softmax(y_pred)
        values = -np.sum(y_true * logp, axis=-1)
        if not grad:
            return values, None
        return values, np.exp(logp) * np.sum(y_true, axis=-1, keepdims=True) - y_true
    total = np.sum(y_pred, axis=-1, keepdims=True)
    q = y_pred / total
    qc, inside = _clip(q)
    values = -np.sum(y_true * np.log(qc), axis=-1)
    if not grad:
        return values, None
    gq = np.where(inside, -y_true / qc, dt(0))
    return values, (gq - np.sum(gq * q, axis=-1, keepdims=True)) / total


def _sparse_labels(y_true, y_pred, name):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"{name}: `y_true` must have the shape of `y_pred` without its last "
                         f"(class) axis; got y_true.shape={y_true.shape}, "
                         f"y_pred.shape={y_pred.shape}.")
    labels = np.asarray(y_true)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.floor(labels)):
            raise ValueError(f"{name}: `y_true` must hold integer class indices; got "
                             "non-integer values.")
    labels = labels.astype(np.int64)
    n_classes = y_pred.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name}: class indices in `y_true` must be in [0, {n_classes}); got "
                         f"values from {labels.min()} to {labels.max()}.")
    return labels


def _scce(y_true, y_pred, grad, from_logits=False):
    labels = _sparse_labels(np.asarray(y_true), y_pred, "sparse_categorical_crossentropy")
    dt = y_pred.dtype.type
    if from_logits:
        logits, inside = y_pred, None
    else:
        pc, inside = _clip(y_pred)
        logits = np.log(pc)
    logp = _log_softmax(logits)
    values = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    if not grad:
        return values, None
    g = np.exp(logp)
    np.put_along_axis(g, labels[..., None],
                      np.take_along_axis(g, labels[..., None], axis=-1) - dt(1), axis=-1)
    if not from_logits:
        g = np.where(inside, g / pc, dt(0))
    return values, g


# -- reduction ----------------------------------------------------------------------

def _apply_mask(sample_weight, mask, reduction, dtype):
    if mask is None:
        return sample_weight
    mask = np.asarray(mask).astype(bool)
    if reduction in ("mean", "sum_over_batch_size"):
        valid = np.count_nonzero(mask)
        weight = mask.size / valid if valid else 0.0
        float_mask = np.where(mask, dtype.type(weight), dtype.type(0))
    else:
        float_mask = mask.astype(dtype)
    if sample_weight is None:
        return float_mask
    sample_weight = np.asarray(sample_weight, dtype=dtype)
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    return sample_weight * float_mask


def _broadcast_weight(values, sample_weight):
    """Keras's squeeze/expand of the weights, then broadcast against the values."""
    values_r, weight_r = squeeze_or_expand_to_same_rank(values, sample_weight)
    while weight_r.ndim < values_r.ndim:
        weight_r = weight_r[..., None]
    return values_r, np.broadcast_to(weight_r, values_r.shape)


def reduce_weighted(values: Array, grads: Optional[Array],
                    sample_weight: Optional[ArrayLike] = None, mask: Optional[ArrayLike] = None,
                    reduction: Optional[str] = "sum_over_batch_size") -> Tuple[Any,
                    Optional[Array]]:
    """Reduce per-sample values (and their gradients) as Keras's
    ``reduce_weighted_values``.

    Parameters
    ----------
    values : numpy.ndarray
        Per-sample values.
    grads : numpy.ndarray or None
        Their gradients with respect to the predictions.
    sample_weight : array_like, optional
        A weight per sample (or per value).
    mask : array_like of bool, optional
        Positions to count (the model's output mask).
    reduction : str or None, default "sum_over_batch_size"

    Returns
    -------
    loss : float or numpy.ndarray
    grad : numpy.ndarray or None
    """
    dtype = values.dtype
    sample_weight = _apply_mask(sample_weight, mask, reduction, dtype)
    weight = None
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=dtype)
        if sample_weight.size == 0 and values.size:
            raise ValueError("`sample_weight` is empty.")
        values_w, weight = _broadcast_weight(values, sample_weight)
        if values_w.shape != values.shape:
            # the weights' rank adjustment squeezed the values (trailing axis of 1)
            weight = weight.reshape(values.shape)
        values = values * weight
    if reduction in (None, "none") or values.ndim == 0 or values.shape == (0,):
        if grads is not None and weight is not None:
            grads = grads * weight[..., None]
        return values, grads
    loss = np.sum(values)
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        if reduction == "mean_with_sample_weight" and sample_weight is not None:
            divisor = float(np.sum(sample_weight))
        else:
            divisor = float(values.size)
        scale = 1.0 / divisor if divisor else 0.0
    else:
        scale = 1.0
    loss = loss * dtype.type(scale)
    if grads is not None:
        factor = dtype.type(scale) if weight is None else (weight * dtype.type(scale))
        grads = grads * (factor[..., None] if np.ndim(factor) else factor)
    return loss, grads


class Loss:
    """Base class of the losses: per-sample values, their reduction and gradient.

    ``loss(y_true, y_pred)`` gives the reduced loss; ``loss.call`` the
    per-sample values; ``loss.value_and_grad`` the loss and its gradient with
    respect to ``y_pred`` (what ``Sequential.fit`` backpropagates).

    Parameters
    ----------
    name : str, optional
        The loss's name (snake case of the class name by default).
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """

    _fn: Optional[Callable[..., Any]] = None

    def __init__(self, name: Optional[str] = None,
                 reduction: Optional[str] = "sum_over_batch_size", dtype: Any = None) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError("Invalid value for argument `reduction`. Expected one of "
                             f"{set(_REDUCTIONS)}. Received: reduction={reduction!r}")
        self.name = name if name is not None else unique_name(_default_name(type(self)))
        self.reduction = reduction
        self.dtype = None if dtype is None else np.dtype(
            dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype).name

    def _kwargs(self):
        return {}

    def _prepare(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "biuf":
            raise TypeError(f"`y_pred` must hold real numbers; got dtype {y_pred.dtype}.")
        dtype = _float_dtype(y_pred, self.dtype)
        y_pred = y_pred.astype(dtype, copy=False)
        y_true = np.asarray(y_true)
        if y_true.dtype.kind not in "biuf":
            raise TypeError(f"`y_true` must hold real numbers; got dtype {y_true.dtype}.")
        if not isinstance(self, SparseCategoricalCrossentropy):
            y_true = y_true.astype(dtype, copy=False)
        return y_true, y_pred

    def _values(self, y_true, y_pred, grad):
        y_true, y_pred = self._prepare(y_true, y_pred)
        values, g = type(self)._fn(y_true, y_pred, grad, **self._kwargs())
        return np.asarray(values, dtype=y_pred.dtype), g, y_pred

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> Array:
        """The per-sample loss values (no reduction).

        Parameters
        ----------
        y_true : array_like
            Targets.
        y_pred : array_like
            Predictions (their float dtype is the computation's).

        Returns
        -------
        numpy.ndarray
            One value per sample (per position for sequences).
        """
        return self._values(y_true, y_pred, False)[0]

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike,
                 sample_weight: Optional[ArrayLike] = None,
                 mask: Optional[ArrayLike] = None) -> Union[float, Array]:
        """The reduced loss.

        Parameters
        ----------
        y_true : array_like
            Targets.
        y_pred : array_like
            Predictions (their float dtype is the computation's).
        sample_weight : array_like, optional
            A weight per sample (or per value).
        mask : array_like of bool, optional
            Positions to count (the model's output mask).

        Returns
        -------
        float or numpy.ndarray
            A float, or the per-sample values with ``reduction="none"``/None.

        Raises
        ------
        TypeError
            For targets or predictions that are not real numbers.
        """
        values, _, _ = self._values(y_true, y_pred, False)
        loss, _ = reduce_weighted(values, None, sample_weight, mask, self.reduction)
        if np.ndim(loss) == 0:
            return float(loss)
        return loss

    def value_and_grad(self, y_true: ArrayLike, y_pred: ArrayLike,
                       sample_weight: Optional[ArrayLike] = None,
                       mask: Optional[ArrayLike] = None) -> Tuple[float, Array]:
        """``(loss, d loss / d y_pred)``.

        Parameters
        ----------
        y_true : array_like
            Targets.
        y_pred : array_like
            Predictions (their float dtype is the computation's).
        sample_weight : array_like, optional
            A weight per sample (or per value).
        mask : array_like of bool, optional
            Positions to count (the model's output mask).

        Returns
        -------
        loss : float
            The reduced loss.
        grad : numpy.ndarray
            Its gradient, with ``y_pred``'s shape and float dtype.

        Raises
        ------
        ValueError
            With a non-reducing loss (``reduction="none"``).
        """
        if self.reduction in (None, "none"):
            raise ValueError("value_and_grad needs a reducing loss (reduction='none' gives "
                             "one value per sample).")
        shape = np.shape(y_pred)
        # g has the rank-adjusted y_pred's shape: values.shape + (last axis,)
        values, g, y_pred_c = self._values(y_true, y_pred, True)
        loss, g = reduce_weighted(values, g, sample_weight, mask, self.reduction)
        return float(loss), np.ascontiguousarray(g.reshape(shape), dtype=y_pred_c.dtype)

    def get_config(self) -> Config:
        """The loss's configuration (Keras 3's keys)."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A loss from ``get_config()`` output.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Loss
        """
        config = dict(config)
        config.pop("fn", None)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _default_name(cls):
    return {"MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
            "Huber": "huber_loss", "BinaryCrossentropy": "binary_crossentropy",
            "CategoricalCrossentropy": "categorical_crossentropy",
            "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy"}.get(
        cls.__name__, cls.__name__.lower())


class MeanSquaredError(Loss):
    """``mean((y_true - y_pred) ** 2, axis=-1)``, then the batch mean.

    Parameters
    ----------
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    name : str, optional
        The loss's name.
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """
    _fn = staticmethod(_mse)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = "mean_squared_error", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(Loss):
    """``mean(|y_true - y_pred|, axis=-1)``, then the batch mean.

    Parameters
    ----------
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    name : str, optional
        The loss's name.
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """
    _fn = staticmethod(_mae)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = "mean_absolute_error", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class Huber(Loss):
    """Quadratic for ``|error| <= delta``, linear beyond (Keras's Huber).

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns linear.
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    name : str, optional
        The loss's name.
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """
    _fn = staticmethod(_huber)

    def __init__(self, delta: float = 1.0, reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = "huber_loss",
                 dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = float(delta)

    def _kwargs(self):
        return {"delta": self.delta}

    def get_config(self) -> Config:
        return {**super().get_config(), "delta": self.delta}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy on probabilities (clipped to [1e-7, 1 - 1e-7]) or logits.

    Parameters
    ----------
    from_logits : bool, default False
        ``y_pred`` holds logits instead of probabilities.
    label_smoothing : float, default 0.0
        Targets become ``y * (1 - s) + 0.5 * s``.
    axis : int, default -1
        Only -1 is supported.
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    name : str, optional
        The loss's name.
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """
    _fn = staticmethod(_bce)

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = "binary_crossentropy", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        if axis != -1:
            raise ValueError(f"Only axis=-1 is supported; got axis={axis!r}.")
        self.axis = axis

    def _values(self, y_true, y_pred, grad):
        y_true, y_pred = self._prepare(y_true, y_pred)
        if self.label_smoothing:
            dt = y_pred.dtype.type
            y_true = y_true * dt(1.0 - self.label_smoothing) + dt(0.5 * self.label_smoothing)
        values, g = _bce(y_true, y_pred, grad, from_logits=self.from_logits)
        return values, g, y_pred

    def get_config(self) -> Config:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or probability) targets over the last axis.

    Parameters
    ----------
    from_logits : bool, default False
        ``y_pred`` holds logits instead of probabilities.
    label_smoothing : float, default 0.0
        Targets become ``y * (1 - s) + s / classes``.
    axis : int, default -1
        Only -1 is supported.
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    name : str, optional
        The loss's name.
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """
    _fn = staticmethod(_cce)

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = "categorical_crossentropy", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        if axis != -1:
            raise ValueError(f"Only axis=-1 is supported; got axis={axis!r}.")
        self.axis = axis

    def _values(self, y_true, y_pred, grad):
        y_true, y_pred = self._prepare(y_true, y_pred)
        if self.label_smoothing:
            dt = y_pred.dtype.type
            k = y_true.shape[-1]
            y_true = y_true * dt(1.0 - self.label_smoothing) + dt(self.label_smoothing / k)
        values, g = _cce(y_true, y_pred, grad, from_logits=self.from_logits)
        return values, g, y_pred

    def get_config(self) -> Config:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer class indices as targets.

    Parameters
    ----------
    from_logits : bool, default False
        ``y_pred`` holds logits instead of probabilities.
    ignore_class : None
        Not supported: anything but None raises ``ValueError``.
    reduction : str or None, default "sum_over_batch_size"
        ``"sum_over_batch_size"``, ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None (per-sample values).
    name : str, optional
        The loss's name.
    dtype : str, optional
        The computation dtype (default: the predictions' float dtype).
    """
    _fn = staticmethod(_scce)

    def __init__(self, from_logits: bool = False, ignore_class: Optional[int] = None,
                 reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = "sparse_categorical_crossentropy",
                 dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        if ignore_class is not None:
            raise ValueError("`ignore_class` is not supported by cylstm; mask the targets "
                             "with a sample weight instead.")
        self.ignore_class = None

    def _kwargs(self):
        return {"from_logits": self.from_logits}

    def get_config(self) -> Config:
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}


# -- functional forms (per-sample values, as keras.losses.<name>) -------------------

def _functional(cls: Type[Loss], doc: str) -> Callable[..., Array]:
    def fn(y_true, y_pred, **kwargs):
        return cls(**kwargs).call(y_true, y_pred)
    fn.__doc__ = doc
    return fn


mean_squared_error = _functional(MeanSquaredError, "Per-sample mean squared error.")
mean_absolute_error = _functional(MeanAbsoluteError, "Per-sample mean absolute error.")
huber = _functional(Huber, "Per-sample Huber loss.")
binary_crossentropy = _functional(BinaryCrossentropy, "Per-sample binary cross-entropy.")
categorical_crossentropy = _functional(CategoricalCrossentropy,
                                       "Per-sample categorical cross-entropy.")
sparse_categorical_crossentropy = _functional(SparseCategoricalCrossentropy,
                                              "Per-sample sparse categorical cross-entropy.")
for _fn, _name in ((mean_squared_error, "mean_squared_error"),
                   (mean_absolute_error, "mean_absolute_error"), (huber, "huber"),
                   (binary_crossentropy, "binary_crossentropy"),
                   (categorical_crossentropy, "categorical_crossentropy"),
                   (sparse_categorical_crossentropy, "sparse_categorical_crossentropy")):
    _fn.__name__ = _fn.__qualname__ = _name
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "MAE": MeanAbsoluteError, "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_BY_CLASS = {c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, Huber,
                                     BinaryCrossentropy, CategoricalCrossentropy,
                                     SparseCategoricalCrossentropy)}
_BY_FUNCTION = {mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
                huber: Huber, binary_crossentropy: BinaryCrossentropy,
                categorical_crossentropy: CategoricalCrossentropy,
                sparse_categorical_crossentropy: SparseCategoricalCrossentropy}

_REGISTRY = Registry(
    "loss", "keras.losses", _BY_NAME, classes=_BY_CLASS, base=Loss, functions=_BY_FUNCTION,
    keep_names=True, strict_config=True,
    unknown_name=lambda identifier: ValueError(
        f"Could not interpret loss identifier: {identifier!r}. Expected one of "
        f"{sorted(_BY_NAME)} or a cylstm.losses.Loss."),
    unknown=lambda identifier: ValueError(
        f"Could not interpret loss identifier: {identifier!r}. cylstm trains with its own "
        "losses (they provide gradients): pass a name such as 'mse' or a cylstm.losses.Loss "
        "instance."))


def serialize(loss: Union[str, Loss]) -> Union[str, Config]:
    """A loss given by name stays a string; a loss object becomes Keras 3's dict form.

    Parameters
    ----------
    loss : str or Loss

    Returns
    -------
    str or dict
    """
    return _REGISTRY.serialize(loss)


def deserialize(config: Union[str, Mapping[str, Any]]) -> Loss:
    """A loss from a name or ``{"class_name", "config"}``.

    Parameters
    ----------
    config : str or dict

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        For a malformed config or an unknown class.
    """
    if isinstance(config, str):
        return get(config)
    return _REGISTRY.deserialize(config)


def get(identifier: Union[str, Mapping[str, Any], Loss, Type[Loss], Callable[..., Any]]) -> Loss:
    """A Loss object from a Keras name ('mse', 'binary_crossentropy', ...), a class,
    a functional form (``cylstm.losses.mse``), a config dict or an instance.

    Arbitrary Python callables are refused: cylstm needs the loss's gradient,
    which only its own losses provide.

    Parameters
    ----------
    identifier : str, dict, Loss, Loss subclass or cylstm loss function

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        For anything else.
    """
    return _REGISTRY.get(identifier)
