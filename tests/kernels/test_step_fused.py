"""The fused few-row step (step_fused.h) and its persistent worker threads
(workers.h) against the NumPy reference: every instruction-set level, unit
counts that do not fill a vector, 1-5 rows, 1-4 threads, weights changed in
place, concurrent Python threads, and a fork after the pool has started."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import cylstm
from cylstm import _ops
from cylstm._kernels import reference
from cylstm._kernels.lstm_step import (StepKernel, fused_isa, fused_sequence, pool_size,
                                       set_split_work)

TANH, SIGMOID = 1, 2
UNITS = [1, 5, 17, 33, 100, 256]
TOL = dict(rtol=2e-5, atol=2e-6)


@pytest.fixture(autouse=True)
def split_every_step():
    """Split every step between the threads allowed, however small (the
    defaults split only large steps), so each test reaches the pool."""
    old = set_split_work(step=1, sequence=1)
    yield
    set_split_work(*old)


# The scalar fallback too: conftest.py's isa fixture runs each level.
ISA_LEVELS = {2: "avx512", 1: "avx2", 0: "scalar"}


def _weights(rng, B, I, H, scale=0.5):
    r = lambda *s: rng.uniform(-scale, scale, s).astype(np.float32)
    return r(I, 4 * H), r(H, 4 * H), r(4 * H), r(B, H), r(B, H)


def _reference_step(x, W, U, bias, h0, c0):
    _, _, h, c, _ = reference.lstm_forward(x[None].astype(np.float64), W, U, bias, h0, c0)
    return h, c


@pytest.mark.parametrize("H", UNITS)
@pytest.mark.parametrize("B", [1, 2, 3, 4, 5])
def test_step_matches_reference(isa, B, H):
    rng = np.random.default_rng(B * 1000 + H)
    I = 7 if H < 100 else 64
    W, U, bias, h0, c0 = _weights(rng, B, I, H)
    x = rng.uniform(-1, 1, (B, I)).astype(np.float32)
    k = StepKernel(W, U, bias, None, TANH, SIGMOID, B, True)
    for n in (1, 2, 3, 4):
        with cylstm.threads(n):
            h, c = k.step(x, h0, c0)
        rh, rc = _reference_step(x, W, U, bias, h0, c0)
        np.testing.assert_allclose(h, rh, **TOL)
        np.testing.assert_allclose(c, rc, **TOL)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_large_step_splits_and_matches(isa, threads):
    """Steps big enough to be split between workers, at every thread count."""
    rng = np.random.default_rng(threads)
    B, I, H = 2, 256, 256
    W, U, bias, h0, c0 = _weights(rng, B, I, H, 0.1)
    x = rng.uniform(-1, 1, (B, I)).astype(np.float32)
    k = StepKernel(W, U, bias, None, TANH, SIGMOID, B, True)
    with cylstm.threads(threads):
        h, c = k.step(x, h0, c0)
        out, h1, c1 = k.sequence_of_one(x[:, None], h0, c0, False, True)
    rh, rc = _reference_step(x, W, U, bias, h0, c0)
    np.testing.assert_allclose(h, rh, **TOL)
    np.testing.assert_allclose(c, rc, **TOL)
    np.testing.assert_array_equal(out[:, 0], h)
    np.testing.assert_array_equal(c1, c)
    if threads > 1:
        assert pool_size() >= 1


def test_weights_changed_in_place_show_in_next_step(isa):
    rng = np.random.default_rng(3)
    B, I, H = 1, 256, 256
    W, U, bias, h0, c0 = _weights(rng, B, I, H, 0.1)
    x = rng.uniform(-1, 1, (B, I)).astype(np.float32)
    k = StepKernel(W, U, bias, None, TANH, SIGMOID, B, True)
    for n in (1, 2):
        with cylstm.threads(n):
            for _ in range(3):
                W *= np.float32(0.9)
                U += np.float32(0.01)
                bias -= np.float32(0.02)
                h, c = k.step(x, h0, c0)
                rh, rc = _reference_step(x, W, U, bias, h0, c0)
                np.testing.assert_allclose(h, rh, **TOL)
                np.testing.assert_allclose(c, rc, **TOL)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("B,H", [(1, 17), (3, 40)])
def test_second_bias_is_added_and_read_in_place(isa, fused, B, H):
    """torch's bias_hh next to bias_ih: StepKernel.set_second_bias, on the
    fused step and on the unfused path (float64 takes it), edits shown."""
    rng = np.random.default_rng(B + H)
    I = 6
    W, U, b1, h0, c0 = _weights(rng, B, I, H)
    b2 = rng.uniform(-0.5, 0.5, 4 * H).astype(np.float32)
    x = rng.uniform(-1, 1, (B, I)).astype(np.float32)
    dtype = np.float32 if fused else np.float64
    W, U, b1, b2, x, h0, c0 = (a.astype(dtype) for a in (W, U, b1, b2, x, h0, c0))
    k = StepKernel(W, U, b1, None, TANH, SIGMOID, B, fused)
    k.set_second_bias(b2)
    for _ in range(2):
        for n in (1, 2):
            with cylstm.threads(n):
                h, c = k.step(x, h0, c0)
            rh, rc = _reference_step(x, W, U, b1 + b2, h0, c0)
            np.testing.assert_allclose(h, rh, **TOL)
            np.testing.assert_allclose(c, rc, **TOL)
        b2 *= 2
    out, hn, cn = k.sequence_of_one(x[:, None], h0, c0, False, True, True)
    rh, rc = _reference_step(x, W, U, b1 + b2, h0, c0)
    assert out.shape == (B, 1, H) and hn.shape == (1, B, H) and cn.shape == (1, B, H)
    assert not np.shares_memory(out, hn)
    np.testing.assert_allclose(out[:, 0], rh, **TOL)
    np.testing.assert_allclose(hn[0], rh, **TOL)
    np.testing.assert_allclose(cn[0], rc, **TOL)
    k.set_second_bias(None)
    h, _ = k.step(x, h0, c0)
    np.testing.assert_allclose(h, _reference_step(x, W, U, b1, h0, c0)[0], **TOL)


def test_second_bias_rejects_a_wrong_array():
    W, U, b1, _, _ = _weights(np.random.default_rng(0), 1, 3, 5)
    k = StepKernel(W, U, b1, None, TANH, SIGMOID, 1, True)
    for bad in (np.zeros(19, np.float32), np.zeros(20, np.float64), [0.0] * 20,
                np.zeros((2, 20), np.float32)[:, 0]):
        with pytest.raises(ValueError, match="bias2"):
            k.set_second_bias(bad)


@pytest.mark.parametrize("parts", [1, 2])
def test_fused_sequence_second_bias(isa, parts):
    rng = np.random.default_rng(11)
    B, T, I, H = 2, 11, 7, 21
    W, U, b1, h0, c0 = _weights(rng, B, I, H)
    b2 = rng.uniform(-0.5, 0.5, 4 * H).astype(np.float32)
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    seq, _, h, c = fused_sequence(x, True, W, U, b1, h0, c0, True, parts, b2)
    rseq, _, rh, rc, _ = reference.lstm_forward(x.astype(np.float64), W, U, b1 + b2, h0, c0)
    np.testing.assert_allclose(seq, rseq, **TOL)
    np.testing.assert_allclose(c, rc, **TOL)
    with pytest.raises(ValueError, match="bias2"):
        fused_sequence(x, True, W, U, b1, h0, c0, True, parts, b2[:-1])


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
# T of 9, 19 and 17: the input projections of eight steps made together
# (step_fused.h, CYL_FS_ZX_STEPS) end in a part-filled batch of steps.
@pytest.mark.parametrize("B,T,I,H", [(1, 9, 5, 17), (2, 7, 32, 128), (3, 4, 3, 1),
                                     (5, 6, 11, 33), (1, 1, 8, 100), (2, 19, 13, 40),
                                     (1, 17, 9, 70)])
@pytest.mark.parametrize("parts", [1, 2, 3, 4])
def test_fused_sequence_matches_reference(isa, B, T, I, H, parts, time_major,
                                          return_sequences):
    rng = np.random.default_rng(B * 100 + T * 10 + H)
    W, U, bias, h0, c0 = _weights(rng, B, I, H)
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    seq, last, h, c = fused_sequence(x if time_major else x.transpose(1, 0, 2).copy(),
                                     time_major, W, U, bias, h0, c0, return_sequences, parts)
    rseq, rlast, rh, rc, _ = reference.lstm_forward(x.astype(np.float64), W, U, bias, h0, c0)
    if return_sequences:
        np.testing.assert_allclose(seq if time_major else seq.transpose(1, 0, 2), rseq,
                                   **TOL)
    else:
        assert seq is None
    np.testing.assert_allclose(last, rlast, **TOL)
    np.testing.assert_allclose(h, rh, **TOL)
    np.testing.assert_allclose(c, rc, **TOL)


# Rows 1-8 (the AVX2 product's register tiles: 4 rows x 2 vectors, 3 x 3,
# 2 x 4, then one-vector and masked tiles), units that fill no tile or
# vector (3, 24 = three vectors, 41 = five and a tail), inputs below, at
# and past the 8-k blocks (1, 7, 37), and T whose eight-step input
# projections end part-filled (nt of 1-3 rows in the last block).
@pytest.mark.parametrize("H", [3, 24, 41])
@pytest.mark.parametrize("B", [1, 2, 3, 4, 5, 6, 7, 8])
def test_product_tiles_match_reference(isa, B, H):
    rng = np.random.default_rng(B * 31 + H)
    T = 9 + B % 3
    for I in (1, 7, 37):
        W, U, bias, h0, c0 = _weights(rng, B, I, H)
        x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
        rseq, _, _, rc, _ = reference.lstm_forward(x.astype(np.float64), W, U, bias, h0, c0)
        k = StepKernel(W, U, bias, None, TANH, SIGMOID, B, True)
        rh1, rc1 = _reference_step(x[0], W, U, bias, h0, c0)
        for parts in (1, 2, 3, 4):
            seq, _, _, c = fused_sequence(x, True, W, U, bias, h0, c0, True, parts)
            np.testing.assert_allclose(seq, rseq, **TOL)
            np.testing.assert_allclose(c, rc, **TOL)
            with cylstm.threads(parts):
                h1, c1 = k.step(x[0], h0, c0)
            np.testing.assert_allclose(h1, rh1, **TOL)
            np.testing.assert_allclose(c1, rc1, **TOL)


def test_split_work_rejects_non_positive():
    with pytest.raises(ValueError, match="positive"):
        set_split_work(step=0)
    with pytest.raises(ValueError, match="positive"):
        set_split_work(sequence=True)


def test_fused_sequence_rejects_mismatched_shapes():
    W, U, bias, h0, c0 = _weights(np.random.default_rng(0), 1, 4, 3)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        fused_sequence(np.zeros((1, 2, 5), np.float32), False, W, U, bias, h0, c0, True, 1)


@pytest.mark.parametrize("B,T,I,H", [(1, 20, 32, 128), (2, 5, 16, 40)])
def test_layer_calls_with_two_threads_match_reference(B, T, I, H):
    """The backend's few-row dispatch (CpuBackend._compiled_forward)."""
    rng = np.random.default_rng(11)
    W, U, bias, h0, c0 = _weights(rng, B, I, H)
    x = rng.uniform(-1, 1, (B, T, I)).astype(np.float32)
    rseq, rlast, rh, rc, _ = reference.lstm_forward(
        x.transpose(1, 0, 2).astype(np.float64), W, U, bias, h0, c0)
    for n in (1, 2):
        with cylstm.threads(n):
            seq, last, h, c, _ = _ops.lstm_forward(x, W, U, bias, h0, c0)
        np.testing.assert_allclose(seq, rseq.transpose(1, 0, 2), **TOL)
        np.testing.assert_allclose(c, rc, **TOL)


def test_concurrent_python_threads_give_serial_results():
    """Several Python threads stepping at once: the pool serves one at a time,
    the others run inline; every result equals the serial one."""
    rng = np.random.default_rng(5)
    B, I, H = 1, 256, 256
    W, U, bias, h0, c0 = _weights(rng, B, I, H, 0.1)
    kernels = [StepKernel(W, U, bias, None, TANH, SIGMOID, B, True) for _ in range(2)]
    xs = [rng.uniform(-1, 1, (B, I)).astype(np.float32) for _ in range(8)]
    with cylstm.threads(1):
        expected = [kernels[0].step(x, h0, c0) for x in xs]
    errors = []

    def work(i):
        try:
            with cylstm.threads(2):
                for _ in range(30):
                    h, c = kernels[i % 2].step(xs[i], h0, c0)
                    seq = fused_sequence(xs[i][:, None], False, W, U, bias, h0, c0, True, 2)[0]
                    if not (np.array_equal(h, expected[i][0])
                            and np.array_equal(c, expected[i][1])
                            and np.array_equal(seq[:, 0], h)):
                        errors.append(i)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_after_pool_use_steps_in_child():
    """A child forked after the workers started (multiprocessing, dask) makes
    its own pool and does not hang; the parent's pool still works after."""
    code = textwrap.dedent("""
        import os, sys
        import numpy as np
        import cylstm
        from cylstm._kernels.lstm_step import StepKernel, pool_size, set_split_work
        set_split_work(step=1, sequence=1)
        rng = np.random.default_rng(0)
        I = H = 256
        W = rng.uniform(-.1, .1, (I, 4 * H)).astype(np.float32)
        U = rng.uniform(-.1, .1, (H, 4 * H)).astype(np.float32)
        b = np.zeros(4 * H, np.float32)
        x = rng.uniform(-1, 1, (1, I)).astype(np.float32)
        h0 = np.zeros((1, H), np.float32)
        k = StepKernel(W, U, b, None, 1, 2, 1, True)
        with cylstm.threads(1):
            want = k.step(x, h0, h0)[0]
        with cylstm.threads(2):
            got = k.step(x, h0, h0)[0]
            assert pool_size() >= 1
        pid = os.fork()
        if pid == 0:
            ok = True
            with cylstm.threads(2):
                for _ in range(50):
                    ok &= bool(np.array_equal(k.step(x, h0, h0)[0], want))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        with cylstm.threads(2):
            again = k.step(x, h0, h0)[0]
        assert np.array_equal(got, want) and np.array_equal(again, want)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    # The child imports the cylstm under test (an installed wheel's when the
    # tests run from a copy of the sources), not a source tree in the cwd.
    try:
        subprocess.run([sys.executable, "-c", "pass"], timeout=60, check=True)
    except OSError as e:   # an interpreter run under qemu-user cannot start another
        pytest.skip(f"cannot start a child interpreter here: {e}")
    proc = subprocess.run([sys.executable, "-c", code], timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(cylstm.__file__))),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_isa_env_cap_reaches_the_fused_step(monkeypatch):
    """CYLSTM_ISA caps lstm_step's level too (its hook is fused_isa): the
    one-step and few-row kernels measured at the AVX2 level run AVX2."""
    from cylstm import _isa
    from cylstm._kernels import lstm_backward, lstm_forward
    before = fused_isa()
    best = fused_isa(2)   # the CPU's own level (2 caps nothing)
    others = [(m.recurrent_isa, m.recurrent_isa()) for m in (lstm_forward, lstm_backward)
              if hasattr(m, "recurrent_isa")]
    try:
        for name, level in (("avx2", 1), ("none", 0)):
            monkeypatch.setenv(_isa.ENV, name)
            _isa.apply_env_cap()
            assert fused_isa() == min(level, best)
    finally:
        fused_isa(before)
        for hook, level in others:
            hook(level)


def test_avx2_level_caps_the_few_row_sequences(monkeypatch):
    """At the AVX2 level the backend sends sequences of up to
    FUSED_SEQUENCE_AVX2_ROWS rows to fused_sequence and more rows to the
    unfused path, even where FUSED_SEQUENCE_ROWS allows them; both match the
    twin."""
    from cylstm import _ops
    from cylstm.backends import cpu as cpu_backend
    from cylstm._kernels import reference
    best = fused_isa()
    if best < 1:
        pytest.skip("this CPU lacks AVX2 + FMA")
    backend = _ops.cpu()
    limit = backend.FUSED_SEQUENCE_AVX2_ROWS
    monkeypatch.setattr(backend, "FUSED_SEQUENCE_ROWS", limit + 1)
    calls = []
    real = cpu_backend._fused_sequence_kernel
    monkeypatch.setattr(cpu_backend, "_fused_sequence_kernel",
                        lambda *a, **k: calls.append(a[0].shape[0]) or real(*a, **k))
    rng = np.random.default_rng(5)
    fused_isa(1)
    try:
        for B in range(1, limit + 2):
            x = rng.uniform(-1, 1, (B, 6, 5)).astype(np.float32)
            W = rng.uniform(-.5, .5, (5, 4 * 24)).astype(np.float32)
            U = rng.uniform(-.5, .5, (24, 4 * 24)).astype(np.float32)
            b = rng.uniform(-.5, .5, 4 * 24).astype(np.float32)
            h0 = rng.uniform(-.5, .5, (B, 24)).astype(np.float32)
            c0 = rng.uniform(-.5, .5, (B, 24)).astype(np.float32)
            seq, last, h, c, _ = backend._compiled_forward(x, W, U, b, h0, c0)
            rseq, rlast, rh, rc, _ = reference.lstm_forward(
                x.transpose(1, 0, 2), W, U, b, h0, c0)
            np.testing.assert_allclose(seq, np.asarray(rseq).transpose(1, 0, 2),
                                       rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(c, rc, rtol=1e-4, atol=1e-5)
        assert calls == list(range(1, limit + 1))
    finally:
        fused_isa(best)
