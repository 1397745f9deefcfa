"""cylstm.layers.Bidirectional against Keras 3 fixtures (tests/golden/keras_layers/
bidi_*.npz and seq_*.npz), finite differences in float64, semantics and errors."""
import json

import numpy as np
import pytest

import cylstm
from cylstm.layers import LSTM, Bidirectional, Dense, Masking
from tests.conftest import TOL, golden_cases, load_golden
from .._helpers import numerical_gradient

BIDI = golden_cases("keras_layers", "bidi_*.npz")
PIPELINE = golden_cases("keras_layers", "seq_*.npz")
STATE_NAMES = ("fw_h0", "fw_c0", "bw_h0", "bw_c0")


def _as_list(result):
    return list(result) if isinstance(result, list) else [result]


def _weights(arrays, prefix):
    names = ("kernel", "recurrent_kernel", "bias")
    return [arrays[f"{prefix}_{n}"] for n in names if f"{prefix}_{n}" in arrays]


def _bidi(arrays, cfg):
    """The cylstm layer for a golden case; no dtype= given: it comes from the LSTM."""
    backward = None if cfg["backward_layer"] is None else LSTM(**cfg["backward_layer"])
    layer = Bidirectional(LSTM(**cfg["layer"]), merge_mode=cfg["merge_mode"],
                          backward_layer=backward)
    layer.build(arrays["x"].shape)
    layer.set_weights(_weights(arrays, "fw") + _weights(arrays, "bw"))
    return layer


def _call_kwargs(arrays):
    kwargs = {}
    if "fw_h0" in arrays:
        kwargs["initial_state"] = [arrays[k] for k in STATE_NAMES]
    if "mask" in arrays:
        kwargs["mask"] = arrays["mask"]
    return kwargs


@pytest.mark.parametrize("path", BIDI, ids=lambda p: p.stem)
def test_forward_matches_keras(path):
    arrays, cfg = load_golden(path)
    layer = _bidi(arrays, cfg)
    outs = _as_list(layer(arrays["x"], **_call_kwargs(arrays)))
    assert len(outs) == cfg["n_outputs"]
    for k, out in enumerate(outs):
        assert out.dtype == np.dtype(cfg["dtype"])
        np.testing.assert_allclose(out, arrays[f"out_{k}"], **TOL[cfg["dtype"]])


@pytest.mark.parametrize("path", BIDI, ids=lambda p: p.stem)
def test_gradients_match_keras(path):
    arrays, cfg = load_golden(path)
    layer = _bidi(arrays, cfg)
    y, backprop = layer.forward_train(arrays["x"], **_call_kwargs(arrays))
    for k, out in enumerate(_as_list(y)):
        np.testing.assert_allclose(out, arrays[f"out_{k}"], **TOL[cfg["dtype"]])
    dys = [arrays[f"dy_{k}"] for k in range(cfg["n_outputs"])]
    result = backprop(dys if len(dys) > 1 else dys[0])
    tol = TOL[cfg["dtype"]]
    if cfg["has_initial_state"]:
        dx, dstates = result
        assert len(dstates) == 4
        for name, g in zip(STATE_NAMES, dstates):
            np.testing.assert_allclose(g, arrays["grad_" + name], err_msg=name, **tol)
    else:
        dx = result
    assert dx.dtype == np.dtype(cfg["dtype"])
    np.testing.assert_allclose(dx, arrays["grad_x"], **tol)
    for key, g in layer.grads.items():
        direction, name = key.split("/")
        golden = arrays[f"grad_{ {'forward': 'fw', 'backward': 'bw'}[direction]}_{name}"]
        np.testing.assert_allclose(g, golden, err_msg=key, **tol)


@pytest.mark.parametrize("path", BIDI, ids=lambda p: p.stem)
def test_keras_written_config_loads(path):
    arrays, cfg = load_golden(path)
    keras_config = cfg["keras_config"]
    layer = Bidirectional.from_config(keras_config)
    assert layer.name == keras_config["name"] and layer.merge_mode == cfg["merge_mode"]
    assert layer.forward_layer.name == keras_config["layer"]["config"]["name"]
    assert layer.backward_layer.name == keras_config["backward_layer"]["config"]["name"]
    layer.build(arrays["x"].shape)
    layer.set_weights(_weights(arrays, "fw") + _weights(arrays, "bw"))
    outs = _as_list(layer(arrays["x"], **_call_kwargs(arrays)))
    for k, out in enumerate(outs):
        np.testing.assert_allclose(out, arrays[f"out_{k}"], **TOL[cfg["dtype"]])
    # Our config has Keras's keys, down to the serialized inner layers.
    ours = layer.get_config()
    assert set(ours) == set(keras_config)
    for key in ("layer", "backward_layer"):
        assert ours[key]["class_name"] == "LSTM"
        assert set(ours[key]["config"]) == set(keras_config[key]["config"])
        for k in ("name", "units", "go_backwards", "return_sequences", "return_state",
                  "zero_output_for_mask", "activation", "use_bias"):
            assert ours[key]["config"][k] == keras_config[key]["config"][k], (key, k)


@pytest.mark.parametrize("path", PIPELINE, ids=lambda p: p.stem)
def test_masking_bidirectional_dense_pipeline_matches_keras(path):
    """Masks flow Masking -> Bidirectional -> Dense as in a Keras Sequential."""
    arrays, cfg = load_golden(path)
    dtype = cfg["dtype"]
    masking = Masking(0.0, dtype=dtype)
    bidi = Bidirectional(LSTM(3, return_sequences=True, dtype=dtype))
    dense = Dense(2, activation="softmax", dtype=dtype)
    x = arrays["x"]
    bidi.build(x.shape)
    dense.build((None, x.shape[1], 6))
    bidi.set_weights([arrays[f"w_{k}"] for k in range(6)])
    dense.set_weights([arrays["w_6"], arrays["w_7"]])

    h0, bp0 = masking.forward_train(x)
    mask = masking.compute_mask(x)
    h1, bp1 = bidi.forward_train(h0, mask=mask)
    mask = bidi.compute_mask(h0, mask)
    h2, bp2 = dense.forward_train(h1, mask=mask)
    assert dense.compute_mask(h1, mask) is mask
    tol = TOL[dtype]
    np.testing.assert_allclose(h2, arrays["out_0"], **tol)
    dx = bp0(bp1(bp2(arrays["dy_0"])))
    np.testing.assert_allclose(dx, arrays["grad_x"], **tol)
    grads = list(bidi.grads.values()) + [dense.grads["kernel"], dense.grads["bias"]]
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, arrays[f"grad_w_{k}"], err_msg=f"w_{k}", **tol)


# -- finite differences (float64) ------------------------------------------
_fd = numerical_gradient


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences,return_state,with_state",
                         [(True, False, False), (False, True, True), (True, True, True)])
def test_gradients_finite_differences(merge_mode, return_sequences, return_state, with_state):
    rng = np.random.default_rng(7)
    B, T, F = 3, 4, 2
    layer = Bidirectional(LSTM(3, return_sequences=return_sequences, return_state=return_state,
                               dtype="float64"),
                          merge_mode=merge_mode,
                          backward_layer=LSTM(2 if merge_mode in ("concat", None) else 3,
                                              activation="relu", go_backwards=True,
                                              return_sequences=return_sequences,
                                              return_state=return_state, dtype="float64"))
    x = rng.uniform(-1, 1, (B, T, F))
    mask = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]], bool)
    layer.build(x.shape)
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape) for w in layer.get_weights()])
    states = ([rng.uniform(-1, 1, (B, u)) for u in (3, 3, 2 if merge_mode in ("concat", None)
                                                     else 3, 2 if merge_mode in ("concat", None)
                                                     else 3)]
              if with_state else None)
    y, backprop = layer.forward_train(x, initial_state=states, mask=mask)
    dys = [rng.uniform(-1, 1, o.shape) for o in _as_list(y)]

    def loss():
        outs = _as_list(layer(x, initial_state=states, mask=mask))
        return sum(float(np.sum(o * d)) for o, d in zip(outs, dys))

    result = backprop(dys if len(dys) > 1 else dys[0])
    dx, dstates = result if with_state else (result, [])
    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, _fd(loss, x), **tol)
    for s, g in zip(states or [], dstates):
        np.testing.assert_allclose(g, _fd(loss, s), **tol)
    for key, w in layer._params.items():
        np.testing.assert_allclose(layer.grads[key], _fd(loss, w), err_msg=key, **tol)


# -- semantics ---------------------------------------------------------------
def test_names_copies_and_weight_order(rng):
    inner = LSTM(4, return_sequences=True, name="enc")
    layer = Bidirectional(inner)
    assert layer.forward_layer.name == "forward_enc"
    assert layer.backward_layer.name == "backward_enc"
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert layer.forward_layer is not inner and not inner.built
    layer.build((None, 5, 3))
    assert [w.shape for w in layer.get_weights()] == [(3, 16), (4, 16), (16,)] * 2
    assert list(layer.grads) == ["forward/kernel", "forward/recurrent_kernel", "forward/bias",
                                 "backward/kernel", "backward/recurrent_kernel",
                                 "backward/bias"]
    assert layer.count_params() == 2 * (3 * 16 + 4 * 16 + 16)
    assert layer.weights[0] is layer.forward_layer.kernel
    assert layer.weights[3] is layer.backward_layer.kernel
    assert cylstm.Bidirectional is Bidirectional


def test_output_is_zero_at_masked_steps_in_both_directions(rng):
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], bool)
    for mode in ("concat", "sum", "ave", "mul", None):
        layer = Bidirectional(LSTM(4, return_sequences=True), merge_mode=mode)
        for out in _as_list(layer(x, mask=mask)):
            assert not out[~mask].any() and out[mask].all()
    # The wrapped layers run without zeroing; the wrapper zeroes in time order.
    fw = layer.forward_layer(x, mask=mask)
    assert fw[1, 4].any()


def test_return_state_order_and_initial_state_split(rng):
    layer = Bidirectional(LSTM(3, return_state=True), merge_mode="concat")
    x = rng.standard_normal((2, 5, 4)).astype("float32")
    out, fh, fc, bh, bc = layer(x)
    np.testing.assert_allclose(out, np.concatenate([fh, bh], axis=-1))
    states = [rng.standard_normal((2, 3)).astype("float32") for _ in range(4)]
    out2 = layer(x, initial_state=states)
    fw_only = layer.forward_layer(x, initial_state=states[:2])
    bw_only = layer.backward_layer(x, initial_state=states[2:])
    np.testing.assert_allclose(out2[1], fw_only[1], rtol=1e-6)
    np.testing.assert_allclose(out2[3], bw_only[1], rtol=1e-6)
    with pytest.raises(ValueError, match="4 arrays"):
        layer(x, initial_state=states[:2])


def test_dtype_comes_from_the_wrapped_layer_or_dtype_argument(rng):
    x = rng.standard_normal((2, 3, 4))
    layer = Bidirectional(LSTM(2, dtype="float64"))
    assert layer.dtype == "float64" and layer(x).dtype == np.float64
    layer = Bidirectional(LSTM(2), dtype="float64")
    assert layer.dtype == "float64" and layer.forward_layer.dtype == "float32"
    assert layer(x).dtype == np.float64
    assert Bidirectional(LSTM(2))(x).dtype == np.float32
    _, backprop = layer.forward_train(x)
    assert backprop(np.ones((2, 4))).dtype == np.float64


def test_weights_argument_is_applied_at_build():
    ref = Bidirectional(LSTM(2))
    ref.build((None, 3, 4))
    weights = [np.full(w.shape, 0.1 * (k + 1), "float32") for k, w in enumerate(ref.weights)]
    layer = Bidirectional(LSTM(2), weights=weights)
    layer(np.ones((1, 3, 4)))
    for got, want in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_compute_output_shape_and_mask():
    shape = (None, 7, 3)
    cases = {
        ("concat", True, False): (None, 7, 10),
        ("sum", False, False): (None, 5),
        (None, True, False): [(None, 7, 5), (None, 7, 5)],
        ("ave", False, True): [(None, 5)] + [(None, 5)] * 4,
        (None, False, True): [(None, 5), (None, 5)] + [(None, 5)] * 4,
    }
    mask = np.ones((2, 7), bool)
    for (mode, seq, state), want in cases.items():
        layer = Bidirectional(LSTM(5, return_sequences=seq, return_state=state), merge_mode=mode)
        assert layer.compute_output_shape(shape) == want
        got_mask = layer.compute_mask(None, mask)
        n_out = 2 if mode is None else 1
        out_masks = _as_list(got_mask)[:n_out] if (state or mode is None) else [got_mask]
        for m in out_masks:
            assert (m is mask) if seq else (m is None)
        if state:
            assert _as_list(got_mask)[n_out:] == [None] * 4
    layer = Bidirectional(LSTM(5, return_sequences=True), backward_layer=LSTM(
        2, go_backwards=True, return_sequences=True))
    assert layer.compute_output_shape(shape) == (None, 7, 7)
    layer(np.ones((2, 7, 3)))
    assert layer.output.shape == (None, 7, 7)


def test_backward_layer_given_is_used_as_is():
    back = LSTM(2, activation="relu", go_backwards=True, name="mine")
    layer = Bidirectional(LSTM(3), backward_layer=back)
    assert layer.backward_layer is back
    assert layer(np.ones((2, 4, 5))).shape == (2, 5)


def test_errors():
    with pytest.raises(ValueError, match="LSTM"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match="merge mode"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(3, go_backwards=True))  # Keras 3 raises too
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3))
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3, go_backwards=True,
                                                   return_sequences=True))
    layer = Bidirectional(LSTM(3))
    with pytest.raises(ValueError, match="3-D"):
        layer(np.ones((2, 4)))
    layer(np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="5 features"):
        layer(np.ones((2, 4, 6)))
    with pytest.raises(ValueError, match="6 weight arrays"):
        layer.set_weights(layer.get_weights()[:3])
    with pytest.raises(ValueError, match="mask"):
        layer(np.ones((2, 4, 5)), mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="class 'GRU'"):
        Bidirectional.from_config({"name": "b", "merge_mode": "concat",
                                   "layer": {"class_name": "GRU", "config": {"units": 3}}})
    _, backprop = layer.forward_train(np.ones((2, 4, 5)))
    with pytest.raises(ValueError, match="shape"):
        backprop(np.ones((2, 5)))


def test_config_round_trip():
    layer = Bidirectional(LSTM(4, return_sequences=True, activation="relu", dropout=0.1,
                               kernel_regularizer="l2"),
                          merge_mode="ave", name="bi")
    config = layer.get_config()
    assert set(config) == {"name", "trainable", "dtype", "merge_mode", "layer",
                           "backward_layer"}
    assert config["layer"]["config"]["zero_output_for_mask"] is True
    again = Bidirectional.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    assert again.backward_layer.go_backwards and not again.forward_layer.go_backwards
    assert again.forward_layer.name == layer.forward_layer.name
    assert again.forward_layer.dropout == 0.1 and again.merge_mode == "ave"


def test_training_contract_delegates(rng):
    layer = Bidirectional(LSTM(3, kernel_regularizer="l2", kernel_constraint="non_neg"))
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    _, backprop = layer.forward_train(x)
    backprop(np.ones((2, 6), "float32"))
    assert all(g.any() for g in layer.grads.values())
    names = [n for n, _, _ in layer.named_parameters()]
    assert names == list(layer.grads)
    assert len(layer.losses) == 2
    layer.add_regularization_gradients()
    layer.apply_constraints()
    assert (layer.forward_layer.kernel >= 0).all() and (layer.backward_layer.kernel >= 0).all()
    layer.zero_grad()
    assert not any(g.any() for g in layer.grads.values())
    layer.trainable = False
    assert layer.named_parameters() == [] and layer.trainable_weights == []
    _, backprop = layer.forward_train(x)
    backprop(np.ones((2, 6), "float32"))
    assert not any(g.any() for g in layer.grads.values())


def test_dropout_only_in_training(rng):
    layer = Bidirectional(LSTM(3, dropout=0.5, recurrent_dropout=0.3, seed=1))
    x = rng.standard_normal((4, 5, 3)).astype("float32")
    np.testing.assert_array_equal(layer(x), layer(x))
    assert not np.allclose(layer(x, training=True), layer(x))


def test_declared_input_shape_from_wrapper_or_layer():
    assert Bidirectional(LSTM(3), input_shape=(10, 2))._declared_input_shape == (None, 10, 2)
    assert Bidirectional(LSTM(3, input_shape=(8, 4)))._declared_input_shape == (None, 8, 4)
