"""A/B of cylstm checkouts at one instruction-set level, with torch capped
the same way: one thread, worker processes run in alternating order, the
median CPU time per call of each cell.

To measure what an AVX2-only CPU runs on an AVX-512 one: cylstm's kernels
take ``CYLSTM_ISA`` (cylstm/_isa.py), oneDNN (torch's LSTM) takes
``ONEDNN_MAX_CPU_ISA``. ``--unfused`` keeps cylstm on the unfused path (the
product, then the gate and cell loops) instead of its fused kernels. From
the repository root, each checkout built in place::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ab_isa.py \\
        --trees /path/to/before . --isa avx2 --unfused --torch

Prints one line per cell: milliseconds per call for each checkout (and
torch), and each checkout's ratio to the first.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

INFER = [(16, 100, 64, 128), (64, 100, 128, 256), (1, 100, 32, 128)]
TRAIN = [(16, 100, 64, 128), (64, 100, 128, 256)]
ONEDNN = {"avx512": "AVX512_CORE", "avx2": "AVX2", "none": "SSE41"}


def _weights(I, H, seed=0):
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.uniform(-0.2, 0.2, s).astype(np.float32)
    return dict(kernel=r(I, 4 * H), recurrent_kernel=r(H, 4 * H), bias=r(4 * H))


def _median_ms(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return 1e3 * float(np.median(times))


def _cylstm_cells(unfused, reps):
    import cylstm
    from cylstm import _ops
    if unfused:   # as the tests force it: no fused step, no few-row sequence kernel
        _ops.cpu().FUSED_STEP_MIN_ROWS = 10**9
        _ops.cpu().FUSED_SEQUENCE_ROWS = 0
    out = {}
    with cylstm.threads(1):
        for kind, shapes in (("infer", INFER), ("train", TRAIN)):
            for B, T, I, H in shapes:
                w = _weights(I, H)
                x = np.random.default_rng(1).standard_normal((B, T, I)).astype(np.float32)
                layer = cylstm.layers.LSTM(H, return_sequences=True)
                layer.build((B, T, I))
                layer.set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
                if kind == "infer":
                    fn = lambda: layer(x)
                else:
                    dy = np.ones((B, T, H), np.float32)

                    def fn():
                        layer.zero_grad()
                        y, backprop = layer.forward_train(x, input_gradient=False)
                        return backprop(dy)
                out[f"{kind} {B},{T},{I},{H}"] = _median_ms(fn, reps)
    return out


def _torch_cells(reps):
    import torch
    torch.set_num_threads(1)
    out = {}
    for B, T, I, H in INFER:
        w = _weights(I, H)
        lstm = torch.nn.LSTM(I, H, batch_first=True).eval()
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.from_numpy(w["kernel"].T.copy()))
            lstm.weight_hh_l0.copy_(torch.from_numpy(w["recurrent_kernel"].T.copy()))
            lstm.bias_ih_l0.copy_(torch.from_numpy(w["bias"]))
            lstm.bias_hh_l0.zero_()
        x = torch.from_numpy(np.random.default_rng(1).standard_normal((B, T, I))
                             .astype(np.float32))

        def fn():
            with torch.no_grad():
                return lstm(x)[0]
        out[f"infer {B},{T},{I},{H}"] = _median_ms(fn, reps)
    return out


def _worker(args):
    if args.worker == "torch":
        print(json.dumps(_torch_cells(args.reps)))
    else:
        sys.path.insert(0, os.path.abspath(args.worker))
        import cylstm
        assert os.path.dirname(os.path.abspath(cylstm.__file__)).startswith(
            os.path.abspath(args.worker)), cylstm.__file__
        print(json.dumps(_cylstm_cells(args.unfused, args.reps)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", nargs="+", default=["."], help="cylstm checkouts, built in place")
    ap.add_argument("--isa", choices=sorted(ONEDNN), default="avx2")
    ap.add_argument("--unfused", action="store_true", help="keep cylstm off its fused kernels")
    ap.add_argument("--torch", action="store_true", help="torch's LSTM too (inference)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return _worker(args)
    env = dict(os.environ, CYLSTM_ISA=args.isa, ONEDNN_MAX_CPU_ISA=ONEDNN[args.isa],
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    names = [os.path.abspath(t) for t in args.trees] + (["torch"] if args.torch else [])
    runs = {name: [] for name in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]   # alternate who runs first
        for name in order:
            cmd = [sys.executable, __file__, "--worker", name, "--reps", str(args.reps)]
            if args.unfused:
                cmd.append("--unfused")
            # the worker runs outside any checkout, so it imports the one it is given
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd="/")
            if done.returncode:
                sys.exit(f"worker {name} failed:\n{done.stderr}")
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    cells = list(runs[names[0]][0])
    print(f"CYLSTM_ISA={args.isa}, ONEDNN_MAX_CPU_ISA={ONEDNN[args.isa]}, one thread, "
          f"{'unfused path' if args.unfused else 'default path'}; median over {args.rounds} "
          f"rounds of each worker's median CPU time per call (ms)")
    for i, name in enumerate(names):
        print(f"  [{i}] {name}")
    for cell in cells:
        med = {n: float(np.median([run[cell] for run in runs[n] if cell in run]))
               if cell in runs[n][0] else None for n in names}
        base = med[names[0]]
        parts = [f"[{i}] {med[n]:8.3f}" + (f" ({med[n] / base:.3f}x)" if i else "")
                 for i, n in enumerate(names) if med[n] is not None]
        print(f"{cell:22s} " + "  ".join(parts))


if __name__ == "__main__":
    main()
