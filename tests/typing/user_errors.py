"""Calls that ``mypy --strict`` must reject: each line marked ``# E: <code>`` is
expected to give exactly that error code, and no other line an error
(tests/typing/test_mypy.py). This file is type-checked only, never run.
"""
from __future__ import annotations

import numpy as np

import cylstm
from cylstm.layers import LSTM, Dense, Embedding
from cylstm.models import Sequential
from cylstm.preprocessing.sequence import pad_sequences

x = np.zeros((2, 5, 3), "float32")

LSTM("five")  # E: arg-type
cylstm.set_num_threads("two")  # E: arg-type
cylstm.threads(2.5)  # E: arg-type
LSTM(4, return_sequences="yes")  # E: arg-type
LSTM(4, dropout="0.1")  # E: arg-type
Dense(3, activation=5)  # E: arg-type
Embedding(100, "16")  # E: arg-type
cylstm.nn.LSTM(3, "8")  # E: arg-type
cylstm.nn.LSTM(3, 8, batch_first=1.0)  # E: arg-type
pad_sequences([[1, 2], [3]], maxlen="10")  # E: arg-type

model = Sequential([LSTM(4), Dense(1)])
model.add("lstm")  # E: arg-type
model.fit(x, np.zeros((2, 1)), epochs="3")  # E: arg-type
model.compile(optimizer=3)  # E: arg-type

# A layer call may return a list ([output, h, c] with return_state=True):
# the result must be narrowed before using array attributes.
print(LSTM(4)(x).shape)  # E: union-attr
# model.evaluate gives a float, a list or a dict.
print(model.evaluate(x, np.zeros((2, 1))) + 1.0)  # E: operator
# cylstm.nn.LSTM returns (output, (h_n, c_n)), a tuple.
print(cylstm.nn.LSTM(3, 8)(x).shape)  # E: attr-defined
