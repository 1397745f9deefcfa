"""ONNX ``LSTM`` nodes on cylstm's kernels: ``cylstm.from_onnx(path_or_model)``.

Reading a model needs the ``onnx`` package (``pip install 'cylstm[onnx]'``);
running it needs only NumPy. ``from_onnx`` returns an ``OnnxLSTM``, which is a
``cylstm.nn.LSTM`` (``isinstance`` holds) with the node's weights:

    lstm = cylstm.from_onnx("model.onnx")
    output, (h_n, c_n) = lstm(x, hx=None)        # torch's call and shapes
    Y, Y_h, Y_c = lstm.run(X, sequence_lens=None, initial_h=None, initial_c=None)

``lstm(...)`` is ``torch.nn.LSTM``'s call (layout 1 as ``batch_first``, output
(seq, batch, D*H)), with an optional ``sequence_lens=`` keyword for ONNX's
per-row lengths. ``lstm.run(...)`` gives the node's outputs with ONNX's shapes
and semantics: layout 0 ``Y`` (seq, D, batch, H), ``Y_h``/``Y_c`` (D, batch,
H); layout 1 ``Y`` (batch, seq, D, H), ``Y_h``/``Y_c`` (batch, D, H).

Conversion, done once at load time: ONNX gate blocks i, o, f, c become
torch's i, f, g, o; ``B = [Wb, Rb]`` becomes ``bias_ih = Wb``, ``bias_hh = Rb``
(the kernel adds them); a missing ``B`` gives ``bias=False``. ``initial_h``,
``initial_c`` and ``sequence_lens`` stored as initializers become defaults of
both calls; given as graph inputs (or computed by other nodes, as torch's
exporter does for zero states) they are passed in and default to zeros / full
length.

``sequence_lens`` uses the kernel's mask (step t of row b is valid when
t < len[b]): masked steps carry the state, which gives ONNX's semantics -- the
forward direction stops after len-1, the reverse one starts at len-1 (padding
never enters the state) and ends at t = 0 -- and the outputs of masked steps are
set to 0.0, as onnxruntime writes them. Lengths must be in 1..seq_length, as
onnxruntime requires.

Not supported (ValueError naming them): the ``clip`` attribute, ``input_forget=1``,
non-zero peepholes ``P``, and activations other than Sigmoid, Tanh, Relu,
Softsign, or a cell-input activation (g) different from the output one (h):
the kernel uses one activation for both, as Keras and torch do. Both
directions must use the same activations.
"""
import os

import numpy as np

from .. import activations as _activations
from .._loading import file_errors
from .._validation import as_float_array, check_weight_sizes
from ..layers.base import deferred_weights
from ..nn.lstm import LSTM
from .onnx_tensors import LazyConstants, check_lstm_dims

__all__ = ["from_onnx", "OnnxLSTM"]

# torch gate block k (i, f, g, o) is ONNX gate block ONNX_TO_TORCH[k] (i, o, f, c).
ONNX_TO_TORCH = (0, 2, 3, 1)

# ONNX activation names cylstm's kernel computes (parameter-free ones only).
_ONNX_ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu",
                     "softsign": "softsign"}


def _reorder_gates(w, hidden_size):
    """ONNX (4H, ...) in i, o, f, c -> torch (4H, ...) in i, f, g, o."""
    blocks = w.reshape((4, hidden_size) + w.shape[1:])
    return np.ascontiguousarray(blocks[list(ONNX_TO_TORCH)].reshape(w.shape))


def _import_onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ImportError("cylstm.from_onnx needs the `onnx` package: "
                          "pip install 'cylstm[onnx]' (or pip install onnx).") from exc
    return onnx, numpy_helper


def _load_model(onnx, path_or_model):
    """(ModelProto, folder of its external data or None). External data is
    not read here: onnx_tensors reads the tensors from_onnx needs, checked."""
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model, None
    if isinstance(path_or_model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(path_or_model)), None
    if isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No ONNX file at {path!r}.")
        if not os.path.isfile(path):
            raise ValueError(f"{path!r} is not a regular file; not an ONNX model.")
        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise ValueError(f"{path!r} is not a readable ONNX model: {exc}") from None
        return model, os.path.dirname(os.path.abspath(path))
    raise TypeError("from_onnx expects a path, an onnx.ModelProto or the model's bytes; got "
                    f"{type(path_or_model).__name__}.")


def _constants(graph, onnx, numpy_helper, base_dir):
    """Arrays known at load time: initializers and Constant nodes' values, each
    converted (and its size checked) only when asked for."""
    return LazyConstants(graph, onnx, numpy_helper, base_dir)


def _attributes(onnx, node):
    out = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        out[attr.name] = value
    return out


def _activation_names(attrs, num_directions, node_name):
    names = attrs.get("activations")
    if not names:
        return "sigmoid", "tanh"
    if len(names) != 3 * num_directions:
        raise ValueError(f"ONNX LSTM node {node_name!r}: `activations` must list 3 per "
                         f"direction ({3 * num_directions}); got {names}.")
    per_direction = []
    for d in range(num_directions):
        f, g, h = names[3 * d:3 * d + 3]
        for name in (f, g, h):
            if name.lower() not in _ONNX_ACTIVATIONS:
                raise ValueError(
                    f"ONNX LSTM node {node_name!r} uses activation {name!r}, which cylstm "
                    f"does not support; supported: Sigmoid, Tanh, Relu, Softsign.")
        if g.lower() != h.lower():
            raise ValueError(
                f"ONNX LSTM node {node_name!r} uses different cell-input ({g!r}) and output "
                f"({h!r}) activations; cylstm's kernel uses one activation for both.")
        per_direction.append((_ONNX_ACTIVATIONS[f.lower()], _ONNX_ACTIVATIONS[g.lower()]))
    if len(set(per_direction)) != 1:
        raise ValueError(f"ONNX LSTM node {node_name!r} uses different activations per "
                         f"direction ({names}); cylstm needs the same in both.")
    return per_direction[0]


def from_onnx(path_or_model, node_name=None):
    """The ``cylstm.nn.LSTM`` (an ``OnnxLSTM``) of the first ``LSTM`` node of an
    ONNX model, or of the one named ``node_name``: a path, an
    ``onnx.ModelProto`` or the model's bytes.

    Whatever is wrong with the model raises ``ValueError`` naming it (a missing
    path: ``FileNotFoundError``). Only the tensors the node uses are read, each
    after its declared size is checked (docs/security.md)."""
    onnx, _ = _import_onnx()
    if not isinstance(path_or_model, (str, os.PathLike, bytes, bytearray, onnx.ModelProto)):
        raise TypeError("from_onnx expects a path, an onnx.ModelProto or the model's bytes; "
                        f"got {type(path_or_model).__name__}.")
    if isinstance(path_or_model, (str, os.PathLike)):
        source = repr(os.fspath(path_or_model))
    elif isinstance(path_or_model, (bytes, bytearray)):
        source = f"(ONNX model of {len(path_or_model)} bytes)"
    else:
        source = "(ONNX model)"
    if isinstance(path_or_model, (str, os.PathLike)) \
            and not os.path.exists(os.fspath(path_or_model)):
        from ..saving import ModelFileNotFoundError
        raise ModelFileNotFoundError(f"No ONNX file at {source}.")
    with file_errors(source, "Cannot load the ONNX model"):
        return _from_onnx(path_or_model, node_name)


def _from_onnx(path_or_model, node_name=None):
    onnx, numpy_helper = _import_onnx()
    model, base_dir = _load_model(onnx, path_or_model)
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if node_name is not None:
        nodes = [n for n in nodes if n.name == node_name]
    if not nodes:
        ops = sorted({n.op_type for n in graph.node})
        which = f"named {node_name!r} " if node_name is not None else ""
        raise ValueError(f"The ONNX graph has no LSTM node {which}(its ops: {ops}).")
    node = nodes[0]
    label = node.name or (node.output[0] if node.output else "LSTM")
    attrs = _attributes(onnx, node)
    consts = _constants(graph, onnx, numpy_helper, base_dir)
    names = list(node.input) + [""] * (8 - len(node.input))
    x_name, w_name, r_name, b_name, lens_name, h_name, c_name, p_name = names[:8]

    for attr in ("clip",):
        if attr in attrs:
            raise ValueError(f"ONNX LSTM node {label!r} sets `{attr}` (cell clipping), which "
                             "cylstm does not support.")
    if attrs.get("input_forget", 0):
        raise ValueError(f"ONNX LSTM node {label!r} sets `input_forget`=1 (coupled input and "
                         "forget gates), which cylstm does not support.")
    if p_name:
        if p_name not in consts:
            raise ValueError(f"ONNX LSTM node {label!r} has peepholes `P` computed at run "
                             "time; cylstm does not support peepholes.")
        if np.any(consts[p_name] != 0):
            raise ValueError(f"ONNX LSTM node {label!r} has non-zero peepholes `P`, which "
                             "cylstm does not support.")

    def const(name, what):
        if name not in consts:
            raise ValueError(f"ONNX LSTM node {label!r}: input {what} ({name!r}) must be an "
                             "initializer or a Constant to be loaded.")
        return consts[name]

    check_lstm_dims(consts, w_name, r_name, b_name, label, check_weight_sizes)
    W = const(w_name, "W")
    R = const(r_name, "R")
    B = const(b_name, "B") if b_name else None
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"ONNX LSTM node {label!r}: unknown direction {direction!r}.")
    D = 2 if direction == "bidirectional" else 1
    if W.ndim != 3 or W.shape[0] != D or W.shape[1] % 4:
        raise ValueError(f"ONNX LSTM node {label!r}: W must have shape [{D}, 4*hidden, input]; "
                         f"got {list(W.shape)}.")
    H = W.shape[1] // 4
    I = W.shape[2]
    if int(attrs.get("hidden_size", H)) != H or R.shape != (D, 4 * H, H):
        raise ValueError(f"ONNX LSTM node {label!r}: hidden_size {attrs.get('hidden_size')}, "
                         f"W {list(W.shape)} and R {list(R.shape)} disagree.")
    if B is not None and B.shape != (D, 8 * H):
        raise ValueError(f"ONNX LSTM node {label!r}: B must have shape [{D}, {8 * H}]; got "
                         f"{list(B.shape)}.")
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        raise ValueError(f"ONNX LSTM node {label!r}: layout must be 0 or 1; got {layout}.")
    recurrent_activation, activation = _activation_names(attrs, D, label)

    dtype = np.float64 if W.dtype == np.float64 else np.float32
    with deferred_weights(W.size + R.size + (B.size if B is not None else 0)):
        lstm = OnnxLSTM(I, H, num_layers=1, bias=B is not None, batch_first=layout == 1,
                        bidirectional=D == 2, dtype=dtype)
    state = {}
    for d in range(D):
        suffix = "_l0_reverse" if d == 1 else "_l0"
        state["weight_ih" + suffix] = _reorder_gates(W[d], H)
        state["weight_hh" + suffix] = _reorder_gates(R[d], H)
        if B is not None:
            state["bias_ih" + suffix] = _reorder_gates(B[d, :4 * H], H)
            state["bias_hh" + suffix] = _reorder_gates(B[d, 4 * H:], H)
    lstm.load_state_dict(state)
    lstm.eval()
    lstm._reverse_only = direction == "reverse"
    lstm._activation = _activations.get(activation)
    lstm._recurrent_activation = _activations.get(recurrent_activation)
    lstm.direction = direction
    lstm.node_name = node.name
    lstm.input_names = dict(X=x_name, sequence_lens=lens_name, initial_h=h_name,
                            initial_c=c_name)
    lstm.output_names = list(node.output)
    lstm.default_sequence_lens = consts.get(lens_name) if lens_name else None
    lstm.default_initial_h = consts.get(h_name) if h_name else None
    lstm.default_initial_c = consts.get(c_name) if c_name else None
    return lstm


class OnnxLSTM(LSTM):
    """A ``cylstm.nn.LSTM`` loaded from one ONNX ``LSTM`` node.

    As a ``cylstm.nn.LSTM`` it has torch's call, shapes, names and training
    (``output, (h_n, c_n) = lstm(x, hx=None)``, ``state_dict()``,
    ``forward_train``, ``to_torch()``), ``batch_first`` = ``layout == 1``.
    ``run(X, sequence_lens=None, initial_h=None, initial_c=None)`` gives the
    node's own ``(Y, Y_h, Y_c)`` with ONNX's shapes for its ``layout``.
    ``initial_h``, ``initial_c`` and ``sequence_lens`` stored in the model
    (initializers) are the defaults of both calls, so ``lstm(x)`` gives the
    node's numbers.
    """

    _module_name = "OnnxLSTM"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.direction = "bidirectional" if self.bidirectional else "forward"
        self.layout = 1 if self.batch_first else 0
        self.node_name = ""
        self.input_names = {}
        self.output_names = []
        self.default_sequence_lens = None
        self.default_initial_h = None
        self.default_initial_c = None

    def _state(self, value, default, name, B):
        """A state in ONNX's shape for the layout -> (D, batch, H) for the kernel."""
        D, H = self.num_directions, self.hidden_size
        stored = value is None and default is not None
        if value is None:
            value = default
        if value is None:
            return np.zeros((D, B, H), self.dtype)
        s = as_float_array(value, self.dtype, name)
        expected = (D, B, H) if self.layout == 0 else (B, D, H)
        if s.shape != expected:
            origin = "the model's stored " if stored else ""
            raise ValueError(f"{origin}`{name}` must have shape {list(expected)} (layout "
                             f"{self.layout}, batch {B}); got {list(s.shape)}.")
        if self.layout == 1:
            s = s.transpose(1, 0, 2)
        return np.ascontiguousarray(s)

    def _lengths(self, value, B, T):
        if value is None:
            value = self.default_sequence_lens
        if value is None:
            return None
        lens = np.asarray(value)
        if lens.dtype.kind not in "iu":
            raise TypeError(f"`sequence_lens` must hold integers; got dtype {lens.dtype}.")
        if lens.shape != (B,):
            raise ValueError(f"`sequence_lens` must have shape [{B}] (one per batch row); got "
                             f"{list(lens.shape)}.")
        if lens.size and (lens.min() < 1 or lens.max() > T):
            raise ValueError(f"`sequence_lens` values must be in 1..{T} (seq_length), as "
                             f"onnxruntime requires; got {lens.tolist()}.")
        if np.all(lens == T):
            return None
        return lens.astype(np.int64)

    def _mask(self, lens, T, time_major):
        if lens is None:
            return None
        valid = np.arange(T)[None, :] < lens[:, None]  # (batch, seq)
        return np.ascontiguousarray(valid.T if time_major else valid)

    def _has_stored_states(self):
        return self.default_initial_h is not None or self.default_initial_c is not None

    def forward(self, input, hx=None, sequence_lens=None):
        """``output, (h_n, c_n)`` in torch's shapes (input 3-D, or unbatched 2-D).

        Without ``hx`` the node's stored initial states apply (zeros when it has
        none); ``sequence_lens`` (one length per batch row, default: the node's
        stored one) gives ONNX's per-row lengths, with zeros in ``output``
        beyond each row's length.
        """
        x, time_major, batched, h0, c0 = self._prepare(input, hx)
        T, B = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        if hx is None and self._has_stored_states():
            h0 = self._state(None, self.default_initial_h, "initial_h", B)
            c0 = self._state(None, self.default_initial_c, "initial_c", B)
        mask = self._mask(self._lengths(sequence_lens, B, T), T, time_major)
        out, h_n, c_n, _, _ = self._run(x, time_major, h0, c0, False, mask=mask,
                                        zero_masked=True)
        if not batched:
            return out[:, 0], (h_n[:, 0], c_n[:, 0])
        return out, (h_n, c_n)

    def forward_train(self, input, hx=None):
        """As ``cylstm.nn.LSTM.forward_train``; without ``hx`` the node's stored
        initial states apply (and ``backprop`` returns dx alone)."""
        if self.default_sequence_lens is not None:
            raise ValueError("forward_train cannot use the stored `sequence_lens` of this ONNX "
                             "node; train a cylstm.nn.LSTM with its weights "
                             "(cylstm.nn.LSTM.from_torch(node.state_dict())) instead.")
        if hx is not None or not self._has_stored_states():
            return super().forward_train(input, hx)
        x = as_float_array(input, self.dtype, "input")
        B = 1 if x.ndim == 2 else (x.shape[0] if self.batch_first else x.shape[1])
        h0 = self._state(None, self.default_initial_h, "initial_h", B)
        c0 = self._state(None, self.default_initial_c, "initial_c", B)
        if x.ndim == 2:
            h0, c0 = h0[:, 0], c0[:, 0]
        result, backprop = super().forward_train(x, (h0, c0))

        def backprop_dx(dy):
            return backprop(dy)[0]

        return result, backprop_dx

    def run(self, X, sequence_lens=None, initial_h=None, initial_c=None):
        """``(Y, Y_h, Y_c)`` exactly as the ONNX node computes them: layout 0
        ``X`` [seq, batch, in] -> ``Y`` [seq, D, batch, H], states [D, batch, H];
        layout 1 ``X`` [batch, seq, in] -> ``Y`` [batch, seq, D, H], states
        [batch, D, H]."""
        x = as_float_array(X, self.dtype, "X")
        if x.ndim != 3:
            axes = "[seq, batch, input]" if self.layout == 0 else "[batch, seq, input]"
            raise ValueError(f"`X` must be 3-D {axes} (layout {self.layout}); got shape "
                             f"{list(x.shape)}.")
        time_major = self.layout == 0
        T, B = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        if x.shape[2] != self.input_size:
            raise ValueError(f"`X` must have {self.input_size} features (last axis); got "
                             f"shape {list(x.shape)}.")
        if T == 0:
            raise ValueError("`X` has 0 timesteps; an LSTM needs at least one.")
        h0 = self._state(initial_h, self.default_initial_h, "initial_h", B)
        c0 = self._state(initial_c, self.default_initial_c, "initial_c", B)
        mask = self._mask(self._lengths(sequence_lens, B, T), T, time_major)
        out, h_n, c_n, _, _ = self._run(x, time_major, h0, c0, False, mask=mask,
                                        zero_masked=True)
        D, H = self.num_directions, self.hidden_size
        if time_major:
            Y = out.reshape(T, B, D, H).transpose(0, 2, 1, 3)   # [seq, D, batch, H]
            return np.ascontiguousarray(Y), h_n, c_n
        Y = out.reshape(B, T, D, H)                               # [batch, seq, D, H]
        return Y, np.ascontiguousarray(h_n.transpose(1, 0, 2)), \
            np.ascontiguousarray(c_n.transpose(1, 0, 2))
