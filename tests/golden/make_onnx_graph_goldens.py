#!/usr/bin/env python
"""Regenerate tests/golden/onnx_graph/: real exporter graphs and cylstm exports.

Run from the repository root. torch and tensorflow are in the dev venv;
tf2onnx pins an old protobuf, so it lives in a side venv installed with
``pip install --no-deps tf2onnx`` and is put on the path:

    PYTHONPATH=/tmp/tfvenv/lib/python3.11/site-packages \\
        /work/devvenv/bin/python tests/golden/make_onnx_graph_goldens.py

Written, each as ``<case>.onnx`` + ``<case>.npz`` (the feeds as ``in__<name>``,
onnxruntime's outputs as ``ort__<name>``, the source framework's outputs as
``src__<name>``, and a JSON config):

- ``torch_*``: torch.onnx.export (TorchScript exporter, dynamo=False) of
  nn.LSTM with batch_first (the Transpose/Squeeze/Slice/Concat/Shape/Gather
  patterns around the node), with and without states, and of a module with a
  Linear head on the last step;
- ``tf2onnx_*``: tf2onnx.convert.from_function of Keras 3 models (from_keras
  fails on Keras 3 models): LSTM + Dense, Embedding + LSTM + Dense (Gather),
  stacked LSTMs with a Dense on every step (MatMul + Add), Bidirectional, and
  Embedding(mask_zero) + LSTM + Dense, which tf2onnx writes as a Loop over the
  cell rather than an LSTM node (the importer refuses it, naming the Loop);
- ``cylstm_*``: cylstm.to_onnx of cylstm models (layers.LSTM, Bidirectional,
  nn.LSTM, Sequential with Embedding/Masking/Dense/Dropout), with cylstm's own
  outputs as ``src__<name>``; ``cylstm_*`` fixtures also keep the model's weights
  (``w__<i>``) so the tests can rebuild it and export it again.
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "onnx_graph")
sys.path.insert(0, ROOT)


def ort_run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [o.name for o in sess.get_outputs()], sess.run(None, feeds)


def save(name, model, feeds, src, config, extra=None):
    onnx.checker.check_model(model)
    names, outs = ort_run(model, feeds)
    arrays = {f"in__{k}": v for k, v in feeds.items()}
    for n, o, s in zip(names, outs, src):
        arrays[f"ort__{n}"] = o
        arrays[f"src__{n}"] = np.asarray(s)
        err = np.abs(o - np.asarray(s)).max()
        assert err < 1e-4, (name, n, err)
        print(f"{name:40s} {n:12s} ORT vs source {err:.2e}")
    arrays.update(extra or {})
    config = dict(config, name=name, outputs=names, ops=sorted({n.op_type for n in
                                                                model.graph.node}),
                  onnx=onnx.__version__, onnxruntime=ort.__version__)
    onnx.save(model, os.path.join(OUT, name + ".onnx"))
    np.savez_compressed(os.path.join(OUT, name + ".npz"), config=json.dumps(config), **arrays)


def torch_cases():
    import io

    import torch

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 6, num_layers=2, batch_first=True)
            self.fc = torch.nn.Linear(6, 3)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    torch.manual_seed(12)
    cases = [
        ("torch_lstm_batch_first", torch.nn.LSTM(4, 5, batch_first=True), False),
        ("torch_lstm_bidirectional_2layer_batch_first_hx",
         torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True), True),
        ("torch_lstm_seq_first_hx", torch.nn.LSTM(4, 5), True),
        ("torch_lstm_linear_head", Head(), False),
    ]
    for name, mod, has_hx in cases:
        mod.eval()
        bf = getattr(mod, "batch_first", True)
        x = torch.randn((3, 7, 4) if bf else (7, 3, 4))
        args, names = (x,), ["x"]
        dyn = {"x": {0: "batch", 1: "seq"} if bf else {0: "seq", 1: "batch"}}
        if has_hx:
            D = mod.num_layers * (2 if mod.bidirectional else 1)
            h0, c0 = torch.randn(D, 3, 5), torch.randn(D, 3, 5)
            args, names = (x, (h0, c0)), ["x", "h0", "c0"]
            dyn.update(h0={1: "batch"}, c0={1: "batch"})
        with torch.no_grad():
            src = mod(*args)
        src = [src] if isinstance(src, torch.Tensor) else [src[0], src[1][0], src[1][1]]
        outs = ["y"] if len(src) == 1 else ["output", "h_n", "c_n"]
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(mod, args, buf, dynamo=False, opset_version=14,
                              input_names=names, output_names=outs, dynamic_axes=dyn)
        model = onnx.load_from_string(buf.getvalue())
        feeds = {n: a.numpy() for n, a in zip(names, [x] + ([h0, c0] if has_hx else []))}
        save(name, model, feeds, [s.numpy() for s in src],
             dict(source="torch.onnx.export(dynamo=False) torch " + torch.__version__))


def tf2onnx_cases():
    try:
        import keras
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        print("skipping tf2onnx cases:", exc)
        return
    keras.utils.set_random_seed(12)
    rng = np.random.default_rng(12)
    L = keras.layers
    ids = rng.integers(1, 30, (4, 8)).astype(np.int32)
    ids[1, 5:] = 0
    ids[2, 2:] = 0
    x = rng.standard_normal((4, 8, 5)).astype(np.float32)
    cases = [
        ("tf2onnx_lstm_dense", [L.Input((8, 5)), L.LSTM(6), L.Dense(3, activation="softmax")],
         x),
        ("tf2onnx_embedding_lstm_dense",
         [L.Input((8,), dtype="int32"), L.Embedding(30, 6), L.LSTM(7),
          L.Dense(1, activation="sigmoid")], ids),
        ("tf2onnx_embedding_mask_lstm_dense",
         [L.Input((8,), dtype="int32"), L.Embedding(30, 6, mask_zero=True), L.LSTM(7),
          L.Dense(1, activation="sigmoid")], ids),
        ("tf2onnx_stacked_lstm_timedistributed_dense",
         [L.Input((8, 5)), L.LSTM(6, return_sequences=True), L.LSTM(4, return_sequences=True),
          L.Dense(2)], x),
        ("tf2onnx_bidirectional_dense",
         [L.Input((8, 5)), L.Bidirectional(L.LSTM(5)), L.Dense(2, activation="tanh")], x),
    ]
    for name, layers, data in cases:
        model = keras.Sequential(layers)
        for w in model.weights:      # non-zero biases: a gate-order mistake must show
            if "bias" in w.path:
                w.assign(rng.standard_normal(w.shape).astype(np.float32) * 0.3)
        src = model.predict(data, verbose=0)
        spec = (tf.TensorSpec((None,) + data.shape[1:], tf.as_dtype(data.dtype), name="input"),)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # from_keras does not read Keras 3 models; a traced tf.function of
            # the model's call is what it converts for them.
            fn = tf.function(lambda inp: model(inp, training=False), input_signature=spec)
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=14)
        save(name, proto, {"input": data}, [src],
             dict(source=f"tf2onnx {tf2onnx.__version__} from keras {keras.__version__} "
                         f"(tensorflow {tf.__version__})"))


def cylstm_cases():
    import cylstm
    from cylstm import layers as L
    cylstm.utils.set_random_seed(12)
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    ids = rng.integers(1, 20, (4, 7)).astype(np.int64)
    ids[1, 4:] = 0
    ids[2, 2:] = 0
    xm = rng.standard_normal((4, 7, 4)).astype(np.float32)
    xm[1, 5:] = 0
    xm[3, 1:] = 0
    cases = [
        ("cylstm_layers_lstm_backwards_state",
         L.LSTM(5, return_sequences=True, return_state=True, go_backwards=True), x),
        ("cylstm_layers_lstm_relu_hard_sigmoid",
         L.LSTM(5, return_sequences=True, activation="relu", recurrent_activation="hard_sigmoid"),
         x),
        ("cylstm_bidirectional_ave_state",
         L.Bidirectional(L.LSTM(5, return_sequences=True, return_state=True), merge_mode="ave"),
         x),
        ("cylstm_nn_lstm_2layer_bidirectional",
         cylstm.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True), x),
        ("cylstm_sequential_embedding_mask",
         cylstm.Sequential([L.Embedding(20, 6, mask_zero=True, input_length=7),
                            L.LSTM(5, return_sequences=True), L.Dropout(0.2),
                            L.Bidirectional(L.LSTM(4)), L.Dense(3, activation="softmax")]), ids),
        ("cylstm_sequential_masking",
         cylstm.Sequential([L.Masking(0.0, input_shape=(7, 4)), L.LSTM(5, return_sequences=True),
                            L.Dense(2, activation="tanh")]), xm),
    ]
    for name, obj, data in cases:
        if isinstance(obj, cylstm.nn.LSTM):
            obj.eval()
            out, (h, c) = obj(data)
            src = [out, h, c]
            weights = list(obj.state_dict().values())
        elif isinstance(obj, cylstm.Sequential):
            src = [obj.predict(data, verbose=0)]
            weights = obj.get_weights()
        else:
            obj(data)
            weights = [w + rng.standard_normal(w.shape).astype(np.float32) * 0.2
                       for w in obj.get_weights()]
            obj.set_weights(weights)
            src = obj(data)
            src = list(src) if isinstance(src, list) else [src]
        model = cylstm.to_onnx(obj)
        extra = {f"w__{i:02d}": w for i, w in enumerate(weights)}
        save(name, model, {"input": data}, src, dict(source="cylstm.to_onnx"), extra)


def main():
    os.makedirs(OUT, exist_ok=True)
    cylstm_cases()
    torch_cases()
    tf2onnx_cases()


if __name__ == "__main__":
    sys.exit(main())
