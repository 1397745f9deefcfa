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

The whole operator (opset 7 on): peepholes ``P`` (i and f see c_{t-1}, o sees
c_t), ``clip`` (pre-activations clamped before their activation),
``input_forget`` (f = 1 - i), every RNN activation ONNX lists with its
``activation_alpha``/``activation_beta`` (onnxruntime's defaults and order of
consumption, see cylstm/_kernels/onnx_activations.py), and different
activations per direction. A node that uses none of these beyond f = Sigmoid
and one of Tanh/Relu/Softsign for g and h runs on the common kernel path (and
trains); any other runs on the extended compiled kernel
(``CpuBackend.lstm_forward_ext``), for inference only: ``forward_train`` and
``to_torch`` raise ValueError for it. An all-zero ``P`` counts as none.

Weights: W, R, B, P may be initializers, ``Constant`` outputs or graph inputs.
Graph inputs are passed by their input names, at run time
(``lstm.run_feeds({"X": x, "W": w, ...})``, as onnxruntime takes them) or bound
once (``lstm = lstm.bind({"W": w, ...})``, or ``from_onnx(path,
weights={...})``); calling a node whose weights are not bound raises
ValueError naming the missing inputs. Errors name the node by its name, or
by its index and op type (``#3 (LSTM, unnamed)``) when it has none.
"""
from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple

import numpy as np

from ..backends.cpu import Workspace
from .. import activations as _activations
from .._loading import file_errors
from .._validation import as_float_array, check_weight_sizes
from .._kernels.onnx_activations import parse_activations
from ..layers.base import deferred_weights
from ..nn.lstm import LSTM
from .onnx_tensors import LazyConstants, check_lstm_dims
from .._typing import Array, ArrayLike

__all__ = ["from_onnx", "OnnxLSTM", "node_label"]

# torch gate block k (i, f, g, o) is ONNX gate block ONNX_TO_TORCH[k] (i, o, f, c).
ONNX_TO_TORCH = (0, 2, 3, 1)

# The LSTM operator's attributes (opset 7 on; `layout` from opset 14).
_LSTM_ATTRIBUTES = {"activation_alpha", "activation_beta", "activations", "clip",
                    "direction", "hidden_size", "input_forget", "layout"}
MIN_OPSET = 7


def _reorder_gates(w, hidden_size):
    """ONNX (4H, ...) in i, o, f, c -> torch (4H, ...) in i, f, g, o."""
    blocks = w.reshape((4, hidden_size) + w.shape[1:])
    return np.ascontiguousarray(blocks[list(ONNX_TO_TORCH)].reshape(w.shape))


def _copy_slot(slot):
    """A _Slot with its own arrays (bind() must not write into the original)."""
    new = object.__new__(type(slot))
    for name in type(slot).__slots__:
        value = getattr(slot, name)
        setattr(new, name, None if value is None else value.copy())
    return new


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
        try:
            return onnx.load_from_string(bytes(path_or_model)), None
        except Exception as exc:  # protobuf's DecodeError
            raise ValueError(f"The bytes given are not a readable ONNX model: {exc}") from None
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


def _constants(graph, onnx, numpy_helper, base_dir=None):
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


def node_label(node, index):
    """How errors name a node: its name, or its index and op type when it has none."""
    if node.name:
        return repr(node.name)
    return f"#{index} ({node.op_type}, unnamed)"


def _opset(model):
    """The default-domain opset the model imports (None when it lists none)."""
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx"):
            return int(op.version)
    return None


def _declared_shape(graph, name):
    """The static shape a graph input declares (None for an unknown dim or no shape)."""
    for value in graph.input:
        if value.name == name and value.type.HasField("tensor_type"):
            tt = value.type.tensor_type
            if not tt.HasField("shape"):
                return None, tt.elem_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            return dims, tt.elem_type
    return None, None


def _cells_for(acts, peepholes, clip, input_forget):
    """(module-wide (recurrent_activation, activation) or None, per-direction
    extended-cell options or None). The common kernel path takes a node whose
    directions all use f = Sigmoid and one parameter-free activation for g and
    h, without peepholes, clip or input_forget; anything else runs per
    direction on the extended (ONNX) kernel."""
    common = {"Tanh": "tanh", "Relu": "relu", "Softsign": "softsign"}
    plain = (clip is None and not input_forget and all(p is None for p in peepholes)
             and len({(f.name, g.name, h.name) for f, g, h in acts}) == 1)
    f, g, h = acts[0]
    if plain and f.name == "Sigmoid" and g.name == h.name and g.name in common:
        return ("sigmoid", common[g.name]), None
    return None, [dict(gate_activation=a[0], candidate_activation=a[1], cell_activation=a[2],
                       peephole=p, clip=clip, input_forget=bool(input_forget))
                  for a, p in zip(acts, peepholes)]


class _NodeSpec:
    """What one LSTM node says, checked: sizes, attributes, input names."""

    def __init__(self, onnx, graph, node, index, consts, opset, weights=None):
        self.label = label = node_label(node, index)
        where = f"ONNX LSTM node {label}"
        if opset is not None and opset < MIN_OPSET:
            raise ValueError(f"{where}: the model imports opset {opset}; cylstm reads LSTM "
                             f"from opset {MIN_OPSET} on.")
        attrs = _attributes(onnx, node)
        unknown = sorted(set(attrs) - _LSTM_ATTRIBUTES)
        if unknown:
            raise ValueError(f"{where} has attribute(s) {unknown} that the LSTM operator "
                             f"(opset {MIN_OPSET}+) does not define.")
        if len(node.input) > 8:
            raise ValueError(f"{where} has {len(node.input)} inputs; LSTM takes at most 8.")
        names = list(node.input) + [""] * (8 - len(node.input))
        (self.x_name, self.w_name, self.r_name, self.b_name, self.lens_name, self.h_name,
         self.c_name, self.p_name) = names
        for what, name in (("X", self.x_name), ("W", self.w_name), ("R", self.r_name)):
            if not name:
                raise ValueError(f"{where} is missing its required input {what}.")
        self.direction = attrs.get("direction", "forward")
        if self.direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(f"{where}: unknown direction {self.direction!r}; expected "
                             "'forward', 'reverse' or 'bidirectional'.")
        self.D = D = 2 if self.direction == "bidirectional" else 1
        self.layout = int(attrs.get("layout", 0))
        if self.layout not in (0, 1):
            raise ValueError(f"{where}: layout must be 0 or 1; got {self.layout}.")
        self.input_forget = int(attrs.get("input_forget", 0))
        if self.input_forget not in (0, 1):
            raise ValueError(f"{where}: input_forget must be 0 or 1; got {self.input_forget}.")
        clip = attrs.get("clip")
        if clip is not None and not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"{where}: clip must be a positive number; got {clip}.")
        self.clip = None if clip is None else float(clip)
        try:
            self.acts = parse_activations(attrs.get("activations"),
                                          attrs.get("activation_alpha"),
                                          attrs.get("activation_beta"), D)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        hidden = attrs.get("hidden_size")
        # Sizes: from W when it is known now, else from the declared input shape.
        # Declared dims first: nothing is read before the sizes are checked.
        if weights and self.w_name in weights:
            value = np.asarray(weights[self.w_name])
            wshape, dtype = list(value.shape), value.dtype
        elif self.w_name in consts:
            wshape, dtype = list(consts.dims(self.w_name)), consts.dtype(self.w_name)
        else:
            wshape, elem = _declared_shape(graph, self.w_name)
            dtype = np.float64 if elem == onnx.TensorProto.DOUBLE else np.float32
            if elem is None:
                raise ValueError(f"{where}: input W ({self.w_name!r}) is neither an "
                                 "initializer, a Constant nor a graph input.")
        if wshape is None or len(wshape) != 3 or None in wshape:
            raise ValueError(f"{where}: W ({self.w_name!r}) is a graph input without a "
                             f"static shape [{D}, 4*hidden, input] (declared {wshape}); "
                             "pass its value: from_onnx(model, weights={name: array}).")
        if wshape[0] != D or wshape[1] % 4 or wshape[1] == 0 or wshape[2] == 0:
            raise ValueError(f"{where}: W must have shape [{D}, 4*hidden_size, input_size]; "
                             f"got {wshape}.")
        self.H = wshape[1] // 4
        self.I = wshape[2]
        if hidden is not None and int(hidden) != self.H:
            raise ValueError(f"{where}: hidden_size {hidden} disagrees with W {wshape} "
                             f"(4*hidden_size = {wshape[1]}).")
        check_weight_sizes(self.I, self.H, self.H, label)
        self.dtype = np.float64 if dtype == np.float64 else np.float32
        self.output_names = list(node.output)

    def weights(self, values):
        """W, R, B, P (None when absent) from ``values`` (name -> array), checked."""
        where = f"ONNX LSTM node {self.label}"
        D, H, I = self.D, self.H, self.I
        out = []
        for what, name, shape in (("W", self.w_name, (D, 4 * H, I)),
                                  ("R", self.r_name, (D, 4 * H, H)),
                                  ("B", self.b_name, (D, 8 * H)),
                                  ("P", self.p_name, (D, 3 * H))):
            if not name:
                out.append(None)
                continue
            if name not in values:
                raise ValueError(f"{where}: input {what} ({name!r}) is a graph input; pass "
                                 f"it by name (run_feeds / bind / from_onnx(weights=...)).")
            value = np.asarray(values[name])
            if value.dtype.kind not in "fiu":
                raise TypeError(f"{where}: input {what} ({name!r}) must hold real numbers; "
                                f"got dtype {value.dtype}.")
            if value.shape != shape:
                raise ValueError(f"{where}: input {what} ({name!r}) must have shape "
                                 f"{list(shape)}; got {list(value.shape)}.")
            out.append(value)
        return out


def from_onnx(path_or_model: Any, node_name: Optional[str] = None,
              weights: Optional[Mapping[str, ArrayLike]] = None,
              whole_graph: bool = False) -> Any:
    """The ``cylstm.nn.LSTM`` (an ``OnnxLSTM``) of an ONNX ``LSTM`` node, or
    with ``whole_graph=True`` an ``OnnxModel`` running the whole graph.

    W, R, B and P may be initializers, ``Constant`` outputs or graph inputs;
    graph inputs are given later by name (``run_feeds``, ``bind``) or here in
    ``weights``, which binds them once. ``whole_graph=True`` runs the ops
    exporters put around LSTM nodes (see ``cylstm.interop.onnx_graph``):
    ``model.run(feeds)`` or ``model(x)``.

    Parameters
    ----------
    path_or_model : str, os.PathLike, onnx.ModelProto or bytes
        The model (needs the ``onnx`` package: ``pip install 'cylstm[onnx]'``).
    node_name : str, optional
        Which LSTM node; default: the first.
    weights : mapping of str to array_like, optional
        Values of graph inputs that hold W, R, B or P, by input name.
    whole_graph : bool, default False
        Return an ``OnnxModel`` of the whole graph instead of one node.

    Returns
    -------
    OnnxLSTM or OnnxModel

    Raises
    ------
    ValueError
        If the graph has no such node, or uses something cylstm cannot
        compute (the message names the node and op type).
    """
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
        return _from_onnx(path_or_model, node_name, weights, whole_graph)


# The whole-graph importer (``onnx_graph.OnnxModel``) sets itself here when it
# is imported (``cylstm.interop`` imports it): it builds on this module, so
# this module does not import it.
whole_graph_importer: Optional[Callable[..., Any]] = None


def _from_onnx(path_or_model, node_name, weights, whole_graph):
    onnx, numpy_helper = _import_onnx()
    if whole_graph:
        if whole_graph_importer is None:
            raise RuntimeError("cylstm.interop.onnx_graph is not imported: import cylstm.")
        return whole_graph_importer(path_or_model, weights)
    model, base_dir = _load_model(onnx, path_or_model)
    graph = model.graph
    found = [(i, n) for i, n in enumerate(graph.node)
             if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if node_name is not None:
        found = [(i, n) for i, n in found if n.name == node_name]
    if not found:
        ops = sorted({n.op_type for n in graph.node})
        which = f"named {node_name!r} " if node_name is not None else ""
        raise ValueError(f"The ONNX graph has no LSTM node {which}(its ops: {ops}).")
    index, node = found[0]
    consts = _constants(graph, onnx, numpy_helper, base_dir)
    return lstm_from_node(onnx, graph, node, index, consts, _opset(model), weights)


def lstm_from_node(onnx, graph, node, index, consts, opset, weights=None):
    """The OnnxLSTM of one checked node (also used by the whole-graph importer)."""
    spec = _NodeSpec(onnx, graph, node, index, consts, opset, weights)
    names = [n for n in (spec.w_name, spec.r_name, spec.b_name, spec.p_name) if n]
    check_lstm_dims(consts, spec.w_name, spec.r_name, spec.b_name, spec.label,
                    check_weight_sizes)
    # Build without drawing weights; when the values are known, allocate no
    # more than they hold (a file cannot declare a model larger than itself).
    budget = None
    if all(n in consts or (weights and n in weights) for n in names if n != spec.p_name):
        budget = sum(int(np.prod(consts.dims(n))) if n in consts
                     else int(np.asarray(weights[n]).size)
                     for n in names if n != spec.p_name)
    with deferred_weights(budget):
        lstm = OnnxLSTM(spec.I, spec.H, num_layers=1, bias=bool(spec.b_name),
                        batch_first=spec.layout == 1, bidirectional=spec.D == 2,
                        dtype=spec.dtype)
    lstm.eval()
    lstm._spec = spec
    lstm._reverse_only = spec.direction == "reverse"
    lstm.direction = spec.direction
    lstm.node_name = node.name
    lstm.input_names = dict(X=spec.x_name, W=spec.w_name, R=spec.r_name, B=spec.b_name,
                            sequence_lens=spec.lens_name, initial_h=spec.h_name,
                            initial_c=spec.c_name, P=spec.p_name)
    lstm.output_names = list(node.output)
    lstm.default_sequence_lens = consts.get(spec.lens_name) if spec.lens_name else None
    lstm.default_initial_h = consts.get(spec.h_name) if spec.h_name else None
    lstm.default_initial_c = consts.get(spec.c_name) if spec.c_name else None
    lstm.clip = spec.clip
    lstm.input_forget = bool(spec.input_forget)
    lstm.activations = [tuple(a) for a in spec.acts]
    known = {n: consts[n] for n in names if n in consts}
    lstm.weight_inputs = [n for n in (spec.w_name, spec.r_name, spec.b_name, spec.p_name)
                          if n and n not in known]
    if weights is not None:
        known.update({k: v for k, v in dict(weights).items() if k in lstm.weight_inputs})
    lstm.weights_bound = False
    if all(n in known for n in (spec.w_name, spec.r_name, spec.b_name, spec.p_name) if n):
        lstm._load_onnx_weights(known)
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

    if TYPE_CHECKING:
        # _Module.__call__ forwards to forward(); this gives it forward's signature.
        def __call__(self, input: ArrayLike, hx: Optional[Tuple[ArrayLike, ArrayLike]] = None,
                     sequence_lens: Optional[ArrayLike] = None
                     ) -> Tuple[Array, Tuple[Array, Array]]: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direction = "bidirectional" if self.bidirectional else "forward"
        self.layout = 1 if self.batch_first else 0
        self.node_name = ""
        self.input_names = {}
        self.output_names = []
        self.default_sequence_lens = None
        self.default_initial_h = None
        self.default_initial_c = None
        self.clip = None
        self.input_forget = False
        self.activations = None
        self.weight_inputs = []
        self.weights_bound = True
        self._spec = None
        self._cells = None
        self.peepholes = None

    # -- weights -----------------------------------------------------------------
    def _load_onnx_weights(self, values):
        """W, R, B, P of the node from ``values`` (name -> array), in ONNX's
        layout, converted once to the kernel's: gates i, o, f, c -> i, f, g, o,
        B = [Wb, Rb] -> bias_ih, bias_hh, P [i, o, f] -> (3, H) for i, f, o."""
        spec = self._spec
        W, R, B, P = spec.weights(values)
        H = spec.H
        state = {}
        for d in range(spec.D):
            suffix = "_l0_reverse" if d == 1 else "_l0"
            state["weight_ih" + suffix] = _reorder_gates(W[d], H)
            state["weight_hh" + suffix] = _reorder_gates(R[d], H)
            if B is not None:
                state["bias_ih" + suffix] = _reorder_gates(B[d, :4 * H], H)
                state["bias_hh" + suffix] = _reorder_gates(B[d, 4 * H:], H)
        self.load_state_dict(state)
        peepholes = [None] * spec.D
        if P is not None and np.any(P != 0):
            peepholes = [np.ascontiguousarray(P[d].reshape(3, H)[[0, 2, 1]], self.dtype)
                         for d in range(spec.D)]
        self.peepholes = peepholes
        common, self._cells = _cells_for(spec.acts, peepholes, spec.clip, spec.input_forget)
        if common is not None:
            self._recurrent_activation = _activations.get(common[0])
            self._activation = _activations.get(common[1])
        self.weights_bound = True

    def bind(self, feeds):
        """A copy of this node with its graph-input weights (W, R, B, P, by
        input name in ``feeds``) loaded once: call it many times after."""
        if self._spec is None:
            raise ValueError("bind() is for an LSTM loaded with cylstm.from_onnx.")
        new = copy.copy(self)
        object.__setattr__(new, "_workspace", Workspace())
        slots = [[_copy_slot(slot) for slot in row] for row in self._slots]
        object.__setattr__(new, "_slots", slots)
        new._register([(slot, "_l0" + ("_reverse" if d else ""))
                       for d, slot in enumerate(slots[0])])
        values = {}
        if self.weights_bound:
            values.update(self._current_onnx_weights())
        values.update({k: v for k, v in dict(feeds).items() if k in self.weight_inputs})
        new._load_onnx_weights(values)
        return new

    def _current_onnx_weights(self):
        """This node's W, R, B, P back in ONNX's layout (for a partial rebind)."""
        spec, H = self._spec, self.hidden_size
        back = [ONNX_TO_TORCH.index(k) for k in range(4)]   # torch block of ONNX block k
        def onnx_order(w):
            blocks = w.reshape((4, H) + w.shape[1:])
            return blocks[back].reshape(w.shape)
        names = ["_l0", "_l0_reverse"][:spec.D]
        sd = self.state_dict()
        out = {spec.w_name: np.stack([onnx_order(sd["weight_ih" + n]) for n in names]),
               spec.r_name: np.stack([onnx_order(sd["weight_hh" + n]) for n in names])}
        if spec.b_name:
            out[spec.b_name] = np.stack([np.concatenate([onnx_order(sd["bias_ih" + n]),
                                                         onnx_order(sd["bias_hh" + n])])
                                         for n in names])
        if spec.p_name:
            out[spec.p_name] = np.stack([
                np.zeros(3 * H, self.dtype) if p is None else p[[0, 2, 1]].reshape(-1)
                for p in self.peepholes])
        return out

    def run_feeds(self, feeds):
        """``(Y, Y_h, Y_c)`` from a mapping of the node's input names to arrays,
        as ``onnxruntime.InferenceSession.run`` takes them: X, and any of
        sequence_lens, initial_h, initial_c, and W, R, B, P where they are
        graph inputs (weights given here are used for this call only)."""
        feeds = dict(feeds)
        names = self.input_names
        missing = [k for k in self.weight_inputs if k not in feeds]
        lstm = self
        if any(k in feeds for k in self.weight_inputs):
            if missing and not self.weights_bound:
                raise ValueError(f"ONNX LSTM node {self._spec.label}: graph input(s) "
                                 f"{missing} are missing from the feeds.")
            lstm = self.bind(feeds)
        if names.get("X") not in feeds:
            raise ValueError(f"The feeds must hold the node's input X ({names.get('X')!r}); "
                             f"got {sorted(feeds)}.")

        def get(key):
            name = names.get(key)
            return feeds.get(name) if name else None

        return lstm.run(feeds[names["X"]], sequence_lens=get("sequence_lens"),
                        initial_h=get("initial_h"), initial_c=get("initial_c"))

    def _check_bound(self):
        if not self.weights_bound:
            raise ValueError(f"ONNX LSTM node {self._spec.label}: its weights "
                             f"{self.weight_inputs} are graph inputs and were not given; "
                             "call run_feeds({name: array, ...}), or bind them once with "
                             "lstm = lstm.bind({name: array, ...}).")

    def _extended_cell(self, index):
        return None if self._cells is None else self._cells[index]

    def to_torch(self):
        if self._cells is not None:
            raise ValueError("This LSTM (loaded from ONNX with peepholes, clip, input_forget "
                             "or non-default activations) has no torch.nn.LSTM equivalent.")
        self._check_bound()
        return super().to_torch()

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

    def forward(self, input: ArrayLike, hx: Optional[Tuple[ArrayLike, ArrayLike]] = None,
                sequence_lens: Optional[ArrayLike] = None) -> Tuple[Array, Tuple[Array, Array]]:
        """``output, (h_n, c_n)`` in torch's shapes (input 3-D, or unbatched 2-D).

        Parameters
        ----------
        input : array_like
            (L, N, I), or (N, L, I) for layout 1 (``batch_first``).
        hx : tuple of two array_like, optional
            ``(h_0, c_0)``; without it the node's stored initial states apply
            (zeros when it has none).
        sequence_lens : array_like of int, optional
            One length per batch row (default: the node's stored one): ONNX's
            per-row lengths, with zeros in ``output`` beyond each row's length.

        Returns
        -------
        output : numpy.ndarray
        (h_n, c_n) : tuple of numpy.ndarray
        """
        self._check_bound()
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

    def forward_train(self, input: ArrayLike,
                      hx: Optional[Tuple[ArrayLike, ArrayLike]] = None
                      ) -> Tuple[Tuple[Array, Tuple[Array, Array]], Callable[[Any], Any]]:
        """As ``cylstm.nn.LSTM.forward_train``; without ``hx`` the node's stored
        initial states apply (and ``backprop`` returns dx alone). Not for a node
        with peepholes, clip, input_forget or activations other than the
        common ones (inference only).

        Parameters
        ----------
        input : array_like
        hx : tuple of two array_like, optional

        Returns
        -------
        outputs : tuple
            ``(output, (h_n, c_n))``.
        backprop : callable

        Raises
        ------
        ValueError
            When the node stores ``sequence_lens``.
        """
        self._check_bound()
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

    def run(self, X: ArrayLike, sequence_lens: Optional[ArrayLike] = None,
            initial_h: Optional[ArrayLike] = None,
            initial_c: Optional[ArrayLike] = None) -> Tuple[Array, Array, Array]:
        """``(Y, Y_h, Y_c)`` exactly as the ONNX node computes them.

        Layout 0: ``X`` [seq, batch, in] -> ``Y`` [seq, D, batch, H], states
        [D, batch, H]; layout 1: ``X`` [batch, seq, in] -> ``Y`` [batch, seq, D, H],
        states [batch, D, H].

        Parameters
        ----------
        X : array_like
            The node's input.
        sequence_lens : array_like of int, optional
            Default: the node's stored one.
        initial_h, initial_c : array_like, optional
            In ONNX's shapes; default: the node's stored ones, else zeros.

        Returns
        -------
        Y, Y_h, Y_c : numpy.ndarray
        """
        self._check_bound()
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
