"""The Layer base class: weights, gradients, config, and the training contract.

Every layer with weights keeps them as NumPy arrays in ``self._params`` (also
reachable as attributes, e.g. ``layer.kernel``) and their gradients in
``self.grads`` under the same names. Optimizers update the arrays in place,
so the kernels always see the current values without copies.

The training contract (SPEC section 5): ``y, backprop = layer.forward_train(x)``;
``dx = backprop(dy)`` adds weight gradients into ``layer.grads``.
"""
import re
import threading

import numpy as np

from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._threads import GRADIENT_LOCK
from .._validation import standardize_dtype

_NAME_COUNTS = {}
_NAME_LOCK = threading.Lock()
_deferred = threading.local()
_deferred.active = False


class deferred_weights:
    """Within this context (in this thread), layers that build create zero
    weights instead of drawing them: a loader about to read every weight
    from a file draws no random numbers it would overwrite.

    ``budget``: the number of weight values the file holds. Creating more
    raises ValueError before the allocation, so a config that declares a
    model larger than its file allocates nothing for it.
    """

    def __init__(self, budget=None):
        self.budget = budget

    def __enter__(self):
        self._previous = (getattr(_deferred, "active", False),
                          getattr(_deferred, "budget", None))
        _deferred.active = True
        _deferred.budget = self.budget
        return self

    def __exit__(self, *exc):
        _deferred.active, _deferred.budget = self._previous


class WeightBudgetError(ValueError):
    """A config declares more weights than the file being loaded holds."""


def weights_deferred():
    """Whether layers being built now should skip drawing their weights."""
    return getattr(_deferred, "active", False)


def reserve_weights(count, owner):
    """Count ``count`` new weight values against the loader's budget (if any):
    ValueError, before anything is allocated, when the file cannot hold them."""
    budget = getattr(_deferred, "budget", None) if weights_deferred() else None
    if budget is None:
        return
    if count > budget:
        raise WeightBudgetError(f"the config declares more weights for {owner} than the file "
                         f"holds ({count} values more, {budget} left)")
    _deferred.budget = budget - count


def _snake_case(name):
    """Keras's rule: 'LSTM' -> 'lstm', 'LSTMCell' -> 'lstm_cell', 'Dense' -> 'dense'."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """'lstm', 'lstm_1', 'lstm_2', ... as Keras names layers."""
    with _NAME_LOCK:
        n = _NAME_COUNTS.get(base, 0)
        _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class SymbolicTensor:
    """The light symbolic output spec Keras shows as ``layer.output``."""

    def __init__(self, shape, dtype, name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self.ndim = len(self.shape)

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class Layer:
    """Base class of cylstm's Keras-style layers."""

    supports_masking = False

    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None,
                 batch_input_shape=None, input_dim=None, **kwargs):
        kwargs.pop("autocast", None)
        kwargs.pop("batch_size", None)
        input_length = kwargs.pop("input_length", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}.")
        self.name = name if name is not None else unique_name(_snake_case(type(self).__name__))
        self.dtype = standardize_dtype(dtype)
        self.trainable = bool(trainable)
        self.built = False
        self._params = {}
        self._trainable_names = []
        self._regularizers = {}
        self._constraints = {}
        self.grads = {}
        self._build_input_shape = None
        self._output_spec = None
        self.activity_regularizer = None
        # What the first layer of a Sequential model declares as its input.
        if batch_input_shape is not None:
            self._declared_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._declared_input_shape = (None,) + tuple(input_shape)
        elif input_dim is not None:
            self._declared_input_shape = ((None, input_length, input_dim)
                                          if input_length is not None else (None, input_dim))
        else:
            self._declared_input_shape = None

    # -- weights ---------------------------------------------------------
    def add_weight(self, name, shape, initializer="zeros", regularizer=None,
                   constraint=None, trainable=True):
        init = _initializers.get(initializer)
        if weights_deferred():
            # Building from a file: the weights will be read into these arrays,
            # so draw nothing (zeros from calloc touch no memory until written).
            shape = tuple(int(d) for d in shape)
            count = 1
            for d in shape:
                count *= d
            reserve_weights(count, f"layer {self.name!r}")
            value = np.zeros(shape, self.dtype)
        else:
            value = np.ascontiguousarray(init(tuple(shape), dtype=self.dtype), dtype=self.dtype)
        if value.shape != tuple(shape):
            raise ValueError(f"The initializer for weight `{name}` returned shape "
                             f"{value.shape}, expected {tuple(shape)}.")
        self._params[name] = value
        if trainable:
            self._trainable_names.append(name)
        if regularizer is not None:
            self._regularizers[name] = _regularizers.get(regularizer)
        if constraint is not None:
            self._constraints[name] = _constraints.get(constraint)
        self.grads[name] = np.zeros(value.shape, value.dtype)  # calloc: no pages touched
        return value

    def __getattr__(self, name):
        # Weights read as attributes: layer.kernel, layer.bias, ...
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def weights(self):
        return list(self._params.values())

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [self._params[n] for n in self._trainable_names]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [v for n, v in self._params.items() if n not in self._trainable_names]

    @property
    def variables(self):
        return self.weights

    def get_weights(self):
        return [w.copy() for w in self._params.values()]

    def _checked_weights(self, weights):
        """The arrays ``set_weights`` would write, all checked (count, dtype,
        shape) before any is written."""
        weights = list(weights)
        names = list(self._params)
        if len(weights) != len(names):
            raise ValueError(f"Layer {self.name!r} expects {len(names)} weight arrays "
                             f"({', '.join(names)}), got {len(weights)}.")
        values = []
        for name, value in zip(names, weights):
            value = np.asarray(getattr(value, "numpy", lambda: value)())
            target = self._params[name]
            if value.dtype.kind not in "biuf":
                raise TypeError(f"Weight `{name}` of layer {self.name!r} must hold real "
                                f"numbers; got an array of dtype {value.dtype}.")
            if value.shape != target.shape:
                raise ValueError(f"Weight `{name}` of layer {self.name!r} has shape "
                                 f"{target.shape}; got an array of shape {value.shape}.")
            values.append(value)
        return values

    def set_weights(self, weights):
        values = self._checked_weights(weights)
        for name, value in zip(self._params, values):   # all checked: now write
            np.copyto(self._params[name], value, casting="unsafe")
        self._weights_changed()

    def _weights_changed(self):
        """Hook for layers that keep derived copies of their weights."""

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, "
                             "but the layer isn't built. Call `build(input_shape)` first.")
        return int(sum(w.size for w in self._params.values()))

    def named_parameters(self):
        """(name, array, gradient) for every trainable weight, in order."""
        if not self.trainable:
            return []
        return [(n, self._params[n], self.grads[n]) for n in self._trainable_names]

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    # -- regularization and constraints -------------------------------------
    @property
    def losses(self):
        """Regularization penalties of the weights, as Keras's ``layer.losses``."""
        return [float(reg(self._params[n])) for n, reg in self._regularizers.items()]

    def regularization_loss(self):
        return float(sum(self.losses))

    def add_regularization_gradients(self):
        """Add the gradient of every weight penalty into ``self.grads``."""
        for n, reg in self._regularizers.items():
            g = reg.gradient(self._params[n]).astype(self.dtype, copy=False)
            with GRADIENT_LOCK:
                self.grads[n] += g

    def apply_constraints(self):
        """Project constrained weights in place (an optimizer step calls this)."""
        for n, con in self._constraints.items():
            np.copyto(self._params[n], con(self._params[n]), casting="unsafe")

    # -- building and calling ---------------------------------------------
    def build(self, input_shape):
        self._build_input_shape = tuple(input_shape)
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(tuple(input_shape))
            self._build_input_shape = (None,) + tuple(input_shape)[1:]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    def __call__(self, *args, **kwargs):
        return self.call(*args, **kwargs)

    @property
    def output(self):
        if self._output_spec is None:
            if self._build_input_shape is None:
                raise AttributeError(f"Layer {self.name!r} has never been called and thus "
                                     "has no defined output.")
            shape = self.compute_output_shape((None,) + tuple(self._build_input_shape)[1:])
            if isinstance(shape, list):
                return [SymbolicTensor(s, self.dtype, self.name) for s in shape]
            return SymbolicTensor(shape, self.dtype, self.name)
        return self._output_spec

    # -- config ----------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"
