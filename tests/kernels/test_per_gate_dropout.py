"""Per-gate dropout masks (Keras 3 with ``recurrent_dropout > 0``) on the
compiled path, against the NumPy twin, and finite differences."""
import numpy as np
import pytest

import cylstm
from cylstm import _ops

from .._helpers import (KERNEL_ATOL as ATOL, KERNEL_RTOL as RTOL, LSTM_GRADS as GRADS,
                       assert_kernel_matches_reference, assert_matches_finite_differences,
                       kernel_and_reference)



def _problem(rng, B, T, I, H, P, dtype, proj=False, with_mask=False, rec="gates",
             inp=True):
    d = np.dtype(dtype)
    r = lambda *s: rng.uniform(-0.6, 0.6, s).astype(d)
    drop = lambda *s: ((rng.random(s) > 0.3) / 0.7).astype(d)
    return dict(
        x=r(B, T, I), kernel=r(I, 4 * H), recurrent_kernel=r(P, 4 * H), bias=r(4 * H),
        h0=r(B, P), c0=r(B, H), projection=r(H, P) if proj else None,
        mask=(rng.random((B, T)) > 0.35) if with_mask else None,
        recurrent_mask={"gates": drop(4, B, P), "shared": drop(B, P), None: None}[rec],
        input_mask=drop(4, B, I) if inp else None,
    )


@pytest.mark.parametrize("rec,inp", [("gates", True), ("gates", False), ("shared", True),
                                     (None, True)])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("proj", [False, True])
def test_per_gate_matches_reference(dtype, rng, rec, inp, go_backwards, with_mask, proj):
    p = _problem(rng, 4, 7, 3, 5, 3 if proj else 5, dtype, proj=proj,
                 with_mask=with_mask, rec=rec, inp=inp)
    assert_kernel_matches_reference(p, dtype, rng, compiled=True, go_backwards=go_backwards,
                                    time_major=go_backwards)


@pytest.mark.parametrize("proj", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_per_gate_step_kernel_sizes(rng, proj, go_backwards):
    """float32 sizes where the packed step kernel makes the block products
    (rows in RECURRENT_KERNEL_ROWS, U of at least RECURRENT_KERNEL_MIN_SIZE),
    with units not a multiple of the panel width."""
    p = _problem(rng, 8, 5, 6, 68, 64 if proj else 68, "float32", proj=proj,
                 with_mask=True)
    assert _ops._use_packed(p["recurrent_kernel"], [(0, 8)])
    assert _ops._use_packed(np.ascontiguousarray(p["recurrent_kernel"].T), [(0, 8)])
    assert_kernel_matches_reference(p, "float32", rng, compiled=True, go_backwards=go_backwards,
                                    scale=5)


@pytest.mark.parametrize("act,rec", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
def test_per_gate_inference_matches_reference(dtype, rng, act, rec):
    for inp in (True, False):
        p = _problem(rng, 3, 6, 4, 5, 5, dtype, with_mask=True, inp=inp)
        (seq, last, h, c, cache), (rseq, rlast, rh, rc, _) = kernel_and_reference(
            p, training=False, act=act, rec=rec)
        assert cache is None
        tol = dict(rtol=RTOL[dtype], atol=ATOL[dtype])
        np.testing.assert_allclose(seq, rseq.transpose(1, 0, 2), **tol)
        for a, b in ((last, rlast), (h, rh), (c, rc)):
            np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_per_gate_batch_split_over_threads_matches_one_slice(rng, monkeypatch, go_backwards):
    p = _problem(rng, 7, 6, 3, 4, 2, "float64", proj=True, with_mask=True)
    results = []
    for min_work, n in ((10**18, 1), (0, 3)):
        monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_WORK", min_work)
        with cylstm.threads(n):
            (seq, last, h, c, cache), _ = kernel_and_reference(p, go_backwards=go_backwards)
            g = _ops.lstm_backward(cache, np.ones_like(seq), None, h, c)
        results.append((seq, last, h, c, g))
    (a, b) = results
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)
    for key, _ in GRADS:
        np.testing.assert_allclose(a[4][key], b[4][key], rtol=1e-12, atol=1e-13)


def _loss(p, weights, go_backwards):
    seq, last, h, c, _ = _ops.lstm_forward(
        p["x"], weights["kernel"], weights["recurrent_kernel"], weights["bias"],
        weights["h0"], weights["c0"], projection=weights["projection"], mask=p["mask"],
        recurrent_mask=p["recurrent_mask"], input_mask=p["input_mask"],
        go_backwards=go_backwards, training=True)
    return (np.sum(seq * p["w_seq"]) + np.sum(last * p["w_last"]) + np.sum(h * p["w_h"])
            + np.sum(c * p["w_c"]))


@pytest.mark.parametrize("proj,go_backwards", [(False, False), (True, True)])
def test_per_gate_gradients_match_finite_differences(rng, proj, go_backwards):
    p = _problem(rng, 2, 5, 3, 3, 2 if proj else 3, "float64", proj=proj, with_mask=True)
    p["mask"][0, 2] = False
    p["w_seq"] = rng.standard_normal((2, 5, p["h0"].shape[1]))
    p["w_last"], p["w_h"] = (rng.standard_normal(p["h0"].shape) for _ in range(2))
    p["w_c"] = rng.standard_normal(p["c0"].shape)
    weights = {k: p[k] for k in ("kernel", "recurrent_kernel", "bias", "h0", "c0",
                                 "projection")}
    *_, cache = _ops.lstm_forward(
        p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"],
        projection=p["projection"], mask=p["mask"], recurrent_mask=p["recurrent_mask"],
        input_mask=p["input_mask"], go_backwards=go_backwards, training=True)
    assert isinstance(cache, _ops.ForwardCache)   # the compiled path ran
    g = _ops.lstm_backward(cache, p["w_seq"], p["w_last"], p["w_h"], p["w_c"])
    assert_matches_finite_differences(g, p, weights, lambda: _loss(p, weights, go_backwards))
