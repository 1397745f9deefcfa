"""The compiled kernels against their plain-NumPy twin, and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cylstm import _ops
from cylstm import activations as A
from cylstm._kernels import reference

from .._helpers import (KERNEL_ATOL as ATOL, KERNEL_RTOL as RTOL,
                       assert_kernel_matches_reference, assert_matches_finite_differences)

ACTS = sorted(A.KERNEL_CODES)
_SATURATING_GATES = {"sigmoid", "hard_sigmoid", "tanh", "softsign"}


def _problem(rng, B, T, I, H, P, dtype, proj=False, with_mask=False, rec_drop=False):
    d = np.dtype(dtype)
    r = lambda *s: rng.uniform(-0.6, 0.6, s).astype(d)
    return dict(
        x=r(B, T, I), kernel=r(I, 4 * H), recurrent_kernel=r(P, 4 * H), bias=r(4 * H),
        h0=r(B, P), c0=r(B, H), projection=r(H, P) if proj else None,
        mask=(rng.random((B, T)) > 0.35) if with_mask else None,
        recurrent_mask=((rng.random((B, P)) > 0.3) * 1.4).astype(d) if rec_drop else None,
    )


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("proj", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
def test_kernel_matches_reference_grid(dtype, rng, go_backwards, with_mask, proj, time_major):
    p = _problem(rng, 4, 7, 3, 5, 3 if proj else 5, dtype, proj=proj, with_mask=with_mask,
                 rec_drop=with_mask)
    assert_kernel_matches_reference(p, dtype, rng, go_backwards=go_backwards, time_major=time_major)


@pytest.mark.parametrize("act", ACTS)
def test_every_activation_matches_reference(rng, act):
    for rec in ("sigmoid", act):
        p = _problem(rng, 3, 4, 2, 3, 3, "float64", with_mask=True)
        assert_kernel_matches_reference(p, "float64", rng, act=act, rec=rec)


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 6), T=st.integers(1, 9), I=st.integers(1, 6), H=st.integers(1, 7),
       proj=st.booleans(), with_mask=st.booleans(), go_backwards=st.booleans(),
       time_major=st.booleans(), dtype=st.sampled_from(["float32", "float64"]),
       act=st.sampled_from(ACTS), rec=st.sampled_from(ACTS), seed=st.integers(0, 2**31))
def test_kernel_matches_reference_fuzz(B, T, I, H, proj, with_mask, go_backwards, time_major,
                                       dtype, act, rec, seed):
    rng = np.random.default_rng(seed)
    P = max(1, H - 2) if proj else H
    p = _problem(rng, B, T, I, H, P, dtype, proj=proj, with_mask=with_mask,
                 rec_drop=with_mask and proj)
    # A gate activation unbounded above 1 lets |f| exceed 1: the
    # cell, and with it float32 rounding, grows step by step (seen: selu/selu,
    # T = 8, 1.2e-5 apart at an output of 0.013 that cancels terms near 2).
    scale = 10 if dtype == "float32" and rec not in _SATURATING_GATES else 1
    assert_kernel_matches_reference(p, dtype, rng, go_backwards=go_backwards, act=act, rec=rec,
                                    time_major=time_major, scale=scale)


def test_long_sequence_is_chunked_and_exact(rng, monkeypatch):
    # A tiny chunk forces many input-projection blocks.
    monkeypatch.setattr(_ops.cpu(), "CHUNK_ELEMENTS", 64)
    p = _problem(rng, 3, 40, 4, 4, 4, "float64", with_mask=True)
    for gb in (False, True):
        seq, last, h, c, _ = _ops.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"],
                                               p["bias"], p["h0"], p["c0"], mask=p["mask"],
                                               go_backwards=gb)
        rseq, rlast, rh, rc, _ = reference.lstm_forward(
            p["x"].transpose(1, 0, 2), p["kernel"], p["recurrent_kernel"], p["bias"],
            p["h0"], p["c0"], mask=p["mask"], go_backwards=gb)
        np.testing.assert_allclose(seq, rseq.transpose(1, 0, 2), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h, rh, rtol=1e-12, atol=1e-13)


def _loss(p, weights, act, rec, go_backwards):
    seq, last, h, c, _ = _ops.lstm_forward(
        p["x"], weights["kernel"], weights["recurrent_kernel"], weights["bias"],
        weights["h0"], weights["c0"], projection=weights["projection"], mask=p["mask"],
        go_backwards=go_backwards, activation=A.get(act), recurrent_activation=A.get(rec))
    return (np.sum(seq * p["w_seq"]) + np.sum(last * p["w_last"]) + np.sum(h * p["w_h"])
            + np.sum(c * p["w_c"]))


@pytest.mark.parametrize("act,rec,proj,go_backwards", [
    ("tanh", "sigmoid", False, False), ("tanh", "sigmoid", True, True),
    ("gelu", "hard_sigmoid", False, True), ("swish", "softsign", True, False),
    ("selu", "elu", False, False), ("relu", "linear", False, True),
])
def test_gradients_match_finite_differences(rng, act, rec, proj, go_backwards):
    p = _problem(rng, 2, 5, 3, 3, 2 if proj else 3, "float64", proj=proj, with_mask=True)
    p["mask"][0, 2] = False
    seq_shape = (2, 5, p["h0"].shape[1])
    p["w_seq"] = rng.standard_normal(seq_shape)
    p["w_last"], p["w_h"] = rng.standard_normal(p["h0"].shape), rng.standard_normal(p["h0"].shape)
    p["w_c"] = rng.standard_normal(p["c0"].shape)
    weights = {k: p[k] for k in ("kernel", "recurrent_kernel", "bias", "h0", "c0", "projection")}
    _, _, _, _, cache = _ops.lstm_forward(
        p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"],
        projection=p["projection"], mask=p["mask"], go_backwards=go_backwards,
        activation=A.get(act), recurrent_activation=A.get(rec), training=True)
    g = _ops.lstm_backward(cache, p["w_seq"], p["w_last"], p["w_h"], p["w_c"])
    assert_matches_finite_differences(
        g, p, weights, lambda: _loss(p, weights, act, rec, go_backwards))


def test_backprop_twice_raises(rng):
    p = _problem(rng, 2, 3, 2, 2, 2, "float64")
    *_, cache = _ops.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"],
                                  p["h0"], p["c0"], training=True)
    _ops.lstm_backward(cache, d_last=np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="already"):
        _ops.lstm_backward(cache, d_last=np.ones((2, 2)))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_batch_split_over_threads_matches_one_slice(rng, monkeypatch, go_backwards):
    import cylstm
    p = _problem(rng, 7, 6, 3, 4, 2, "float64", proj=True, with_mask=True, rec_drop=True)
    args = (p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"])
    kw = dict(projection=p["projection"], mask=p["mask"], recurrent_mask=p["recurrent_mask"],
              go_backwards=go_backwards, training=True)
    results = []
    for min_work, n in ((10**18, 1), (0, 3)):
        monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_WORK", min_work)
        with cylstm.threads(n):
            assert len(_ops.row_slices(7, 1)) == n
            seq, last, h, c, cache = _ops.lstm_forward(*args, **kw)
            g = _ops.lstm_backward(cache, np.ones_like(seq), None, h, c)
            inf = _ops.lstm_forward(*args, **dict(kw, training=False))
        results.append((seq, last, h, c, g, inf))
    (a, b) = results
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)
    for key in ("dx", "kernel", "recurrent_kernel", "bias", "projection", "dh0", "dc0"):
        np.testing.assert_allclose(a[4][key], b[4][key], rtol=1e-12, atol=1e-13)
    for x, y in zip(a[5][:4], b[5][:4]):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)


def test_numpy_reference_matches_keras_goldens():
    """The oracle itself against Keras 3: every forward golden, float64 math."""
    from tests.conftest import golden_cases, load_golden
    checked = 0
    for path in golden_cases("keras_lstm"):
        arrays, cfg = load_golden(path)
        if cfg["kind"] != "LSTM":
            continue
        layer = cfg["layer"]
        x = arrays["x"].astype(np.float64)
        B, T, _ = x.shape
        H = layer["units"]
        h0 = arrays.get("h0", np.zeros((B, H))).astype(np.float64)
        c0 = arrays.get("c0", np.zeros((B, H))).astype(np.float64)
        names = {None: "linear", "silu": "swish"}
        act = names.get(layer.get("activation", "tanh"), layer.get("activation", "tanh"))
        rec = layer.get("recurrent_activation", "sigmoid")
        rec = names.get(rec, rec)
        seq, last, h, c, _ = reference.lstm_forward(
            x.transpose(1, 0, 2), arrays["kernel"].astype(np.float64),
            arrays["recurrent_kernel"].astype(np.float64),
            arrays.get("bias", np.zeros(4 * H)).astype(np.float64), h0, c0,
            mask=arrays["mask"].astype(bool) if "mask" in arrays else None,
            go_backwards=layer.get("go_backwards", False), activation=act,
            recurrent_activation=rec)
        out = seq.transpose(1, 0, 2) if layer.get("return_sequences") else last
        tol = 2e-5 if cfg["dtype"] == "float32" else 1e-7
        np.testing.assert_allclose(out, arrays["out_0"], rtol=tol, atol=tol, err_msg=path.name)
        if layer.get("return_state"):
            np.testing.assert_allclose(h, arrays["out_1"], rtol=tol, atol=tol)
            np.testing.assert_allclose(c, arrays["out_2"], rtol=tol, atol=tol)
        checked += 1
    assert checked >= 60


@pytest.mark.parametrize("proj", [False, True])
def test_per_gate_masks_all_equal_match_the_compiled_shared_masks(dtype, rng, proj):
    """Per-gate dropout masks that happen to be equal for the four gates give
    what one shared mask gives (both on the compiled path)."""
    B, T, I, H = 3, 5, 4, 3
    P = 2 if proj else H
    p = _problem(rng, B, T, I, H, P, dtype, proj=proj, with_mask=True, rec_drop=True)
    in_mask = ((rng.random((B, I)) > 0.3) / 0.7).astype(dtype)
    args = (p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"])
    kw = dict(projection=p["projection"], mask=p["mask"], go_backwards=True, training=True)
    shared = _ops.lstm_forward(p["x"] * in_mask[:, None], *args,
                               recurrent_mask=p["recurrent_mask"], **kw)
    gated = _ops.lstm_forward(p["x"], *args, recurrent_mask=np.stack([p["recurrent_mask"]] * 4),
                              input_mask=np.stack([in_mask] * 4), **kw)
    assert isinstance(shared[4], _ops.ForwardCache) and isinstance(gated[4], _ops.ForwardCache)
    tol = dict(rtol=RTOL[dtype], atol=ATOL[dtype])
    for a, b in zip(shared[:4], gated[:4]):
        np.testing.assert_allclose(b, a, **tol)
    d_seq = rng.standard_normal(shared[0].shape).astype(dtype)
    d_h = rng.standard_normal(shared[2].shape).astype(dtype)
    g_shared = _ops.lstm_backward(shared[4], d_seq, None, d_h, None)
    g_gated = _ops.lstm_backward(gated[4], d_seq, None, d_h, None)
    gtol = dict(rtol=RTOL[dtype] * 10, atol=ATOL[dtype] * 10)
    np.testing.assert_allclose(g_gated["dx"], g_shared["dx"] * in_mask[:, None], **gtol)
    for key in ("kernel", "recurrent_kernel", "bias", "projection", "dh0", "dc0"):
        if g_shared[key] is None:
            assert g_gated[key] is None
        else:
            np.testing.assert_allclose(g_gated[key], g_shared[key], **gtol, err_msg=key)
