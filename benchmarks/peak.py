"""The machine's limit, measured in the same run as the benchmarks.

- ``fma_peak``: one core's float32 FMA peak, from a register-only FMA loop
  (``peak.c``, compiled here with the system C compiler and loaded with
  ctypes): AVX-512 if the CPU has it, else AVX2, capped by ``CYLSTM_ISA``
  (or the ``isa`` argument) as the kernels are;
- ``sgemm_peak``: scipy's sgemm on one thread, a large square product
  (2048^3 by default): what the BLAS cylstm builds on reaches;
- ``weight_stream``: the time one core takes to read a buffer the size of a
  layer's W and U (float32, (I + H) x 4H) that it reads over and over, as a
  one-step call reads its weights: the bound of the one-step cells, where
  reading the weights, not multiplying them, takes the time (``peak.c``'s
  read loop).

Both are timed in CPU time of the calling thread (``time.thread_time``), so
the time other processes hold the core is not counted; a busy SMT sibling
still shares the FMA units, so run on a quiet machine for the true peak.
``python benchmarks/peak.py [--isa avx2]`` prints both. ``run.py`` records
them in the results and prints each cell's GFLOP/s as a fraction of them.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LEVELS = {"none": 0, "avx2": 1, "avx512": 2}
NAMES = {0: "none", 1: "AVX2", 2: "AVX-512"}


def _compile():
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc, clang) on PATH")
    out = os.path.join(tempfile.mkdtemp(prefix="cylstm_peak_"), "peak.so")
    subprocess.run([cc, "-O2", "-shared", "-fPIC", os.path.join(HERE, "peak.c"), "-o", out],
                   check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(out)
    lib.peak_isa.restype = ctypes.c_int
    lib.peak_run.restype = ctypes.c_double
    lib.peak_run.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.POINTER(ctypes.c_float),
                             ctypes.POINTER(ctypes.c_float)]
    lib.peak_read.restype = ctypes.c_double
    lib.peak_read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_long, ctypes.c_long,
                              ctypes.POINTER(ctypes.c_float)]
    return lib


def _cap(isa):
    if isa is None:
        isa = os.environ.get("CYLSTM_ISA", "").strip().lower() or None
    if isa is None:
        return 2
    if isa not in LEVELS:
        raise ValueError(f"isa must be one of {', '.join(LEVELS)}; got {isa!r}")
    return LEVELS[isa]


def fma_peak(isa=None, seconds=0.1, repeats=5):
    """{"gflops", "isa", ...} of the FMA loop on one core (the best of
    ``repeats`` runs of about ``seconds``), or {"error": why}."""
    try:
        lib = _compile()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        return {"error": f"{type(e).__name__}: {e} {detail}".strip()}
    level = min(lib.peak_isa(), _cap(isa))
    if level == 0:
        return {"error": "no AVX2/AVX-512 FMA on this CPU (or capped to none)"}
    sink = ctypes.c_float()
    # Twelve distinct starts, a multiplier just below 1 and a small addend:
    # the chains converge, nothing overflows or turns denormal.
    values = (ctypes.c_float * 14)(*[1.0 + 0.01 * k for k in range(12)], 0.9999999, 1e-7)
    iters = 1000
    while True:   # calibrate: one run of about `seconds`
        t0 = time.thread_time()
        lib.peak_run(level, iters, values, ctypes.byref(sink))
        if time.thread_time() - t0 > seconds / 4:
            break
        iters *= 4
    best = 0.0
    for _ in range(repeats):
        t0 = time.thread_time()
        flops = lib.peak_run(level, iters, values, ctypes.byref(sink))
        best = max(best, flops / (time.thread_time() - t0))
    return {"gflops": best / 1e9, "isa": NAMES[level], "cpu_isa": NAMES[lib.peak_isa()],
            "chains": 12}


def sgemm_peak(n=2048, repeats=3):
    """{"gflops", "n", ...} of scipy's sgemm on one thread (best of
    ``repeats``), or {"error": why}."""
    try:
        import numpy as np
        from scipy.linalg.blas import sgemm
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        return {"error": f"ImportError: {e}"}
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    best = float("inf")
    with threadpool_limits(1, user_api="blas"):
        sgemm(1.0, a, b)
        for _ in range(repeats):
            t0 = time.thread_time()
            sgemm(1.0, a, b)
            best = min(best, time.thread_time() - t0)
    return {"gflops": 2.0 * n ** 3 / best / 1e9, "n": n}


def weight_stream(inputs, units, isa=None, seconds=0.05, repeats=5):
    """{"bytes", "seconds", "gbps", ...}: one core's time for one read of the
    float32 W and U of a layer with ``inputs`` and ``units`` (the best of
    ``repeats`` runs of about ``seconds`` of back-to-back reads, so the buffer
    sits where repeated calls keep it), or {"error": why}."""
    try:
        import numpy as np
        lib = _compile()
    except (ImportError, RuntimeError, OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        return {"error": f"{type(e).__name__}: {e} {detail}".strip()}
    level = min(lib.peak_isa(), _cap(isa))
    if level == 0:
        return {"error": "no AVX2/AVX-512 on this CPU (or capped to none)"}
    n = (inputs + units) * 4 * units
    raw = np.ones(n + 16, np.float32)            # 64-byte aligned, as cylstm's weights
    start = (-raw.ctypes.data % 64) // 4
    buf = raw[start:start + n]
    sink = ctypes.c_float()
    reps = 1
    while True:   # calibrate
        t0 = time.thread_time()
        lib.peak_read(level, buf.ctypes.data, n, reps, ctypes.byref(sink))
        if time.thread_time() - t0 > seconds / 4:
            break
        reps *= 4
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        done = lib.peak_read(level, buf.ctypes.data, n, reps, ctypes.byref(sink))
        best = min(best, (time.thread_time() - t0) / reps)
    return {"bytes": done / reps, "seconds": best, "gbps": done / reps / best / 1e9,
            "isa": NAMES[level], "inputs": inputs, "units": units}


def measure(isa=None):
    return {"fma": fma_peak(isa), "sgemm": sgemm_peak(),
            "weight_stream_256": weight_stream(256, 256, isa)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isa", choices=list(LEVELS), help="cap the FMA loop's instruction set")
    args = p.parse_args(argv)
    print(json.dumps(measure(args.isa), indent=1))


if __name__ == "__main__":
    sys.exit(main())
