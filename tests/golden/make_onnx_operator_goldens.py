#!/usr/bin/env python
"""Regenerate tests/golden/onnx_operator/: the whole ONNX LSTM operator.

Run from the repository root with the dev venv (onnx, onnxruntime):

    /work/devvenv/bin/python tests/golden/make_onnx_operator_goldens.py

Each case is one ``LSTM`` node exercising what tests/golden/onnx_lstm/ does not:
peepholes ``P``, ``clip``, ``input_forget``, every RNN activation with
``activation_alpha``/``activation_beta``, different activations per direction,
weights as graph inputs (and as initializers), opsets 7, 14 and 22, both
layouts, ``sequence_lens`` and initial states, with random weights distinct per
gate. It writes ``<case>.onnx`` and ``<case>.npz`` (the feeds by input name,
the outputs Y, Y_h, Y_c, and a JSON config).

Oracle: onnxruntime 1.32 for float32. onnxruntime has no float64 LSTM, so the
float64 outputs come from the independent NumPy implementation below (written
from the operator's definition, in ONNX's own gate order), which is checked
against onnxruntime on every float32 case first (the script fails if they
disagree by more than 2e-5 relative) and against onnx.reference where that
implements the case (forward, default activations, no clip, input_forget or
sequence_lens). onnxruntime refuses layout 1, so layout-1 cases run on it as
their layout-0 twin with transposed inputs and outputs.

Also written: onnx_backend/ -- ONNX's own backend node tests test_lstm_*
(built by the installed onnx package's case generators, which
tests/interop/test_onnx_operator.py also runs directly), with onnxruntime's
outputs next to ONNX's expected ones.
"""
import json
import os
import platform
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "onnx_operator")
OUT_BACKEND = os.path.join(HERE, "onnx_backend")
T, B, I, H = 4, 3, 3, 4


def act(name, alpha, beta):
    """ONNX's activation `name` as a NumPy function (onnxruntime's defaults)."""
    n = name.lower()
    a = np.float32(alpha if alpha is not None else {"leakyrelu": 0.01, "hardsigmoid": 0.2,
                                                    "elu": 1.0}.get(n, 0.0))
    b = np.float32(beta if beta is not None else {"hardsigmoid": 0.5}.get(n, 0.0))
    fns = {
        "relu": lambda x: np.maximum(x, 0),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "affine": lambda x: a * x + b,
        "leakyrelu": lambda x: np.where(x >= 0, x, a * x),
        "thresholdedrelu": lambda x: np.where(x > a, x, 0),
        "scaledtanh": lambda x: a * np.tanh(b * x),
        "hardsigmoid": lambda x: np.clip(a * x + b, 0, 1),
        "elu": lambda x: np.where(x >= 0, x, a * (np.exp(np.minimum(x, 0)) - 1)),
        "softsign": lambda x: x / (1 + np.abs(x)),
        "softplus": lambda x: np.log1p(np.exp(x)),
    }
    return fns[n]


TAKES = {"affine": "ab", "leakyrelu": "a", "thresholdedrelu": "a", "scaledtanh": "ab",
         "hardsigmoid": "ab", "elu": "a"}


def spec_activations(names, alphas, betas, D):
    names = names or ["Sigmoid", "Tanh", "Tanh"] * D
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        t = TAKES.get(name.lower(), "")
        a = alphas.pop(0) if "a" in t and alphas else None
        b = betas.pop(0) if "b" in t and betas else None
        out.append(act(name, a, b))
    return out


def spec_lstm(feeds, attrs, D):
    """The ONNX LSTM operator, straight from its definition (gates i, o, f, c)."""
    X, W, R = feeds["X"], feeds["W"], feeds["R"]
    layout = attrs.get("layout", 0)
    h0, c0 = feeds.get("initial_h"), feeds.get("initial_c")
    if layout == 1:
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    dt = X.dtype
    Bias = feeds.get("B", np.zeros((D, 8 * H), dt))
    P = feeds.get("P", np.zeros((D, 3 * H), dt))
    lens = feeds.get("sequence_lens", np.full(B, T))
    clip = attrs.get("clip")
    clip = None if clip is None else float(np.float32(clip))   # a FLOAT attribute
    fns = spec_activations(attrs.get("activations"), attrs.get("activation_alpha"),
                           attrs.get("activation_beta"), D)
    Y = np.zeros((T, D, B, H), dt)
    Yh = np.zeros((D, B, H), dt)
    Yc = np.zeros((D, B, H), dt)
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    direction = attrs.get("direction", "forward")
    for d in range(D):
        f, g, hh = fns[3 * d:3 * d + 3]
        back = direction == "reverse" or d == 1
        Wi, Wo, Wf, Wc = np.split(W[d], 4)
        Ri, Ro, Rf, Rc = np.split(R[d], 4)
        bi, bo, bf, bc = np.split(Bias[d, :4 * H] + Bias[d, 4 * H:], 4)
        pi, po, pf = np.split(P[d], 3)
        for b in range(B):
            h = np.zeros(H, dt) if h0 is None else h0[d, b].copy()
            c = np.zeros(H, dt) if c0 is None else c0[d, b].copy()
            steps = range(lens[b] - 1, -1, -1) if back else range(lens[b])
            for t in steps:
                x = X[t, b]
                i = f(cl(Wi @ x + Ri @ h + bi + pi * c))
                fg = 1 - i if attrs.get("input_forget") else f(cl(Wf @ x + Rf @ h + bf + pf * c))
                cc = g(cl(Wc @ x + Rc @ h + bc))
                c = fg * c + i * cc
                o = f(cl(Wo @ x + Ro @ h + bo + po * c))
                h = o * hh(c)
                Y[t, d, b] = h
            Yh[d, b], Yc[d, b] = h, c
    if layout == 1:
        return Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
    return Y, Yh, Yc


# name, attrs, direction, extras {P, seqlens, initial, B}, weights as "inputs"/"init", opset
CASES = [
    ("peephole_forward", {}, "forward", "P", "inputs", 22),
    ("peephole_bidirectional_layout1_seqlens_initial", {"layout": 1}, "bidirectional",
     "P seqlens initial", "init", 22),
    ("clip_reverse", {"clip": 0.6}, "reverse", "", "init", 14),
    ("clip_peephole_bidirectional", {"clip": 1.1}, "bidirectional", "P", "inputs", 7),
    ("input_forget_forward_seqlens", {"input_forget": 1}, "forward", "seqlens", "init", 14),
    ("input_forget_bidirectional_layout1", {"input_forget": 1, "layout": 1}, "bidirectional",
     "initial", "inputs", 22),
    ("acts_affine_leakyrelu", {"activations": ["Sigmoid", "Affine", "LeakyRelu"],
                               "activation_alpha": [0.5, 0.2], "activation_beta": [0.1]},
     "forward", "", "init", 14),
    ("acts_hardsigmoid_thresholded_scaledtanh",
     {"activations": ["HardSigmoid", "ThresholdedRelu", "ScaledTanh"],
      "activation_alpha": [0.25, 0.1, 0.9], "activation_beta": [0.45, 0.8]},
     "reverse", "seqlens", "inputs", 22),
    ("acts_elu_softplus", {"activations": ["Sigmoid", "Elu", "Softplus"],
                           "activation_alpha": [0.7]}, "forward", "initial", "init", 7),
    ("acts_softsign_relu", {"activations": ["Sigmoid", "Softsign", "Relu"]}, "forward", "",
     "init", 22),
    ("acts_tanh_relu_bidirectional", {"activations": ["Sigmoid", "Tanh", "Relu"] * 2},
     "bidirectional", "", "init", 22),
    ("acts_defaults_leakyrelu_hardsigmoid", {"activations": ["HardSigmoid", "Tanh", "LeakyRelu"]},
     "forward", "", "init", 22),
    ("acts_per_direction", {"activations": ["Sigmoid", "Tanh", "Tanh",
                                            "HardSigmoid", "Softsign", "Elu"],
                            "activation_alpha": [0.3, 0.6], "activation_beta": [0.55]},
     "bidirectional", "seqlens", "inputs", 22),
    ("everything_bidirectional_layout1", {"layout": 1, "clip": 2.0, "input_forget": 1,
                                          "activations": ["HardSigmoid", "Affine", "ScaledTanh",
                                                          "Sigmoid", "LeakyRelu", "Tanh"],
                                          "activation_alpha": [0.3, 0.8, 0.9, 0.05],
                                          "activation_beta": [0.5, 0.05, 1.2]},
     "bidirectional", "P seqlens initial", "inputs", 22),
]


def run_ort(model, feeds, layout):
    """onnxruntime's outputs. It refuses layout 1 ("Batchwise recurrent
    operations (layout == 1) are not supported"), so a layout-1 node runs as
    its layout-0 twin on transposed X / states, and the outputs are transposed
    back -- the layout attribute's definition."""
    if layout == 1:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        node = model.graph.node[0]
        for a in node.attribute:
            if a.name == "layout":
                a.i = 0
        del model.graph.output[:]
        model.graph.output.extend([helper.make_tensor_value_info(k, TensorProto.FLOAT, None)
                                   for k in ("Y", "Y_h", "Y_c")])
        for v in model.graph.input:
            if v.name in ("X", "initial_h", "initial_c"):
                dims = v.type.tensor_type.shape.dim
                dims[0].dim_value, dims[1].dim_value = dims[1].dim_value, dims[0].dim_value
        feeds = {k: (v.transpose(1, 0, 2) if k in ("X", "initial_h", "initial_c") else v)
                 for k, v in feeds.items()}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Y, Yh, Yc = sess.run(None, feeds)
    if layout == 1:
        return Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
    return Y, Yh, Yc


def make_case(name, attrs, direction, extras, weights_as, opset, dtype, rng):
    D = 2 if direction == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    # Distinct per gate: every gate block has its own random values and scale.
    scale = np.repeat(np.array([0.9, 0.6, 0.8, 0.7]), H)[None, :, None]
    feeds = {
        "X": rng.standard_normal((T, B, I) if layout == 0 else (B, T, I)),
        "W": rng.standard_normal((D, 4 * H, I)) * scale,
        "R": rng.standard_normal((D, 4 * H, H)) * scale * 0.7,
        "B": rng.standard_normal((D, 8 * H)) * 0.3,
    }
    if "P" in extras:
        feeds["P"] = rng.standard_normal((D, 3 * H)) * 0.8
    if "initial" in extras:
        shape = (D, B, H) if layout == 0 else (B, D, H)
        feeds["initial_h"] = rng.standard_normal(shape) * 0.5
        feeds["initial_c"] = rng.standard_normal(shape) * 0.5
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    if "seqlens" in extras:
        feeds["sequence_lens"] = np.array([T, 2, 1], np.int32)[:B]
    names = ["X", "W", "R", "B", "sequence_lens" if "seqlens" in extras else "",
             "initial_h" if "initial" in extras else "", "initial_c" if "initial" in extras else "",
             "P" if "P" in extras else ""]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("LSTM", names, ["Y", "Y_h", "Y_c"], name=f"lstm_{name}",
                            hidden_size=H, direction=direction, **attrs)
    weight_names = {"W", "R", "B", "P"}
    inputs, inits = [], []
    for k in names:
        if not k:
            continue
        if k in weight_names and weights_as == "init":
            inits.append(numpy_helper.from_array(feeds[k], k))
        else:
            el = TensorProto.INT32 if k == "sequence_lens" else elem
            inputs.append(helper.make_tensor_value_info(k, el, list(feeds[k].shape)))
    yshape = [T, D, B, H] if layout == 0 else [B, T, D, H]
    sshape = [D, B, H] if layout == 0 else [B, D, H]
    outs = [helper.make_tensor_value_info(k, elem, s)
            for k, s in (("Y", yshape), ("Y_h", sshape), ("Y_c", sshape))]
    graph = helper.make_graph([node], name, inputs, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    expected = spec_lstm(feeds, dict(attrs, direction=direction), D)
    oracle = "spec-numpy (float64; checked against onnxruntime in float32)"
    if dtype == np.float32:
        run_feeds = {i.name: feeds[i.name] for i in inputs}
        got = run_ort(model, run_feeds, layout)
        for g, e, k in zip(got, expected, ("Y", "Y_h", "Y_c")):
            err = np.abs(g - e).max() / (1 + np.abs(e).max())
            assert err < 2e-5, (name, k, err)
        expected = got
        oracle = "onnxruntime"
        # onnx.reference implements peepholes and the default activations of
        # a forward node over whole sequences (no clip, input_forget, lengths).
        plain = (not ({"clip", "input_forget", "activations"} & set(attrs))
                 and direction == "forward" and "seqlens" not in extras)
        if plain:
            ref = ReferenceEvaluator(model).run(None, run_feeds)
            for r, e in zip(ref, expected):
                assert np.abs(r - e).max() < 1e-5, name
    stem = f"{name}_{np.dtype(dtype).name}"
    onnx.save(model, os.path.join(OUT, stem + ".onnx"))
    config = dict(name=name, direction=direction, layout=layout, opset=opset,
                  dtype=np.dtype(dtype).name, weights_as=weights_as, attrs=attrs,
                  graph_inputs=[i.name for i in inputs], oracle=oracle,
                  versions=dict(onnx=onnx.__version__, onnxruntime=ort.__version__,
                                numpy=np.__version__, python=platform.python_version()))
    arrays = {f"in__{k}": v for k, v in feeds.items() if k in names}
    arrays.update(Y=expected[0], Y_h=expected[1], Y_c=expected[2])
    np.savez_compressed(os.path.join(OUT, stem + ".npz"), config=json.dumps(config), **arrays)


def backend_cases():
    """ONNX's test_lstm_* node tests, from the installed onnx's case generators."""
    from onnx.backend.test.case.node import lstm as lstm_cases
    found = []

    def capture(node, inputs, outputs, name, **kwargs):
        found.append((node, inputs, outputs, name))

    keep = lstm_cases.expect
    lstm_cases.expect = capture
    try:
        for attr in sorted(dir(lstm_cases.LSTM)):
            if attr.startswith("export"):
                getattr(lstm_cases.LSTM, attr)()
    finally:
        lstm_cases.expect = keep
    return found


def write_backend():
    os.makedirs(OUT_BACKEND, exist_ok=True)
    for node, inputs, outputs, name in backend_cases():
        present = [n for n in node.input if n]
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype),
                                             list(v.shape)) for n, v in zip(present, inputs)]
        outs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype),
                                              list(v.shape))
                for n, v in zip([n for n in node.output if n], outputs)]
        model = helper.make_model(helper.make_graph([node], name, ins, outs),
                                  opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
        feeds = dict(zip(present, inputs))
        arrays = {f"in__{k}": v for k, v in feeds.items()}
        try:
            got = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"]).run(None, feeds)
        except Exception as exc:  # test_lstm_batchwise: onnxruntime refuses layout 1
            print(f"{name}: onnxruntime refuses it ({str(exc).splitlines()[0][:120]})")
            got = [None] * len(outputs)
        for n, want, g in zip([n for n in node.output if n], outputs, got):
            arrays[f"onnx__{n}"] = want
            if g is not None:
                arrays[f"ort__{n}"] = g
                assert np.abs(g - want).max() < 1e-5, name
        onnx.save(model, os.path.join(OUT_BACKEND, name + ".onnx"))
        config = dict(name=name, outputs=[n for n in node.output if n],
                      source="onnx.backend.test.case.node.lstm (onnx %s)" % onnx.__version__,
                      onnxruntime=ort.__version__)
        np.savez_compressed(os.path.join(OUT_BACKEND, name + ".npz"),
                            config=json.dumps(config), **arrays)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(12 if dtype == np.float32 else 64)
        for case in CASES:
            make_case(*case, dtype=dtype, rng=rng)
    write_backend()
    print("wrote", len(os.listdir(OUT)), "files to", OUT, "and", len(os.listdir(OUT_BACKEND)),
          "to", OUT_BACKEND)


if __name__ == "__main__":
    sys.exit(main())
