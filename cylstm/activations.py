"""Activations by Keras name, as NumPy functions.

The LSTM kernels compute the built-in ones in C (``KERNEL_CODES``); a Python
callable runs on the NumPy path instead, whole-array per step, which costs a
Python call per gate block per step (about 10-50x slower at small sizes).

The module-level functions ``tanh``, ``sigmoid``, ``hard_sigmoid`` (Keras 3:
``relu6(x + 3) / 6``), ``relu``, ``linear``, ``softsign``, ``elu``, ``selu``,
``gelu`` (exact, with erf), ``swish`` (also ``silu``) take an array_like and
return ``f(x)`` as a NumPy array, the same formulas as the C kernels.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from ._kernels.reference import ACTIVATIONS
from ._serialization import Registry
from ._typing import ActivationLike, Array, ArrayLike

__all__ = ["get", "serialize", "kernel_code", "tanh", "sigmoid", "hard_sigmoid", "relu",
           "linear", "softsign", "elu", "selu", "gelu", "swish", "silu", "softmax"]

# Must match the ACT_* enum of cylstm/_kernels/activations.pxd.
KERNEL_CODES = {
    "linear": 0, "tanh": 1, "sigmoid": 2, "hard_sigmoid": 3, "relu": 4,
    "softsign": 5, "elu": 6, "selu": 7, "gelu": 8, "swish": 9,
}
ALIASES = {"silu": "swish", None: "linear"}


def _named(name):
    fn, _ = ACTIVATIONS[name]

    def activation(x):
        """The activation named by ``__name__``, elementwise: an array_like in, a
        NumPy array out (the same formulas as the C kernels)."""
        return fn(np.asarray(x))

    activation.__name__ = name
    activation.__qualname__ = name
    activation.cylstm_name = name
    return activation


tanh = _named("tanh")
sigmoid = _named("sigmoid")
hard_sigmoid = _named("hard_sigmoid")
relu = _named("relu")
linear = _named("linear")
softsign = _named("softsign")
elu = _named("elu")
selu = _named("selu")
gelu = _named("gelu")
swish = _named("swish")
silu = swish


def softmax(x: ArrayLike, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along ``axis`` (for ``Dense(activation="softmax")``).

    Parameters
    ----------
    x : array_like
    axis : int, default -1

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


softmax.cylstm_name = "softmax"  # type: ignore[attr-defined]

_BY_NAME = {name: globals()[name] for name in KERNEL_CODES}
_BY_NAME["softmax"] = softmax
# Names map to the functions themselves (nothing to instantiate); Keras writes
# an activation as its name, so there is no dict form to deserialize.
_REGISTRY = Registry(
    "activation", "keras.activations", _BY_NAME, instantiate=False,
    unknown_name=lambda identifier: ValueError(
        f"Unknown activation {identifier!r}; expected one of "
        f"{sorted(list(_BY_NAME) + ['silu'])}, None or a callable."),
    unknown=lambda identifier: TypeError(
        f"Could not interpret activation {identifier!r}: expected a name, None or a callable."))


def get(identifier: Union[ActivationLike, Mapping[str, Any]]) -> Callable[..., Any]:
    """The activation function for a Keras name, None, a config dict or a callable.

    Parameters
    ----------
    identifier : str, dict, callable or None
        A name (``"tanh"``, ``"silu"``, ...), None (linear), Keras's
        serialised form, or a Python callable (returned as is).

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For anything else.
    """
    if isinstance(identifier, dict):  # Keras-serialised form
        identifier = identifier.get("config", identifier.get("class_name"))
        if isinstance(identifier, dict):
            identifier = identifier.get("name")
    name = ALIASES.get(identifier, identifier)
    if isinstance(name, str):
        if name not in _BY_NAME:
            raise _REGISTRY.unknown_name(identifier)
        return _REGISTRY.by_name(name)
    if callable(identifier):
        return identifier
    raise _REGISTRY.unknown(identifier)


def serialize(activation: Callable[..., Any]) -> str:
    """The Keras name of an activation (a callable's ``__name__`` otherwise).
    Keras 3 writes swish as 'silu'.

    Parameters
    ----------
    activation : callable

    Returns
    -------
    str
    """
    name = getattr(activation, "cylstm_name", getattr(activation, "__name__", str(activation)))
    return "silu" if name == "swish" else name


def kernel_code(activation: Callable[..., Any]) -> Optional[int]:
    """The C kernel's code for a built-in activation, or None for a Python callable.

    Parameters
    ----------
    activation : callable

    Returns
    -------
    int or None
    """
    return KERNEL_CODES.get(getattr(activation, "cylstm_name", None))


def reference_name(activation: Callable[..., Any]) -> Union[str, Callable[..., Any]]:
    """What the NumPy kernel twin takes: a built-in name, or the callable itself.

    Parameters
    ----------
    activation : callable

    Returns
    -------
    str or callable
    """
    name = getattr(activation, "cylstm_name", None)
    return name if name in KERNEL_CODES else activation
