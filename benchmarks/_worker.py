"""Benchmark one framework at one thread count, in this process; print JSON.

    python benchmarks/_worker.py --framework torch --threads 2 \
        --infer 1,1,64,64 16,100,64,128 --train 16,100,64,128 --stream 1,1,64,64
    python benchmarks/_worker.py --framework cylstm --memory 1000
    python benchmarks/_worker.py --framework torch --threads 2 --serve

Started by run.py, one process per framework x thread count (and per memory
row), so no framework's thread pools or allocator state leak into another's.
The result is the last line of stdout. With --serve (paired.py) it stays up
and answers requests, one JSON line each on stdin and on stdout:
{"section", "shape", "samples", "min_sample_s", "warmup_s"} -> {"rows": [...]},
one row per variant as run_sections gives; an empty line ends it.
"""
import argparse
import json
import os
import resource
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(REPO)  # an installed cylstm wins; else the in-place build in the repo

import protocol  # noqa: E402
import adapters  # noqa: E402


BLAS = {}  # threadpoolctl's report, taken inside the first measurement's thread context


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keys = ("user_api", "internal_api", "version", "num_threads", "architecture",
            "threading_layer", "filepath")
    return [{k: p.get(k) for k in keys} for p in threadpool_info()]


def make_benches(mod, section, shape):
    """The framework's Bench list for one cell (protocol.make_case's data)."""
    make = {"infer": mod.inference, "train": mod.training, "stream": mod.streaming}[section]
    w, x = protocol.make_case(shape)
    return make(w, x[:, 0, :] if section == "stream" else x)


def time_benches(benches, base, timing, label, checked=True):
    """One row per Bench: its checksum (when ``checked``) and its timing."""
    rows = []
    for b in benches:
        row = {**base, "variant": b.variant}
        t0 = time.perf_counter()
        try:
            with b.ctx():
                if checked:
                    row["checksum"] = protocol.checksum(b.check())
                row.update(protocol.measure(b.fn, **timing))
                BLAS.setdefault("during", blas_info())  # as the framework saw it
        except Exception:
            row["error"] = traceback.format_exc()
        row["wall_s"] = time.perf_counter() - t0
        print(f"  {label} {b.variant}: {row.get('median_s', float('nan')) * 1e3:.4f} ms",
              file=sys.stderr)
        rows.append(row)
    return rows


def run_sections(mod, args, timing):
    rows = []
    for section, shapes in (("infer", args.infer), ("train", args.train),
                            ("stream", args.stream)):
        for text in shapes:
            base = {"section": section, "shape": list(protocol.parse_shape(text))}
            try:
                benches = make_benches(mod, section, protocol.parse_shape(text))
            except Exception:
                rows.append({**base, "variant": args.framework, "error": traceback.format_exc()})
                continue
            rows += time_benches(benches, base, timing,
                                 f"{args.framework}/{args.threads}t {section} {text}")
    return rows


def serve(mod, args, stdin=sys.stdin, stdout=sys.stdout):
    """Answer timing requests until an empty line (see the module's text).
    A cell's Bench list is made once and kept, so later requests time the
    same objects, warm only by the request's own warm-up; its checksums come
    with the first answer."""
    cache = {}
    for line in stdin:
        if not line.strip():
            break
        req = json.loads(line)
        shape = tuple(req["shape"])
        base = {"section": req["section"], "shape": list(shape)}
        timing = {k: req[k] for k in ("samples", "min_sample_s", "warmup_s")}
        key = (req["section"], shape)
        first = key not in cache
        try:
            if first:
                cache[key] = make_benches(mod, req["section"], shape)
            rows = time_benches(cache[key], base, timing,
                                f"{args.framework}/{args.threads}t {req['section']} "
                                f"{protocol.fmt_shape(shape)}", checked=first)
        except Exception:
            rows = [{**base, "variant": args.framework, "error": traceback.format_exc()}]
        stdout.write(json.dumps({"rows": rows}) + "\n")
        stdout.flush()


def run_memory(mod, T):
    B, I, H = protocol.MEMORY_BIH
    w, x = protocol.make_case((B, T, I, H))
    run = mod.memory(w, x)
    with open("/proc/self/statm") as f:
        rss_before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    y = run()
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return [{"section": "memory", "shape": [B, T, I, H], "variant": mod_name(mod),
             "rss_before_kib": rss_before, "peak_before_kib": peak_before,
             "peak_kib": peak_after, "growth_kib": peak_after - rss_before,
             "input_kib": x.nbytes // 1024, "output_kib": y.nbytes // 1024,
             "checksum": protocol.checksum([y])}]


def mod_name(mod):
    return mod.__name__.split(".")[-1].replace("_adapter", "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--framework", required=True, choices=adapters.FRAMEWORKS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--infer", nargs="*", default=[], metavar="B,T,I,H")
    p.add_argument("--train", nargs="*", default=[], metavar="B,T,I,H")
    p.add_argument("--stream", nargs="*", default=[], metavar="B,T,I,H")
    p.add_argument("--memory", type=int, metavar="T", help="one peak-RSS row at this T")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--serve", action="store_true",
                   help="answer timing requests on stdin (paired.py)")
    args = p.parse_args(argv)

    out = {"framework": args.framework, "threads": args.threads, "pid": os.getpid()}
    try:
        mod = adapters.load(args.framework)
        out["info"] = mod.setup(args.threads)
    except Exception as e:
        out["skipped"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()
        print(json.dumps(out))
        return 0
    if args.serve:   # the setup's answer first, then the requests'
        print(json.dumps(out), flush=True)
        serve(mod, args)
        return 0
    if args.memory:
        out["rows"] = run_memory(mod, args.memory)
    else:
        out["rows"] = run_sections(mod, args, protocol.QUICK if args.quick else protocol.FULL)
    out["blas"] = BLAS.get("during") or blas_info()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
