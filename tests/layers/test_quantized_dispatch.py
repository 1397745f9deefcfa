"""The engine choice of quantized LSTMs (cylstm/_quantized_dispatch.py): the
float32 fall-back runs the quantized weights (equal to float32 kernels on the
dequantized weights, within activation rounding of the quantized twin), and
rows split over threads give what one thread gives (int8 bit for bit)."""
import numpy as np
import pytest

import cylstm
from cylstm import _quantized_dispatch as dispatch
from cylstm._kernels import reference_quantized as ref

DTYPES = ["int8", "bfloat16"]
# The fall-back leaves the activations unrounded: its distance from the
# quantized twin is the activation rounding (int8: 1/255 of a row's range per
# product), far below the weight rounding the test would see otherwise.
TWIN_TOL = {"int8": 2e-2, "bfloat16": 1e-2}


def _twin(dtype, w):
    return ref.quantize_weights_int8(w) if dtype == "int8" else ref.to_bfloat16_bits(w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fallback_runs_the_quantized_weights(dtype, go_backwards):
    rng = np.random.default_rng(5)
    B, T, F, H = dispatch.FALLBACK_MIN_ROWS + 3, 6, 5, 12
    assert dispatch.float32_is_faster(H, B) and not dispatch.float32_is_faster(H, 1)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    mask = rng.random((B, T)) > 0.3
    mask[:, 0] = True
    layer = cylstm.layers.LSTM(H, return_sequences=True, return_state=True,
                               go_backwards=go_backwards)
    layer(x)
    q = cylstm.quantize(layer, dtype)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    seq, h, c = q(x, initial_state=[h0, h0 * 0.5], mask=mask)
    # Float32 on the dequantized weights, as the layer would run them.
    ref_layer = cylstm.layers.LSTM(H, return_sequences=True, return_state=True,
                                   go_backwards=go_backwards)
    ref_layer(x)
    ref_layer.set_weights([dispatch.dequantize(q.kernel.matrix),
                           dispatch.dequantize(q.recurrent_kernel.matrix), q.bias])
    for got, want in zip((seq, h, c), ref_layer(x, initial_state=[h0, h0 * 0.5], mask=mask)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # ...and within activation rounding of the quantized twin.
    xt, mt = x.transpose(1, 0, 2), mask.T
    if go_backwards:
        xt, mt = xt[::-1], mt[::-1]
    cell = layer.cell
    tseq, th, tc, _ = ref.lstm_forward(dtype, _twin(dtype, cell.kernel),
                                       _twin(dtype, cell.recurrent_kernel), None, cell.bias,
                                       xt, h0, h0 * 0.5, mt)
    assert np.abs(seq - tseq.transpose(1, 0, 2)).max() < TWIN_TOL[dtype]
    assert np.abs(c - tc).max() < TWIN_TOL[dtype]
    # The streaming step takes the same engine.
    states = [h0, h0 * 0.5]
    xs = x[:, ::-1] if go_backwards else x
    for t in range(T):
        out, states = q.step(np.ascontiguousarray(xs[:, t]), states)
    full = ref_layer(x, initial_state=[h0, h0 * 0.5])
    np.testing.assert_allclose(states[1], full[2], atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fallback_with_projection(dtype):
    rng = np.random.default_rng(6)
    B, T = dispatch.FALLBACK_MIN_ROWS, 4
    lstm = cylstm.nn.LSTM(7, 16, proj_size=5, num_layers=2)
    q = cylstm.quantize(lstm, dtype)
    x = rng.standard_normal((T, B, 7)).astype(np.float32)
    out, (h, c) = q(x)
    s = q._slots[0][0]
    tseq, th, tc, _ = ref.lstm_forward(dtype, s["W"].values if dtype == "bfloat16" else
                                       (s["W"].values, s["W"].scale),
                                       s["U"].values if dtype == "bfloat16" else
                                       (s["U"].values, s["U"].scale),
                                       s["R"].values if dtype == "bfloat16" else
                                       (s["R"].values, s["R"].scale), s["b"], x,
                                       np.zeros((B, 5), np.float32),
                                       np.zeros((B, 16), np.float32))
    assert np.abs(c[0] - tc).max() < TWIN_TOL[dtype]
    assert np.abs(h[0] - th).max() < TWIN_TOL[dtype]
    assert out.shape == (T, B, 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_split_over_threads_give_the_same_result(dtype):
    rng = np.random.default_rng(7)
    B, T, F, H = 6, 40, 32, 64
    assert not dispatch.float32_is_faster(H, B)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    mask = rng.random((B, T)) > 0.2
    layer = cylstm.layers.LSTM(H, return_sequences=True, return_state=True)
    layer(x)
    q = cylstm.quantize(layer, dtype)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    with cylstm.threads(1):
        assert len(q._kernel._slices(T, B)) == 1
        one = q(x, initial_state=[h0, h0], mask=mask)
        step1 = q.step(np.ascontiguousarray(x[:, 0]), [h0, h0])
    with cylstm.threads(3):
        assert len(q._kernel._slices(T, B)) == 3
        three = q(x, initial_state=[h0, h0], mask=mask)
        step3 = q.step(np.ascontiguousarray(x[:, 0]), [h0, h0])
    # int8 sums are exact; bfloat16's float32 sums follow the row blocking.
    tol = 0 if dtype == "int8" else 1e-6
    for a, b in zip(one, three):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    for a, b in zip(step1[1], step3[1]):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def test_split_threads_rule():
    # one-step serving at 256 units: 2 x 256K multiply-adds, so two threads
    assert dispatch.split_threads(1, 1, 256, 256, 1024, False, threads=2) == 2
    assert dispatch.split_threads(1, 1, 256, 256, 1024, False, threads=1) == 1
    assert dispatch.split_threads(1, 1, 64, 64, 256, False, threads=2) == 1     # too little
    assert dispatch.split_threads(1, 1, 256, 256, 1024, True, threads=2) == 1   # projection
    assert dispatch.split_threads(1, 16, 512, 512, 2048, False, threads=2) == 1  # rows split
    assert dispatch.split_threads(100, 1, 256, 256, 1024, False, threads=2) == 1
    assert dispatch.split_threads(100, 2, 256, 256, 1024, False, threads=2) == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_split_through_the_layers(dtype, monkeypatch):
    """Every inference option with the columns split over threads (the rule
    lowered so that small shapes reach it) gives what one thread gives."""
    monkeypatch.setattr(dispatch, "SPLIT_MIN_WORK", 1)
    rng = np.random.default_rng(11)
    B, T, F, H = 1, 9, 6, 40
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    mask = rng.random((B, T)) > 0.3
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    c0 = rng.standard_normal((B, H)).astype(np.float32)
    lstm = cylstm.layers.LSTM(H, return_sequences=True, return_state=True, go_backwards=True)
    lstm(x)
    bidi = cylstm.layers.Bidirectional(cylstm.layers.LSTM(H, return_sequences=True))
    bidi(x)
    torch_like = cylstm.nn.LSTM(F, H, num_layers=2, batch_first=True, seed=1)
    proj = cylstm.nn.LSTM(F, H, proj_size=5, batch_first=True, seed=2)
    ql, qb = cylstm.quantize(lstm, dtype), cylstm.quantize(bidi, dtype)
    qt, qp = cylstm.quantize(torch_like, dtype), cylstm.quantize(proj, dtype)
    calls = [lambda: ql(x, initial_state=[h0, c0], mask=mask),
             lambda: ql.step(np.ascontiguousarray(x[:, 0]), [h0, c0]),
             lambda: qb(x, mask=mask),
             lambda: qt(x),
             lambda: qp(x)]
    from cylstm._kernels import lstm_quantized as lq
    for call in calls:
        with cylstm.threads(1):
            one = call()
        with cylstm.threads(2):
            two = call()
        for a, b in zip(_flat(one), _flat(two)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    with cylstm.threads(2):
        qt(x)
        assert qt._kernels[0][0]._kernels[0].last_threads == 2
        qp(x)
        assert qp._kernels[0][0]._kernels[0].last_threads == 1   # no split with a projection
    assert lq.pool_size() >= 1


def _flat(v):
    if isinstance(v, (list, tuple)):
        return [a for item in v for a in _flat(item)]
    return [np.asarray(v)]


def test_one_step_split_follows_the_thread_setting_between_calls():
    # The step's decision is kept per (rows, threads): a new setting is honoured.
    rng = np.random.default_rng(8)
    H, F = 256, 256
    layer = cylstm.layers.LSTM(H)
    layer(rng.standard_normal((1, 1, F)).astype(np.float32))
    q = cylstm.quantize(layer, "int8")
    x = rng.standard_normal((1, F)).astype(np.float32)
    states = [np.zeros((1, H), np.float32)] * 2
    runner = q._kernel
    for threads, want in ((1, 1), (2, 2), (1, 1)):
        with cylstm.threads(threads):
            q.step(x, states)
            assert runner._kernels[0].last_threads == want
