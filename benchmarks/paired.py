"""Time cylstm and its peers in alternation, cell by cell, and judge each cell
on ratios taken within one round.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/paired.py
        [--cells infer:1,100,32,128 train:16,100,64,128 ...] [--threads 1 2]
        [--frameworks cylstm torch ort keras] [--rounds 8] [--out DIR] [--quick]

Why: run.py times one framework after another, each in its own worker, so a
cell's cylstm time and its peers' are minutes apart; on a shared machine a
load that comes and goes lands on one side only, and cells near their target
swing across it from run to run. Here one worker per framework (a process of
its own, as in run.py: `_worker.py --serve`) stays up for the whole thread
count, and each cell is timed in rounds: in a round every framework in turn
takes one short measurement (a warm-up, then a few samples, median), the
order reversed every other round, with a pause between frameworks so the last
one's spinning threads go to sleep. cylstm and its peers are then measured
seconds apart, and the ratio is taken round by round. A first round, not
counted, warms each cell up (tf.function traces, call plans) and gives the
checksums, which are compared as run.py compares them.

A cell's verdict is the median over the rounds of cylstm / the target's peer
in that round (the fastest peer; torch for training, as report.summarize
judges), against report.target_ratio; the report also gives the spread of
the per-round ratios and in how many rounds the target held. Writes
paired.md and paired.json (every round's times) into --out.
"""
import argparse
import datetime
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import adapters  # noqa: E402
import protocol  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402

# Keras eager is by far the slowest peer at every cell (it is never the one
# cylstm is judged against), and at the large cells it would take most of the
# run: left out unless asked for (--skip none).
DEFAULT_SKIP = ["keras-eager"]
DEFAULT_FRAMEWORKS = ["cylstm", "torch", "ort", "keras"]
# One measurement: a warm-up (the cell's caches after another framework's
# turn), then a few samples of at least min_sample_s each.
TIMING = dict(samples=5, min_sample_s=0.005, warmup_s=0.1)
FIRST = dict(samples=3, min_sample_s=0.005, warmup_s=0.3)
QUICK_TIMING = dict(samples=3, min_sample_s=0.002, warmup_s=0.02)


def grid(quick):
    """Every cell of run.py's grid, as (section, shape)."""
    plan = {"infer": protocol.QUICK_INFER if quick else protocol.INFER,
            "train": protocol.QUICK_TRAIN if quick else protocol.TRAIN,
            "stream": protocol.QUICK_STREAM if quick else protocol.STREAM}
    return [(section, tuple(s)) for section in ("infer", "train", "stream")
            for s in plan[section]]


def parse_cell(text):
    """'infer:1,100,32,128' -> ('infer', (1, 100, 32, 128))."""
    section, _, shape = text.partition(":")
    if section not in ("infer", "train", "stream") or not shape:
        raise argparse.ArgumentTypeError(
            f"a cell is section:B,T,I,H with section infer, train or stream; got {text!r}")
    return section, protocol.parse_shape(shape)


class Worker:
    """One framework's `_worker.py --serve` process at one thread count."""

    def __init__(self, framework, threads, log_dir, timeout):
        self.framework, self.threads, self.timeout = framework, threads, timeout
        self.log_path = os.path.join(log_dir, f"{framework}-{threads}t.log")
        self._log = open(self.log_path, "w")
        # stderr to a file: a framework's chatter must not fill a pipe and stall it
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "_worker.py"), "--framework", framework,
             "--threads", str(threads), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.info = self._answer()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._lines.put(line)
        self._lines.put(None)   # the process ended

    def _answer(self):
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.framework}: no answer in {self.timeout} s "
                               f"(see {self.log_path})") from None
        if line is None:
            raise RuntimeError(f"{self.framework}: the worker exited "
                               f"(code {self.proc.wait()}; see {self.log_path})")
        return json.loads(line)

    def time(self, section, shape, timing, skip):
        """One measurement of every variant of the cell: {variant: row}."""
        req = {"section": section, "shape": list(shape), **timing}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        rows = self._answer()["rows"]
        return {r["variant"]: r for r in rows if r["variant"] not in skip}

    def close(self):
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self._log.close()


def summarize(section, shape, rounds):
    """The verdict for one cell from its rounds ([{variant: seconds}], one dict
    a round): per API of ours, the median, min and max over the rounds of
    ours / the fastest peer of that round, the median of ours / the target's
    peer (torch in training, else the fastest), and in how many rounds the
    target held. A round without a peer or without ours counts for nothing."""
    target = report.target_ratio(section, shape)
    peers = report.PEERS[section]
    target_peers = ["torch"] if section == "train" else peers
    out = {"section": section, "shape": list(shape), "target": target,
           "rounds": len(rounds)}
    fastest = [min(((t, v) for v, t in r.items() if v in peers), default=(None, None))
               for r in rounds]
    out["fastest_peers"] = sorted({v for _, v in fastest if v})
    for ours in report.OURS:
        ratio, to_bar = [], []
        for r, (best, _) in zip(rounds, fastest):
            bar = [r[v] for v in target_peers if v in r]
            if ours not in r or best is None:
                continue
            ratio.append(r[ours] / best)
            if bar:
                to_bar.append(r[ours] / min(bar))
        own = [r[ours] for r in rounds if ours in r]
        if not own:
            continue
        out[ours] = {
            "median_s": statistics.median(own), "rounds": len(ratio),
            "ratio_median": statistics.median(ratio) if ratio else None,
            "ratio_min": min(ratio, default=None), "ratio_max": max(ratio, default=None),
            "met_rounds": sum(q <= target for q in to_bar),
            "met": statistics.median(to_bar) <= target if to_bar else None}
    return out


def run_cells(workers, cells, rounds, timing, skip, gap, log=print):
    """Every cell's rounds at one thread count: [{"section", "shape",
    "first": {framework: {variant: row}}, "rounds": [{variant: seconds}]}]."""
    out = []
    for section, shape in cells:
        label = f"{section} {protocol.fmt_shape(shape)}"
        first, times = {}, []
        for w in workers:   # the uncounted round: warm-up and checksums
            first[w.framework] = w.time(section, shape, FIRST if timing is TIMING else timing,
                                        skip)
            time.sleep(gap)
        for i in range(rounds):
            order = workers if i % 2 == 0 else workers[::-1]
            got = {}
            for w in order:
                for variant, row in w.time(section, shape, timing, skip).items():
                    if "median_s" in row:
                        got[variant] = row["median_s"]
                time.sleep(gap)
            times.append(got)
        s = summarize(section, shape, times)
        log(f"  {label}: " + ", ".join(f"{v} {ratio_text(s[v])}" for v in report.OURS if v in s))
        out.append({"section": section, "shape": list(shape), "first": first,
                    "rounds": times})
    return out


def ratio_text(o):
    """'0.93x [0.88-1.01]', or '-' without a peer."""
    if o["ratio_median"] is None:
        return "-"
    return f"{o['ratio_median']:.2f}x [{o['ratio_min']:.2f}-{o['ratio_max']:.2f}]"


def write_markdown(path, results):
    meta = results["meta"]
    lines = ["# cylstm paired benchmark", "",
             f"- started {meta['started']}, {meta['duration_s']:.0f} s; CPU: {meta['cpu']} "
             f"({meta['cpu_count']} CPUs); load average at start "
             f"{', '.join(f'{v:.2f}' for v in meta['loadavg_start'])}, at end "
             f"{', '.join(f'{v:.2f}' for v in meta['loadavg_end'])}",
             f"- command: `{meta['command']}`",
             f"- protocol: each round, every framework in turn (order reversed every other "
             f"round, {meta['gap_s']:g} s apart) takes {meta['timing']['samples']} samples of "
             f">= {meta['timing']['min_sample_s']:g} s after a {meta['timing']['warmup_s']:g} s "
             f"warm-up; {meta['rounds']} rounds after an uncounted first one; left out: "
             f"{', '.join(meta['skip']) or 'nothing'}",
             "- ratio: cylstm / the fastest peer of the same round; the median, min and max "
             "over the rounds. met: the median over the rounds of cylstm / the target's peer "
             "(training: torch) <= target; rounds met: in how many rounds it held.", ""]
    env = {k: v for k, v in meta["env"].items() if v is not None}
    if env:
        lines.insert(4, "- environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    lines += ["| section | B,T,I,H | threads | API | cylstm (median) | fastest peers "
              "| ratio median [min-max] | rounds met | target | met |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in results["summary"]:
        for ours in report.OURS:
            if ours not in s:
                continue
            o = s[ours]
            api = "nn.LSTM" if ours == "cylstm-nn" else "layers.LSTM"
            lines.append(
                f"| {s['section']} | {protocol.fmt_shape(s['shape'])} | {s['threads']} | {api} "
                f"| {report.fmt_time(o['median_s'])} "
                f"| {', '.join(report.LABELS.get(v, v) for v in s['fastest_peers']) or '-'} "
                f"| {ratio_text(o)} | {o['met_rounds']}/{o['rounds']} | {s['target']:.2f} "
                f"| {report.mark(o['met'])} |")
    lines += [""] + [f"- {n}" for n in results["notes"]]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", nargs="+", type=parse_cell, metavar="SECTION:B,T,I,H",
                   help="default: run.py's whole grid")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--frameworks", nargs="+", choices=adapters.FRAMEWORKS,
                   default=DEFAULT_FRAMEWORKS)
    p.add_argument("--rounds", type=int, help="counted rounds a cell (default 8; --quick 2)")
    p.add_argument("--gap", type=float, default=0.1,
                   help="seconds between two frameworks' turns (default 0.1)")
    p.add_argument("--skip", nargs="+", default=DEFAULT_SKIP, metavar="VARIANT",
                   help="variants left out (default keras-eager; 'none' for none)")
    p.add_argument("--quick", action="store_true", help="small cells, 2 rounds, few samples")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else 2 if args.quick else 8
    if rounds < 1:
        p.error(f"--rounds must be at least 1, got {rounds}")
    skip = [] if args.skip == ["none"] else args.skip
    cells = args.cells or grid(args.quick)
    timing = QUICK_TIMING if args.quick else TIMING
    os.makedirs(args.out, exist_ok=True)

    t_start = time.perf_counter()
    model, _ = run.cpu()
    meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/paired.py"] + argv),
            "cpu": model, "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg(),
            "threads": args.threads, "rounds": rounds, "gap_s": args.gap, "skip": skip,
            "timing": timing, "env": {k: os.environ.get(k) for k in run.ENV_KEYS},
            "versions": {p: run.version(p) for p in run.PACKAGES}}
    results = {"meta": meta, "cells": [], "summary": [], "notes": [], "workers": []}
    failed = False
    for n in args.threads:
        workers = []
        try:
            for fw in args.frameworks:
                missing = adapters.missing(fw)
                if missing:
                    results["notes"].append(f"{fw} skipped: not installed ({', '.join(missing)})")
                    failed |= fw == "cylstm"
                    continue
                print(f"{fw}, {n} thread(s): starting", file=sys.stderr, flush=True)
                w = Worker(fw, n, args.out, timeout=3600)
                if "skipped" in w.info:
                    results["notes"].append(f"{fw} at {n} thread(s) skipped: "
                                            f"{w.info['skipped']}")
                    failed |= fw == "cylstm"
                    w.close()
                    continue
                results["workers"].append({k: w.info.get(k) for k in ("framework", "threads",
                                                                        "info")})
                workers.append(w)
            print(f"{n} thread(s): {len(cells)} cells x {rounds} rounds", file=sys.stderr,
                  flush=True)
            done = run_cells(workers, cells, rounds, timing, skip, args.gap,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
        finally:
            for w in workers:
                w.close()
        for cell in done:
            cell["threads"] = n
            results["cells"].append(cell)
            results["summary"].append({**summarize(cell["section"], cell["shape"],
                                                   cell["rounds"]), "threads": n})
            rows = [{**row, "threads": n} for variants in cell["first"].values()
                    for row in variants.values()]
            for row in rows:
                if "error" in row:
                    results["notes"].append(f"{row['variant']} {cell['section']} "
                                            f"{protocol.fmt_shape(cell['shape'])} at {n} "
                                            f"thread(s) failed: {row['error'].splitlines()[-1]}")
                    failed |= row["variant"] in report.OURS
            run.flag_disagreements(rows)
            for row in rows:
                if row.get("disagrees"):
                    results["notes"].append(f"{row['variant']} disagrees with "
                                            f"{row['check_ref']} at {cell['section']} "
                                            f"{protocol.fmt_shape(cell['shape'])}, {n} "
                                            f"thread(s): {row['check_err']:.2e}")
                    failed = True
    meta["duration_s"] = time.perf_counter() - t_start
    meta["loadavg_end"] = os.getloadavg()
    text = write_markdown(os.path.join(args.out, "paired.md"), results)
    with open(os.path.join(args.out, "paired.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(text)
    print(f"wrote {args.out}/paired.{{md,json}} in {meta['duration_s']:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
