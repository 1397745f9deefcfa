"""Weight initializers with Keras 3's names, formulas, defaults and configs.

Seeding: an int ``seed`` gives the same values on every call, as in Keras 3
(drawn as Keras's NumPy backend does, ``default_rng([seed, 0])``); with
``seed=None`` every call draws fresh values from a module-level generator,
which ``set_global_seed`` (and so ``cylstm.utils.set_random_seed``) reseeds.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Type, Union

import math
import numbers
import re

import numpy as np
from ._serialization import Registry
from ._typing import Array, ArrayLike, Config, DTypeLike, IdentifierLike, ShapeLike

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
    "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal",
    "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal",
    "Identity", "compute_fans", "set_global_seed", "get", "serialize",
    "deserialize",
]

MODULE = "keras.initializers"
_global_rng = np.random.default_rng()


def set_global_seed(seed: Optional[int]) -> None:
    """Reseed the generator that unseeded (``seed=None``) initializers draw from.

    Parameters
    ----------
    seed : int or None
        None reseeds from the operating system.
    """
    global _global_rng
    _global_rng = np.random.default_rng(seed)


def _rng(seed):
    if seed is None:
        return _global_rng
    # Keras's NumPy backend seeds with the uint32 pair [seed, 0].
    return np.random.default_rng(np.array([seed & 0xFFFFFFFF, 0], dtype=np.uint32))


def _shape(shape):
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)


def _float_dtype(dtype):
    dtype = np.dtype("float32" if dtype is None else dtype)
    if dtype.kind != "f":
        raise ValueError(f"Random initializers need a floating dtype, got dtype={dtype}.")
    return dtype


def compute_fans(shape: ShapeLike, input_axes: Optional[Sequence[int]] = None,
                 output_axes: Optional[Sequence[int]] = None) -> Tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight shape, by Keras's rule.

    Rank 1: both the length; rank 2: ``(shape[0], shape[1])``; higher ranks
    are conv kernels ``(..., in, out)`` times the receptive field.

    Parameters
    ----------
    shape : int or tuple of int
    input_axes, output_axes : sequence of int, optional
        Explicit axes for the two fans (both must be given).

    Returns
    -------
    tuple of two numbers
    """
    shape = _shape(shape)
    if input_axes is not None and output_axes is not None:
        return (int(np.prod([shape[a] for a in input_axes])),
                int(np.prod([shape[a] for a in output_axes])))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _normal(rng, shape, mean, stddev, dtype):
    return rng.normal(loc=mean, scale=stddev, size=shape).astype(dtype)


def _truncated_normal(rng, shape, mean, stddev, dtype):
    # Redraw values beyond 2 stddev, as Keras's NumPy backend does.
    n = math.prod(shape)
    kept = np.empty(0)
    while kept.shape[0] < n:
        batch = rng.normal(loc=mean, scale=stddev, size=n)
        kept = np.append(kept, batch[(batch >= mean - 2 * stddev) & (batch <= mean + 2 * stddev)])
    return kept[:n].astype(dtype).reshape(shape)


def _uniform(rng, shape, minval, maxval, dtype):
    return rng.uniform(low=minval, high=maxval, size=shape).astype(dtype)


class Initializer:
    """Base class of the initializers: ``init(shape, dtype="float32") -> numpy.ndarray``.

    Any callable with that signature can serve as an initializer; the
    classes here add Keras's names and configs.
    """

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        """A new array of ``shape`` filled by the initializer.

        Parameters
        ----------
        shape : int or tuple of int
            The weight's shape.
        dtype : str or numpy dtype, default "float32"
            Its dtype (random initializers need a floating dtype).

        Returns
        -------
        numpy.ndarray
        """
        raise NotImplementedError("Initializer subclasses must implement __call__().")

    def get_config(self) -> Config:
        """The initializer's arguments (Keras 3's keys)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """An initializer from ``get_config()`` output.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Initializer
        """
        return cls(**config)

    def clone(self) -> Initializer:
        """A new initializer with the same configuration.

        Returns
        -------
        Initializer
        """
        return self.__class__.from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """Fills with 0."""
    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        return np.zeros(_shape(shape), dtype=dtype or "float32")


class Ones(Initializer):
    """Fills with 1."""
    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        return np.ones(_shape(shape), dtype=dtype or "float32")


class Constant(Initializer):
    """Fills with ``value``.

    Parameters
    ----------
    value : float or array_like, default 0.0
        Broadcast to the shape.
    """
    def __init__(self, value: Union[float, ArrayLike] = 0.0) -> None:
        self.value = value

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        return np.full(_shape(shape), self.value, dtype=dtype or "float32")

    def get_config(self) -> Config:
        # A NumPy scalar becomes a plain number, as Keras writes it, so JSON works.
        value = self.value
        return {"value": value.item() if isinstance(value, (np.generic, np.ndarray)) else value}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        value = config["value"]
        # Keras writes a tensor value as {"class_name": "__tensor__", "config": {"value": ...}}.
        if isinstance(value, dict):
            value = value["config"]["value"]
        return cls(value)


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only).

    Parameters
    ----------
    gain : float, default 1.0
    """
    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError("Identity matrix initializer can only be used for 2D matrices. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        return (self.gain * np.eye(*shape)).astype(dtype or "float32")

    def get_config(self) -> Config:
        # Keras 3.15 returns {} here and so loses `gain`; keeping it makes the
        # round trip exact and Keras still accepts the key.
        return {"gain": self.gain}


class RandomInitializer(Initializer):
    """Base class of the random initializers: seeding as Keras 3.

    Parameters
    ----------
    seed : int, optional
        The same values on every call with an int; fresh values from the module
        generator (``set_global_seed``) with None.
    """
    def __init__(self, seed: Optional[int] = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError("`seed` argument should be an integer or None. "
                             f"Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)

    def get_config(self) -> Config:
        return {"seed": self.seed}


class RandomNormal(RandomInitializer):
    """Normal values with mean ``mean`` and standard deviation ``stddev``.

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
    seed : int, optional
        The same values on every call with an int; fresh values from the module
        generator (``set_global_seed``) with None.
    """
    def __init__(self, mean: float = 0.0, stddev: float = 0.05,
                 seed: Optional[int] = None) -> None:
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        return _normal(_rng(self.seed), _shape(shape), self.mean, self.stddev, _float_dtype(dtype))

    def get_config(self) -> Config:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """Normal, with values beyond 2 stddev of the mean redrawn."""

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        return _truncated_normal(_rng(self.seed), _shape(shape), self.mean, self.stddev,
                                 _float_dtype(dtype))


class RandomUniform(RandomInitializer):
    """Uniform values in ``[minval, maxval)``.

    Parameters
    ----------
    minval : float, default -0.05
    maxval : float, default 0.05
    seed : int, optional
        The same values on every call with an int; fresh values from the module
        generator (``set_global_seed``) with None.
    """
    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: Optional[int] = None) -> None:
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed=seed)

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        return _uniform(_rng(self.seed), _shape(shape), self.minval, self.maxval,
                        _float_dtype(dtype))

    def get_config(self) -> Config:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Variance ``scale / n`` with n the fan_in, fan_out or their mean (``mode``).

    Parameters
    ----------
    scale : float, default 1.0
        Positive.
    mode : {"fan_in", "fan_out", "fan_avg"}, default "fan_in"
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}
        Default "truncated_normal" ("normal" means "truncated_normal", as in Keras).
    seed : int, optional
        The same values on every call with an int; fresh values from the module
        generator (``set_global_seed``) with None.
    input_axes, output_axes : sequence of int, optional
        The axes whose sizes make the fans (default: Keras's rule, see
        ``compute_fans``).
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: Optional[int] = None,
                 input_axes: Optional[Sequence[int]] = None,
                 output_axes: Optional[Sequence[int]] = None) -> None:
        if scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode!r}. "
                             "Please use one of 'fan_in', 'fan_out', 'fan_avg'.")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(f"Invalid `distribution` argument: {distribution!r}. Please use one "
                             "of 'uniform', 'truncated_normal', 'untruncated_normal'.")
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.input_axes = input_axes
        self.output_axes = output_axes
        super().__init__(seed=seed)

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        shape, dtype = _shape(shape), _float_dtype(dtype)
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng = _rng(self.seed)
        if self.distribution == "truncated_normal":
            # Stddev of a unit normal truncated at +-2, so the result has variance `scale`.
            return _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / 0.87962566103423978, dtype)
        if self.distribution == "untruncated_normal":
            return _normal(rng, shape, 0.0, math.sqrt(scale), dtype)
        limit = math.sqrt(3.0 * scale)
        return _uniform(rng, shape, -limit, limit, dtype)

    def get_config(self) -> Config:
        """The initializer's arguments (Keras 3's keys)."""
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


def _fixed_variance_scaling(name: str, scale: float, mode: str,
                            distribution: str) -> Type[VarianceScaling]:
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale=scale, mode=mode, distribution=distribution,
                                 seed=seed, input_axes=input_axes, output_axes=output_axes)

    def get_config(self):
        """The initializer's arguments (Keras 3's keys: seed and axes)."""
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    doc = f"``VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})``."
    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc, "__module__": __name__})


GlorotUniform = _fixed_variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _fixed_variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _fixed_variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _fixed_variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _fixed_variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _fixed_variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """Orthogonal matrix from the QR of a normal draw, on the shape flattened to
    ``(prod(shape[:-1]), shape[-1])``; orthonormal columns, or rows when wider.

    Parameters
    ----------
    gain : float, default 1.0
        Multiplies the matrix.
    seed : int, optional
        The same values on every call with an int; fresh values from the module
        generator (``set_global_seed``) with None.
    """

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None) -> None:
        self.gain = gain
        super().__init__(seed=seed)

    def __call__(self, shape: ShapeLike, dtype: DTypeLike = "float32") -> Array:
        shape, dtype = _shape(shape), _float_dtype(dtype)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = _normal(_rng(self.seed), (max(rows, cols), min(rows, cols)), 0.0, 1.0, dtype)
        # One BLAS thread: a threaded QR leaves NumPy's BLAS threads spinning
        # for a while, on the cores the layer's first calls then want.
        from threadpoolctl import threadpool_limits  # not at import: only this needs it
        with threadpool_limits(limits=1, user_api="blas"):
            q, r = np.linalg.qr(a)
        # Fix the signs so that Q is uniformly (Haar) distributed.
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self) -> Config:
        return {**super().get_config(), "gain": self.gain}


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_CLASSES = [Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal,
            VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform,
            LecunNormal, Orthogonal]
# Keras's table: class names, their snake_case, and its legacy aliases.
_BY_NAME = {**{c.__name__: c for c in _CLASSES}, **{_snake(c.__name__): c for c in _CLASSES},
            "normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
            "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal}


def _unknown(identifier):
    return ValueError(f"Could not interpret initializer identifier: {identifier!r}. "
                      f"Expected one of: {', '.join(sorted(_BY_NAME))}; a config dict; "
                      "an Initializer; or a callable.")


_REGISTRY = Registry("initializer", MODULE, _BY_NAME, classes=_BY_NAME, optional=True,
                     callable_fallback=lambda fn: fn, unknown=_unknown)


def serialize(initializer: Optional[Callable[..., Any]]) -> Optional[Config]:
    """Keras 3's dict form of an initializer (None stays None).

    Parameters
    ----------
    initializer : Initializer or None

    Returns
    -------
    dict or None

    Raises
    ------
    ValueError
        For an object without ``get_config``.
    """
    return _REGISTRY.serialize(initializer)


def deserialize(config: Mapping[str, Any]) -> Any:
    """An initializer from ``{"class_name", "config"}`` (with or without ``module``).

    Parameters
    ----------
    config : dict

    Returns
    -------
    Initializer

    Raises
    ------
    ValueError
        For an unknown class.
    """
    return _REGISTRY.deserialize(config)


def get(identifier: Union[IdentifierLike, Array]) -> Optional[Callable[..., Any]]:
    """An initializer from a Keras name, a config dict, an instance, a class, an
    array (returned as-is at its own shape) or a callable.

    Parameters
    ----------
    identifier : str, dict, Initializer, class, numpy.ndarray, callable or None

    Returns
    -------
    callable or None
        ``init(shape, dtype)``; None for None.

    Raises
    ------
    ValueError
        For an unknown name or anything else.
    """
    if isinstance(identifier, (np.ndarray, np.generic)):
        value = np.asarray(identifier)

        def initialize_fn(shape, dtype="float32"):
            if _shape(shape) != value.shape:
                raise ValueError(f"Expected `shape` to be {value.shape} for an array as "
                                 f"initializer. Received shape={shape}")
            return value.astype(dtype or "float32")
        return initialize_fn
    return _REGISTRY.get(identifier)
