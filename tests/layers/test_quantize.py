"""cylstm.quantize: the inference-only copies answer every call as the float32
objects do (shapes, states, masks, go_backwards, time_major, projection,
streaming step), equal the NumPy twin of the quantized LSTM, stay close to
float32, refuse training, and save/load through the safe format."""
import zipfile

import numpy as np
import pytest

import cylstm
from cylstm._kernels import reference_quantized as ref

DTYPES = ["int8", "bfloat16"]
# Distance from float32 allowed for these small random models (activations in
# [-1, 1]): int8 ~ 1e-3 at most here, bfloat16 less.
CLOSE = {"int8": 2e-2, "bfloat16": 1e-2}


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _close(a, b, dtype):
    for u, v in zip(_as_list(a), _as_list(b)):
        assert u.shape == v.shape
        assert np.abs(np.asarray(u) - np.asarray(v)).max() < CLOSE[dtype]


def _twin(dtype, w):
    return ref.quantize_weights_int8(w) if dtype == "int8" else ref.to_bfloat16_bits(w)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    mask = rng.random((4, 7)) > 0.3
    mask[:, 0] = True
    mask[1, :] = False  # a row masked throughout
    return x, mask


OPTIONS = [dict(), dict(return_sequences=True, return_state=True),
           dict(go_backwards=True, return_sequences=True, return_state=True),
           dict(time_major=True, return_state=True, return_sequences=True),
           dict(return_sequences=True, zero_output_for_mask=True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS)
def test_lstm_matches_float_and_twin(dtype, options, data):
    x, mask = data
    if options.get("time_major"):
        x, mask = x.transpose(1, 0, 2), mask.T
    layer = cylstm.layers.LSTM(16, **options)
    layer(x)
    q = cylstm.quantize(layer, dtype)
    h0 = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    for kwargs in (dict(), dict(mask=mask), dict(initial_state=[h0, h0 * 0.5], mask=mask)):
        _close(layer(x, **kwargs), q(x, **kwargs), dtype)
    # The layer is the twin's loop, with Keras's layout around it.
    xt = x if options.get("time_major") else x.transpose(1, 0, 2)
    mt = mask if options.get("time_major") else mask.T
    if options.get("go_backwards"):
        xt, mt = xt[::-1], mt[::-1]
    cell = layer.cell
    seq, h, c, last = ref.lstm_forward(dtype, _twin(dtype, cell.kernel),
                                       _twin(dtype, cell.recurrent_kernel), None, cell.bias,
                                       xt, h0, h0 * 0.5, mt)
    out = _as_list(q(x, initial_state=[h0, h0 * 0.5], mask=mask))
    np.testing.assert_allclose(out[-1] if options.get("return_state") else h,
                               c if options.get("return_state") else h, atol=1e-5)
    if options.get("return_sequences") and not options.get("zero_output_for_mask"):
        want = seq if options.get("time_major") else seq.transpose(1, 0, 2)
        np.testing.assert_allclose(out[0], want, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_step_and_stateful(dtype, data):
    x, _ = data
    layer = cylstm.layers.LSTM(8, return_state=True)
    layer(x)
    q = cylstm.quantize(layer, dtype)
    out, hq, cq = q(x)
    for contiguous in (True, False):   # the C fast path and the general one
        states = q.get_initial_state(4)
        for t in range(x.shape[1]):
            xt = np.ascontiguousarray(x[:, t]) if contiguous else x[:, t]
            h, states = q.step(xt, states)
        np.testing.assert_allclose(h, out, atol=1e-6)
        np.testing.assert_allclose(states[1], cq, atol=1e-6)
    with pytest.raises(ValueError, match="step"):
        q.step(x[:, 0, :3], states)
    stateful = cylstm.layers.LSTM(8, stateful=True)
    stateful(x)
    stateful.reset_state()
    qs = cylstm.quantize(stateful, dtype)
    whole = qs(x)
    qs.reset_state()
    first, second = qs(x[:, :3]), qs(x[:, 3:])
    np.testing.assert_allclose(second, whole, atol=1e-6)
    assert not np.allclose(first, second)
    qs.reset_state()
    np.testing.assert_allclose(qs(x[:, :3]), first, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("merge_mode", ["concat", "ave", None])
def test_bidirectional(dtype, merge_mode, data):
    x, mask = data
    bi = cylstm.layers.Bidirectional(
        cylstm.layers.LSTM(8, return_sequences=True, return_state=True), merge_mode=merge_mode)
    bi(x)
    q = cylstm.quantize(bi, dtype)
    for kwargs in (dict(), dict(mask=mask)):
        _close(bi(x, **kwargs), q(x, **kwargs), dtype)
    assert q.compute_mask(x, mask) is not None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True,
                                                  batch_first=True),
                                     dict(proj_size=3, num_layers=2)])
def test_torch_style_lstm(dtype, options, data, tmp_path):
    x, _ = data
    module = cylstm.nn.LSTM(5, 8, **options)
    q = cylstm.quantize(module, dtype)
    out, (h, c) = module(x)
    qout, (qh, qc) = q(x)
    _close([out, h, c], [qout, qh, qc], dtype)
    hx = (h * 0.5, c * 0.5)
    _close(module(x, hx)[1], q(x, hx)[1], dtype)
    _close(module(x[0])[0], q(x[0])[0], dtype)          # unbatched
    path = tmp_path / "lstm.cylstm"
    q.save(path)
    back = cylstm.load_quantized(path)
    np.testing.assert_array_equal(back(x)[0], qout)
    with pytest.raises(ValueError, match="input_size"):
        q(x[..., :3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential_with_masking_and_dense(dtype, data, tmp_path):
    x, _ = data
    x = x.copy()
    x[0, 5:] = 0
    model = cylstm.Sequential([
        cylstm.layers.Masking(0.0, input_shape=(7, 5)),
        cylstm.layers.LSTM(8, return_sequences=True),
        cylstm.layers.Bidirectional(cylstm.layers.LSTM(6)),
        cylstm.layers.Dense(3, activation="softmax")])
    model.build((None, 7, 5))
    q = cylstm.quantize(model, dtype)
    _close(model(x), q(x), dtype)
    np.testing.assert_allclose(q.predict(x, batch_size=3), q(x), atol=1e-6)
    path = tmp_path / "model.cylstm"
    q.save(path)
    back = cylstm.load_quantized(path)
    np.testing.assert_array_equal(back(x), q(x))
    assert back.weight_dtype == dtype


def test_embedding_model_keeps_float_layers(tmp_path):
    model = cylstm.Sequential([cylstm.layers.Embedding(20, 4), cylstm.layers.LSTM(5),
                               cylstm.layers.Dense(1, activation="sigmoid")])
    tokens = np.random.default_rng(0).integers(0, 20, (3, 6))
    model(tokens)
    q = cylstm.quantize(model, "int8")
    assert type(q.layers[0]) is cylstm.layers.Embedding
    _close(model(tokens), q(tokens), "int8")
    q.save(tmp_path / "m.cylstm")
    np.testing.assert_array_equal(cylstm.load_quantized(tmp_path / "m.cylstm")(tokens),
                                  q(tokens))


def test_int8_weights_are_a_quarter(data):
    layer = cylstm.layers.LSTM(64)
    layer(data[0])
    q8, q16 = cylstm.quantize(layer, "int8"), cylstm.quantize(layer, "bfloat16")
    assert q8.recurrent_kernel.values.nbytes * 4 == layer.cell.recurrent_kernel.nbytes
    assert q16.recurrent_kernel.values.nbytes * 2 == layer.cell.recurrent_kernel.nbytes


def test_training_and_bad_arguments_raise(data):
    x, _ = data
    layer = cylstm.layers.LSTM(4)
    layer(x)
    q = cylstm.quantize(layer)
    with pytest.raises(TypeError, match="inference-only"):
        q.fit(x, x)
    with pytest.raises(TypeError, match="inference-only"):
        q.forward_train(x)
    with pytest.raises(ValueError, match="training=False"):
        q(x, training=True)
    with pytest.raises(ValueError, match="features"):
        q(x[..., :2])
    with pytest.raises(ValueError, match="mask"):
        q(x, mask=np.ones((4, 6), bool))
    with pytest.raises(ValueError, match="dtype"):
        cylstm.quantize(layer, "int4")
    with pytest.raises(TypeError, match="quantize takes"):
        cylstm.quantize(object())
    with pytest.raises(ValueError, match="no weights"):
        cylstm.quantize(cylstm.layers.LSTM(3))
    relu = cylstm.layers.LSTM(3, activation="relu")
    relu(x)
    with pytest.raises(ValueError, match="tanh"):
        cylstm.quantize(relu)
    with pytest.raises(TypeError, match="inference-only"):
        cylstm.quantize(cylstm.nn.LSTM(5, 3)).train()


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.cylstm"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.cylstm"):
        cylstm.load_quantized(bad)
    model = cylstm.Sequential([cylstm.layers.LSTM(3, input_shape=(2, 4))])
    model.build((None, 2, 4))
    model.save(tmp_path / "float.cylstm")
    with pytest.raises(ValueError, match="not a cylstm.quantized file"):
        cylstm.load_quantized(tmp_path / "float.cylstm")


@pytest.mark.parametrize("dtype", DTYPES)
def test_load_model_reads_quantized_files(dtype, tmp_path):
    x = np.random.default_rng(4).standard_normal((3, 5, 4)).astype(np.float32)
    model = cylstm.Sequential([cylstm.layers.LSTM(6, input_shape=(5, 4)),
                               cylstm.layers.Dense(2)])
    model.build((None, 5, 4))
    lstm = cylstm.nn.LSTM(4, 6, num_layers=2)
    for obj, call in ((model, lambda m: m.predict(x)), (lstm, lambda m: m(x)[0])):
        q = cylstm.quantize(obj, dtype)
        path = tmp_path / f"{type(obj).__name__}.cylstm"
        q.save(path)
        again = cylstm.models.load_model(path)
        assert type(again) is type(q) and again.weight_dtype == dtype
        np.testing.assert_array_equal(call(again), call(q))
    bad = tmp_path / "bad.cylstm"
    with zipfile.ZipFile(tmp_path / "Sequential.cylstm") as src, \
            zipfile.ZipFile(bad, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
        dst.writestr("weights.npz", b"truncated")
    with pytest.raises(ValueError, match="bad.cylstm"):
        cylstm.models.load_model(bad)


def test_load_rejects_weights_that_do_not_fit(tmp_path):
    import io
    import zipfile
    layer = cylstm.layers.LSTM(4)
    layer(np.ones((2, 3, 5), np.float32))
    path = tmp_path / "lstm.cylstm"
    cylstm.quantize(layer, "int8").save(path)
    with zipfile.ZipFile(path) as zf:
        config = zf.read("config.json")
        with np.load(io.BytesIO(zf.read("weights.npz"))) as npz:
            arrays = {k: npz[k] for k in npz.files}
    arrays["w.recurrent_kernel.values"] = arrays["w.recurrent_kernel.values"][:3]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    bad = tmp_path / "bad.cylstm"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("weights.npz", buf.getvalue())
    with pytest.raises(ValueError, match="bad.cylstm"):
        cylstm.load_quantized(bad)
    arrays["w.recurrent_kernel.values"] = arrays["w.recurrent_kernel.values"].astype(object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("weights.npz", buf.getvalue())
    with pytest.raises(ValueError, match="unpickling"):
        cylstm.load_quantized(bad)


def test_non_finite_weights_are_refused():
    layer = cylstm.layers.LSTM(3)
    layer(np.ones((1, 2, 4), np.float32))
    w = layer.get_weights()
    w[0][0, 0] = np.nan
    layer.set_weights(w)
    with pytest.raises(ValueError, match="NaN"):
        cylstm.quantize(layer, "bfloat16")


def test_concurrent_calls_share_the_kernel_safely():
    # The kernel keeps work buffers between calls; a call that finds them in
    # use (another thread, GIL released) takes its own.
    from concurrent.futures import ThreadPoolExecutor
    layer = cylstm.layers.LSTM(32, return_sequences=True)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((3, 20, 8)).astype(np.float32) for _ in range(8)]
    layer(xs[0])
    q = cylstm.quantize(layer, "int8")
    want = [q(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            got = list(pool.map(q, xs))
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)


def test_concurrent_calls_with_the_column_split(monkeypatch):
    # Several Python threads each asking for the column split: one gets the C
    # pool, the others find it busy and run inline; every result is the same.
    from concurrent.futures import ThreadPoolExecutor

    from cylstm import _quantized_dispatch as dispatch
    monkeypatch.setattr(dispatch, "SPLIT_MIN_WORK", 1)
    layer = cylstm.layers.LSTM(64, return_sequences=True)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((1, 30, 16)).astype(np.float32) for _ in range(8)]
    layer(xs[0])
    for dtype in ("int8", "bfloat16"):
        q = cylstm.quantize(layer, dtype)
        want = [q(x) for x in xs]

        def call(x):
            with cylstm.threads(2):
                return q(x)
        with ThreadPoolExecutor(4) as pool:
            for _ in range(3):
                for g, w in zip(pool.map(call, xs), want):
                    np.testing.assert_array_equal(g, w)   # H = 64: whole vectors, exact


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_lstm_one_step_shortcut_equals_the_general_path(dtype, batch_first):
    # One step from zero states goes through the kernel's step; with explicit
    # zero states it takes the general path: the same numbers and shapes.
    module = cylstm.nn.LSTM(12, 20, batch_first=batch_first, seed=3)
    q = cylstm.quantize(module, dtype)
    rng = np.random.default_rng(8)
    for B in (1, 3, 1):
        x = rng.standard_normal((B, 1, 12) if batch_first else (1, B, 12)).astype(np.float32)
        zeros = (np.zeros((1, B, 20), np.float32), np.zeros((1, B, 20), np.float32))
        out, (h, c) = q(x)
        out2, (h2, c2) = q(x, zeros)
        assert out.shape == out2.shape and h.shape == h2.shape == (1, B, 20)
        for a, b in ((out, out2), (h, h2), (c, c2)):
            np.testing.assert_array_equal(a, b)
        out[...] = 7   # the output is not a view of the states
        assert not np.any(h == 7)
    for B, T in ((1, 4), (3, 2)):   # longer sequences take the general path
        x = rng.standard_normal((B, T, 12) if batch_first else (T, B, 12)).astype(np.float32)
        zeros = (np.zeros((1, B, 20), np.float32), np.zeros((1, B, 20), np.float32))
        out, (h, c) = q(x)
        out2, (h2, c2) = q(x, zeros)
        assert out.shape == out2.shape == ((B, T, 20) if batch_first else (T, B, 20))
        for a, b in ((out, out2), (h, h2), (c, c2)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_lstm_one_step_call_passes_what_its_kernel_refuses_to_forward(batch_first):
    # module(x) of one step tries the kernel's step first: float64, a
    # non-contiguous array or a wrong feature count must still get forward's
    # result or its error.
    module = cylstm.nn.LSTM(12, 20, batch_first=batch_first, seed=4)
    q = cylstm.quantize(module, "int8")
    rng = np.random.default_rng(9)
    shape = (2, 1, 12) if batch_first else (1, 2, 12)
    x = rng.standard_normal(shape).astype(np.float32)
    out, (h, c) = q(x)
    for other in (x.astype(np.float64), np.asfortranarray(x)):
        out2, (h2, c2) = q(other)
        for a, b in ((out, out2), (h, h2), (c, c2)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="12"):
        q(np.zeros(shape[:2] + (13,), np.float32))
