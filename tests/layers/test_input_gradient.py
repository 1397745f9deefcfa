"""``forward_train(..., input_gradient=False)``: the backward pass skips dx
(a model's first layer, whose inputs are data) and the weight gradients are
those of a full backward pass."""
import numpy as np
import pytest

import cylstm
from cylstm.backends import cpu as cpu_backend
from cylstm.layers import LSTM, Bidirectional, Dense, Embedding


def _grads(layer):
    return {k: np.array(v) for k, v in layer.grads.items()}


def _backprop(layer, x, dy, **kw):
    layer.zero_grad()
    y, backprop = layer.forward_train(x, **kw)
    return y, backprop(dy), _grads(layer)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_lstm_skips_dx_with_the_same_weight_gradients(dtype, return_sequences, with_state,
                                                      with_mask):
    rng = np.random.default_rng(0)
    B, T, I, H = 3, 6, 5, 4
    layer = LSTM(H, return_sequences=return_sequences, dtype=dtype, dropout=0.0)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    layer(x)
    state = [rng.standard_normal((B, H)).astype(dtype) for _ in range(2)] if with_state else None
    mask = rng.random((B, T)) > 0.3 if with_mask else None
    dy = rng.standard_normal((B, T, H) if return_sequences else (B, H)).astype(dtype)
    y1, r1, g1 = _backprop(layer, x, dy, initial_state=state, mask=mask)
    y2, r2, g2 = _backprop(layer, x, dy, initial_state=state, mask=mask, input_gradient=False)
    np.testing.assert_array_equal(y1, y2)
    if with_state:
        (dx1, ds1), (dx2, ds2) = r1, r2
        for a, b in zip(ds1, ds2):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    else:
        dx1, dx2 = r1, r2
    assert dx1.shape == x.shape and dx2 is None
    assert g1.keys() == g2.keys()
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_bidirectional_skips_dx_with_the_same_weight_gradients():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7, 3)).astype("float32")
    layer = Bidirectional(LSTM(5, return_sequences=True))
    layer(x)
    dy = rng.standard_normal((4, 7, 10)).astype("float32")
    _, dx1, g1 = _backprop(layer, x, dy)
    _, dx2, g2 = _backprop(layer, x, dy, input_gradient=False)
    assert dx1.shape == x.shape and dx2 is None
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.fixture
def need_dx_calls(monkeypatch):
    calls = []
    original = cpu_backend.CpuBackend.lstm_backward

    def spy(self, cache, grads):
        calls.append(grads.need_dx)
        return original(self, cache, grads)
    monkeypatch.setattr(cpu_backend.CpuBackend, "lstm_backward", spy)
    return calls


def test_fit_skips_dx_of_the_first_layer_only(need_dx_calls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5, 3)).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    model = cylstm.Sequential([LSTM(4, return_sequences=True), LSTM(4), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert need_dx_calls == [True, False]     # backward runs last layer first


def test_fit_keeps_dx_where_a_layer_below_needs_it(need_dx_calls):
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 10, size=(8, 5))
    y = rng.standard_normal((8, 1)).astype("float32")
    model = cylstm.Sequential([Embedding(10, 3), LSTM(4), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(tokens, y, epochs=1, batch_size=8, verbose=0)
    assert need_dx_calls == [True]


def test_fit_with_and_without_the_skip_trains_the_same(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 6, 3)).astype("float32")
    y = rng.standard_normal((16, 1)).astype("float32")

    def trained():
        model = cylstm.Sequential([LSTM(4), Dense(1)])
        model.build((None, 6, 3))
        model.set_weights([w * 0 + np.linspace(-0.3, 0.3, w.size).reshape(w.shape)
                           for w in model.get_weights()])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        return model.get_weights()

    skipped = trained()
    monkeypatch.setattr(LSTM, "_input_gradient_optional", False)
    full = trained()
    for a, b in zip(skipped, full):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
