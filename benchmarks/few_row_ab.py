"""A/B of the few-row kernels (lstm_step.fused_sequence and StepKernel.step)
of this build against another build's lstm_step module, and of both against
the backend's other path (FUSED_SEQUENCE_ROWS = 0: the unfused path, or
the fused step of fused_step.h where the backend picks it), at an
instruction-set level capped by LEVEL (1 AVX2, 2 AVX-512). Alternating
calls in one process, medians of CPU time (process_time) and of wall time.
Not part of cylstm.

    cp cylstm/_kernels/lstm_step.*.so /tmp/old/     # the build to compare with
    ... rebuild ...
    LEVEL=1 OLD=/tmp/old BS=2,3,4 TS=100,1 THR=1,2 ROUNDS=15 \
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/few_row_ab.py

The other build's module loads under lstm_step's own name (its PyInit) from
its own file, with its own statics (ISA level, worker pool)."""
import gc, importlib.util, sys, time, os, glob
import numpy as np
import cylstm
from cylstm import _ops
from cylstm._kernels import lstm_step as new
from cylstm.backends import cpu as cpu_backend

level = int(os.environ.get("LEVEL", "1"))
old_dir = os.environ["OLD"]
spec = importlib.util.spec_from_file_location("cylstm._kernels.lstm_step",
                                              glob.glob(old_dir + "/lstm_step*.so")[0])
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
new.fused_isa(level); old.fused_isa(level)
backend = _ops.cpu()
from cylstm._kernels import lstm_forward
lstm_forward.recurrent_isa(level)

def bench(shapes, threads, rounds=15, target=0.004):
    rng = np.random.default_rng(0)
    for (B, T, I, H) in shapes:
        r = lambda *s: rng.uniform(-.3, .3, s).astype(np.float32)
        x, W, U, b, h0, c0 = r(B, T, I), r(I, 4*H), r(H, 4*H), r(4*H), r(B, H), r(B, H)
        with cylstm.threads(threads):
            parts = new.sequence_parts(B, I, H)
            def unfused():
                backend.FUSED_SEQUENCE_ROWS = 0
                backend._compiled_forward(x, W, U, b, h0, c0)
                backend.FUSED_SEQUENCE_ROWS = 2   # restored below in any case
            variants = {
                "new": lambda: new.fused_sequence(x, False, W, U, b, h0, c0, True, parts),
                "old": lambda: old.fused_sequence(x, False, W, U, b, h0, c0, True, parts),
                "unf": unfused,
            }
            if T == 1:
                kn = new.StepKernel(W, U, b, None, 1, 2, B, True)
                ko = old.StepKernel(W, U, b, None, 1, 2, B, True)
                x2 = np.ascontiguousarray(x[:, 0])
                variants["step_new"] = lambda: kn.step(x2, h0, c0)
                variants["step_old"] = lambda: ko.step(x2, h0, c0)
            # check results agree
            a = variants["new"]()[0]; o = variants["old"]()[0]
            assert np.allclose(a, o, atol=1e-4), np.abs(a - o).max()
            reps = {}
            for k, f in variants.items():
                f(); t0 = time.perf_counter(); f(); dt = time.perf_counter() - t0
                reps[k] = max(1, int(target / max(dt, 1e-7)))
            cpu = {k: [] for k in variants}; wall = {k: [] for k in variants}
            gc.disable()
            for rd in range(rounds):
                order = list(variants) if rd % 2 == 0 else list(variants)[::-1]
                for k in order:
                    f, n = variants[k], reps[k]
                    c0_, w0 = time.process_time(), time.perf_counter()
                    for _ in range(n):
                        f()
                    cpu[k].append((time.process_time() - c0_) / n)
                    wall[k].append((time.perf_counter() - w0) / n)
            gc.enable()
            backend.FUSED_SEQUENCE_ROWS = 2
        med = {k: np.median(v) * 1e6 for k, v in cpu.items()}
        medw = {k: np.median(v) * 1e6 for k, v in wall.items()}
        m, w = med, medw
        line = (f"L{level} thr{threads} parts{parts} {B},{T},{I},{H}: cpu us "
                f"new {m['new']:.1f} old {m['old']:.1f} unf {m['unf']:.1f} | "
                f"new/old {m['new'] / m['old']:.2f} new/unf {m['new'] / m['unf']:.2f} "
                f"old/unf {m['old'] / m['unf']:.2f} | wall new/old {w['new'] / w['old']:.2f} "
                f"new/unf {w['new'] / w['unf']:.2f}")
        if T == 1:
            line += (f" | step cpu us new {m['step_new']:.2f} old {m['step_old']:.2f} "
                     f"ratio {m['step_new'] / m['step_old']:.2f}")
        print(line, flush=True)

IH = [(32, 128), (64, 64), (128, 128), (256, 256)]
Bs = [int(v) for v in os.environ.get("BS", "2,3,4").split(",")]
Ts = [int(v) for v in os.environ.get("TS", "100,1").split(",")]
thr = [int(v) for v in os.environ.get("THR", "1,2").split(",")]
for t in thr:
    bench([(B, T, I, H) for T in Ts for B in Bs for (I, H) in IH], t,
          rounds=int(os.environ.get("ROUNDS", "11")))
