"""``layer.to(name)`` moves a layer's weights, gradients, kept states and
sub-layers to a registered backend (torch's ``module.to``), and a cached
streaming stepper follows the backend in force (``use_backend``) instead of
being reused from another one."""
import numpy as np
import pytest

from cylstm import layers, optimizers
from cylstm._kernels.lstm_step import StepKernel
from cylstm.backends import backend_named, use_backend
from cylstm.backends.base import ReferenceStepper

strict = pytest.importorskip("array_api_strict")
StrictArray = type(strict.asarray(0.0))

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def _x(shape, dtype="float32", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _numpy(a):
    return a if isinstance(a, np.ndarray) else np.from_dlpack(a)


def _all_on(layer, array_type):
    arrays = layer.weights + list(layer.grads.values())
    return arrays and all(type(a) is array_type for a in arrays)


def test_to_returns_the_layer_and_moves_weights_and_grads_both_ways(dtype):
    layer = layers.LSTM(5, return_sequences=True, dtype=dtype)
    x = _x((3, 4, 2), dtype)
    want = layer(x)
    before = layer.get_weights()
    assert layer.to("array_api_strict") is layer
    assert _all_on(layer, StrictArray) and _all_on(layer.cell, StrictArray)
    assert layer.backend is backend_named("array_api_strict")
    for got, old in zip(layer.get_weights(), before):   # get_weights: NumPy copies
        assert type(got) is np.ndarray and got.dtype == old.dtype
        np.testing.assert_array_equal(got, old)
    got = layer(x)
    assert isinstance(got, StrictArray)
    np.testing.assert_allclose(_numpy(got), want, **TOL[dtype])
    layer.to("cpu")
    assert _all_on(layer, np.ndarray)
    assert all(w.flags.c_contiguous for w in layer.weights)
    np.testing.assert_array_equal(layer(x), want)


def test_unknown_backend_is_a_clear_error():
    layer = layers.Dense(2)
    with pytest.raises(ValueError, match=r"Unknown backend 'gpu'.*registered"):
        layer.to("gpu")
    with pytest.raises(TypeError, match="registered backend"):
        layer.to(3)


def test_an_unbuilt_layer_builds_its_weights_on_the_backend_it_was_moved_to():
    layer = layers.LSTM(3).to("array_api_strict")
    y = layer(_x((2, 4, 5)))
    assert isinstance(y, StrictArray) and _all_on(layer, StrictArray)


def test_stateful_states_move_with_the_layer():
    x = _x((2, 3, 4))
    ref = layers.LSTM(3, stateful=True)
    layer = layers.LSTM.from_config(ref.get_config())
    ref(x)
    layer.build(x.shape)
    layer.set_weights(ref.get_weights())
    layer(x)
    layer.to("array_api_strict")
    assert all(isinstance(s, StrictArray) for s in layer.states)
    np.testing.assert_allclose(_numpy(layer(x)), ref(x), **TOL["float32"])
    layer.reset_state()
    assert not any(np.any(_numpy(s)) for s in layer.states)


def test_training_on_a_moved_layer_matches_the_cpu(dtype):
    x = _x((3, 5, 4), dtype)
    results = []
    for backend in ("cpu", "array_api_strict"):
        layer = layers.LSTM(6, return_sequences=True, dtype=dtype,
                            kernel_initializer="glorot_uniform")
        layer.build(x.shape)
        layer.set_weights([np.linspace(-0.5, 0.5, w.size).reshape(w.shape)
                           for w in layer.weights])
        layer.to(backend)
        opt = optimizers.Adam(0.01)
        for _ in range(3):
            y, backprop = layer.forward_train(x)
            backprop(np.ones(tuple(y.shape), dtype))
            opt.apply(layer.named_parameters())
            layer.zero_grad()
        assert all(type(s) is type(layer.kernel) for s in opt._slots["kernel"].values())
        results.append(layer.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TOL[dtype])


def test_bidirectional_moves_both_layers():
    layer = layers.Bidirectional(layers.LSTM(3))
    layer(_x((2, 4, 5)))
    layer.to("array_api_strict")
    assert _all_on(layer.forward_layer, StrictArray)
    assert _all_on(layer.backward_layer.cell, StrictArray)
    layer.to("numpy")
    assert _all_on(layer, np.ndarray)
    assert layer.forward_layer.backend is backend_named("numpy")


def test_numpy_reference_backend_runs_a_moved_layer():
    layer = layers.LSTM(4)
    x = _x((2, 3, 5))
    want = layer(x)
    layer.to("numpy")
    assert layer.cell.backend is backend_named("numpy")
    np.testing.assert_allclose(layer(x), want, **TOL["float32"])


# -- the cached streaming stepper follows the backend in force -------------------

def test_cell_stepper_is_rebuilt_when_the_backend_in_force_changes():
    cell = layers.LSTMCell(4)
    x = _x((2, 3))
    states = cell.get_initial_state(2)
    want, _ = cell(x, states)
    assert isinstance(cell._stepper, StepKernel)
    with use_backend("numpy"):
        got, _ = cell(x, states)
        assert isinstance(cell._stepper, ReferenceStepper)
        assert cell._stepper.backend is backend_named("numpy")
    np.testing.assert_allclose(got, want, **TOL["float32"])
    got, _ = cell(x, states)
    assert isinstance(cell._stepper, StepKernel)
    np.testing.assert_allclose(got, want, **TOL["float32"])


def test_lstm_step_and_one_step_calls_do_not_reuse_another_backends_stepper():
    layer = layers.LSTM(4, return_sequences=True)
    x = _x((2, 1, 3))
    want = layer(x)
    want_step, _ = layer.step(x[:, 0], layer.get_initial_state(2))
    assert isinstance(layer.cell._stepper, StepKernel)
    with use_backend("array_api_strict"):
        layer.to("array_api_strict")
        got_step, _ = layer.step(x[:, 0], layer.get_initial_state(2))
        assert isinstance(layer.cell._stepper, ReferenceStepper)
        got = layer(x)
    np.testing.assert_allclose(_numpy(got_step), want_step, **TOL["float32"])
    np.testing.assert_allclose(_numpy(got), want, **TOL["float32"])
    layer.to("cpu")
    assert layer.cell._stepper is None       # packed from the moved arrays: dropped
    np.testing.assert_array_equal(layer.step(x[:, 0], layer.get_initial_state(2))[0],
                                  want_step)
    assert isinstance(layer.cell._stepper, StepKernel)


@pytest.mark.parametrize("merge_mode", ["concat", "mul", None])
def test_bidirectional_runs_and_trains_on_a_moved_backend(merge_mode):
    x = _x((2, 4, 3))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    results = []
    for backend in ("cpu", "array_api_strict"):
        layer = layers.Bidirectional(layers.LSTM(3, return_sequences=True),
                                     merge_mode=merge_mode)
        layer.build(x.shape)
        layer.set_weights([np.linspace(-0.4, 0.4, w.size).reshape(w.shape)
                           for w in layer.weights])
        layer.to(backend)
        y = layer(x, mask=mask)
        out, backprop = layer.forward_train(x, mask=mask)
        dy = ([np.ones(tuple(o.shape), "float32") for o in out] if merge_mode is None
              else np.ones(tuple(out.shape), "float32"))
        dx = backprop(dy)
        ys = y if merge_mode is None else [y]
        results.append(([_numpy(a) for a in ys], _numpy(dx),
                        [_numpy(g).copy() for g in layer.grads.values()]))
    (y0, dx0, g0), (y1, dx1, g1) = results
    for a, b in zip(y0 + [dx0] + g0, y1 + [dx1] + g1):
        np.testing.assert_allclose(b, a, **TOL["float32"])
