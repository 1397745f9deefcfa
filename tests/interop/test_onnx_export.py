"""cylstm.to_onnx: the exported file gives cylstm's outputs.

Three checks per model, whichever the environment allows: onnxruntime (the dev
venv; skipped without it), onnx.reference.ReferenceEvaluator (part of the
`onnx` package CI has; it implements the LSTM operator without sequence_lens
or non-default activations, so it checks the models without those), and the
round trip back through cylstm.from_onnx(..., whole_graph=True). Fixtures of
exports run by onnxruntime are in tests/golden/onnx_graph/cylstm_* (see
test_onnx_graph.py).
"""
import numpy as np
import pytest

import cylstm
from cylstm import layers as L

onnx = pytest.importorskip("onnx")


def _x(rng, shape=(3, 6, 4)):
    return rng.standard_normal(shape).astype(np.float32)


def _with_bias(layer, rng):
    layer.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) * 0.3
                       for w in layer.get_weights()])
    return layer


def _ids(rng):
    ids = rng.integers(1, 20, (4, 7)).astype(np.int64)
    ids[1, 4:] = 0
    ids[2, 2:] = 0
    return ids


def _masked(rng):
    x = _x(rng, (4, 7, 4))
    x[1, 5:] = 0
    x[3, 1:] = 0
    return x


def _cases():
    """(name, builder(rng) -> (obj, input, cylstm outputs), plain) -- plain: the
    reference evaluator implements it (default activations, no masks)."""
    def keras_layer(make, shape=(3, 6, 4)):
        def build(rng):
            x = _x(rng, shape)
            layer = make()
            layer(x)
            _with_bias(layer, rng)
            y = layer(x)
            return layer, x, list(y) if isinstance(y, list) else [y]
        return build

    def torch_lstm(**kw):
        def build(rng):
            lstm = cylstm.nn.LSTM(4, 5, **kw).eval()
            x = _x(rng, (3, 6, 4) if kw.get("batch_first") else (6, 3, 4))
            out, (h, c) = lstm(x)
            return lstm, x, [out, h, c]
        return build

    def sequential(layers, data):
        def build(rng):
            model = cylstm.Sequential(layers())
            x = data(rng)
            return model, x, [model.predict(x, verbose=0)]
        return build

    return [
        ("lstm_last", keras_layer(lambda: L.LSTM(5)), True),
        ("lstm_seq_state", keras_layer(lambda: L.LSTM(5, return_sequences=True,
                                                      return_state=True)), True),
        ("lstm_backwards", keras_layer(lambda: L.LSTM(5, return_sequences=True,
                                                      go_backwards=True, return_state=True)),
         True),
        ("lstm_time_major", keras_layer(lambda: L.LSTM(5, return_sequences=True,
                                                       time_major=True), (6, 3, 4)), True),
        ("lstm_relu_hard_sigmoid", keras_layer(lambda: L.LSTM(
            5, return_sequences=True, activation="relu", recurrent_activation="hard_sigmoid")),
         False),
        ("lstm_no_bias_linear", keras_layer(lambda: L.LSTM(5, use_bias=False,
                                                           activation="linear")), False),
        *[(f"bidirectional_{m}_{rs}", keras_layer(
            lambda m=m, rs=rs: L.Bidirectional(L.LSTM(5, return_sequences=rs,
                                                      return_state=True), merge_mode=m)), True)
          for m in ("concat", "sum", "ave", "mul", None) for rs in (True, False)],
        ("nn_lstm", torch_lstm(), True),
        ("nn_lstm_2layer_bidirectional_batch_first",
         torch_lstm(num_layers=2, bidirectional=True, batch_first=True), True),
        ("nn_lstm_3layer_no_bias", torch_lstm(num_layers=3, bias=False), True),
        ("sequential_plain", sequential(lambda: [L.LSTM(6, input_shape=(7, 4)), L.Dense(2)],
                                        lambda r: _x(r, (4, 7, 4))), True),
        ("sequential_stacked_dense_every_step", sequential(
            lambda: [L.LSTM(6, return_sequences=True, input_shape=(7, 4)), L.Dropout(0.5),
                     L.LSTM(5, return_sequences=True), L.Dense(3, activation="relu")],
            lambda r: _x(r, (4, 7, 4))), True),
        ("sequential_embedding_mask", sequential(
            lambda: [L.Embedding(20, 6, mask_zero=True, input_length=7),
                     L.LSTM(5, return_sequences=True), L.Bidirectional(L.LSTM(4)),
                     L.Dense(3, activation="softmax")], _ids), False),
        ("sequential_embedding_no_mask", sequential(
            lambda: [L.Embedding(20, 6, input_length=7), L.LSTM(5),
                     L.Dense(1, activation="sigmoid")], _ids), True),
        ("sequential_masking", sequential(
            lambda: [L.Masking(0.0, input_shape=(7, 4)), L.LSTM(5, return_sequences=True),
                     L.Dense(2, activation="tanh")], _masked), False),
        ("sequential_masking_zero_output", sequential(
            lambda: [L.Masking(0.0, input_shape=(7, 4)),
                     L.LSTM(5, return_sequences=True, zero_output_for_mask=True),
                     L.LSTM(3), L.Dense(2, activation="gelu")], _masked), False),
    ]


CASES = _cases()


@pytest.mark.parametrize("name, build, plain", CASES, ids=[c[0] for c in CASES])
def test_export(name, build, plain, tmp_path, rng):
    obj, x, ours = build(rng)
    path = tmp_path / f"{name}.onnx"
    model = cylstm.to_onnx(obj, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert "batch" in [d.dim_param for d in dims]       # a dynamic batch dimension
    feeds = {"input": x}
    # round trip through cylstm's own graph importer
    back = cylstm.from_onnx(path, whole_graph=True).run(feeds)
    assert len(back) == len(ours)
    for got, want in zip(back, ours):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if plain:
        from onnx.reference import ReferenceEvaluator
        for got, want in zip(ReferenceEvaluator(model).run(None, feeds), ours):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for got, want in zip(sess.run(None, feeds), ours):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # another batch size through the same file
    axis = [d.dim_param for d in dims].index("batch")
    x2 = np.concatenate([x, x], axis=axis)
    assert sess.run(None, {"input": x2})[0].size == 2 * np.asarray(ours[0]).size


def test_export_errors(rng):
    with pytest.raises(ValueError, match="proj_size=3; ONNX's LSTM operator has no projection"):
        cylstm.to_onnx(cylstm.nn.LSTM(4, 5, proj_size=3))
    layer = L.LSTM(4, activation="selu")
    layer(_x(rng))
    with pytest.raises(ValueError, match="'selu' has no ONNX RNN counterpart"):
        cylstm.to_onnx(layer)
    with pytest.raises(ValueError, match="not built"):
        cylstm.to_onnx(L.LSTM(4))
    stateful = L.LSTM(4, stateful=True)
    stateful(_x(rng))
    with pytest.raises(ValueError, match="stateful"):
        cylstm.to_onnx(stateful)
    with pytest.raises(TypeError, match="got int"):
        cylstm.to_onnx(3)
    model = cylstm.Sequential([L.Embedding(20, 6, mask_zero=True, input_length=7), L.LSTM(5)])
    ids = _ids(rng)
    model.predict(ids, verbose=0)
    cylstm.to_onnx(model, example=ids)                        # right-padded: fine
    left = ids.copy()
    left[0, :2] = 0
    with pytest.raises(ValueError, match=r"not right-padded .* rows \[0\]"):
        cylstm.to_onnx(model, example=left)
    loaded = cylstm.from_onnx(cylstm.to_onnx(cylstm.nn.LSTM(4, 5)), node_name=None)
    loaded._reverse_only = True
    with pytest.raises(ValueError, match="loaded from ONNX"):
        cylstm.to_onnx(loaded)


def test_float64_export_round_trip(rng):
    """A float64 model exports in float64 (onnxruntime has no float64 LSTM;
    cylstm and onnx.reference run it)."""
    from onnx.reference import ReferenceEvaluator
    lstm = cylstm.nn.LSTM(4, 5, num_layers=2, bidirectional=True, dtype=np.float64).eval()
    x = rng.standard_normal((6, 3, 4))
    out, (h, c) = lstm(x)
    model = cylstm.to_onnx(lstm)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    back = cylstm.from_onnx(model, whole_graph=True).run({"input": x})
    for got, want in zip(back, (out, h, c)):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for got, want in zip(ReferenceEvaluator(model).run(None, {"input": x}), (out, h, c)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
