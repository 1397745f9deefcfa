"""cylstm models to ONNX: ``cylstm.to_onnx(obj, path)``.

Needs the ``onnx`` package (``pip install 'cylstm[onnx]'``). Writes a model
(opset 14) with a dynamic batch dimension (and a dynamic sequence length)
that ONNX Runtime runs with cylstm's outputs. What it takes:

- ``cylstm.layers.LSTM`` and ``cylstm.layers.Bidirectional`` (every
  merge_mode, return_sequences, return_state, go_backwards, time_major):
  input ``"input"``, outputs ``"output"`` (and ``"output_1"`` for
  merge_mode=None) then the states ``"h"``, ``"c"`` (Bidirectional:
  ``"forward_h"``, ``"forward_c"``, ``"backward_h"``, ``"backward_c"``), as
  the call returns them;
- ``cylstm.nn.LSTM`` (layers, directions, batch_first): input ``"input"``,
  outputs ``"output"``, ``"h_n"``, ``"c_n"`` with torch's shapes, zero initial
  states. ``proj_size > 0`` raises ValueError: ONNX's LSTM has no projection;
- ``cylstm.Sequential`` of Embedding, Masking, LSTM, Bidirectional, Dense and
  Dropout (Dropout is the identity at inference): input ``"input"`` (int64
  ids with an Embedding first), output ``"output"``.

The LSTM nodes use ``layout = 0`` (onnxruntime refuses layout 1), with
Transposes around them; activations map to ONNX's (Keras 3's hard_sigmoid is
``HardSigmoid`` alpha 1/6, beta 0.5; linear is ``Affine`` alpha 1, beta 0);
selu, gelu and swish have no ONNX RNN counterpart and raise ValueError.

Masks: a mask from Masking or from Embedding(mask_zero=True) becomes the LSTM
node's ``sequence_lens`` (the number of unmasked steps per row), which gives
Keras's results exactly when the mask is right-padded (valid steps first,
padding after) and every row has at least one valid step. A graph cannot
check that at run time; ``to_onnx(..., example=x)`` checks a sample and
raises ValueError for a mask that is not right-padded. Sequence outputs at
masked steps repeat the last valid output (zero_output_for_mask=False) or are
0 (True, and inside Bidirectional), as in Keras.
"""
import numpy as np

__all__ = ["to_onnx"]

OPSET = 14
# Keras name -> (ONNX RNN activation, alpha, beta)
_RNN_ACTIVATIONS = {
    "tanh": ("Tanh", None, None), "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None), "softsign": ("Softsign", None, None),
    "linear": ("Affine", 1.0, 0.0), "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "elu": ("Elu", 1.0, None),
}
# Keras gate blocks (i, f, c, o) / torch (i, f, g, o) -> ONNX (i, o, f, c)
_TO_ONNX = [0, 3, 1, 2]


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError("cylstm.to_onnx needs the `onnx` package: "
                          "pip install 'cylstm[onnx]' (or pip install onnx).") from exc
    return onnx, helper, numpy_helper


def _act_name(fn):
    return getattr(fn, "cylstm_name", getattr(fn, "__name__", repr(fn)))


class _Graph:
    """A graph under construction: unique names, nodes, initializers."""

    def __init__(self, dtype):
        self.onnx, self.helper, self.numpy_helper = _import_onnx()
        self.dtype = np.dtype(dtype)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value, base="const", dtype=None):
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(base)
        self.inits.append(self.numpy_helper.from_array(arr, name))
        return name

    def ints(self, values, base="axes"):
        return self.const(np.asarray(values, np.int64), base, np.int64)

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def rename(self, value, name):
        """Give the final outputs their public names."""
        self.nodes.append(self.helper.make_node("Identity", [value], [name],
                                                name=self.name("Identity")))
        return name

    def model(self, inputs, outputs):
        h = self.helper
        graph = h.make_graph(self.nodes, "cylstm", inputs, outputs, initializer=self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)],
                             producer_name="cylstm")
        model.ir_version = 8
        # The outputs' shapes (symbolic batch/seq dims) come from shape inference.
        inferred = self.onnx.shape_inference.infer_shapes(model, strict_mode=True)
        known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
        for out in model.graph.output:
            v = known.get(out.name)
            if v is not None and v.type.tensor_type.HasField("shape"):
                out.type.CopyFrom(v.type)
        self.onnx.checker.check_model(model)
        return model

    def elem(self):
        t = self.onnx.TensorProto
        return t.DOUBLE if self.dtype == np.float64 else t.FLOAT


def _gates(w, H):
    """(4H, ...) in Keras/torch order -> ONNX's i, o, f, c."""
    return w.reshape((4, H) + w.shape[1:])[_TO_ONNX].reshape(w.shape)


def _rnn_activations(pairs, where):
    """ONNX activations/alpha/beta attributes for [(recurrent, activation)] per direction."""
    names, alphas, betas = [], [], []
    for rec, act in pairs:
        for fn in (rec, act, act):
            key = _act_name(fn)
            if key not in _RNN_ACTIVATIONS:
                raise ValueError(f"{where}: activation {key!r} has no ONNX RNN counterpart "
                                 f"(ONNX has {sorted(_RNN_ACTIVATIONS)} of Keras's).")
            name, a, b = _RNN_ACTIVATIONS[key]
            names.append(name)
            if a is not None:
                alphas.append(a)
            if b is not None:
                betas.append(b)
    attrs = {}
    if names != ["Sigmoid", "Tanh", "Tanh"] * len(pairs):
        attrs["activations"] = names
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    return attrs


def _lstm_node(g, x_tm, cells, direction, lens, where):
    """One ONNX LSTM node over time-major x. ``cells``: per direction
    (kernel (I, 4H), recurrent (H, 4H), bias (4H,) or None, rec_act, act),
    gates in i, f, c, o. Returns (Y, Y_h, Y_c) names."""
    H = cells[0][1].shape[0]
    W = np.stack([_gates(k.T, H) for k, _, _, _, _ in cells])
    R = np.stack([_gates(r.T, H) for _, r, _, _, _ in cells])
    Bs = [np.zeros(8 * H) if b is None else np.concatenate([_gates(b, H), np.zeros(4 * H)])
          for _, _, b, _, _ in cells]
    attrs = _rnn_activations([(c[3], c[4]) for c in cells], where)
    inputs = [x_tm, g.const(W, "W"), g.const(R, "R"), g.const(np.stack(Bs), "B"),
              lens or ""]
    while inputs[-1] == "":
        inputs.pop()
    return g.op("LSTM", inputs, 3, hidden_size=H, direction=direction, layout=0, **attrs)


def _check_layer_lstm(layer):
    if layer.stateful:
        raise ValueError(f"to_onnx: stateful LSTM {layer.name!r} keeps state between calls; "
                         "an ONNX model cannot (export a stateless copy).")
    if not layer.built:
        raise ValueError(f"to_onnx: LSTM {layer.name!r} is not built (call it once or "
                         "build(input_shape)).")


def _keras_cell(layer):
    c = layer.cell
    return (c.kernel, c.recurrent_kernel, c._bias_or_none(), layer.recurrent_activation,
            layer.activation)


def _to_time_major(g, x, time_major):
    return x if time_major else g.op("Transpose", [x], perm=[1, 0, 2])


def _reverse_time(g, x_tm):
    """x[::-1] along axis 0."""
    big = np.iinfo(np.int64).max
    return g.op("Slice", [x_tm, g.ints([-1]), g.ints([-big]), g.ints([0]), g.ints([-1])])


def _keras_lstm(g, layer, x, mask, lens):
    """A Keras-style LSTM on x (batch-major unless time_major). Returns
    (outputs list as the call returns them, mask of the output)."""
    _check_layer_lstm(layer)
    tm = layer.time_major
    x_tm = _to_time_major(g, x, tm)
    Y, Yh, Yc = _lstm_node(g, x_tm, [_keras_cell(layer)],
                           "reverse" if layer.go_backwards else "forward", lens,
                           f"LSTM {layer.name!r}")
    seq = g.op("Squeeze", [Y, g.ints([1])])                  # (T, B, H)
    h = g.op("Squeeze", [Yh, g.ints([0])])
    c = g.op("Squeeze", [Yc, g.ints([0])])
    if layer.return_sequences:
        if mask is not None and not layer.go_backwards and not layer.zero_output_for_mask:
            # Keras repeats the last valid output at masked steps; ONNX writes 0.
            keep = g.op("Unsqueeze", [g.op("Transpose", [mask], perm=[1, 0]), g.ints([2])])
            seq = g.op("Where", [keep, seq, g.op("Unsqueeze", [h, g.ints([0])])])
        if layer.go_backwards:
            seq = _reverse_time(g, seq)
        out = seq if tm else g.op("Transpose", [seq], perm=[1, 0, 2])
        out_mask = mask
    else:
        out, out_mask = h, None
    return ([out, h, c] if layer.return_state else [out]), out_mask


def _keras_bidirectional(g, layer, x, mask, lens):
    fw, bw = layer.forward_layer, layer.backward_layer
    for inner in (fw, bw):
        _check_layer_lstm(inner)
    if fw.go_backwards or not bw.go_backwards:
        raise ValueError(f"to_onnx: Bidirectional {layer.name!r} must run its forward layer "
                         "forwards and its backward layer backwards (go_backwards) to be an "
                         "ONNX bidirectional LSTM.")
    tm = layer.time_major
    x_tm = _to_time_major(g, x, tm)
    Y, Yh, Yc = _lstm_node(g, x_tm, [_keras_cell(fw), _keras_cell(bw)], "bidirectional",
                           lens, f"Bidirectional {layer.name!r}")
    hs = [g.op("Gather", [Yh, g.ints(d)], axis=0) for d in (0, 1)]
    cs = [g.op("Gather", [Yc, g.ints(d)], axis=0) for d in (0, 1)]
    if layer.return_sequences:
        # Y (T, 2, B, H): both directions in time order, 0 at masked steps (as Keras's wrapper).
        parts = [g.op("Gather", [Y, g.ints(d)], axis=1) for d in (0, 1)]
        if not tm:
            parts = [g.op("Transpose", [p], perm=[1, 0, 2]) for p in parts]
        out_mask = mask
    else:
        parts, out_mask = hs, None
    mode = layer.merge_mode
    if mode == "concat":
        merged = [g.op("Concat", parts, axis=-1)]
    elif mode == "sum":
        merged = [g.op("Add", parts)]
    elif mode == "mul":
        merged = [g.op("Mul", parts)]
    elif mode == "ave":
        merged = [g.op("Mul", [g.op("Add", parts), g.const(0.5, "half")])]
    else:
        merged = parts
    outs = merged + ([hs[0], cs[0], hs[1], cs[1]] if layer.return_state else [])
    return outs, out_mask


def _dense(g, layer, x, rank):
    if not layer.built:
        raise ValueError(f"to_onnx: Dense {layer.name!r} is not built.")
    kernel = g.const(layer.kernel, "kernel")
    y = g.op("MatMul", [x, kernel])
    if layer.use_bias:
        y = g.op("Add", [y, g.const(layer.bias, "bias")])
    return _activation(g, y, layer.activation, f"Dense {layer.name!r}")


def _activation(g, y, fn, where):
    name = _act_name(fn)
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softsign": "Softsign",
              "elu": "Elu", "selu": "Selu"}
    if name == "linear":
        return y
    if name in simple:
        return g.op(simple[name], [y])
    if name == "softmax":
        return g.op("Softmax", [y], axis=-1)
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [y], alpha=1.0 / 6.0, beta=0.5)
    if name == "swish":
        return g.op("Mul", [y, g.op("Sigmoid", [y])])
    if name == "gelu":
        half = g.const(0.5, "half")
        erf = g.op("Erf", [g.op("Mul", [y, g.const(1 / np.sqrt(2.0), "inv_sqrt2")])])
        return g.op("Mul", [g.op("Mul", [y, half]), g.op("Add", [erf, g.const(1.0, "one")])])
    raise ValueError(f"to_onnx: {where} uses activation {name!r}, which has no ONNX export.")


def _lengths(g, mask_bt):
    """sequence_lens (int32, (batch,)) of a (batch, time) bool mask."""
    return g.op("ReduceSum", [g.op("Cast", [mask_bt], to=g.onnx.TensorProto.INT32),
                              g.ints([1])], keepdims=0)


def _check_right_padded(mask, where):
    m = np.asarray(mask, bool)
    lens = m.sum(axis=1)
    right = np.arange(m.shape[1])[None, :] < lens[:, None]
    if not np.array_equal(m, right) or np.any(lens == 0):
        rows = np.nonzero(np.any(m != right, axis=1) | (lens == 0))[0][:5].tolist()
        raise ValueError(f"to_onnx: the mask of {where} is not right-padded with at least one "
                         f"valid step in rows {rows}; ONNX's sequence_lens can express only "
                         "masks whose valid steps come first.")


def _sequential(model, example):
    from ..layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking
    layers = model.layers
    if not layers:
        raise ValueError("to_onnx: the Sequential model has no layers.")
    model._maybe_build()
    shape = model._input_shape
    if shape is None:
        raise ValueError("to_onnx: the Sequential model is not built (call it once, or give "
                         "its first layer input_shape=).")
    first = layers[0]
    dtype = first.dtype if not isinstance(first, Embedding) else layers[-1].dtype
    g = _Graph(dtype)
    ids = isinstance(first, Embedding)
    in_elem = g.onnx.TensorProto.INT64 if ids else g.elem()
    dims = ["batch"] + [("seq" if i == 0 else d) for i, d in enumerate(shape[1:])]
    x = "input"
    inputs = [g.helper.make_tensor_value_info(x, in_elem, dims)]
    mask = lens = None
    sample = None if example is None else np.asarray(example)
    for layer in layers:
        where = f"layer {layer.name!r}"
        if isinstance(layer, Embedding):
            if layer is not first:
                raise ValueError(f"to_onnx: Embedding {layer.name!r} must be the first layer.")
            if layer.mask_zero:
                mask = g.op("Not", [g.op("Equal", [x, g.const(0, "zero", np.int64)])])
                if sample is not None:
                    _check_right_padded(sample != 0, where)
            x = g.op("Gather", [g.const(layer.embeddings, "embeddings"), x], axis=0)
            lens = None if mask is None else _lengths(g, mask)
        elif isinstance(layer, Masking):
            keep = g.op("Not", [g.op("Equal", [x, g.const(layer.mask_value, "mask_value")])])
            mask = g.op("Cast", [g.op("ReduceMax", [g.op("Cast", [keep], to=g.elem())],
                                      axes=[-1], keepdims=0)],
                        to=g.onnx.TensorProto.BOOL)
            x = g.op("Mul", [x, g.op("Unsqueeze", [g.op("Cast", [mask], to=g.elem()),
                                                   g.ints([-1])])])
            lens = _lengths(g, mask)
            if sample is not None:
                _check_right_padded(np.any(sample != layer.mask_value, axis=-1), where)
        elif isinstance(layer, (LSTM, Bidirectional)):
            if layer.return_state:
                raise ValueError(f"to_onnx: {where} returns its states; a Sequential passes "
                                 "one tensor on.")
            if layer.time_major:
                raise ValueError(f"to_onnx: {where} is time_major inside a Sequential.")
            if mask is not None and isinstance(layer, LSTM) and layer.go_backwards \
                    and layer.return_sequences:
                raise ValueError(f"to_onnx: {where} runs backwards over a masked sequence "
                                 "and returns it; not exported.")
            fn = _keras_lstm if isinstance(layer, LSTM) else _keras_bidirectional
            outs, mask = fn(g, layer, x, mask, lens)
            x = outs[0]
            lens = None if mask is None else lens
        elif isinstance(layer, Dense):
            x = _dense(g, layer, x, None)
        elif isinstance(layer, Dropout):
            continue
        else:
            raise ValueError(f"to_onnx: {where} is a {type(layer).__name__}; a Sequential "
                             "exports Embedding, Masking, LSTM, Bidirectional, Dense and "
                             "Dropout.")
    out = g.rename(x, "output")
    return g.model(inputs, [g.helper.make_tensor_value_info(out, g.elem(), None)])


def _layer(layer):
    from ..layers import LSTM
    g = _Graph(layer.dtype)
    F = layer.cell.input_dim if isinstance(layer, LSTM) else layer.forward_layer.cell.input_dim
    dims = ["seq", "batch", F] if layer.time_major else ["batch", "seq", F]
    inputs = [g.helper.make_tensor_value_info("input", g.elem(), dims)]
    fn = _keras_lstm if isinstance(layer, LSTM) else _keras_bidirectional
    outs, _ = fn(g, layer, "input", None, None)
    if isinstance(layer, LSTM):
        names = ["output", "h", "c"]
    else:
        names = (["output"] if layer.merge_mode is not None else ["output", "output_1"])
        names += ["forward_h", "forward_c", "backward_h", "backward_c"]
    outputs = [g.helper.make_tensor_value_info(g.rename(v, n), g.elem(), None)
               for v, n in zip(outs, names)]
    return g.model(inputs, outputs)


def _torch_lstm(lstm):
    if lstm.proj_size:
        raise ValueError("to_onnx: this nn.LSTM has proj_size="
                         f"{lstm.proj_size}; ONNX's LSTM operator has no projection "
                         "(weight_hr), so it cannot be exported.")
    if getattr(lstm, "_reverse_only", False) or getattr(lstm, "_cells", None) is not None:
        raise ValueError("to_onnx exports a torch-configured nn.LSTM; this one was loaded "
                         "from ONNX (save that ONNX model instead).")
    g = _Graph(lstm.dtype)
    dims = ["batch", "seq", lstm.input_size] if lstm.batch_first else \
        ["seq", "batch", lstm.input_size]
    inputs = [g.helper.make_tensor_value_info("input", g.elem(), dims)]
    x = _to_time_major(g, "input", not lstm.batch_first)
    D, H = lstm.num_directions, lstm.hidden_size
    hs, cs = [], []
    act, rec = lstm._activation, lstm._recurrent_activation
    for layer, row in enumerate(lstm._slots):
        cells = [(s.kernel, s.recurrent, s.bias(), rec, act) for s in row]
        Y, Yh, Yc = _lstm_node(g, x, cells, "bidirectional" if D == 2 else "forward", None,
                               f"nn.LSTM layer {layer}")
        # (T, D, B, H) -> (T, B, D*H)
        x = g.op("Reshape", [g.op("Transpose", [Y], perm=[0, 2, 1, 3]),
                             g.ints([0, 0, D * H])])
        hs.append(Yh)
        cs.append(Yc)
    out = x if not lstm.batch_first else g.op("Transpose", [x], perm=[1, 0, 2])
    h_n = hs[0] if len(hs) == 1 else g.op("Concat", hs, axis=0)
    c_n = cs[0] if len(cs) == 1 else g.op("Concat", cs, axis=0)
    outputs = [g.helper.make_tensor_value_info(g.rename(v, n), g.elem(), None)
               for v, n in ((out, "output"), (h_n, "h_n"), (c_n, "c_n"))]
    return g.model(inputs, outputs)


def to_onnx(obj, path=None, *, example=None):
    """Export ``obj`` (``layers.LSTM``, ``layers.Bidirectional``, ``nn.LSTM`` or a
    ``Sequential`` of Embedding/Masking/LSTM/Bidirectional/Dense/Dropout) to
    ONNX. Writes ``path`` when given and returns the ``onnx.ModelProto``.

    ``example``: a sample input of a Sequential with Masking or
    Embedding(mask_zero=True); its mask is checked to be right-padded (what
    ``sequence_lens`` can express), else ValueError.
    """
    from ..layers import LSTM, Bidirectional
    from ..models import Sequential
    from ..nn.lstm import LSTM as TorchLSTM
    if isinstance(obj, Sequential):
        model = _sequential(obj, example)
    elif isinstance(obj, (LSTM, Bidirectional)):
        if not obj.built:
            raise ValueError(f"to_onnx: layer {obj.name!r} is not built (call it once or "
                             "build(input_shape)).")
        model = _layer(obj)
    elif isinstance(obj, TorchLSTM):
        model = _torch_lstm(obj)
    else:
        raise TypeError("to_onnx exports cylstm.layers.LSTM, Bidirectional, cylstm.nn.LSTM "
                        f"or a cylstm.Sequential; got {type(obj).__name__}.")
    if path is not None:
        onnx, _, _ = _import_onnx()
        onnx.save(model, str(path))
    return model
