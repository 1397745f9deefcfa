"""model.save / cylstm.models.load_model: bit-identical round trips, optimizer state,
atomic writes, and clear ValueErrors for corrupt, truncated and foreign files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import cylstm
from cylstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking
from cylstm.models import load_model

from .conftest import TRAINING_GOLDEN


def _model():
    model = cylstm.Sequential([
        Embedding(30, 4, input_length=6, mask_zero=True),
        LSTM(5, return_sequences=True, kernel_regularizer="l2", dropout=0.1),
        Bidirectional(LSTM(3), merge_mode="sum"),
        Dropout(0.2),
        Dense(2, activation="softmax")], name="saved")
    model.compile(optimizer=cylstm.optimizers.Adam(0.01, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n=24):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 30, (n, 6))
    x[:5, :2] = 0
    return x, (x[:, -1] % 2).astype("float32")


@pytest.mark.parametrize("filename", ["model.cylstm", "model.keras", "weights", "m.h5"])
def test_round_trip_is_bit_identical(tmp_path, filename):
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / filename
    model.save(path)
    assert os.listdir(tmp_path) == [filename]            # one file, no temp left over
    loaded = load_model(str(path))
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_the_file_is_the_documented_format(tmp_path):
    model = _model()
    path = tmp_path / "m.cylstm"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "weights.npz"]
        config = json.loads(zf.read("config.json"))
        with np.load(io.BytesIO(zf.read("weights.npz")), allow_pickle=False) as npz:
            keys = set(npz.files)
    assert config["format"] == "cylstm.model" and config["format_version"] == 1
    assert config["model"]["class_name"] == "Sequential"
    assert [l["class_name"] for l in config["model"]["config"]["layers"]] == \
        ["Embedding", "LSTM", "Bidirectional", "Dropout", "Dense"]
    assert config["compile_config"]["loss"] == "sparse_categorical_crossentropy"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert config["compile_config"]["metrics"] == ["accuracy"]
    listed = {k for entry in config["weights"]["layers"] for k in entry["weights"]}
    assert listed == keys


def test_optimizer_state_resumes_training_exactly(tmp_path):
    x, y = _data()
    a = _model()
    for layer in a.layers:                 # no randomness in the continued run
        if isinstance(layer, Dropout):
            layer.rate = 0.0
    a.layers[1].cell.dropout = 0.0
    a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    a.save(tmp_path / "a.cylstm")
    b = load_model(tmp_path / "a.cylstm")
    for layer in b.layers:
        if isinstance(layer, Dropout):
            layer.rate = 0.0
    b.layers[1].cell.dropout = 0.0
    assert b.optimizer.iterations == a.optimizer.iterations == 3
    a.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    b.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_uncompiled_unbuilt_and_float64_models(tmp_path):
    plain = cylstm.Sequential([LSTM(3, dtype="float64", input_shape=(4, 2)),
                               Dense(1, dtype="float64")])
    plain.save(tmp_path / "p")
    loaded = load_model(tmp_path / "p")
    assert not loaded.compiled and loaded.layers[0].kernel.dtype == np.float64
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    np.testing.assert_array_equal(loaded(x), plain(x))
    unbuilt = cylstm.Sequential([Masking(), LSTM(2)])
    unbuilt.save(tmp_path / "u")
    assert not load_model(tmp_path / "u").built


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    model = _model()
    path = tmp_path / "m.cylstm"
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.cylstm"]
    monkeypatch.undo()
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    with pytest.raises(ValueError, match="directory"):
        model.save(tmp_path)


# -- bad files -------------------------------------------------------------------------

def _saved_bytes(tmp_path):
    model = _model()
    path = tmp_path / "good.cylstm"
    model.save(path)
    return path.read_bytes()


def _rewrite(tmp_path, name, config=None, weights=None, extra=None):
    """A zip like ours with a replaced config.json and/or weights.npz."""
    src = tmp_path / "good.cylstm"
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    if config is not None:
        members["config.json"] = config if isinstance(config, bytes) else \
            json.dumps(config).encode()
    if weights is not None:
        members["weights.npz"] = weights
    for n in extra or ():
        members.pop(n, None)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return path


def _good_config(tmp_path):
    with zipfile.ZipFile(tmp_path / "good.cylstm") as zf:
        return json.loads(zf.read("config.json"))


def _expect_value_error(path, match):
    with pytest.raises(ValueError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_truncated_and_corrupted_files(tmp_path):
    data = _saved_bytes(tmp_path)
    for cut in (10, len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}.cylstm"
        path.write_bytes(data[:cut])
        _expect_value_error(path, "Cannot load a cylstm model")
    flipped = bytearray(data)
    pos = data.find(b"PK\x03\x04", 10) - 200          # inside the first member's data
    flipped[pos] ^= 0xFF
    path = tmp_path / "flipped.cylstm"
    path.write_bytes(bytes(flipped))
    _expect_value_error(path, "Cannot load a cylstm model")


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("model weights, honest\n")
    _expect_value_error(text, "not a zip archive")
    keras_file = TRAINING_GOLDEN / "keras_model.keras"        # written by Keras 3
    _expect_value_error(keras_file, "Keras .keras file")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.md", "hello")
    _expect_value_error(other, "no 'config.json'")
    empty = tmp_path / "empty.cylstm"
    empty.write_bytes(b"")
    _expect_value_error(empty, "not a zip archive")
    with pytest.raises(FileNotFoundError, match="File not found"):
        load_model(tmp_path / "missing.cylstm")
    with pytest.raises(ValueError, match="File not found"):    # Keras raises ValueError
        load_model(tmp_path / "missing.cylstm")


def test_bad_contents_never_run_code(tmp_path):
    _saved_bytes(tmp_path)
    good = _good_config(tmp_path)
    _expect_value_error(_rewrite(tmp_path, "json.cylstm", config=b"{not json"),
                        "not valid JSON")
    _expect_value_error(_rewrite(tmp_path, "fmt.cylstm", config={**good, "format": "x"}),
                        "does not declare format")
    _expect_value_error(_rewrite(tmp_path, "ver.cylstm", config={**good, "format_version": 99}),
                        "newer than this cylstm")
    evil = json.loads(json.dumps(good))
    evil["model"]["config"]["layers"][0] = {"class_name": "Lambda", "config": {
        "function": "__import__('os').system('touch pwned')"}}
    _expect_value_error(_rewrite(tmp_path, "evil.cylstm", config=evil), "Unknown layer class")
    assert not os.path.exists("pwned")
    bad_shape = json.loads(json.dumps(good))
    bad_shape["model"]["config"]["layers"][1]["config"]["units"] = 7
    _expect_value_error(_rewrite(tmp_path, "shape.cylstm", config=bad_shape), "do not fit")
    _expect_value_error(_rewrite(tmp_path, "nowts.cylstm", extra=["weights.npz"]),
                        "no 'weights.npz'")
    pickled = io.BytesIO()
    np.savez(pickled, **{"layer.0.0": np.array([{"a": 1}], dtype=object)})
    _expect_value_error(_rewrite(tmp_path, "pickle.cylstm", weights=pickled.getvalue()),
                        "unpickling")
    missing = io.BytesIO()
    np.savez(missing, other=np.zeros(3))
    _expect_value_error(_rewrite(tmp_path, "missing.cylstm", weights=missing.getvalue()),
                        "lacks weights")
    _expect_value_error(_rewrite(tmp_path, "garbage.cylstm", weights=b"garbage"),
                        "weights.npz")
