"""``python -m cylstm``: the version, the BLAS in use, and a timed forward pass.

Runs the Keras documentation's example (``LSTM(4, return_sequences=True,
return_state=True)`` on (32, 10, 8) inputs) and then times one forward pass of
a medium layer (batch 64, 100 steps, 128 features, 256 units) next to the
plain-NumPy twin of the kernel.
"""
import argparse
import platform
import sys
import time

import numpy as np

import cylstm
from cylstm._kernels import reference


def _median_time(fn, repeat):
    fn()  # warm-up: builds, allocates workspaces
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cylstm", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median)")
    args = parser.parse_args(argv)

    print(f"cylstm {cylstm.__version__} on Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    for info in cylstm.blas_info():
        print(f"BLAS: {info.get('internal_api')} {info.get('version')} "
              f"({info.get('architecture')}, {info.get('num_threads')} threads) "
              f"from {info.get('filepath')}")

    rng = np.random.default_rng(0)
    inputs = rng.random((32, 10, 8)).astype("float32")
    lstm = cylstm.layers.LSTM(4, return_sequences=True, return_state=True, seed=0)
    whole_seq_output, final_memory_state, final_carry_state = lstm(inputs)
    print(f"\nKeras example: LSTM(4, return_sequences=True, return_state=True) on {inputs.shape}")
    print(f"  whole_seq_output {whole_seq_output.shape}, final_memory_state "
          f"{final_memory_state.shape}, final_carry_state {final_carry_state.shape}")

    B, T, I, H = 64, 100, 128, 256
    x = rng.standard_normal((B, T, I)).astype("float32")
    layer = cylstm.layers.LSTM(H, return_sequences=True, seed=0)
    layer.build(x.shape)
    t_cylstm = _median_time(lambda: layer(x), args.repeat)
    zeros_h = np.zeros((B, H), "float32")
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    t_numpy = _median_time(lambda: reference.lstm_forward(
        xt, layer.kernel, layer.recurrent_kernel, layer.bias, zeros_h, zeros_h), args.repeat)
    y = layer(x)
    ref = reference.lstm_forward(xt, layer.kernel, layer.recurrent_kernel, layer.bias,
                                 zeros_h, zeros_h)[0].transpose(1, 0, 2)
    print(f"\nForward pass, batch {B}, {T} steps, {I} features, {H} units, float32 "
          f"(median of {args.repeat}):")
    print(f"  cylstm          {t_cylstm * 1e3:8.2f} ms")
    print(f"  NumPy reference {t_numpy * 1e3:8.2f} ms   ({t_numpy / t_cylstm:.1f}x slower)")
    print(f"  max abs difference {float(np.abs(y - ref).max()):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
