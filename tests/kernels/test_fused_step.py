"""The fused float32 step kernel (fused_step.h) against the NumPy twin: every
option it covers, both instruction sets, unit counts that do not fill a
panel, row counts that do not fill a register block, 1-4 threads, and the
training stores it leaves for the backward pass (gradients equal to the
twin's)."""
import numpy as np
import pytest

import cylstm
from cylstm import _ops
from cylstm.backends import cpu as cpu_backend
from cylstm._kernels import reference
from cylstm._kernels.lstm_forward import pack_fused, recurrent_isa

from .._helpers import assert_kernel_matches_reference, kernel_and_reference

DT = "float32"


class _Calls(list):
    """The units of each fused kernel call, and whether the step made the
    input projection (``projected``)."""

    def __init__(self):
        super().__init__()
        self.projected = []


@pytest.fixture(params=[True, False], ids=["input-in-step", "input-by-gemm"])
def fused_calls(monkeypatch, request):
    """Counts the calls of the fused kernel (so a test knows it ran), once with
    the inference input projection made in the step, once by sgemm."""
    calls = _Calls()
    real = cpu_backend._forward_fused_kernel

    def spy(*args, **kwargs):
        calls.append(args[4])      # units
        calls.projected.append(len(args) > 26 and args[26] is not None)   # W_fused
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu_backend, "_forward_fused_kernel", spy)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MIN_ROWS", 1)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MAX_UNITS", 10**9)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_INPUT", request.param)
    # One and two rows here too, not lstm_step.fused_sequence.
    monkeypatch.setattr(_ops.cpu(), "FUSED_SEQUENCE_ROWS", 0)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_PANEL_UNITS", (16, 8))
    # The AVX2 kernel on every shape and path here, not only where it is faster.
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_AVX2_MIN_ROWS", 1)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_AVX2_MIN_UNITS", 0)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_AVX2_TRAINING_MIN_UNITS", 0)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_AVX2_INPUT_ONLY", False)
    return calls


def _problem(rng, B, T, I, H, with_mask=False, rec_drop=False, in_drop=False):
    r = lambda *s: rng.uniform(-0.8, 0.8, s).astype(DT)
    drop = lambda *s: ((rng.random(s) > 0.3) / 0.7).astype(DT)
    mask = None
    if with_mask:
        mask = rng.random((B, T)) > 0.35
        mask[0, :] = True
        if B > 1:
            mask[1, :2] = False    # a row whose first steps are masked
    return dict(x=r(B, T, I), kernel=r(I, 4 * H), recurrent_kernel=r(H, 4 * H), bias=r(4 * H),
                h0=r(B, H), c0=r(B, H), projection=None, mask=mask,
                recurrent_mask=drop(B, H) if rec_drop else None,
                input_mask=drop(4, B, I) if in_drop else None)


def _assert_inference_matches(p, fused_calls, scale=4, **kw):
    """An inference call (the path that may project the input in the step)
    against the twin; the step made the projection iff the backend asks for
    it and no per-gate input mask needs the whole projection up front."""
    n = len(fused_calls)
    (seq, last, h, c, cache), (rseq, rlast, rh, rc, _) = kernel_and_reference(
        p, training=False, **kw)
    assert cache is None and len(fused_calls) > n     # one call per row slice
    want = bool(_ops.cpu().FUSED_STEP_INPUT) and p.get("input_mask") is None
    assert fused_calls.projected[n:] == [want] * (len(fused_calls) - n)
    tol = dict(rtol=1e-5 * scale, atol=1e-6 * scale)
    np.testing.assert_allclose(seq, rseq if kw.get("time_major") else rseq.transpose(1, 0, 2),
                               **tol)
    for a, b in ((last, rlast), (h, rh), (c, rc)):
        np.testing.assert_allclose(a, b, **tol)


def test_pack_fused_layout(isa):
    rng = np.random.default_rng(0)
    K, H = 3, 21
    U = rng.standard_normal((K, 4 * H)).astype(np.float32)
    packed = pack_fused(U)
    u = 16 if isa == 2 else 8
    panels = -(-H // u)
    assert packed.shape == (panels * K, 4 * u)
    blocks = packed.reshape(panels, K, 4, u)
    if u == 8:   # AVX2: gates i, f of every k, then g, o (two contiguous halves)
        blocks = packed.reshape(panels, 2, K, 2, u).transpose(0, 2, 1, 3, 4).reshape(
            panels, K, 4, u)
    for p in range(panels):
        for q in range(4):
            w = min(u, H - p * u)
            np.testing.assert_array_equal(blocks[p, :, q, :w], U[:, q * H + p * u:q * H + p * u + w])
            assert not blocks[p, :, q, w:].any()


@pytest.mark.parametrize("H", [1, 5, 17, 33, 100])
def test_units_and_rows_that_do_not_fill_a_block(isa, fused_calls, H):
    rng = np.random.default_rng(H)
    for B in range(1, 10):
        p = _problem(rng, B, 4, 6, H)
        assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4)
        _assert_inference_matches(p, fused_calls)
    assert fused_calls and set(fused_calls) == {16 if isa == 2 else 8}


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("drop", [None, "rec", "in", "both"])
def test_options_match_reference(isa, fused_calls, go_backwards, with_mask, time_major, drop):
    rng = np.random.default_rng(7)
    p = _problem(rng, 7, 9, 5, 19, with_mask=with_mask, rec_drop=drop in ("rec", "both"),
                 in_drop=drop in ("in", "both"))
    assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4,
                                    go_backwards=go_backwards, time_major=time_major)
    _assert_inference_matches(p, fused_calls, go_backwards=go_backwards, time_major=time_major)
    assert fused_calls


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("output_order", ["processing", "time"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_inference_outputs(isa, fused_calls, go_backwards, with_mask, output_order,
                           return_sequences, monkeypatch):
    # A small chunk: the input projection runs block by block.
    monkeypatch.setattr(_ops.cpu(), "CHUNK_ELEMENTS", 3 * 6 * 4 * 20)
    rng = np.random.default_rng(3)
    B, T, I, H = 6, 11, 4, 20
    p = _problem(rng, B, T, I, H, with_mask=with_mask, rec_drop=True)
    seq, last, h, c, cache = _ops.lstm_forward(
        p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"],
        mask=p["mask"], recurrent_mask=p["recurrent_mask"], go_backwards=go_backwards,
        return_sequences=return_sequences, output_order=output_order)
    assert cache is None and fused_calls
    rseq, rlast, rh, rc, _ = reference.lstm_forward(
        p["x"].transpose(1, 0, 2).astype(np.float64), p["kernel"], p["recurrent_kernel"],
        p["bias"], p["h0"], p["c0"], mask=p["mask"], rec_mask=p["recurrent_mask"],
        go_backwards=go_backwards)
    tol = dict(rtol=1e-5, atol=1e-6)
    if return_sequences:
        if go_backwards and output_order == "time":
            rseq = rseq[::-1]
        np.testing.assert_allclose(seq, rseq.transpose(1, 0, 2), **tol)
    else:
        assert seq is None
    for a, b in ((last, rlast), (h, rh), (c, rc)):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("with_mask", [False, True])
def test_thread_counts(isa, fused_calls, monkeypatch, threads, with_mask):
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_ops.cpu(), "PARALLEL_MIN_ROWS", 1)
    rng = np.random.default_rng(threads)
    p = _problem(rng, 9, 6, 7, 33, with_mask=with_mask, rec_drop=with_mask)
    with cylstm.threads(threads):
        assert len(_ops.row_slices(9, 1)) == threads
        assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4, go_backwards=True)
        _assert_inference_matches(p, fused_calls, go_backwards=True)
        _assert_inference_matches(p, fused_calls, time_major=True)
    assert len(fused_calls) == 3 * threads


def test_large_values_saturate_like_the_reference(isa, fused_calls):
    """Pre-activations far out on both sides (exp underflow, tanh = +-1)."""
    rng = np.random.default_rng(11)
    p = _problem(rng, 5, 6, 3, 24)
    p["kernel"] *= 60
    p["bias"][:] = rng.choice([-95.0, -20.0, 0.0, 20.0, 95.0], p["bias"].shape)
    assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4)
    _assert_inference_matches(p, fused_calls)


def test_nan_and_inf_propagate_like_the_reference(isa, fused_calls):
    rng = np.random.default_rng(2)
    p = _problem(rng, 4, 5, 3, 20)
    p["x"][1, 2, 0] = np.nan
    p["x"][2, 0, 0] = np.inf
    p["x"][3, 1, 1] = -np.inf
    seq, last, h, c, _ = _ops.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"], p["bias"],
                                           p["h0"], p["c0"])
    rseq, *_ = reference.lstm_forward(p["x"].transpose(1, 0, 2).astype(np.float64), p["kernel"],
                                      p["recurrent_kernel"], p["bias"], p["h0"], p["c0"])
    rseq = rseq.transpose(1, 0, 2)
    np.testing.assert_array_equal(np.isnan(seq), np.isnan(rseq))
    np.testing.assert_allclose(seq, rseq, rtol=1e-5, atol=1e-6)
    assert np.isnan(seq[1, 2:]).all() and fused_calls


def test_unfused_cases_take_the_other_path(fused_calls, monkeypatch):
    rng = np.random.default_rng(5)
    p = _problem(rng, 4, 3, 2, 6)
    args = (p["x"], p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"])
    _ops.lstm_forward(*(a.astype(np.float64) for a in args))
    _ops.lstm_forward(*args, activation=cylstm.activations.get("relu"))
    _ops.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"][:3], p["bias"],
                      p["h0"][:, :3], p["c0"], projection=rng.uniform(-1, 1, (6, 3)).astype(DT))
    _ops.lstm_forward(*args, recurrent_mask=np.ones((4, 4, 6), DT))
    assert not fused_calls
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MIN_ROWS", 5)
    _ops.lstm_forward(*args)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MIN_ROWS", 1)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MAX_UNITS", 5)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_INPUT_MAX_UNITS", 5)
    _ops.lstm_forward(*args)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_MAX_UNITS", 6)
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_PANEL_UNITS", ())
    _ops.lstm_forward(*args)
    assert not fused_calls
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_PANEL_UNITS", (16, 8))
    _ops.lstm_forward(*args)
    assert fused_calls or recurrent_isa() == 0


def test_default_dispatch_takes_the_fused_kernel_where_it_applies(monkeypatch):
    """With the backend's own thresholds: a float32 layer of up to
    FUSED_STEP_MAX_UNITS units runs the fused kernel on an AVX-512 CPU, and
    on an AVX2 one (or under CYLSTM_ISA=avx2) where the FUSED_STEP_AVX2_*
    thresholds for training allow it."""
    calls = []
    real = cpu_backend._forward_fused_kernel
    monkeypatch.setattr(cpu_backend, "_forward_fused_kernel",
                        lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    rng = np.random.default_rng(1)
    B, H = 5, 40
    p = _problem(rng, B, 4, 3, H, with_mask=True)
    assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4)
    backend, level = _ops.cpu(), recurrent_isa()
    avx2 = (level == 1 and B >= backend.FUSED_STEP_AVX2_MIN_ROWS
            and H >= max(backend.FUSED_STEP_AVX2_MIN_UNITS,
                         backend.FUSED_STEP_AVX2_TRAINING_MIN_UNITS))
    assert bool(calls) == (level == 2 or avx2)


@pytest.mark.parametrize("I", [1, 7, 16, 37])
@pytest.mark.parametrize("H", [3, 16, 40, 130])
def test_input_projection_in_the_step(isa, fused_calls, I, H):
    """Input widths and unit counts that do not fill a panel or a vector, row
    counts that do not fill a register block, both layouts, with a mask."""
    rng = np.random.default_rng(I * 1000 + H)
    for B, time_major, with_mask in ((1, False, False), (5, True, True), (13, False, True),
                                     (64, True, False)):
        p = _problem(rng, B, 5, I, H, with_mask=with_mask)
        _assert_inference_matches(p, fused_calls, scale=4 + H // 16, time_major=time_major,
                                  go_backwards=B == 13)


def _kernel_args(p, W_fused=None, fuse_input=True, gbuf=True):
    B, T, I = p["x"].shape
    H = p["c0"].shape[1]
    U_fused = pack_fused(p["recurrent_kernel"])
    units = U_fused.shape[1] // 4
    h, c = p["h0"].copy(), p["c0"].copy()
    last = np.zeros_like(h)
    seq = np.empty((B, T, H), np.float32)
    args = (p["x"], False, p["kernel"], U_fused, units, p["bias"], None, None, False, h, c,
            last, seq, False, True, None, None, None, None,
            np.empty(T * B * 4 * H, np.float32) if gbuf else None, T,
            np.empty(T * B * I, np.float32) if gbuf else None,
            np.empty(B * H, np.float32), np.empty(B * H, np.float32), 0, B)
    return args, (seq, last, h, c)


def test_kernel_packs_the_input_weights_itself(isa):
    """lstm_forward_fused as the call plans use it (no W_fused): inference packs
    W itself; given, unpacked and by sgemm all agree with the twin."""
    from cylstm._kernels.lstm_forward import lstm_forward_fused
    rng = np.random.default_rng(4)
    p = _problem(rng, 6, 7, 9, 21)
    rseq, rlast, rh, rc, _ = reference.lstm_forward(
        p["x"].transpose(1, 0, 2).astype(np.float64), p["kernel"], p["recurrent_kernel"],
        p["bias"], p["h0"], p["c0"])
    for kw, gbuf in (({}, False), ({"W_fused": pack_fused(p["kernel"])}, False),
                     ({"fuse_input": False}, True)):
        args, outs = _kernel_args(p, gbuf=gbuf)
        lstm_forward_fused(*args, **kw)
        for a, b in zip(outs, (rseq.transpose(1, 0, 2), rlast, rh, rc)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=4e-6)


def test_kernel_rejects_a_wrong_input_packing(isa):
    from cylstm._kernels.lstm_forward import lstm_forward_fused
    rng = np.random.default_rng(6)
    p = _problem(rng, 3, 2, 5, 20)
    args, _ = _kernel_args(p, gbuf=False)
    with pytest.raises(ValueError, match="W_fused"):
        lstm_forward_fused(*args, W_fused=pack_fused(p["kernel"][:4]))
    with pytest.raises(ValueError, match="gbuf and xbuf"):
        lstm_forward_fused(*args, fuse_input=False)


def test_default_dispatch_projects_the_input_in_the_step_above_the_training_limit(monkeypatch):
    """Inference with more units than FUSED_STEP_MAX_UNITS (the training
    limit) runs the fused step with the input projection in it on an
    AVX-512 CPU; training at that size stays on the unfused path."""
    calls = _Calls()
    real = cpu_backend._forward_fused_kernel

    def spy(*a, **k):
        calls.append(a[4])
        calls.projected.append(a[26] is not None)
        return real(*a, **k)

    monkeypatch.setattr(cpu_backend, "_forward_fused_kernel", spy)
    monkeypatch.setattr(_ops.cpu(), "FUSED_SEQUENCE_ROWS", 0)
    rng = np.random.default_rng(8)
    H = _ops.cpu().FUSED_STEP_MAX_UNITS + 3
    p = _problem(rng, 3, 3, 5, H, with_mask=True)
    assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=8)
    assert not calls
    if recurrent_isa() == 2:
        _assert_inference_matches(p, calls, scale=8)
        assert calls.projected == [True]


def test_layer_and_module_calls_project_the_input_in_the_step(monkeypatch):
    """The call plans of layers.LSTM and nn.LSTM (which pass no W_fused) above
    the training limit: the twin's outputs, and the same at the AVX2 level
    (where the plan falls back to the unfused path)."""
    from cylstm._kernels import lstm_forward as kernels
    calls = []
    real = kernels.lstm_forward_fused
    monkeypatch.setattr(kernels, "lstm_forward_fused",
                        lambda *a, **k: calls.append(len(a)) or real(*a, **k))
    rng = np.random.default_rng(12)
    B, T, I, H = 5, 4, 7, _ops.cpu().FUSED_STEP_MAX_UNITS + 16
    x = rng.uniform(-1, 1, (B, T, I)).astype(DT)
    layer = cylstm.layers.LSTM(H, return_sequences=True)
    layer.build((B, T, I))
    W, U, b = (w.astype(np.float64) for w in layer.get_weights())
    rseq, *_ = reference.lstm_forward(x.transpose(1, 0, 2).astype(np.float64), W, U, b,
                                      np.zeros((B, H)), np.zeros((B, H)))
    want = rseq.transpose(1, 0, 2)
    module = cylstm.nn.LSTM(I, H, batch_first=True).eval()
    module.load_state_dict({"weight_ih_l0": W.T.astype(DT), "weight_hh_l0": U.T.astype(DT),
                            "bias_ih_l0": b.astype(DT), "bias_hh_l0": np.zeros(4 * H, DT)})
    best = recurrent_isa()
    try:
        for level in (best, 1):
            recurrent_isa(level)
            n = len(calls)
            np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(module(x)[0], want, rtol=1e-5, atol=1e-5)
            if level == 2 == best:
                assert len(calls) >= n + 2     # both ran the fused kernel
    finally:
        recurrent_isa(best)


@pytest.mark.parametrize("B", [47, 61])
def test_rows_across_the_epilogue_chunk(isa, fused_calls, B):
    """More rows than one chunk of the epilogue's L1 copy (48), a last block
    of fewer rows, a partial panel, a mask: training stores and inference."""
    rng = np.random.default_rng(B)
    p = _problem(rng, B, 4, 5, 19, with_mask=True)
    assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4)
    _assert_inference_matches(p, fused_calls, go_backwards=True)
    assert set(fused_calls) == {16 if isa == 2 else 8}


def test_avx2_dispatch_takes_the_fused_kernel_where_it_measured_faster(monkeypatch):
    """With the backend's own thresholds at the AVX2 level: inference that
    projects the input in the step, from FUSED_STEP_AVX2_MIN_ROWS rows and
    FUSED_STEP_AVX2_MIN_UNITS units, runs the 8-unit kernel, and training from
    FUSED_STEP_AVX2_TRAINING_MIN_UNITS units; fewer rows and fewer units run
    the unfused path. Each result is the twin's."""
    best = recurrent_isa()
    if best < 1:
        pytest.skip("this CPU lacks AVX2 + FMA")
    backend = _ops.cpu()
    monkeypatch.setattr(backend, "FUSED_STEP_INPUT", True)
    calls = []
    real = cpu_backend._forward_fused_kernel
    monkeypatch.setattr(cpu_backend, "_forward_fused_kernel",
                        lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    rows, units = backend.FUSED_STEP_AVX2_MIN_ROWS, backend.FUSED_STEP_AVX2_MIN_UNITS
    rng = np.random.default_rng(3)
    recurrent_isa(1)
    try:
        with cylstm.threads(1):
            cases = [(rows, units, True), (rows + 3, units + 5, True), (rows - 1, units, False)]
            if units > 1:
                cases.append((rows, units - 1, False))
            for B, H, fused in cases:
                calls.clear()
                p = _problem(rng, B, 4, 6, H)
                (seq, last, h, c, _), (rseq, rlast, rh, rc, _) = kernel_and_reference(
                    p, training=False)
                np.testing.assert_allclose(seq, rseq.transpose(1, 0, 2), rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(c, rc, rtol=1e-4, atol=1e-5)
                assert calls == ([8] if fused else []), (B, H)
            train_units = max(backend.FUSED_STEP_AVX2_TRAINING_MIN_UNITS, units)
            for H, fused in ((train_units, True), (train_units - 1, False)):
                if H < units:
                    continue
                calls.clear()
                p = _problem(rng, rows, 3, 6, H)
                assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=8)
                assert calls == ([8] if fused else []), ("training", H)
    finally:
        recurrent_isa(best)


@pytest.mark.parametrize("in_step", [True, False], ids=["train-input-in-step", "train-by-gemm"])
@pytest.mark.parametrize("drop", [None, "rec", "in"])
@pytest.mark.parametrize("B,I,H", [(1, 1, 3), (5, 7, 16), (13, 37, 40), (8, 16, 130)])
def test_training_projects_the_input_in_the_step(isa, fused_calls, monkeypatch, in_step, drop,
                                                 B, I, H):
    """A training forward pass makes the input projection in the step too
    (FUSED_STEP_INPUT_TRAINING): the step writes the gate activations to the
    training store, and the gradients match the twin's, at both instruction
    sets, with masks, go_backwards and recurrent dropout; input dropout keeps
    the projection up front."""
    monkeypatch.setattr(_ops.cpu(), "FUSED_STEP_INPUT_TRAINING", in_step)
    rng = np.random.default_rng(B * 100 + H)
    for go_backwards, with_mask, time_major in ((False, False, False), (True, True, True)):
        p = _problem(rng, B, 6, I, H, with_mask=with_mask, rec_drop=drop == "rec",
                     in_drop=drop == "in")
        n = len(fused_calls)
        assert_kernel_matches_reference(p, DT, rng, compiled=True, scale=4 + H // 16,
                                        go_backwards=go_backwards, time_major=time_major)
        assert len(fused_calls) > n
        want = (in_step and bool(_ops.cpu().FUSED_STEP_INPUT) and drop != "in")
        assert fused_calls.projected[n:] == [want] * (len(fused_calls) - n)
