"""Keras-style LSTM: ``LSTMCell`` (weights + one step) and ``LSTM`` (the sequence layer).

Both run on the backend of their arrays (``cylstm.backends.get_backend``: the
compiled kernels for NumPy arrays), or the one ``layer.to(name)`` moved them to;
``LSTM`` tracks its cell as a sub-layer (its weights and gradients are the
cell's). This file holds only Keras semantics (arguments, shapes, states, masks,
dropout, config).
Choices where Keras is silent or cannot apply, also in docs/semantics.md:
- inputs of any real dtype are cast to the layer's dtype (float32 default);
- an empty batch returns empty outputs; zero timesteps raise ValueError;
- ``unroll`` is accepted and changes nothing (the loop is compiled);
- ``use_cudnn=True`` raises, as Keras does when cuDNN cannot be used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Tuple, Union

import numpy as np

from .. import activations as _activations
from ..backends import LSTMGrads, LSTMProblem, forced_backend, get_backend, move_array
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._call_plan import LayerCallPlan
from .._threads import GRADIENT_LOCK
from .._validation import (as_float_array, check_bool, check_fraction, check_mask,
                           check_input_sizes, check_positive_int, check_weight_sizes)
from .base import Layer
from .._typing import (ActivationLike, Array, ArrayLike, Config, IdentifierLike, LayerOutput,
                       ShapeLike, StatesLike)

if TYPE_CHECKING:
    from typing_extensions import Self


def _dtype_policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


class _DropoutMasks:
    """Keras 3's LSTM dropout masks (``DropoutRNNCell`` with ``LSTMCell``).

    Drawn once per call, constant over time, scaled by 1 / (1 - rate), and
    only for 0 < rate < 1 (Keras applies no dropout at rate 1). With
    ``recurrent_dropout == 0`` the cell uses Keras's fused implementation: one
    input mask (batch, features) shared by the four gates. Any other
    ``recurrent_dropout`` switches Keras's cell to implementation 1
    (``dropout_mask_count = 4``): a separate input mask per gate
    (4, batch, features) and a separate recurrent mask per gate
    (4, batch, units), gates in the order i, f, c, o.
    """

    def __init__(self, seed: Optional[int]) -> None:
        self.rng = np.random.default_rng(seed)

    def draw(self, rate: float, shape, dtype):
        if not 0 < rate < 1:
            return None
        keep = self.rng.random(shape) >= rate
        return (keep / (1 - rate)).astype(dtype)

    def for_call(self, dropout: float, recurrent_dropout: float, batch, features, units: int,
                 dtype):
        """(shared input mask, per-gate input masks, recurrent mask) of one call;
        each None when not used. The input masks come first, as Keras draws them."""
        if recurrent_dropout == 0:
            return self.draw(dropout, (batch, features), dtype), None, None
        gates = self.draw(dropout, (4, batch, features), dtype)
        return None, gates, self.draw(recurrent_dropout, (4, batch, units), dtype)


class LSTMCell(Layer):
    """One LSTM step with Keras's weights: ``h, [h, c] = cell(x_t, [h, c])``.

    The weights are Keras's: ``kernel`` (features, 4*units),
    ``recurrent_kernel`` (units, 4*units), ``bias`` (4*units,), gates in the
    order i, f, c, o.

    Parameters
    ----------
    units : int
        Positive: the size of the hidden and cell states (and of the output).
    activation : str, callable or None, default "tanh"
        The cell-input and output activation. Names run in C (``tanh``,
        ``sigmoid``, ``hard_sigmoid``, ``relu``, ``linear``/None, ``softsign``,
        ``elu``, ``selu``, ``gelu``, ``swish``/``silu``); a Python callable
        runs on the NumPy twin of the kernel (slower, no gradient).
    recurrent_activation : str, callable or None, default "sigmoid"
        The gate activation (same choices).
    use_bias : bool, default True
        Whether the layer has a bias.
    kernel_initializer : str, dict, Initializer or callable, default "glorot_uniform"
        Initializer of ``kernel`` (see :func:`cylstm.initializers.get`).
    recurrent_initializer : str, dict, Initializer or callable, default "orthogonal"
        Initializer of ``recurrent_kernel``.
    bias_initializer : str, dict, Initializer or callable, default "zeros"
        Initializer of ``bias``.
    unit_forget_bias : bool, default True
        Add 1 to the forget gate's bias at initialization (Keras's default).
    kernel_regularizer, recurrent_regularizer, bias_regularizer : str, dict, Regularizer or None
        Weight penalties (see :func:`cylstm.regularizers.get`).
    kernel_constraint, recurrent_constraint, bias_constraint : str, dict, Constraint or None
        Projections applied after every optimizer step (see
        :func:`cylstm.constraints.get`).
    dropout : float, default 0.0
        Fraction of the inputs dropped, in [0, 1]; acts only with ``training=True``.
    recurrent_dropout : float, default 0.0
        Fraction of the recurrent state dropped, in [0, 1]; acts only with
        ``training=True``. The masks are drawn as Keras 3 draws them (one per
        call, constant over time; per gate when ``recurrent_dropout > 0``).
    seed : int, optional
        Seed of the dropout masks (reproducible calls).
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer` (``name``, ``dtype``, ...);
        ``implementation`` is accepted and ignored.
    """

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, inputs: ArrayLike, states: Optional[StatesLike] = None,
                     training: bool = False) -> Tuple[Array, List[Array]]: ...

    def __init__(self, units: int, activation: ActivationLike = "tanh",
                 recurrent_activation: ActivationLike = "sigmoid",
                 use_bias: bool = True, kernel_initializer: IdentifierLike = "glorot_uniform",
                 recurrent_initializer: IdentifierLike = "orthogonal",
                 bias_initializer: IdentifierLike = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: IdentifierLike = None,
                 recurrent_regularizer: IdentifierLike = None,
                 bias_regularizer: IdentifierLike = None,
                 kernel_constraint: IdentifierLike = None,
                 recurrent_constraint: IdentifierLike = None,
                 bias_constraint: IdentifierLike = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.activation = _activations.get(activation)
        self.recurrent_activation = _activations.get(recurrent_activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.unit_forget_bias = check_bool(unit_forget_bias, "unit_forget_bias")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)
        self.recurrent_constraint = _constraints.get(recurrent_constraint)
        self.bias_constraint = _constraints.get(bias_constraint)
        self.dropout = check_fraction(dropout, "dropout")
        self.recurrent_dropout = check_fraction(recurrent_dropout, "recurrent_dropout")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"Received an invalid value for argument `seed`, expected an "
                             f"integer or None, got {seed!r}.")
        self.seed = seed
        self.state_size = [self.units, self.units]
        self.output_size = self.units
        self._dropout_masks = _DropoutMasks(seed)
        self._workspace = get_backend().workspace()
        self._stepper = None
        self._stepper_forced = None

    def build(self, input_shape: ShapeLike) -> None:
        """Create ``kernel``, ``recurrent_kernel`` and ``bias`` for inputs of shape
        ``input_shape`` (its last axis is the number of features).

        Parameters
        ----------
        input_shape : tuple
            The input shape; its last dimension must be known.

        Raises
        ------
        ValueError
            If the last dimension is None or not a positive integer.
        """
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"The last dimension of the inputs to {self.name!r} must be "
                             f"known; got input_shape={tuple(input_shape)}.")
        input_dim = check_positive_int(input_dim, "input_shape[-1]")
        u = self.units
        check_weight_sizes(input_dim, u, u, self.name)
        self._stepper = None   # a rebuilt cell has new weight arrays
        self.add_weight("kernel", (input_dim, 4 * u), self.kernel_initializer,
                        self.kernel_regularizer, self.kernel_constraint)
        self.add_weight("recurrent_kernel", (u, 4 * u), self.recurrent_initializer,
                        self.recurrent_regularizer, self.recurrent_constraint)
        if self.use_bias:
            if self.unit_forget_bias:
                base = self.bias_initializer

                def bias_init(shape, dtype="float32"):
                    return np.concatenate([base((u,), dtype=dtype), np.ones(u, dtype),
                                           base((2 * u,), dtype=dtype)])
            else:
                bias_init = self.bias_initializer
            self.add_weight("bias", (4 * u,), bias_init, self.bias_regularizer,
                            self.bias_constraint)
        super().build(input_shape)

    @property
    def input_dim(self) -> Optional[int]:
        """The input features the cell was built for (None before it is built)."""
        return self._params["kernel"].shape[0] if self.built else None

    def get_initial_state(self, batch_size: Optional[int] = None) -> List[Array]:
        """Zero states ``[h, c]``.

        Parameters
        ----------
        batch_size : int
            The number of rows.

        Returns
        -------
        list of numpy.ndarray
            ``[h, c]``, each (batch_size, units), in the layer's dtype.
        """
        return [np.zeros((batch_size, d), self.dtype) for d in self.state_size]

    def _check_states(self, states, batch, argument="states"):
        if states is None:
            return self.get_initial_state(batch)
        if not isinstance(states, (list, tuple)) or len(states) != 2:
            got = (f"a {type(states).__name__} of length {len(states)}"
                   if isinstance(states, (list, tuple)) else type(states).__name__)
            raise ValueError(f"`{argument}` of {self.name!r} must be a list [h, c] of two "
                             f"arrays of shape ({batch}, {self.units}); got {got}.")
        out = []
        for k, (label, s) in enumerate(zip(("h", "c"), states)):
            s = as_float_array(s, self.dtype, f"{argument}[{k}]")
            if s.shape != (batch, self.units):
                raise ValueError(f"`{argument}[{k}]` (state {label}) of {self.name!r} must "
                                 f"have shape ({batch}, {self.units}); got {s.shape}.")
            out.append(s)
        return out

    def _check_input_2d(self, inputs):
        check_input_sizes(inputs, self.units)
        x = as_float_array(inputs, self.dtype)
        if x.ndim != 2:
            raise ValueError(f"Input of {self.name!r} must be 2-D (batch, features); "
                             f"got shape {x.shape}.")
        self._maybe_build(x.shape)
        if x.shape[1] != self.input_dim:
            raise ValueError(f"Input of {self.name!r} must have {self.input_dim} features "
                             f"(last axis); got shape {x.shape}.")
        return x

    # The use_backend in force when the cached stepper was made: a stepper is
    # used only under the same one (a C-level check on the streaming path).
    _stepper_forced = None

    def _stepper_for(self, batch):
        """The backend's streaming stepper for this batch size (see ``Backend.stepper``),
        made again when the batch size or the backend in force changes."""
        k = self._stepper
        forced = forced_backend()
        if k is None or k.batch != batch or forced is not self._stepper_forced:
            kernel = self._params["kernel"]
            backend = self._backend_for(kernel)
            bias = (self._params["bias"] if self.use_bias
                    else backend.zeros((4 * self.units,), self.dtype))
            k = backend.stepper(kernel, self._params["recurrent_kernel"], bias, None,
                                self.activation, self.recurrent_activation, batch)
            self._stepper = k
            self._stepper_forced = forced
        return k

    def _moved(self, backend):
        self._stepper = None    # packed from the old arrays

    def call(self, inputs: ArrayLike, states: Optional[StatesLike] = None,
             training: bool = False) -> Tuple[Array, List[Array]]:
        """One timestep.

        Parameters
        ----------
        inputs : array_like
            (batch, features), cast to the layer's dtype.
        states : sequence of two array_like, optional
            ``[h, c]``, each (batch, units); zeros when omitted.
        training : bool, default False
            Apply dropout (when ``dropout`` or ``recurrent_dropout`` is set).

        Returns
        -------
        h : numpy.ndarray
            The output, (batch, units).
        states : list of numpy.ndarray
            ``[h, c]``, the new states (new arrays; the inputs are not modified).
        """
        dropping = training and (self.dropout > 0 or self.recurrent_dropout > 0)
        k = self._stepper
        if k is not None and not dropping and type(states) in (list, tuple) \
                and len(states) == 2 and forced_backend() is self._stepper_forced:
            # Streaming fast path: C-level checks only.
            out = k.step(inputs, states[0], states[1])
            if out is not None:
                return out[0], [out[0], out[1]]
        x = self._check_input_2d(inputs)
        h0, c0 = self._check_states(states, x.shape[0])
        if not dropping:
            k = self._stepper_for(x.shape[0])
            out = k.step(np.ascontiguousarray(x), np.ascontiguousarray(h0),
                         np.ascontiguousarray(c0))
            if out is not None:    # None: another backend's stepper (its arrays below)
                h, c = out
                return h, [h, c]
        dmask = gate_masks = rec_mask = None
        if dropping:
            dmask, gate_masks, rec_mask = self._draw_dropout(x.shape[0], x.shape[1])
            if dmask is not None:
                x = x * dmask
        (_, h, h, c), _ = self._backend_for(x).lstm_forward(LSTMProblem(
            x[None], self.kernel, self.recurrent_kernel, self._bias_or_none(), h0, c0,
            recurrent_mask=rec_mask, input_mask=gate_masks, activation=self.activation,
            recurrent_activation=self.recurrent_activation, time_major=True,
            return_sequences=False, workspace=self._workspace))
        return h, [h, c]

    def forward_train(self, inputs: ArrayLike,
                      states: Optional[StatesLike] = None) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward of one step: ``((h, [h, c]), backprop)``.

        Dropout acts (training mode). ``backprop((d_h_out, [d_h, d_c]))``, where
        ``d_h_out`` is the gradient with respect to the output ``h`` and
        ``d_h``/``d_c`` those with respect to the returned states (entries may be
        None), adds the weight gradients into ``cell.grads`` and returns
        ``(dx, [dh0, dc0])``.

        Parameters
        ----------
        inputs : array_like
            (batch, features).
        states : sequence of two array_like, optional
            ``[h, c]``; zeros when omitted.

        Returns
        -------
        outputs : tuple
            ``(h, [h, c])`` as ``call`` returns them.
        backprop : callable
            The backward function, to be called once.
        """
        x = self._check_input_2d(inputs)
        h0, c0 = self._check_states(states, x.shape[0])
        dmask, gate_masks, rec_mask = self._draw_dropout(x.shape[0], x.shape[1])
        xd = x if dmask is None else x * dmask
        (_, h, h, c), cache = self._backend_for(x).lstm_forward(LSTMProblem(
            xd[None], self.kernel, self.recurrent_kernel, self._bias_or_none(), h0, c0,
            recurrent_mask=rec_mask, input_mask=gate_masks, activation=self.activation,
            recurrent_activation=self.recurrent_activation, time_major=True,
            return_sequences=False, training=True))

        def backprop(dy):
            d_out, (d_h, d_c) = dy
            d_h = _sum_grads(d_out, d_h)
            g = cache.backend.lstm_backward(cache, LSTMGrads(d_h=d_h, d_c=d_c))
            self._accumulate(g)
            dx = g["dx"][0]
            if dmask is not None:
                dx = dx * dmask
            return dx, [g["dh0"], g["dc0"]]

        return (h, [h, c]), backprop

    def _draw_dropout(self, batch, features):
        return self._dropout_masks.for_call(self.dropout, self.recurrent_dropout, batch,
                                            features, self.units, self.dtype)

    def _bias_or_none(self):
        return self._params["bias"] if self.use_bias else None

    def _accumulate(self, g):
        if not self.trainable:
            return
        with GRADIENT_LOCK:   # threads training one layer add up, none lost
            self.grads["kernel"] += g["kernel"]
            self.grads["recurrent_kernel"] += g["recurrent_kernel"]
            if self.use_bias:
                self.grads["bias"] += g["bias"]

    def get_config(self) -> Config:
        """The cell's configuration (Keras's keys and serialised objects)."""
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": _dtype_policy(self.dtype),
            "units": self.units,
            "activation": _activations.serialize(self.activation),
            "recurrent_activation": _activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": _regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": _constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": _constraints.serialize(self.recurrent_constraint),
            "bias_constraint": _constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return config


def _sum_grads(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.asarray(a) + np.asarray(b)


# Arguments of keras.layers.LSTM that belong to its cell.
_CELL_ARGS = (
    "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
    "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "seed",
)


class LSTM(Layer):
    """Long Short-Term Memory layer with every argument of ``keras.layers.LSTM``.

    ``layer(inputs, initial_state=None, mask=None, training=False)`` with
    inputs (batch, timesteps, features), or (timesteps, batch, features) when
    ``time_major``. It returns the last output (batch, units), the whole
    sequence with ``return_sequences``, and ``[output, h, c]`` with
    ``return_state``. The time loop runs in C with the GIL released.
    Weights, as Keras's: ``kernel`` (features, 4*units), ``recurrent_kernel``
    (units, 4*units), ``bias`` (4*units,), gates in the order i, f, c, o, so
    ``layer.set_weights(keras_layer.get_weights())`` gives Keras's outputs.

    Parameters
    ----------
    units : int
        Positive: the size of the hidden and cell states (and of the output).
    activation : str, callable or None, default "tanh"
        The cell-input and output activation. Names run in C (``tanh``,
        ``sigmoid``, ``hard_sigmoid``, ``relu``, ``linear``/None, ``softsign``,
        ``elu``, ``selu``, ``gelu``, ``swish``/``silu``); a Python callable
        runs on the NumPy twin of the kernel (slower, no gradient).
    recurrent_activation : str, callable or None, default "sigmoid"
        The gate activation (same choices).
    use_bias : bool, default True
        Whether the layer has a bias.
    kernel_initializer : str, dict, Initializer or callable, default "glorot_uniform"
        Initializer of ``kernel`` (see :func:`cylstm.initializers.get`).
    recurrent_initializer : str, dict, Initializer or callable, default "orthogonal"
        Initializer of ``recurrent_kernel``.
    bias_initializer : str, dict, Initializer or callable, default "zeros"
        Initializer of ``bias``.
    unit_forget_bias : bool, default True
        Add 1 to the forget gate's bias at initialization (Keras's default).
    kernel_regularizer, recurrent_regularizer, bias_regularizer : str, dict, Regularizer or None
        Weight penalties (see :func:`cylstm.regularizers.get`).
    kernel_constraint, recurrent_constraint, bias_constraint : str, dict, Constraint or None
        Projections applied after every optimizer step (see
        :func:`cylstm.constraints.get`).
    dropout : float, default 0.0
        Fraction of the inputs dropped, in [0, 1]; acts only with ``training=True``.
    recurrent_dropout : float, default 0.0
        Fraction of the recurrent state dropped, in [0, 1]; acts only with
        ``training=True``. The masks are drawn as Keras 3 draws them (one per
        call, constant over time; per gate when ``recurrent_dropout > 0``).
    seed : int, optional
        Seed of the dropout masks (reproducible calls).
    activity_regularizer : str, dict, Regularizer or None
        A penalty on the output, added to ``layer.losses`` (divided by the
        batch size, as Keras 3).
    return_sequences : bool, default False
        Return the output of every step, not only the last.
    return_state : bool, default False
        Also return the final states: ``[output, h, c]``.
    go_backwards : bool, default False
        Process the sequence in reverse; the returned sequence is in processing
        (reversed) order, as Keras.
    stateful : bool, default False
        Keep the final states of a call as the initial states of the next
        (``reset_state()`` zeroes them); a call with another batch size raises
        ``ValueError``.
    unroll : bool, default False
        Accepted; changes nothing (the loop is compiled).
    use_cudnn : bool or "auto", default "auto"
        ``True`` raises ``ValueError`` (no GPU path in this build).
    time_major : bool, default False
        Inputs and sequence outputs are (timesteps, batch, features).
    zero_output_for_mask : bool, default False
        With a mask and ``return_sequences``, masked steps output zeros
        instead of repeating the previous output.
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer` (``name``, ``dtype``,
        ``trainable``, ``input_shape``, ...).

    Attributes
    ----------
    cell : LSTMCell
        The cell holding the weights; the cell arguments (``units``,
        ``activation``, ``dropout``, ...) are read-only properties of the
        layer as in Keras.
    states : list of numpy.ndarray or None
        The kept ``[h, c]`` of a stateful layer.
    grads : dict of numpy.ndarray
        The gradients ``backprop`` adds into, under the weights' names.

    Examples
    --------
    >>> import numpy as np, cylstm
    >>> inputs = np.random.random((32, 10, 8)).astype("float32")
    >>> cylstm.layers.LSTM(4)(inputs).shape
    (32, 4)
    >>> lstm = cylstm.layers.LSTM(4, return_sequences=True, return_state=True)
    >>> [a.shape for a in lstm(inputs)]
    [(32, 10, 4), (32, 4), (32, 4)]
    """

    supports_masking = True
    _input_gradient_optional = True

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, inputs: ArrayLike, initial_state: Optional[StatesLike] = None,
                     mask: Optional[ArrayLike] = None, training: bool = False) -> LayerOutput: ...

    def __init__(self, units: int, activation: ActivationLike = "tanh",
                 recurrent_activation: ActivationLike = "sigmoid",
                 use_bias: bool = True, kernel_initializer: IdentifierLike = "glorot_uniform",
                 recurrent_initializer: IdentifierLike = "orthogonal",
                 bias_initializer: IdentifierLike = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: IdentifierLike = None,
                 recurrent_regularizer: IdentifierLike = None,
                 bias_regularizer: IdentifierLike = None,
                 activity_regularizer: IdentifierLike = None,
                 kernel_constraint: IdentifierLike = None,
                 recurrent_constraint: IdentifierLike = None,
                 bias_constraint: IdentifierLike = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: Optional[int] = None,
                 return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False,
                 use_cudnn: Union[bool, str] = "auto", time_major: bool = False,
                 zero_output_for_mask: bool = False, **kwargs: Any) -> None:
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        self.cell = LSTMCell(
            units, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, dtype=self.dtype,
            trainable=self.trainable, name="lstm_cell")
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self.return_sequences = check_bool(return_sequences, "return_sequences")
        self.return_state = check_bool(return_state, "return_state")
        self.go_backwards = check_bool(go_backwards, "go_backwards")
        self.stateful = check_bool(stateful, "stateful")
        self.unroll = check_bool(unroll, "unroll")
        self.time_major = check_bool(time_major, "time_major")
        self.zero_output_for_mask = check_bool(zero_output_for_mask, "zero_output_for_mask")
        if use_cudnn not in ("auto", True, False):
            raise ValueError("Invalid value received for argument `use_cudnn`. Expected one "
                             f"of {{'auto', True, False}}. Received: use_cudnn={use_cudnn!r}")
        self.use_cudnn = use_cudnn
        self.states = None
        self._activity_loss = 0.0
        self._workspace = get_backend().workspace()
        self._zero_states = None
        self._call_plan = None

    # The cell is a tracked sub-layer whose weights are the layer's under their
    # own names (layer.grads is cell.grads, Keras's weight list and order).
    _sublayer_prefixes = {"cell": ""}

    # Cell arguments read through the layer, as Keras's LSTM properties.
    units = property(lambda self: self.cell.units)
    activation = property(lambda self: self.cell.activation)
    recurrent_activation = property(lambda self: self.cell.recurrent_activation)
    use_bias = property(lambda self: self.cell.use_bias)
    unit_forget_bias = property(lambda self: self.cell.unit_forget_bias)
    kernel_initializer = property(lambda self: self.cell.kernel_initializer)
    recurrent_initializer = property(lambda self: self.cell.recurrent_initializer)
    bias_initializer = property(lambda self: self.cell.bias_initializer)
    kernel_regularizer = property(lambda self: self.cell.kernel_regularizer)
    recurrent_regularizer = property(lambda self: self.cell.recurrent_regularizer)
    bias_regularizer = property(lambda self: self.cell.bias_regularizer)
    kernel_constraint = property(lambda self: self.cell.kernel_constraint)
    recurrent_constraint = property(lambda self: self.cell.recurrent_constraint)
    bias_constraint = property(lambda self: self.cell.bias_constraint)
    dropout = property(lambda self: self.cell.dropout)
    recurrent_dropout = property(lambda self: self.cell.recurrent_dropout)
    seed = property(lambda self: self.cell.seed)

    @property
    def state_size(self) -> List[int]:
        """``[units, units]``: the sizes of h and c."""
        return self.cell.state_size

    # -- building ----------------------------------------------------------
    def build(self, input_shape: ShapeLike) -> None:
        """Create the weights for inputs of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple
            (batch, timesteps, features), or (timesteps, batch, features) with
            ``time_major``; features must be known.

        Raises
        ------
        ValueError
            If the shape is not 3-D or features is unknown.
        """
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"Input of {self.name!r} must be 3-D "
                             f"({'timesteps, batch' if self.time_major else 'batch, timesteps'}"
                             f", features); got input_shape={input_shape}.")
        if self.cell.built:
            # Built by step() (or by hand): keep its weights, as Keras does.
            if input_shape[-1] is not None and input_shape[-1] != self.cell.input_dim:
                raise ValueError(f"Input of {self.name!r} must have {self.cell.input_dim} "
                                 f"features (last axis), as the layer was built with; got "
                                 f"input_shape={input_shape}.")
        else:
            self.cell.build(input_shape)
        self._build_input_shape = input_shape
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Any:
        """The output shape for inputs of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple
            The 3-D input shape.

        Returns
        -------
        tuple or list of tuple
            (batch, units), or the sequence shape with ``return_sequences``;
            with ``return_state`` the list ``[output shape, (batch, units),
            (batch, units)]``.
        """
        input_shape = tuple(input_shape)
        if self.time_major:
            timesteps, batch = input_shape[0], input_shape[1]
        else:
            batch, timesteps = input_shape[0], input_shape[1]
        u = self.units
        if self.return_sequences:
            out = (timesteps, batch, u) if self.time_major else (batch, timesteps, u)
        else:
            out = (batch, u)
        if self.return_state:
            return [out, (batch, u), (batch, u)]
        return out

    def compute_mask(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None) -> Any:
        """The output mask: the input mask with ``return_sequences`` (transposed to
        (batch, timesteps) with ``time_major``), else None; with ``return_state``
        a list ``[mask, None, None]``.

        Parameters
        ----------
        inputs : array_like
            The layer's inputs.
        mask : array_like of bool, optional
            The input mask, (batch, timesteps).

        Returns
        -------
        numpy.ndarray, list or None
        """
        if not self.return_sequences:
            return [None, None, None] if self.return_state else None
        if mask is not None and self.time_major:
            mask = np.asarray(mask).T
        return [mask, None, None] if self.return_state else mask

    # -- states ------------------------------------------------------------
    def get_initial_state(self, batch_size: int) -> List[Array]:
        """Zero states ``[h, c]`` for ``batch_size`` rows.

        Parameters
        ----------
        batch_size : int
            The number of rows.

        Returns
        -------
        list of numpy.ndarray
            ``[h, c]``, each (batch_size, units).
        """
        return self.cell.get_initial_state(batch_size)

    def reset_state(self) -> None:
        """Zero the states of a stateful layer."""
        if self.states is not None:
            for s in self.states:
                s[...] = 0

    def reset_states(self) -> None:
        """Zero the states of a stateful layer (Keras 2's name of ``reset_state``)."""
        self.reset_state()

    def _moved(self, backend):
        if self.states is not None:    # a stateful layer's kept states move too
            self.states = [move_array(s, backend) for s in self.states]
        self._zero_states = None

    # -- calling -----------------------------------------------------------
    def _prepare(self, inputs, initial_state, mask):
        """Validated (x, h0, c0, mask) in (batch, timesteps) terms."""
        check_input_sizes(inputs, self.units, time_major=self.time_major)
        x = as_float_array(inputs, self.dtype)
        if x.ndim != 3:
            raise ValueError(
                f"Input of {self.name!r} must be 3-D "
                f"({'timesteps, batch' if self.time_major else 'batch, timesteps'}, features); "
                f"got an array of shape {x.shape}.")
        if not self.built:
            self.build(x.shape)
            self._build_input_shape = ((x.shape[0], None, x.shape[2]) if self.time_major
                                       else (None, x.shape[1], x.shape[2]))
        T, B = (x.shape[0], x.shape[1]) if self.time_major else (x.shape[1], x.shape[0])
        if x.shape[2] != self.cell.input_dim:
            raise ValueError(f"Input of {self.name!r} must have {self.cell.input_dim} "
                             f"features (last axis), as the layer was built with; got an "
                             f"array of shape {x.shape}.")
        if T == 0:
            raise ValueError(f"Input of {self.name!r} has 0 timesteps (shape {x.shape}); "
                             "an LSTM needs at least one timestep.")
        if self.use_cudnn is True:
            raise ValueError("use_cudnn=True was specified, but cuDNN is not available to "
                             "cylstm in this build. Use use_cudnn='auto' or False.")
        mask_shape = (T, B) if self.time_major else (B, T)
        if isinstance(mask, (list, tuple)) and mask and (mask[0] is None
                                                         or np.ndim(mask[0]) == 2):
            mask = mask[0]   # Keras passes [mask, None, None] along with states
        m = check_mask(mask, mask_shape)
        if initial_state is not None:
            # A stateful layer uses the given state for this call, as Keras.
            if not isinstance(initial_state, (list, tuple)):
                raise ValueError(
                    f"`initial_state` of {self.name!r} must be a list [h, c] of two "
                    f"arrays of shape ({B}, {self.units}); got "
                    f"{type(initial_state).__name__}.")
            h0, c0 = self.cell._check_states(list(initial_state), B, "initial_state")
        elif self.stateful:
            if self.states is None:
                self.states = self.get_initial_state(B)
            elif self.states[0].shape[0] != B:
                raise ValueError(
                    f"Stateful layer {self.name!r} was built for batch size "
                    f"{self.states[0].shape[0]}; got an input with batch size {B}. A "
                    "stateful LSTM needs the same batch size on every call (call "
                    "reset_state() does not change it; create a new layer instead).")
            h0, c0 = self.states
        else:
            h0, c0 = self.get_initial_state(B)
        return x, h0, c0, m

    def _run(self, x, h0, c0, mask, training, kernel_training):
        dmask = gate_masks = rec_mask = None
        if training:
            B = x.shape[1] if self.time_major else x.shape[0]
            dmask, gate_masks, rec_mask = self.cell._draw_dropout(B, x.shape[2])
        xd = x
        if dmask is not None:
            xd = x * (dmask[None] if self.time_major else dmask[:, None])
        backend = self._backend_for(xd)
        (seq, last, h, c), cache = backend.lstm_forward(LSTMProblem(
            xd, self.cell.kernel, self.cell.recurrent_kernel, self.cell._bias_or_none(),
            h0, c0, mask=mask, recurrent_mask=rec_mask, input_mask=gate_masks,
            go_backwards=self.go_backwards,
            activation=self.activation, recurrent_activation=self.recurrent_activation,
            time_major=self.time_major, return_sequences=self.return_sequences,
            training=kernel_training, workspace=self._workspace))
        result = (seq, last, h, c, cache)
        if self.stateful:
            self.states = [backend.copy(h), backend.copy(c)]
        return result, dmask

    def _output_keep(self, mask):
        """1/0 weights that zero the masked steps of the sequence output
        (zero_output_for_mask), in the output's layout and step order."""
        if not (self.zero_output_for_mask and self.return_sequences and mask is not None):
            return None
        time_axis = 0 if self.time_major else 1
        keep = np.flip(mask, axis=time_axis) if self.go_backwards else mask
        return keep[..., None].astype(self.dtype)

    def _package(self, seq, last, h, c, mask):
        output = seq if self.return_sequences else last
        keep = self._output_keep(mask)
        if keep is not None:
            output = output * keep
        if self.return_state:
            return [output, h, c]
        return output

    def _batch_size(self, output):
        return output.shape[1] if (self.time_major and self.return_sequences) else output.shape[0]

    def _record_activity_loss(self, outputs):
        # Keras: the penalty of every output, each divided by the batch size.
        reg = self.activity_regularizer
        if reg is not None:
            batch = max(self._batch_size(outputs[0]), 1)
            self._activity_loss = float(sum(reg(o) for o in outputs)) / batch

    def _one_step_call(self, inputs):
        """One timestep from zero states through the streaming kernel: a whole
        layer call at serving latency. None when it does not apply."""
        cell = self.cell
        k = cell._stepper
        if k is None or self.stateful or self.activity_regularizer is not None \
                or forced_backend() is not cell._stepper_forced:
            return None
        zeros = self._zero_states
        if zeros is None or zeros[0].shape[0] != k.batch:
            zeros = self._zero_states = self.get_initial_state(k.batch)
        res = k.sequence_of_one(inputs, zeros[0], zeros[1], self.time_major,
                                self.return_sequences)
        if res is None:
            return None
        return list(res) if self.return_state else res[0]

    def call(self, inputs: ArrayLike, initial_state: Optional[StatesLike] = None,
             mask: Optional[ArrayLike] = None, training: bool = False) -> LayerOutput:
        """Run the layer over a batch of sequences.

        Parameters
        ----------
        inputs : array_like
            (batch, timesteps, features), or (timesteps, batch, features) with
            ``time_major``. Any real dtype (cast to the layer's dtype); read-only
            and non-contiguous arrays are accepted. Zero timesteps raise
            ``ValueError``; an empty batch gives empty outputs.
        initial_state : sequence of two array_like, optional
            ``[h0, c0]``, each (batch, units); zeros (or the kept states of a
            stateful layer) when omitted.
        mask : array_like of bool, optional
            (batch, timesteps): False marks steps to skip. A masked step repeats
            the previous output and carries the states (zeros before the first
            unmasked step, as Keras 3).
        training : bool, default False
            Apply ``dropout`` and ``recurrent_dropout``.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            The last output (batch, units); the whole sequence
            (batch, timesteps, units) with ``return_sequences``; and
            ``[output, h, c]`` with ``return_state``.

        Raises
        ------
        ValueError
            For inputs, states or a mask of the wrong shape.
        TypeError
            For complex, string or CuPy inputs.
        """
        plan = self.__dict__.get("_call_plan")
        if plan is not None and mask is None:
            out = plan(self, inputs, initial_state, training)
            if out is not None:
                return out
        if mask is None and initial_state is None and not (
                training and (self.dropout or self.recurrent_dropout)):
            out = self._one_step_call(inputs)
            if out is not None:
                return out
        x, h0, c0, m = self._prepare(inputs, initial_state, mask)
        steps = x.shape[0] if self.time_major else x.shape[1]
        batch = x.shape[1] if self.time_major else x.shape[0]
        if steps == 1 and m is None and initial_state is None and not training and batch:
            self.cell._stepper_for(batch)  # and later calls of this shape go fast
            out = self._one_step_call(np.ascontiguousarray(x))
            if out is not None:
                return out
        if m is None and batch and not (training and (self.dropout or self.recurrent_dropout)):
            # Later calls like this one check only what can change (_call_plan.py).
            plan = LayerCallPlan.make(self, self._backend_for(x), x)
            if plan is not None:
                self._call_plan = plan
                out = plan.run(np.ascontiguousarray(x), h0, c0)
                if out is not None:
                    return out
        (seq, last, h, c, _), _ = self._run(x, h0, c0, m, bool(training), False)
        out = self._package(seq, last, h, c, m)
        self._record_activity_loss(out if self.return_state else [out])
        return out

    def forward_train(self, inputs: ArrayLike, initial_state: Optional[StatesLike] = None,
                      mask: Optional[ArrayLike] = None, training: bool = True, *,
                      input_gradient: bool = True) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward: ``(y, backprop)``.

        ``y`` is what ``call`` returns. ``backprop(dy)`` adds the weight gradients
        into ``layer.grads`` and returns ``dx`` (the gradient with respect to the
        inputs, in their layout), or ``(dx, [dh0, dc0])`` when ``initial_state``
        was given. With ``return_state``, ``dy`` is ``[d_output, d_h, d_c]``
        (entries may be None). The forward keeps what the backward pass needs;
        ``backprop`` can be called once.

        Parameters
        ----------
        inputs : array_like
            As in ``call``.
        initial_state : sequence of two array_like, optional
            ``[h0, c0]``.
        mask : array_like of bool, optional
            (batch, timesteps).
        training : bool, default True
            Apply dropout.
        input_gradient : bool, default True
            False: ``backprop`` returns None in place of ``dx`` and skips the
            product that makes it (a model's first layer, whose inputs are
            data: about a tenth of a training step).

        Returns
        -------
        y : numpy.ndarray or list of numpy.ndarray
            The outputs.
        backprop : callable
            ``backprop(dy)`` as above.
        """
        x, h0, c0, m = self._prepare(inputs, initial_state, mask)
        (seq, last, h, c, cache), dmask = self._run(x, h0, c0, m, bool(training), True)
        y = self._package(seq, last, h, c, m)
        first = y[0] if self.return_state else y
        self._record_activity_loss(y if self.return_state else [y])
        given_state = initial_state is not None

        def backprop(dy):
            if self.return_state:
                if not isinstance(dy, (list, tuple)) or len(dy) != 3:
                    raise ValueError("With return_state=True, dy must be a list "
                                     "[d_output, d_h, d_c] (entries may be None).")
                d_out, d_h, d_c = dy
            else:
                d_out, d_h, d_c = dy, None, None
            d_out = self._check_grad(d_out, first.shape, "d_output")
            d_h = self._check_grad(d_h, h.shape, "d_h")
            d_c = self._check_grad(d_c, c.shape, "d_c")
            reg = self.activity_regularizer
            if reg is not None:
                batch = max(self._batch_size(first), 1)

                def with_penalty(d, out):
                    g = (reg.gradient(out) / batch).astype(self.dtype)
                    return g if d is None else d + g
                d_out = with_penalty(d_out, first)
                if self.return_state:
                    d_h, d_c = with_penalty(d_h, h), with_penalty(d_c, c)
            keep = self._output_keep(m)
            if d_out is not None and keep is not None:
                d_out = d_out * keep
            g = cache.backend.lstm_backward(cache, LSTMGrads(
                d_seq=d_out if self.return_sequences else None,
                d_last=None if self.return_sequences else d_out, d_h=d_h, d_c=d_c,
                need_dx=bool(input_gradient)))
            self.cell._accumulate(g)
            dx = g["dx"]
            if dx is not None and dmask is not None:
                dx = dx * (dmask[None] if self.time_major else dmask[:, None])
            if given_state:
                return dx, [g["dh0"], g["dc0"]]
            return dx

        return y, backprop

    def _check_grad(self, g, shape, argument):
        if g is None:
            return None
        g = as_float_array(g, self.dtype, argument)
        if g.shape != tuple(shape):
            raise ValueError(f"`{argument}` must have shape {tuple(shape)}, got {g.shape}.")
        return g

    @property
    def losses(self) -> List[float]:
        out = super().losses
        if self.activity_regularizer is not None:
            out.append(self._activity_loss)
        return out

    def inner_loop(self, sequences: ArrayLike, initial_state: Optional[StatesLike],
                   mask: Optional[ArrayLike], training: bool = False
                   ) -> Tuple[Array, Array, List[Array]]:
        """Keras's RNN loop: ``(last_output, outputs, [h, c])``.

        Parameters
        ----------
        sequences : array_like
            The inputs, as in ``call``.
        initial_state : sequence of two array_like or None
            ``[h0, c0]``.
        mask : array_like of bool or None
            (batch, timesteps).
        training : bool, default False
            Apply dropout.

        Returns
        -------
        last_output : numpy.ndarray
            (batch, units).
        outputs : numpy.ndarray
            The whole sequence with ``return_sequences``, otherwise the last
            output with a time axis of 1 (as Keras's backend returns).
        states : list of numpy.ndarray
            ``[h, c]``.
        """
        x, h0, c0, m = self._prepare(sequences, initial_state, mask)
        (seq, last, h, c, _), _ = self._run(x, h0, c0, m, bool(training), False)
        if seq is None:
            seq = last[None] if self.time_major else last[:, None]
        return last, seq, [h, c]

    def step(self, inputs: ArrayLike, states: StatesLike) -> Tuple[Array, List[Array]]:
        """One timestep for a batch (streaming): ``h, [h, c] = layer.step(x_t, [h, c])``.

        Uses the layer's weights and a preallocated workspace; the states
        passed in are not modified and the results are new arrays. Per call,
        beyond the arithmetic: a few C-level argument checks (inputs that are
        C-contiguous arrays of the layer's dtype skip any conversion).

        Parameters
        ----------
        inputs : array_like
            (batch, features).
        states : sequence of two array_like
            ``[h, c]``, each (batch, units).

        Returns
        -------
        h : numpy.ndarray
            (batch, units).
        states : list of numpy.ndarray
            ``[h, c]``.
        """
        cell = self.cell
        k = cell._stepper
        if k is not None and type(states) in (list, tuple) and len(states) == 2 \
                and forced_backend() is cell._stepper_forced:
            out = k.step(inputs, states[0], states[1])
            if out is not None:
                return out[0], [out[0], out[1]]
        if not self.built:
            # Build the layer, not only its cell, so that a later sequence call
            # keeps these weights (and whatever set_weights puts in them).
            x = as_float_array(inputs, self.dtype)
            if x.ndim == 2:
                self.build((None, None, x.shape[1]))
        return self.cell.call(inputs, states)

    # -- config ------------------------------------------------------------
    def get_config(self) -> Config:
        """The layer's configuration with Keras 3's keys (the cell's arguments
        flattened in, as ``keras.layers.LSTM.get_config``).

        Returns
        -------
        dict
        """
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": _dtype_policy(self.dtype),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key)
        config.update(cell_config)
        config["activity_regularizer"] = _regularizers.serialize(self.activity_regularizer)
        if self.time_major:
            config["time_major"] = True
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A layer from ``get_config()`` output or a Keras 3 LSTM config.

        Parameters
        ----------
        config : dict
            The configuration (a nested ``cell`` entry is ignored).

        Returns
        -------
        LSTM
        """
        config = dict(config)
        config.pop("cell", None)
        return cls(**config)
