"""Many-to-one regression: LSTM(50) + Dense(1) on windows of 20 years of sunspots.

The seed tutorial's first model ("Basic LSTM for Time Series Regression",
``LSTM(units=50, input_shape=(20, 1))`` + ``Dense(1)``, Adam, MSE) on real
data: the yearly sunspot numbers 1700-1987 that ship with statsmodels
(NOAA National Geophysical Data Center; when statsmodels is not installed the
same values embedded in cylstm are used).

Protocol of G. P. Zhang (2003), "Time series forecasting using a hybrid ARIMA
and neural network model", Neurocomputing 50:159-175: fit on 1700-1920, then
one-step forecasts of each year 1921-1987 (67 values) from the 20 observed
years before it. Zhang's published test MSEs: AR(9) 306, ANN 351 (hybrid 280).
The program also refits AR(9) by least squares on 1700-1920 (it reproduces
Zhang's 306) and prints the naive forecast (last year's value).

Settings: values divided by the 1700-1920 maximum, Adam(3e-3), batch 8,
50 epochs; the program prints the MSE of each of ``--seeds`` runs and their
mean. The settings were chosen on a validation split inside the training
period (fit on 1700-1880, scored on 1881-1920), never on the test years;
docs/examples.md gives the grid.

    python examples/sunspots_regression.py [--epochs 50] [--seeds 5] [--verbose 1] [--quick]
"""
import argparse
import time

import numpy as np

import _data
import cylstm
from cylstm.layers import LSTM, Dense

STEPS = 20
PUBLISHED = (("AR(9), Zhang 2003 (published)", 306.0), ("ANN, Zhang 2003 (published)", 351.0))


def build_model():
    return cylstm.Sequential([
        LSTM(units=50, input_shape=(STEPS, 1), return_sequences=False),
        Dense(units=1),
    ])


def parse_args(argv, description, epochs=50):
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seeds", type=int, default=5, help="runs with seeds 0..N-1")
    parser.add_argument("--verbose", type=int, default=0, help="fit's verbose (0, 1, 2)")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 seed (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 1, 1
    return args


def run(build_model, label, argv=None, description=__doc__):
    args = parse_args(argv, description)
    start = time.perf_counter()
    years, values, where = _data.load_sunspots()
    keep = years <= 1987
    years, values = years[keep], values[keep]
    n_train = int(np.sum(years <= 1920))
    scale = values[:n_train].max()
    z = (values / scale).astype("float32")
    x, y, _, train = _data.sunspot_windows(z, years, STEPS, last_train_year=1920)
    truth = values[n_train:]
    print(f"Yearly sunspots from {where}")
    print(f"train: {int(train.sum())} windows of {STEPS} years (targets 1720-1920); "
          f"test: {int((~train).sum())} one-step forecasts (1921-1987)")
    print(f"{label}, Adam(3e-3), MSE, batch 8, {args.epochs} epochs, seeds 0..{args.seeds - 1}")

    mses = []
    for seed in range(args.seeds):
        cylstm.utils.set_random_seed(seed)
        model = build_model()
        model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=3e-3), loss="mse")
        t = time.perf_counter()
        model.fit(x[train], y[train], epochs=args.epochs, batch_size=8, verbose=args.verbose)
        forecast = model.predict(x[~train], verbose=0).ravel() * scale
        mses.append(float(np.mean((forecast - truth) ** 2)))
        print(f"  seed {seed}: test MSE {mses[-1]:6.1f}   ({time.perf_counter() - t:.1f} s)")

    coef = _data.fit_ar(values[:n_train], 9)
    ar = np.array([_data.ar_forecast(coef, values[:t], 1)[0] for t in range(n_train, len(values))])
    rows = [(f"cylstm {label}", float(np.mean(mses))),
            ("naive (last year's value)", float(np.mean((values[n_train - 1:-1] - truth) ** 2))),
            ("AR(9), least squares here", float(np.mean((ar - truth) ** 2)))]
    rows += list(PUBLISHED)
    print("\nTest MSE, one-step forecasts of 1921-1987:")
    for name, value in rows:
        print(f"  {name:<42}{value:7.1f}")
    if len(mses) > 1:
        print(f"  (cylstm: mean of {len(mses)} seeds; min {min(mses):.1f}, max {max(mses):.1f})")
    wall = time.perf_counter() - start
    print(f"Wall time: {wall:.1f} s")
    return {"mse": mses, "wall": wall}


if __name__ == "__main__":
    run(build_model, "LSTM(50) + Dense(1)")
