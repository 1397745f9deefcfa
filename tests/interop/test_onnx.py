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
from .._helpers import numerical_gradient

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
    assert isinstance(node, OnnxLSTM) and isinstance(node, cylstm.nn.LSTM)   # SPEC section 6
    assert node.direction == cfg["direction"] and node.layout == cfg["layout"]
    assert node.batch_first == (cfg["layout"] == 1)
    Y, Y_h, Y_c = node.run(arrays["X"], **_feeds(arrays))
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


def _torch_shaped(arrays, layout):
    """The node's Y, Y_h, Y_c in torch.nn.LSTM's shapes (layout 1 = batch_first)."""
    Y, Y_h, Y_c = arrays["Y"], arrays["Y_h"], arrays["Y_c"]
    if layout == 0:  # [seq, D, batch, H] -> [seq, batch, D*H]
        return Y.transpose(0, 2, 1, 3).reshape(Y.shape[0], Y.shape[2], -1), Y_h, Y_c
    # [batch, seq, D, H] -> [batch, seq, D*H]; [batch, D, H] -> [D, batch, H]
    return (Y.reshape(Y.shape[0], Y.shape[1], -1), Y_h.transpose(1, 0, 2),
            Y_c.transpose(1, 0, 2))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_torch_style_call_gives_the_node_outputs(path):
    """from_onnx gives a cylstm.nn.LSTM: its torch call (hx in torch's shapes,
    sequence_lens as a keyword) gives onnxruntime's numbers in torch's shapes."""
    arrays, cfg = load_golden(path)
    lstm = cylstm.from_onnx(path.with_suffix(".onnx"))
    hx = None
    if "initial_h" in arrays:
        h, c = arrays["initial_h"], arrays["initial_c"]
        hx = (h, c) if cfg["layout"] == 0 else (h.transpose(1, 0, 2), c.transpose(1, 0, 2))
    output, (h_n, c_n) = lstm(arrays["X"], hx, sequence_lens=arrays.get("sequence_lens"))
    for got, want, name in zip((output, h_n, c_n), _torch_shaped(arrays, cfg["layout"]),
                               ("output", "h_n", "c_n")):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, **TOL["float32"], err_msg=name)
    if "sequence_lens" not in arrays:
        # unbatched 2-D input: one row of the batch
        x = arrays["X"][:, 1] if cfg["layout"] == 0 else arrays["X"][1]
        hx1 = None if hx is None else (hx[0][:, 1], hx[1][:, 1])
        out1, (h1, _) = lstm(x, hx1)
        want = output[:, 1] if cfg["layout"] == 0 else output[1]
        np.testing.assert_allclose(out1, want, **TOL["float32"])
        np.testing.assert_allclose(h1, h_n[:, 1], **TOL["float32"])


def _with_stored_inputs(name, dtype=np.float32):
    """The golden model with its sequence_lens / initial states as initializers."""
    model = _model(name)
    arrays, _ = load_golden(GOLDEN / "onnx_lstm" / f"{name}.npz")
    stored = {k: arrays[k] for k in ("sequence_lens", "initial_h", "initial_c") if k in arrays}
    keep = [i for i in model.graph.input if i.name not in stored]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    for k, v in stored.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(v, k))
    if dtype != np.float32:
        for t in list(model.graph.initializer):
            if t.name in ("W", "R", "B"):
                t.CopyFrom(onnx.numpy_helper.from_array(
                    onnx.numpy_helper.to_array(t).astype(dtype), t.name))
    return model, arrays


@pytest.mark.parametrize("name", ["bidirectional_seqlens_initial",
                                  "layout1_bidirectional_seqlens_initial",
                                  "reverse_initial"])
def test_stored_sequence_lens_and_states_are_the_defaults(name):
    model, arrays = _with_stored_inputs(name)
    lstm = cylstm.from_onnx(model)
    assert lstm.default_initial_h is not None
    Y, Y_h, Y_c = lstm.run(arrays["X"])
    for got, key in ((Y, "Y"), (Y_h, "Y_h"), (Y_c, "Y_c")):
        np.testing.assert_allclose(got, arrays[key], **TOL["float32"], err_msg=key)
    layout = 1 if name.startswith("layout1") else 0
    output, (h_n, c_n) = lstm(arrays["X"])
    for got, want in zip((output, h_n, c_n), _torch_shaped(arrays, layout)):
        np.testing.assert_allclose(got, want, **TOL["float32"])
    # an explicit hx wins over the stored states
    D, B = lstm.num_directions, arrays["Y_h"].shape[1 if layout == 0 else 0]
    zeros = np.zeros((D, B, lstm.hidden_size), np.float32)
    assert not np.allclose(lstm(arrays["X"], (zeros, zeros))[0], output)
    if "sequence_lens" in arrays:
        with pytest.raises(ValueError, match="sequence_lens"):
            lstm.forward_train(arrays["X"])
    with pytest.raises(ValueError, match="stored `initial_h`"):
        lstm.run(np.concatenate([arrays["X"]] * 2, axis=1 - layout))


def test_forward_train_of_a_reverse_only_node_matches_finite_differences():
    """A reverse-only ONNX node (no torch equivalent) trains like any cylstm.nn.LSTM,
    its stored initial states included."""
    model, arrays = _with_stored_inputs("reverse_initial", np.float64)
    lstm = cylstm.from_onnx(model)
    assert lstm.dtype == np.float64 and lstm._reverse_only
    x = arrays["X"].astype(np.float64)
    rng = np.random.default_rng(0)
    d_out = rng.standard_normal((x.shape[0], x.shape[1], lstm.hidden_size))
    d_h = rng.standard_normal((1, x.shape[1], lstm.hidden_size))
    (output, (h_n, _)), backprop = lstm.forward_train(x)
    np.testing.assert_allclose(output, lstm(x)[0], rtol=1e-12, atol=1e-12)
    dx = backprop((d_out, (d_h, None)))
    assert dx.shape == x.shape

    def objective():
        out, (h, _) = lstm(x)
        return float(np.sum(out * d_out) + np.sum(h * d_h))

    for name in ("weight_hh_l0", "bias_ih_l0"):
        param = getattr(lstm, name)
        indices = list(np.ndindex(param.shape))[::7]
        numeric = numerical_gradient(objective, param, indices=indices)
        for idx in indices:
            np.testing.assert_allclose(lstm.grads[name][idx], numeric[idx], rtol=1e-5,
                                       atol=1e-7, err_msg=f"{name}{idx}")
    indices = list(np.ndindex(x.shape))[::5]
    numeric_x = numerical_gradient(objective, x, indices=indices)
    for idx in indices:
        np.testing.assert_allclose(dx[idx], numeric_x[idx], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.stem)
def test_torch_export_recovers_the_torch_state_dict(path):
    arrays, cfg = load_golden(path)
    node = cylstm.from_onnx(path.with_suffix(".onnx"))
    sd = node.state_dict()
    expected = {k[4:]: v for k, v in arrays.items() if k.startswith("sd__")}
    assert list(sd) == list(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(sd[k], v, rtol=0, atol=0, err_msg=k)
    # The LSTM node itself, on its own inputs.
    Y, Y_h, Y_c = node.run(arrays["X"], initial_h=arrays.get("initial_h"),
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
    full = node.run(arrays["X"], sequence_lens=np.full(B, T, np.int32))
    for got, name in zip(full, ("Y", "Y_h", "Y_c")):
        np.testing.assert_allclose(got, arrays[name], **TOL["float32"])


# -- errors ------------------------------------------------------------------------
def _model(name="forward"):
    return onnx.load(str(GOLDEN / "onnx_lstm" / f"{name}.onnx"))


def _lstm_node(model):
    return next(n for n in model.graph.node if n.op_type == "LSTM")


def test_zero_peepholes_take_the_common_kernel_path():
    """An all-zero P (as some exporters write) is no peephole: the node runs on
    the common kernel path and trains; a non-zero P runs on the ONNX cell.
    (The full operator is tested in test_onnx_operator.py.)"""
    arrays, _ = load_golden(GOLDEN / "onnx_lstm" / "forward.npz")
    for value in (0.0, 0.5):
        model = _model()
        node = _lstm_node(model)
        while len(node.input) < 7:
            node.input.append("")
        node.input.append("P")
        model.graph.initializer.append(onnx.numpy_helper.from_array(
            np.full((1, 15), value, np.float32), "P"))
        lstm = cylstm.from_onnx(model)
        Y, _, _ = lstm.run(arrays["X"])
        if value == 0:
            assert lstm._cells is None
            np.testing.assert_allclose(Y, arrays["Y"], **TOL["float32"])
        else:
            assert lstm._cells is not None and not np.allclose(Y, arrays["Y"])
            with pytest.raises(ValueError, match="inference only"):
                lstm.forward_train(arrays["X"])


def test_supported_activations_run():
    arrays, _ = load_golden(GOLDEN / "onnx_lstm" / "forward.npz")
    model = _model()
    _lstm_node(model).attribute.append(onnx.helper.make_attribute(
        "activations", ["Sigmoid", "Relu", "Relu"]))
    node = cylstm.from_onnx(model)
    Y, _, _ = node.run(arrays["X"])
    default, _, _ = cylstm.from_onnx(_model()).run(arrays["X"])
    assert Y.shape == default.shape and not np.allclose(Y, default)
    with pytest.raises(ValueError, match="no torch.nn.LSTM equivalent"):
        node.to_torch()


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
        node.run(X, sequence_lens=np.array([0, 2, 4], np.int32))
    with pytest.raises(ValueError, match=r"1\.\.5"):
        node.run(X, sequence_lens=np.array([6, 2, 4], np.int32))
    with pytest.raises(ValueError, match="shape"):
        node.run(X, sequence_lens=np.array([5, 2], np.int32))
    with pytest.raises(TypeError, match="integers"):
        node.run(X, sequence_lens=np.array([5.0, 2.0, 4.0]))
    with pytest.raises(ValueError, match="initial_h"):
        node.run(X, initial_h=np.zeros((3, 1, 5), np.float32))
    with pytest.raises(ValueError, match="features"):
        node.run(X[..., :3])
    with pytest.raises(ValueError, match="3-D"):
        node.run(X[0])
    with pytest.raises(ValueError, match=r"1\.\.5"):      # the torch-style call checks them too
        node(X, sequence_lens=np.array([0, 2, 4], np.int32))


def test_missing_onnx_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"cylstm\[onnx\]"):
        cylstm.from_onnx(GOLDEN / "onnx_lstm" / "forward.onnx")
