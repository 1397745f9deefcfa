"""The Layer base class: weights, gradients, config, and the training contract.

Every layer with weights keeps them as arrays of its backend (NumPy on the
default ``"cpu"`` backend) in ``self._params`` (also reachable as attributes,
e.g. ``layer.kernel``) and their gradients in ``self.grads`` under the same
names. Optimizers update the arrays in place, so the kernels always see the
current values without copies.

A layer assigned to an attribute of another layer (``self.cell = LSTMCell(...)``)
is tracked, as in Keras: the outer layer's weights, gradients, penalties,
constraints and ``trainable`` flag include the sub-layer's (see
``Layer._sublayer_prefixes`` for how their names are keyed), and ``layer.to(name)``
moves them all.

The training contract (SPEC section 5): ``y, backprop = layer.forward_train(x)``;
``dx = backprop(dy)`` adds weight gradients into ``layer.grads``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import math
import re
import threading

import numpy as np

from .. import _pickling
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._threads import GRADIENT_LOCK
from ..backends import (Backend, backend_copy, backend_named, forced_backend, get_backend,
                        move_array, owning_backend)
from .._validation import standardize_dtype
from .._typing import Array, ArrayLike, Config, DTypeLike, IdentifierLike, ShapeLike

if TYPE_CHECKING:
    from typing_extensions import Self

_NAME_COUNTS: Dict[str, int] = {}
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


def unique_name(base: str) -> str:
    """'lstm', 'lstm_1', 'lstm_2', ... as Keras names layers."""
    with _NAME_LOCK:
        n = _NAME_COUNTS.get(base, 0)
        _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class SymbolicTensor:
    """The light symbolic output spec Keras shows as ``layer.output``.

    Parameters
    ----------
    shape : sequence of int or None
        The shape, None for unknown dimensions (the batch axis).
    dtype : str
        The dtype name.
    name : str, optional
        The name of the layer that produces it.
    """

    def __init__(self, shape: ShapeLike, dtype: Any, name: Optional[str] = None) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self.ndim = len(self.shape)

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def _backend_for_to(name):
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise TypeError(f"`backend` must be the name of a registered backend (a str); got "
                        f"{type(name).__name__}.")
    return backend_named(name)


# The per-layer dicts (and list) of weights that include the sub-layers' entries.
_TRACKED = ("_params", "grads", "_trainable_names", "_regularizers", "_constraints")
_TRACKED_SET = frozenset(_TRACKED)


class _Tracked:
    """The view of a per-layer dict (weights, gradients, ...) that includes the
    tracked sub-layers' entries.

    A layer without sub-layers keeps its own dicts in ``__dict__`` under these
    names, where attribute lookup finds them before this (non-data) descriptor:
    the common case costs nothing. When a layer tracks its first sub-layer its
    own dicts move to ``__dict__["_own"]``, and reading the name gives a
    combined view (a new dict or list each time) keyed as
    ``Layer._sublayer_prefixes`` says; a layer whose only content is one
    sub-layer under the prefix ``""`` (``LSTM`` and its cell) reads the
    sub-layer's own dict itself, so writes into it land there.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        d = obj.__dict__
        own = d.get("_own")
        if own is None:
            raise AttributeError(self.name)
        own = own[self.name]
        subs = d.get("_sublayers")
        if not subs:
            return own
        return obj._combined(self.name, own, subs)


class Layer:
    """Base class of cylstm's Keras-style layers.

    A layer holds its weights as NumPy arrays (``layer.weights``, also readable
    as attributes such as ``layer.kernel``) and their gradients in
    ``layer.grads`` under the same names. It is built on its first call (or by
    ``build``). ``layer(inputs, ...)`` runs ``call``; training uses
    ``y, backprop = layer.forward_train(inputs)``, where ``backprop(dy)`` adds
    the weight gradients into ``layer.grads`` and returns the gradient with
    respect to the inputs.

    Parameters
    ----------
    name : str, optional
        The layer's name; by default the class name in snake case with a
        counter, as Keras names layers (``lstm``, ``lstm_1``, ...).
    dtype : str or numpy dtype, optional
        The dtype of the weights and outputs: ``"float32"`` (default) or
        ``"float64"``. Keras's ``DTypePolicy`` dicts are accepted.
    trainable : bool, default True
        Whether training updates the weights.
    input_shape : tuple, optional
        The shape of one sample (without the batch axis); a ``Sequential``
        model that starts with this layer is built at once.
    batch_input_shape : tuple, optional
        The input shape with the batch axis.
    input_dim : int, optional
        The last axis of the input (with ``input_length``, the time axis).
    **kwargs
        ``input_length``; ``autocast`` and ``batch_size`` are accepted and
        ignored. Any other keyword raises ``TypeError``.
    """

    supports_masking = False
    # Whether forward_train takes ``input_gradient=False`` (skip dx: a
    # model's first layer, whose inputs are data).
    _input_gradient_optional = False

    # Own entries in __dict__; with sub-layers, combined views (see _Tracked).
    _params = _Tracked("_params")
    grads = _Tracked("grads")
    _trainable_names = _Tracked("_trainable_names")
    _regularizers = _Tracked("_regularizers")
    _constraints = _Tracked("_constraints")

    # How a tracked sub-layer's weights are keyed in the views: attribute name
    # -> prefix ("" keeps the sub-layer's names). Attributes not listed use
    # their own name as the prefix: "cell" -> "cell/kernel".
    _sublayer_prefixes: Mapping[str, str] = {}

    def __init__(self, name: Optional[str] = None, dtype: Optional[DTypeLike] = None,
                 trainable: bool = True, input_shape: Optional[ShapeLike] = None,
                 batch_input_shape: Optional[ShapeLike] = None,
                 input_dim: Optional[int] = None, **kwargs: Any) -> None:
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
    def add_weight(self, name: str, shape: ShapeLike, initializer: IdentifierLike = "zeros",
                   regularizer: IdentifierLike = None,
                   constraint: IdentifierLike = None, trainable: bool = True) -> Array:
        """Create a weight, with its gradient buffer, and register it.

        Parameters
        ----------
        name : str
            The weight's name (``layer.weights`` order is creation order).
        shape : tuple of int
            Its shape.
        initializer : str, dict, Initializer or callable, default "zeros"
            How to fill it (see :func:`cylstm.initializers.get`).
        regularizer : str, dict, Regularizer or None, optional
            A penalty added to ``layer.losses`` (see :func:`cylstm.regularizers.get`).
        constraint : str, dict, Constraint or None, optional
            A projection applied after every optimizer step.
        trainable : bool, default True
            Whether optimizers update it.

        Returns
        -------
        array
            The new weight, an array of the layer's backend (``layer.backend``;
            NumPy on ``"cpu"``): the layer's own array, updated in place by
            optimizers.

        Raises
        ------
        ValueError
            If the initializer returns another shape.
        """
        init = _initializers.get(initializer)
        backend = self.backend
        if weights_deferred():
            # Building from a file: the weights will be read into these arrays,
            # so draw nothing (zeros from calloc touch no memory until written).
            shape = tuple(int(d) for d in shape)
            count = 1
            for d in shape:
                count *= d
            reserve_weights(count, f"layer {self.name!r}")
            value = backend.zeros(shape, self.dtype)
        else:
            value = np.asarray(init(tuple(shape), dtype=self.dtype))
            if value.shape != tuple(shape):
                raise ValueError(f"The initializer for weight `{name}` returned shape "
                                 f"{value.shape}, expected {tuple(shape)}.")
            # Into the backend's own new array (the CPU backend's start on a
            # cache line: the kernels read weights in place).
            target = backend.zeros(value.shape, self.dtype)
            backend.copy_into(target, value)
            value = target
        own = self._own_dicts()
        own["_params"][name] = value
        if trainable:
            own["_trainable_names"].append(name)
        if regularizer is not None:
            own["_regularizers"][name] = _regularizers.get(regularizer)
        if constraint is not None:
            own["_constraints"][name] = _constraints.get(constraint)
        own["grads"][name] = backend.zeros(value.shape, value.dtype)  # calloc: no pages touched
        return value

    # -- backend ---------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The backend the layer's weights live on: the one ``to(name)`` named,
        else the default ``"cpu"`` (``use_backend`` chooses what runs a call,
        not where weights live)."""
        name = self.__dict__.get("_backend_name")
        return owning_backend() if name is None else backend_named(name)

    def _backend_for(self, *arrays: Any) -> Backend:
        """The backend a call on ``arrays`` runs on: the one ``use_backend``
        forces, else the one ``to(name)`` named, else the arrays' own
        (``get_backend``)."""
        name = self.__dict__.get("_backend_name")
        if name is None:
            return get_backend(*arrays)
        return forced_backend() or backend_named(name)

    def to(self, backend: str) -> Self:
        """Move the weights (and gradients, kept states and the tracked
        sub-layers') to the registered backend ``backend``, as torch's
        ``module.to(device)``; later builds create weights there too.

        Parameters
        ----------
        backend : str
            A registered backend name (``cylstm.backends.registered_backends()``):
            ``"cpu"``, ``"numpy"``, ``"array_api_strict"``, ...

        Returns
        -------
        Layer
            The layer itself.

        Raises
        ------
        ValueError
            For a name that is not registered.
        """
        target = _backend_for_to(backend)
        self.__dict__["_backend_name"] = target.name
        own = self._own_dicts()
        for kind in ("_params", "grads"):
            arrays = own[kind]
            for n in list(arrays):
                arrays[n] = move_array(arrays[n], target)
        self._moved(target)
        for layer in self.__dict__.get("_sublayers", {}).values():
            layer.to(target.name)
        return self

    def _moved(self, backend):
        """Hook: move what else the layer keeps (states, caches) to ``backend``."""

    # -- sub-layers ------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        # A layer assigned to an attribute is tracked (Keras's rule); assigning
        # anything else to that attribute stops tracking it.
        d = self.__dict__
        if isinstance(value, Layer):
            subs = d.get("_sublayers")
            if subs is None:
                subs = d["_sublayers"] = {}
            if "_own" not in d:   # from now on _params, grads, ... read as views (_Tracked)
                d["_own"] = {k: d.pop(k) for k in _TRACKED if k in d}
            subs[name] = value
        elif name in _TRACKED_SET and "_own" in d:
            d["_own"][name] = value    # a layer's own dict, behind its view
            return
        elif name == "trainable":
            # Keras's rule: freezing a wrapper freezes what it wraps.
            value = bool(value)
            for layer in d.get("_sublayers", {}).values():
                layer.trainable = value
        else:
            subs = d.get("_sublayers")
            if subs and name in subs:
                del subs[name]
        object.__setattr__(self, name, value)

    def _own_dicts(self):
        """The layer's own ``_params``, ``grads``, ... (without its sub-layers')."""
        d = self.__dict__
        own = d.get("_own")
        return d if own is None else own

    def __delattr__(self, name: str) -> None:
        subs = self.__dict__.get("_sublayers")
        if subs and name in subs:
            del subs[name]
        object.__delattr__(self, name)

    @property
    def sublayers(self) -> List["Layer"]:
        """The layers this layer tracks (assigned to its attributes), in
        assignment order; not recursive."""
        return list(self.__dict__.get("_sublayers", {}).values())

    def _prefixed_sublayers(self):
        prefixes = self._sublayer_prefixes
        return [(prefixes.get(attr, attr), layer)
                for attr, layer in self.__dict__.get("_sublayers", {}).items()]

    def _combined(self, kind, own, subs):
        """The view ``_Tracked`` returns for a layer with sub-layers."""
        parts = self._prefixed_sublayers()
        if not own and len(parts) == 1 and parts[0][0] == "":
            return getattr(parts[0][1], kind)   # a pure wrapper: the sub-layer's own dict
        if isinstance(own, list):
            names = list(own)
            for prefix, layer in parts:
                names += [f"{prefix}/{n}" if prefix else n for n in getattr(layer, kind)]
            return names
        out = dict(own)
        for prefix, layer in parts:
            out.update((f"{prefix}/{k}" if prefix else k, v)
                       for k, v in getattr(layer, kind).items())
        return out

    def __getattr__(self, name: str) -> Array:
        # Weights read as attributes: layer.kernel, layer.bias, ... (a wrapper's
        # too: LSTM(...).kernel is its cell's).
        d = self.__dict__
        params = d.get("_params")
        if params is not None and name in params:
            return params[name]
        if "_own" in d and name not in _TRACKED_SET:
            params = self._params
            if name in params:
                return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def weights(self) -> List[Array]:
        """All weight arrays: the layer's own in creation order, then each
        tracked sub-layer's (the layers' own arrays, not copies)."""
        out = list(self._own_dicts()["_params"].values())
        for layer in self.__dict__.get("_sublayers", {}).values():
            out += layer.weights
        return out

    @property
    def trainable_weights(self) -> List[Array]:
        """The weights optimizers update (none when ``trainable`` is False)."""
        if not self.trainable:
            return []
        own = self._own_dicts()
        params = own["_params"]
        out = [params[n] for n in own["_trainable_names"]]
        for layer in self.__dict__.get("_sublayers", {}).values():
            out += layer.trainable_weights
        return out

    @property
    def non_trainable_weights(self) -> List[Array]:
        """The weights optimizers do not update."""
        if not self.trainable:
            return self.weights
        own = self._own_dicts()
        names = own["_trainable_names"]
        out = [v for n, v in own["_params"].items() if n not in names]
        for layer in self.__dict__.get("_sublayers", {}).values():
            out += layer.non_trainable_weights
        return out

    @property
    def variables(self) -> List[Array]:
        """The same list as ``weights`` (Keras's name)."""
        return self.weights

    def get_weights(self) -> List[Array]:
        """Copies of the weights, in ``weights`` order (Keras's list and shapes).

        Returns
        -------
        list of numpy.ndarray
            NumPy copies (whatever the layer's backend); changing them does
            not change the layer.
        """
        return [np.array(owning_backend(w).to_numpy(w), copy=True) for w in self.weights]

    def _checked_weights(self, weights):
        """The arrays ``set_weights`` would write, all checked (count, dtype,
        shape) before any is written."""
        weights = list(weights)
        params = self._params
        names = list(params)
        if len(weights) != len(names):
            raise ValueError(f"Layer {self.name!r} expects {len(names)} weight arrays "
                             f"({', '.join(names)}), got {len(weights)}.")
        values = []
        for name, value in zip(names, weights):
            value = np.asarray(getattr(value, "numpy", lambda: value)())
            target = params[name]
            if value.dtype.kind not in "biuf":
                raise TypeError(f"Weight `{name}` of layer {self.name!r} must hold real "
                                f"numbers; got an array of dtype {value.dtype}.")
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"Weight `{name}` of layer {self.name!r} has shape "
                                 f"{tuple(target.shape)}; got an array of shape "
                                 f"{value.shape}.")
            values.append(value)
        return values

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Copy values into the weights, in ``get_weights`` order.

        Parameters
        ----------
        weights : iterable of array_like
            One array per weight, of the weight's shape (cast to the layer's
            dtype). Keras or torch tensors are accepted (anything with
            ``.numpy()`` or convertible by ``numpy.asarray``).

        Raises
        ------
        ValueError
            If the number of arrays or a shape differs.
        TypeError
            If an array does not hold real numbers (complex, strings, objects).
        """
        values = self._checked_weights(weights)
        for target, value in zip(self._params.values(), values):   # all checked: now write
            owning_backend(target).copy_into(target, value)
        self._notify_weights_changed()

    def _notify_weights_changed(self):
        self._weights_changed()
        for layer in self.__dict__.get("_sublayers", {}).values():
            layer._notify_weights_changed()

    def _weights_changed(self):
        """Hook for layers that keep derived copies of their weights."""

    def count_params(self) -> int:
        """The number of weight values.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            If the layer is not built yet.
        """
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, "
                             "but the layer isn't built. Call `build(input_shape)` first.")
        return int(sum(math.prod(w.shape) for w in self.weights))

    def named_parameters(self) -> List[Tuple[str, Array, Array]]:
        """(name, array, gradient) for every trainable weight, in order (a
        sub-layer's names with its prefix, as in ``grads``)."""
        if not self.trainable:
            return []
        d = self.__dict__
        subs = d.get("_sublayers")
        own = d.get("_own", d)
        names = own["_trainable_names"]
        if not subs:
            params, grads = own["_params"], own["grads"]
            return [(n, params[n], grads[n]) for n in names]
        if not names and len(subs) == 1:
            (attr, layer), = subs.items()
            if self._sublayer_prefixes.get(attr, attr) == "":
                return layer.named_parameters()    # a pure wrapper (LSTM): its cell's
        params, grads = own["_params"], own["grads"]
        out = [(n, params[n], grads[n]) for n in names]
        for prefix, layer in self._prefixed_sublayers():
            inner = layer.named_parameters()
            out += inner if not prefix else [(f"{prefix}/{n}", v, g) for n, v, g in inner]
        return out

    def zero_grad(self) -> None:
        """Set every gradient in ``layer.grads`` to zero (in place)."""
        for g in self._own_dicts()["grads"].values():
            g[...] = 0
        for layer in self.__dict__.get("_sublayers", {}).values():
            layer.zero_grad()

    # -- regularization and constraints -------------------------------------
    @property
    def losses(self) -> List[float]:
        """Regularization penalties of the weights, as Keras's ``layer.losses``
        (the tracked sub-layers' after the layer's own)."""
        own = self._own_dicts()
        params = own["_params"]
        out = [float(reg(params[n])) for n, reg in own["_regularizers"].items()]
        for layer in self.__dict__.get("_sublayers", {}).values():
            out += layer.losses
        return out

    def regularization_loss(self) -> float:
        """The sum of ``layer.losses``.

        Returns
        -------
        float
        """
        return float(sum(self.losses))

    def add_regularization_gradients(self) -> None:
        """Add the gradient of every weight penalty into ``self.grads``."""
        own = self._own_dicts()
        params, grads = own["_params"], own["grads"]
        for n, reg in own["_regularizers"].items():
            g = reg.gradient(params[n]).astype(self.dtype, copy=False)
            with GRADIENT_LOCK:
                grads[n] += g
        for layer in self.__dict__.get("_sublayers", {}).values():
            layer.add_regularization_gradients()

    def apply_constraints(self) -> None:
        """Project constrained weights in place (an optimizer step calls this)."""
        own = self._own_dicts()
        params = own["_params"]
        for n, con in own["_constraints"].items():
            owning_backend(params[n]).copy_into(params[n], con(params[n]))
        for layer in self.__dict__.get("_sublayers", {}).values():
            layer.apply_constraints()

    # -- building and calling ---------------------------------------------
    def build(self, input_shape: ShapeLike) -> None:
        """Create the weights for inputs of shape ``input_shape``.

        Called by the first call; call it directly to build a layer before use.

        Parameters
        ----------
        input_shape : tuple
            The input shape with the batch axis (None for unknown dimensions).
        """
        self._build_input_shape = tuple(input_shape)
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(tuple(input_shape))
            self._build_input_shape = (None,) + tuple(input_shape)[1:]

    def compute_output_shape(self, input_shape: ShapeLike) -> Any:
        """The output shape for inputs of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple
            The input shape with the batch axis (None for unknown dimensions).

        Returns
        -------
        tuple or list of tuple
            The output shape; a list of shapes for layers that return several
            arrays (``return_state=True``).
        """
        return tuple(input_shape)

    def compute_mask(self, inputs: Any, mask: Optional[ArrayLike] = None) -> Any:
        """The mask of this layer's output, as Keras propagates masks.

        Parameters
        ----------
        inputs : array_like
            The layer's inputs.
        mask : array_like of bool, optional
            The incoming mask.

        Returns
        -------
        numpy.ndarray, list or None
            The incoming mask for layers that support masking, else None.
        """
        return mask if self.supports_masking else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the layer: ``layer(inputs, ...)`` runs ``call`` with the same arguments.

        The layer is built on the first call. See ``call`` of each layer for its
        arguments and what it returns.
        """
        return self.call(*args, **kwargs)

    @property
    def output(self) -> Union[SymbolicTensor, List[SymbolicTensor]]:
        """The symbolic output (shape and dtype) of the last build, as Keras's
        ``layer.output``; a list of them for several outputs.
        """
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
    def get_config(self) -> Config:
        """The layer's configuration, a JSON-serialisable dict (Keras's keys).

        Returns
        -------
        dict
            ``type(layer).from_config(config)`` makes an equal, unbuilt layer.
        """
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A layer from the dict ``get_config`` returned.

        Parameters
        ----------
        config : dict
            The configuration (Keras's keys).

        Returns
        -------
        Layer
            A new, unbuilt layer of this class.
        """
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    # -- pickling (for shipping to workers; see cylstm/_pickling.py) -------
    def __getstate__(self):
        state = _pickling.without_scratch(self.__dict__)
        own = state.get("_own")
        holder = state if own is None else dict(own)   # (a copy: the live dicts stay)
        grads = holder.get("grads")
        if isinstance(grads, dict) and _pickling.all_zero(grads.values()):
            holder["grads"] = None
        if own is not None:
            state["_own"] = holder
        return state

    def __setstate__(self, state):
        state = _pickling.rebuild_scratch(state)
        holder = state.get("_own") or state
        for kind in ("_params", "grads"):
            arrays = holder.get(kind)
            if arrays:
                # Into arrays of the backend's making, as add_weight's (see backend_copy).
                for n, v in list(arrays.items()):
                    arrays[n] = backend_copy(v)
        if "grads" in holder and holder["grads"] is None:
            holder["grads"] = {n: owning_backend(v).zeros(v.shape, v.dtype)
                               for n, v in holder["_params"].items()}
        self.__dict__.update(state)
