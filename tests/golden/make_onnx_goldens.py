#!/usr/bin/env python
"""Regenerate the ONNX golden fixtures in tests/golden/onnx_lstm/.

Run from the repository root with the dev venv that has the real onnx,
onnxruntime and torch (cylstm's own tests only read the files written here):

    /work/devvenv-torch/bin/python tests/golden/make_onnx_goldens.py

For every case it writes ``<case>.onnx`` (one ``LSTM`` node, float32, W/R/B as
initializers) and ``<case>.npz`` with the inputs, the weights and the outputs
Y, Y_h, Y_c computed by onnxruntime's CPUExecutionProvider. Before saving, each
case is also checked against an independent NumPy implementation of the ONNX
LSTM definition, so the semantics facts in README_torch_onnx.md are verified
on every regeneration (the script fails if one of them stops holding).
"""

import io
import json
import os
import platform
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "onnx_lstm")

SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 5
OPSET = 14          # first opset with the `layout` attribute
IR_VERSION = 8
PROVIDERS = ["CPUExecutionProvider"]


def versions_string(extra=None):
    v = {
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "opset": OPSET,
        "generator": "tests/golden/make_onnx_goldens.py",
    }
    if extra:
        v.update(extra)
    return json.dumps(v, sort_keys=True)


# name, direction, layout, has_B, sequence_lens (None or list), has_initial
CASES = [
    ("forward", "forward", 0, True, None, False),
    ("reverse", "reverse", 0, True, None, False),
    ("bidirectional", "bidirectional", 0, True, None, False),
    ("forward_noB", "forward", 0, False, None, False),
    ("bidirectional_noB", "bidirectional", 0, False, None, False),
    ("forward_initial", "forward", 0, True, None, True),
    ("reverse_initial", "reverse", 0, True, None, True),
    ("bidirectional_initial", "bidirectional", 0, True, None, True),
    ("forward_seqlens", "forward", 0, True, [5, 2, 4], False),
    ("reverse_seqlens", "reverse", 0, True, [5, 2, 4], False),
    ("bidirectional_seqlens", "bidirectional", 0, True, [3, 5, 1], False),
    ("reverse_seqlens_initial", "reverse", 0, True, [4, 2, 3], True),
    ("bidirectional_seqlens_initial", "bidirectional", 0, True, [5, 2, 4], True),
    ("layout1_forward", "forward", 1, True, None, False),
    ("layout1_reverse_initial", "reverse", 1, True, None, True),
    ("layout1_bidirectional", "bidirectional", 1, True, None, False),
    ("layout1_forward_noB_seqlens", "forward", 1, False, [2, 5, 3], False),
    ("layout1_bidirectional_seqlens_initial", "bidirectional", 1, True, [5, 2, 4], True),
]


# ---------------------------------------------------------------------------
# Independent NumPy reference of the ONNX LSTM (default activations, no
# peepholes, no clip, input_forget=0), layout 0.
# ---------------------------------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference_lstm(X, W, R, B, seq_lens, h0, c0, direction, gate_order="iofc"):
    X = X.astype(np.float64)
    S, N, _ = X.shape
    D, H4, _ = W.shape
    H = H4 // 4
    Y = np.zeros((S, D, N, H))
    Yh = np.zeros((D, N, H))
    Yc = np.zeros((D, N, H))
    for d in range(D):
        rev = direction == "reverse" or (direction == "bidirectional" and d == 1)
        Wd, Rd = W[d].astype(np.float64), R[d].astype(np.float64)
        bias = np.zeros(4 * H) if B is None else (B[d, :4 * H] + B[d, 4 * H:]).astype(np.float64)
        for b in range(N):
            L = S if seq_lens is None else int(seq_lens[b])
            h = np.zeros(H) if h0 is None else h0[d, b].astype(np.float64)
            c = np.zeros(H) if c0 is None else c0[d, b].astype(np.float64)
            for t in (range(L - 1, -1, -1) if rev else range(L)):
                z = Wd @ X[t, b] + Rd @ h + bias
                parts = dict(zip(gate_order, (z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:])))
                c = _sigmoid(parts["f"]) * c + _sigmoid(parts["i"]) * np.tanh(parts["c"])
                h = _sigmoid(parts["o"]) * np.tanh(c)
                Y[t, d, b] = h
            Yh[d, b] = h
            Yc[d, b] = c
    return Y, Yh, Yc


# ---------------------------------------------------------------------------

def make_model(direction, layout, W, R, B, has_seqlens, has_initial):
    D = W.shape[0]
    x_shape = [SEQ, BATCH, INPUT] if layout == 0 else [BATCH, SEQ, INPUT]
    st_shape = [D, BATCH, HIDDEN] if layout == 0 else [BATCH, D, HIDDEN]
    y_shape = [SEQ, D, BATCH, HIDDEN] if layout == 0 else [BATCH, SEQ, D, HIDDEN]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    node_in = ["X", "W", "R", "B" if B is not None else "", "", "", ""]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if B is not None:
        inits.append(numpy_helper.from_array(B, "B"))
    if has_seqlens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [BATCH]))
        node_in[4] = "sequence_lens"
    if has_initial:
        inputs.append(helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, st_shape))
        inputs.append(helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, st_shape))
        node_in[5], node_in[6] = "initial_h", "initial_c"
    while node_in[-1] == "":
        node_in.pop()
    node = helper.make_node("LSTM", node_in, ["Y", "Y_h", "Y_c"], name="lstm",
                            direction=direction, hidden_size=HIDDEN, layout=layout)
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, st_shape),
               helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, st_shape)]
    graph = helper.make_graph([node], "lstm_golden", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cylstm-golden")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def run_ort(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=PROVIDERS)
    return sess.run(["Y", "Y_h", "Y_c"], feed)


def check_semantics(name, direction, X0, W, R, B, sl, h0_0, c0_0, Y, Yh, Yc):
    """X0/h0_0/c0_0 and Y/Yh/Yc in layout 0. Asserts the documented facts."""
    rY, rYh, rYc = reference_lstm(X0, W, R, B, sl, h0_0, c0_0, direction)
    err = max(np.abs(Y - rY).max(), np.abs(Yh - rYh).max(), np.abs(Yc - rYc).max())
    assert err < 1e-5, (name, err)
    # The gate order matters: torch's i,f,g,o order would not match.
    wY, _, _ = reference_lstm(X0, W, R, B, sl, h0_0, c0_0, direction, gate_order="ifco")
    assert np.abs(Y - wY).max() > 1e-2, name
    D = W.shape[0]
    for d in range(D):
        rev = direction == "reverse" or (direction == "bidirectional" and d == 1)
        for b in range(BATCH):
            L = SEQ if sl is None else int(sl[b])
            # Steps at or beyond sequence_lens are exactly zero in Y.
            assert np.all(Y[L:, d, b] == 0.0), name
            # Y_h is the last step computed: t = L-1 forward, t = 0 reverse.
            t_last = 0 if rev else L - 1
            assert np.array_equal(Yh[d, b], Y[t_last, d, b]), (name, d, b)
    return err


def save_npz(path, arrays, config, note, versions):
    for k, v in arrays.items():
        assert isinstance(v, np.ndarray) and v.dtype != object, k
    np.savez_compressed(path, config=np.array(json.dumps(config, sort_keys=True)),
                        note=np.array(note), versions=np.array(versions), **arrays)


def layout1_rejection_message():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 4 * HIDDEN, INPUT)).astype(np.float32)
    R = rng.standard_normal((1, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    m = make_model("forward", 1, W, R, None, False, False)
    try:
        ort.set_default_logger_severity(4)
        ort.InferenceSession(m.SerializeToString(), providers=PROVIDERS)
    except Exception as e:  # noqa: BLE001 - we record whatever ORT says
        msg = str(e)
        i = msg.find("layout_ == 0")
        return msg[i:].strip() if i >= 0 else msg.strip()
    finally:
        ort.set_default_logger_severity(2)
    return None


def make_case(idx, name, direction, layout, has_B, seq_lens, has_initial, versions,
              layout1_msg):
    rng = np.random.default_rng(2000 + idx)
    D = 2 if direction == "bidirectional" else 1
    W = (rng.standard_normal((D, 4 * HIDDEN, INPUT)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((D, 4 * HIDDEN, HIDDEN)) * 0.5).astype(np.float32)
    B = (rng.standard_normal((D, 8 * HIDDEN)) * 0.5).astype(np.float32) if has_B else None
    X0 = rng.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)       # layout 0
    h0_0 = rng.standard_normal((D, BATCH, HIDDEN)).astype(np.float32) if has_initial else None
    c0_0 = rng.standard_normal((D, BATCH, HIDDEN)).astype(np.float32) if has_initial else None
    sl = np.array(seq_lens, dtype=np.int32) if seq_lens is not None else None

    model = make_model(direction, layout, W, R, B, sl is not None, has_initial)
    model0 = model if layout == 0 else make_model(direction, 0, W, R, B, sl is not None,
                                                  has_initial)
    feed0 = {"X": X0}
    if sl is not None:
        feed0["sequence_lens"] = sl
    if has_initial:
        feed0["initial_h"], feed0["initial_c"] = h0_0, c0_0
    Y0, Yh0, Yc0 = run_ort(model0, feed0)
    err = check_semantics(name, direction, X0, W, R, B, sl, h0_0, c0_0, Y0, Yh0, Yc0)

    if layout == 0:
        arrays = dict(feed0)
        arrays.update(Y=Y0, Y_h=Yh0, Y_c=Yc0)
        note = ("Y, Y_h, Y_c computed by onnxruntime %s CPUExecutionProvider on this "
                "model; checked against a NumPy reference of the ONNX LSTM (max abs "
                "err %.1e)." % (ort.__version__, err))
    else:
        arrays = {"X": np.ascontiguousarray(X0.transpose(1, 0, 2))}
        if sl is not None:
            arrays["sequence_lens"] = sl
        if has_initial:
            arrays["initial_h"] = np.ascontiguousarray(h0_0.transpose(1, 0, 2))
            arrays["initial_c"] = np.ascontiguousarray(c0_0.transpose(1, 0, 2))
        arrays.update(Y=np.ascontiguousarray(Y0.transpose(2, 0, 1, 3)),
                      Y_h=np.ascontiguousarray(Yh0.transpose(1, 0, 2)),
                      Y_c=np.ascontiguousarray(Yc0.transpose(1, 0, 2)))
        note = ("layout=1 model. onnxruntime %s CPUExecutionProvider rejects layout=1 "
                "(%s), so Y, Y_h, Y_c were computed by running the equivalent layout=0 "
                "model (same W, R, B) in onnxruntime on the transposed inputs "
                "(X [batch,seq,in] -> [seq,batch,in], initial_h/c [batch,D,H] -> "
                "[D,batch,H]) and transposing the outputs back (Y [seq,D,batch,H] -> "
                "[batch,seq,D,H], Y_h/Y_c [D,batch,H] -> [batch,D,H]); also checked "
                "against a NumPy reference of the ONNX LSTM (max abs err %.1e)."
                % (ort.__version__, layout1_msg or "no error recorded", err))
    arrays["W"], arrays["R"] = W, R
    if B is not None:
        arrays["B"] = B
    config = {"direction": direction, "hidden_size": HIDDEN, "layout": layout,
              "has_B": has_B, "has_sequence_lens": sl is not None,
              "has_initial": has_initial, "input_size": INPUT, "opset": OPSET,
              "source": "onnx.helper", "case": name}
    onnx.save(model, os.path.join(OUT_DIR, name + ".onnx"))
    save_npz(os.path.join(OUT_DIR, name + ".npz"), arrays, config, note, versions)
    return [name + ".onnx", name + ".npz"]


# ---------------------------------------------------------------------------
# torch.onnx.export (legacy TorchScript exporter: works offline; the default
# dynamo exporter of torch 2.13 needs the `onnxscript` package).
# ---------------------------------------------------------------------------

TORCH_EXPORT_CASES = [
    # name, torch kwargs, has_hx
    ("torch_export_forward", {"input_size": INPUT, "hidden_size": HIDDEN}, False),
    ("torch_export_bidir_batch_first_hx",
     {"input_size": INPUT, "hidden_size": HIDDEN, "bidirectional": True,
      "batch_first": True}, True),
]


def make_torch_export_case(idx, name, kwargs, has_hx, base_versions):
    try:
        import torch
    except ImportError as e:
        print("skipping %s: torch not importable (%s)" % (name, e))
        return []
    torch.manual_seed(3000 + idx)
    mod = torch.nn.LSTM(**kwargs).eval()
    D = 2 if kwargs.get("bidirectional") else 1
    bf = kwargs.get("batch_first", False)
    x = torch.randn((BATCH, SEQ, INPUT) if bf else (SEQ, BATCH, INPUT))
    args = (x,)
    names = ["x"]
    if has_hx:
        h0 = torch.randn(D, BATCH, HIDDEN)
        c0 = torch.randn(D, BATCH, HIDDEN)
        args = (x, (h0, c0))
        names += ["h0", "c0"]
    with torch.no_grad():
        t_out, (t_hn, t_cn) = mod(*args)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, args, buf, dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=["output", "h_n", "c_n"],
                          do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    lstm_nodes = [n for n in model.graph.node if n.op_type == "LSTM"]
    assert len(lstm_nodes) == 1, name
    node = lstm_nodes[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    layout = int(attrs.get("layout", 0))

    # Expose the LSTM node's own outputs (Y, Y_h, Y_c) as extra graph outputs of
    # an in-memory copy, so the fixture also holds the raw node results.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for o in node.output:
        if o and o not in existing:
            probe.graph.output.append(helper.make_empty_tensor_value_info(o))
    feed = {"x": x.numpy()}
    if has_hx:
        feed["h0"], feed["c0"] = h0.numpy(), c0.numpy()
    sess = ort.InferenceSession(probe.SerializeToString(), providers=PROVIDERS)
    out_names = [o.name for o in sess.get_outputs()]
    res = dict(zip(out_names, sess.run(out_names, feed)))

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    node_in = list(node.input) + [""] * (8 - len(node.input))
    W, R = inits[node_in[1]], inits[node_in[2]]
    B = inits.get(node_in[3]) if node_in[3] else None
    # The LSTM node's X: the graph input, transposed to seq-first when batch_first.
    X0 = feed["x"].transpose(1, 0, 2) if bf else feed["x"]
    h0n = feed.get("h0") if node_in[5] else None
    c0n = feed.get("c0") if node_in[6] else None
    Y, Yh, Yc = (res[node.output[0]], res[node.output[1]], res[node.output[2]])
    err = check_semantics(name, direction, X0, W, R, B, None, h0n, c0n, Y, Yh, Yc)
    terr = max(np.abs(res["output"] - t_out.numpy()).max(),
               np.abs(res["h_n"] - t_hn.numpy()).max(),
               np.abs(res["c_n"] - t_cn.numpy()).max())
    assert terr < 1e-5, (name, terr)

    arrays = {"x": feed["x"], "X": np.ascontiguousarray(X0)}
    if has_hx:
        arrays.update(h0=feed["h0"], c0=feed["c0"])
        if h0n is not None:
            arrays.update(initial_h=h0n, initial_c=c0n)
    arrays.update(output=res["output"], h_n=res["h_n"], c_n=res["c_n"],
                  torch_output=t_out.numpy(), torch_h_n=t_hn.numpy(),
                  torch_c_n=t_cn.numpy(), Y=Y, Y_h=Yh, Y_c=Yc, W=W, R=R)
    if B is not None:
        arrays["B"] = B
    for k, v in mod.state_dict().items():
        arrays["sd__" + k] = v.numpy().copy()
    config = {"direction": direction, "hidden_size": int(attrs["hidden_size"]),
              "layout": layout, "has_B": B is not None, "has_sequence_lens": False,
              "has_initial": h0n is not None, "input_size": INPUT, "opset": OPSET,
              "source": "torch.onnx.export(dynamo=False)", "case": name,
              "torch_kwargs": kwargs, "seed": 3000 + idx,
              "graph_inputs": names, "graph_outputs": ["output", "h_n", "c_n"],
              "lstm_node_inputs": list(node.input),
              "lstm_node_outputs": list(node.output)}
    note = ("Exported from torch.nn.LSTM(%s) with torch.onnx.export(dynamo=False, "
            "opset_version=%d) (the legacy TorchScript exporter; the default dynamo "
            "exporter needs the onnxscript package). The graph wraps one LSTM node in "
            "Transpose/Reshape ops. output/h_n/c_n: the whole graph run in onnxruntime "
            "CPUExecutionProvider (= torch's output, h_n, c_n; torch_* are torch's own "
            "values, max abs diff %.1e). X/initial_h/initial_c -> Y/Y_h/Y_c: the LSTM "
            "node's own inputs and outputs (layout 0), checked against a NumPy "
            "reference of the ONNX LSTM (max abs err %.1e). sd__*: the torch state dict."
            % (", ".join("%s=%r" % kv for kv in kwargs.items()), OPSET, terr, err))
    if not has_hx:
        note += (" Without hx the exporter still feeds the LSTM node initial_h and "
                 "initial_c: zeros built in the graph by Expand ops from x's shape (not "
                 "graph inputs), so config has_initial is false and the npz holds no "
                 "initial_h/initial_c.")
    versions = versions_string({"torch": torch.__version__})
    onnx.save(model, os.path.join(OUT_DIR, name + ".onnx"))
    save_npz(os.path.join(OUT_DIR, name + ".npz"), arrays, config, note, versions)
    return [name + ".onnx", name + ".npz"]


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    versions = versions_string()
    layout1_msg = layout1_rejection_message()
    print("onnxruntime on layout=1:", layout1_msg)
    written = []
    for idx, case in enumerate(CASES):
        written += make_case(idx, *case, versions=versions, layout1_msg=layout1_msg)
    for idx, (name, kwargs, has_hx) in enumerate(TORCH_EXPORT_CASES):
        written += make_torch_export_case(idx, name, kwargs, has_hx, versions)

    for fn in written:
        p = os.path.join(OUT_DIR, fn)
        if fn.endswith(".npz"):
            with np.load(p, allow_pickle=False) as z:
                for k in z.files:
                    z[k]
        else:
            onnx.checker.check_model(onnx.load(p), full_check=True)
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in written)
    print("wrote %d files (%d bytes) to %s" % (len(written), total, OUT_DIR))


if __name__ == "__main__":
    sys.exit(main())
