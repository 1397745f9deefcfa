"""Stacked LSTMs: LSTM(50, return_sequences=True) -> LSTM(50) -> Dense(1) on sunspots.

The seed tutorial's second model ("Stacked LSTM Network (Many-to-One)") on the
data and protocol of ``sunspots_regression.py``: yearly sunspot numbers
(statsmodels; NOAA National Geophysical Data Center), fit on 1700-1920,
one-step forecasts of 1921-1987 from windows of 20 years, as in G. P. Zhang
(2003), "Time series forecasting using a hybrid ARIMA and neural network
model", Neurocomputing 50:159-175 (published test MSE: AR(9) 306, ANN 351,
hybrid 280). The first LSTM returns its whole sequence of outputs, which the
second reads.

Same settings as the single-layer example (values / 1700-1920 maximum,
Adam(3e-3), batch 8, 50 epochs), chosen on a validation split inside the
training period (docs/examples.md).

    python examples/sunspots_stacked.py [--epochs 50] [--seeds 5] [--verbose 1] [--quick]
"""
import cylstm
from cylstm.layers import LSTM, Dense
from sunspots_regression import STEPS, run


def build_model():
    return cylstm.Sequential([
        LSTM(units=50, input_shape=(STEPS, 1), return_sequences=True),
        LSTM(units=50, return_sequences=False),
        Dense(units=1),
    ])


if __name__ == "__main__":
    run(build_model, "LSTM(50) -> LSTM(50) + Dense(1)", description=__doc__)
