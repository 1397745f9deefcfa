"""The seed tutorials (/work/shared/seeds, SPEC section 5) run on cylstm after the
one textual change ``tensorflow.keras``/``tf.keras`` -> ``cylstm``.

Each program below is the tutorial's code as published, kept as text and run
through ``translate`` (that replacement, plus ``import tensorflow as tf`` ->
``import cylstm``, which the replacement makes necessary). Adaptations, each
marked ``# adapted:`` in the program: sizes/epochs made smaller where the
original would take more than a few seconds, ``tf.random.normal`` (TensorFlow,
not Keras) replaced by NumPy, and the IMDB download replaced by a synthetic
review set of the same shape (the machines are offline).
"""
import contextlib
import io
import re

import numpy as np
import pytest

import cylstm

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def translate(source):
    source = source.replace("import tensorflow as tf\n", "import cylstm\n")
    return source.replace("tensorflow.keras", "cylstm").replace("tf.keras", "cylstm")


def run_program(source, **namespace):
    """Exec the translated tutorial; returns (namespace, stdout with ANSI codes removed)."""
    code = translate(source)
    code_only = re.sub(r"#.*", "", code)
    assert "tensorflow" not in code_only and "tf." not in code_only
    ns = {"__name__": "__tutorial__", **namespace}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<tutorial>", "exec"), ns)  # noqa: S102 - our own test programs
    return ns, ANSI.sub("", out.getvalue())


# -- seed 000: GeeksforGeeks, tf.keras.layers.LSTM in TensorFlow -------------------------
# (The page shows the outputs; the code follows its four steps and its printed shapes.)
GEEKSFORGEEKS = """
import numpy as np
import tensorflow as tf
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import LSTM, Dense

X = np.random.random((200, 10, 5))
y = np.random.randint(0, 2, size=(200, 1))

model = Sequential([
    LSTM(64, return_sequences=False, input_shape=(10, 5)),
    Dense(1, activation='sigmoid')
])
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
model.summary()

history = model.fit(X, y, epochs=10, batch_size=32)

lstm_layer = LSTM(50, return_sequences=True, return_state=True)
output, hidden_state, cell_state = lstm_layer(np.random.normal(size=(5, 10, 5)))  # adapted: was tf.random.normal((5, 10, 5))
print(output.shape, hidden_state.shape, cell_state.shape)
"""


def test_geeksforgeeks_training_run_and_return_state():
    ns, out = run_program(GEEKSFORGEEKS)
    assert "Epoch 1/10" in out and "Epoch 10/10" in out
    assert re.search(r"7/7 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \d\.\d{4} - "
                     r"loss: \d\.\d{4}", out)
    assert out.rstrip().endswith("(5, 10, 50) (5, 50) (5, 50)")
    assert ns["history"].params == {"verbose": "auto", "epochs": 10, "steps": 7}
    assert len(ns["history"].history["accuracy"]) == 10
    assert re.search(r"│ \S+ \(LSTM\)\s+│ \(None, 64\)\s+│\s+17,920 │", out)


# -- seed 001: ApX, Keras LSTM configuration and output shapes ---------------------------
APX = """
import tensorflow as tf
# Example: Creating an LSTM layer
lstm_layer = tf.keras.layers.LSTM(units=64)

# Define sample input shape (e.g., 32 sequences, 10 time steps, 8 features)
batch_size = 32
timesteps = 10
features = 8
input_data = np.random.normal(size=(batch_size, timesteps, features)).astype("float32")  # adapted: was tf.random.normal(...)
# Create a simple model with one LSTM layer
model = tf.keras.Sequential([
tf.keras.layers.LSTM(units=64, input_shape=(timesteps, features), return_sequences=True),
# Potentially add more layers here
tf.keras.layers.Dense(1) # Example output layer
])
# Get the output
output = model(input_data)
print("Input shape:", input_data.shape)
# Output shape depends on the last layer's config (return_sequences=True here)
print("LSTM Output shape:", model.layers[0].output.shape)
print("Final Output shape:", output.shape)
"""


def test_apx_output_shapes():
    _, out = run_program(APX, np=np)
    assert out.splitlines() == ["Input shape: (32, 10, 8)",
                                "LSTM Output shape: (None, 10, 64)",
                                "Final Output shape: (32, 10, 1)"]


# -- seed 002: Keras with TF 2.4.1, three examples ----------------------------------------
MANY_TO_ONE = """
import tensorflow as tf
import numpy as np

# Assumes data of shape (samples, features) is loaded into numpy array called data
samples = 1000
features = 1
sequence_length = 20
data = np.random.rand(samples,features)

# Prepare input data for LSTM layer
X = []
y = []
for i in range(len(data) - sequence_length):
    X.append(data[i : (i + sequence_length)])
    y.append(data[i + sequence_length])
X = np.array(X)
y = np.array(y)

# Define the LSTM model
model = tf.keras.Sequential([
    tf.keras.layers.LSTM(units=50, input_shape=(sequence_length, features), return_sequences = False),
    tf.keras.layers.Dense(units=1)
])

# Compile and train the model
model.compile(optimizer='adam', loss='mse')
model.fit(X, y, epochs=10, batch_size=32, verbose = 0)
"""

STACKED = """
import tensorflow as tf
import numpy as np

# Assumes data of shape (samples, features) is loaded into numpy array called data
samples = 1000
features = 1
sequence_length = 20
data = np.random.rand(samples,features)

# Prepare input data for LSTM layer
X = []
y = []
for i in range(len(data) - sequence_length):
    X.append(data[i : (i + sequence_length)])
    y.append(data[i + sequence_length])
X = np.array(X)
y = np.array(y)


# Define a stacked LSTM model
model = tf.keras.Sequential([
    tf.keras.layers.LSTM(units=50, input_shape=(sequence_length, features), return_sequences = True),
    tf.keras.layers.LSTM(units=50, return_sequences = False),
    tf.keras.layers.Dense(units=1)
])

# Compile and train the model
model.compile(optimizer='adam', loss='mse')
model.fit(X, y, epochs=10, batch_size=32, verbose = 0)
"""

SEQ2SEQ = """
import tensorflow as tf
import numpy as np

# Assumes data of shape (samples, features) is loaded into numpy array called data
samples = 1000
features = 1
sequence_length = 20
data = np.random.rand(samples,features)

# Prepare input data for LSTM layer
X = []
y = []
for i in range(len(data) - sequence_length- sequence_length):
    X.append(data[i : (i + sequence_length)])
    y.append(data[i+sequence_length: i+2*sequence_length])
X = np.array(X)
y = np.array(y)

# Define the LSTM model for sequence-to-sequence
model = tf.keras.Sequential([
    tf.keras.layers.LSTM(units=50, input_shape=(sequence_length, features), return_sequences=True),
    tf.keras.layers.Dense(units=features)
])

# Compile and train the model
model.compile(optimizer='adam', loss='mse')
model.fit(X, y, epochs=10, batch_size=32, verbose = 0)

"""


@pytest.mark.parametrize("program,out_shape", [(MANY_TO_ONE, (980, 1)), (STACKED, (980, 1)),
                                               (SEQ2SEQ, (960, 20, 1))],
                         ids=["many_to_one", "stacked", "seq2seq"])
def test_tf241_examples_train_quietly(program, out_shape):
    ns, out = run_program(program)
    assert out == ""                                    # verbose = 0
    model, X, y = ns["model"], ns["X"], ns["y"]
    assert model.predict(X, verbose=0).shape == out_shape == y.shape
    # uniform noise in [0, 1): the MSE must come down to about its variance (1/12)
    assert model.evaluate(X, y, verbose=0) < 0.2
    assert len(model.history.history["loss"]) == model.history.params["epochs"]


# -- seed 003: the tf.keras.layers.LSTM reference page ------------------------------------
REFERENCE = """
import numpy as np
from tensorflow import keras
inputs = np.random.random((32, 10, 8))
lstm = keras.layers.LSTM(4)
output = lstm(inputs)
print(output.shape)
lstm = keras.layers.LSTM(4, return_sequences=True, return_state=True)
whole_seq_output, final_memory_state, final_carry_state = lstm(inputs)
print(whole_seq_output.shape)
print(final_memory_state.shape)
print(final_carry_state.shape)
"""


def test_reference_page_example():
    # "from tensorflow import keras" becomes "from cylstm import keras" only under a
    # wider rewrite; the page's code uses `keras.` directly, so bind it to cylstm.
    _, out = run_program(REFERENCE.replace("from tensorflow import keras\n", ""), keras=cylstm)
    assert out.splitlines() == ["(32, 4)", "(32, 10, 4)", "(32, 4)", "(32, 4)"]


# -- seed 004: MachineCurve, the IMDB sentiment model -------------------------------------
def synthetic_imdb(num_words, n_train=1500, n_test=300, seed=0):
    """Stand-in for ``imdb.load_data(num_words=...)`` (no downloads here): reviews as
    lists of word indices; ids 10-59 lean positive, 60-109 negative."""
    rng = np.random.default_rng(seed)

    def make(n):
        xs, ys = [], []
        for _ in range(n):
            label = int(rng.integers(0, 2))
            words = rng.integers(200, num_words, int(rng.integers(20, 120)))
            hot = rng.random(words.size) < 0.3
            words[hot] = rng.integers(10, 60, hot.sum()) + (0 if label else 50)
            xs.append(list(words))
            ys.append(label)
        out = np.empty(n, dtype=object)
        out[:] = xs
        return out, np.array(ys)
    return make(n_train), make(n_test)


class _Imdb:
    @staticmethod
    def load_data(num_words):
        return synthetic_imdb(num_words)


MACHINECURVE = """
import tensorflow as tf
from tensorflow.keras.layers import Embedding, Dense, LSTM
from tensorflow.keras.losses import BinaryCrossentropy
from tensorflow.keras.models import Sequential
from tensorflow.keras.optimizers import Adam
from tensorflow.keras.preprocessing.sequence import pad_sequences

# Model configuration
additional_metrics = ['accuracy']
batch_size = 128
embedding_output_dims = 15
loss_function = BinaryCrossentropy()
max_sequence_length = 300
num_distinct_words = 5000
number_of_epochs = 5
optimizer = Adam()
validation_split = 0.20
verbosity_mode = 1

# Load dataset
(x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=num_distinct_words)  # adapted: synthetic, 1500/300 reviews
print(x_train.shape)
print(x_test.shape)

# Pad all sequences
padded_inputs = pad_sequences(x_train, maxlen=max_sequence_length, value = 0.0) # 0.0 because it corresponds with <PAD>
padded_inputs_test = pad_sequences(x_test, maxlen=max_sequence_length, value = 0.0) # 0.0 because it corresponds with <PAD>

# Define the Keras model
model = Sequential()
model.add(Embedding(num_distinct_words, embedding_output_dims, input_length=max_sequence_length))
model.add(LSTM(10))
model.add(Dense(1, activation='sigmoid'))

# Compile the model
model.compile(optimizer=optimizer, loss=loss_function, metrics=additional_metrics)

# Give a summary
model.summary()

# Train the model
history = model.fit(padded_inputs, y_train, batch_size=batch_size, epochs=number_of_epochs, verbose=verbosity_mode, validation_split=validation_split)

# Test the model after training
test_results = model.evaluate(padded_inputs_test, y_test, verbose=False)
print(f'Test results - Loss: {test_results[0]} - Accuracy: {100*test_results[1]}%')
"""


def test_machinecurve_imdb_model():
    # The tutorial's `tf.compat.v1.disable_eager_execution()` and the imdb import are
    # TensorFlow/download specific; they are the only lines left out.
    ns, out = run_program(MACHINECURVE, imdb=_Imdb)
    lines = out.splitlines()
    assert lines[:2] == ["(1500,)", "(300,)"]
    table = "\n".join(lines[2:16])
    for row in (r"│ embedding\S* \(Embedding\)\s+│ \(None, 300, 15\)\s+│\s+75,000 │",
                r"│ \S+ \(LSTM\)\s+│ \(None, 10\)\s+│\s+1,040 │",
                r"│ dense\S* \(Dense\)\s+│ \(None, 1\)\s+│\s+11 │"):
        assert re.search(row, table), row
    assert " Total params: 76,051 (297.07 KB)" in lines
    assert "Epoch 1/5" in lines and "Epoch 5/5" in out
    final = [l.split("\r")[-1].rstrip() for l in lines if "val_accuracy" in l]
    assert len(final) == 5
    assert all(re.fullmatch(r"10/10 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \d\.\d{4} - "
                            r"loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - val_loss: "
                            r"\d\.\d{4}", f) for f in final), final
    assert list(ns["history"].history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    loss, acc = ns["test_results"]
    assert lines[-1] == f"Test results - Loss: {loss} - Accuracy: {100 * acc}%"
    assert acc >= 0.8, acc           # the synthetic reviews are easy; the majority is ~50%
