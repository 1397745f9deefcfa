"""Turn the rows the workers returned into results.json, results.md, results.png."""
import json
import math
import os

# Columns per section, cylstm first; peers are the frameworks cylstm is
# compared with (NumPy is a baseline, never "the fastest peer").
COLUMNS = {
    "infer": ["cylstm", "cylstm-nn", "torch", "ort", "keras-fn", "keras-eager", "numpy"],
    "train": ["cylstm", "torch", "keras-fn"],
    "stream": ["cylstm", "cylstm-nn", "torch-cell", "torch", "ort", "numpy"],
}
# cylstm's APIs, each judged against the peers: layers.LSTM ("cylstm") and nn.LSTM.
OURS = ["cylstm", "cylstm-nn"]
PEERS = {"infer": ["torch", "ort", "keras-fn", "keras-eager"],
         "train": ["torch", "keras-fn"],
         "stream": ["torch-cell", "torch", "ort"]}
TITLES = {
    "infer": "Inference: full output sequence, median time per call",
    "train": "Training: forward + BPTT (loss = sum of outputs; dW, dU, db), median time per step",
    "stream": "Streaming: one timestep carrying the state, median time per call",
}
LABELS = {"cylstm": "cylstm", "cylstm-nn": "cylstm nn.LSTM", "torch": "torch",
          "torch-cell": "torch LSTMCell",
          "ort": "ORT", "keras-fn": "Keras tf.function", "keras-eager": "Keras eager",
          "numpy": "NumPy"}
MEMORY_SLACK_KIB = 4096  # growth allowed over T=min beyond the output's own growth


def fmt_time(s):
    if s is None or not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale or unit == "us":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def target_ratio(section, shape):
    """cylstm / fastest peer must be <= this (BENCHMARKS.md)."""
    return 1 / 3 if section == "stream" or shape[1] == 1 else 1.0


def cells(rows, section):
    """{(shape, threads): {variant: row}} for one section, in grid order."""
    out = {}
    for r in rows:
        if r["section"] == section:
            out.setdefault((tuple(r["shape"]), r["threads"]), {})[r["variant"]] = r
    return out


def summarize(section, shape, by_variant):
    """Fastest peer, cylstm's ratio to it, and whether the target is met."""
    t = lambda v: by_variant.get(v, {}).get("median_s")
    target_peers = ["torch"] if section == "train" else PEERS[section]
    peers = [(t(v), v) for v in PEERS[section] if t(v) is not None]
    fastest = min(peers) if peers else (None, None)
    bar = [t(v) for v in target_peers if t(v) is not None]
    out = {"fastest_peer": fastest[1], "fastest_s": fastest[0],
           "target": target_ratio(section, shape)}
    for variant, prefix in (("cylstm", ""), ("cylstm-nn", "nn_")):
        cy = t(variant)
        out[prefix + "ratio"] = cy / fastest[0] if cy is not None and fastest[0] else None
        out[prefix + "met"] = (cy <= target_ratio(section, shape) * min(bar)
                               if cy is not None and bar else None)
    return out


def flops(section, shape):
    """Floating-point operations of one call: 2*T*B*(I+H)*4H forward (the
    products; gate math not counted), training about 3x (forward, dh and dW)."""
    B, T, I, H = shape
    forward = 2.0 * T * B * (I + H) * 4 * H
    return 3 * forward if section == "train" else forward


def analyze(results):
    """Add results['summary'] (one entry per timed cell) and each memory row's 'flat'."""
    results["summary"] = [
        {"section": section, "shape": list(shape), "threads": threads,
         **summarize(section, shape, by_variant)}
        for section in ("infer", "train", "stream")
        for (shape, threads), by_variant in cells(results["rows"], section).items()]
    mem = [r for r in results["rows"] if r["section"] == "memory" and "error" not in r]
    for variant in {r["variant"] for r in mem}:
        own = sorted((r for r in mem if r["variant"] == variant), key=lambda r: r["shape"][1])
        for r in own:
            allowed = (r["output_kib"] - own[0]["output_kib"]) + MEMORY_SLACK_KIB
            r["flat"] = r["growth_kib"] - own[0]["growth_kib"] <= allowed


def mark(met):
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def table(rows, section):
    cols = [c for c in COLUMNS[section] if any(r["variant"] == c and r["section"] == section
                                               for r in rows)]
    if not cols:
        return []
    target_what = "<= torch" if section == "train" else "<= fastest (1/3 at T=1)"
    nn = "cylstm-nn" in cols
    lines = [f"### {TITLES[section]}", "",
             "| B,T,I,H | threads | " + " | ".join(LABELS[c] for c in cols)
             + f" | fastest peer | cylstm / fastest | target {target_what} |"
             + (" nn.LSTM / fastest | nn.LSTM target |" if nn else ""),
             "|" + "---|" * (len(cols) + 5 + 2 * nn)]
    for (shape, threads), by_variant in cells(rows, section).items():
        vals = []
        for c in cols:
            r = by_variant.get(c)
            if r is None:
                vals.append("-")
            elif "error" in r:
                vals.append("error")
            else:
                vals.append(fmt_time(r["median_s"]) + (" (!)" if r.get("disagrees") else ""))
        s = summarize(section, shape, by_variant)
        ratio = f"{s['ratio']:.2f}x" if s["ratio"] else "-"
        nn_part = ""
        if nn:
            nn_ratio = f"{s['nn_ratio']:.2f}x" if s["nn_ratio"] else "-"
            nn_part = f" {nn_ratio} | {mark(s['nn_met'])} |"
        lines.append(f"| {','.join(map(str, shape))} | {threads} | " + " | ".join(vals)
                     + f" | {LABELS.get(s['fastest_peer'], '-')} | {ratio} | {mark(s['met'])} |"
                     + nn_part)
    return lines + [""]


def peak_text(p):
    if not p:
        return "not measured"
    if "error" in p:
        return f"unavailable ({p['error']})"
    extra = f", {p['isa']}" if "isa" in p else f", {p['n']}^3" if "n" in p else ""
    return f"{p['gflops']:.1f} GFLOP/s{extra}"


def limit_table(results, section):
    """Each cylstm cell's GFLOP/s and its fraction of the machine's limit."""
    peaks = results["meta"].get("peaks") or {}
    fma = (peaks.get("fma") or {}).get("gflops")
    gemm = (peaks.get("sgemm") or {}).get("gflops")
    rows = [r for r in results["rows"] if r["section"] == section
            and r["variant"] in OURS and r.get("median_s")]
    if not rows:
        return []
    pct = lambda v, p, n: f"{100 * v / (p * n):.0f} %" if p else "-"
    by_cell = cells(results["rows"], section)
    lines = [f"#### {section}: cylstm's GFLOP/s and fraction of the limit", "",
             "The fastest peer's column is the same measure of the same cell: where both "
             "are near the FMA peak, the limit, not the other, bounds the ratio.", "",
             "| B,T,I,H | threads | API | GFLOP/s | of FMA peak x threads "
             "| of sgemm peak x threads | fastest peer | its GFLOP/s | its share of FMA peak x threads |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g = flops(section, r["shape"]) / r["median_s"] / 1e9
        api = "nn.LSTM" if r["variant"] == "cylstm-nn" else "layers.LSTM"
        s = summarize(section, r["shape"], by_cell.get((tuple(r["shape"]), r["threads"]), {}))
        peer = "- | - | -"
        if s["fastest_s"]:
            gp = flops(section, r["shape"]) / s["fastest_s"] / 1e9
            peer = (f"{LABELS.get(s['fastest_peer'], s['fastest_peer'])} | {gp:.1f} "
                    f"| {pct(gp, fma, r['threads'])}")
        lines.append(f"| {','.join(map(str, r['shape']))} | {r['threads']} | {api} | {g:.1f} "
                     f"| {pct(g, fma, r['threads'])} | {pct(g, gemm, r['threads'])} | {peer} |")
    return lines + [""]


def bound_table(results, section):
    """The one-step cells (T = 1) at one thread against the time one core
    takes to read their weights once (peak.weight_stream): at these sizes the
    call is bound by that read, not by the FMAs."""
    bounds = (results["meta"].get("peaks") or {}).get("weight_stream") or {}
    rows = [r for r in results["rows"] if r["section"] == section and r["variant"] in OURS
            and r.get("median_s") and r["shape"][1] == 1 and r["threads"] == 1]
    lines = []
    for r in rows:
        b = bounds.get(f"{r['shape'][2]},{r['shape'][3]}") or {}
        if "seconds" not in b:
            continue
        api = "nn.LSTM" if r["variant"] == "cylstm-nn" else "layers.LSTM"
        lines.append(f"| {','.join(map(str, r['shape']))} | {api} | {b['bytes'] / 1024:.0f} KiB "
                     f"| {fmt_time(b['seconds'])} ({b['gbps']:.0f} GB/s) "
                     f"| {fmt_time(r['median_s'])} | {r['median_s'] / b['seconds']:.2f}x |")
    if not lines:
        return []
    return [f"#### {section}: one-step cells against the weight stream, one thread", "",
            "| B,T,I,H | API | W + U | one read of them, one core (the bound) | cylstm "
            "| cylstm / bound |", "|---|---|---|---|---|---|"] + lines + [""]


def memory_table(rows):
    mem = [r for r in rows if r["section"] == "memory" and "error" not in r]
    if not mem:
        return []
    lines = ["### Memory: peak RSS of one inference call (return_sequences=False), "
             "fresh process per row", "",
             "| framework | B,T,I,H | input | output | RSS before call | peak RSS "
             "| growth during call | flat in T |", "|---|---|---|---|---|---|---|---|"]
    mib = lambda k: f"{k / 1024:.1f} MiB"
    for variant in sorted({r["variant"] for r in mem}, key=lambda v: v != "cylstm"):
        for r in sorted((r for r in mem if r["variant"] == variant), key=lambda r: r["shape"][1]):
            lines.append(f"| {variant} | {','.join(map(str, r['shape']))} | {mib(r['input_kib'])} "
                         f"| {mib(r['output_kib'])} | {mib(r['rss_before_kib'])} "
                         f"| {mib(r['peak_kib'])} | {mib(r['growth_kib'])} | {mark(r['flat'])} |")
    return lines + ["", f"'flat in T': the growth during the call exceeds the smallest T's by "
                        f"at most the output's own growth + {MEMORY_SLACK_KIB // 1024} MiB.", ""]


def header(meta):
    env = meta["env"]
    bad = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if env.get(k) is not None]
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                     f"{b.get('user_api')}, {os.path.basename(b.get('filepath') or '')})"
                     for b in meta.get("blas") or []) or "unknown"
    vers = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    lines = ["# cylstm benchmark results", "",
             f"- run: {meta['started']}, {meta['duration_s']:.0f} s, "
             f"`{meta['command']}`{' (quick)' if meta['quick'] else ''}",
             f"- machine: {meta['cpu']} ({', '.join(meta['cpu_flags']) or 'no AVX2'}), "
             f"{meta['cpu_count']} CPUs, {meta['platform']}; load average (1 min) "
             f"{meta['loadavg_start'][0]:.2f} at start, {meta['loadavg_end'][0]:.2f} at end "
             "(above ~0.5 something else was running: the times are noisy)",
             f"- versions: {vers}",
             f"- BLAS (threadpoolctl, runner process): {blas}",
             f"- the limit, one core: FMA loop {peak_text((meta.get('peaks') or {}).get('fma'))}"
             f"; scipy sgemm, one thread "
             f"{peak_text((meta.get('peaks') or {}).get('sgemm'))}. GFLOP/s of a cell: "
             "2*T*B*(I+H)*4H per forward call (training 3x), as a fraction of the "
             "one-core peak times the thread count",
             f"- threads: {', '.join(map(str, meta['threads']))}; "
             f"protocol: {meta['protocol']}",
             "- environment passed to workers unchanged: "
             + ", ".join(f"{k}={'unset' if v is None else v}" for k, v in env.items())]
    if bad:
        lines.append(f"- **warning: {' and '.join(bad)} set: scipy's sgemm is much slower "
                     "with them; rerun with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` "
                     "for timing.**")
    return lines + [""]


def notes(results):
    lines = []
    for n in results["notes"]:
        lines.append(f"- {n}")
    for r in results["rows"]:
        where = f"{r['variant']} {r['section']} {','.join(map(str, r['shape']))} @{r['threads']}t"
        if "error" in r:
            lines.append(f"- error in {where}: `{r['error'].strip().splitlines()[-1]}`")
        elif r.get("disagrees"):
            lines.append(f"- (!) {where}: output checksum differs from {r['check_ref']}'s "
                         f"by {r['check_err']:.2e} relative (> 1e-3)")
    return (["### Notes", ""] + lines + [""]) if lines else []


def write_markdown(path, results):
    rows = results["rows"]
    lines = header(results["meta"])
    isa = sorted({w["info"]["recurrent_isa"] for w in results.get("workers", [])
                  if isinstance(w.get("info"), dict) and "recurrent_isa" in w["info"]})
    if isa:   # after any --isa / CYLSTM_ISA cap
        lines.insert(-1, f"- cylstm's recurrent kernel ran with: {', '.join(isa)}")
    for section in ("infer", "train", "stream"):
        lines += table(rows, section)
        lines += limit_table(results, section)
        lines += bound_table(results, section)
    lines += memory_table(rows)
    lines += notes(results)
    lines += ["Times are medians of per-call time; 'cylstm / fastest' < 1 means cylstm is "
              "faster than every peer (torch, ONNX Runtime, Keras). NumPy is a baseline, not "
              "a peer. (!) marks a framework whose output checksum disagrees with cylstm's "
              "(or, without cylstm, the reference's) by more than 1e-3 relative.", ""]
    text = "\n".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def write_json(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)


def write_plot(path, results):
    """One panel per section x thread count: grouped bars per shape, log scale."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib not installed: no results.png"
    rows = [r for r in results["rows"] if r.get("median_s")]
    sections = [s for s in ("infer", "train", "stream") if any(r["section"] == s for r in rows)]
    threads = sorted({r["threads"] for r in rows})
    if not sections:
        return "nothing timed: no results.png"
    fig, axes = plt.subplots(len(sections), len(threads), squeeze=False,
                             figsize=(6.5 * len(threads), 3.8 * len(sections)))
    colors = dict(zip(COLUMNS["infer"] + ["torch-cell"], plt.get_cmap("tab10").colors))
    for i, section in enumerate(sections):
        for j, n in enumerate(threads):
            ax = axes[i][j]
            own = [r for r in rows if r["section"] == section and r["threads"] == n]
            shapes = sorted({tuple(r["shape"]) for r in own},
                            key=[tuple(r["shape"]) for r in own].index)
            variants = [v for v in COLUMNS[section] if any(r["variant"] == v for r in own)]
            width = 0.8 / max(len(variants), 1)
            for k, v in enumerate(variants):
                t = {tuple(r["shape"]): r["median_s"] for r in own if r["variant"] == v}
                xs = [x for x, s in enumerate(shapes) if s in t]
                ax.bar([x + (k - (len(variants) - 1) / 2) * width for x in xs],
                       [t[shapes[x]] for x in xs], width, label=LABELS[v], color=colors[v],
                       edgecolor="black" if v == "cylstm" else None)
            ax.set_yscale("log")
            low = min(r["median_s"] for r in own)
            high = max(r["median_s"] for r in own)
            # bars start at a decade; a decade of headroom above keeps the legend clear
            ax.set_ylim(10 ** math.floor(math.log10(low / 2)),
                        10 ** math.ceil(math.log10(high) + 1))
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _: fmt_time(v)))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks(range(len(shapes)))
            ax.set_xticklabels([",".join(map(str, s)) for s in shapes], rotation=20, fontsize=8)
            ax.set_ylabel("time per call")
            ax.set_title(f"{section}, {n} thread{'s' if n > 1 else ''}", fontsize=10)
            ax.grid(axis="y", which="both", alpha=0.3)
            ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.suptitle("cylstm vs peers (B,T,I,H; lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
