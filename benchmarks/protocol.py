"""The benchmark grid, the shared data, the timing protocol and the checksums.

Everything here is imported by both the runner and the workers, so it needs
only NumPy.  See /BENCHMARKS.md (shared) for why the grid and protocol are what
they are.
"""
import gc
import math
import time

import numpy as np

# (B, T, I, H): batch, timesteps, input features, hidden units.
INFER = [(1, 1, 64, 64), (1, 1, 256, 256), (1, 100, 32, 128), (16, 100, 64, 128),
         (64, 100, 128, 256), (256, 50, 256, 512), (32, 300, 15, 10), (128, 300, 15, 10)]
TRAIN = [(16, 100, 64, 128), (64, 100, 128, 256), (128, 300, 15, 10)]
STREAM = [(1, 1, 64, 64), (1, 1, 256, 256)]
MEMORY_T = [100, 1000, 10000]  # at B=16, I=64, H=128, return_sequences=False
MEMORY_BIH = (16, 64, 128)

QUICK_INFER = [(1, 1, 64, 64), (16, 100, 64, 128)]
QUICK_TRAIN = [(16, 100, 64, 128)]
QUICK_STREAM = [(1, 1, 64, 64)]

# Sampling: warm up for WARMUP_S, then SAMPLES samples, each running the call
# in an inner loop long enough to last MIN_SAMPLE_S.
FULL = dict(samples=20, min_sample_s=0.005, warmup_s=0.3)
QUICK = dict(samples=5, min_sample_s=0.002, warmup_s=0.05)

SEED = 20240611


def parse_shape(text):
    shape = tuple(int(v) for v in text.split(","))
    if len(shape) != 4:
        raise ValueError(f"shape must be B,T,I,H, got {text!r}")
    return shape


def fmt_shape(shape):
    return ",".join(str(v) for v in shape)


def make_case(shape, seed=SEED):
    """Weights (Keras layout, gates i,f,c,o) and a batch-first float32 input.

    Deterministic in (seed, shape), so every worker builds the same numbers.
    Drawn directly in float32 (no float64 temporaries: the memory rows read
    the RSS high-water mark).
    """
    B, T, I, H = shape
    rng = np.random.default_rng([seed, B, T, I, H])
    s = np.float32(1.0 / math.sqrt(H))

    def uniform(*size):
        a = rng.random(size, dtype=np.float32)
        a *= 2 * s
        a -= s
        return a

    w = {"kernel": uniform(I, 4 * H), "recurrent_kernel": uniform(H, 4 * H),
         "bias": uniform(4 * H)}
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    return w, x


def measure(fn, samples, min_sample_s, warmup_s):
    """Median seconds per call of fn(), after a warm-up.

    Each sample times `inner` back-to-back calls, with `inner` chosen so a
    sample lasts at least min_sample_s; GC is off while sampling.
    """
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < warmup_s:
        fn()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    inner = max(1, math.ceil(min_sample_s / max(per_call, 1e-9)))
    times = []
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(samples):
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t) / inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"median_s": float(np.median(times)), "min_s": float(min(times)),
            "max_s": float(max(times)), "samples": samples, "inner": inner}


def checksum(arrays):
    """Order-sensitive summary of each array: sum, sum of |.|, sin-weighted sum."""
    out = []
    for a in arrays:
        v = np.asarray(a, dtype=np.float64).ravel()
        out.append({"shape": list(np.shape(a)), "sum": float(v.sum()),
                    "abs": float(np.abs(v).sum()),
                    "wsum": float(v @ np.sin(np.arange(v.size)))})
    return out


def checksum_error(a, ref):
    """Largest relative difference between two checksums (inf if shapes differ)."""
    if len(a) != len(ref):
        return math.inf
    err = 0.0
    for x, r in zip(a, ref):
        if x["shape"] != r["shape"]:
            return math.inf
        scale = max(r["abs"], 1e-30)
        for k in ("sum", "abs", "wsum"):
            err = max(err, abs(x[k] - r[k]) / scale)
    return err
