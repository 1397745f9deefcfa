"""The quantized kernels (quantized.h) against their NumPy twin, on every path.

int8: the int32 sums, row scales and zero points bit for bit, on every
instruction set this CPU has (forced down to the portable C); bfloat16 within
float32 summation rounding; the LSTM loop (masks, projection) to float32
rounding of the gate math.
"""
import numpy as np
import pytest

from cylstm._kernels import lstm_quantized as lq
from cylstm._kernels import reference_quantized as ref

SHAPES = [(1, 1, 1), (1, 5, 3), (3, 33, 130), (4, 64, 64), (9, 100, 65), (1, 256, 1024),
          (6, 7, 200)]


def _matrix(dtype, w):
    if dtype == "int8":
        q, s = ref.quantize_weights_int8(w)
        return (q, s), lq.QuantizedMatrix(dtype, q, s)
    b = ref.to_bfloat16_bits(w)
    return b, lq.QuantizedMatrix(dtype, b)


@pytest.mark.parametrize("force", [0, 1, 2])
@pytest.mark.parametrize("n,K,N", SHAPES)
def test_int8_sums_are_bit_exact(n, K, N, force):
    rng = np.random.default_rng(n * 1000 + K + N)
    w = rng.standard_normal((K, N)).astype(np.float32)
    a = (rng.standard_normal((n, K)) * 3 + 0.5).astype(np.float32)
    (q, s), m = _matrix("int8", w)
    acc, sa, zp = m.int8_accumulate(a, force=force)
    racc, rsa, rzp = ref.int8_accumulate(a, q)
    np.testing.assert_array_equal(acc, racc)
    np.testing.assert_array_equal(sa, rsa)
    np.testing.assert_array_equal(zp, rzp)
    # The dequantised product follows from the same float32 operations.
    np.testing.assert_array_equal(m.apply(a, force=force), ref.int8_linear(a, q, s))


def test_int8_extreme_values_do_not_saturate():
    # Codes at +-127 against activations at 0 and 255: a vpmaddubsw pair
    # would saturate int16 here; every path must still give the exact sums.
    K, N = 64, 80
    w = np.where(np.arange(K * N).reshape(K, N) % 2, 1.0, -1.0).astype(np.float32)
    a = np.stack([np.linspace(-1, 1, K), np.ones(K), -np.ones(K)]).astype(np.float32)
    q, s = ref.quantize_weights_int8(w)
    assert np.abs(q).max() == 127
    m = lq.QuantizedMatrix("int8", q, s)
    racc = ref.int8_accumulate(a, q)[0]
    for force in (0, 1, 2):
        np.testing.assert_array_equal(m.int8_accumulate(a, force=force)[0], racc)


def test_quantization_of_rows_and_weights():
    a = np.array([[0, 0, 0], [-1, 0.5, 2], [1, 2, 3]], np.float32)
    q, s, zp = ref.quantize_rows(a)
    assert s[0] == 1 and zp[0] == 0 and (q[0] == 0).all()   # an all-zero row
    np.testing.assert_allclose((q[1].astype(np.float32) - zp[1]) * s[1], a[1], atol=s[1] / 2)
    assert zp[2] == 0 and q[2, 2] == 255                      # min clamps to 0
    w = np.array([[1, 0], [-2, 0]], np.float32)
    qw, sw = ref.quantize_weights_int8(w)
    np.testing.assert_array_equal(qw[:, 0], [64, -127])
    assert sw[1] == 1 and (qw[:, 1] == 0).all()
    bits = ref.to_bfloat16_bits(np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, np.nan], np.float32))
    back = ref.from_bfloat16_bits(bits)
    np.testing.assert_array_equal(back[:3], [1.0, 1.0, 1 + 2**-6])   # ties to even
    assert np.isnan(back[3])


@pytest.mark.parametrize("force", [0, 1, 2])
@pytest.mark.parametrize("n,K,N", SHAPES)
def test_bfloat16_product_within_float32_summation(n, K, N, force):
    rng = np.random.default_rng(n + K * N)
    w = rng.standard_normal((K, N)).astype(np.float32)
    a = rng.standard_normal((n, K)).astype(np.float32)
    bits, m = _matrix("bfloat16", w)
    got = m.apply(a, force=force)
    want = ref.bf16_linear(a, bits)
    # float32 sums of K exact products: error <= K * eps * sum|products|.
    a16 = ref.from_bfloat16_bits(ref.to_bfloat16_bits(a)).astype(np.float64)
    bound = K * 2**-23 * (np.abs(a16) @ np.abs(ref.from_bfloat16_bits(bits)).astype(np.float64))
    assert np.all(np.abs(got - want) <= bound + 1e-30)
    # ... and bfloat16 is still a product: about 3 significant digits.
    np.testing.assert_allclose(got, a @ w, atol=0.02 * np.sqrt(K), rtol=0.02)


def test_apply_adds_into_out_and_checks_arguments():
    w = np.ones((3, 5), np.float32)
    (q, s), m = _matrix("int8", w)
    out = np.full((2, 5), 10, np.float32)
    m.apply(np.ones((2, 3), np.float32), out)
    np.testing.assert_allclose(out, 13, rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        m.apply(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="out"):
        m.apply(np.ones((2, 3), np.float32), np.zeros((2, 5), np.float64))
    with pytest.raises(TypeError, match="int8"):
        lq.QuantizedMatrix("int8", w, s)
    with pytest.raises(ValueError, match="dtype"):
        lq.QuantizedMatrix("int4", q, s)


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("force", [0, 1, 2])
@pytest.mark.parametrize("proj,masked", [(False, False), (False, True), (True, True)])
def test_lstm_loop_matches_reference(dtype, force, proj, masked):
    rng = np.random.default_rng(7)
    T, B, F, H = 6, 5, 7, 12
    P = 5 if proj else H
    W = (rng.standard_normal((F, 4 * H)) * 0.4).astype(np.float32)
    U = (rng.standard_normal((P, 4 * H)) * 0.4).astype(np.float32)
    b = rng.standard_normal(4 * H).astype(np.float32)
    x = rng.standard_normal((T, B, F)).astype(np.float32)
    h0 = rng.standard_normal((B, P)).astype(np.float32)
    c0 = rng.standard_normal((B, H)).astype(np.float32)
    mask = (rng.random((T, B)) > 0.4) if masked else None
    (Wr, Wm), (Ur, Um) = _matrix(dtype, W), _matrix(dtype, U)
    Rr, Rm = _matrix(dtype, rng.standard_normal((H, P)).astype(np.float32)) if proj \
        else (None, None)
    want = ref.lstm_forward(dtype, Wr, Ur, Rr, b, x, h0, c0, mask)
    got = lq.lstm_forward(Wm, Um, Rm, b, x, h0, c0, mask, True, force)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, atol=2e-5, rtol=1e-5)
    if masked:   # a row masked throughout keeps its states exactly
        mask2 = mask.copy()
        mask2[:, 0] = False
        _, h, c, last = lq.lstm_forward(Wm, Um, Rm, b, x, h0, c0, mask2, False, force)
        np.testing.assert_array_equal(h[0], h0[0])
        np.testing.assert_array_equal(c[0], c0[0])
        np.testing.assert_array_equal(last[0], 0)


def test_lstm_loop_checks_shapes():
    (_, Wm), (_, Um) = _matrix("int8", np.ones((3, 8), np.float32)), \
        _matrix("int8", np.ones((2, 8), np.float32))
    x = np.ones((2, 1, 3), np.float32)
    with pytest.raises(ValueError, match="h0"):
        lq.lstm_forward(Wm, Um, None, np.zeros(8), x, np.zeros((1, 3)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="mask"):
        lq.lstm_forward(Wm, Um, None, np.zeros(8), x, np.zeros((1, 2)), np.zeros((1, 2)),
                        np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="features"):
        lq.lstm_forward(Wm, Um, None, np.zeros(8), np.ones((2, 1, 4), np.float32),
                        np.zeros((1, 2)), np.zeros((1, 2)))


def test_paths_available_are_reported():
    for dtype in ("int8", "bfloat16"):
        best = lq.isa_level(dtype)
        assert best in (0, 1, 2)
        assert lq.isa_level(dtype, 0) == 0
        assert lq.isa_level(dtype, 1) == min(1, best)


# The column split (cyl_q_lstm_split): every product's panels and every
# cell's units over the calling thread and the C workers, B = 1 included,
# units that do not fill a 64-column panel or a 16-unit vector, x quantized
# by each thread (small x) or in a pool step of its own.
@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("force", [0, 1, 2])
@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("T,B,F,H", [(1, 1, 40, 70), (5, 1, 7, 100), (4, 3, 20, 48),
                                     (3, 8, 9, 33),
                                     (40, 2, 130, 20)])   # x over 8192 values: own pool step
def test_column_split_matches_reference_and_one_thread(dtype, force, threads, T, B, F, H):
    rng = np.random.default_rng(T * 100 + B * 10 + H)
    W = (rng.standard_normal((F, 4 * H)) * 0.4).astype(np.float32)
    U = (rng.standard_normal((H, 4 * H)) * 0.4).astype(np.float32)
    b = rng.standard_normal(4 * H).astype(np.float32)
    x = rng.standard_normal((T, B, F)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    c0 = rng.standard_normal((B, H)).astype(np.float32)
    mask = rng.random((T, B)) > 0.3
    (Wr, Wm), (Ur, Um) = _matrix(dtype, W), _matrix(dtype, U)
    k = lq.QuantizedLSTMKernel(Wm, Um, None, b)
    parts = k.split_parts(threads)
    assert 2 <= parts <= threads
    for m in (None, mask):
        want = ref.lstm_forward(dtype, Wr, Ur, None, b, x, h0, c0, m)
        one = k.run(x, h0, c0, m, True, force, 1)
        assert k.last_threads == 1
        got = k.run(x, h0, c0, m, True, force, threads)
        assert k.last_threads == parts   # nothing else uses the pool here
        for g, o, r in zip(got, one, want):
            np.testing.assert_allclose(g, r, atol=2e-5, rtol=1e-5)
            # the same sums; the gate math to float32 rounding (quantized.h)
            np.testing.assert_allclose(g, o, atol=1e-6, rtol=1e-6)
    h1, c1 = k.step(np.ascontiguousarray(x[0]), h0, c0, threads)
    assert k.last_threads == parts
    h2, c2 = k.step(np.ascontiguousarray(x[0]), h0, c0, 1)
    np.testing.assert_allclose(h1, h2, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(c1, c2, atol=1e-6, rtol=1e-6)
    assert lq.pool_size() >= parts - 1


def test_column_split_runs_on_the_process_pool_of_lstm_step():
    # One pool per process (workers.h): the quantized split starts no threads
    # of its own, it uses (and may start) lstm_step's.
    from cylstm._kernels import lstm_step
    rng = np.random.default_rng(11)
    F, H = 16, 64
    (_, Wm), (_, Um) = (_matrix("int8", rng.standard_normal((F, 4 * H)).astype(np.float32)),
                        _matrix("int8", rng.standard_normal((H, 4 * H)).astype(np.float32)))
    k = lq.QuantizedLSTMKernel(Wm, Um, None, np.zeros(4 * H))
    x = rng.standard_normal((1, 1, F)).astype(np.float32)
    k.run(x, np.zeros((1, H), np.float32), np.zeros((1, H), np.float32), None, False, -1, 2)
    assert k.last_threads == 2
    assert lq.pool_size() == lstm_step.pool_size() >= 1


def test_column_split_is_exact_where_units_fill_whole_vectors():
    # H a multiple of 16: the gate math runs on whole vectors on both paths.
    rng = np.random.default_rng(3)
    F, H, T = 24, 64, 6
    for dtype in ("int8", "bfloat16"):
        (_, Wm), (_, Um) = (_matrix(dtype, rng.standard_normal((F, 4 * H)).astype(np.float32)),
                            _matrix(dtype, rng.standard_normal((H, 4 * H)).astype(np.float32)))
        k = lq.QuantizedLSTMKernel(Wm, Um, None, rng.standard_normal(4 * H))
        x = rng.standard_normal((T, 1, F)).astype(np.float32)
        z = np.zeros((1, H), np.float32)
        for a, b in zip(k.run(x, z, z, None, True, -1, 1), k.run(x, z, z, None, True, -1, 2)):
            np.testing.assert_array_equal(a, b)


def test_column_split_not_with_projection():
    rng = np.random.default_rng(4)
    H, P = 32, 8
    (_, Wm), (_, Um), (_, Rm) = (_matrix("int8", rng.standard_normal(s).astype(np.float32))
                                 for s in ((5, 4 * H), (P, 4 * H), (H, P)))
    k = lq.QuantizedLSTMKernel(Wm, Um, Rm, np.zeros(4 * H))
    assert k.split_parts(4) == 1
    x = rng.standard_normal((3, 1, 5)).astype(np.float32)
    k.run(x, np.zeros((1, P)), np.zeros((1, H)), None, True, -1, 4)
    assert k.last_threads == 1
