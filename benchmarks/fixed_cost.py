"""The fixed cost of a call: what ``layers.LSTM`` and ``nn.LSTM`` spend around
the kernel (issue 17: "a 2-step call minus the kernel").

For each shape, in interleaved rounds on one thread: a call of
``cylstm.layers.LSTM`` (last output), a call of ``cylstm.nn.LSTM`` (batch
first, eval mode) and the kernel alone -- the compiled forward loop
(``lstm_forward``, float32 specialisation) on the same weights with its
buffers made once, for one or two rows the few-row time loop
(``lstm_step.fused_sequence``), or for one step the streaming kernel's
``step``. Rounds
are timed in CPU time of the calling thread (``time.thread_time``: the time
other processes hold the core is not counted). The fixed cost printed is
the median over rounds of (a call's round - the kernel's round, timed back to
back); the best rounds and the medians of each are printed too.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fixed_cost.py
    python benchmarks/fixed_cost.py --shapes 1,2,8,8 1,1,64,64 --rounds 30
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cylstm  # noqa: E402
from cylstm import activations  # noqa: E402


def _round(fn, calls):
    # CPU time of this thread: on a shared machine the time other processes
    # hold the core is not counted (everything here runs on this thread).
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - t0) / calls


def _kernel_alone(layer, x):
    """The compiled loop of one layer call, nothing around it."""
    from cylstm._kernels.lstm_forward import lstm_forward
    from cylstm._kernels.lstm_step import StepKernel
    B, T, I = x.shape
    cell = layer.cell
    W, U, b = cell.kernel, cell.recurrent_kernel, cell.bias
    H = U.shape[0]
    G = 4 * H
    tanh, sigmoid = activations.KERNEL_CODES["tanh"], activations.KERNEL_CODES["sigmoid"]
    h = np.zeros((B, H), np.float32)
    c = np.zeros((B, H), np.float32)
    if T == 1:
        step = StepKernel(W, U, b, None, tanh, sigmoid, B, True)
        x2 = np.ascontiguousarray(x.reshape(B, I))
        return lambda: step.step(x2, h, c)
    from cylstm.backends.cpu import CpuBackend
    if B <= CpuBackend.FUSED_SEQUENCE_ROWS:
        # the few-row time loop the plans run (lstm_step.fused_sequence), on
        # the threads the call would use
        from cylstm._kernels.lstm_step import fused_sequence, sequence_parts
        parts = sequence_parts(B, I, H)
        return lambda: fused_sequence(x, False, W, U, b, h, c, False, parts)
    fn = lstm_forward.__signatures__["float"]
    last = np.zeros((B, H), np.float32)
    gates = np.empty(T * B * G, np.float32)
    xbuf = np.empty(T * B * I, np.float32)
    act = np.empty(1, np.float32)
    hbuf = np.empty(B * H, np.float32)
    mbuf = np.empty(B * H, np.float32)
    sel = np.empty(B * G, np.float32)
    return lambda: fn(x, False, W, U, None, b, None, None, None, None, None, None, False,
                      tanh, sigmoid, h, c, last, None, False, True, None, None, None, None,
                      None, gates, T, xbuf, act, hbuf, mbuf, sel, 0, B)


def measure(shape, rounds, target_s=2e-3):
    B, T, I, H = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    layer = cylstm.layers.LSTM(H)
    module = cylstm.nn.LSTM(I, H, batch_first=True, seed=0)
    module.eval()
    fns = {"layers.LSTM": lambda: layer(x), "nn.LSTM": lambda: module(x)}
    layer(x)
    fns["kernel"] = _kernel_alone(layer, x)
    calls = {}
    for name, fn in fns.items():
        for _ in range(20):
            fn()
        once = _round(fn, 20)
        calls[name] = max(1, int(target_s / max(once, 1e-7)))
    times = {name: [] for name in fns}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                times[name].append(_round(fn, calls[name]))
    finally:
        gc.enable()
    out = {name: (min(v) * 1e6, float(np.median(v)) * 1e6) for name, v in times.items()}
    # The fixed cost of each round (a call's time minus the kernel's, timed
    # back to back): its median is steadier than a difference of minima.
    for name in ("layers.LSTM", "nn.LSTM"):
        out["fixed " + name] = float(np.median(np.subtract(times[name], times["kernel"]))) * 1e6
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="+", default=["1,2,8,8", "1,1,64,64", "1,100,32,128"],
                    help="B,T,I,H")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)
    print("| B,T,I,H | kernel alone | layers.LSTM | nn.LSTM | fixed: layers.LSTM "
          "| fixed: nn.LSTM |")
    print("|---|---|---|---|---|---|")
    print("| | best round | best (median) | best (median) | median of round differences "
          "| median of round differences |")
    with cylstm.threads(1):
        for text in args.shapes:
            shape = tuple(int(v) for v in text.split(","))
            r = measure(shape, args.rounds)
            k = r["kernel"][0]
            print(f"| {text} | {k:.2f} us | {r['layers.LSTM'][0]:.2f} us "
                  f"(median {r['layers.LSTM'][1]:.2f}) | {r['nn.LSTM'][0]:.2f} us "
                  f"(median {r['nn.LSTM'][1]:.2f}) | {r['fixed layers.LSTM']:.2f} us | "
                  f"{r['fixed nn.LSTM']:.2f} us |", flush=True)


if __name__ == "__main__":
    main()
