"""cylstm.layers.LSTM against outputs and gradients written by Keras 3.

The fixtures and the script that made them are in tests/golden/ (keras_lstm/).
"""
import numpy as np
import pytest

import cylstm
from tests.conftest import TOL, golden_cases, load_golden

CASES = [p for p in golden_cases("keras_lstm") if not p.name.startswith(("stateful", "cell"))]
STATEFUL = golden_cases("keras_lstm", "stateful_*.npz")
CELLS = golden_cases("keras_lstm", "cell_*.npz")


def _tol(cfg):
    tol = dict(TOL[cfg["dtype"]])
    if "gelu" in cfg["case"] and cfg["dtype"] == "float64":
        tol = dict(rtol=1e-6, atol=1e-7)  # TF builds gelu's 1/sqrt(2) in float32
    return tol


def _layer(arrays, cfg):
    layer = cylstm.layers.LSTM(**cfg["layer"])
    layer.build(arrays["x"].shape)
    weights = [arrays["kernel"], arrays["recurrent_kernel"]]
    if "bias" in arrays:
        weights.append(arrays["bias"])
    layer.set_weights(weights)
    return layer


def _call_kwargs(arrays):
    kwargs = {}
    if "h0" in arrays:
        kwargs["initial_state"] = [arrays["h0"], arrays["c0"]]
    if "mask" in arrays:
        kwargs["mask"] = arrays["mask"]
    return kwargs


def _outputs(result):
    return list(result) if isinstance(result, list) else [result]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_forward_matches_keras(path):
    arrays, cfg = load_golden(path)
    layer = _layer(arrays, cfg)
    outs = _outputs(layer(arrays["x"], **_call_kwargs(arrays)))
    assert len(outs) == cfg["n_outputs"]
    for k, out in enumerate(outs):
        assert out.dtype == np.dtype(cfg["dtype"])
        np.testing.assert_allclose(out, arrays[f"out_{k}"], **_tol(cfg))


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_gradients_match_keras(path):
    arrays, cfg = load_golden(path)
    layer = _layer(arrays, cfg)
    kwargs = _call_kwargs(arrays)
    y, backprop = layer.forward_train(arrays["x"], **kwargs)
    dys = [arrays[f"dy_{k}"] for k in range(cfg["n_outputs"])]
    result = backprop(dys if layer.return_state else dys[0])
    if "h0" in arrays:
        dx, (dh0, dc0) = result
        np.testing.assert_allclose(dh0, arrays["grad_h0"], **_tol(cfg))
        np.testing.assert_allclose(dc0, arrays["grad_c0"], **_tol(cfg))
    else:
        dx = result
    np.testing.assert_allclose(dx, arrays["grad_x"], **_tol(cfg))
    for name in ("kernel", "recurrent_kernel", "bias"):
        if f"grad_{name}" in arrays:
            np.testing.assert_allclose(layer.grads[name], arrays[f"grad_{name}"], **_tol(cfg))


@pytest.mark.parametrize("path", STATEFUL, ids=lambda p: p.stem)
def test_stateful_calls_match_keras(path):
    arrays, cfg = load_golden(path)
    layer = cylstm.layers.LSTM(**cfg["layer"])
    layer.build(arrays["x_call0"].shape)
    layer.set_weights([arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"]])
    for k in range(4):
        if k == 3:
            layer.reset_state()
        outs = layer(arrays[f"x_call{k}"])
        for j, out in enumerate(outs):
            np.testing.assert_allclose(out, arrays[f"out_call{k}_{j}"], **TOL[cfg["dtype"]])


@pytest.mark.parametrize("path", CELLS, ids=lambda p: p.stem)
def test_cell_matches_keras(path):
    arrays, cfg = load_golden(path)
    cell = cylstm.layers.LSTMCell(**cfg["layer"])
    cell.build(arrays["x"].shape)
    weights = [arrays["kernel"], arrays["recurrent_kernel"]]
    if "bias" in arrays:
        weights.append(arrays["bias"])
    cell.set_weights(weights)
    h, (h2, c) = cell(arrays["x"], [arrays["h0"], arrays["c0"]])
    np.testing.assert_allclose(h, arrays["out_h"], **TOL[cfg["dtype"]])
    np.testing.assert_allclose(c, arrays["out_c"], **TOL[cfg["dtype"]])
    (h, (h2, c)), backprop = cell.forward_train(arrays["x"], [arrays["h0"], arrays["c0"]])
    dx, (dh0, dc0) = backprop((arrays["dy_h"], [None, arrays["dy_c"]]))
    for got, key in ((dx, "grad_x"), (dh0, "grad_h0"), (dc0, "grad_c0"),
                     (cell.grads["kernel"], "grad_kernel"),
                     (cell.grads["recurrent_kernel"], "grad_recurrent_kernel")):
        np.testing.assert_allclose(got, arrays[key], **TOL[cfg["dtype"]])
    if "bias" in arrays:
        np.testing.assert_allclose(cell.grads["bias"], arrays["grad_bias"], **TOL[cfg["dtype"]])


def test_config_written_by_keras_loads():
    import json
    from tests.conftest import GOLDEN
    config = json.loads((GOLDEN / "keras_lstm" / "keras_written_config.json").read_text())
    layer = cylstm.layers.LSTM.from_config(config)
    assert layer.units == 7 and layer.go_backwards and layer.return_sequences
    assert layer.recurrent_dropout == 0.2 and layer.seed == 3
    assert cylstm.activations.serialize(layer.activation) == "relu"
    again = cylstm.layers.LSTM.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    for key in config:
        assert key in layer.get_config(), key
