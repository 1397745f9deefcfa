"""Sequence to sequence: LSTM(50, return_sequences=True) + Dense on every step, sunspots.

The seed tutorial's third model ("LSTM for Sequence-to-Sequence prediction":
an LSTM that returns its whole output sequence, a Dense layer applied to every
step) as a multi-step forecaster on the yearly sunspot numbers (statsmodels;
NOAA National Geophysical Data Center; train 1700-1920, test 1921-1987 as in
G. P. Zhang (2003), Neurocomputing 50:159-175).

Input: a window of 20 years. Output: at every step t of the window, the next
10 years after year t (a ``Dense(10)`` on every step, shape (batch, 20, 10)).
Every step is thus a forecast origin during training (the "forking sequences"
of Wen et al. 2017, "A multi-horizon quantile recurrent forecaster"); the
forecast of the 10 years after a window is the output of its last step.

Test: every origin from 1920 to 1977, forecasting the next 10 years (all in
1921-1987), 58 forecasts of 10 years. The program prints the MSE per horizon
and averaged over horizons 1-10 next to three baselines: the naive forecast
(the origin's value for all 10 years), the 1700-1920 mean, and AR(9) fitted by
least squares on 1700-1920 and iterated (Zhang's model; no published
multi-step figure for this protocol is known to us).

Settings: values / 1700-1920 maximum, Adam(3e-3), batch 8, 10 epochs, chosen on
a validation split inside the training period (docs/examples.md).

    python examples/sunspots_seq2seq.py [--epochs 10] [--seeds 5] [--verbose 1] [--quick]
"""
import time

import numpy as np

import _data
import cylstm
from cylstm.layers import LSTM, Dense
from sunspots_regression import STEPS, parse_args

HORIZON = 10


def windows(z, last_inputs):
    """Input windows ending at each index in ``last_inputs``; targets: the next
    HORIZON values after every step of the window."""
    x = np.stack([z[e - STEPS + 1:e + 1] for e in last_inputs])[..., None]
    y = np.stack([[z[t + 1:t + 1 + HORIZON] for t in range(e - STEPS + 1, e + 1)]
                  for e in last_inputs])
    return x, y


def main(argv=None):
    args = parse_args(argv, __doc__, epochs=10)
    start = time.perf_counter()
    years, values, where = _data.load_sunspots()
    keep = years <= 1987
    years, values = years[keep], values[keep]
    n_train = int(np.sum(years <= 1920))
    scale = values[:n_train].max()
    z = (values / scale).astype("float32")
    # training windows: inputs and all targets within 1700-1920
    x_train, y_train = windows(z, range(STEPS - 1, n_train - HORIZON))
    # test origins: 1920 .. 1987 - HORIZON (forecasts of 1921-1987)
    origins = np.arange(n_train - 1, len(values) - HORIZON)
    x_test, _ = windows(z, origins)
    truth = np.stack([values[o + 1:o + 1 + HORIZON] for o in origins])
    print(f"Yearly sunspots from {where}")
    print(f"train: x {x_train.shape} -> y {y_train.shape} (1700-1920); test: {len(origins)} "
          f"origins {years[origins[0]]}-{years[origins[-1]]}, {HORIZON}-year forecasts")
    print(f"LSTM(50, return_sequences=True) + Dense({HORIZON}) on every step, Adam(3e-3), MSE, "
          f"batch 8, {args.epochs} epochs, seeds 0..{args.seeds - 1}")

    def mse_by_horizon(forecasts):
        return ((forecasts - truth) ** 2).mean(axis=0)

    per_seed = []
    for seed in range(args.seeds):
        cylstm.utils.set_random_seed(seed)
        model = cylstm.Sequential([
            LSTM(units=50, input_shape=(STEPS, 1), return_sequences=True),
            Dense(units=HORIZON),
        ])
        model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=3e-3), loss="mse")
        t = time.perf_counter()
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=8, verbose=args.verbose)
        forecasts = model.predict(x_test, verbose=0)[:, -1, :] * scale
        per_seed.append(mse_by_horizon(forecasts))
        print(f"  seed {seed}: test MSE (mean over horizons) {per_seed[-1].mean():7.1f}   "
              f"({time.perf_counter() - t:.1f} s)")

    coef = _data.fit_ar(values[:n_train], 9)
    rows = [
        ("cylstm seq2seq LSTM(50)", np.mean(per_seed, axis=0)),
        ("naive (origin's value)", mse_by_horizon(np.repeat(values[origins][:, None], HORIZON, 1))),
        ("1700-1920 mean", mse_by_horizon(np.full_like(truth, values[:n_train].mean()))),
        ("AR(9), least squares, iterated",
         mse_by_horizon(np.stack([_data.ar_forecast(coef, values[:o + 1], HORIZON)
                                  for o in origins]))),
    ]
    print(f"\nTest MSE by horizon (years ahead), {len(origins)} forecasts of 1921-1987:")
    print(f"  {'':<32}{'h=1':>7}{'h=2':>7}{'h=5':>7}{'h=10':>7}{'mean 1-10':>11}")
    for name, mse in rows:
        print(f"  {name:<32}{mse[0]:7.0f}{mse[1]:7.0f}{mse[4]:7.0f}{mse[9]:7.0f}"
              f"{mse.mean():11.1f}")
    if len(per_seed) > 1:
        means = [m.mean() for m in per_seed]
        print(f"  (cylstm: mean of {len(per_seed)} seeds; min {min(means):.1f}, "
              f"max {max(means):.1f})")
    wall = time.perf_counter() - start
    print(f"Wall time: {wall:.1f} s")
    return {"mse": [float(m.mean()) for m in per_seed], "wall": wall}


if __name__ == "__main__":
    main()
