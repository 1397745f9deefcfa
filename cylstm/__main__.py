"""``python -m cylstm``: the version and BLAS, a training run on real data, a timed forward pass.

1. The cylstm version and the BLAS that SciPy's ``cython_blas`` (and so cylstm)
   calls.
2. The sunspot tutorial, end to end, on data embedded in the package
   (``cylstm/data/sunspots.csv``, 309 yearly values, 1700-2008, from NOAA's
   National Geophysical Data Center as shipped in statsmodels): LSTM(50) +
   Dense(1) on windows of 20 years, fit on 1700-1920 with the Keras-style
   progress bar, one-step forecasts of 1921-1987, the protocol of
   G. P. Zhang (2003), "Time series forecasting using a hybrid ARIMA and
   neural network model", Neurocomputing 50:159-175. The test MSE is printed
   next to the naive (last value) forecast and Zhang's published AR(9)
   (306) and ANN (351) figures, with the time taken.
3. One forward pass of a medium layer (batch 64, 100 steps, 128 features,
   256 units) timed next to the plain-NumPy twin of the kernel.

Needs only numpy, scipy and threadpoolctl. ``examples/`` has the same model
and four more tutorials on data from PyPI packages (docs/examples.md).
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import cylstm
from cylstm._kernels import reference

SUNSPOTS_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sunspots.csv")

# Zhang (2003), table 2: test MSE of one-step forecasts of 1921-1987.
PUBLISHED = (("AR(9), Zhang 2003", 306.0), ("ANN, Zhang 2003", 351.0))


def load_sunspots(path=SUNSPOTS_CSV):
    """The embedded yearly sunspot numbers: ``(years, values)``, 309 of each, 1700-2008."""
    years, values = [], []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line.startswith("year"):
                continue
            year, value = line.split(",")
            years.append(int(year))
            values.append(float(value))
    return np.array(years, dtype=np.int64), np.array(values, dtype=np.float64)


def sunspots_tutorial(epochs=50, seed=0, verbose=1, steps=20):
    """Train LSTM(50) + Dense(1) on the Zhang (2003) split; returns a dict of results."""
    from cylstm.layers import LSTM, Dense

    years, values = load_sunspots()
    keep = years <= 1987
    years, values = years[keep], values[keep]
    n_train = int(np.sum(years <= 1920))
    scale = values[:n_train].max()              # min-max scaling (min is 0) on training years
    z = (values / scale).astype("float32")
    x = np.stack([z[i:i + steps] for i in range(len(z) - steps)])[..., None]
    y = z[steps:]
    train = years[steps:] <= 1920
    test_truth = values[n_train:]

    cylstm.utils.set_random_seed(seed)
    model = cylstm.Sequential([LSTM(50, input_shape=(steps, 1)), Dense(1)])
    model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=3e-3), loss="mse")
    if verbose:
        model.summary()
    start = time.perf_counter()
    model.fit(x[train], y[train], epochs=epochs, batch_size=8, verbose=verbose)
    forecast = model.predict(x[~train], verbose=0).ravel() * scale
    seconds = time.perf_counter() - start
    return {
        "mse": float(np.mean((forecast - test_truth) ** 2)),
        "naive_mse": float(np.mean((values[n_train - 1:-1] - test_truth) ** 2)),
        "n_train": int(train.sum()), "n_test": int((~train).sum()),
        "epochs": epochs, "seconds": seconds,
    }


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
    parser.add_argument("--epochs", type=int, default=50, help="epochs of the sunspot run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sunspot run")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median)")
    args = parser.parse_args(argv)
    wall = time.perf_counter()

    print(f"cylstm {cylstm.__version__} on Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    for info in cylstm.blas_info():
        print(f"BLAS: {info.get('internal_api')} {info.get('version')} "
              f"({info.get('architecture')}, {info.get('num_threads')} threads) "
              f"from {info.get('filepath')}")

    print("\nYearly sunspots, 1700-1987 (embedded: cylstm/data/sunspots.csv, NOAA NGDC via "
          "statsmodels).\nZhang (2003) protocol: fit on 1700-1920, one-step forecasts of "
          "1921-1987;\nLSTM(50) + Dense(1) on windows of 20 years, Adam(3e-3), batch 8, "
          f"{args.epochs} epochs, seed {args.seed}.")
    r = sunspots_tutorial(epochs=args.epochs, seed=args.seed)
    print(f"\nTest MSE, {r['n_test']} one-step forecasts of 1921-1987 "
          f"(trained on {r['n_train']} windows):")
    print(f"  {'cylstm LSTM(50) + Dense(1)':<30} {r['mse']:6.1f}")
    naive = "naive (last year's value)"
    print(f"  {naive:<30} {r['naive_mse']:6.1f}")
    for name, mse in PUBLISHED:
        print(f"  {name + ' (published)':<30} {mse:6.0f}")
    print(f"  training + forecasts took {r['seconds']:.1f} s")

    rng = np.random.default_rng(0)
    B, T, I, H = 64, 100, 128, 256
    x = rng.standard_normal((B, T, I)).astype("float32")
    layer = cylstm.layers.LSTM(H, return_sequences=True, seed=0)
    layer.build(x.shape)
    zeros_h = np.zeros((B, H), "float32")
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    # Both on one thread: NumPy's threaded BLAS times swing several-fold when
    # the other core is busy, which would make the ratio a measure of the load.
    with cylstm.threads(1), threadpool_limits(1):
        t_cylstm = _median_time(lambda: layer(x), args.repeat)
        t_numpy = _median_time(lambda: reference.lstm_forward(
            xt, layer.kernel, layer.recurrent_kernel, layer.bias, zeros_h, zeros_h),
            args.repeat)
    y = layer(x)
    ref = reference.lstm_forward(xt, layer.kernel, layer.recurrent_kernel, layer.bias,
                                 zeros_h, zeros_h)[0].transpose(1, 0, 2)
    print(f"\nForward pass, batch {B}, {T} steps, {I} features, {H} units, float32 "
          f"(median of {args.repeat}, one thread):")
    print(f"  cylstm          {t_cylstm * 1e3:8.2f} ms")
    print(f"  NumPy reference {t_numpy * 1e3:8.2f} ms   ({t_numpy / t_cylstm:.1f}x slower)")
    print(f"  max abs difference {float(np.abs(y - ref).max()):.2e}")
    print(f"\nWall time: {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
