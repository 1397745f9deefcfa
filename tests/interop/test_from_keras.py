"""cylstm.from_keras against model files and predictions written by Keras 3.15 and
tf.keras 2.21 (tests/golden/keras_files/, made by tests/golden/make_keras_files.py).

Reading files needs h5py (a test extra); neither Keras nor TensorFlow is needed,
except by the live-object tests at the end, which skip without keras.
"""
import json
import shutil
import sys
import zipfile

import numpy as np
import pytest

import cylstm
from cylstm.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking
from tests.conftest import GOLDEN, TOL

try:
    import h5py
except ImportError:      # the error tests that need no h5py still run
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason="reading Keras files needs h5py")

FILES = GOLDEN / "keras_files"
# Every model file with its predictions (<name>.npz).
CASES = [("embed_lstm_bidi_dense", ".keras"), ("embed_lstm_bidi_dense", ".h5"),
         ("lstm_dense", ".keras"), ("lstm_dense", ".h5"),
         ("lstm_go_backwards", ".keras"), ("lstm_go_backwards", ".h5"),
         ("masking_dropout_lstm_dense", ".keras"), ("masking_dropout_lstm_dense", ".h5"),
         ("tfkeras2_masking_lstm_dense", ".h5")]
STRUCTURE = {
    "embed_lstm_bidi_dense": ([Embedding, LSTM, Bidirectional, Dense], (None, None)),
    "lstm_dense": ([LSTM, Dense], (None, None, 4)),
    "lstm_go_backwards": ([LSTM], (None, None, 3)),
    "masking_dropout_lstm_dense": ([Masking, LSTM, Dropout, LSTM, Dense], (None, None, 3)),
    "tfkeras2_masking_lstm_dense": ([Masking, LSTM, Dense], (None, None, 3)),
}


def _golden(name):
    with np.load(FILES / f"{name}.npz", allow_pickle=False) as z:
        return z["x"], z["y"], json.loads(str(z["versions"]))


def _expect_value_error(path, *fragments):
    with pytest.raises(ValueError) as info:
        cylstm.from_keras(path)
    message = str(info.value)
    for fragment in (str(path),) + fragments:
        assert fragment in message, message
    return message


def test_exported_at_top_level():
    assert cylstm.from_keras is cylstm.interop.from_keras
    assert "from_keras" in cylstm.__all__ and "from_keras" in cylstm.interop.__all__


# -- files written by Keras ----------------------------------------------------------

@needs_h5py
@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
@pytest.mark.parametrize("name,ext", CASES, ids=[n + e for n, e in CASES])
def test_file_predicts_like_keras(name, ext, as_path):
    path = FILES / f"{name}{ext}"
    x, y, versions = _golden(name)
    model = cylstm.from_keras(path if as_path else str(path))
    assert isinstance(model, cylstm.Sequential) and model.built and not model.compiled
    classes, input_shape = STRUCTURE[name]
    assert [type(layer) for layer in model.layers] == classes
    assert model.input_shape == input_shape
    got = model.predict(x, verbose=0)
    assert got.shape == y.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, y, **TOL["float32"])
    np.testing.assert_array_equal(model(x), got)
    assert versions["keras"] == "3.15.1"


@needs_h5py
def test_converted_configs_are_keras():
    model = cylstm.from_keras(FILES / "embed_lstm_bidi_dense.keras")
    assert model.name == "tagger"
    emb, lstm, bidi, dense = model.layers
    assert [l.name for l in model.layers] == ["embedding", "lstm", "bidirectional", "dense"]
    assert (emb.input_dim, emb.output_dim, emb.mask_zero) == (50, 8, True)
    assert (lstm.units, lstm.return_sequences, lstm.activation.__name__) == (6, True, "tanh")
    assert bidi.merge_mode == "concat" and bidi.forward_layer.units == 5
    assert not bidi.return_sequences and bidi.backward_layer.go_backwards
    assert dense.units == 3 and model.output_shape == (None, 3)
    bare = cylstm.from_keras(FILES / "lstm_go_backwards.keras").layers[0]
    assert bare.go_backwards and bare.return_sequences and bare.units == 5


@needs_h5py
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_masking_and_dropout_configs_carry_over(ext):
    model = cylstm.from_keras(FILES / f"masking_dropout_lstm_dense{ext}")
    masking, first, dropout, second, dense = model.layers
    assert masking.mask_value == 0.0 and dropout.rate == 0.4
    assert first.return_sequences and (first.units, second.units, dense.units) == (5, 3, 2)
    x, y, _ = _golden("masking_dropout_lstm_dense")
    assert (x == 0).all(axis=-1).any()          # padded rows: the mask matters
    unmasked = cylstm.Sequential(model.layers[1:])
    assert not np.allclose(unmasked.predict(x, verbose=0), y, atol=1e-3)


@needs_h5py
@pytest.mark.parametrize("name", ["embed_lstm_bidi_dense", "lstm_dense", "lstm_go_backwards",
                                  "masking_dropout_lstm_dense"])
def test_keras_and_h5_files_hold_the_same_weights(name):
    a = cylstm.from_keras(FILES / f"{name}.keras").get_weights()
    b = cylstm.from_keras(FILES / f"{name}.h5").get_weights()
    assert len(a) == len(b) > 0
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


@needs_h5py
def test_unzipped_archive_folder(tmp_path):
    folder = tmp_path / "model"
    with zipfile.ZipFile(FILES / "lstm_dense.keras") as zf:
        zf.extractall(folder)
    x, y, _ = _golden("lstm_dense")
    np.testing.assert_allclose(cylstm.from_keras(folder).predict(x, verbose=0), y,
                               **TOL["float32"])
    (folder / "model.weights.h5").unlink()
    _expect_value_error(folder, "not an unzipped Keras model")


# -- weights only ----------------------------------------------------------------------

def _lstm_dense(units=7, features=4):
    return cylstm.Sequential([LSTM(units, input_shape=(None, features)), Dense(1)])


@needs_h5py
def test_weights_only_file_loads_into_a_matching_model():
    x, y, _ = _golden("lstm_dense")
    model = _lstm_dense()                      # its own layer names, e.g. lstm_3 / dense_2
    out = cylstm.from_keras(FILES / "lstm_dense.weights.h5", model=model)
    assert out is model
    np.testing.assert_allclose(model.predict(x, verbose=0), y, **TOL["float32"])
    reference = cylstm.from_keras(FILES / "lstm_dense.keras")
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


@needs_h5py
def test_weights_only_file_needs_a_model():
    _expect_value_error(FILES / "lstm_dense.weights.h5", "weights only",
                        "from_keras(path, model=model)")


@needs_h5py
def test_weights_only_file_into_a_different_model():
    path = FILES / "lstm_dense.weights.h5"
    with pytest.raises(ValueError, match=r"kernel.*shape \(4, 24\); got .* shape \(4, 28\)"):
        cylstm.from_keras(path, model=_lstm_dense(units=6))
    with pytest.raises(ValueError, match="not built"):
        cylstm.from_keras(path, model=cylstm.Sequential([LSTM(7), Dense(1)]))
    with pytest.raises(ValueError, match=r"no weights for layer.*group layers/dense_1"):
        cylstm.from_keras(path, model=cylstm.Sequential([
            LSTM(7, input_shape=(None, 4)), Dense(1), Dense(1)]))
    with pytest.raises(ValueError, match=r"groups \['lstm'\]"):
        cylstm.from_keras(path, model=cylstm.Sequential([
            Masking(input_shape=(None, 4)), Dropout(0.5), Dense(1)]))
    with pytest.raises(TypeError, match="`model` must be"):
        cylstm.from_keras(path, model="lstm_dense")


@needs_h5py
def test_legacy_weights_match_by_position_when_names_differ(tmp_path):
    """tf.keras 2's save_weights('x.h5') writes the model_weights group at the root."""
    x, y, _ = _golden("tfkeras2_masking_lstm_dense")
    source = FILES / "tfkeras2_masking_lstm_dense.h5"
    weights_only = tmp_path / "legacy_weights.h5"
    with h5py.File(source, "r") as src, h5py.File(weights_only, "w") as dst:
        for key, value in src["model_weights"].attrs.items():
            dst.attrs[key] = value
        for key in src["model_weights"]:
            src.copy(src["model_weights"][key], dst, name=key)
    for path in (weights_only, source):
        model = cylstm.Sequential([Masking(0.0, input_shape=(None, 3)),
                                   LSTM(4, return_sequences=True), Dense(2, activation="tanh")])
        assert cylstm.from_keras(path, model=model) is model
        np.testing.assert_allclose(model.predict(x, verbose=0), y, **TOL["float32"])
    with pytest.raises(ValueError, match="weights for 2 layer"):
        cylstm.from_keras(weights_only, model=cylstm.Sequential([Dense(2, input_shape=(3,))]))
    _expect_value_error(weights_only, "weights only")


@needs_h5py
def test_weights_into_a_single_layer():
    x, y, _ = _golden("lstm_go_backwards")
    layer = LSTM(5, return_sequences=True, go_backwards=True)
    layer.build((None, None, 3))
    assert cylstm.from_keras(FILES / "lstm_go_backwards.keras", model=layer) is layer
    np.testing.assert_allclose(layer(x), y, **TOL["float32"])


# -- errors ----------------------------------------------------------------------------

def _archive_with_config(path, config):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(config))
    return path


def _sequential(*layers):
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 5, 2]}}, *layers]}}


def _lstm_entry(name="lstm", units=3, module="keras.layers", **config):
    return {"module": module, "class_name": "LSTM",
            "config": {"name": name, "units": units, **config}}


@needs_h5py
def test_unsupported_layer_is_named():
    message = _expect_value_error(FILES / "conv1d.keras", "'Conv1D'")
    assert "LSTM" in message     # and what is supported


@needs_h5py
def test_unsupported_layers_in_configs(tmp_path):
    cases = {
        "gru": (_sequential({"class_name": "GRU", "config": {"name": "gru", "units": 3}}),
                "'GRU'"),
        "bidi_gru": (_sequential({"class_name": "Bidirectional", "config": {
            "name": "bidirectional", "layer": {"class_name": "GRU", "config": {"units": 3}}}}),
            "'GRU'"),
        "after_lstm": (_sequential(_lstm_entry(return_sequences=True), {
            "class_name": "Conv1D", "config": {"name": "c"}}), "'Conv1D'"),
        "custom_lstm": (_sequential(_lstm_entry(module="my_project.layers")),
                        "'my_project.layers'"),
        "functional": ({"class_name": "Functional", "config": {"layers": []}},
                       "'Functional'"),
    }
    for name, (config, fragment) in cases.items():
        _expect_value_error(_archive_with_config(tmp_path / f"{name}.keras", config), fragment)
    # The same through a legacy .h5 file's model_config attribute.
    path = tmp_path / "conv.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cases["after_lstm"][0])
        f.create_group("model_weights").attrs["layer_names"] = []
    _expect_value_error(path, "'Conv1D'")


@needs_h5py
def test_archive_without_weights(tmp_path):
    path = _archive_with_config(tmp_path / "no_weights.keras", _sequential(_lstm_entry()))
    _expect_value_error(path, "no 'model.weights.h5'")


def test_not_a_keras_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("model weights, honest\n")
    _expect_value_error(text, "not a Keras file")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    _expect_value_error(empty, "empty")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.md", "hello")
    pytest.importorskip("h5py")
    _expect_value_error(other, "without 'config.json'")


@needs_h5py
def test_a_cylstm_model_file_is_pointed_to_load_model(tmp_path):
    path = tmp_path / "model.cylstm"
    _lstm_dense().save(path)
    _expect_value_error(path, "cylstm.models.load_model")


@needs_h5py
def test_hdf5_file_that_is_not_keras(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    _expect_value_error(path, "not a Keras model or weights file")
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = "{not json"
    _expect_value_error(path, "not valid JSON")


@needs_h5py
@pytest.mark.parametrize("name", ["lstm_dense.keras", "lstm_dense.h5", "lstm_dense.weights.h5"])
def test_truncated_file(tmp_path, name):
    data = (FILES / name).read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}_{name}"
        path.write_bytes(data[:cut])
        _expect_value_error(path, "truncated or corrupt")


@needs_h5py
def test_corrupt_archive_member(tmp_path):
    data = bytearray((FILES / "lstm_dense.keras").read_bytes())
    with zipfile.ZipFile(FILES / "lstm_dense.keras") as zf:
        info = zf.getinfo("model.weights.h5")
    data[info.header_offset + 30 + len(info.filename) + 3000] ^= 0xFF
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(data))
    _expect_value_error(path, "truncated or corrupt")


def test_missing_file(tmp_path):
    path = tmp_path / "missing.keras"
    with pytest.raises(FileNotFoundError, match="File not found") as info:
        cylstm.from_keras(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="File not found"):     # as cylstm.models.load_model
        cylstm.from_keras(str(path))


@pytest.mark.parametrize("name", ["lstm_dense.keras", "lstm_dense.h5"])
def test_missing_h5py(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "h5py", None)       # import h5py raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'cylstm\[interop\]'"):
        cylstm.from_keras(FILES / name)


def test_not_keras_objects():
    with pytest.raises(TypeError, match="expects a Keras layer"):
        cylstm.from_keras(42)
    with pytest.raises(TypeError, match="already cylstm"):
        cylstm.from_keras(LSTM(3))
    with pytest.raises(TypeError, match="not bytes"):
        cylstm.from_keras(b"model.keras")


# -- live Keras objects (need keras; skipped where it is not installed) -----------------

@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _randomize(obj, seed):
    rng = np.random.default_rng(seed)
    obj.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
                     for w in obj.get_weights()])


def test_live_lstm_and_bidirectional(keras):
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6, 4)).astype("float32")
    mask = np.ones((3, 6), bool)
    mask[1, :2] = False
    for i, klayer in enumerate([
            keras.layers.LSTM(5, return_sequences=True, go_backwards=True),
            keras.layers.LSTM(3, activation="relu", use_bias=False, return_state=True),
            keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True),
                                       merge_mode="sum"),
            keras.layers.Bidirectional(keras.layers.LSTM(2), merge_mode=None)]):
        klayer(x)
        _randomize(klayer, i)
        layer = cylstm.from_keras(klayer)
        assert type(layer).__name__ == type(klayer).__name__ and layer.built
        assert layer.name == klayer.name
        want = klayer(x, mask=mask)
        got = layer(x, mask=mask)
        want, got = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (want, got))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, np.asarray(w), **TOL["float32"])


def test_live_sequential(keras):
    x = np.random.default_rng(1).integers(0, 20, (4, 7)).astype("int32")
    kmodel = keras.Sequential([
        keras.Input((None,), dtype="int32"), keras.layers.Embedding(20, 6, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
        keras.layers.Dropout(0.3), keras.layers.LSTM(3), keras.layers.Dense(2, "softmax")])
    _randomize(kmodel, 2)
    model = cylstm.from_keras(kmodel)
    assert [type(l).__name__ for l in model.layers] == [type(l).__name__ for l in kmodel.layers]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(kmodel(x)),
                               **TOL["float32"])
    seq = np.random.default_rng(3).uniform(-1, 1, (3, 5, 2)).astype("float32")
    seq[0, 3:] = 0.0
    kmodel = keras.Sequential([keras.Input((5, 2)), keras.layers.Masking(),
                               keras.layers.LSTM(3, return_sequences=True), keras.layers.Dense(1)])
    _randomize(kmodel, 3)
    np.testing.assert_allclose(cylstm.from_keras(kmodel)(seq), np.asarray(kmodel(seq)),
                               **TOL["float32"])


def test_live_errors_and_unbuilt(keras):
    with pytest.raises(ValueError, match="'Conv1D'"):
        cylstm.from_keras(keras.layers.Conv1D(2, 3))
    with pytest.raises(ValueError, match="'GRU'"):
        cylstm.from_keras(keras.Sequential([keras.Input((4, 2)), keras.layers.GRU(3)]))
    inputs = keras.Input((4, 2))
    with pytest.raises(ValueError, match="'Functional'"):
        cylstm.from_keras(keras.Model(inputs, keras.layers.LSTM(3)(inputs)))
    layer = cylstm.from_keras(keras.layers.LSTM(3, dropout=0.2))
    assert not layer.built and layer.units == 3 and layer.dropout == 0.2
    with pytest.raises(TypeError, match="live Keras object"):
        cylstm.from_keras(keras.layers.LSTM(3), model=cylstm.Sequential())


def test_keras_reads_the_same_files(keras, tmp_path):
    """Keras itself predicts the golden values from the golden files (a check of the fixtures)."""
    for name, ext in CASES[:-1]:
        x, y, _ = _golden(name)
        np.testing.assert_allclose(np.asarray(keras.saving.load_model(FILES / f"{name}{ext}")(x)),
                                   y, **TOL["float32"])
    shutil.copy(FILES / "lstm_dense.weights.h5", tmp_path / "w.weights.h5")
    kmodel = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(7), keras.layers.Dense(1)])
    kmodel.load_weights(tmp_path / "w.weights.h5")
    x, y, _ = _golden("lstm_dense")
    np.testing.assert_allclose(np.asarray(kmodel(x)), y, **TOL["float32"])
