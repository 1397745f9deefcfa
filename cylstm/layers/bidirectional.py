"""Keras-style ``Bidirectional`` wrapper for cylstm ``LSTM`` layers.

Keras 3 semantics (``keras/src/layers/rnn/bidirectional.py``):

- The forward layer is a fresh copy of ``layer`` built from its config and
  named ``forward_<name>``; unless ``backward_layer`` is given, the backward
  layer is another copy with ``go_backwards=True``, named ``backward_<name>``.
  Neither shares weights with ``layer`` (Keras: "will not reuse the weights").
- With ``return_sequences`` the backward output is reversed back to time order
  before merging (``concat``/``sum``/``mul``/``ave``, or ``None`` for the list
  ``[forward, backward]``), and outputs are ZERO at masked timesteps in both
  directions (Keras forces ``zero_output_for_mask`` on the wrapped layers).
- ``return_state`` gives ``[output, fw_h, fw_c, bw_h, bw_c]`` (with
  ``merge_mode=None``: ``[fw_out, bw_out, fw_h, fw_c, bw_h, bw_c]``);
  ``initial_state=[fw_h0, fw_c0, bw_h0, bw_c0]`` is split in halves.
- Weights: the forward layer's ``[kernel, recurrent_kernel, bias]`` then the
  backward layer's, for ``get_weights``/``set_weights``.

cylstm choices (to be collected in the user docs):

- ``dtype``: the wrapper's own ``dtype=`` if given, otherwise the wrapped
  layer's (Keras 3 defaults to float32 and casts a float64 LSTM's outputs down).
  The outputs are cast to it; the inner layers keep their own dtype.
- ``weights=`` is applied when the layer is built (Keras 3 accepts and ignores it;
  tf.keras 2 applied it).
- The inner layers run with ``zero_output_for_mask=False`` and the wrapper
  zeroes masked steps itself, in time order, after reversing the backward
  output; ``get_config`` writes ``zero_output_for_mask`` as Keras does.
- With ``concat`` and a ``backward_layer`` of different ``units``, the output
  has ``fw_units + bw_units`` features (Keras's ``compute_output_shape`` says
  ``2 * fw_units`` there but its call gives the sum).
- ``layer.grads`` / ``layer._params`` are views keyed ``'forward/kernel'``,
  ``'backward/bias'``, ...; the arrays are the inner layers' own.
"""
from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import copy

import numpy as np

from .._validation import as_float_array
from ..backends import owning_backend
from .base import Layer
from .lstm import LSTM, _dtype_policy
from .._typing import Array, ArrayLike, Config, LayerOutput, ShapeLike, StatesLike

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Bidirectional"]

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _removeprefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


def _serialize_layer(layer, zero_output_for_mask):
    config = layer.get_config()
    config["zero_output_for_mask"] = zero_output_for_mask
    out = {"module": "keras.layers", "class_name": type(layer).__name__, "config": config,
           "registered_name": None}
    if layer.built and layer._build_input_shape is not None:
        out["build_config"] = {"input_shape": list(layer._build_input_shape)}
    return out


def _deserialize_layer(obj, argument):
    """A cylstm LSTM from an instance or Keras's ``{"class_name", "config"}`` dict."""
    if obj is None or isinstance(obj, Layer):
        return obj
    if isinstance(obj, dict):
        class_name = obj.get("class_name", "LSTM" if "units" in obj else None)
        config = obj.get("config", obj)
        if class_name != "LSTM":
            raise ValueError(f"`{argument}`: cylstm's Bidirectional wraps LSTM layers only; "
                             f"got a config of class {class_name!r}.")
        return LSTM.from_config(dict(config))
    raise ValueError(f"`{argument}` must be a cylstm LSTM layer or its config dict; got "
                     f"{type(obj).__name__}.")


class Bidirectional(Layer):
    """Bidirectional wrapper for a cylstm ``LSTM`` (Keras 3 semantics).

    ``Bidirectional(LSTM(64, return_sequences=True), merge_mode='concat')``;
    call it as the LSTM: ``layer(x, initial_state=None, mask=None, training=False)``.
    The wrapper runs a fresh copy of ``layer`` forward and a copy with
    ``go_backwards=True`` (or ``backward_layer``) and merges their outputs,
    the backward sequence put back in time order. Weights are the forward
    layer's then the backward layer's (``forward/kernel``, ...,
    ``backward/bias`` in ``grads``).

    Parameters
    ----------
    layer : LSTM or dict
        The layer to wrap (or its serialised form); it is copied, not shared.
    merge_mode : {"concat", "sum", "mul", "ave", None}, default "concat"
        How to combine the two outputs; None returns both as a list.
    weights : list of array_like, optional
        Initial weights (forward layer's, then backward layer's), set at build.
    backward_layer : LSTM or dict, optional
        The backward layer (must have ``go_backwards=True`` and the same
        ``return_sequences``/``return_state``/``stateful``); by default a copy
        of ``layer``.
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer`.

    Raises
    ------
    ValueError
        If ``layer`` is not a cylstm LSTM, or for an unknown ``merge_mode``.
    """

    supports_masking = True
    _input_gradient_optional = True

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, sequences: ArrayLike, initial_state: Optional[StatesLike] = None,
                     mask: Optional[ArrayLike] = None, training: bool = False) -> LayerOutput: ...

    # The two layers are tracked sub-layers; their weights are keyed
    # 'forward/kernel', ..., 'backward/bias' in grads and _params.
    _sublayer_prefixes = {"forward_layer": "forward", "backward_layer": "backward"}

    def __init__(self, layer: Union[LSTM, Mapping[str, Any]],
                 merge_mode: Optional[str] = "concat",
                 weights: Optional[Sequence[ArrayLike]] = None,
                 backward_layer: Union[LSTM, Mapping[str, Any], None] = None,
                 **kwargs: Any) -> None:
        layer = _deserialize_layer(layer, "layer")
        backward_layer = _deserialize_layer(backward_layer, "backward_layer")
        if not isinstance(layer, LSTM):
            raise ValueError("Please initialize `Bidirectional` layer with a cylstm "
                             f"`LSTM` layer instance. Received: {layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, LSTM):
            raise ValueError("`backward_layer` needs to be a cylstm `LSTM` layer instance. "
                             f"Received: {backward_layer!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode!r}. Merge mode "
                             'should be one of {"sum", "mul", "ave", "concat", None}')
        dtype = kwargs.pop("dtype", None)
        if (kwargs.get("input_shape") is None and kwargs.get("batch_input_shape") is None
                and kwargs.get("input_dim") is None):
            declared = getattr(layer, "_declared_input_shape", None)
        else:
            declared = None
        super().__init__(dtype=layer.dtype if dtype is None else dtype, **kwargs)
        if declared is not None:
            self._declared_input_shape = declared

        # Fresh copies of the wrapped layer, as Keras (no shared weights or state).
        config = layer.get_config()
        config["name"] = "forward_" + _removeprefix(layer.name, "forward_")
        self.forward_layer = LSTM.from_config(config)
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = True
            config["name"] = "backward_" + _removeprefix(layer.name, "backward_")
            self.backward_layer = LSTM.from_config(config)
        else:
            self.backward_layer = backward_layer
        self.forward_layer.use_cudnn = layer.use_cudnn
        self.backward_layer.use_cudnn = layer.use_cudnn
        self._verify_layer_config()
        # The wrapper zeroes masked steps itself, in time order (see module doc).
        self.forward_layer.zero_output_for_mask = False
        self.backward_layer.zero_output_for_mask = False

        self.merge_mode = merge_mode
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.time_major = layer.time_major
        self._initial_weights = list(weights) if weights else None
        if not self.trainable:  # Bidirectional(..., trainable=False) freezes both
            self.trainable = False

    def _verify_layer_config(self):
        fw, bw = self.forward_layer, self.backward_layer
        if fw.go_backwards == bw.go_backwards:
            raise ValueError("Forward layer and backward layer should have different "
                             f"`go_backwards` value. Received: forward_layer.go_backwards="
                             f"{fw.go_backwards}, backward_layer.go_backwards={bw.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state", "time_major"):
            if getattr(fw, a) != getattr(bw, a):
                raise ValueError("Forward layer and backward layer are expected to have the "
                                 f'same value for attribute "{a}", got "{getattr(fw, a)}" for '
                                 f'forward layer and "{getattr(bw, a)}" for backward layer')

    # -- weights: the forward layer's, then the backward layer's (tracking) --
    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Set the forward layer's weights, then the backward layer's.

        Parameters
        ----------
        weights : iterable of array_like
            As many arrays as ``get_weights`` returns, of the same shapes.

        Raises
        ------
        ValueError
            If the number of arrays or a shape differs.
        """
        weights = list(weights)
        n_fw = len(self.forward_layer.weights)
        n_bw = len(self.backward_layer.weights)
        if len(weights) != n_fw + n_bw:
            raise ValueError(f"Layer {self.name!r} expects {n_fw + n_bw} weight arrays "
                             f"({n_fw} for {self.forward_layer.name!r}, then {n_bw} for "
                             f"{self.backward_layer.name!r}), got {len(weights)}.")
        # Check both halves before writing either: a refused call changes nothing.
        fw = self.forward_layer._checked_weights(weights[:n_fw])
        bw = self.backward_layer._checked_weights(weights[n_fw:])
        self.forward_layer.set_weights(fw)
        self.backward_layer.set_weights(bw)

    # -- states ------------------------------------------------------------
    @property
    def states(self) -> Optional[Tuple[Array, ...]]:
        """The kept states of a stateful wrapper: forward h, c, backward h, c (or None)."""
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def reset_state(self) -> None:
        """Zero the kept states of both layers (stateful wrappers only)."""
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self) -> None:
        """Zero the kept states (Keras 2's name of ``reset_state``)."""
        self.reset_state()

    # -- building ----------------------------------------------------------
    def build(self, input_shape: ShapeLike,
              initial_state_shape: Optional[Sequence[ShapeLike]] = None) -> None:
        """Build both layers for inputs of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple
            The 3-D input shape.
        initial_state_shape : list of tuple, optional
            Accepted for Keras's signature.
        """
        input_shape = tuple(input_shape)
        if not self.forward_layer.built:
            self.forward_layer.build(input_shape)
        if not self.backward_layer.built:
            self.backward_layer.build(input_shape)
        self._build_input_shape = input_shape
        self.built = True
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            n = len(weights) // 2
            self.forward_layer.set_weights(weights[:n])
            self.backward_layer.set_weights(weights[n:])

    def _maybe_build_from(self, x_shape):
        if not self.built:
            self.build(x_shape)
            if len(x_shape) == 3:
                self._build_input_shape = ((x_shape[0], None, x_shape[2]) if self.time_major
                                           else (None,) + tuple(x_shape[1:]))

    def compute_output_shape(self, input_shape: ShapeLike,
                             initial_state_shape: Optional[Sequence[ShapeLike]] = None) -> Any:
        """The merged output shape (a list with ``return_state`` or ``merge_mode=None``).

        Parameters
        ----------
        input_shape : tuple
            The 3-D input shape.
        initial_state_shape : list of tuple, optional
            Not used.

        Returns
        -------
        tuple or list of tuple
        """
        fw = self.forward_layer.compute_output_shape(input_shape)
        bw = self.backward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            fw, states = fw[0], list(fw[1:]) + list(bw[1:])
            bw = bw[0]
        fw, bw = tuple(fw), tuple(bw)
        if self.merge_mode == "concat":
            last = None if fw[-1] is None or bw[-1] is None else fw[-1] + bw[-1]
            out = [fw[:-1] + (last,)]
        elif self.merge_mode is None:
            out = [fw, bw]
        else:
            out = [fw]
        out += [tuple(s) for s in states]
        return out[0] if len(out) == 1 else out

    def compute_mask(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None) -> Any:
        """The output mask: the input mask with ``return_sequences``, else None
        (a list matching the outputs with ``return_state`` or ``merge_mode=None``).

        Parameters
        ----------
        inputs : array_like
        mask : array_like of bool, optional
            (batch, timesteps).

        Returns
        -------
        numpy.ndarray, list or None
        """
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            output_mask = [mask, mask] if self.merge_mode is None else [mask]
            if mask is not None and self.time_major:
                output_mask = [np.asarray(m).T for m in output_mask]
        else:
            output_mask = [None, None] if self.merge_mode is None else [None]
        if self.return_state:
            return output_mask + [None] * 4
        return output_mask if self.merge_mode is None else output_mask[0]

    # -- calling -----------------------------------------------------------
    def _split_state(self, initial_state):
        if initial_state is None:
            return None, None
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 4:
            raise ValueError(f"`initial_state` of {self.name!r} must be a list of 4 arrays "
                             "[forward_h, forward_c, backward_h, backward_c]; got "
                             f"{type(initial_state).__name__}"
                             + (f" of length {len(initial_state)}."
                                if isinstance(initial_state, (list, tuple)) else "."))
        return list(initial_state[:2]), list(initial_state[2:])

    def _keep(self, mask):
        """(batch, timesteps, 1) bool (time-major: (timesteps, batch, 1)) or None."""
        if mask is None or not self.return_sequences:
            return None
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None:
            return None
        return np.asarray(mask).astype(bool)[..., None]

    def _time_axis(self):
        return 0 if self.time_major else 1

    def _outputs(self, y, y_rev, keep):
        """Forward/backward outputs in time order, zeroed at masked steps, in self.dtype
        (arrays of the inner layers' backend)."""
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        else:
            states = []
        b = owning_backend(y)
        y = b.astype(y, self.dtype)
        y_rev = b.astype(y_rev, self.dtype)
        if self.return_sequences:
            y_rev = b.xp.flip(y_rev, axis=self._time_axis())
        if keep is not None:
            keep, zero = b.asarray(keep), b.scalar(0, self.dtype)
            y = b.xp.where(keep, y, zero)
            y_rev = b.xp.where(keep, y_rev, zero)
        return y, b.asarray(y_rev), states

    def _merge(self, y, y_rev):
        if self.merge_mode == "concat":
            return [owning_backend(y).concat([y, y_rev], axis=-1)]
        if self.merge_mode == "sum":
            return [y + y_rev]
        if self.merge_mode == "ave":
            return [(y + y_rev) / 2]
        if self.merge_mode == "mul":
            return [y * y_rev]
        return [y, y_rev]

    def _package(self, merged, states):
        out = merged + states
        return out[0] if len(out) == 1 else out

    def _prepare(self, sequences, initial_state):
        shape = np.shape(sequences)
        self._maybe_build_from(shape)
        return self._split_state(initial_state)

    def call(self, sequences: ArrayLike, initial_state: Optional[StatesLike] = None,
             mask: Optional[ArrayLike] = None, training: bool = False) -> LayerOutput:
        """Run both layers and merge their outputs.

        Parameters
        ----------
        sequences : array_like
            (batch, timesteps, features) (or time-major, as the wrapped LSTM).
        initial_state : sequence of four array_like, optional
            ``[forward_h, forward_c, backward_h, backward_c]``.
        mask : array_like of bool, optional
            (batch, timesteps); masked steps of the merged sequence are zeros.
        training : bool, default False
            Apply the layers' dropout.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            The merged output; with ``merge_mode=None`` the list
            ``[forward_output, backward_output]``; with ``return_state`` the
            outputs followed by the four final states.

        Raises
        ------
        ValueError
            If ``initial_state`` is not a list of four arrays.
        """
        fw_state, bw_state = self._prepare(sequences, initial_state)
        y = self.forward_layer(sequences, initial_state=fw_state, mask=mask, training=training)
        y_rev = self.backward_layer(sequences, initial_state=bw_state, mask=mask,
                                    training=training)
        y, y_rev, states = self._outputs(y, y_rev, self._keep(mask))
        return self._package(self._merge(y, y_rev), states)

    def forward_train(self, sequences: ArrayLike, initial_state: Optional[StatesLike] = None,
                      mask: Optional[ArrayLike] = None, training: bool = True, *,
                      input_gradient: bool = True) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward: ``(y, backprop)``, with ``y`` as ``call`` returns it.

        ``backprop(dy)`` (``dy`` shaped as ``y``; with several outputs a list whose
        entries may be None) adds the gradients of both layers into their
        ``grads`` and returns ``dx``, or ``(dx, [dh0_f, dc0_f, dh0_b, dc0_b])``
        when ``initial_state`` was given.

        Parameters
        ----------
        sequences : array_like
            As in ``call``.
        initial_state : sequence of four array_like, optional
        mask : array_like of bool, optional
        training : bool, default True
            Apply dropout.
        input_gradient : bool, default True
            False: ``backprop`` returns None in place of ``dx`` and neither
            inner layer makes its input gradient (a model's first layer).

        Returns
        -------
        y : numpy.ndarray or list of numpy.ndarray
        backprop : callable
        """
        fw_state, bw_state = self._prepare(sequences, initial_state)
        skip = {} if input_gradient else {"input_gradient": False}
        y_fw, bp_fw = self.forward_layer.forward_train(
            sequences, initial_state=fw_state, mask=mask, training=training, **skip)
        y_bw, bp_bw = self.backward_layer.forward_train(
            sequences, initial_state=bw_state, mask=mask, training=training, **skip)
        keep = self._keep(mask)
        y, y_rev, states = self._outputs(y_fw, y_bw, keep)
        merged = self._merge(y, y_rev)
        result = self._package(merged, states)
        n_merged = len(merged)
        fw_units = y.shape[-1]
        b = owning_backend(y)          # the inner layers' backend
        zero = b.scalar(0, self.dtype)
        given_state = initial_state is not None

        def backprop(dy):
            n_expected = n_merged + len(states)
            dys = list(dy) if isinstance(dy, (list, tuple)) else [dy]
            if len(dys) != n_expected:
                raise ValueError(f"`dy` of {self.name!r} must match the outputs: a list of "
                                 f"{n_expected} arrays (entries may be None)"
                                 if n_expected > 1 else
                                 f"`dy` of {self.name!r} must be one array.")
            d_merged = []
            for g, m in zip(dys[:n_merged], merged):
                if g is None:
                    g = np.zeros(tuple(m.shape), self.dtype)
                g = as_float_array(g, self.dtype, "dy")
                if g.shape != tuple(m.shape):
                    raise ValueError(f"`dy` of {self.name!r} must have shape "
                                     f"{tuple(m.shape)}, got {g.shape}.")
                d_merged.append(b.asarray(g))
            if self.merge_mode == "concat":
                d_fw, d_bw = d_merged[0][..., :fw_units], d_merged[0][..., fw_units:]
            elif self.merge_mode == "sum":
                d_fw = d_bw = d_merged[0]
            elif self.merge_mode == "ave":
                d_fw = d_bw = d_merged[0] / 2
            elif self.merge_mode == "mul":
                d_fw, d_bw = d_merged[0] * y_rev, d_merged[0] * y
            else:
                d_fw, d_bw = d_merged
            if keep is not None:
                d_fw = b.xp.where(b.asarray(keep), d_fw, zero)
                d_bw = b.xp.where(b.asarray(keep), d_bw, zero)
            if self.return_sequences:
                d_bw = b.xp.flip(d_bw, axis=self._time_axis())
            d_fw = b.asarray(d_fw, self.forward_layer.dtype)
            d_bw = b.asarray(d_bw, self.backward_layer.dtype)
            if self.return_state:
                d_states = dys[n_merged:]
                r_fw = bp_fw([d_fw] + list(d_states[:2]))
                r_bw = bp_bw([d_bw] + list(d_states[2:]))
            else:
                r_fw, r_bw = bp_fw(d_fw), bp_bw(d_bw)
            if given_state:
                (dx_fw, ds_fw), (dx_bw, ds_bw) = r_fw, r_bw
            else:
                dx_fw, dx_bw = r_fw, r_bw
            dx = (None if dx_fw is None
                  else b.astype(dx_fw, self.dtype) + b.astype(dx_bw, self.dtype))
            if given_state:
                return dx, list(ds_fw) + list(ds_bw)
            return dx

        return result, backprop

    # -- config ------------------------------------------------------------
    def get_config(self) -> Config:
        """The wrapper's configuration (Keras 3's keys, the layers serialised)."""
        zero = self.return_sequences  # what Keras forces on the wrapped layers
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": _dtype_policy(self.dtype),
            "merge_mode": self.merge_mode,
            "layer": _serialize_layer(self.forward_layer, zero),
            "backward_layer": _serialize_layer(self.backward_layer, zero),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A wrapper from ``get_config()`` output or a Keras 3 Bidirectional config.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Bidirectional
        """
        config = copy.deepcopy(dict(config))
        config["layer"] = _deserialize_layer(config["layer"], "layer")
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = _deserialize_layer(backward, "backward_layer")
        return cls(**config)

    def __repr__(self) -> str:
        return (f"<Bidirectional name={self.name}, merge_mode={self.merge_mode!r}, "
                f"layer={self.forward_layer.name}, built={self.built}>")
