"""The whole ONNX LSTM operator through cylstm.from_onnx.

Fixtures: tests/golden/onnx_operator/ (peepholes, clip, input_forget, every
RNN activation with alpha/beta, per-direction activations, weights as graph
inputs, opsets 7/14/22, both layouts, sequence_lens, initial states; float32
from onnxruntime, float64 from the generator's spec implementation) and
tests/golden/onnx_backend/ (ONNX's own test_lstm_* node tests), made by
tests/golden/make_onnx_operator_goldens.py. Reading .onnx files needs `onnx`.
"""
import json

import numpy as np
import pytest

import cylstm
from cylstm.interop.onnx_lstm import OnnxLSTM
from tests.conftest import GOLDEN, golden_cases, load_golden

onnx = pytest.importorskip("onnx")

CASES = golden_cases("onnx_operator")
BACKEND = golden_cases("onnx_backend")
# float32 against onnxruntime: its SIMD exp/tanh differ from ours by a few ulp,
# compounded over the steps; float64 against the exact spec implementation.
TOLS = {"float32": dict(rtol=2e-5, atol=5e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def _feeds(arrays):
    return {k[4:]: v for k, v in arrays.items() if k.startswith("in__")}


def test_every_case_is_there():
    assert len(CASES) == 28 and len(BACKEND) == 6


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_operator_matches_onnxruntime(path):
    arrays, cfg = load_golden(path)
    feeds = _feeds(arrays)
    lstm = cylstm.from_onnx(path.with_suffix(".onnx"))
    assert isinstance(lstm, OnnxLSTM) and lstm.dtype == np.dtype(cfg["dtype"])
    assert lstm.layout == cfg["layout"] and lstm.direction == cfg["direction"]
    weights = {k: v for k, v in feeds.items() if k in ("W", "R", "B", "P")
               and k in cfg["graph_inputs"]}
    assert sorted(lstm.weight_inputs) == sorted(weights)
    tol = TOLS[cfg["dtype"]]
    results = [lstm.run_feeds(feeds)]
    if weights:
        with pytest.raises(ValueError, match="graph inputs"):
            lstm.run(feeds["X"])
        bound = lstm.bind(weights)
        assert not lstm.weights_bound and bound.weights_bound
        rest = {k: v for k, v in feeds.items() if k not in weights and k != "X"}
        results.append(bound.run(feeds["X"], **rest))
        results.append(cylstm.from_onnx(path.with_suffix(".onnx"), weights=weights)
                       .run_feeds({k: v for k, v in feeds.items() if k not in weights}))
    for got in results:
        for value, name in zip(got, ("Y", "Y_h", "Y_c")):
            assert value.shape == arrays[name].shape and value.dtype == lstm.dtype, name
            np.testing.assert_allclose(value, arrays[name], **tol, err_msg=name)


@pytest.mark.parametrize("path", CASES[::3], ids=lambda p: p.stem)
def test_compiled_cell_equals_the_numpy_twin(path):
    """The extended kernel against the NumPy twin it mirrors: the same node
    with its activations given as Python callables runs on the twin."""
    arrays, cfg = load_golden(path)
    feeds = _feeds(arrays)
    lstm = cylstm.from_onnx(path.with_suffix(".onnx"))
    lstm = lstm.bind(feeds) if lstm.weight_inputs else lstm
    compiled = lstm.run_feeds({k: v for k, v in feeds.items() if k not in lstm.weight_inputs})
    if lstm._cells is None:
        pytest.skip("runs on the common kernel path")
    twin = lstm.bind({})
    for cell in twin._cells:
        for key in ("gate_activation", "candidate_activation", "cell_activation"):
            cell[key] = (lambda act: (lambda z: act(z)))(cell[key])
    ref = twin.run_feeds({k: v for k, v in feeds.items() if k not in lstm.weight_inputs})
    tol = dict(rtol=1e-5, atol=1e-6) if cfg["dtype"] == "float32" else dict(rtol=1e-12,
                                                                              atol=1e-13)
    for a, b in zip(compiled, ref):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("path", BACKEND, ids=lambda p: p.stem)
def test_onnx_backend_node_tests(path):
    """ONNX's own test_lstm_* node tests (W, R, B, P as graph inputs)."""
    arrays, cfg = load_golden(path)
    lstm = cylstm.from_onnx(path.with_suffix(".onnx"))
    got = dict(zip(("Y", "Y_h", "Y_c"), lstm.run_feeds(_feeds(arrays))))
    outputs = dict(zip(lstm.output_names, ("Y", "Y_h", "Y_c")))
    for name in cfg["outputs"]:
        value = got[outputs[name]]
        np.testing.assert_allclose(value, arrays[f"onnx__{name}"], rtol=1e-3, atol=1e-7)
        if f"ort__{name}" in arrays:
            np.testing.assert_allclose(value, arrays[f"ort__{name}"], rtol=2e-5, atol=2e-6)


def test_onnx_backend_cases_from_the_installed_onnx():
    """The same node tests, built now by the installed onnx package's own case
    generators (onnx.backend.test.case.node.lstm), whatever its version."""
    lstm_cases = pytest.importorskip("onnx.backend.test.case.node.lstm")
    found = []
    keep = lstm_cases.expect
    lstm_cases.expect = lambda node, inputs, outputs, name, **kw: found.append(
        (node, inputs, outputs, name))
    try:
        for attr in sorted(dir(lstm_cases.LSTM)):
            if attr.startswith("export"):
                getattr(lstm_cases.LSTM, attr)()
    finally:
        lstm_cases.expect = keep
    assert len(found) >= 6
    helper = onnx.helper
    for node, inputs, outputs, name in found:
        present = [n for n in node.input if n]
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype),
                                             list(v.shape)) for n, v in zip(present, inputs)]
        elem = helper.np_dtype_to_tensor_dtype(inputs[0].dtype)
        outs = [helper.make_tensor_value_info(n, elem, None) for n in node.output if n]
        model = helper.make_model(helper.make_graph([node], name, ins, outs))
        lstm = cylstm.from_onnx(model)
        got = dict(zip(("Y", "Y_h", "Y_c"), lstm.run_feeds(dict(zip(present, inputs)))))
        names = dict(zip(lstm.output_names, ("Y", "Y_h", "Y_c")))
        for n, want in zip([n for n in node.output if n], outputs):
            np.testing.assert_allclose(got[names[n]], want, rtol=1e-3, atol=1e-7,
                                       err_msg=name)


# -- the module surface ---------------------------------------------------------
def _case(name):
    path = GOLDEN / "onnx_operator" / f"{name}.npz"
    arrays, cfg = load_golden(path)
    return path.with_suffix(".onnx"), arrays, cfg


def test_training_and_torch_are_refused_with_extras():
    path, arrays, _ = _case("clip_reverse_float32")
    lstm = cylstm.from_onnx(path)
    with pytest.raises(ValueError, match="inference only"):
        lstm.forward_train(arrays["in__X"])
    with pytest.raises(ValueError, match="no torch.nn.LSTM equivalent"):
        lstm.to_torch()


def test_torch_style_call_of_an_extended_node():
    """lstm(x, hx) gives the node's Y in torch's shapes, peepholes and all."""
    path, arrays, _ = _case("peephole_bidirectional_layout1_seqlens_initial_float64")
    lstm = cylstm.from_onnx(path)
    f = _feeds(arrays)
    hx = (f["initial_h"].transpose(1, 0, 2), f["initial_c"].transpose(1, 0, 2))
    out, (h_n, c_n) = lstm(f["X"], hx, sequence_lens=f["sequence_lens"])
    Y = arrays["Y"]
    np.testing.assert_allclose(out, Y.reshape(Y.shape[0], Y.shape[1], -1), **TOLS["float64"])
    np.testing.assert_allclose(h_n, arrays["Y_h"].transpose(1, 0, 2), **TOLS["float64"])


def test_partial_rebind_keeps_the_other_weights():
    path, arrays, _ = _case("peephole_forward_float32")
    f = _feeds(arrays)
    lstm = cylstm.from_onnx(path).bind(f)
    again = lstm.bind({"P": np.zeros_like(f["P"])})        # peepholes off, W/R/B kept
    plain = cylstm.from_onnx(path).bind(dict(f, P=np.zeros_like(f["P"])))
    assert again._cells is None
    np.testing.assert_allclose(again.run(f["X"])[0], plain.run(f["X"])[0], rtol=0, atol=0)
    np.testing.assert_allclose(lstm.run(f["X"])[0], arrays["Y"], **TOLS["float32"])


# -- malformed models -----------------------------------------------------------
def _node_model(**attrs):
    path, arrays, _ = _case("clip_reverse_float32")
    model = onnx.load(str(path))
    node = model.graph.node[0]
    for k, v in attrs.items():
        for a in list(node.attribute):
            if a.name == k:
                node.attribute.remove(a)
        if v is not None:
            node.attribute.append(onnx.helper.make_attribute(k, v))
    return model, arrays


@pytest.mark.parametrize("attrs, match", [
    (dict(direction="sideways"), "unknown direction 'sideways'"),
    (dict(layout=2), "layout must be 0 or 1"),
    (dict(input_forget=3), "input_forget must be 0 or 1"),
    (dict(clip=-1.0), "clip must be a positive number"),
    (dict(activations=["Sigmoid", "Swish", "Tanh"]), "unknown activation 'Swish'"),
    (dict(activations=["Sigmoid", "Tanh"]), "3 per direction"),
    (dict(hidden_size=7), "hidden_size 7 disagrees"),
    (dict(output_sequence=1), "does not define"),
])
def test_bad_attributes_name_the_node(attrs, match):
    model, _ = _node_model(**attrs)
    with pytest.raises(ValueError, match=match) as info:
        cylstm.from_onnx(model)
    assert "'lstm_clip_reverse'" in str(info.value)


def test_unnamed_node_is_named_by_index_and_op():
    model, _ = _node_model(direction="sideways")
    model.graph.node[0].name = ""
    with pytest.raises(ValueError, match=r"#0 \(LSTM, unnamed\)"):
        cylstm.from_onnx(model)


def test_missing_and_misshapen_inputs():
    path, arrays, _ = _case("peephole_forward_float32")
    f = _feeds(arrays)
    lstm = cylstm.from_onnx(path)
    with pytest.raises(ValueError, match=r"missing from the feeds"):
        lstm.run_feeds({k: v for k, v in f.items() if k != "R"})
    with pytest.raises(ValueError, match=r"input P \('P'\) must have shape \[1, 12\]"):
        lstm.run_feeds(dict(f, P=f["P"][:, :5]))
    with pytest.raises(ValueError, match="must hold the node's input X"):
        lstm.run_feeds({k: v for k, v in f.items() if k != "X"})
    model = onnx.load(str(path))
    model.graph.node[0].input[2] = ""
    with pytest.raises(ValueError, match="missing its required input R"):
        cylstm.from_onnx(model)
    model = onnx.load(str(path))
    model.graph.input[1].type.tensor_type.shape.dim[2].dim_param = "n"
    with pytest.raises(ValueError, match="without a static shape"):
        cylstm.from_onnx(model)
    cylstm.from_onnx(model, weights={"W": f["W"]})     # a value instead of a shape
    model = onnx.load(str(path))
    model.graph.node[0].input[1] = "nowhere"
    with pytest.raises(ValueError, match="neither an initializer"):
        cylstm.from_onnx(model)
    model = onnx.load(str(path))
    model.opset_import[0].version = 6
    with pytest.raises(ValueError, match="opset 6"):
        cylstm.from_onnx(model)


def test_truncated_file_is_a_value_error(tmp_path):
    path, _, _ = _case("everything_bidirectional_layout1_float32")
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 7):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            cylstm.from_onnx(bad)


def test_fixture_configs_name_their_oracle():
    for path in CASES:
        _, cfg = load_golden(path)
        assert cfg["oracle"].startswith("onnxruntime" if cfg["dtype"] == "float32" else "spec")
        json.dumps(cfg)


def test_corrupted_bytes_never_crash():
    """Truncations and flipped bytes of a model either load and run, or raise
    ValueError/TypeError -- never anything else."""
    path, arrays, _ = _case("everything_bidirectional_layout1_float32")
    data = path.read_bytes()
    feeds = _feeds(arrays)
    rng = np.random.default_rng(0)
    for k in range(60):
        blob = bytearray(data)
        if k % 2:
            blob = blob[:int(rng.integers(0, len(blob)))]
        else:
            for i in rng.integers(0, len(blob), 3):
                blob[i] = int(rng.integers(0, 256))
        try:
            lstm = cylstm.from_onnx(bytes(blob))
            lstm.run_feeds(feeds)
        except (ValueError, TypeError):
            pass


def test_whole_graph_with_weights_as_graph_inputs():
    path = GOLDEN / "onnx_backend" / "test_lstm_with_peepholes.npz"
    arrays, cfg = load_golden(path)
    model = cylstm.from_onnx(path.with_suffix(".onnx"), whole_graph=True)
    feeds = _feeds(arrays)
    out = model.run(feeds)
    np.testing.assert_allclose(out[-1], arrays[f"onnx__{cfg['outputs'][-1]}"], rtol=1e-3,
                               atol=1e-7)
    with pytest.raises(ValueError, match="miss graph input"):
        model.run({k: v for k, v in feeds.items() if k != "P"})
    model.bind(feeds)
    again = model.run(feeds)
    np.testing.assert_allclose(again[-1], out[-1], rtol=0, atol=0)
