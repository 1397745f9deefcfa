"""The unfused path's elementwise loops (gate activations and cell update of
fastmath.h / cell.h, the backward step of backward_step.h) at every
instruction-set level the CPU has: each loop is built per level (isa.h) and
picked from the kernels' run-time level, so capping it (CYLSTM_ISA, the
modules' hooks) runs the AVX2 and baseline variants on a bigger CPU. Forward
and backward against the NumPy twin, 1-4 threads, shapes whose rows and
units fill no vector."""
import numpy as np
import pytest

import cylstm
from cylstm import _isa, _ops
from cylstm import activations as A
from cylstm.backends import cpu as cpu_backend
from cylstm._kernels import lstm_backward, lstm_forward, lstm_step
from cylstm._kernels.lstm_forward import apply_activation
from cylstm._kernels.reference import ACTIVATIONS

from .._helpers import assert_kernel_matches_reference


@pytest.fixture(params=[2, 1, 0], ids=["avx512", "avx2", "baseline"])
def level(request):
    saved = _isa.kernel_levels()
    best = _isa.cap_kernels(2)
    if request.param > best:
        _isa.restore_kernel_levels(saved)
        pytest.skip("this CPU lacks the instruction set")
    assert _isa.cap_kernels(request.param) == request.param
    yield request.param
    _isa.restore_kernel_levels(saved)


@pytest.fixture
def unfused(monkeypatch):
    """Keeps every call on the unfused path (gemm or the packed product, then
    the gate and cell loops) and fails if a fused kernel runs."""
    backend = _ops.cpu()
    monkeypatch.setattr(backend, "FUSED_STEP_MIN_ROWS", 10**9)
    monkeypatch.setattr(backend, "FUSED_SEQUENCE_ROWS", 0)

    def fused(*args, **kwargs):
        raise AssertionError("a fused kernel ran")

    monkeypatch.setattr(cpu_backend, "_forward_fused_kernel", fused)
    monkeypatch.setattr(cpu_backend, "_fused_sequence_kernel", fused)


def test_the_cap_reaches_every_module(level):
    assert lstm_forward.recurrent_isa() == level
    assert lstm_backward.recurrent_isa() == level
    assert lstm_step.fused_isa() == level
    assert _isa.kernel_levels() == dict(lstm_forward=level, lstm_step=level,
                                        lstm_backward=level)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("derivative", [False, True])
def test_simd_activations_within_a_few_ulp(level, name, derivative):
    """The bounds of test_activations_c at each level; odd lengths leave a tail."""
    dense = np.linspace(-40, 40, 100_003)
    tiny = np.geomspace(1e-30, 30, 5_001)
    z64 = np.concatenate([dense, tiny, -tiny, [0.0, -0.0, 0.625, -0.625]])
    z64 = z64.astype(np.float32).astype(np.float64)
    exact = ACTIVATIONS[name][1 if derivative else 0](z64)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    for n in (len(z64), 7, 1):
        got = apply_activation(A.KERNEL_CODES[name], z64[:n].astype(np.float32), derivative)
        err = np.abs(got - exact[:n])
        bound = 4 if derivative else 3
        assert np.all(err <= bound * ulp[:n] + 1.2e-38), float(np.max(err / ulp[:n]))


def test_nan_and_inf_propagate(level):
    z = np.array([np.nan, np.inf, -np.inf] * 7, np.float32)   # vector body and tail
    s = apply_activation(A.KERNEL_CODES["sigmoid"], z)
    t = apply_activation(A.KERNEL_CODES["tanh"], z)
    assert np.all(np.isnan(s[0::3])) and np.all(s[1::3] == 1) and np.all(s[2::3] == 0)
    assert np.all(np.isnan(t[0::3])) and np.all(t[1::3] == 1) and np.all(t[2::3] == -1)


def _problem(rng, B, T, I, H, dtype="float32", with_mask=False, proj=None):
    r = lambda *s: rng.uniform(-0.8, 0.8, s).astype(dtype)
    mask = None
    if with_mask:
        mask = rng.random((B, T)) > 0.35
        mask[0, :] = True
        if B > 1:
            mask[1, :2] = False
    P = proj or H
    return dict(x=r(B, T, I), kernel=r(I, 4 * H), recurrent_kernel=r(P, 4 * H), bias=r(4 * H),
                h0=r(B, P), c0=r(B, H), projection=r(H, P) if proj else None, mask=mask,
                recurrent_mask=None, input_mask=None)


# Rows and units that leave tails at every vector width (16, 8 and 4 floats),
# and sizes where the packed step product runs (B >= 4, U >= 16K values).
SHAPES = [(1, 4, 3, 1), (3, 5, 6, 17), (5, 3, 7, 33), (6, 3, 9, 70)]


@pytest.mark.parametrize("B,T,I,H", SHAPES)
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_unfused_forward_and_backward(level, unfused, B, T, I, H, with_mask, go_backwards):
    """float32 tanh/sigmoid: the gate loop, the fused cell loop and the
    backward step from the stored activations."""
    rng = np.random.default_rng(B * 100 + H)
    p = _problem(rng, B, T, I, H, with_mask=with_mask)
    assert_kernel_matches_reference(p, "float32", rng, compiled=True, scale=4,
                                    go_backwards=go_backwards)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act,rec", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("proj", [None, 3])
def test_unfused_other_paths(level, unfused, dtype, act, rec, proj):
    """Projection, float64 and other activations: the backward step from the
    pre-activations (cyl_bwd_gates_pre_*), the separate activation loops."""
    rng = np.random.default_rng(7)
    p = _problem(rng, 5, 4, 6, 19, dtype, with_mask=True, proj=proj)
    assert_kernel_matches_reference(p, dtype, rng, compiled=True, scale=4, act=act, rec=rec)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("B,H", [(9, 21), (13, 70)])
def test_unfused_threads(level, unfused, monkeypatch, threads, B, H):
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_ROWS", 1)
    rng = np.random.default_rng(threads)
    p = _problem(rng, B, 5, 6, H, with_mask=True)
    with cylstm.threads(threads):
        assert len(_ops.row_slices(B, 1)) == threads
        assert_kernel_matches_reference(p, "float32", rng, compiled=True, scale=4)
