"""Every object that carries weights pickles (pickle and cloudpickle) to an
equal object: same weights, same config, bit-identical outputs, and the
same state for what comes next (dropout generators, stateful states,
optimizer moments, non-zero gradients); without its workspaces, streaming
kernels or locks (SPEC section 10, cylstm/_pickling.py)."""
import pickle

import numpy as np
import pytest

import cylstm
from cylstm import layers, nn, optimizers
from cylstm._ops import Workspace
from cylstm._pickling import Fresh
from tests.conftest import GOLDEN

try:
    import cloudpickle
except ImportError:
    cloudpickle = None

DUMPERS = [pytest.param(pickle, id="pickle"),
           pytest.param(cloudpickle, id="cloudpickle",
                        marks=pytest.mark.skipif(cloudpickle is None,
                                                 reason="cloudpickle not installed"))]


def _roundtrip(obj, dumper):
    return pickle.loads(dumper.dumps(obj))


def _same_arrays(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u, v), np.abs(u - v).max()


def _same_output(a, b):
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            _same_output(u, v)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _no_scratch(obj, seen=None):
    """No workspace, kernel or lock anywhere in the attributes of a freshly
    unpickled object (walked through layers, cells and slots)."""
    from cylstm._kernels.lstm_step import StepKernel
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    attrs = getattr(obj, "__dict__", {})
    for name, value in attrs.items():
        assert not isinstance(value, (StepKernel, Fresh)), name
        if isinstance(value, Workspace):
            assert not value._buffers and not value._free_stores, name
        if isinstance(value, (layers.Layer, nn.LSTM, nn.LSTMCell)):
            _no_scratch(value, seen)
        if isinstance(value, list):
            for item in value:
                if isinstance(item, (layers.Layer, nn.LSTM)):
                    _no_scratch(item, seen)


def _x(dtype, shape=(6, 5, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- Keras-style layers ---------------------------------------------------------

def _keras_layers(dtype):
    """(layer, call) pairs, each layer called once so that its scratch exists."""
    x = _x(dtype)
    cases = [
        (layers.LSTM(7, dtype=dtype), lambda l: l(x)),
        (layers.LSTM(7, return_sequences=True, return_state=True, go_backwards=True,
                     dtype=dtype), lambda l: l(x)),
        (layers.LSTM(7, dropout=0.3, recurrent_dropout=0.2, seed=3, dtype=dtype),
         lambda l: l(x, training=True)),
        (layers.LSTM(7, stateful=True, dtype=dtype), lambda l: l(x)),
        (layers.LSTM(7, activation="relu", recurrent_activation=cylstm.activations.hard_sigmoid,
                     dtype=dtype), lambda l: l(x)),
        (layers.LSTMCell(7, dtype=dtype), lambda l: l(x[:, 0])[0]),
        (layers.Bidirectional(layers.LSTM(5, return_sequences=True), merge_mode="concat",
                              dtype=dtype), lambda l: l(x)),
        (layers.Dense(4, activation="tanh", dtype=dtype), lambda l: l(x)),
        (layers.Embedding(10, 4, mask_zero=True, dtype=dtype),
         lambda l: l(np.arange(12).reshape(3, 4) % 10)),
        (layers.Masking(0.0, dtype=dtype), lambda l: l(x)),
        (layers.Dropout(0.5, seed=2, dtype=dtype), lambda l: l(x, training=True)),
    ]
    return cases


@pytest.mark.parametrize("dumper", DUMPERS)
def test_every_keras_style_layer_roundtrips(dtype, dumper):
    for layer, call in _keras_layers(dtype):
        call(layer)
        if isinstance(layer, layers.LSTM):
            # the streaming kernel too
            layer.step(_x(dtype, (6, 3)), layer.get_initial_state(6))
        copy = _roundtrip(layer, dumper)
        assert type(copy) is type(layer) and copy.name == layer.name
        assert copy.get_config() == layer.get_config()
        _same_arrays(copy.get_weights(), layer.get_weights())
        _no_scratch(copy)
        # The next call is the same: outputs, stateful states, dropout draws.
        _same_output(call(copy), call(layer))
        _same_output(call(copy), call(layer))


def test_lstm_step_and_training_after_unpickling(dtype):
    layer = layers.LSTM(6, return_sequences=True, dtype=dtype)
    x = _x(dtype)
    layer(x)
    copy = pickle.loads(pickle.dumps(layer))
    # the cell's weights and gradients are still the layer's (one dict each)
    assert copy.grads is copy.cell.grads and copy._params is copy.cell._params
    states = layer.get_initial_state(6)
    _same_output(copy.step(x[:, 0], states), layer.step(x[:, 0], states))
    for lay in (layer, copy):
        y, backprop = lay.forward_train(x)
        backprop(np.ones_like(y))
    _same_arrays(list(copy.grads.values()), list(layer.grads.values()))
    # non-zero gradients travel (a pickle between backward and optimizer step)
    again = pickle.loads(pickle.dumps(copy))
    _same_arrays(list(again.grads.values()), list(layer.grads.values()))
    assert again.grads is again.cell.grads


def test_bidirectional_weights_stay_its_inner_layers():
    layer = layers.Bidirectional(layers.LSTM(4))
    x = _x("float32")
    layer(x)
    copy = pickle.loads(pickle.dumps(layer))
    new = [w + 0.25 for w in copy.get_weights()]
    for lay in (layer, copy):
        lay.set_weights(new)
    _same_arrays(copy.forward_layer.get_weights() + copy.backward_layer.get_weights(), new)
    _same_output(copy(x), layer(x))


# -- PyTorch-style modules -----------------------------------------------------

def _nn_modules(dtype):
    return [
        (nn.LSTM(3, 8, dtype=dtype, seed=1), _x(dtype, (5, 4, 3))),
        (nn.LSTM(3, 8, num_layers=2, bidirectional=True, proj_size=4, batch_first=True,
                 dropout=0.25, dtype=dtype, seed=2), _x(dtype, (4, 5, 3))),
        (nn.LSTMCell(3, 8, dtype=dtype, seed=3), _x(dtype, (4, 3))),
    ]


@pytest.mark.parametrize("dumper", DUMPERS)
def test_nn_modules_roundtrip(dtype, dumper):
    for module, x in _nn_modules(dtype):
        module(x)
        copy = _roundtrip(module, dumper)
        assert type(copy) is type(module) and repr(copy) == repr(module)
        sd, sd_copy = module.state_dict(), copy.state_dict()
        assert list(sd) == list(sd_copy)
        _same_arrays(list(sd_copy.values()), list(sd.values()))
        _no_scratch(copy)
        # the torch-named weights are views of what the kernels read, again
        name = next(iter(sd_copy))
        getattr(copy, name)[...] *= 0.5
        getattr(module, name)[...] *= 0.5
        _same_output(copy(x), module(x))     # training mode: dropout draws agree
        copy.eval(), module.eval()
        _same_output(copy(x), module(x))


def test_nn_gradients_travel_only_when_non_zero():
    lstm = nn.LSTM(3, 5, num_layers=2, seed=0)
    x = _x("float32", (4, 2, 3))
    small = len(pickle.dumps(lstm))
    (out, _), backprop = lstm.forward_train(x)
    backprop((np.ones_like(out), (None, None)))
    big = pickle.loads(pickle.dumps(lstm))
    _same_arrays(list(big.grads.values()), list(lstm.grads.values()))
    # the gradient views are views of the slots' gradient arrays again
    assert np.shares_memory(big.grads["weight_ih_l0"], big._slots[0][0].g_kernel)
    lstm.zero_grad()
    assert len(pickle.dumps(lstm)) == pytest.approx(small, abs=64)


# -- models, loaders, optimizers -------------------------------------------------

def _fitted_model(dtype="float32"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 2)).astype(dtype)
    y = x.sum(axis=(1, 2))[:, None]
    model = cylstm.Sequential([layers.LSTM(8, input_shape=(6, 2), dtype=dtype),
                               layers.Dense(1, dtype=dtype)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model, x, y


@pytest.mark.parametrize("dumper", DUMPERS)
def test_fitted_sequential_roundtrips_and_trains_on_identically(dtype, dumper):
    model, x, y = _fitted_model(dtype)
    copy = _roundtrip(model, dumper)
    _same_output(copy.predict(x, verbose=0), model.predict(x, verbose=0))
    assert copy.optimizer.iterations == model.optimizer.iterations
    for m in (model, copy):
        cylstm.utils.set_random_seed(5)
        m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    _same_arrays(copy.get_weights(), model.get_weights())


def test_from_keras_result_roundtrips():
    pytest.importorskip("h5py")
    for name in ("lstm_dense.keras", "embed_lstm_bidi_dense.h5"):
        model = cylstm.from_keras(GOLDEN / "keras_files" / name)
        with np.load(GOLDEN / "keras_files" / (name.split(".")[0] + ".npz")) as z:
            x = z["x"]
        for dumper in (pickle, cloudpickle):
            if dumper is None:
                continue
            copy = _roundtrip(model, dumper)
            _same_output(copy.predict(x, verbose=0), model.predict(x, verbose=0))


def test_from_torch_result_roundtrips():
    source = nn.LSTM(4, 6, num_layers=2, seed=7)
    state = {k: v.copy() for k, v in source.state_dict().items()}
    lstm = nn.LSTM.from_torch(state, batch_first=True)
    x = _x("float32", (3, 5, 4))
    copy = pickle.loads(pickle.dumps(lstm))
    _same_output(copy(x), lstm(x))


def test_from_onnx_result_roundtrips():
    pytest.importorskip("onnx")
    path = GOLDEN / "onnx_lstm" / "bidirectional_seqlens_initial.onnx"
    node = cylstm.from_onnx(path)
    with np.load(path.with_suffix(".npz")) as z:
        x = z["X"]
    for dumper in (pickle, cloudpickle):
        if dumper is None:
            continue
        copy = _roundtrip(node, dumper)
        assert type(copy) is type(node) and copy.direction == node.direction
        _same_output(list(copy.run(x)), list(node.run(x)))


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                                  lambda: optimizers.Adam(0.01, clipnorm=1.0),
                                  lambda: optimizers.RMSprop(0.01, momentum=0.5)],
                         ids=["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("dumper", DUMPERS)
def test_optimizers_roundtrip_with_their_moments(make, dumper):
    rng = np.random.default_rng(0)
    opt = make()
    w = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 3))
    for _ in range(3):
        opt.apply([("w", w, g)])
    copy = _roundtrip(opt, dumper)
    assert copy.get_config() == opt.get_config() and copy.iterations == opt.iterations
    w2 = w.copy()
    opt.apply([("w", w, g)])
    copy.apply([("w", w2, g)])
    assert np.array_equal(w, w2)


# -- what a pickle does not carry ------------------------------------------------

def test_pickled_lstm_does_not_carry_its_workspace():
    layer = layers.LSTM(64, return_sequences=True)
    x = _x("float32", (256, 50, 16))
    layer(x)                                    # fills the workspace
    y, backprop = layer.forward_train(x)        # and the training stores
    backprop(np.zeros_like(y))
    layer.step(x[:, 0], layer.get_initial_state(256))   # and the step kernel
    ws = layer._workspace
    scratch = sum(b.nbytes for b in ws._buffers.values()) + sum(
        a.nbytes for _, arrays in ws._free_stores for a in arrays.values() if a is not None)
    weights = sum(w.nbytes for w in layer.get_weights())
    assert scratch > 10 * weights               # the bound below means something
    size = len(pickle.dumps(layer))
    assert weights < size < weights + 4096, (size, weights)


def test_pickled_nn_lstm_is_its_weights_and_a_small_config():
    lstm = nn.LSTM(16, 64, num_layers=2, batch_first=True)
    lstm(_x("float32", (256, 50, 16)))
    weights = sum(w.nbytes for w in lstm.state_dict().values())
    size = len(pickle.dumps(lstm))
    assert weights < size < weights + 4096, (size, weights)


def test_fitted_model_size_is_weights_optimizer_moments_and_config():
    model, x, _ = _fitted_model()
    weights = sum(w.nbytes for w in model.get_weights())
    moments = sum(a.nbytes for slots in model.optimizer._slots.values() for a in slots.values())
    size = len(pickle.dumps(model))
    assert weights + moments < size < weights + moments + 16384, (size, weights, moments)


def test_caches_of_kernels_and_locks_are_left_out():
    """Whatever scratch a layer keeps (a lock, a cache of step kernels per
    batch size), found by type, is rebuilt empty rather than pickled."""
    import threading
    layer = layers.LSTM(4)
    x = _x("float32", (3, 2, 5))
    layer(x)
    layer.step(x[:, 0], layer.get_initial_state(3))
    layer._kernels_by_batch = {3: layer.cell._stepper}
    layer._a_lock = threading.Lock()
    layer._per_thread = threading.local()
    copy = pickle.loads(pickle.dumps(layer))
    assert copy._kernels_by_batch == {}
    assert copy._a_lock.acquire(blocking=False)
    assert isinstance(copy._per_thread, threading.local)
    _same_output(copy(x), layer(x))
