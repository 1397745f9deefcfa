"""Write small Keras model files for ``cylstm.from_keras`` (tests/interop/test_from_keras.py).

Run from the repository root, in the dev environment that has TensorFlow, Keras 3
and tf_keras (Keras 2); none of them is a cylstm dependency:

    TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES=-1 \
        /work/devvenv/bin/python tests/golden/make_keras_files.py

Writes ``tests/golden/keras_files/``: a ``.keras`` archive and a legacy
full-model ``.h5`` written by Keras 3 for ``embed_lstm_bidi_dense``, ``lstm_dense``
and ``lstm_go_backwards``; ``lstm_dense.weights.h5`` (weights only);
``masking_dropout_lstm_dense`` (Masking, two LSTMs, Dropout, Dense; ``.keras``
and ``.h5``); ``conv1d.keras`` (a layer cylstm cannot convert); a legacy ``.h5`` written by
tf.keras 2 (``tfkeras2_masking_lstm_dense.h5``); and for each model
``<name>.npz`` with the input ``x``, Keras's prediction ``y``
(``model(x, training=False)``) and ``versions``. HDF5 costs about 1 KB per group,
so the models are as small as their purpose allows (about 200 KB in all).
The weights are drawn from ``np.random.default_rng(crc32(name))`` (uniform in
[-0.5, 0.5]), not Keras's initialisers, so the arrays are deterministic; the
files themselves carry a save date. Before saving, the script reloads every file
with Keras and checks that it predicts ``y``, and it asserts the HDF5 layouts that
``cylstm/interop/keras_files.py`` reads, so a Keras that changes them fails here.
See tests/golden/README.md, section "Keras model files".
"""
import io
import json
import os
import sys
import zipfile
import zlib

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
try:  # only tfkeras2_masking_lstm_dense needs tf.keras 2
    import tf_keras  # noqa: E402
except ImportError:
    tf_keras = None

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "keras_files")
VERSIONS = json.dumps({
    "keras": keras.__version__, "tf_keras": getattr(tf_keras, "__version__", None),
    "tensorflow": tf.__version__, "numpy": np.__version__, "h5py": h5py.__version__,
    "python": sys.version.split()[0], "keras_backend": keras.backend.backend(),
})


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def set_random_weights(model, rng):
    """Uniform [-0.5, 0.5] weights of each layer's own dtype, in ``get_weights`` order."""
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype) for w in ws])


def padded_tokens(rng, vocab, batch=4, steps=7):
    """Token ids with 0 as padding: a full row, left padding, right padding, holes."""
    x = rng.integers(1, vocab, size=(batch, steps)).astype("int32")
    x[1, :3] = 0
    x[2, -2:] = 0
    x[3, [1, 4]] = 0
    return x


def predict(model, x):
    return np.asarray(model(x, training=False))


def save_npz(name, x, y):
    np.savez_compressed(os.path.join(OUT_DIR, name + ".npz"), x=x, y=y,
                        versions=np.array(VERSIONS))


def check_reload(path, x, y, loader):
    got = predict(loader(path), x)
    if not np.allclose(got, y, rtol=1e-6, atol=1e-7):
        raise AssertionError(f"{path}: the reloaded model predicts differently")


def h5_paths(source):
    """Every dataset path of an HDF5 file (a path or bytes) with its shape."""
    out = {}
    with h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o.shape)
                     if isinstance(o, h5py.Dataset) else None)
    return out


def archive_paths(path):
    with zipfile.ZipFile(path) as zf:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(zf.namelist())
        return h5_paths(zf.read("model.weights.h5"))


def write_keras3(name, model, x):
    """``name.keras`` and ``name.h5`` (Keras 3), ``name.npz``; returns ``y``."""
    set_random_weights(model, rng_for(name))
    y = predict(model, x)
    keras_path = os.path.join(OUT_DIR, name + ".keras")
    h5_path = os.path.join(OUT_DIR, name + ".h5")
    model.save(keras_path)
    model.save(h5_path)
    for path in (keras_path, h5_path):
        check_reload(path, x, y, keras.saving.load_model)
    save_npz(name, x, y)
    return y


def embed_lstm_bidi_dense():
    """(a) Embedding(mask_zero) -> LSTM(seq) -> Bidirectional(LSTM) -> Dense(softmax)."""
    name = "embed_lstm_bidi_dense"
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(50, 8, mask_zero=True),
        keras.layers.LSTM(6, return_sequences=True),
        keras.layers.Bidirectional(keras.layers.LSTM(5)),
        keras.layers.Dense(3, activation="softmax"),
    ], name="tagger")
    x = padded_tokens(rng_for(name + "/x"), 50)
    write_keras3(name, model, x)
    paths = archive_paths(os.path.join(OUT_DIR, name + ".keras"))
    assert paths == {
        "layers/embedding/vars/0": (50, 8),
        "layers/lstm/cell/vars/0": (8, 24), "layers/lstm/cell/vars/1": (6, 24),
        "layers/lstm/cell/vars/2": (24,),
        "layers/bidirectional/forward_layer/cell/vars/0": (6, 20),
        "layers/bidirectional/forward_layer/cell/vars/1": (5, 20),
        "layers/bidirectional/forward_layer/cell/vars/2": (20,),
        "layers/bidirectional/backward_layer/cell/vars/0": (6, 20),
        "layers/bidirectional/backward_layer/cell/vars/1": (5, 20),
        "layers/bidirectional/backward_layer/cell/vars/2": (20,),
        "layers/dense/vars/0": (10, 3), "layers/dense/vars/1": (3,),
    }, paths
    with h5py.File(os.path.join(OUT_DIR, name + ".h5"), "r") as f:
        assert "model_config" in f.attrs
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in f["model_weights"].attrs["layer_names"]]
        assert names == ["embedding", "lstm", "bidirectional", "dense"], names
        wn = [n.decode() if isinstance(n, bytes) else n
              for n in f["model_weights/lstm"].attrs["weight_names"]]
        assert wn == ["tagger/lstm/lstm_cell/kernel", "tagger/lstm/lstm_cell/recurrent_kernel",
                      "tagger/lstm/lstm_cell/bias"], wn


def lstm_dense():
    """(b) LSTM(7, input_shape=(None, 4)) -> Dense(1); also weights only."""
    name = "lstm_dense"
    model = keras.Sequential([keras.layers.LSTM(7, input_shape=(None, 4)), keras.layers.Dense(1)])
    x = rng_for(name + "/x").uniform(-1, 1, (3, 5, 4)).astype("float32")
    y = write_keras3(name, model, x)
    path = os.path.join(OUT_DIR, name + ".weights.h5")
    model.save_weights(path)
    fresh = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(7), keras.layers.Dense(1)])
    fresh.load_weights(path)
    assert np.allclose(predict(fresh, x), y, rtol=1e-6, atol=1e-7)
    assert set(h5_paths(path)) == {"layers/lstm/cell/vars/0", "layers/lstm/cell/vars/1",
                                   "layers/lstm/cell/vars/2", "layers/dense/vars/0",
                                   "layers/dense/vars/1"}


def lstm_go_backwards():
    """(c) a bare LSTM(5, return_sequences=True, go_backwards=True) in a one-layer Sequential."""
    name = "lstm_go_backwards"
    model = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.LSTM(5, return_sequences=True, go_backwards=True)])
    x = rng_for(name + "/x").uniform(-1, 1, (3, 6, 3)).astype("float32")
    write_keras3(name, model, x)


def masking_dropout_lstm_dense():
    """(e) Keras 3: Masking(0.0) -> LSTM(5, seq) -> Dropout -> LSTM(3) -> Dense(2) on
    padded input: every supported layer class but Embedding/Bidirectional in one file."""
    name = "masking_dropout_lstm_dense"
    model = keras.Sequential([
        keras.Input((None, 3)), keras.layers.Masking(0.0),
        keras.layers.LSTM(5, return_sequences=True), keras.layers.Dropout(0.4),
        keras.layers.LSTM(3), keras.layers.Dense(2)])
    x = rng_for(name + "/x").uniform(-1, 1, (3, 6, 3)).astype("float32")
    x[0, 2] = 0.0       # a hole
    x[1, :2] = 0.0      # left padding
    x[2, -2:] = 0.0     # right padding
    write_keras3(name, model, x)
    assert set(archive_paths(os.path.join(OUT_DIR, name + ".keras"))) == {
        "layers/lstm/cell/vars/0", "layers/lstm/cell/vars/1", "layers/lstm/cell/vars/2",
        "layers/lstm_1/cell/vars/0", "layers/lstm_1/cell/vars/1", "layers/lstm_1/cell/vars/2",
        "layers/dense/vars/0", "layers/dense/vars/1"}


def conv1d():
    """(d) a model with a Conv1D, ``.keras`` only: cylstm has no Conv1D, from_keras must
    say so. One layer, because HDF5 costs about 1 KB per group."""
    name = "conv1d"
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.Conv1D(2, 2)])
    set_random_weights(model, rng_for(name))
    x = rng_for(name + "/x").uniform(-1, 1, (2, 5, 2)).astype("float32")
    model.save(os.path.join(OUT_DIR, name + ".keras"))
    save_npz(name, x, predict(model, x))


def tfkeras2_masking_lstm_dense():
    """A legacy full-model ``.h5`` written by tf.keras 2: Keras 2 configs
    (``batch_input_shape``, ``time_major``, ``implementation``, dtype strings) and
    ``model_weights/<layer>/<layer>/lstm_cell/kernel:0`` weight names.
    Masking(0.0) -> LSTM(4, return_sequences=True) -> Dense(2, tanh) on padded input."""
    name = "tfkeras2_masking_lstm_dense"
    if tf_keras is None:
        raise SystemExit("tfkeras2_masking_lstm_dense needs tf_keras (pip install tf_keras)")
    k2 = tf_keras
    model = k2.Sequential([k2.layers.Masking(0.0, input_shape=(None, 3)),
                           k2.layers.LSTM(4, return_sequences=True),
                           k2.layers.Dense(2, activation="tanh")])
    x = rng_for(name + "/x").uniform(-1, 1, (3, 6, 3)).astype("float32")
    x[0, 2] = 0.0       # a hole
    x[1, :2] = 0.0      # left padding
    x[2, -1] = 0.0      # right padding
    set_random_weights(model, rng_for(name))
    y = predict(model, x)
    path = os.path.join(OUT_DIR, name + ".h5")
    model.save(path)
    check_reload(path, x, y, tf_keras.models.load_model)
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert "batch_input_shape" in config["config"]["layers"][0]["config"]
        g = f["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["layer_names"]]
        assert names == ["masking", "lstm", "dense"], names
        wn = [n.decode() if isinstance(n, bytes) else n for n in g["lstm"].attrs["weight_names"]]
        assert wn == ["lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0",
                      "lstm/lstm_cell/bias:0"], wn
        assert g["lstm/lstm/lstm_cell/kernel:0"].shape == (3, 16)
    save_npz(name, x, y)


BUILDERS = [embed_lstm_bidi_dense, lstm_dense, lstm_go_backwards, masking_dropout_lstm_dense,
            conv1d, tfkeras2_masking_lstm_dense]


def main(only=()):
    """Write every file (clearing the folder first), or only the named cases
    (``make_keras_files.py masking_dropout_lstm_dense``), leaving the others as
    they are: the files carry a save date, so rewriting them all changes bytes."""
    os.makedirs(OUT_DIR, exist_ok=True)
    names = {b.__name__: b for b in BUILDERS}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {sorted(names)}")
    if not only:
        for entry in os.listdir(OUT_DIR):
            os.remove(os.path.join(OUT_DIR, entry))
    for builder in BUILDERS:
        if not only or builder.__name__ in only:
            builder()
    total = 0
    for entry in sorted(os.listdir(OUT_DIR)):
        size = os.path.getsize(os.path.join(OUT_DIR, entry))
        total += size
        print(f"{size:8d}  {entry}")
    print(f"{total:8d}  total")


if __name__ == "__main__":
    main(sys.argv[1:])
