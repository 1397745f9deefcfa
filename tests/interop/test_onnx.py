"""cylstm.from_onnx against ONNX Runtime 1.32 outputs (tests/golden/onnx_lstm/).

Reading the .onnx files needs the optional `onnx` package; running needs only
NumPy. See tests/golden/README_torch_onnx.md for the cases and semantics.
"""
import sys

import numpy as np
import pytest

import cylstm
from cylstm.interop.onnx_lstm import OnnxLSTM
from tests.conftest import GOLDEN, TOL, golden_cases, load_golden

onnx = pytest.importorskip("onnx")

CASES = golden_cases("onnx_lstm")
EXPORTS = golden_cases("onnx_lstm", "torch_export_*.npz")


def _feeds(arrays):
    return {k: arrays[k] for k in ("sequence_lens", "initial_h", "initial_c") if k in arrays}


def test_every_case_is_covered():
    assert len(CASES) == 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_outputs_match_onnxruntime(path):
    arrays, cfg = load_golden(path)
    node = cylstm.from_onnx(path.with_suffix(".onnx"))
    assert isinstance(node, OnnxLSTM) and isinstance(node.lstm, cylstm.nn.LSTM)
    assert node.direction == cfg["direction"] and node.layout == cfg["layout"]
    assert node.lstm.batch_first == (cfg["layout"] == 1)
    Y, Y_h, Y_c = node(arrays["X"], **_feeds(arrays))
    for got, name in ((Y, "Y"), (Y_h, "Y_h"), (Y_c, "Y_c")):
        assert got.shape == arrays[name].shape and got.dtype == np.float32, name
        np.testing.assert_allclose(got, arrays[name], **TOL["float32"], err_msg=name)
    if cfg.get("has_sequence_lens"):
        # exactly zero beyond each row's length, as onnxruntime writes
        lens = arrays["sequence_lens"]
        for b, n in enumerate(lens):
            pad = Y[n:, :, b] if cfg["layout"] == 0 else Y[b, n:]
            assert not pad.any()


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_loading_a_model_object_or_bytes(path):
    model = onnx.load(str(path.with_suffix(".onnx")))
    arrays, _ = load_golden(path)
    for source in (model, model.SerializeToString()):
        Y, _, _ = cylstm.from_onnx(source).run(arrays["X"], **_feeds(arrays))
        np.testing.assert_allclose(Y, arrays["Y"], **TOL["float32"])


def test_nn_lstm_of_an_onnx_node_gives_the_same_numbers():
    for name in ("bidirectional_initial", "reverse_initial", "layout1_bidirectional"):
        arrays, cfg = load_golden(GOLDEN / "onnx_lstm" / f"{name}.npz")
        lstm = cylstm.from_onnx(GOLDEN / "onnx_lstm" / f"{name}.onnx").lstm
        hx = None
        if "initial_h" in arrays:
            hx = (arrays["initial_h"], arrays["initial_c"])
        output, (h_n, c_n) = lstm(arrays["X"], hx)
        Y = arrays["Y"]
        D = Y.shape[1] if cfg["layout"] == 0 else Y.shape[2]
        if cfg["layout"] == 0:  # [seq, D, batch, H] -> [seq, batch, D*H]
            expected = Y.transpose(0, 2, 1, 3).reshape(Y.shape[0], Y.shape[2], -1)
        else:                   # [batch, seq, D, H] -> [batch, seq, D*H]
            expected = Y.reshape(Y.shape[0], Y.shape[1], -1)
        assert lstm.num_directions == D
        np.testing.assert_allclose(output, expected, **TOL["float32"])
        if cfg["layout"] == 0:
            np.testing.assert_allclose(h_n, arrays["Y_h"], **TOL["float32"])


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.stem)
def test_torch_export_recovers_the_torch_state_dict(path):
    arrays, cfg = load_golden(path)
    node = cylstm.from_onnx(path.with_suffix(".onnx"))
    sd = node.lstm.state_dict()
    expected = {k[4:]: v for k, v in arrays.items() if k.startswith("sd__")}
    assert list(sd) == list(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(sd[k], v, rtol=0, atol=0, err_msg=k)
    # The LSTM node itself, on its own inputs.
    Y, Y_h, Y_c = node(arrays["X"], initial_h=arrays.get("initial_h"),
                       initial_c=arrays.get("initial_c"))
    np.testing.assert_allclose(Y, arrays["Y"], **TOL["float32"])
    np.testing.assert_allclose(Y_h, arrays["Y_h"], **TOL["float32"])
    # And the whole exported torch module, through cylstm.nn with torch's batch_first.
    lstm = cylstm.nn.LSTM.from_torch(sd, batch_first=cfg["torch_kwargs"].get("batch_first", False))
    hx = (arrays["h0"], arrays["c0"]) if "h0" in arrays else None
    output, (h_n, c_n) = lstm.eval()(arrays["x"], hx)
    np.testing.assert_allclose(output, arrays["output"], **TOL["float32"])
    np.testing.assert_allclose(h_n, arrays["h_n"], **TOL["float32"])
    np.testing.assert_allclose(c_n, arrays["c_n"], **TOL["float32"])


def test_full_length_sequence_lens_changes_nothing():
    arrays, _ = load_golden(GOLDEN / "onnx_lstm" / "bidirectional.npz")
    node = cylstm.from_onnx(GOLDEN / "onnx_lstm" / "bidirectional.onnx")
    T, B = arrays["X"].shape[:2]
    full = node(arrays["X"], sequence_lens=np.full(B, T, np.int32))
    for got, name in zip(full, ("Y", "Y_h", "Y_c")):
        np.testing.assert_allclose(got, arrays[name], **TOL["float32"])


# -- errors ------------------------------------------------------------------------
def _model(name="forward"):
    return onnx.load(str(GOLDEN / "onnx_lstm" / f"{name}.onnx"))


def _lstm_node(model):
    return next(n for n in model.graph.node if n.op_type == "LSTM")


def test_unsupported_attributes_are_named():
    model = _model()
    _lstm_node(model).attribute.append(onnx.helper.make_attribute("clip", 3.0))
    with pytest.raises(ValueError, match="clip"):
        cylstm.from_onnx(model)
    model = _model()
    _lstm_node(model).attribute.append(onnx.helper.make_attribute("input_forget", 1))
    with pytest.raises(ValueError, match="input_forget"):
        cylstm.from_onnx(model)
    model = _model()
    _lstm_node(model).attribute.append(onnx.helper.make_attribute(
        "activations", ["Sigmoid", "HardSigmoid", "HardSigmoid"]))
    with pytest.raises(ValueError, match="HardSigmoid"):
        cylstm.from_onnx(model)
    model = _model()
    _lstm_node(model).attribute.append(onnx.helper.make_attribute(
        "activations", ["Sigmoid", "Tanh", "Relu"]))
    with pytest.raises(ValueError, match="one activation for both"):
        cylstm.from_onnx(model)


def test_peepholes_are_rejected_unless_zero():
    for value, ok in ((0.0, True), (0.5, False)):
        model = _model()
        node = _lstm_node(model)
        while len(node.input) < 7:
            node.input.append("")
        node.input.append("P")
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            np.full((1, 15), value, np.float32), "P"))
        if ok:
            cylstm.from_onnx(model)
        else:
            with pytest.raises(ValueError, match="peepholes"):
                cylstm.from_onnx(model)


def test_supported_activations_run():
    arrays, _ = load_golden(GOLDEN / "onnx_lstm" / "forward.npz")
    model = _model()
    _lstm_node(model).attribute.append(onnx.helper.make_attribute(
        "activations", ["Sigmoid", "Relu", "Relu"]))
    node = cylstm.from_onnx(model)
    Y, _, _ = node(arrays["X"])
    default, _, _ = cylstm.from_onnx(_model())(arrays["X"])
    assert Y.shape == default.shape and not np.allclose(Y, default)
    with pytest.raises(ValueError, match="no torch.nn.LSTM equivalent"):
        node.lstm.to_torch()


def test_no_lstm_node_and_bad_files(tmp_path):
    model = _model()
    _lstm_node(model).op_type = "GRU"
    with pytest.raises(ValueError, match="no LSTM node"):
        cylstm.from_onnx(model)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        cylstm.from_onnx(junk)
    with pytest.raises(FileNotFoundError):
        cylstm.from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError):
        cylstm.from_onnx(42)


def test_run_argument_errors():
    arrays, _ = load_golden(GOLDEN / "onnx_lstm" / "forward_seqlens.npz")
    node = cylstm.from_onnx(GOLDEN / "onnx_lstm" / "forward_seqlens.onnx")
    X = arrays["X"]
    with pytest.raises(ValueError, match=r"1\.\.5"):
        node(X, sequence_lens=np.array([0, 2, 4], np.int32))
    with pytest.raises(ValueError, match=r"1\.\.5"):
        node(X, sequence_lens=np.array([6, 2, 4], np.int32))
    with pytest.raises(ValueError, match="shape"):
        node(X, sequence_lens=np.array([5, 2], np.int32))
    with pytest.raises(TypeError, match="integers"):
        node(X, sequence_lens=np.array([5.0, 2.0, 4.0]))
    with pytest.raises(ValueError, match="initial_h"):
        node(X, initial_h=np.zeros((3, 1, 5), np.float32))
    with pytest.raises(ValueError, match="features"):
        node(X[..., :3])
    with pytest.raises(ValueError, match="3-D"):
        node(X[0])


def test_missing_onnx_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"cylstm\[onnx\]"):
        cylstm.from_onnx(GOLDEN / "onnx_lstm" / "forward.onnx")
