"""Inference with smaller weights: ``cylstm.quantize(obj, dtype="int8" | "bfloat16")``.

The quantized objects answer the same calls as the float32 ones they come
from (shapes, states, masks, ``go_backwards``, streaming ``step``) and refuse
to train. Their arithmetic (quantized.h):

- ``"int8"``: kernels (and projections, Dense kernels) as symmetric int8 with
  one float32 scale per output column (per gate column); the inputs of each
  product (x_t, h_{t-1}) quantized per row per step to asymmetric uint8,
  products summed exactly in int32, then scaled back to float32.
- ``"bfloat16"``: kernels and the inputs of each product rounded to bfloat16,
  products summed in float32.

The cell state, the gates and the biases stay float32. The compiled kernels
load on the first quantize or load, not with ``import cylstm``.
Saved with :meth:`save` / :func:`load_quantized`: one zip holding
``config.json`` and ``weights.npz`` (int8 codes, scales, bfloat16 bit patterns,
float32 biases); reading it executes nothing and unpickles nothing.
"""
import copy
import io
import json
import os
import tempfile
import zipfile
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import activations as _activations
from ._validation import as_float_array, check_mask
from ._version import __version__

__all__ = ["quantize", "load_quantized", "QuantizedLSTM", "QuantizedBidirectional",
           "QuantizedDense", "QuantizedSequential", "QuantizedTorchLSTM", "DTYPES"]

DTYPES = ("int8", "bfloat16")
FORMAT_NAME = "cylstm.quantized"
FORMAT_VERSION = 1
_F32 = np.float32


def _training_error(obj):
    return TypeError(f"{type(obj).__name__} is a quantized, inference-only copy: it cannot "
                     "be trained. Train the float32 model, then quantize it again.")


def _check_dtype(dtype):
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {DTYPES}, got {dtype!r}.")
    return dtype


def _kernels():
    from ._kernels import lstm_quantized
    return lstm_quantized


def _runner(W, U, R, bias):
    from ._quantized_dispatch import QuantizedRunner
    return QuantizedRunner(W, U, R, bias)


class _QWeight:
    """One K x N float matrix quantized to ``dtype``, with its packed kernel."""

    def __init__(self, dtype, values, scale=None):
        self.dtype = dtype
        self.values = values
        self.scale = scale
        self.matrix = _kernels().QuantizedMatrix(dtype, values, scale)

    @classmethod
    def from_float(cls, dtype, w):
        from ._kernels import reference_quantized as ref
        w = np.asarray(w, dtype=_F32)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"Cannot quantize weights of shape {w.shape} holding NaN or "
                             "infinite values.")
        if dtype == "int8":
            return cls(dtype, *ref.quantize_weights_int8(w))
        return cls(dtype, ref.to_bfloat16_bits(w))

    @property
    def shape(self):
        return self.values.shape

    def arrays(self, prefix):
        out = {prefix + ".values": self.values}
        if self.scale is not None:
            out[prefix + ".scale"] = self.scale
        return out

    @classmethod
    def from_arrays(cls, dtype, arrays, prefix):
        values = arrays[prefix + ".values"]
        expected = np.int8 if dtype == "int8" else np.uint16
        if values.dtype != expected or values.ndim != 2:
            raise ValueError(f"{prefix}.values must be a 2-D {np.dtype(expected).name} array, "
                             f"got {values.ndim}-D {values.dtype}")
        scale = arrays.get(prefix + ".scale") if dtype == "int8" else None
        if dtype == "int8" and (scale is None or scale.shape != (values.shape[1],)):
            raise ValueError(f"{prefix}.scale must have shape ({values.shape[1]},)")
        return cls(dtype, values, None if scale is None else scale.astype(_F32))

    def apply(self, a, out=None):
        return self.matrix.apply(a, out)


def _float_bias(bias, n):
    return np.zeros(n, _F32) if bias is None else np.asarray(bias, _F32).copy()


def _check_activations(activation, recurrent_activation, what):
    tanh_ok = getattr(activation, "cylstm_name", None) == "tanh"
    sig_ok = getattr(recurrent_activation, "cylstm_name", None) == "sigmoid"
    if not (tanh_ok and sig_ok):
        raise ValueError(f"quantize supports LSTMs with activation='tanh' and "
                         f"recurrent_activation='sigmoid'; {what} has "
                         f"{_activations.serialize(activation)!r} and "
                         f"{_activations.serialize(recurrent_activation)!r}.")


class _Inference:
    """What every quantized object shares: no training, saving."""

    weight_dtype: str

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        raise _training_error(self)

    def forward_train(self, *args: Any, **kwargs: Any) -> Any:
        raise _training_error(self)

    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise _training_error(self)

    def compile(self, *args: Any, **kwargs: Any) -> Any:
        raise _training_error(self)

    def save(self, filepath: Union[str, "os.PathLike[str]"]) -> None:
        """Write this object to ``filepath`` (see :func:`load_quantized`)."""
        save_quantized(self, filepath)


# -- Keras-style LSTM --------------------------------------------------------------

class QuantizedLSTM(_Inference):
    """An inference-only :class:`cylstm.layers.LSTM` with int8 or bfloat16 weights.

    Made by ``cylstm.quantize(layer, dtype)``; ``call``/``step``/outputs as the
    layer's (masks, ``initial_state``, ``go_backwards``, ``time_major``,
    ``return_sequences``, ``return_state``, ``stateful``,
    ``zero_output_for_mask``). Outputs are float32.
    """

    supports_masking = True
    dtype = _F32

    def __init__(self, *, weight_dtype: str, units: int, kernel: _QWeight,
                 recurrent_kernel: _QWeight, bias: np.ndarray, name: str = "lstm",
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False,
                 time_major: bool = False, zero_output_for_mask: bool = False) -> None:
        self.weight_dtype = _check_dtype(weight_dtype)
        self.units = int(units)
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self.bias = np.asarray(bias, _F32)
        G = 4 * self.units
        if recurrent_kernel.shape != (self.units, G) or kernel.shape[1] != G \
                or self.bias.shape != (G,):
            raise ValueError(f"Weights of shapes {kernel.shape}, {recurrent_kernel.shape}, "
                             f"{self.bias.shape} do not fit an LSTM of {self.units} units.")
        self.name = name
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.time_major = bool(time_major)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states: Optional[List[np.ndarray]] = None
        self._kernel = _runner(kernel.matrix, recurrent_kernel.matrix, None, self.bias)

    _OPTIONS = ("name", "return_sequences", "return_state", "go_backwards", "stateful",
                "time_major", "zero_output_for_mask")

    @classmethod
    def from_layer(cls, layer: Any, dtype: str) -> "QuantizedLSTM":
        """Quantize a built :class:`cylstm.layers.LSTM`."""
        if not layer.built:
            raise ValueError(f"LSTM {layer.name!r} has no weights yet: build or call it "
                             "before quantizing.")
        _check_activations(layer.activation, layer.recurrent_activation,
                           f"LSTM {layer.name!r}")
        cell = layer.cell
        return cls(weight_dtype=dtype, units=layer.units,
                   kernel=_QWeight.from_float(dtype, cell.kernel),
                   recurrent_kernel=_QWeight.from_float(dtype, cell.recurrent_kernel),
                   bias=_float_bias(cell._bias_or_none(), 4 * layer.units),
                   **{k: getattr(layer, k) for k in cls._OPTIONS})

    @property
    def input_dim(self) -> int:
        return self.kernel.shape[0]

    def __repr__(self) -> str:
        return (f"<QuantizedLSTM name={self.name!r} units={self.units} "
                f"dtype={self.weight_dtype}>")

    def get_initial_state(self, batch_size: int) -> List[np.ndarray]:
        """Zero states ``[h, c]``, each (batch_size, units)."""
        return [np.zeros((batch_size, self.units), _F32) for _ in range(2)]

    def reset_state(self) -> None:
        """Zero the kept states of a stateful layer."""
        if self.states is not None:
            for s in self.states:
                s.fill(0)

    reset_states = reset_state

    def _check_states(self, states, batch, argument):
        if not isinstance(states, (list, tuple)) or len(states) != 2:
            raise ValueError(f"`{argument}` of {self.name!r} must be a list [h, c] of two "
                             f"arrays of shape ({batch}, {self.units}); got "
                             f"{type(states).__name__}.")
        out = []
        for k, s in enumerate(states):
            s = as_float_array(s, _F32, f"{argument}[{k}]")
            if s.shape != (batch, self.units):
                raise ValueError(f"`{argument}[{k}]` of {self.name!r} must have shape "
                                 f"({batch}, {self.units}); got {s.shape}.")
            out.append(s)
        return out

    def _run(self, x_tm, h0, c0, mask_tm, return_sequences):
        if self.go_backwards:
            x_tm = x_tm[::-1]
            mask_tm = None if mask_tm is None else mask_tm[::-1]
        return self._kernel.run(x_tm, h0, c0, mask_tm, return_sequences)

    def call(self, inputs: Any, initial_state: Optional[Any] = None,
             mask: Optional[Any] = None, training: bool = False) -> Any:
        """Run over a batch of sequences; arguments and results as
        :meth:`cylstm.layers.LSTM.call` (``training=True`` raises ``ValueError``)."""
        if training:
            raise ValueError(f"{self.name!r} is quantized (inference only); call it with "
                             "training=False.")
        x = as_float_array(inputs, _F32)
        if x.ndim != 3:
            raise ValueError(f"Input of {self.name!r} must be 3-D; got an array of shape "
                             f"{x.shape}.")
        if x.shape[2] != self.input_dim:
            raise ValueError(f"Input of {self.name!r} must have {self.input_dim} features "
                             f"(last axis); got an array of shape {x.shape}.")
        T, B = (x.shape[0], x.shape[1]) if self.time_major else (x.shape[1], x.shape[0])
        if T == 0:
            raise ValueError(f"Input of {self.name!r} has 0 timesteps (shape {x.shape}).")
        if isinstance(mask, (list, tuple)) and mask and (mask[0] is None
                                                         or np.ndim(mask[0]) == 2):
            mask = mask[0]
        m = check_mask(mask, (T, B) if self.time_major else (B, T))
        if initial_state is not None:
            h0, c0 = self._check_states(initial_state, B, "initial_state")
        elif self.stateful:
            if self.states is None:
                self.states = self.get_initial_state(B)
            elif self.states[0].shape[0] != B:
                raise ValueError(f"Stateful layer {self.name!r} was built for batch size "
                                 f"{self.states[0].shape[0]}; got batch size {B}.")
            h0, c0 = self.states
        else:
            h0, c0 = self.get_initial_state(B)
        x_tm = x if self.time_major else x.transpose(1, 0, 2)
        m_tm = None if m is None else (m if self.time_major else m.T)
        seq, h, c, last = self._run(x_tm, h0, c0, m_tm, self.return_sequences)
        if self.stateful:
            self.states = [h.copy(), c.copy()]
        if self.return_sequences:
            output = seq if self.time_major else np.ascontiguousarray(seq.transpose(1, 0, 2))
            if self.zero_output_for_mask and m is not None:
                keep = np.flip(m, axis=0 if self.time_major else 1) if self.go_backwards else m
                output = output * keep[..., None].astype(_F32)
        else:
            output = last
        return [output, h, c] if self.return_state else output

    __call__ = call

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Any = 0) -> Any:
        """``call`` (no batching needed: there is no training state)."""
        return self.call(x)

    def step(self, inputs: Any, states: Any) -> Tuple[np.ndarray, List[np.ndarray]]:
        """One timestep: ``h, [h, c] = layer.step(x_t, [h, c])`` with x_t (batch, features)."""
        if type(states) in (list, tuple) and len(states) == 2:
            out = self._kernel.step(inputs, states[0], states[1])
            if out is not None:   # float32 C-contiguous arrays of the right shapes
                return out[0], [out[0], out[1]]
        x = as_float_array(inputs, _F32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"Input of {self.name!r}.step must be (batch, {self.input_dim}); "
                             f"got shape {x.shape}.")
        h0, c0 = self._check_states(states, x.shape[0], "states")
        _, h, c, _ = self._kernel.run(x[None], h0, c0, None, False)
        return h, [h, c]

    def compute_mask(self, inputs: Any, mask: Optional[Any] = None) -> Any:
        from .layers import LSTM
        return LSTM.compute_mask(self, inputs, mask)  # type: ignore[arg-type]

    # -- saving
    def _config(self):
        cfg = {k: getattr(self, k) for k in self._OPTIONS}
        cfg["units"] = self.units
        return cfg

    def _arrays(self, prefix):
        out = self.kernel.arrays(prefix + ".kernel")
        out.update(self.recurrent_kernel.arrays(prefix + ".recurrent_kernel"))
        out[prefix + ".bias"] = self.bias
        return out

    @classmethod
    def _restore(cls, dtype, cfg, arrays, prefix):
        return cls(weight_dtype=dtype,
                   kernel=_QWeight.from_arrays(dtype, arrays, prefix + ".kernel"),
                   recurrent_kernel=_QWeight.from_arrays(dtype, arrays,
                                                         prefix + ".recurrent_kernel"),
                   bias=arrays[prefix + ".bias"], **cfg)


class QuantizedBidirectional(_Inference):
    """An inference-only :class:`cylstm.layers.Bidirectional` (of quantized LSTMs)."""

    dtype = _F32
    supports_masking = True

    def __init__(self, forward_layer: QuantizedLSTM, backward_layer: QuantizedLSTM,
                 merge_mode: Optional[str] = "concat", name: str = "bidirectional") -> None:
        self.forward_layer = forward_layer
        self.backward_layer = backward_layer
        self.weight_dtype = forward_layer.weight_dtype
        self.merge_mode = merge_mode
        self.name = name
        self.return_sequences = forward_layer.return_sequences
        self.return_state = forward_layer.return_state
        self.time_major = forward_layer.time_major
        self.stateful = forward_layer.stateful

    @classmethod
    def from_layer(cls, layer: Any, dtype: str) -> "QuantizedBidirectional":
        """Quantize a built :class:`cylstm.layers.Bidirectional`."""
        return cls(QuantizedLSTM.from_layer(layer.forward_layer, dtype),
                   QuantizedLSTM.from_layer(layer.backward_layer, dtype),
                   layer.merge_mode, layer.name)

    def __repr__(self) -> str:
        return f"<QuantizedBidirectional name={self.name!r} dtype={self.weight_dtype}>"

    def _bound(name):  # the wrapper's own output logic, reused as is
        def method(self, *args):
            from .layers import Bidirectional
            return getattr(Bidirectional, name)(self, *args)
        method.__name__ = name
        return method

    _split_state = _bound("_split_state")
    _keep = _bound("_keep")
    _time_axis = _bound("_time_axis")
    _outputs = _bound("_outputs")
    _merge = _bound("_merge")
    _package = _bound("_package")
    del _bound

    def compute_mask(self, inputs: Any, mask: Optional[Any] = None) -> Any:
        from .layers import Bidirectional
        return Bidirectional.compute_mask(self, inputs, mask)  # type: ignore[arg-type]

    def reset_state(self) -> None:
        """Zero the kept states of both layers."""
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def call(self, sequences: Any, initial_state: Optional[Any] = None,
             mask: Optional[Any] = None, training: bool = False) -> Any:
        """As :meth:`cylstm.layers.Bidirectional.call` (``training=True`` raises)."""
        fw_state, bw_state = self._split_state(initial_state)
        y = self.forward_layer(sequences, initial_state=fw_state, mask=mask, training=training)
        y_rev = self.backward_layer(sequences, initial_state=bw_state, mask=mask,
                                    training=training)
        y, y_rev, states = self._outputs(y, y_rev, self._keep(mask))
        return self._package(self._merge(y, y_rev), states)

    __call__ = call

    def _config(self):
        return {"merge_mode": self.merge_mode, "name": self.name,
                "forward_layer": self.forward_layer._config(),
                "backward_layer": self.backward_layer._config()}

    def _arrays(self, prefix):
        out = self.forward_layer._arrays(prefix + ".forward")
        out.update(self.backward_layer._arrays(prefix + ".backward"))
        return out

    @classmethod
    def _restore(cls, dtype, cfg, arrays, prefix):
        return cls(QuantizedLSTM._restore(dtype, cfg["forward_layer"], arrays,
                                          prefix + ".forward"),
                   QuantizedLSTM._restore(dtype, cfg["backward_layer"], arrays,
                                          prefix + ".backward"),
                   cfg["merge_mode"], cfg["name"])


class QuantizedDense(_Inference):
    """An inference-only :class:`cylstm.layers.Dense`: ``activation(x @ kernel + bias)``
    with a quantized kernel."""

    dtype = _F32
    supports_masking = True

    def __init__(self, weight_dtype: str, kernel: _QWeight, bias: np.ndarray,
                 activation: Any = None, name: str = "dense") -> None:
        self.weight_dtype = _check_dtype(weight_dtype)
        self.kernel = kernel
        self.bias = np.asarray(bias, _F32)
        self.units = kernel.shape[1]
        if self.bias.shape != (self.units,):
            raise ValueError(f"The bias of {name!r} must have shape ({self.units},), got "
                             f"{self.bias.shape}.")
        self.activation = _activations.get(activation)
        self.name = name

    @classmethod
    def from_layer(cls, layer: Any, dtype: str) -> "QuantizedDense":
        """Quantize a built :class:`cylstm.layers.Dense`."""
        if not layer.built:
            raise ValueError(f"Dense {layer.name!r} has no weights yet: build or call it "
                             "before quantizing.")
        w = layer.get_weights()
        return cls(dtype, _QWeight.from_float(dtype, w[0]),
                   _float_bias(w[1] if len(w) > 1 else None, w[0].shape[1]),
                   layer.activation, layer.name)

    def __repr__(self) -> str:
        return f"<QuantizedDense name={self.name!r} units={self.units} dtype={self.weight_dtype}>"

    def call(self, inputs: Any, mask: Optional[Any] = None, training: bool = False) -> Any:
        """``activation(inputs @ kernel + bias)`` over the last axis."""
        if training:
            raise ValueError(f"{self.name!r} is quantized (inference only); call it with "
                             "training=False.")
        x = as_float_array(inputs, _F32)
        K = self.kernel.shape[0]
        if x.ndim < 2 or x.shape[-1] != K:
            raise ValueError(f"Input of {self.name!r} must be (batch, ..., {K}); got shape "
                             f"{x.shape}.")
        flat = x.reshape(-1, K)
        out = np.empty((flat.shape[0], self.units), _F32)
        out[...] = self.bias
        self.kernel.apply(flat, out)
        y = out.reshape(x.shape[:-1] + (self.units,))
        return np.asarray(self.activation(y)).astype(_F32, copy=False)

    __call__ = call

    def compute_mask(self, inputs: Any, mask: Optional[Any] = None) -> Any:
        return mask

    def _config(self):
        return {"name": self.name, "activation": _activations.serialize(self.activation)}

    def _arrays(self, prefix):
        out = self.kernel.arrays(prefix + ".kernel")
        out[prefix + ".bias"] = self.bias
        return out

    @classmethod
    def _restore(cls, dtype, cfg, arrays, prefix):
        return cls(dtype, _QWeight.from_arrays(dtype, arrays, prefix + ".kernel"),
                   arrays[prefix + ".bias"], cfg["activation"], cfg["name"])


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


class QuantizedSequential(_Inference):
    """An inference-only :class:`cylstm.Sequential`: its LSTM, Bidirectional and
    Dense layers quantized, the others (Embedding, Masking, Dropout) copied."""

    def __init__(self, layers: List[Any], weight_dtype: str, name: str = "sequential") -> None:
        self.layers = list(layers)
        self.weight_dtype = _check_dtype(weight_dtype)
        self.name = name

    @classmethod
    def from_model(cls, model: Any, dtype: str) -> "QuantizedSequential":
        """Quantize a built :class:`cylstm.Sequential`."""
        layers = [_quantize_layer(layer, dtype) for layer in model.layers]
        return cls(layers, dtype, model.name)

    def __repr__(self) -> str:
        return (f"<QuantizedSequential name={self.name!r} layers={len(self.layers)} "
                f"dtype={self.weight_dtype}>")

    def __call__(self, inputs: Any, training: bool = False, mask: Optional[Any] = None) -> Any:
        """Run the layers, passing each layer's output mask on (``training=True`` raises)."""
        if training:
            raise ValueError(f"{self.name!r} is quantized (inference only); call it with "
                             "training=False.")
        x = inputs
        for layer in self.layers:
            y = layer(x, mask=mask, training=False)
            mask = _first(layer.compute_mask(x, mask))
            x = y
        return x

    call = __call__

    def predict(self, x: Any, batch_size: Optional[int] = 32, verbose: Any = 0) -> Any:
        """The outputs for ``x``, computed ``batch_size`` rows at a time."""
        n = len(x)
        if not batch_size or n <= batch_size:
            return self(x)
        parts = [self(x[i:i + batch_size]) for i in range(0, n, batch_size)]
        return np.concatenate(parts, axis=0)

    def _config(self):
        from .layers._registry import serialize_layer
        entries = []
        for layer in self.layers:
            if isinstance(layer, (QuantizedLSTM, QuantizedBidirectional, QuantizedDense)):
                entries.append({"class_name": type(layer).__name__, "config": layer._config()})
            else:
                shape = getattr(layer, "_build_input_shape", None)
                entries.append({"class_name": "FloatLayer", "layer": serialize_layer(layer),
                                "weights": len(layer.get_weights()),
                                "build_shape": None if shape is None else list(shape)})
        return {"name": self.name, "layers": entries}

    def _arrays(self, prefix):
        out = {}
        for i, layer in enumerate(self.layers):
            p = f"{prefix}.{i}"
            if isinstance(layer, (QuantizedLSTM, QuantizedBidirectional, QuantizedDense)):
                out.update(layer._arrays(p))
            else:
                for j, w in enumerate(layer.get_weights()):
                    out[f"{p}.{j}"] = np.ascontiguousarray(w)
        return out

    @classmethod
    def _restore(cls, dtype, cfg, arrays, prefix):
        from .layers._registry import deserialize_layer
        layers = []
        for i, entry in enumerate(cfg["layers"]):
            p = f"{prefix}.{i}"
            kind = entry["class_name"]
            if kind == "FloatLayer":
                layer = deserialize_layer(entry["layer"])
                n = int(entry["weights"])
                if n and not layer.built:
                    # Built by a call, not by a declared shape: the weights fix it.
                    layer.build(tuple(entry.get("build_shape") or (None, None)))
                if n:
                    layer.set_weights([arrays[f"{p}.{j}"] for j in range(n)])
            else:
                layer = _CLASSES[kind]._restore(dtype, entry["config"], arrays, p)
            layers.append(layer)
        return cls(layers, dtype, cfg["name"])


def _quantize_layer(layer, dtype):
    from .layers import LSTM, Bidirectional, Dense
    if isinstance(layer, LSTM):
        return QuantizedLSTM.from_layer(layer, dtype)
    if isinstance(layer, Bidirectional):
        return QuantizedBidirectional.from_layer(layer, dtype)
    if isinstance(layer, Dense):
        return QuantizedDense.from_layer(layer, dtype)
    if layer.get_weights() and not layer.built:
        raise ValueError(f"Layer {layer.name!r} is not built.")
    return copy.deepcopy(layer)


# -- PyTorch-style LSTM ------------------------------------------------------------

class QuantizedTorchLSTM(_Inference):
    """An inference-only :class:`cylstm.nn.LSTM` (all layers, directions and the
    projection quantized): ``output, (h_n, c_n) = lstm(input, hx)`` as torch's."""

    dtype = np.dtype(_F32)
    training = False

    def __init__(self, weight_dtype: str, input_size: int, hidden_size: int,
                 num_layers: int, bias: bool, batch_first: bool, bidirectional: bool,
                 proj_size: int, slots: List[List[Dict[str, Any]]],
                 reverse_only: bool = False) -> None:
        self.weight_dtype = _check_dtype(weight_dtype)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        self._reverse_only = bool(reverse_only)
        self._slots = slots   # [layer][direction] -> {"W", "U", "R", "b"}
        self._kernels = [[_runner(
            s["W"].matrix, s["U"].matrix, None if s["R"] is None else s["R"].matrix, s["b"])
            for s in row] for row in slots]
        self._zero_states: Optional[Tuple[np.ndarray, np.ndarray]] = None   # of _one_step
        self._one_layer = len(self._kernels) == 1 and len(self._kernels[0]) == 1

    @classmethod
    def from_module(cls, module: Any, dtype: str) -> "QuantizedTorchLSTM":
        """Quantize a :class:`cylstm.nn.LSTM`."""
        _check_activations(module._activation, module._recurrent_activation, "this nn.LSTM")
        D = module.num_directions
        if any(module._extended_cell(i) is not None for i in range(module.num_layers * D)):
            raise ValueError("quantize does not support ONNX's peepholes, clip or "
                             "input_forget (this nn.LSTM came from such an ONNX node).")
        slots = []
        for row in module._slots:
            slots.append([{
                "W": _QWeight.from_float(dtype, s.kernel),
                "U": _QWeight.from_float(dtype, s.recurrent),
                "R": None if s.projection is None else _QWeight.from_float(dtype, s.projection),
                "b": _float_bias(s.bias(), 4 * module.hidden_size)} for s in row])
        return cls(dtype, module.input_size, module.hidden_size, module.num_layers,
                   module.bias, module.batch_first, module.bidirectional, module.proj_size,
                   slots, module._reverse_only)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self):
        return self.proj_size or self.hidden_size

    def __repr__(self) -> str:
        return (f"QuantizedTorchLSTM({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, dtype={self.weight_dtype})")

    def train(self, mode: bool = True) -> "QuantizedTorchLSTM":
        if mode:
            raise _training_error(self)
        return self

    def eval(self) -> "QuantizedTorchLSTM":
        return self

    def _prepare(self, input, hx):
        from .nn import LSTM
        return LSTM._prepare(self, input, hx)  # type: ignore[arg-type]

    def forward(self, input: Any, hx: Optional[Tuple[Any, Any]] = None
                ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """``output, (h_n, c_n)`` with torch.nn.LSTM's shapes."""
        if (hx is None and type(input) is np.ndarray and input.dtype == _F32
                and input.ndim == 3 and input.shape[2] == self.input_size
                and input.shape[int(self.batch_first)] > 0):
            # The common serving call: skip the general argument handling.
            x, time_major, batched = input, not self.batch_first, True
            B = input.shape[0] if self.batch_first else input.shape[1]
            if len(self._kernels) == 1 and len(self._kernels[0]) == 1 \
                    and input.shape[int(self.batch_first)] == 1:
                done = self._one_step(input, B)
                if done is not None:
                    return done
            LD = self.num_layers * self.num_directions
            h0 = np.zeros((LD, B, self._out_size), _F32)
            c0 = np.zeros((LD, B, self.hidden_size), _F32)
        else:
            x, time_major, batched, h0, c0 = self._prepare(input, hx)
        D = self.num_directions
        h_n = np.empty(h0.shape, _F32)
        c_n = np.empty(c0.shape, _F32)
        layer_input = x if time_major else x.transpose(1, 0, 2)
        for layer, row in enumerate(self._kernels):
            outs = []
            for d, kernel in enumerate(row):
                idx = layer * D + d
                backwards = d == 1 or self._reverse_only
                xin = layer_input[::-1] if backwards else layer_input
                seq, h, c, _ = kernel.run(xin, h0[idx], c0[idx], None, True)
                outs.append(seq[::-1] if backwards else seq)
                h_n[idx], c_n[idx] = h, c
            layer_input = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
        out = layer_input if time_major else layer_input.transpose(1, 0, 2)
        if not out.flags.c_contiguous:
            out = np.ascontiguousarray(out)
        if not batched:
            return out[:, 0], (h_n[:, 0], c_n[:, 0])
        return out, (h_n, c_n)

    def __call__(self, input: Any, hx: Optional[Tuple[Any, Any]] = None
                 ) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """``forward(input, hx)``. A one-step call of a one-layer, one-direction
        module from zero states (one-step serving) goes straight to the
        kernel's step, which checks the array itself; anything it does not
        take runs ``forward``."""
        if hx is None and self._one_layer and type(input) is np.ndarray and input.ndim == 3:
            shape = input.shape
            B, T = (shape[0], shape[1]) if self.batch_first else (shape[1], shape[0])
            if T == 1 and B > 0:
                done = self._one_step(input, B)
                if done is not None:
                    return done
        return self.forward(input, hx)

    def _one_step(self, x, B):
        """``forward`` of one step of a one-layer, one-direction LSTM from zero
        states through the kernel's ``step`` (one-step serving, where the
        general path's array handling cost as much as a 256-unit step), or
        None when the kernel wants the general path."""
        zeros = self._zero_states
        if zeros is None or zeros[0].shape[0] != B:
            zeros = self._zero_states = (np.zeros((B, self._out_size), _F32),
                                         np.zeros((B, self.hidden_size), _F32))
        x1 = x[:, 0] if self.batch_first else x[0]
        got = self._kernels[0][0].step(x1, zeros[0], zeros[1])
        if got is None:
            return None
        h, c = got
        out = h.reshape((B, 1, -1) if self.batch_first else (1, B, -1)).copy()
        return out, (h[None], c[None])

    def forward_train(self, *args: Any, **kwargs: Any) -> Any:
        raise _training_error(self)

    def _config(self):
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bias": self.bias,
                "batch_first": self.batch_first, "bidirectional": self.bidirectional,
                "proj_size": self.proj_size, "reverse_only": self._reverse_only}

    def _arrays(self, prefix):
        out = {}
        for layer, row in enumerate(self._slots):
            for d, s in enumerate(row):
                p = f"{prefix}.{layer}.{d}"
                out.update(s["W"].arrays(p + ".W"))
                out.update(s["U"].arrays(p + ".U"))
                if s["R"] is not None:
                    out.update(s["R"].arrays(p + ".R"))
                out[p + ".b"] = s["b"]
        return out

    @classmethod
    def _restore(cls, dtype, cfg, arrays, prefix):
        D = 2 if cfg["bidirectional"] else 1
        slots = []
        for layer in range(int(cfg["num_layers"])):
            row = []
            for d in range(D):
                p = f"{prefix}.{layer}.{d}"
                row.append({"W": _QWeight.from_arrays(dtype, arrays, p + ".W"),
                            "U": _QWeight.from_arrays(dtype, arrays, p + ".U"),
                            "R": (_QWeight.from_arrays(dtype, arrays, p + ".R")
                                  if int(cfg["proj_size"]) else None),
                            "b": arrays[p + ".b"]})
            slots.append(row)
        obj = cls(dtype, cfg["input_size"], cfg["hidden_size"], cfg["num_layers"], cfg["bias"],
                  cfg["batch_first"], cfg["bidirectional"], cfg["proj_size"], slots,
                  cfg["reverse_only"])
        obj._check_shapes()
        return obj

    def _check_shapes(self):
        H, P = self.hidden_size, self._out_size
        for layer, row in enumerate(self._slots):
            size_in = self.input_size if layer == 0 else P * self.num_directions
            for s in row:
                ok = (s["W"].shape == (size_in, 4 * H) and s["U"].shape == (P, 4 * H)
                      and s["b"].shape == (4 * H,)
                      and (s["R"] is None or s["R"].shape == (H, P)))
                if not ok:
                    raise ValueError("the weights do not fit the LSTM's sizes")


_CLASSES = {c.__name__: c for c in (QuantizedLSTM, QuantizedBidirectional, QuantizedDense,
                                    QuantizedSequential, QuantizedTorchLSTM)}


def quantize(obj: Any, dtype: str = "int8") -> Any:
    """An inference-only copy of ``obj`` with int8 or bfloat16 weights.

    Parameters
    ----------
    obj : cylstm.layers.LSTM, cylstm.layers.Bidirectional, cylstm.nn.LSTM or cylstm.Sequential
        A built model or layer (a Sequential's LSTM, Bidirectional and Dense
        layers are quantized; its other layers are copied). LSTMs must use
        tanh and sigmoid.
    dtype : {"int8", "bfloat16"}, default "int8"
        ``"int8"``: symmetric int8 weights with one scale per output column,
        inputs quantized per row and step, int32 sums. ``"bfloat16"``:
        bfloat16 weights and inputs, float32 sums. Gates and states stay float32.

    Returns
    -------
    QuantizedLSTM, QuantizedBidirectional, QuantizedTorchLSTM or QuantizedSequential
        Called as ``obj`` is; training it raises ``TypeError``.

    Raises
    ------
    TypeError
        For another kind of object.
    ValueError
        For an unknown dtype, an unbuilt layer or unsupported activations.
    """
    _check_dtype(dtype)
    from .layers import LSTM, Bidirectional, Dense
    from ._serialization import MODELS
    from .nn import LSTM as TorchLSTM
    # Looked up, not imported: cylstm.models.load_model reads quantized files
    # through this module (a Sequential passed here has registered itself).
    Sequential = MODELS.class_named("Sequential")
    if Sequential is not None and isinstance(obj, Sequential):
        return QuantizedSequential.from_model(obj, dtype)
    if isinstance(obj, (LSTM, Bidirectional, Dense)):
        return _quantize_layer(obj, dtype)
    if isinstance(obj, TorchLSTM):
        return QuantizedTorchLSTM.from_module(obj, dtype)
    raise TypeError(f"quantize takes a cylstm.layers.LSTM, Bidirectional, Dense, nn.LSTM or "
                    f"Sequential; got {type(obj).__name__}.")


# -- saving ------------------------------------------------------------------------

CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "weights.npz"


def save_quantized(obj: Any, filepath: Union[str, "os.PathLike[str]"]) -> None:
    """Write a quantized object to ``filepath`` atomically (zip: config.json +
    weights.npz; no pickle)."""
    if type(obj).__name__ not in _CLASSES or not isinstance(obj, _Inference):
        raise TypeError(f"save_quantized takes an object made by cylstm.quantize; got "
                        f"{type(obj).__name__}.")
    path = os.fspath(filepath)
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "cylstm_version": __version__, "dtype": obj.weight_dtype,
              "class_name": type(obj).__name__, "config": obj._config()}
    try:
        config_bytes = json.dumps(config, indent=1, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueError(f"Cannot save to {path!r}: the config is not JSON serializable "
                         f"({e}); Python-callable activations cannot be saved.") from None
    buf = io.BytesIO()
    np.savez(buf, **obj._arrays("w"))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                zf.writestr(CONFIG_MEMBER, config_bytes, compress_type=zipfile.ZIP_DEFLATED)
                zf.writestr(WEIGHTS_MEMBER, buf.getvalue(), compress_type=zipfile.ZIP_STORED)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_quantized(filepath: Union[str, "os.PathLike[str]"]) -> Any:
    """Read an object written by :func:`save_quantized` (or ``obj.save``).

    Raises
    ------
    ValueError
        Naming the path, for anything wrong with the file.
    """
    from ._npz import NpzError, NpzReader
    path = os.fspath(filepath)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if names != {CONFIG_MEMBER, WEIGHTS_MEMBER}:
                raise ValueError(f"members {sorted(names)}, expected {CONFIG_MEMBER} and "
                                 f"{WEIGHTS_MEMBER}")
            info = zf.getinfo(CONFIG_MEMBER)
            if info.file_size > 16 * 2**20:
                raise ValueError("config.json is too large")
            config = json.loads(zf.read(CONFIG_MEMBER).decode("utf-8"))
            if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
                raise ValueError(f"not a {FORMAT_NAME} file")
            if config.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {config.get('format_version')!r}; this "
                                 f"cylstm reads {FORMAT_VERSION}")
            dtype = _check_dtype(config.get("dtype"))
            cls = _CLASSES.get(config.get("class_name"))
            if cls is None:
                raise ValueError(f"unknown class {config.get('class_name')!r}")
            with zf.open(WEIGHTS_MEMBER) as wf:
                data = io.BytesIO(wf.read())
            with NpzReader(data, kinds="fiu") as npz:
                arrays = {name: npz.read(name) for name in npz.headers}
            return cls._restore(dtype, config["config"], arrays, "w")
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, NpzError, ValueError, TypeError, KeyError, OSError,
            UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot load a quantized model from {path!r}: {e}") from None
