"""Optimizers with Keras 3's names, defaults, update formulas and gradient clipping.

An optimizer updates arrays in place: NumPy arrays, or the arrays of any
registered backend (the update is written with array-API functions on the
backend's namespace ``xp``, and the slots are made by that backend). The model calls
``optimizer.apply(params)`` with ``params`` a list of ``(key, array, grad)``;
the per-variable slots (momentums, velocities, ...) are kept under ``key``
(``id(array)`` when the key is None), so the same optimizer can serve several
arrays and keeps their state between steps.

The arithmetic follows ``keras/src/optimizers/{sgd,adam,rmsprop}.py`` step by
step, in the dtype of each variable (float32 or float64), so one and three
steps agree with Keras to float rounding (see tests/models/test_optimizers.py).
Clipping happens before the update, as Keras: ``clipnorm`` clips each
variable's gradient by its own L2 norm (not the global norm, which is
``global_clipnorm``); ``clipvalue`` clips elementwise. ``weight_decay``
(decoupled, as Keras 3) shrinks the variable by ``var * weight_decay * lr``
before the update.
"""
from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple,
                    Type, Union)

import math
import numbers
import re

import numpy as np

from .backends import move_array, owning_backend
from .layers.base import unique_name
from ._serialization import Registry
from ._typing import Array, ArrayLike, Config

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "get", "serialize", "deserialize"]

# Keras 3 keyword arguments that cylstm accepts only at their default value.
_UNSUPPORTED_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99,
                         "ema_overwrite_frequency": None, "loss_scale_factor": None,
                         "gradient_accumulation_steps": None}


def _check_nonneg(value, argument, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a "
                         f"non-negative number{' or None' if allow_none else ''}, got {value!r}.")
    return float(value)


def _check_unit_interval(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a "
                         f"float between 0 and 1, got {value!r}.")
    return float(value)


def _snake_case(name):
    """Keras's ``to_snake_case``: 'SGD' -> 'sgd', 'RMSprop' -> 'rm_sprop'."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _global_norm(grads, backends):
    return math.sqrt(sum(b.sum_of_squares(g) for g, b in zip(grads, backends)))


class Optimizer:
    """Base class: learning rate, clipping, weight decay, iteration count, slots.

    ``optimizer.apply(params)`` updates the arrays of ``params`` in place from
    their gradients, as ``model.fit`` does after every batch. Slots (momenta)
    are kept per parameter key.

    Parameters
    ----------
    learning_rate : float or callable, default 0.001
        A non-negative step size, or a schedule ``lr = schedule(iterations)``.
    weight_decay : float, optional
        Decoupled weight decay: ``w -= w * weight_decay * lr`` before each step.
    clipnorm : float, optional
        Clip each gradient to this L2 norm.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Clip all gradients together to this global L2 norm (at most one of the
        three clipping arguments).
    name : str, optional
        The optimizer's name (Keras's automatic names by default).
    **kwargs
        Keras's other arguments at their defaults (``use_ema=False``, ...);
        ``decay`` is ignored as in Keras 3; anything else raises ``ValueError``.
    """

    _slot_names = ()

    def __init__(self, learning_rate: Union[float, Callable[[int], float]] = 0.001,
                 weight_decay: Optional[float] = None, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        kwargs.pop("decay", None)  # Keras 3 ignores it (with a warning)
        for key, value in list(kwargs.items()):
            if key in _UNSUPPORTED_DEFAULTS:
                if value != _UNSUPPORTED_DEFAULTS[key]:
                    raise ValueError(f"Argument `{key}`={value!r} is not supported by cylstm "
                                     f"optimizers (only its default, "
                                     f"{_UNSUPPORTED_DEFAULTS[key]!r}).")
                kwargs.pop(key)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if callable(learning_rate):
            self._learning_rate = learning_rate  # a schedule: lr = schedule(iterations)
        else:
            self._learning_rate = _check_nonneg(learning_rate, "learning_rate", False)
        self.weight_decay = _check_nonneg(weight_decay, "weight_decay")
        self.clipnorm = _check_nonneg(clipnorm, "clipnorm")
        self.clipvalue = _check_nonneg(clipvalue, "clipvalue")
        self.global_clipnorm = _check_nonneg(global_clipnorm, "global_clipnorm")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        # Keras's automatic names: 'sgd', 'sgd_1', 'adam', 'rm_sprop', ...
        self.name = name if name is not None else unique_name(_snake_case(type(self).__name__))
        self.iterations = 0
        self._slots = {}   # key -> {slot name: array}

    # -- learning rate --------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The current learning rate (a schedule's value at ``iterations``); settable."""
        if callable(self._learning_rate):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Union[float, Callable[[int], float]]) -> None:
        if callable(value):
            self._learning_rate = value
        else:
            self._learning_rate = _check_nonneg(value, "learning_rate", False)

    # -- state ------------------------------------------------------------------
    @property
    def built(self) -> bool:
        """Whether the optimizer has slots (after its first step)."""
        return bool(self._slots)

    @property
    def variables(self) -> List[Array]:
        """Keras's optimizer variables: iterations, learning rate, then every slot."""
        if not self._slots:
            return []
        out = [np.array(self.iterations, dtype="int64"),
               np.array(self.learning_rate, dtype="float32")]
        for slots in self._slots.values():
            out.extend(slots.values())
        return out

    def get_slots(self) -> Dict[str, Dict[str, Array]]:
        """The slots (moments, velocities) of every variable keyed by name,
        ``{key: {slot name: array}}`` (the arrays themselves, not copies).
        Variables keyed by ``id()`` (no name) are left out: their keys mean
        nothing in another process.

        Returns
        -------
        dict
        """
        return {k: v for k, v in self._slots.items() if isinstance(k, str)}

    def set_slots(self, slots: Mapping[str, Mapping[str, Array]], iterations: int) -> None:
        """Replace every slot and the iteration count (a restored optimizer).

        Parameters
        ----------
        slots : dict
            ``{key: {slot name: array}}``, as ``get_slots`` returns it.
        iterations : int
            The number of steps taken.
        """
        self._slots = {key: dict(arrays) for key, arrays in slots.items()}
        self.iterations = int(iterations)

    def _get_slots(self, key, variable, backend):
        slots = self._slots.get(key)
        if slots is not None:
            kind, shape, dtype = type(variable), variable.shape, variable.dtype
            for s in slots.values():
                if type(s) is not kind or s.shape != shape or s.dtype != dtype:
                    break
            else:
                return slots
            if all(type(s) is not kind and s.shape == shape for s in slots.values()):
                # The variable moved to another backend (layer.to): its slots follow.
                slots = self._slots[key] = {n: move_array(s, backend) for n, s in slots.items()}
                if all(s.dtype == dtype for s in slots.values()):
                    return slots
        slots = {n: backend.zeros(variable.shape, variable.dtype) for n in self._slot_names_for()}
        self._slots[key] = slots
        return slots

    def _slot_names_for(self):
        return self._slot_names

    def reset(self) -> None:
        """Forget every slot and the iteration count (a fresh optimizer)."""
        self._slots = {}
        self.iterations = 0

    # -- clipping ---------------------------------------------------------------
    def _clip_gradients(self, grads, backends):
        if self.clipnorm:
            out = []
            for g, b in zip(grads, backends):
                xp = b.xp
                norm = xp.sqrt(xp.sum(xp.square(g)))
                clip = b.scalar(self.clipnorm, g.dtype)
                out.append(g * clip / xp.maximum(norm, clip))
            return out
        if self.global_clipnorm:
            use_norm = _global_norm(grads, backends)
            if not math.isfinite(use_norm):
                scale = float("nan")
            elif use_norm == 0.0:
                scale = 1.0
            else:
                scale = self.global_clipnorm * min(1.0 / use_norm, 1.0 / self.global_clipnorm)
            return [g * b.scalar(scale, g.dtype) for g, b in zip(grads, backends)]
        if self.clipvalue:
            v = self.clipvalue
            return [b.xp.clip(g, -v, v) for g, b in zip(grads, backends)]
        return grads

    # -- applying ---------------------------------------------------------------
    def apply(self, params: Iterable[Tuple[Any, Array, Optional[ArrayLike]]]) -> None:
        """One optimizer step over ``params``, updating the arrays in place.

        Parameters
        ----------
        params : iterable of (key, array, array_like or None)
            ``(key, array, grad)`` triples; ``grad`` None is skipped (as Keras
            skips variables without gradient). Slots are kept per key. The
            arrays are NumPy arrays or those of another registered backend
            (``cylstm.backends``); the gradient is converted to the array's.

        Raises
        ------
        ValueError
            For an entry that is not a triple or a gradient of another shape.
        TypeError
            For an array that is not a floating array (NumPy's or a backend's).
        """
        items = []
        for entry in params:
            if len(entry) != 3:
                raise ValueError("`params` must be a list of (key, array, grad) triples; got "
                                 f"an entry of length {len(entry)}.")
            key, var, grad = entry
            if grad is None:
                continue
            backend = owning_backend(var)
            if not backend.is_floating(var):
                raise TypeError(f"Variable {key!r} must be a floating NumPy array (or a "
                                f"floating array of a registered backend) updated in place; "
                                f"got {type(var).__name__}.")
            grad = backend.gradient_like(grad, var)
            if grad.shape != var.shape:
                raise ValueError(f"Gradient of {key!r} has shape {tuple(grad.shape)}, expected "
                                 f"the variable's shape {tuple(var.shape)}.")
            items.append((id(var) if key is None else key, var, grad, backend))
        if not items:
            return
        backends = [b for _, _, _, b in items]
        grads = self._clip_gradients([g for _, _, g, _ in items], backends)
        lr = self.learning_rate
        for (key, var, _, backend), grad in zip(items, grads):
            if self.weight_decay:
                dt = backend.scalar_maker(var.dtype)
                var -= var * dt(self.weight_decay) * dt(lr)
            self._update(key, var, grad, lr, backend)
        self.iterations += 1

    def apply_gradients(self, grads_and_vars: Iterable[Tuple[Optional[ArrayLike], Array]]
                        ) -> None:
        """Keras's spelling of ``apply``: slots keyed by ``id(variable)``.

        Parameters
        ----------
        grads_and_vars : iterable of (array_like or None, array)
            ``(grad, variable)`` pairs; the variables are updated in place.
        """
        self.apply([(None, v, g) for g, v in grads_and_vars])

    def _update(self, key, var, grad, lr, backend):
        """Update ``var`` in place (``backend`` owns it; its namespace is ``backend.xp``)."""
        raise NotImplementedError

    # -- config -----------------------------------------------------------------
    def get_config(self) -> Config:
        """The optimizer's configuration (Keras 3's keys)."""
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": lr if not callable(lr) else self.learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """An optimizer from ``get_config()`` output or a Keras 3 optimizer config
        (Keras-only keys such as ``use_ema`` are dropped).

        Parameters
        ----------
        config : dict

        Returns
        -------
        Optimizer

        Raises
        ------
        ValueError
            For a learning-rate schedule in the config.
        """
        config = dict(config)
        for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                    "gradient_accumulation_steps", "is_legacy_optimizer", "jit_compile"):
            config.pop(key, None)
        if isinstance(config.get("learning_rate"), dict):
            raise ValueError("Learning-rate schedules in a config are not supported; got "
                             f"{config['learning_rate']!r}.")
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, learning_rate={self.learning_rate}>"

    def __getstate__(self):
        # Slots of ``apply_gradients`` are keyed by id(variable), which means
        # nothing in another process (a new array could reuse the id): they
        # are left out. Slots keyed by name (``apply``, ``Sequential.fit``) travel.
        state = dict(self.__dict__)
        state["_slots"] = {k: v for k, v in self._slots.items() if not isinstance(k, int)}
        return state


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as ``keras.optimizers.SGD``.

    ``m = momentum * m - lr * g``; ``w += m`` (or ``w += momentum * m - lr * g``
    with ``nesterov``); without momentum ``w -= lr * g``.

    Parameters
    ----------
    learning_rate : float or callable, default 0.01
        A non-negative step size, or a schedule ``lr = schedule(iterations)``.
    momentum : float, default 0.0
        In [0, 1].
    nesterov : bool, default False
        Nesterov momentum.
    weight_decay : float, optional
        Decoupled weight decay: ``w -= w * weight_decay * lr`` before each step.
    clipnorm : float, optional
        Clip each gradient to this L2 norm.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Clip all gradients together to this global L2 norm (at most one of the
        three clipping arguments).
    name : str, optional
        The optimizer's name (Keras's automatic names by default).
    **kwargs
        Keras's other arguments at their defaults (``use_ema=False``, ...);
        ``decay`` is ignored as in Keras 3; anything else raises ``ValueError``.
    """

    def __init__(self, learning_rate: Union[float, Callable[[int], float]] = 0.01,
                 momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) \
                or not 0 <= momentum <= 1:
            raise ValueError("`momentum` must be a float between [0, 1]. "
                             f"Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _slot_names_for(self):
        return ("momentum",) if self.momentum != 0 else ()

    def _update(self, key, var, grad, lr, backend):
        dt = backend.scalar_maker(var.dtype)
        lr = dt(lr)
        if self.momentum != 0:
            m = self._get_slots(key, var, backend)["momentum"]
            momentum = dt(self.momentum)
            m[...] = m * momentum - grad * lr
            if self.nesterov:
                var += m * momentum - grad * lr
            else:
                var += m
        else:
            self._get_slots(key, var, backend)
            var -= grad * lr

    def get_config(self) -> Config:
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config


class Adam(Optimizer):
    """Adam as ``keras.optimizers.Adam`` (epsilon outside the square root, Keras's
    bias correction folded into the step size ``alpha``).

    Parameters
    ----------
    learning_rate : float or callable, default 0.001
        A non-negative step size, or a schedule ``lr = schedule(iterations)``.
    beta_1 : float, default 0.9
        Decay of the first-moment estimate, in [0, 1].
    beta_2 : float, default 0.999
        Decay of the second-moment estimate, in [0, 1].
    epsilon : float, default 1e-7
        Added to the root of the second moment.
    amsgrad : bool, default False
        Use the maximum of past second moments (AMSGrad).
    weight_decay : float, optional
        Decoupled weight decay: ``w -= w * weight_decay * lr`` before each step.
    clipnorm : float, optional
        Clip each gradient to this L2 norm.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Clip all gradients together to this global L2 norm (at most one of the
        three clipping arguments).
    name : str, optional
        The optimizer's name (Keras's automatic names by default).
    **kwargs
        Keras's other arguments at their defaults (``use_ema=False``, ...);
        ``decay`` is ignored as in Keras 3; anything else raises ``ValueError``.
    """

    def __init__(self, learning_rate: Union[float, Callable[[int], float]] = 0.001,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.beta_1 = _check_unit_interval(beta_1, "beta_1")
        self.beta_2 = _check_unit_interval(beta_2, "beta_2")
        self.epsilon = _check_nonneg(epsilon, "epsilon", False)
        self.amsgrad = bool(amsgrad)

    def _slot_names_for(self):
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad \
            else ("momentum", "velocity")

    def _update(self, key, var, grad, lr, backend):
        xp = backend.xp
        slots = self._get_slots(key, var, backend)
        m, v = slots["momentum"], slots["velocity"]
        dt = backend.scalar_maker(var.dtype)

        local_step = dt(self.iterations + 1)
        beta_1_power = backend.pow(dt(self.beta_1), local_step)
        beta_2_power = backend.pow(dt(self.beta_2), local_step)
        alpha = dt(lr) * xp.sqrt(dt(1) - beta_2_power) / (dt(1) - beta_1_power)
        m += (grad - m) * dt(1 - self.beta_1)
        v += (xp.square(grad) - v) * dt(1 - self.beta_2)
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            v_hat[...] = xp.maximum(v_hat, v)
            v = v_hat
        var -= (m * alpha) / (xp.sqrt(v) + dt(self.epsilon))

    def get_config(self) -> Config:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon, "amsgrad": self.amsgrad})
        return config


class RMSprop(Optimizer):
    """RMSprop as ``keras.optimizers.RMSprop`` (epsilon inside the square root,
    optional momentum and centering).

    Parameters
    ----------
    learning_rate : float or callable, default 0.001
        A non-negative step size, or a schedule ``lr = schedule(iterations)``.
    rho : float, default 0.9
        Decay of the mean square, in [0, 1].
    momentum : float, default 0.0
        In [0, 1].
    epsilon : float, default 1e-7
        Added inside the square root.
    centered : bool, default False
        Divide by the estimated variance instead of the mean square.
    weight_decay : float, optional
        Decoupled weight decay: ``w -= w * weight_decay * lr`` before each step.
    clipnorm : float, optional
        Clip each gradient to this L2 norm.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Clip all gradients together to this global L2 norm (at most one of the
        three clipping arguments).
    name : str, optional
        The optimizer's name (Keras's automatic names by default).
    **kwargs
        Keras's other arguments at their defaults (``use_ema=False``, ...);
        ``decay`` is ignored as in Keras 3; anything else raises ``ValueError``.
    """

    def __init__(self, learning_rate: Union[float, Callable[[int], float]] = 0.001,
                 rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name,
                         **kwargs)
        self.rho = _check_unit_interval(rho, "rho")
        self.momentum = _check_unit_interval(momentum, "momentum")
        self.epsilon = _check_nonneg(epsilon, "epsilon", False)
        self.centered = bool(centered)

    def _slot_names_for(self):
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def _update(self, key, var, grad, lr, backend):
        xp = backend.xp
        slots = self._get_slots(key, var, backend)
        velocity = slots["velocity"]
        dt = backend.scalar_maker(var.dtype)

        rho = dt(self.rho)
        velocity[...] = rho * velocity + dt(1 - self.rho) * xp.square(grad)
        if self.centered:
            avg = slots["average_gradient"]
            avg[...] = rho * avg + dt(1 - self.rho) * grad
            denominator = velocity - xp.square(avg) + dt(self.epsilon)
        else:
            denominator = velocity + dt(self.epsilon)
        increment = (dt(lr) * grad) / xp.sqrt(denominator)
        if self.momentum > 0:
            mom = slots["momentum"]
            mom[...] = dt(self.momentum) * mom + increment
            var -= mom
        else:
            var -= increment

    def get_config(self) -> Config:
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum,
                       "epsilon": self.epsilon, "centered": self.centered})
        return config


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
_BY_CLASS = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}

_REGISTRY = Registry(
    "optimizer", "keras.optimizers", _BY_NAME, classes=_BY_CLASS, base=Optimizer,
    normalize=str.lower, strict_config=True,
    unknown_name=lambda identifier: ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. Expected one of "
        f"{sorted(_BY_NAME)} or an optimizer instance."),
    unknown=lambda identifier: ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. Expected one of "
        f"{sorted(_BY_NAME)} or a cylstm.optimizers.Optimizer."))


def serialize(optimizer: Optimizer) -> Config:
    """Keras 3's dict form ``{"module", "class_name", "config", "registered_name"}``.

    Parameters
    ----------
    optimizer : Optimizer

    Returns
    -------
    dict
    """
    return _REGISTRY.serialize(optimizer)


def deserialize(config: Mapping[str, Any]) -> Optimizer:
    """An optimizer from ``{"class_name", "config"}`` (SGD, Adam or RMSprop only).

    Parameters
    ----------
    config : dict

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For a malformed config or an unknown class.
    """
    return _REGISTRY.deserialize(config)


def get(identifier: Union[str, Mapping[str, Any], Optimizer, Type[Optimizer]]) -> Optimizer:
    """An optimizer from a Keras name ('adam', 'sgd', 'rmsprop'), a config dict,
    a class or an instance.

    A name gives a fresh optimizer with Keras's defaults; an instance is
    returned as is.

    Parameters
    ----------
    identifier : str, dict, Optimizer or Optimizer subclass

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For anything else.
    """
    return _REGISTRY.get(identifier)
