"""Sequential: building, calling with masks, compile/fit/evaluate/predict (against
Keras 3 runs from goldens and on a small task), History, EarlyStopping, progress
output at verbose 0/1/2, weights and config."""
import re

import numpy as np
import pytest

import cylstm
from cylstm import callbacks, layers, losses, metrics, optimizers
from cylstm.layers import LSTM, Bidirectional, Dense, Embedding, Masking

from .conftest import case_params

ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- building and calling ---------------------------------------------------------

def test_built_as_soon_as_the_first_layer_declares_its_input():
    model = cylstm.Sequential([LSTM(64, input_shape=(10, 8), return_sequences=True), Dense(1)])
    assert model.built
    assert model.layers[0].output.shape == (None, 10, 64)
    assert model.layers[1].output.shape == (None, 10, 1)
    assert model.input_shape == (None, 10, 8)
    assert model.output_shape == (None, 10, 1)
    x = np.random.default_rng(0).normal(size=(32, 10, 8)).astype("float32")
    y = model(x)
    assert y.shape == (32, 10, 1) and y.dtype == np.float32


def test_built_incrementally_by_add_and_lazily_by_call():
    model = cylstm.Sequential()
    model.add(Embedding(50, 4, input_length=7))
    assert model.built and model.layers[0].output.shape == (None, 7, 4)
    model.add(LSTM(3))
    assert model.layers[1].output.shape == (None, 3)
    lazy = cylstm.Sequential([LSTM(3), Dense(2)])
    assert not lazy.built
    out = lazy(np.zeros((5, 4, 6)))
    assert lazy.built and out.shape == (5, 2)
    assert lazy.layers[0].output.shape == (None, 3)
    other = cylstm.Sequential([LSTM(3), Dense(2)])
    other.build((None, 4, 6))
    assert other.count_params() == lazy.count_params() == 4 * 3 * (6 + 3 + 1) + 8


def test_masks_flow_from_embedding_through_lstm_to_dense():
    emb = Embedding(10, 3, mask_zero=True)
    lstm = LSTM(4, return_sequences=True)
    dense = Dense(2)
    model = cylstm.Sequential([emb, lstm, dense])
    x = np.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    out = model(x)
    e = emb(x)
    manual = dense(lstm(e, mask=x != 0))
    np.testing.assert_array_equal(out, manual)
    assert not np.allclose(dense(lstm(e)), out)    # the mask did change the result
    seq = cylstm.Sequential([Masking(input_shape=(5, 2)), LSTM(3)])
    xs = np.random.default_rng(0).normal(size=(2, 5, 2))
    xs[0, :2] = 0.0
    np.testing.assert_allclose(seq(xs)[0], seq.layers[1](xs[:1, 2:])[0], rtol=1e-5, atol=1e-6)


def test_add_errors():
    model = cylstm.Sequential([Dense(2, name="d", input_shape=(3,))])
    with pytest.raises(ValueError, match="unique names"):
        model.add(Dense(2, name="d"))
    with pytest.raises(TypeError, match="Layer"):
        model.add("dense")
    state = cylstm.Sequential([LSTM(2, return_state=True, input_shape=(3, 2))])
    with pytest.raises(ValueError, match="single output"):
        state.add(Dense(1))
    assert model.pop().name == "d" and model.layers == []


def test_weights_and_config_round_trip():
    model = cylstm.Sequential([Embedding(20, 3, input_length=4, mask_zero=True),
                               LSTM(5, return_sequences=True),
                               Bidirectional(LSTM(2)), Dense(1, activation="sigmoid")],
                              name="roundtrip")
    x = np.random.default_rng(1).integers(0, 20, (6, 4))
    clone = cylstm.models.model_from_json(model.to_json())
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert clone.name == "roundtrip" and clone.count_params() == model.count_params()
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(x), model(x))
    with pytest.raises(ValueError, match="expects"):
        clone.set_weights(model.get_weights()[:-1])


# -- training against Keras 3 --------------------------------------------------------

def _fit_model(case):
    name = case["case"]
    if name == "classifier_adam_bce":
        model = cylstm.Sequential([LSTM(4, input_shape=(6, 3)),
                                   Dense(1, activation="sigmoid", kernel_regularizer="l2")])
        model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy",
                      metrics=["accuracy"])
    elif name == "seq2seq_rmsprop_mse":
        model = cylstm.Sequential([LSTM(5, return_sequences=True, input_shape=(5, 2)),
                                   Dense(1)])
        model.compile(optimizer=optimizers.RMSprop(0.01), loss="mse", metrics=["mae"])
    else:
        model = cylstm.Sequential([Embedding(20, 4, mask_zero=True, input_length=7),
                                   LSTM(3, return_sequences=True),
                                   Dense(3, activation="softmax")])
        model.compile(optimizer=optimizers.SGD(0.5, momentum=0.9, nesterov=True),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("case,arrays", case_params("fit.npz"))
def test_fit_evaluate_predict_match_keras(case, arrays):
    model = _fit_model(case)
    model.set_weights([arrays[f"init{i}"] for i in range(case["n_weights"])])
    x, y = arrays["x"], arrays["y"]
    kwargs = dict(case["fit_kwargs"])
    if case["val_first"]:
        kwargs["validation_data"] = (x[:case["val_first"]], y[:case["val_first"]])
    history = model.fit(x, y, verbose=0, shuffle=False, **kwargs)
    assert list(history.history) == case["history_keys"]
    for key in case["history_keys"]:
        np.testing.assert_allclose(history.history[key], arrays[f"history_{key}"],
                                   rtol=2e-4, atol=2e-5, err_msg=key)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, arrays[f"final{i}"], rtol=2e-4, atol=2e-5,
                                   err_msg=f"weight {i}")
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays["pred"], rtol=2e-4,
                               atol=2e-5)
    np.testing.assert_allclose(np.atleast_1d(model.evaluate(x, y, verbose=0)),
                               case["evaluate"], rtol=2e-4, atol=2e-5)


def _task(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 2)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")
    return x, y


def test_small_task_reaches_fixed_accuracy():
    x, y = _task()
    model = cylstm.Sequential([LSTM(8, input_shape=(8, 2)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.optimizer.learning_rate = 0.02
    history = model.fit(x, y, batch_size=16, epochs=12, verbose=0, validation_split=0.2)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.epoch == list(range(12))
    assert history.params == {"verbose": 0, "epochs": 12, "steps": 12}
    assert model.history is history
    assert history.history["loss"][-1] < history.history["loss"][0]
    xt, yt = _task(200, seed=1)
    loss, acc = model.evaluate(xt, yt, verbose=False)
    assert acc >= 0.9, acc
    assert isinstance(loss, float) and isinstance(acc, float)
    # the last val_* values are evaluate on the last 20% with the final weights
    np.testing.assert_allclose(model.evaluate(x[192:], y[192:], verbose=0),
                               [history.history["val_loss"][-1],
                                history.history["val_accuracy"][-1]], rtol=1e-6)


def test_evaluate_and_predict_shapes_and_forms():
    x, y = _task(70)
    model = cylstm.Sequential([LSTM(4, input_shape=(8, 2)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(), loss=losses.BinaryCrossentropy())
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=["accuracy", "mse", metrics.MeanAbsoluteError()])
    values = model.evaluate(x, y, verbose=0, batch_size=9)
    assert len(values) == 4
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(d) == ["accuracy", "loss", "mean_absolute_error", "mse"]
    assert d["loss"] == pytest.approx(values[0]) and d["accuracy"] == pytest.approx(values[1])
    pred = model.predict(x, batch_size=16, verbose=0)
    np.testing.assert_allclose(pred, model(x), rtol=1e-6, atol=1e-7)
    assert pred.shape == (70, 1)
    stateful = cylstm.Sequential([LSTM(3, return_sequences=True, return_state=True,
                                       input_shape=(8, 2))])
    seq, h, c = stateful.predict(x, batch_size=32, verbose=0)
    assert seq.shape == (70, 8, 3) and h.shape == c.shape == (70, 3)


def test_regularization_losses_are_added_and_constraints_applied():
    x, y = _task(40)
    plain = cylstm.Sequential([LSTM(3, input_shape=(8, 2)), Dense(1)])
    reg = cylstm.Sequential([LSTM(3, input_shape=(8, 2)),
                             Dense(1, kernel_regularizer=cylstm.regularizers.L2(0.5),
                                   kernel_constraint=cylstm.constraints.NonNeg())])
    reg.set_weights(plain.get_weights())
    for m in (plain, reg):
        m.compile(optimizer="sgd", loss="mse")
    penalty = 0.5 * float(np.sum(reg.layers[1].kernel ** 2))
    assert reg.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0)
                                                          + penalty, rel=1e-5)
    reg.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert (reg.layers[1].kernel >= 0).all()


def test_bidirectional_and_frozen_layers_train_as_expected():
    x, y = _task(32)
    model = cylstm.Sequential([Bidirectional(LSTM(3, return_sequences=True),
                                             input_shape=(8, 2)), LSTM(2), Dense(1)])
    model.layers[1].trainable = False
    model.compile(optimizer="adam", loss="mse")
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = model.get_weights()
    n_bi = len(model.layers[0].weights)
    assert all(not np.array_equal(a, b) for a, b in zip(before[:n_bi], after[:n_bi]))
    for a, b in zip(before[n_bi:n_bi + 3], after[n_bi:n_bi + 3]):
        np.testing.assert_array_equal(a, b)        # the frozen LSTM did not move


def test_train_on_batch_and_shuffle_reproducibility():
    x, y = _task(48)

    def run():
        cylstm.utils.set_random_seed(7)
        m = cylstm.Sequential([LSTM(4, input_shape=(8, 2)), Dense(1, activation="sigmoid")])
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        m.fit(x, y, epochs=2, batch_size=10, verbose=0)
        return m
    a, b = run(), run()
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    loss, acc = a.train_on_batch(x[:10], y[:10])
    assert np.isfinite(loss) and 0 <= acc <= 1


def test_fit_errors():
    model = cylstm.Sequential([Dense(1, input_shape=(3,))])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((4, 3)), np.zeros(4))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="cardinality"):
        model.fit(np.zeros((4, 3)), np.zeros(5), verbose=0)
    with pytest.raises(ValueError, match="not sufficient"):
        model.fit(np.zeros((1, 3)), np.zeros(1), validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(np.zeros((4, 3)), np.zeros(4), batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        model.predict(np.zeros((0, 3)), verbose=0)
    with pytest.raises(ValueError, match="Could not interpret loss"):
        model.compile(loss="no_such_loss")
    with pytest.raises(ValueError, match="Could not interpret metric"):
        model.compile(loss="mse", metrics=["no_such_metric"])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="`callbacks` must be a list"):
        model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0, callbacks=5)
    with pytest.raises(TypeError, match="Callback instances; got function"):
        model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0, callbacks=[lambda: None])


# -- progress output -------------------------------------------------------------------

def _fit_quiet_model():
    x, y = _task(40)
    model = cylstm.Sequential([LSTM(3, input_shape=(8, 2)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model, x, y


def test_verbose_0_prints_nothing(capsys):
    model, x, y = _fit_quiet_model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model, x, y = _fit_quiet_model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=2, validation_split=0.25)
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    pattern = (r"2/2 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
               r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}")
    assert re.fullmatch(pattern, lines[1]), lines[1]
    assert re.fullmatch(pattern, lines[3]), lines[3]
    model.fit(x, y, epochs=1, batch_size=40, verbose=2)
    assert re.fullmatch(r"1/1 - \d+s - \d+(ms|us|s)/step - accuracy: \S+ - loss: \S+\n",
                        capsys.readouterr().out)      # no "Epoch 1/1" line, as Keras


def test_verbose_1_draws_keras_progress_bar(capsys):
    model, x, y = _fit_quiet_model()
    model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25)   # verbose='auto'
    out = capsys.readouterr().out
    plain = ANSI.sub("", out)
    assert plain.startswith("Epoch 1/2\n")
    assert "\r" in out and "\x1b[1m" in out        # redrawn in place, Keras's styling
    final = r"2/2 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - " \
            r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}"
    epochs = plain.split("Epoch 2/2\n")
    assert len(epochs) == 2
    for chunk in epochs:
        last_frame = chunk.rstrip("\n").split("\r")[-1].rstrip()
        assert re.fullmatch(final, last_frame), repr(last_frame)
    values = model.evaluate(x, y, verbose=1)
    frame = ANSI.sub("", capsys.readouterr().out).rstrip("\n").split("\r")[-1].rstrip()
    assert re.fullmatch(r"2/2 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \d\.\d{4} - "
                        r"loss: \d\.\d{4}", frame), frame
    assert f"loss: {values[0]:.4f}" in frame


def test_progbar_shows_eta_while_running(capsys):
    bar = cylstm.utils.Progbar(target=4, interval=0.0)
    bar.update(1, [("loss", 0.69)])
    running = ANSI.sub("", capsys.readouterr().out)
    assert re.fullmatch(r"\r1/4 ━{5}━{15} \d+s \d+(ms|us|s)/step - loss: 0\.6900", running)
    bar.update(4, [("loss", 0.5)])
    done = ANSI.sub("", capsys.readouterr().out)
    assert done.endswith("\n") and "4/4 ━━━━━━━━━━━━━━━━━━━━" in done


# -- callbacks ------------------------------------------------------------------------

class _FakeModel:
    def __init__(self):
        self.stop_training = False
        self.w = [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.w]

    def set_weights(self, weights):
        self.w = [w.copy() for w in weights]


def _drive(cb, values, key="val_loss"):
    model = _FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    stopped_at = None
    for epoch, v in enumerate(values):
        model.w = [np.array([float(epoch)])]
        cb.on_epoch_end(epoch, {key: v})
        if model.stop_training:
            stopped_at = epoch
            break
    cb.on_train_end()
    return stopped_at, model


def test_early_stopping_keras_rules():
    assert _drive(callbacks.EarlyStopping(), [1.0, 0.9, 0.95, 0.8])[0] == 2
    assert _drive(callbacks.EarlyStopping(patience=2), [1.0, 1.1, 1.2, 0.5])[0] == 2
    assert _drive(callbacks.EarlyStopping(patience=2), [1.0, 1.1, 0.9, 1.2, 1.3])[0] == 4
    # min_delta: an improvement smaller than it does not count
    assert _drive(callbacks.EarlyStopping(min_delta=0.2), [1.0, 0.9])[0] == 1
    # 'auto' maximises accuracies
    assert _drive(callbacks.EarlyStopping(monitor="val_accuracy"), [0.5, 0.6, 0.55],
                  key="val_accuracy")[0] == 2
    # start_from_epoch ignores the warm-up
    assert _drive(callbacks.EarlyStopping(start_from_epoch=2), [1.0, 2.0, 3.0, 4.0])[0] == 3
    # baseline: improvements that do not beat it do not reset the wait
    assert _drive(callbacks.EarlyStopping(patience=2, baseline=0.5), [1.0, 1.1])[0] == 1
    assert _drive(callbacks.EarlyStopping(patience=2), [1.0, 1.1])[0] is None
    stopped, model = _drive(callbacks.EarlyStopping(patience=1, restore_best_weights=True),
                            [1.0, 0.5, 0.7, 0.9])
    assert stopped == 2 and model.w[0][0] == 1.0         # the best epoch's weights


def test_early_stopping_in_fit_and_history(capsys):
    x, y = _task(48)
    model = cylstm.Sequential([LSTM(3, input_shape=(8, 2)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    es = callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=1, verbose=1)
    seen = []
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0,
                        callbacks=[es, callbacks.LambdaCallback(
                            on_epoch_end=lambda epoch, logs: seen.append(sorted(logs)))])
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2
    assert seen == [["loss"], ["loss"]]
    assert capsys.readouterr().out == "Epoch 2: early stopping\n"
    with pytest.warns(UserWarning, match="not available"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_initial_epoch_and_epoch_numbers():
    x, y = _task(16)
    model = cylstm.Sequential([LSTM(2, input_shape=(8, 2)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2] and history.params["epochs"] == 3


# -- configs written by Keras, utils ------------------------------------------------------

def test_loads_a_sequential_config_written_by_keras():
    import json
    import zipfile

    from .conftest import TRAINING_GOLDEN
    with zipfile.ZipFile(TRAINING_GOLDEN / "keras_model.keras") as zf:
        config = json.loads(zf.read("config.json"))
    model = cylstm.models.model_from_config(config)    # InputLayer + LSTM(2) + Dense(1)
    assert model.input_shape == (None, 4, 3)
    assert [type(l).__name__ for l in model.layers] == ["LSTM", "Dense"]
    assert model.count_params() == 4 * 2 * (3 + 2 + 1) + 3


def test_input_spec_as_first_element():
    model = cylstm.Sequential([layers.SymbolicTensor((None, 6, 2), "float32"), LSTM(3)])
    assert model.built and model.layers[0].output.shape == (None, 3)


def test_to_categorical_and_set_random_seed():
    np.testing.assert_array_equal(cylstm.utils.to_categorical([0, 2, 1]),
                                  [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert cylstm.utils.to_categorical([[1], [0]], num_classes=3).shape == (2, 3)
    cylstm.utils.set_random_seed(5)
    a = cylstm.Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)]).get_weights()
    cylstm.utils.set_random_seed(5)
    b = cylstm.Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)]).get_weights()
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="integer"):
        cylstm.utils.set_random_seed(1.5)


def test_sample_and_class_weights():
    x, y = _task(20)
    model = cylstm.Sequential([LSTM(2, input_shape=(8, 2)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    assert model.train_on_batch(x, y, class_weight={0: 0.0, 1: 0.0}) == 0.0
    full = model.evaluate(x, y, verbose=0)
    half = model.evaluate(x, y, sample_weight=np.full(20, 0.5), verbose=0)
    assert half == pytest.approx(full / 2, rel=1e-6)
    with pytest.raises(ValueError, match="no weight for class"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=0)
