"""A user's program over cylstm's public API, checked by ``mypy --strict``
(tests/typing/test_mypy.py) and run by the same test.

It holds README.md's snippets and the seed tutorials' programs
(/work/shared/seeds, as tests/models/test_tutorials.py runs them) written as a
typed program would write them: where Keras returns an array or a list
(``return_state=True``), the program narrows with ``isinstance``.
Sizes are small so that it runs in a second or two.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import numpy.typing as npt

import cylstm
import cylstm.interop
from cylstm.callbacks import EarlyStopping, History, LambdaCallback
from cylstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking
from cylstm.models import Sequential, load_model
from cylstm.preprocessing.sequence import pad_sequences

Floats = npt.NDArray[np.float32]


def readme_ten_lines() -> Tuple[int, ...]:
    inputs = np.random.random((32, 10, 8)).astype("float32")
    lstm = cylstm.layers.LSTM(4)
    output = lstm(inputs)                                   # (32, 4)
    assert isinstance(output, np.ndarray) and output.shape == (32, 4)

    lstm = cylstm.layers.LSTM(4, return_sequences=True, return_state=True)
    whole_seq_output, final_memory_state, final_carry_state = lstm(inputs)
    print(whole_seq_output.shape, final_memory_state.shape, final_carry_state.shape)
    shape: Tuple[int, ...] = whole_seq_output.shape
    return shape


def readme_serving(tmp: Path) -> Tuple[npt.NDArray[np.float64], ...]:
    # A state dict as a server without torch loads it: NumPy arrays under torch's names.
    keras_style = cylstm.layers.LSTM(8)
    keras_style.build((None, 5, 6))
    state: Dict[str, npt.NDArray[np.float64]] = cylstm.interop.keras_to_torch_weights(
        *keras_style.get_weights())
    # (numpy's stub lets **kwds reach its allow_pickle argument, hence the ignore)
    np.savez(tmp / "lstm.npz", **state)  # type: ignore[arg-type]
    x = np.random.random((3, 5, 6)).astype("float32")
    with np.load(tmp / "lstm.npz", allow_pickle=False) as f:
        lstm = cylstm.nn.LSTM.from_torch(dict(f), batch_first=True).eval()
    output, (h_n, c_n) = lstm(x)          # torch.nn.LSTM's call, shapes and gate order
    sd = lstm.state_dict()
    keys = lstm.load_state_dict(sd, strict=True)
    assert not keys.missing_keys
    cell = cylstm.nn.LSTMCell(6, 8)
    h1, c1 = cell(x[:, 0])
    return output, h_n, c_n, h1, c1


def readme_training(tmp: Path) -> History:
    x_train = [list(np.random.randint(1, 5000, size=n)) for n in (40, 300, 500, 7)]
    y_train = np.array([0, 1, 1, 0])
    model = Sequential()
    model.add(Embedding(5000, 15, input_length=300))
    model.add(LSTM(10))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(pad_sequences(x_train, maxlen=300), y_train, batch_size=128,
                        epochs=1, validation_split=0.25, verbose=0)
    model.save(str(tmp / "reviews.cylstm"))  # JSON config + .npz weights, without pickle
    again = load_model(tmp / "reviews.cylstm")
    loss = again.evaluate(pad_sequences(x_train, maxlen=300), y_train, verbose=0)
    assert isinstance(loss, list)
    return history


def readme_threads() -> int:
    cylstm.set_num_threads(2)
    with cylstm.threads(1):
        inner = cylstm.get_num_threads()
    return inner + len(cylstm.blas_info())


def readme_training_contract() -> npt.NDArray[np.float32]:
    layer = LSTM(4, return_sequences=True)
    x = np.random.random((2, 5, 3)).astype("float32")
    y, backprop = layer.forward_train(x)
    dx = backprop(np.ones_like(y))
    layer.zero_grad()
    grads: Dict[str, npt.NDArray[np.float32]] = dict(layer.grads)
    h, states = layer.step(x[:, 0], [np.zeros((2, 4), "float32"), np.zeros((2, 4), "float32")])
    assert h.shape == (2, 4) and len(states) == 2 and len(grads) == 3
    return np.asarray(dx, dtype=np.float32)


def seed_geeksforgeeks() -> None:
    X = np.random.random((200, 10, 5))
    y = np.random.randint(0, 2, size=(200, 1))
    model = Sequential([
        LSTM(64, return_sequences=False, input_shape=(10, 5)),
        Dense(1, activation='sigmoid')
    ])
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    model.summary()
    history = model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    accuracy: List[float] = history.history["accuracy"]
    lstm_layer = LSTM(50, return_sequences=True, return_state=True)
    output, hidden_state, cell_state = lstm_layer(np.random.normal(size=(5, 10, 5)))
    print(output.shape, hidden_state.shape, cell_state.shape, len(accuracy))


def seed_apx() -> None:
    lstm_layer = cylstm.layers.LSTM(units=64)
    batch_size = 32
    timesteps = 10
    features = 8
    input_data = np.random.normal(size=(batch_size, timesteps, features)).astype("float32")
    model = cylstm.models.Sequential([
        cylstm.layers.LSTM(units=64, input_shape=(timesteps, features), return_sequences=True),
        cylstm.layers.Dense(1)
    ])
    output = model(input_data)
    assert isinstance(output, np.ndarray)
    print("Input shape:", input_data.shape)
    spec = model.layers[0].output
    assert isinstance(spec, cylstm.layers.SymbolicTensor)
    print("LSTM Output shape:", spec.shape)
    print("Final Output shape:", output.shape, lstm_layer.units)


def seed_regression(kind: str) -> float:
    samples, features, sequence_length = 100, 1, 20
    data = np.random.rand(samples, features)
    X_list = []
    y_list = []
    span = 2 * sequence_length if kind == "seq2seq" else sequence_length
    for i in range(len(data) - span):
        X_list.append(data[i: i + sequence_length])
        y_list.append(data[i + sequence_length: i + span] if kind == "seq2seq"
                      else data[i + sequence_length])
    X = np.array(X_list)
    y = np.array(y_list)
    layers: List[cylstm.layers.Layer] = [
        LSTM(units=8, input_shape=(sequence_length, features),
             return_sequences=kind != "many_to_one")]
    if kind == "stacked":
        layers.append(LSTM(units=8, return_sequences=False))
    layers.append(Dense(units=features if kind == "seq2seq" else 1))
    model = cylstm.models.Sequential(layers)
    model.compile(optimizer='adam', loss='mse')
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    predictions = model.predict(X, verbose=0)
    assert isinstance(predictions, np.ndarray)
    return float(np.mean(predictions))


def seed_lstm_reference_page() -> None:
    inputs = np.random.random((32, 10, 8))
    lstm = cylstm.layers.LSTM(4, activation="tanh", recurrent_activation="sigmoid",
                              dropout=0.1, recurrent_dropout=0.1, seed=1,
                              kernel_initializer=cylstm.initializers.GlorotUniform(seed=1),
                              kernel_regularizer=cylstm.regularizers.L2(0.01),
                              recurrent_constraint=cylstm.constraints.MaxNorm(3.0),
                              stateful=False, go_backwards=True, use_cudnn="auto")
    out = lstm(inputs, training=True)
    config = lstm.get_config()
    clone = cylstm.layers.LSTM.from_config(config)
    assert isinstance(out, np.ndarray) and clone.units == 4
    stateful = LSTM(3, stateful=True)
    stateful(inputs)
    stateful.reset_state()


def seed_machinecurve() -> None:
    max_sequence_length = 30
    num_distinct_words = 100
    embedding_output_dims = 15
    x_train = [list(np.random.randint(1, num_distinct_words, size=n)) for n in (5, 40, 12, 30)]
    y_train = np.array([0, 1, 1, 0])
    padded_inputs = pad_sequences(x_train, maxlen=max_sequence_length, value=0.0)
    model = Sequential()
    model.add(Embedding(num_distinct_words, embedding_output_dims,
                        input_length=max_sequence_length))
    model.add(LSTM(10))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=0.001),
                  loss=cylstm.losses.BinaryCrossentropy(),
                  metrics=[cylstm.metrics.BinaryAccuracy()])
    model.summary()
    model.fit(padded_inputs, y_train, batch_size=2, epochs=1, verbose=0,
              validation_split=0.25,
              callbacks=[EarlyStopping(monitor="val_loss", patience=1),
                         LambdaCallback(on_epoch_end=lambda epoch, logs: None)])
    test_results = model.evaluate(padded_inputs, y_train, verbose=0, return_dict=True)
    assert isinstance(test_results, dict)
    print(f"Test results - Loss: {test_results['loss']} - "
          f"Accuracy: {100 * test_results['binary_accuracy']}%")


def other_layers() -> None:
    x = np.random.random((4, 6, 3)).astype("float32")
    x[:, -2:] = 0.0
    model = Sequential([Masking(mask_value=0.0, input_shape=(6, 3)),
                        Bidirectional(LSTM(5, return_sequences=True), merge_mode="concat"),
                        Dropout(0.2, seed=0),
                        Dense(2, activation="softmax")])
    model.compile(optimizer=cylstm.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    y = cylstm.utils.to_categorical(np.random.randint(0, 2, size=(4, 6)), num_classes=2)
    model.train_on_batch(x, y)
    weights = model.get_weights()
    model.set_weights(weights)
    print(model.count_params(), cylstm.activations.serialize(cylstm.activations.get("tanh")),
          cylstm.initializers.serialize(cylstm.initializers.get("orthogonal")),
          cylstm.regularizers.serialize(cylstm.regularizers.get("l2")),
          cylstm.constraints.serialize(cylstm.constraints.get("non_neg")),
          cylstm.losses.get("mse").name, cylstm.metrics.get("mae").name,
          cylstm.optimizers.get("rmsprop").learning_rate)
    cylstm.utils.set_random_seed(0)
    assert cylstm.utils.get_random_seed() == 0


def load_from_other_frameworks(keras_path: str, onnx_path: str) -> None:
    """Not run (it needs saved Keras and ONNX files); type-checked only."""
    converted = cylstm.from_keras(keras_path)
    if isinstance(converted, Sequential):
        converted.predict(np.zeros((1, 5, 3)))
    onnx_lstm = cylstm.from_onnx(onnx_path)
    y, y_h, y_c = onnx_lstm.run(np.zeros((5, 1, 3), "float32"))
    output, (h_n, c_n) = onnx_lstm(np.zeros((5, 1, 3), "float32"))
    print(y.shape, y_h.shape, y_c.shape, output.shape, h_n.shape, c_n.shape)


def main() -> None:
    cylstm.utils.set_random_seed(0)
    readme_ten_lines()
    readme_threads()
    readme_training_contract()
    with tempfile.TemporaryDirectory() as tmp:
        readme_serving(Path(tmp))
        readme_training(Path(tmp))
    seed_geeksforgeeks()
    seed_apx()
    for kind in ("many_to_one", "stacked", "seq2seq"):
        seed_regression(kind)
    seed_lstm_reference_page()
    seed_machinecurve()
    other_layers()


if __name__ == "__main__":
    main()
