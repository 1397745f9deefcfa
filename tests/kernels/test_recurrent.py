"""The float32 step kernel (recurrent.h) and the streaming StepKernel against NumPy."""
import numpy as np
import pytest

from cylstm import _ops
from cylstm import activations as A
from cylstm._kernels import reference
from cylstm._kernels.lstm_forward import pack_recurrent, recurrent_product_f32
from cylstm._kernels.lstm_step import StepKernel

SHAPES = [(2, 1, 1), (3, 5, 7), (4, 10, 40), (5, 16, 64), (12, 128, 512), (17, 33, 130),
          (64, 256, 1024), (9, 64, 1000), (130, 20, 80)]


# The fallback (scipy's gemm) too: conftest.py's isa fixture runs each level.
ISA_LEVELS = {2: "avx512", 1: "avx2", 0: "blas"}


@pytest.mark.parametrize("n,K,N", SHAPES)
def test_recurrent_product_matches_float64(isa, n, K, N):
    rng = np.random.default_rng(n * 1000 + K)
    a = rng.standard_normal((n, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    c = rng.standard_normal((n, N)).astype(np.float32)
    got = c.copy()
    recurrent_product_f32(a, b, got, packed=True)
    exact = c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + np.abs(c)
    assert np.all(np.abs(got - exact) <= 4 * K * np.finfo(np.float32).eps * scale + 1e-30)
    if isa == 0:
        assert pack_recurrent(b) is None


def test_lstm_forward_with_step_kernel_matches_reference(isa, rng, monkeypatch):
    monkeypatch.setattr(_ops.cpu(), "RECURRENT_KERNEL_ROWS", (2, 10**6))
    monkeypatch.setattr(_ops.cpu(), "RECURRENT_KERNEL_MIN_SIZE", 0)
    B, T, I, H = 13, 6, 7, 9
    r = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)
    x, W, U, bias, h0, c0 = r(B, T, I), r(I, 4 * H), r(H, 4 * H), r(4 * H), r(B, H), r(B, H)
    mask = rng.random((B, T)) > 0.3
    seq, last, h, c, cache = _ops.lstm_forward(x, W, U, bias, h0, c0, mask=mask, training=True)
    rseq, rlast, rh, rc, rcache = reference.lstm_forward(
        x.transpose(1, 0, 2).astype(np.float64), W, U, bias, h0, c0, mask=mask, training=True)
    np.testing.assert_allclose(seq, rseq.transpose(1, 0, 2), rtol=1e-5, atol=1e-6)
    dseq = r(B, T, H)
    g = _ops.lstm_backward(cache, dseq, None, None, None)
    rg = reference.lstm_backward(rcache, dseq.transpose(1, 0, 2).astype(np.float64))
    np.testing.assert_allclose(g["recurrent_kernel"], rg["dU"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g["dx"], rg["dx"].transpose(1, 0, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("act,rec", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
def test_step_kernel_matches_reference(rng, dtype, B, act, rec):
    I, H = 5, 6
    r = lambda *s: rng.uniform(-0.5, 0.5, s).astype(dtype)
    x, W, U, bias, h0, c0 = r(B, I), r(I, 4 * H), r(H, 4 * H), r(4 * H), r(B, H), r(B, H)
    fused = _ops._fused_gates(np.dtype(dtype), A.KERNEL_CODES[act], A.KERNEL_CODES[rec])
    k = StepKernel(W, U, bias, None, A.KERNEL_CODES[act], A.KERNEL_CODES[rec], B, fused)
    h, c = k.step(x, h0, c0)
    _, _, rh, rc, _ = reference.lstm_forward(x[None].astype(np.float64), W, U, bias, h0, c0,
                                             activation=act, recurrent_activation=rec)
    tol = dict(rtol=2e-6, atol=2e-7) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, rh, **tol)
    np.testing.assert_allclose(c, rc, **tol)
    assert h.dtype == np.dtype(dtype)
    # Anything but C-contiguous arrays of the exact shape and dtype: None (caller converts).
    assert k.step(x.astype(np.float16), h0, c0) is None
    assert k.step(np.asfortranarray(np.tile(x, (1, 2)))[:, :I], h0, c0) is None or B == 1
    assert k.step(x[:, :-1], h0, c0) is None
    assert k.step(x, h0, None) is None
    # Weights are used in place: a change shows in the next step.
    W += 1
    h2, _ = k.step(x, h0, c0)
    assert not np.allclose(h2, h)
