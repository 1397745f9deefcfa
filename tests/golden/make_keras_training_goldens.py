"""Generate the training-stack golden fixtures (optimizers, losses, metrics,
pad_sequences, summary text, small fits) from the real Keras 3 (TensorFlow backend).

Run from the repository root in the dev environment (TensorFlow is NOT a cylstm
dependency):

    TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES=-1 \
        /work/devvenv/bin/python tests/golden/make_keras_training_goldens.py

Writes ``tests/golden/keras_training/{optimizers,losses,metrics,pad_sequences,
summary,fit}.npz`` and ``keras_model.keras`` (a real Keras file, for the
foreign-file error test). Every file has a ``versions`` key (JSON) and an ``index``
key (JSON list of case dicts); the arrays of case ``c`` are stored under
``"<c>/<field>"``. Deterministic: data come from NumPy generators seeded from
the case names. Everything loads with ``np.load(path, allow_pickle=False)``.
"""
import json
import os
import sys
import zlib

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras.src import backend as kbackend  # noqa: E402
from keras.src.trainers import compile_utils  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "keras_training")
VERSIONS = json.dumps({"keras": keras.__version__, "tensorflow": tf.__version__,
                       "numpy": np.__version__, "python": sys.version.split()[0],
                       "keras_backend": keras.backend.backend()})


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


class Writer:
    def __init__(self, filename):
        self.filename = filename
        self.index = []
        self.arrays = {}

    def add(self, case, arrays, **meta):
        assert all("/" not in k for k in arrays)
        self.index.append({"case": case, **meta})
        for k, v in arrays.items():
            self.arrays[f"{case}/{k}"] = np.asarray(v)

    def save(self):
        path = os.path.join(OUT_DIR, self.filename)
        np.savez_compressed(path, index=np.array(json.dumps(self.index)),
                            versions=np.array(VERSIONS), **self.arrays)
        print(f"wrote {path}: {len(self.index)} cases")


# -- optimizers -------------------------------------------------------------------

OPTIMIZER_CASES = [
    ("sgd", "SGD", {}),
    ("sgd_lr", "SGD", {"learning_rate": 0.1}),
    ("sgd_momentum", "SGD", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd_nesterov", "SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", "Adam", {}),
    ("adam_lr_betas", "Adam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99,
                               "epsilon": 1e-5}),
    ("adam_amsgrad", "Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("rmsprop", "RMSprop", {}),
    ("rmsprop_momentum", "RMSprop", {"learning_rate": 0.01, "momentum": 0.5}),
    ("rmsprop_centered", "RMSprop", {"learning_rate": 0.01, "centered": True, "rho": 0.8}),
    ("rmsprop_centered_momentum", "RMSprop", {"learning_rate": 0.01, "centered": True,
                                              "momentum": 0.3}),
    ("adam_clipnorm", "Adam", {"learning_rate": 0.01, "clipnorm": 0.5}),
    ("sgd_clipnorm", "SGD", {"learning_rate": 0.1, "clipnorm": 0.3}),
    ("sgd_clipvalue", "SGD", {"learning_rate": 0.1, "clipvalue": 0.2}),
    ("rmsprop_clipvalue", "RMSprop", {"learning_rate": 0.01, "clipvalue": 0.1}),
    ("sgd_global_clipnorm", "SGD", {"learning_rate": 0.1, "global_clipnorm": 0.4}),
    ("adam_global_clipnorm", "Adam", {"learning_rate": 0.01, "global_clipnorm": 1.0}),
    ("sgd_weight_decay", "SGD", {"learning_rate": 0.1, "weight_decay": 0.05}),
    ("adam_weight_decay", "Adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
]
VAR_SHAPES = [(3, 4), (5,), (2, 2)]


def make_optimizers():
    w = Writer("optimizers.npz")
    for dtype in ("float32", "float64"):
        for case, cls, kwargs in OPTIMIZER_CASES:
            name = f"{case}_{dtype}"
            rng = rng_for(name)
            init = [rng.normal(size=s).astype(dtype) for s in VAR_SHAPES]
            grads = [[(rng.normal(size=s) * (2.0 if k == 1 else 0.5)).astype(dtype)
                      for s in VAR_SHAPES] for k in range(3)]
            if case == "sgd_global_clipnorm":
                grads[2] = [g * 0 for g in grads[2]]   # a zero global norm on step 3
            opt = getattr(keras.optimizers, cls)(**kwargs)
            variables = [keras.Variable(v, dtype=dtype) for v in init]
            after = []
            for k in range(3):
                opt.apply_gradients(zip([tf.constant(g) for g in grads[k]], variables))
                after.append([np.array(v.numpy()) for v in variables])
            arrays = {}
            for i in range(len(VAR_SHAPES)):
                arrays[f"init{i}"] = init[i]
                for k in range(3):
                    arrays[f"grad{k}_{i}"] = grads[k][i]
                arrays[f"step1_{i}"] = after[0][i]
                arrays[f"step3_{i}"] = after[2][i]
            w.add(name, arrays, cls=cls, kwargs=kwargs, dtype=dtype, n_vars=len(VAR_SHAPES))
    w.save()


# -- losses ---------------------------------------------------------------------------

def _loss_case(w, name, cls, kwargs, y_true, y_pred, mask=None, sample_weight=None):
    loss = getattr(keras.losses, cls)(**kwargs)
    var = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        yp = tf.identity(var)
        if mask is not None:
            kbackend.set_keras_mask(yp, tf.constant(mask))
        value = loss(tf.constant(y_true), yp,
                     sample_weight=None if sample_weight is None else tf.constant(sample_weight))
    grad = tape.gradient(value, var)
    arrays = {"y_true": y_true, "y_pred": y_pred, "value": np.array(value.numpy()),
              "grad": grad.numpy()}
    if mask is not None:
        arrays["mask"] = mask
    if sample_weight is not None:
        arrays["sample_weight"] = sample_weight
    w.add(name, arrays, cls=cls, kwargs=kwargs, has_mask=mask is not None,
          has_sample_weight=sample_weight is not None)


def make_losses():
    w = Writer("losses.npz")
    f = "float32"
    for cls, kw, tag in [("MeanSquaredError", {}, "mse"), ("MeanAbsoluteError", {}, "mae"),
                         ("Huber", {}, "huber"), ("Huber", {"delta": 0.3}, "huber_delta")]:
        r = rng_for(tag)
        _loss_case(w, f"{tag}_2d", cls, kw, r.normal(size=(6, 3)).astype(f),
                   r.normal(size=(6, 3)).astype(f))
        _loss_case(w, f"{tag}_b_vs_b1", cls, kw, r.normal(size=(7,)).astype(f),
                   r.normal(size=(7, 1)).astype(f))
        _loss_case(w, f"{tag}_seq", cls, kw, r.normal(size=(4, 5, 2)).astype(f),
                   r.normal(size=(4, 5, 2)).astype(f))
        _loss_case(w, f"{tag}_seq_masked", cls, kw, r.normal(size=(4, 5, 2)).astype(f),
                   r.normal(size=(4, 5, 2)).astype(f), mask=r.random((4, 5)) > 0.4)
        _loss_case(w, f"{tag}_weighted", cls, kw, r.normal(size=(6, 3)).astype(f),
                   r.normal(size=(6, 3)).astype(f), sample_weight=r.random(6).astype(f))
    r = rng_for("bce")
    probs = r.random((8, 1)).astype(f)
    probs[0, 0], probs[1, 0], probs[2, 0] = 0.0, 1.0, 1e-9   # exercise the clipping
    labels = r.integers(0, 2, (8,)).astype(f)
    _loss_case(w, "bce_probs_b_vs_b1", "BinaryCrossentropy", {}, labels, probs)
    _loss_case(w, "bce_probs_2d", "BinaryCrossentropy", {},
               r.integers(0, 2, (5, 3)).astype(f), r.random((5, 3)).astype(f))
    _loss_case(w, "bce_logits", "BinaryCrossentropy", {"from_logits": True},
               r.integers(0, 2, (6, 2)).astype(f), (r.normal(size=(6, 2)) * 4).astype(f))
    _loss_case(w, "bce_soft_labels_smoothing", "BinaryCrossentropy", {"label_smoothing": 0.1},
               r.random((6, 2)).astype(f), r.random((6, 2)).astype(f))
    _loss_case(w, "bce_seq_masked", "BinaryCrossentropy", {},
               r.integers(0, 2, (3, 4, 1)).astype(f), r.random((3, 4, 1)).astype(f),
               mask=r.random((3, 4)) > 0.3)

    r = rng_for("cce")
    raw = r.random((6, 4)).astype(f) + 0.05
    soft = raw / raw.sum(-1, keepdims=True)
    onehot = np.eye(4, dtype=f)[r.integers(0, 4, 6)]
    _loss_case(w, "cce_probs", "CategoricalCrossentropy", {}, onehot, soft)
    _loss_case(w, "cce_unnormalised", "CategoricalCrossentropy", {}, onehot, raw * 3)
    clip = soft.copy()
    clip[0] = [1.0, 0.0, 0.0, 0.0]
    _loss_case(w, "cce_clipped", "CategoricalCrossentropy", {}, onehot, clip)
    _loss_case(w, "cce_logits", "CategoricalCrossentropy", {"from_logits": True}, onehot,
               (r.normal(size=(6, 4)) * 3).astype(f))
    _loss_case(w, "cce_smoothing", "CategoricalCrossentropy", {"label_smoothing": 0.2},
               onehot, soft)
    seq = r.random((3, 5, 4)).astype(f) + 0.01
    seq /= seq.sum(-1, keepdims=True)
    _loss_case(w, "cce_seq_masked", "CategoricalCrossentropy", {},
               np.eye(4, dtype=f)[r.integers(0, 4, (3, 5))], seq, mask=r.random((3, 5)) > 0.3)

    r = rng_for("scce")
    _loss_case(w, "scce_probs", "SparseCategoricalCrossentropy", {},
               r.integers(0, 4, 6).astype(f), soft)
    _loss_case(w, "scce_probs_b1_labels", "SparseCategoricalCrossentropy", {},
               r.integers(0, 4, (6, 1)).astype(f), soft)
    _loss_case(w, "scce_int_labels", "SparseCategoricalCrossentropy", {},
               r.integers(0, 4, 6).astype("int32"), soft)
    _loss_case(w, "scce_clipped", "SparseCategoricalCrossentropy", {},
               np.array([0, 1, 2, 3, 0, 1], f), clip)
    _loss_case(w, "scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True},
               r.integers(0, 4, 6).astype(f), (r.normal(size=(6, 4)) * 3).astype(f))
    _loss_case(w, "scce_seq_masked", "SparseCategoricalCrossentropy", {},
               r.integers(0, 4, (3, 5)).astype(f), seq, mask=r.random((3, 5)) > 0.3)
    _loss_case(w, "scce_seq_logits_weighted", "SparseCategoricalCrossentropy",
               {"from_logits": True}, r.integers(0, 4, (3, 5)).astype(f),
               r.normal(size=(3, 5, 4)).astype(f), sample_weight=r.random((3, 5)).astype(f))
    w.save()


# -- metrics --------------------------------------------------------------------------

def make_metrics():
    w = Writer("metrics.npz")
    f = "float32"
    cases = []
    r = rng_for("metrics")
    # (case, class, kwargs, batches of (y_true, y_pred, mask or None, sample_weight or None))
    cases.append(("binary_accuracy", "BinaryAccuracy", {}, [
        (r.integers(0, 2, (7,)).astype(f), r.random((7, 1)).astype(f), None, None),
        (r.integers(0, 2, (3,)).astype(f), r.random((3, 1)).astype(f), None, None)]))
    cases.append(("binary_accuracy_threshold", "BinaryAccuracy", {"threshold": 0.7}, [
        (r.integers(0, 2, (5, 2)).astype(f), r.random((5, 2)).astype(f), None, None)]))
    cases.append(("binary_accuracy_seq_masked", "BinaryAccuracy", {}, [
        (r.integers(0, 2, (4, 6, 1)).astype(f), r.random((4, 6, 1)).astype(f),
         r.random((4, 6)) > 0.3, None),
        (r.integers(0, 2, (2, 6, 1)).astype(f), r.random((2, 6, 1)).astype(f),
         r.random((2, 6)) > 0.3, None)]))
    cases.append(("categorical_accuracy", "CategoricalAccuracy", {}, [
        (np.eye(4, dtype=f)[r.integers(0, 4, 9)], r.random((9, 4)).astype(f), None, None),
        (np.eye(4, dtype=f)[r.integers(0, 4, 4)], r.random((4, 4)).astype(f), None, None)]))
    cases.append(("sparse_categorical_accuracy", "SparseCategoricalAccuracy", {}, [
        (r.integers(0, 4, 9).astype(f), r.random((9, 4)).astype(f), None, None),
        (r.integers(0, 4, (4, 1)).astype(f), r.random((4, 4)).astype(f), None, None)]))
    cases.append(("sparse_categorical_accuracy_seq_masked", "SparseCategoricalAccuracy", {}, [
        (r.integers(0, 3, (3, 5)).astype(f), r.random((3, 5, 3)).astype(f),
         r.random((3, 5)) > 0.4, None)]))
    cases.append(("sparse_categorical_accuracy_weighted", "SparseCategoricalAccuracy", {}, [
        (r.integers(0, 3, 6).astype(f), r.random((6, 3)).astype(f), None,
         r.random(6).astype(f))]))
    cases.append(("mae", "MeanAbsoluteError", {}, [
        (r.normal(size=(5, 3)).astype(f), r.normal(size=(5, 3)).astype(f), None, None),
        (r.normal(size=(2, 3)).astype(f), r.normal(size=(2, 3)).astype(f), None, None)]))
    cases.append(("mse", "MeanSquaredError", {}, [
        (r.normal(size=(5,)).astype(f), r.normal(size=(5, 1)).astype(f), None, None),
        (r.normal(size=(3,)).astype(f), r.normal(size=(3, 1)).astype(f), None, None)]))
    cases.append(("mse_seq_masked", "MeanSquaredError", {}, [
        (r.normal(size=(3, 4, 2)).astype(f), r.normal(size=(3, 4, 2)).astype(f),
         r.random((3, 4)) > 0.3, None)]))
    for case, cls, kwargs, batches in cases:
        metric = getattr(keras.metrics, cls)(**kwargs)
        arrays = {}
        for b, (yt, yp, mask, sw) in enumerate(batches):
            yp_t = tf.constant(yp)
            if mask is not None:
                kbackend.set_keras_mask(yp_t, tf.constant(mask))
                arrays[f"mask{b}"] = mask
            if sw is not None:
                arrays[f"sw{b}"] = sw
            metric.update_state(tf.constant(yt), yp_t,
                                sample_weight=None if sw is None else tf.constant(sw))
            arrays[f"y_true{b}"] = yt
            arrays[f"y_pred{b}"] = yp
            arrays[f"result{b}"] = np.array(float(metric.result()))
        w.add(case, arrays, cls=cls, kwargs=kwargs, n_batches=len(batches),
              masks=[m is not None for _, _, m, _ in batches],
              weights=[s is not None for _, _, _, s in batches])

    # What 'accuracy' resolves to, by shapes (compile_utils.get_metric).
    resolution = []
    for yt_shape, yp_shape in [((8,), (8, 1)), ((8, 1), (8, 1)), ((8,), (8, 5)),
                               ((8, 1), (8, 5)), ((8, 5), (8, 5)), ((4, 6), (4, 6, 3)),
                               ((4, 6, 1), (4, 6, 1)), ((4, 6, 3), (4, 6, 3))]:
        m = compile_utils.get_metric("accuracy", np.zeros(yt_shape, f), np.zeros(yp_shape, f))
        resolution.append({"y_true": list(yt_shape), "y_pred": list(yp_shape),
                           "class": type(m).__name__, "name": m.name})
    w.add("accuracy_resolution", {}, resolution=resolution)
    w.save()


# -- pad_sequences --------------------------------------------------------------------

PAD_CASES = [
    ("basic", [[1, 2, 3], [4, 5], [6]], {}),
    ("maxlen_trunc_pre", [[1, 2, 3], [4, 5], [6]], {"maxlen": 2}),
    ("maxlen_trunc_post", [[1, 2, 3], [4, 5], [6]], {"maxlen": 2, "truncating": "post"}),
    ("padding_post", [[1, 2, 3], [4, 5], [6]], {"padding": "post"}),
    ("post_post", [[1, 2, 3, 4], [5]], {"maxlen": 3, "padding": "post", "truncating": "post"}),
    ("value_minus_one", [[1, 2, 3], [4]], {"value": -1}),
    ("maxlen_longer", [[1, 2], [3]], {"maxlen": 5}),
    ("float_dtype", [[0.5, 1.5], [2.5]], {"dtype": "float32", "value": 0.25}),
    ("float_values_int_dtype", [[0.7, 1.2], [2.9]], {}),
    ("empty_inside", [[], [1, 2], []], {}),
    ("all_empty", [[], []], {}),
    ("all_empty_maxlen", [[], []], {"maxlen": 3}),
    ("vectors", [[[1, 2], [3, 4]], [[5, 6]]], {}),
    ("vectors_maxlen", [[[1, 2], [3, 4], [5, 6]], [[7, 8]]], {"maxlen": 2, "value": 9}),
    ("maxlen_zero", [[1, 2], [3]], {"maxlen": 0}),
    ("int64_dtype", [[1, 2], [3]], {"dtype": "int64"}),
    ("str_dtype", [["ab", "c"], ["d"]], {"dtype": "<U2", "value": "z"}),
    ("numpy_rows", "numpy", {"maxlen": 3}),
    ("bad_padding", [[1, 2], [3]], {"padding": "middle"}),
    ("bad_truncating", [[1, 2, 3], [3]], {"maxlen": 2, "truncating": "middle"}),
    ("bad_padding_all_empty", [[], []], {"padding": "middle"}),
    ("str_value_int_dtype", [[1, 2], [3]], {"value": "x"}),
    ("non_iterable", [[1, 2], 3], {}),
    ("inconsistent_shape", [[[1, 2]], [[1, 2, 3]]], {}),
    ("no_sequences", [], {}),
    ("no_sequences_maxlen", [], {"maxlen": 4}),
]


def make_pad_sequences():
    from keras.preprocessing.sequence import pad_sequences
    w = Writer("pad_sequences.npz")
    for case, seqs, kwargs in PAD_CASES:
        arg = np.array([[1, 2, 3, 4], [5, 6, 7, 8]]) if seqs == "numpy" else seqs
        try:
            out = pad_sequences(arg, **kwargs)
        except Exception as e:  # noqa: BLE001 - the error is the golden
            w.add(case, {}, sequences=seqs, kwargs=kwargs, error=type(e).__name__,
                  message=str(e))
            continue
        w.add(case, {"out": out} if out.dtype.kind != "U" else {}, sequences=seqs,
              kwargs=kwargs, error=None, dtype=str(out.dtype), shape=list(out.shape),
              values=out.tolist())
    w.save()


# -- summary ----------------------------------------------------------------------------

def _summary(model, **kwargs):
    out = []
    model.summary(print_fn=out.append, **kwargs)
    return "".join(out)


def make_summary():
    # rich crops the table at the console width (80 when not a terminal); make the
    # console wide so the line_length=88/100 cases show Keras's whole table.
    os.environ["COLUMNS"] = "200"
    w = Writer("summary.npz")
    tutorial = keras.Sequential([keras.Input((300,)),
                                 keras.layers.Embedding(5000, 15, name="embedding"),
                                 keras.layers.LSTM(10, name="lstm"),
                                 keras.layers.Dense(1, activation="sigmoid", name="dense")],
                                name="sequential")
    for ll in (76, 88, 100):
        w.add(f"tutorial_{ll}", {}, text=_summary(tutorial, line_length=ll), line_length=ll)
    w.add("tutorial_trainable_76", {}, text=_summary(tutorial, line_length=76,
                                                     show_trainable=True), line_length=76,
          show_trainable=True)
    tutorial.compile(keras.optimizers.Adam(), "binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).integers(0, 5000, (4, 300))
    tutorial.fit(x, np.array([0, 1, 0, 1.0]), verbose=0)
    w.add("tutorial_after_fit_76", {}, text=_summary(tutorial, line_length=76),
          line_length=76)
    state = keras.Sequential([keras.Input((5, 3)),
                              keras.layers.LSTM(4, return_sequences=True, return_state=True,
                                                name="lstm_state")], name="states")
    w.add("return_state_76", {}, text=_summary(state, line_length=76), line_length=76)
    frozen = keras.Sequential([keras.Input((10, 8)),
                               keras.layers.LSTM(64, return_sequences=True,
                                                 name="a_very_long_layer_name_that_goes_on_and_on"),
                               keras.layers.Dense(1, name="dense_out")], name="my_model")
    frozen.layers[1].trainable = False
    w.add("long_name_frozen_76", {}, text=_summary(frozen, line_length=76,
                                                   show_trainable=True), line_length=76,
          show_trainable=True)
    w.add("long_name_frozen_60", {}, text=_summary(frozen, line_length=60), line_length=60)
    unbuilt = keras.Sequential([keras.layers.LSTM(4, name="lstm_u")], name="unbuilt")
    w.add("unbuilt_76", {}, text=_summary(unbuilt, line_length=76), line_length=76)
    w.add("empty_76", {}, text=_summary(keras.Sequential(name="empty"), line_length=76),
          line_length=76)
    w.save()


# -- small fits -------------------------------------------------------------------------

def _fit_case(w, case, build, compile_kwargs, x, y, fit_kwargs, val_first=None):
    """``val_first=n``: validation_data is the first n samples."""
    if val_first is not None:
        fit_kwargs = dict(fit_kwargs, validation_data=(x[:val_first], y[:val_first]))
    keras.utils.set_random_seed(1)
    model = build()
    rng = rng_for(case)
    init = [(rng.normal(size=v.shape) * 0.4).astype("float32") for v in model.weights]
    model.set_weights(init)
    model.compile(**compile_kwargs)
    hist = model.fit(x, y, verbose=0, shuffle=False, **fit_kwargs)
    final = model.get_weights()
    pred = model.predict(x, verbose=0)
    evaluation = model.evaluate(x, y, verbose=0)
    arrays = {"x": x, "y": y, "pred": pred}
    for i, (a, b) in enumerate(zip(init, final)):
        arrays[f"init{i}"] = a
        arrays[f"final{i}"] = b
    for k, v in hist.history.items():
        arrays[f"history_{k}"] = np.array(v, dtype="float64")
    fit_kwargs = {k: v for k, v in fit_kwargs.items() if k != "validation_data"}
    w.add(case, arrays, n_weights=len(init), history_keys=list(hist.history),
          fit_kwargs=fit_kwargs, val_first=val_first,
          evaluate=[float(v) for v in np.atleast_1d(evaluation)])


def make_fit():
    w = Writer("fit.npz")
    r = rng_for("fit_data")
    x = r.normal(size=(24, 6, 3)).astype("float32")
    y = (x[:, :, 0].sum(1) > 0).astype("float32")
    _fit_case(w, "classifier_adam_bce", lambda: keras.Sequential([
        keras.Input((6, 3)), keras.layers.LSTM(4),
        keras.layers.Dense(1, activation="sigmoid", kernel_regularizer="l2")]),
        dict(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
             metrics=["accuracy"]), x, y,
        dict(batch_size=8, epochs=3, validation_split=0.25))

    xs = r.normal(size=(16, 5, 2)).astype("float32")
    ys = np.cumsum(xs[:, :, :1], axis=1).astype("float32")
    _fit_case(w, "seq2seq_rmsprop_mse", lambda: keras.Sequential([
        keras.Input((5, 2)), keras.layers.LSTM(5, return_sequences=True),
        keras.layers.Dense(1)]),
        dict(optimizer=keras.optimizers.RMSprop(0.01), loss="mse", metrics=["mae"]), xs, ys,
        dict(batch_size=5, epochs=2))

    tok = r.integers(1, 20, (12, 7)).astype("int32")
    for i, n in enumerate([0, 2, 3, 5, 1, 0, 4, 6, 2, 0, 3, 1]):
        tok[i, :n] = 0                          # left padding, masked
    tags = (tok % 3).astype("float32")
    _fit_case(w, "masked_tagger_sgd_scce", lambda: keras.Sequential([
        keras.Input((7,), dtype="int32"), keras.layers.Embedding(20, 4, mask_zero=True),
        keras.layers.LSTM(3, return_sequences=True),
        keras.layers.Dense(3, activation="softmax")]),
        dict(optimizer=keras.optimizers.SGD(0.5, momentum=0.9, nesterov=True),
             loss="sparse_categorical_crossentropy", metrics=["accuracy"]), tok, tags,
        dict(batch_size=4, epochs=2), val_first=5)
    w.save()


def make_keras_file():
    """A real Keras 3 ``.keras`` file: cylstm's load_model must refuse it clearly."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(2), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    path = os.path.join(OUT_DIR, "keras_model.keras")
    model.save(path)
    print(f"wrote {path}")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    make_keras_file()
    make_optimizers()
    make_losses()
    make_metrics()
    make_pad_sequences()
    make_summary()
    make_fit()


if __name__ == "__main__":
    main()
