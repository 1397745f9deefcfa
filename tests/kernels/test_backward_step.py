"""The backward time loop's fused gate pass (backward_step.h) and the weight
products after it (the joint dW/dU product over lstm_backward_join's X|Hprev,
the batch-major dx written in place) against the NumPy twin: every option the
paths take, both instruction sets of the step product, 1-4 threads, unit
counts that do not fill a register panel; and the kernels' argument checks."""
import numpy as np
import pytest

import cylstm
from cylstm import _ops
from cylstm import activations as A
from cylstm.backends import cpu as cpu_backend
from cylstm._kernels import reference
from cylstm._kernels.lstm_backward import (lstm_backward_join, lstm_backward_transpose,
                                           lstm_backward_weights)

from .._helpers import assert_kernel_matches_reference


@pytest.fixture
def steps_calls(monkeypatch):
    """Records each backward time loop call's `stored_activations` (True: the
    fused gate pass of the fused forward's stores ran) and whether the joint
    dW/dU product ran; lets the fused forward run at every size."""
    calls = dict(stored=[], joined=[])
    real_steps, real_join = cpu_backend._backward_steps_kernel, cpu_backend._backward_join_kernel

    def steps(*args, **kwargs):
        calls["stored"].append(bool(args[21]))
        return real_steps(*args, **kwargs)

    def join(*args, **kwargs):
        calls["joined"].append(True)
        return real_join(*args, **kwargs)

    monkeypatch.setattr(cpu_backend, "_backward_steps_kernel", steps)
    monkeypatch.setattr(cpu_backend, "_backward_join_kernel", join)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MIN_ROWS", 1)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MAX_UNITS", 10**9)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_PANEL_UNITS", (16, 8))
    return calls


def _problem(rng, B, T, I, H, dtype="float32", with_mask=False, rec_drop=False, in_drop=False,
             proj=None):
    r = lambda *s: rng.uniform(-0.8, 0.8, s).astype(dtype)
    drop = lambda *s: ((rng.random(s) > 0.3) / 0.7).astype(dtype)
    mask = None
    if with_mask:
        mask = rng.random((B, T)) > 0.35
        mask[0, :] = True
        if B > 1:
            mask[1, :2] = False    # a row whose first steps are masked
        if B > 2:
            mask[2, -2:] = False   # ... and one whose last steps are
    P = proj or H
    return dict(x=r(B, T, I), kernel=r(I, 4 * H), recurrent_kernel=r(P, 4 * H), bias=r(4 * H),
                h0=r(B, P), c0=r(B, H), projection=r(H, P) if proj else None, mask=mask,
                recurrent_mask=drop(B, P) if rec_drop else None,
                input_mask=drop(4, B, I) if in_drop else None)


@pytest.mark.parametrize("H", [1, 5, 10, 17, 33])
def test_fused_gate_pass_units_that_do_not_fill_a_panel(isa, steps_calls, H):
    rng = np.random.default_rng(H)
    for B in (1, 3, 8):
        p = _problem(rng, B, 5, 6, H)
        assert_kernel_matches_reference(p, "float32", rng, compiled=True, scale=4)
    assert steps_calls["stored"] and all(steps_calls["stored"])
    assert steps_calls["joined"]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("drop", [None, "rec", "in"])
def test_fused_gate_pass_options(isa, steps_calls, go_backwards, with_mask, time_major, drop):
    rng = np.random.default_rng(11)
    p = _problem(rng, 6, 8, 5, 19, with_mask=with_mask, rec_drop=drop == "rec",
                 in_drop=drop == "in")
    assert_kernel_matches_reference(p, "float32", rng, compiled=True, scale=4,
                                    go_backwards=go_backwards, time_major=time_major)
    assert all(steps_calls["stored"])
    # Per-gate input masks take the NumPy weight products, not the joint one.
    assert bool(steps_calls["joined"]) == (drop != "in")


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("proj", [None, 3])
@pytest.mark.parametrize("act,rec", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
def test_gate_pass_without_sequence_gradient(steps_calls, monkeypatch, fused, dtype, proj,
                                             act, rec):
    """return_sequences=False: no gradient of the sequence output reaches the
    loop, only those of the last output and the final states. Other
    activations (and float64) take the gate pass from the pre-activations."""
    if not fused:
        monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MAX_UNITS", 0)
    rng = np.random.default_rng(5)
    p = _problem(rng, 5, 7, 4, 9, dtype, with_mask=True, proj=proj)
    kw = dict(projection=p["projection"], mask=p["mask"], training=True,
              activation=A.get(act), recurrent_activation=A.get(rec))
    seq, last, h, c, cache = _ops.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"],
                                               p["bias"], p["h0"], p["c0"], **kw)
    rcache = reference.lstm_forward(
        p["x"].transpose(1, 0, 2), p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"],
        p["c0"], Wr=p["projection"], mask=p["mask"], activation=act, recurrent_activation=rec,
        training=True)[4]
    d_last, d_h, d_c = (rng.standard_normal(a.shape).astype(dtype) for a in (last, h, c))
    g = _ops.lstm_backward(cache, None, d_last, d_h, d_c)
    r = reference.lstm_backward(rcache, np.zeros(seq.shape[1::-1] + seq.shape[2:], dtype),
                                d_last, d_h, d_c)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g["dx"], r["dx"].transpose(1, 0, 2), **tol)
    for mine, theirs in (("kernel", "dW"), ("recurrent_kernel", "dU"), ("bias", "db"),
                         ("dh0", "dh0"), ("dc0", "dc0")):
        np.testing.assert_allclose(g[mine], r[theirs], err_msg=mine, **tol)
    # Float32 tanh/sigmoid forwards (fused or not) store the activations.
    assert steps_calls["stored"] == [dtype == "float32" and act == "tanh"]


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("batch_major_dx", [True, False])
def test_fused_gate_pass_threads(isa, steps_calls, monkeypatch, threads, with_mask,
                                 batch_major_dx):
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_ops.cpu(), "BATCH_MAJOR_DX_MAX_INPUTS", 10**9 if batch_major_dx else 0)
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_ROWS", 1)
    rng = np.random.default_rng(threads)
    p = _problem(rng, 9, 6, 5, 21, with_mask=with_mask)
    with cylstm.threads(threads):
        assert len(_ops.row_slices(9, 1)) == threads
        assert_kernel_matches_reference(p, "float32", rng, compiled=True, scale=4)
    assert all(steps_calls["stored"])


def _gradients(p, monkeypatch, time_major=False, **attrs):
    for name, value in attrs.items():
        monkeypatch.setattr(_ops.cpu(), name, value)
    x = p["x"].transpose(1, 0, 2).copy() if time_major else p["x"]
    mask = None if p["mask"] is None else (p["mask"].T if time_major else p["mask"])
    seq, last, h, c, cache = _ops.lstm_forward(
        x, p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"],
        projection=p["projection"], mask=mask, training=True, time_major=time_major)
    return _ops.lstm_backward(cache, np.cos(np.arange(seq.size)).reshape(seq.shape).astype(
        seq.dtype), None, h, c)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("proj", [None, 4])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("bias_row", [True, False])
@pytest.mark.parametrize("batch_major_dx", [True, False])
def test_joint_product_and_batch_major_dx_equal_the_separate_products(
        monkeypatch, dtype, proj, time_major, threads, bias_row, batch_major_dx):
    """JOINT_WEIGHT_PRODUCT (with db as its row of ones or not) and a
    batch-major dx written in place give the gradients of the separate
    products and the transposed copy."""
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(3)
    p = _problem(rng, 7, 6, 5, 6, dtype, with_mask=True, proj=proj)
    with cylstm.threads(threads):
        plain = _gradients(p, monkeypatch, time_major, JOINT_WEIGHT_PRODUCT=False,
                           BATCH_MAJOR_DX_MAX_INPUTS=0)
        joint = _gradients(p, monkeypatch, time_major, JOINT_WEIGHT_PRODUCT=True,
                           JOINT_BIAS_GRADIENT=bias_row,
                           BATCH_MAJOR_DX_MAX_INPUTS=10**9 if batch_major_dx else 0)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for key in ("dx", "kernel", "recurrent_kernel", "bias", "projection", "dh0", "dc0"):
        if plain[key] is None:
            assert joint[key] is None
            continue
        assert joint[key].shape == plain[key].shape, key
        np.testing.assert_allclose(joint[key], plain[key], err_msg=key, **tol)
    assert joint["dx"].flags.c_contiguous


def test_join_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    hp = rng.standard_normal((3, 4, 2)).astype(np.float32)
    xh = np.full((3, 4, 7), np.nan, np.float32)
    lstm_backward_join(x, hp, xh, 0, 5)
    lstm_backward_join(x, hp, xh, 5, 12)
    np.testing.assert_array_equal(xh, np.concatenate([x, hp], axis=2))
    xh1 = np.full((3, 4, 8), np.nan, np.float32)
    lstm_backward_join(x, hp, xh1, 0, 12)
    np.testing.assert_array_equal(xh1, np.concatenate([x, hp, np.ones((3, 4, 1), np.float32)],
                                                      axis=2))
    with pytest.raises(ValueError, match="must match"):
        lstm_backward_join(x, hp, np.empty((3, 4, 6), np.float32), 0, 12)
    with pytest.raises(ValueError, match="rows"):
        lstm_backward_join(x, hp, xh, 0, 13)


def test_weights_kernel_checks_its_arguments():
    T, B, I, H, P = 2, 3, 4, 2, 2
    G = 4 * H
    f = lambda *s: np.zeros(s, np.float32)
    x, W, hprev, dz = f(T, B, I), f(I, G), f(T, B, P), f(T, B, G)
    dwu = f(I + P, G)
    args = lambda dx, dW, dU, xh, bm, r1: (x, W, hprev, None, dz, None, dx, dW, dU, f(G), None,
                                          0, G, 0, 0, 0, r1, xh, bm)
    lstm_backward_weights(*args(f(B, T, I), dwu[:I], dwu[I:], f(T, B, I + P), True, B))
    with pytest.raises(ValueError, match="xh must have shape"):
        lstm_backward_weights(*args(None, dwu[:I], dwu[I:], f(T, B, I + 1), False, 0))
    with pytest.raises(ValueError, match="right after"):
        lstm_backward_weights(*args(None, f(I, G), f(P, G), f(T, B, I + P), False, 0))
    with pytest.raises(ValueError, match="db must be the row"):   # db not after dU
        lstm_backward_weights(*args(None, dwu[:I], dwu[I:], f(T, B, I + P + 1), False, 0))
    with pytest.raises(ValueError, match="dx must have shape"):
        lstm_backward_weights(*args(f(T, B, I), dwu[:I], dwu[I:], None, True, B))
    with pytest.raises(ValueError, match="out of range"):
        lstm_backward_weights(*args(f(B, T, I), dwu[:I], dwu[I:], None, True, B + 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 37), (8, 16), (9, 17), (130, 516)])
def test_transpose_kernel(dtype, shape):
    src = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    dst = np.full(shape[::-1], np.nan, dtype)
    lstm_backward_transpose(src, dst)
    np.testing.assert_array_equal(dst, src.T)
    with pytest.raises(ValueError, match="dst must have shape"):
        lstm_backward_transpose(src, np.empty(shape, dtype) if shape[0] != shape[1]
                                else np.empty((shape[0] + 1, shape[1]), dtype))
