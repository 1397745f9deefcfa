"""Whole ONNX graphs around LSTM nodes: ``cylstm.from_onnx(path, whole_graph=True)``.

An ``OnnxModel`` runs a graph whose LSTM nodes run on cylstm's kernels
(``OnnxLSTM``, the whole operator) and whose other nodes are the ops that
exporters put around an LSTM, in NumPy:

- torch.onnx.export of ``nn.LSTM`` (``batch_first``, zero or given states):
  Transpose, Squeeze, Unsqueeze, Slice, Concat, Shape, Gather, Constant,
  ConstantOfShape, Expand, Reshape, Cast;
- tf2onnx of a Keras LSTM model: MatMul + Add or Gemm (Dense), Gather
  (Embedding), activations, Softmax, Where/Equal/Not, reductions;
- cylstm.to_onnx's own exports (the round trip).

The supported set is ``SUPPORTED_OPS``; any other op raises ``ValueError``
naming the op type and the node (by name, or by index and op type), at load
time, before anything runs. Only the default ONNX domain is read.

``model.run(feeds)`` takes a mapping of graph-input names to arrays (as
``onnxruntime.InferenceSession.run`` does) and returns the graph outputs in
order; ``model(x)`` is the same for a graph with one input (a list when there
are several outputs, else the one output). LSTM weights that are graph
inputs are fed by name too (or bound once with ``model.bind(feeds)``).
"""
import numpy as np

from . import onnx_lstm
from .onnx_lstm import (_attributes, _constants, _import_onnx, _load_model, _opset,
                        lstm_from_node, node_label)

__all__ = ["OnnxModel", "SUPPORTED_OPS"]

_ELEM = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
         9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _axes(node_inputs, values, attrs, index):
    """Axes given as an attribute (older opsets) or as input ``index`` (newer)."""
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(node_inputs) > index and node_inputs[index]:
        return [int(a) for a in np.asarray(values[node_inputs[index]]).reshape(-1)]
    return None


def _op_unary(fn):
    return lambda x, a, v, n: [fn(x[0], a)]


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype)


def _softmax(x, attrs, opset):
    if opset >= 13:
        axis = attrs.get("axis", -1)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)
    axis = attrs.get("axis", 1) % x.ndim   # opset < 13: softmax of the flattened tail
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def _slice(inputs, attrs, values, names):
    x = inputs[0]
    if "starts" in attrs:           # opset < 10
        starts, ends = attrs["starts"], attrs["ends"]
        axes = attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(s) for s in inputs[1]]
        ends = [int(e) for e in inputs[2]]
        axes = [int(a) for a in inputs[3]] if len(inputs) > 3 and inputs[3] is not None \
            else list(range(len(starts)))
        steps = [int(s) for s in inputs[4]] if len(inputs) > 4 and inputs[4] is not None \
            else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.shape[a]
        # ONNX clamps out-of-range bounds (INT64_MAX / -INT64_MAX) as Python's slices do.
        s = max(min(s, n), -n - 1) if st < 0 else max(min(s, n), -n)
        e = max(min(e, n), -n - 1)
        if st < 0 and e < -n:
            e = None
        index[a] = slice(s, e, st)
    return [x[tuple(index)]]


def _gemm(inputs, attrs):
    A, B = inputs[0], inputs[1]
    if attrs.get("transA", 0):
        A = A.T
    if attrs.get("transB", 0):
        B = B.T
    y = attrs.get("alpha", 1.0) * (A @ B)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + attrs.get("beta", 1.0) * inputs[2]
    return [y.astype(A.dtype, copy=False)]


def _reshape(x, shape, allowzero):
    shape = [int(s) for s in shape]
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _constant(attrs, numpy_helper):
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype)
    raise ValueError(f"a Constant with attributes {sorted(attrs)} (only value, value_float(s) "
                     "and value_int(s) are read)")


def _reduce(fn):
    def run(x, attrs, values, node_inputs):
        axes = _axes(node_inputs, values, attrs, 1)
        keep = bool(attrs.get("keepdims", 1))
        if axes is None:
            if attrs.get("noop_with_empty_axes", 0):
                return [x[0]]
            axes = list(range(x[0].ndim))
        return [fn(x[0], axis=tuple(axes), keepdims=keep)]
    return run


# op type -> fn(inputs, attrs, values by name, node input names) -> outputs
_OPS = {
    "Identity": lambda x, a, v, n: [x[0]],
    "Dropout": lambda x, a, v, n: [x[0], np.ones(x[0].shape, bool)],
    "Transpose": lambda x, a, v, n: [np.transpose(x[0], a.get("perm"))],
    "Squeeze": lambda x, a, v, n: [np.squeeze(x[0], axis=tuple(_axes(n, v, a, 1)))
                                   if _axes(n, v, a, 1) is not None else np.squeeze(x[0])],
    "Unsqueeze": lambda x, a, v, n: [np.expand_dims(x[0], tuple(_axes(n, v, a, 1)))],
    "Concat": lambda x, a, v, n: [np.concatenate(x, axis=a["axis"])],
    "Gather": lambda x, a, v, n: [np.take(x[0], x[1].astype(np.int64), axis=a.get("axis", 0))],
    "Shape": lambda x, a, v, n: [np.asarray(x[0].shape, np.int64)[a.get("start", 0):
                                                                     a.get("end", None)]],
    "ConstantOfShape": None,   # needs numpy_helper; bound in OnnxModel
    "Constant": None,
    "Expand": lambda x, a, v, n: [x[0] * np.ones(np.broadcast_shapes(
        x[0].shape, tuple(int(s) for s in x[1])), x[0].dtype)],
    "Reshape": lambda x, a, v, n: [_reshape(x[0], x[1], a.get("allowzero", 0))],
    "Flatten": lambda x, a, v, n: [x[0].reshape(int(np.prod(x[0].shape[:a.get("axis", 1)])),
                                                -1)],
    "Cast": lambda x, a, v, n: [x[0].astype(_ELEM[a["to"]])],
    "Slice": lambda x, a, v, n: _slice(x, a, v, n),
    "MatMul": lambda x, a, v, n: [np.matmul(x[0], x[1])],
    "Gemm": lambda x, a, v, n: _gemm(x, a),
    "Add": lambda x, a, v, n: [x[0] + x[1]],
    "Sub": lambda x, a, v, n: [x[0] - x[1]],
    "Mul": lambda x, a, v, n: [x[0] * x[1]],
    "Div": lambda x, a, v, n: [x[0] / x[1] if x[0].dtype.kind == "f" else x[0] // x[1]],
    "Relu": lambda x, a, v, n: [np.maximum(x[0], 0)],
    "Sigmoid": lambda x, a, v, n: [_sigmoid(x[0])],
    "Tanh": lambda x, a, v, n: [np.tanh(x[0])],
    "Softsign": lambda x, a, v, n: [x[0] / (1 + np.abs(x[0]))],
    "Elu": lambda x, a, v, n: [np.where(x[0] > 0, x[0], a.get("alpha", 1.0)
                                        * np.expm1(np.minimum(x[0], 0))).astype(x[0].dtype)],
    "Selu": lambda x, a, v, n: [(a.get("gamma", 1.0507009873554805) * np.where(
        x[0] > 0, x[0], a.get("alpha", 1.6732632423543772) * np.expm1(np.minimum(x[0], 0))))
        .astype(x[0].dtype)],
    "HardSigmoid": lambda x, a, v, n: [np.clip(a.get("alpha", 0.2) * x[0] + a.get("beta", 0.5),
                                               0, 1).astype(x[0].dtype)],
    "Erf": None,
    "Equal": lambda x, a, v, n: [np.equal(x[0], x[1])],
    "Not": lambda x, a, v, n: [np.logical_not(x[0])],
    "Less": lambda x, a, v, n: [np.less(x[0], x[1])],
    "Greater": lambda x, a, v, n: [np.greater(x[0], x[1])],
    "And": lambda x, a, v, n: [np.logical_and(x[0], x[1])],
    "Or": lambda x, a, v, n: [np.logical_or(x[0], x[1])],
    "Split": None,
    "Where": lambda x, a, v, n: [np.where(x[0], x[1], x[2])],
    "ReduceSum": _reduce(np.sum),
    "ReduceMax": _reduce(np.max),
    "ReduceMean": _reduce(np.mean),
    "Softmax": None,
    "LSTM": None,
}
SUPPORTED_OPS = tuple(sorted(_OPS))


class OnnxModel:
    """A whole ONNX graph: LSTM nodes on cylstm's kernels, the ops around them
    in NumPy. See the module docstring."""

    def __init__(self, path_or_model, weights=None):
        onnx, numpy_helper = _import_onnx()
        self._numpy_helper = numpy_helper
        model, base_dir = _load_model(onnx, path_or_model)
        graph = model.graph
        self.opset = _opset(model) or 1
        self._consts = _constants(graph, onnx, numpy_helper, base_dir)
        init_names = {t.name for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self.output_names = [o.name for o in graph.output]
        self.lstms = {}
        self._steps = []
        known = set(self._consts) | set(self.input_names) | {""}
        for index, node in enumerate(graph.node):
            label = node_label(node, index)
            if node.domain not in ("", "ai.onnx"):
                raise ValueError(f"ONNX node {label}: op {node.op_type!r} of domain "
                                 f"{node.domain!r} is not supported (only the default domain).")
            if node.op_type not in _OPS:
                raise ValueError(f"ONNX node {label}: op type {node.op_type!r} is not "
                                 f"supported by cylstm's graph importer (supported: "
                                 f"{', '.join(SUPPORTED_OPS)}).")
            missing = [i for i in node.input if i not in known]
            if missing:
                raise ValueError(f"ONNX node {label} ({node.op_type}): input(s) {missing} are "
                                 "not produced by an earlier node, an initializer or a graph "
                                 "input (nodes must be in topological order).")
            attrs = _attributes(onnx, node)
            if node.op_type == "LSTM":
                self.lstms[index] = lstm_from_node(onnx, graph, node, index, self._consts,
                                                   self.opset, weights)
            elif node.op_type == "Constant":
                try:
                    self._consts[node.output[0]] = _constant(attrs, numpy_helper)
                except ValueError as exc:
                    raise ValueError(f"ONNX node {label}: {exc}.") from None
            self._steps.append((index, node, label, attrs))
            known.update(o for o in node.output if o)
        for name in self.output_names:
            if name not in known:
                raise ValueError(f"ONNX graph output {name!r} is produced by no node.")

    def bind(self, feeds):
        """Bind LSTM weights that are graph inputs once (by input name)."""
        for index, lstm in self.lstms.items():
            if any(k in feeds for k in lstm.weight_inputs):
                self.lstms[index] = lstm.bind(feeds)
        return self

    def _run_node(self, index, node, label, attrs, values):
        inputs = [values[i] if i else None for i in node.input]
        op = node.op_type
        if op == "LSTM":
            lstm = self.lstms[index]
            feeds = {name: values[name] for name in node.input if name}
            Y, Y_h, Y_c = lstm.run_feeds(feeds)
            return [Y, Y_h, Y_c]
        if op == "Constant":
            return [self._consts[node.output[0]]]
        if op == "ConstantOfShape":
            value = attrs.get("value")
            fill = (self._numpy_helper.to_array(value).reshape(-1)[0] if value is not None
                    else np.float32(0))
            return [np.full(tuple(int(s) for s in inputs[0]), fill, np.asarray(fill).dtype)]
        if op == "Erf":
            from scipy.special import erf
            return [erf(inputs[0]).astype(inputs[0].dtype)]
        if op == "Split":
            x, axis = inputs[0], attrs.get("axis", 0)
            sizes = attrs.get("split")
            if sizes is None and len(inputs) > 1 and inputs[1] is not None:
                sizes = [int(s) for s in inputs[1]]
            if sizes is None:
                parts = len(node.output)
                sizes = [x.shape[axis] // parts] * parts
            return np.split(x, np.cumsum(sizes)[:-1], axis=axis)
        if op == "Softmax":
            return [_softmax(inputs[0], attrs, self.opset)]
        return _OPS[op](inputs, attrs, values, list(node.input))

    def run(self, feeds, output_names=None):
        """The graph outputs (all, or ``output_names``) for ``feeds`` (input name -> array)."""
        feeds = dict(feeds)
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ValueError(f"The feeds miss graph input(s) {missing}; got {sorted(feeds)}.")
        values = dict(self._consts)
        values.update({k: np.asarray(v) for k, v in feeds.items()})
        for index, node, label, attrs in self._steps:
            try:
                outs = self._run_node(index, node, label, attrs, values)
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                raise ValueError(f"ONNX node {label} ({node.op_type}) failed: {exc}") from exc
            for name, value in zip(node.output, outs):
                if name:
                    values[name] = value
        wanted = self.output_names if output_names is None else list(output_names)
        return [values[n] for n in wanted]

    def __call__(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise ValueError(f"This graph takes {len(self.input_names)} input(s) "
                             f"{self.input_names}; got {len(inputs)}. Use run(feeds).")
        out = self.run(dict(zip(self.input_names, inputs)))
        return out[0] if len(out) == 1 else out


onnx_lstm.whole_graph_importer = OnnxModel   # from_onnx(..., whole_graph=True)
