"""Whole ONNX graphs: real torch.onnx / tf2onnx exports and cylstm.to_onnx exports
run by cylstm.from_onnx(..., whole_graph=True) with onnxruntime's outputs.

Fixtures: tests/golden/onnx_graph/ (made by make_onnx_graph_goldens.py with
torch 2.13, tf2onnx 1.17 / Keras 3, onnxruntime 1.32). Needs `onnx` only.
"""
import numpy as np
import pytest

import cylstm
from cylstm.interop.onnx_graph import SUPPORTED_OPS, OnnxModel
from tests.conftest import GOLDEN, golden_cases, load_golden

onnx = pytest.importorskip("onnx")

CASES = golden_cases("onnx_graph")
# tf2onnx writes a masked Keras LSTM as a Loop over its cell, not an LSTM node.
REFUSED = {"tf2onnx_embedding_mask_lstm_dense": "Loop"}


def _feeds(arrays):
    return {k[4:]: v for k, v in arrays.items() if k.startswith("in__")}


def test_fixture_set():
    names = {p.stem for p in CASES}
    assert len(CASES) == 15
    assert {n.split("_")[0] for n in names} == {"torch", "tf2onnx", "cylstm"}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_graph_matches_onnxruntime(path):
    arrays, cfg = load_golden(path)
    if path.stem in REFUSED:
        op = REFUSED[path.stem]
        with pytest.raises(ValueError, match=f"op type '{op}' is not supported") as info:
            cylstm.from_onnx(path.with_suffix(".onnx"), whole_graph=True)
        assert "ONNX node '" in str(info.value)
        return
    model = cylstm.from_onnx(path.with_suffix(".onnx"), whole_graph=True)
    assert isinstance(model, OnnxModel) and model.lstms
    outs = model.run(_feeds(arrays))
    assert len(outs) == len(cfg["outputs"])
    for got, name in zip(outs, cfg["outputs"]):
        want = arrays[f"ort__{name}"]
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, err_msg=name)
        np.testing.assert_allclose(got, arrays[f"src__{name}"], rtol=2e-5, atol=2e-6)


def test_single_input_call_and_errors():
    path = GOLDEN / "onnx_graph" / "torch_lstm_linear_head.onnx"
    arrays, _ = load_golden(path.with_suffix(".npz"))
    model = cylstm.from_onnx(path, whole_graph=True)
    np.testing.assert_allclose(model(arrays["in__x"]), arrays["ort__y"], rtol=2e-5, atol=2e-6)
    with pytest.raises(ValueError, match="miss graph input"):
        model.run({})
    with pytest.raises(ValueError, match="takes 1 input"):
        model(arrays["in__x"], arrays["in__x"])
    with pytest.raises(ValueError, match=r"LSTM.*failed|must have 4 features"):
        model(arrays["in__x"][..., :3])


def test_unknown_op_is_named_by_index_when_unnamed():
    path = GOLDEN / "onnx_graph" / "torch_lstm_batch_first.onnx"
    model = onnx.load(str(path))
    node = model.graph.node[0]
    node.op_type, node.name = "Celu", ""
    with pytest.raises(ValueError, match=r"#0 \(Celu, unnamed\).*'Celu' is not supported"):
        cylstm.from_onnx(model, whole_graph=True)
    model = onnx.load(str(path))
    model.graph.node[0].domain = "com.example"
    with pytest.raises(ValueError, match="domain 'com.example'"):
        cylstm.from_onnx(model, whole_graph=True)
    model = onnx.load(str(path))
    model.graph.node[-1].input[0] = "nowhere"
    with pytest.raises(ValueError, match="not produced by an earlier node"):
        cylstm.from_onnx(model, whole_graph=True)
    assert "LSTM" in SUPPORTED_OPS and "Loop" not in SUPPORTED_OPS
