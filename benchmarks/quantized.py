"""Quantized serving: cylstm float32 / bfloat16 / int8 beside torch's
``quantize_dynamic`` (int8 nn.LSTM) and ONNX Runtime's ``DynamicQuantizeLSTM``
(ORT's own ``quantize_dynamic`` on cylstm's ONNX export), same weights, same
inputs, in one run, 1 and 2 threads. The engines of a shape and thread
count are called in turn (one call each per round) and the median taken:
with 1 thread of the calling thread's CPU time, with 2 of wall time.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/quantized.py

Shapes are B,T,I,H (batch, timesteps, inputs, units), batch-first input, full
output sequence. Prints a markdown table of median microseconds per call and
the accuracy of each engine's output against cylstm float32 (max abs error).
Two float32 columns: ``nn.LSTM`` and ``layers.LSTM`` (the latter has a
one-step fast path); the int8 ratio is against the faster of the two.
torch and onnxruntime are optional: a missing one is reported, not timed.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cylstm  # noqa: E402

SHAPES = [(1, 1, 256, 256), (1, 1, 512, 512), (1, 1, 1024, 1024), (8, 1, 512, 512),
          (1, 100, 256, 256)]
# The BENCHMARKS.md grid (``--grid``): nn.LSTM float32 against its quantized copies.
GRID = [(1, 1, 64, 64), (1, 100, 32, 128), (16, 100, 64, 128), (64, 100, 128, 256),
        (256, 50, 256, 512), (32, 300, 15, 10), (128, 300, 15, 10)]


def make_torch(module):
    try:
        import torch
    except ImportError:
        return None, None
    import warnings
    holder = torch.nn.Module()   # quantize_dynamic swaps children, never the root
    holder.lstm = module.to_torch().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        q = torch.ao.quantization.quantize_dynamic(holder, {torch.nn.LSTM}, dtype=torch.qint8)
    if type(q.lstm).__module__.startswith("torch.nn.modules"):
        raise RuntimeError("torch's quantize_dynamic left the LSTM in float32")
    return torch, q.lstm


def make_ort(module, folder):
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    fp = os.path.join(folder, "float.onnx")
    qp = os.path.join(folder, "int8.onnx")
    cylstm.to_onnx(module, fp)
    import logging
    logging.getLogger().setLevel(logging.ERROR)   # ORT's "consider pre-processing" note
    quantize_dynamic(fp, qp, weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM"])
    import onnx
    ops = {n.op_type for n in onnx.load(qp).graph.node}
    if "DynamicQuantizeLSTM" not in ops:
        raise RuntimeError(f"ORT's quantize_dynamic did not make a DynamicQuantizeLSTM: {ops}")
    return ort, qp


STATE_ERRORS = []


def _triple(result):
    out, (h, c) = result
    return [np.asarray(out), np.asarray(h), np.asarray(c)]


def run(shapes, threads, seed=0):
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for B, T, I, H in shapes:
            module = cylstm.nn.LSTM(I, H, batch_first=True, seed=seed)
            x = np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)
            slot = module._slots[0][0]
            layer = cylstm.layers.LSTM(H, return_sequences=True)   # its one-step fast path
            layer.build((None, None, I))
            layer.set_weights([slot.kernel, slot.recurrent, slot.bias()])
            q8 = cylstm.quantize(module, "int8")
            q16 = cylstm.quantize(module, "bfloat16")
            ref, (ref_h, ref_c) = module(x)
            torch, tq = make_torch(module)
            ortmod, onnx_path = None, None
            made = make_ort(module, folder)
            if made is not None:
                ortmod, onnx_path = made
            # Output and final states of each int8 / bf16 engine against float32.
            finals = {"cylstm bf16": lambda: _triple(q16(x)), "cylstm int8": lambda: _triple(q8(x))}
            if torch is not None:
                def torch_states():
                    with torch.inference_mode():
                        return _triple(tq(torch.from_numpy(x)))
                finals["torch int8"] = torch_states
            if ortmod is not None:
                sess1 = ortmod.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
                finals["ORT int8"] = lambda: sess1.run(None, {sess1.get_inputs()[0].name: x})
            for label, fn in finals.items():
                got = fn()
                errors = {}
                for what, want, have in zip(("y", "h", "c"), (ref, ref_h, ref_c), got):
                    d = np.abs(np.asarray(have, np.float32).reshape(want.shape) - want).max()
                    errors[what] = (float(d), float(d / np.abs(want).max()))
                STATE_ERRORS.append((f"{B},{T},{I},{H}", label, errors))
            for n in threads:
                cylstm.set_num_threads(n)
                engines = {"cylstm f32": lambda: module(x)[0],
                           "cylstm f32 layers": lambda: layer(x),
                           "cylstm bf16": lambda: q16(x)[0],
                           "cylstm int8": lambda: q8(x)[0]}
                if torch is not None:
                    torch.set_num_threads(n)
                    xt = torch.from_numpy(x)

                    def torch_call():
                        with torch.inference_mode():
                            return tq(xt)[0].numpy()
                    engines["torch int8"] = torch_call
                if ortmod is not None:
                    so = ortmod.SessionOptions()
                    so.intra_op_num_threads = n
                    so.inter_op_num_threads = 1
                    sess = ortmod.InferenceSession(onnx_path, so,
                                                   providers=["CPUExecutionProvider"])
                    name = sess.get_inputs()[0].name
                    engines["ORT int8"] = lambda: sess.run(None, {name: x})[0]
                errs = {label: float(np.abs(np.asarray(fn()).reshape(ref.shape) - ref).max())
                        for label, fn in engines.items()}
                for label, us in alternating_us(engines, cpu_time=n == 1).items():
                    rows.append({"shape": f"{B},{T},{I},{H}", "threads": n, "engine": label,
                                 "us": us, "err": errs[label]})
    return rows


def alternating_us(engines, cpu_time, budget_s=2.0, min_rounds=7, max_rounds=3000):
    """Median microseconds per call of each engine, the engines called in
    turn (one call each per round) so that a change in the machine's load
    falls on all of them alike; the order rotates every round, so that no
    engine always follows the same one (an engine's threads spin for a while
    after its call and can take the cores from the next one's workers).
    cpu_time: the calling thread's CPU time (one thread: what the call itself
    cost, whatever else the machine runs); otherwise wall time."""
    clock = time.thread_time if cpu_time else time.perf_counter
    for fn in engines.values():
        fn()
        fn()
    times = {label: [] for label in engines}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds
                                   or time.perf_counter() - start < budget_s):
        order = list(engines.items())
        k = rounds % len(order)
        for label, fn in order[k:] + order[:k]:
            t0 = clock()
            fn()
            times[label].append(clock() - t0)
        rounds += 1
    return {label: 1e6 * float(np.median(v)) for label, v in times.items()}


def table(rows):
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    keys = list(dict.fromkeys((r["shape"], r["threads"]) for r in rows))
    lines = ["| shape B,T,I,H | threads | " + " | ".join(engines)
             + " | bf16 / best f32 | int8 / best f32 | int8 / best peer int8 |",
             "|---|---|" + "---|" * (len(engines) + 3)]
    for shape, n in keys:
        got = {r["engine"]: r for r in rows if r["shape"] == shape and r["threads"] == n}
        cells = [f"{got[e]['us']:.1f} ({got[e]['err']:.0e})" if e in got else "-"
                 for e in engines]
        f32 = min(got["cylstm f32"]["us"], got["cylstm f32 layers"]["us"])
        i8 = got["cylstm int8"]["us"]
        peers = [got[e]["us"] for e in ("torch int8", "ORT int8") if e in got]
        best = f"{i8 / min(peers):.2f}" if peers else "-"
        b16 = got["cylstm bf16"]["us"]
        lines.append(f"| {shape} | {n} | " + " | ".join(cells)
                     + f" | {b16 / f32:.2f} | {i8 / f32:.2f} | {best} |")
    return "\n".join(lines)


def grid(threads, seed=0):
    """Milliseconds per call of nn.LSTM float32, bfloat16 and int8 on the grid;
    the quantized copies fall back to float32 kernels where that is faster
    (cylstm/_quantized_dispatch.py), marked "f32 kernels"."""
    from cylstm._quantized_dispatch import float32_is_faster
    lines = ["| B,T,I,H | threads | float32 | bf16 | int8 | int8 / float32 | engine |",
             "|---|---|---|---|---|---|---|"]
    for B, T, I, H in GRID:
        module = cylstm.nn.LSTM(I, H, batch_first=True, seed=seed)
        x = np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)
        engines = [module, cylstm.quantize(module, "bfloat16"), cylstm.quantize(module, "int8")]
        for n in threads:
            cylstm.set_num_threads(n)
            got = alternating_us({i: (lambda e=e: e(x)) for i, e in enumerate(engines)},
                                 cpu_time=n == 1, budget_s=3.0, min_rounds=3)
            ms = [got[i] / 1e3 for i in range(len(engines))]
            how = "f32 kernels (fall-back)" if float32_is_faster(H, B) else "quantized"
            lines.append(f"| {B},{T},{I},{H} | {n} | {ms[0]:.3f} | {ms[1]:.3f} | {ms[2]:.3f} | "
                         f"{ms[2] / ms[0]:.2f} | {how} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true", help="the first shape only")
    p.add_argument("--grid", action="store_true",
                   help="the BENCHMARKS.md grid: cylstm float32 / bf16 / int8 only")
    args = p.parse_args(argv)
    if args.grid:
        print("Milliseconds per call (median), nn.LSTM and its quantized copies.")
        print(grid(args.threads))
        return
    shapes = SHAPES[:1] if args.quick else SHAPES
    rows = run(shapes, args.threads)
    print("Median microseconds per call (max abs error vs cylstm float32 in parentheses).")
    print(table(rows))
    print("\nLargest |error| (and as a fraction of the largest |float32 value|) of the "
          "output y and the final states h, c:")
    print("| shape | engine | y | h | c |\n|---|---|---|---|---|")
    for shape, label, errors in STATE_ERRORS:
        print(f"| {shape} | {label} | " + " | ".join(
            f"{errors[k][0]:.1e} ({errors[k][1]:.1e})" for k in ("y", "h", "c")) + " |")


if __name__ == "__main__":
    main()
