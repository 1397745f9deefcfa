"""Run the cylstm benchmark suite: cylstm vs PyTorch, Keras 3, ONNX Runtime, NumPy.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick]
        [--threads 1 2] [--frameworks cylstm torch ort keras numpy]
        [--sections infer train stream memory] [--out benchmarks/results]
        [--isa avx512|avx2|none]

Each framework x thread count runs in its own subprocess (_worker.py), and each
memory row in a fresh one; the environment is passed to them unchanged and
recorded.  Before the workers, the runner measures the machine's limit
(peak.py: one core's FMA peak and scipy's one-thread sgemm), so the report
gives each cylstm cell's GFLOP/s as a fraction of both.  Writes results.md,
results.json and results.png into --out.
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.append(os.path.dirname(HERE))  # as in _worker.py: an in-place build of cylstm

import adapters  # noqa: E402
import peak  # noqa: E402
import protocol  # noqa: E402
import report  # noqa: E402

SECTIONS = ["infer", "train", "stream", "memory"]
ENV_KEYS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KERAS_BACKEND", "PYTHONPATH", "CYLSTM_ISA"]
PACKAGES = ["cylstm", "numpy", "scipy", "threadpoolctl", "torch", "tensorflow",
            "tensorflow-cpu", "keras", "onnx", "onnxruntime", "matplotlib"]
MEMORY_FRAMEWORKS = ["cylstm", "numpy"]


def version(pkg):
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu():
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(l.split(":", 1)[1].strip() for l in info.splitlines()
                     if l.startswith("model name"))
        words = set(next(l for l in info.splitlines() if l.startswith("flags")).split())
        flags = [f for f in ("avx2", "fma", "avx512f") if f in words]
    except (OSError, StopIteration):
        pass
    return model, flags


def collect_meta(args, argv):
    import numpy  # noqa: F401  (load the BLAS threadpoolctl should see)
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
        blas = [{k: p.get(k) for k in ("user_api", "internal_api", "version",
                                       "architecture", "num_threads", "filepath")}
                for p in threadpool_info()]
    except ImportError:
        blas = None
    model, flags = cpu()
    return {"started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/run.py"] + argv),
            "quick": args.quick, "threads": args.threads, "python": sys.version.split()[0],
            "executable": sys.executable, "platform": platform.platform(), "cpu": model,
            "cpu_flags": flags, "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "versions": {p: version(p) for p in PACKAGES},
            "env": {k: os.environ.get(k) for k in ENV_KEYS}, "blas": blas,
            "loadavg_start": os.getloadavg(),
            "protocol": ("{samples} samples of >= {min_sample_s:g} s after {warmup_s:g} s "
                         "warm-up, median").format(**(protocol.QUICK if args.quick
                                                      else protocol.FULL))}


def run_worker(cmd, timeout):
    """Run one worker; return (its JSON or None, error text)."""
    try:
        proc = subprocess.run([sys.executable, os.path.join(HERE, "_worker.py")] + cmd,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line), None
    return None, f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"


def plan(args):
    quick = args.quick
    return {"infer": protocol.QUICK_INFER if quick else protocol.INFER,
            "train": protocol.QUICK_TRAIN if quick else protocol.TRAIN,
            "stream": protocol.QUICK_STREAM if quick else protocol.STREAM}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a couple of small shapes, few samples (about a minute)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--frameworks", nargs="+", choices=adapters.FRAMEWORKS,
                   help="default: all; ones not installed are skipped")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--isa", choices=list(peak.LEVELS),
                   help="cap cylstm's kernels (CYLSTM_ISA, passed to the workers) and the "
                        "FMA peak loop at this instruction set: an AVX2-only CPU, emulated")
    args = p.parse_args(argv)
    if args.isa:
        os.environ["CYLSTM_ISA"] = args.isa   # the workers inherit it
    frameworks = args.frameworks or adapters.FRAMEWORKS
    timeout = 600 if args.quick else 3600
    os.makedirs(args.out, exist_ok=True)

    t_start = time.perf_counter()
    meta = collect_meta(args, argv)
    if any(meta["env"][k] is not None for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")):
        print("warning: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE set; timings of scipy's BLAS "
              "suffer (see benchmarks/README.md)", file=sys.stderr)
    shapes = plan(args)
    print("machine limit (FMA loop, sgemm) ...", file=sys.stderr, flush=True)
    meta["peaks"] = {"fma": peak.fma_peak(args.isa),
                     "sgemm": peak.sgemm_peak(1024 if args.quick else 2048)}
    # One-step cells read all of W and U per call: their bound is that read.
    one_step = sorted({(s[2], s[3]) for section in ("infer", "stream")
                       if section in args.sections for s in shapes[section] if s[1] == 1})
    meta["peaks"]["weight_stream"] = {f"{i},{h}": peak.weight_stream(i, h, args.isa)
                                      for i, h in one_step}
    results = {"meta": meta, "rows": [], "notes": [], "workers": []}
    failed = []

    def record(out, err, what, framework):
        if out is None:
            results["notes"].append(f"{what} failed: {err.splitlines()[-1] if err else ''}")
            print(f"  FAILED: {err}", file=sys.stderr)
            failed.append(framework)
            return
        if "skipped" in out:
            results["notes"].append(f"{what} skipped: {out['skipped']}")
            print(f"  skipped: {out['skipped']}", file=sys.stderr)
            failed.append(framework)
            return
        results["workers"].append({k: out.get(k) for k in ("framework", "threads", "info",
                                                           "blas")})
        for row in out["rows"]:
            results["rows"].append({"framework": framework, "threads": out["threads"], **row})
            if "error" in row:
                failed.append(framework)

    for fw in frameworks:
        missing = adapters.missing(fw)
        if missing:
            note = f"{fw} skipped: not installed ({', '.join(missing)})"
            print(note, file=sys.stderr)
            results["notes"].append(note)
            if args.frameworks:
                failed.append(fw)
            continue
        cmd = ["--framework", fw] + (["--quick"] if args.quick else [])
        for section in ("infer", "train", "stream"):
            if section in args.sections:
                cmd += [f"--{section}"] + [protocol.fmt_shape(s) for s in shapes[section]]
        if len(cmd) > 3:
            for n in args.threads:
                t0 = time.perf_counter()
                print(f"{fw}, {n} thread(s) ...", file=sys.stderr, flush=True)
                out, err = run_worker(cmd + ["--threads", str(n)], timeout)
                record(out, err, f"{fw} at {n} thread(s)", fw)
                print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if "memory" in args.sections and fw in MEMORY_FRAMEWORKS:
            for T in protocol.MEMORY_T:
                print(f"{fw}, memory at T={T} ...", file=sys.stderr, flush=True)
                out, err = run_worker(["--framework", fw, "--threads", "1",
                                       "--memory", str(T)], timeout)
                record(out, err, f"{fw} memory at T={T}", fw)

    flag_disagreements(results["rows"])
    meta["duration_s"] = time.perf_counter() - t_start
    meta["loadavg_end"] = os.getloadavg()
    report.analyze(results)
    text = report.write_markdown(os.path.join(args.out, "results.md"), results)
    report.write_json(os.path.join(args.out, "results.json"), results)
    plot_note = report.write_plot(os.path.join(args.out, "results.png"), results)
    print(text)
    if plot_note:
        print(plot_note, file=sys.stderr)
    print(f"wrote {args.out}/results.{{md,json{'' if plot_note else ',png'}}} in "
          f"{meta['duration_s']:.0f} s", file=sys.stderr)
    # Fail on a crash, a disagreement, or a framework asked for by name that did not run.
    bad = {fw for fw in failed if args.frameworks or fw == "cylstm"}
    bad |= {r["framework"] for r in results["rows"] if r.get("disagrees")}
    if bad:
        print(f"problems with: {', '.join(sorted(bad))}", file=sys.stderr)
    return 1 if bad else 0


def flag_disagreements(rows, tol=1e-3):
    """Compare every checksum with cylstm's for the same cell (else a reference's)."""
    fallback = {"infer": "numpy", "stream": "numpy", "train": "torch", "memory": "numpy"}
    groups = {}
    for r in rows:
        if "checksum" in r:
            groups.setdefault((r["section"], tuple(r["shape"]), r["threads"]), []).append(r)
    for (section, _, _), group in groups.items():
        by = {r["variant"]: r for r in group}
        ref = by.get("cylstm") or by.get(fallback[section])
        if ref is None:
            continue
        for r in group:
            if r is not ref:
                r["check_ref"] = ref["variant"]
                r["check_err"] = protocol.checksum_error(r["checksum"], ref["checksum"])
                r["disagrees"] = r["check_err"] > tol


if __name__ == "__main__":
    sys.exit(main())
