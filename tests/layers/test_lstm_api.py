"""cylstm.layers.LSTM: Keras API surface, input handling, errors and threads."""
import threading

import numpy as np
import pytest

import cylstm
from cylstm.layers import LSTM, LSTMCell
from .._helpers import numerical_gradient_at


def _x(rng, shape=(3, 6, 4), dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


def test_keras_documentation_example(rng):
    inputs = rng.random((32, 10, 8)).astype("float32")
    lstm = cylstm.layers.LSTM(4)
    assert lstm(inputs).shape == (32, 4)
    lstm = cylstm.layers.LSTM(4, return_sequences=True, return_state=True)
    whole_seq_output, final_memory_state, final_carry_state = lstm(inputs)
    assert whole_seq_output.shape == (32, 10, 4)
    assert final_memory_state.shape == (32, 4) and final_carry_state.shape == (32, 4)
    np.testing.assert_array_equal(whole_seq_output[:, -1], final_memory_state)


def test_top_level_alias():
    assert cylstm.LSTM is cylstm.layers.LSTM


def test_weights_shapes_and_keras_order(rng):
    layer = LSTM(5)
    layer.build((None, 7, 3))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (3, 20) and recurrent.shape == (5, 20) and bias.shape == (20,)
    # unit_forget_bias: ones on the forget gate, zeros elsewhere
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(5), atol=1e-5)  # orthogonal
    assert layer.count_params() == 3 * 20 + 5 * 20 + 20
    assert [w.shape for w in layer.trainable_weights] == [(3, 20), (5, 20), (20,)]
    assert layer.non_trainable_weights == []
    assert layer.kernel is layer.weights[0]


def test_use_bias_false_has_two_weights():
    layer = LSTM(3, use_bias=False)
    layer.build((2, 4, 6))
    assert len(layer.get_weights()) == 2


def test_seeded_initializers_are_reproducible():
    a, b = LSTM(4, kernel_initializer=cylstm.initializers.GlorotUniform(seed=1)), \
        LSTM(4, kernel_initializer=cylstm.initializers.GlorotUniform(seed=1))
    a.build((1, 2, 3))
    b.build((1, 2, 3))
    np.testing.assert_array_equal(a.kernel, b.kernel)


def test_time_major_matches_batch_major(rng):
    x = _x(rng)
    bm = LSTM(5, return_sequences=True, return_state=True)
    tm = LSTM(5, return_sequences=True, return_state=True, time_major=True)
    bm.build(x.shape)
    tm.build(x.transpose(1, 0, 2).shape)
    tm.set_weights(bm.get_weights())
    mask = rng.random((3, 6)) > 0.3
    seq, h, c = bm(x, mask=mask)
    tseq, th, tc = tm(x.transpose(1, 0, 2), mask=mask.T)
    np.testing.assert_allclose(tseq, seq.transpose(1, 0, 2), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(th, h, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float16", "int32", "float64", "bool"])
def test_input_dtypes_are_cast_to_layer_dtype(rng, dtype):
    layer = LSTM(3)
    x = (rng.standard_normal((2, 4, 3)) * 3).astype(dtype)
    out = layer(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, layer(x.astype("float32")), rtol=1e-6)


def test_float64_layer(rng):
    layer = LSTM(3, dtype="float64")
    assert layer(_x(rng)).dtype == np.float64


def test_read_only_and_non_contiguous_inputs(rng):
    layer = LSTM(4, return_sequences=True)
    base = _x(rng, (3, 12, 8))
    x = base[:, ::2, ::2]  # non-contiguous
    expected = layer(np.ascontiguousarray(x))
    ro = np.ascontiguousarray(x)
    ro.setflags(write=False)
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_array_equal(layer(ro), expected)
    w = layer.get_weights()
    for a in w:
        a.setflags(write=False)
    layer.set_weights(w)
    np.testing.assert_array_equal(layer(x), expected)


def test_list_input_accepted(rng):
    layer = LSTM(2)
    x = _x(rng, (1, 3, 2))
    np.testing.assert_array_equal(layer(x.tolist()), layer(x))


def test_nan_propagates_without_crash(rng):
    x = _x(rng)
    x[1, 2, 0] = np.nan
    x[2, 0, 0] = np.inf
    out = LSTM(3)(x)
    assert np.isnan(out[1]).all()
    assert np.isfinite(out[0]).all()


def test_empty_batch_returns_empty(rng):
    layer = LSTM(3, return_sequences=True, return_state=True)
    seq, h, c = layer(np.zeros((0, 5, 2), "float32"))
    assert seq.shape == (0, 5, 3) and h.shape == (0, 3) and c.shape == (0, 3)


@pytest.mark.parametrize("make_bad,match", [
    (lambda rng: rng.standard_normal((3, 4)), "3-D"),
    (lambda rng: rng.standard_normal((3, 4, 5, 6)), "3-D"),
    (lambda rng: np.zeros((3, 0, 4)), "0 timesteps"),
    (lambda rng: rng.standard_normal((3, 6, 7)), "4 features"),
])
def test_bad_input_shapes_raise(rng, make_bad, match):
    layer = LSTM(5)
    layer.build((None, 6, 4))
    with pytest.raises(ValueError, match=match):
        layer(make_bad(rng))


def test_bad_input_types_raise(rng):
    layer = LSTM(2)
    with pytest.raises(TypeError, match="real numbers"):
        layer(np.array([[["a"]]]))
    with pytest.raises(TypeError, match="real numbers"):
        layer(np.ones((1, 2, 3), complex))


def test_bad_mask_and_state_shapes_raise(rng):
    layer = LSTM(5)
    x = _x(rng)
    with pytest.raises(ValueError, match="mask"):
        layer(x, mask=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        layer(x, initial_state=[np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(ValueError, match="list"):
        layer(x, initial_state=[np.zeros((3, 5))])


@pytest.mark.parametrize("kwargs,match", [
    (dict(units=0), "units"), (dict(units=2.5), "units"), (dict(units=-1), "units"),
    (dict(units=2, activation="nope"), "activation"),
    (dict(units=2, kernel_initializer="nope"), "nope"),
    (dict(units=2, dropout=1.5), "dropout"), (dict(units=2, recurrent_dropout=-0.1), "recurrent_dropout"),
    (dict(units=2, use_cudnn="yes"), "use_cudnn"), (dict(units=2, dtype="int8"), "dtype"),
    (dict(units=2, return_sequences="yes"), "return_sequences"),
    (dict(units=2, bogus=1), "bogus"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LSTM(**kwargs)


def test_stateful_batch_size_change_raises(rng):
    layer = LSTM(3, stateful=True)
    layer(_x(rng, (2, 4, 3)))
    with pytest.raises(ValueError, match="batch size"):
        layer(_x(rng, (3, 4, 3)))


def test_stateful_carries_state_and_resets(rng):
    x = _x(rng, (2, 8, 3))
    full = LSTM(4, return_sequences=True, seed=1, kernel_initializer=cylstm.initializers.GlorotUniform(seed=2))
    stateful = LSTM(4, return_sequences=True, stateful=True)
    full.build(x.shape)
    stateful.build(x.shape)
    stateful.set_weights(full.get_weights())
    expected = full(x)
    got = np.concatenate([stateful(x[:, :4]), stateful(x[:, 4:])], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :4]), expected[:, :4], rtol=1e-6, atol=1e-7)


def test_go_backwards_equals_reversed_input(rng):
    x = _x(rng)
    a = LSTM(3, return_sequences=True, go_backwards=True)
    b = LSTM(3, return_sequences=True)
    a.build(x.shape)
    b.build(x.shape)
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(a(x), b(x[:, ::-1]), rtol=1e-6, atol=1e-7)


def test_compute_output_shape_and_output_spec():
    layer = LSTM(64, return_sequences=True, return_state=True)
    assert layer.compute_output_shape((None, 10, 8)) == [(None, 10, 64), (None, 64), (None, 64)]
    layer.build((None, 10, 8))
    assert layer.output[0].shape == (None, 10, 64)
    assert LSTM(7).compute_output_shape((5, 3, 2)) == (5, 7)


def test_inner_loop_matches_call(rng):
    x = _x(rng)
    layer = LSTM(4, return_sequences=True)
    last, outputs, (h, c) = layer.inner_loop(x, None, None)
    np.testing.assert_array_equal(outputs, layer(x))
    np.testing.assert_array_equal(last, outputs[:, -1])
    layer2 = LSTM(4)
    layer2.build(x.shape)
    layer2.set_weights(layer.get_weights())
    last2, outputs2, _ = layer2.inner_loop(x, None, None)
    assert outputs2.shape == (3, 1, 4)


def test_step_matches_full_sequence(rng):
    x = _x(rng)
    layer = LSTM(4, return_sequences=True)
    seq = layer(x)
    states = layer.get_initial_state(3)
    for t in range(x.shape[1]):
        h, states = layer.step(x[:, t], states)
        np.testing.assert_allclose(h, seq[:, t], rtol=1e-6, atol=1e-7)


def test_python_callable_activation_matches_builtin(rng):
    x = _x(rng, dtype="float64")
    builtin = LSTM(3, activation="tanh", return_sequences=True, dtype="float64")
    custom = LSTM(3, activation=lambda z: np.tanh(z), return_sequences=True, dtype="float64")
    builtin.build(x.shape)
    custom.build(x.shape)
    custom.set_weights(builtin.get_weights())
    np.testing.assert_allclose(custom(x), builtin(x), rtol=1e-12)


def test_dropout_only_in_training(rng):
    x = _x(rng)
    layer = LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    np.testing.assert_array_equal(layer(x), layer(x))
    a, b = layer(x, training=True), layer(x, training=True)
    assert not np.allclose(a, b)
    again = LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3)
    again.build(x.shape)
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x, training=True), a)


def test_cell_state_size_and_initial_state():
    cell = LSTMCell(6)
    assert cell.state_size == [6, 6]
    h, c = cell.get_initial_state(batch_size=2)
    assert h.shape == (2, 6) and not h.any()


def test_set_num_threads_and_context(rng):
    before = cylstm.get_num_threads()
    with cylstm.threads(1):
        assert cylstm.get_num_threads() == 1
    assert cylstm.get_num_threads() == before
    with pytest.raises(ValueError):
        cylstm.set_num_threads(0)


def test_four_python_threads_match_serial_bit_for_bit(rng):
    layers = [LSTM(16, return_sequences=True, seed=i) for i in range(4)]
    xs = [_x(rng, (8, 30, 5)) for _ in range(4)]
    for layer, x in zip(layers, xs):
        layer.build(x.shape)
    serial = [layer(x) for layer, x in zip(layers, xs)]
    results = [None] * 4

    def work(i):
        for _ in range(5):
            results[i] = layers[i](xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    with cylstm.threads(1):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for got, expected in zip(results, serial):
        np.testing.assert_array_equal(got, expected)


def test_same_layer_from_two_threads_is_safe(rng):
    layer = LSTM(8, return_sequences=True)
    xs = [_x(rng, (4, 20, 3)) for _ in range(2)]
    layer.build(xs[0].shape)
    serial = [layer(x) for x in xs]
    results = [None, None]

    def work(i):
        for _ in range(20):
            results[i] = layer(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, expected in zip(results, serial):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("time_major", [False, True])
def test_zero_output_for_mask_follows_processing_order(rng, time_major):
    # Keras 3 (checked against it): go_backwards outputs are in processing
    # order, so mask [0,0,1,1,1,1] zeroes output positions 4 and 5.
    x = _x(rng, (2, 6, 3))
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], bool)
    plain = LSTM(4, return_sequences=True, go_backwards=True, time_major=time_major)
    zeroed = LSTM(4, return_sequences=True, go_backwards=True, zero_output_for_mask=True,
                  time_major=time_major)
    xin = x.transpose(1, 0, 2) if time_major else x
    min_ = mask.T if time_major else mask
    plain.build(xin.shape)
    zeroed.build(xin.shape)
    zeroed.set_weights(plain.get_weights())
    a, b = plain(xin, mask=min_), zeroed(xin, mask=min_)
    if time_major:
        a, b = a.transpose(1, 0, 2), b.transpose(1, 0, 2)
    assert not b[0, 4:].any() and b[0, :4].all()
    np.testing.assert_array_equal(b[0, :4], a[0, :4])
    np.testing.assert_array_equal(b[1], a[1])


def test_activity_regularizer_penalty_and_gradient(rng):
    x = _x(rng, (3, 5, 2), "float64")
    layer = LSTM(4, return_state=True, activity_regularizer=cylstm.regularizers.L2(0.3),
                 dtype="float64")
    out, h, c = layer(x)
    expected = 0.3 * (np.sum(out ** 2) + np.sum(h ** 2) + np.sum(c ** 2)) / 3
    assert layer.losses[-1] == pytest.approx(expected, rel=1e-12)

    def total(xv):
        o = layer(xv)
        return layer.losses[-1]

    y, backprop = layer.forward_train(x)
    dx = backprop([None, None, None])
    num = numerical_gradient_at(total, x)
    np.testing.assert_allclose(dx, num, rtol=1e-5, atol=1e-8)


def test_default_names_follow_keras():
    from cylstm.layers.base import _snake_case
    assert _snake_case("LSTM") == "lstm" and _snake_case("LSTMCell") == "lstm_cell"
    assert LSTM(2).name.startswith("lstm")


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("return_sequences,return_state", [(False, False), (True, True)])
def test_single_timestep_call_matches_general_path(rng, time_major, return_sequences,
                                                   return_state):
    layer = LSTM(5, time_major=time_major, return_sequences=return_sequences,
                 return_state=return_state)
    x = _x(rng, (1, 3, 4) if time_major else (3, 1, 4))
    layer.build(x.shape)
    fast = layer(x)
    general = layer(x, mask=np.ones((1, 3) if time_major else (3, 1), bool))
    fast = fast if isinstance(fast, list) else [fast]
    general = general if isinstance(general, list) else [general]
    for a, b in zip(fast, general):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_freezing_the_layer_freezes_its_weights_and_gradients(rng):
    layer = LSTM(3, dtype="float64")
    x = rng.standard_normal((2, 4, 5))
    layer.build(x.shape)
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3
    assert layer.count_params() == 5 * 12 + 3 * 12 + 12
    assert layer.get_config()["trainable"] is False
    _, backprop = layer.forward_train(x)
    backprop(np.ones((2, 3)))
    assert not any(g.any() for g in layer.grads.values())
    layer.trainable = True
    _, backprop = layer.forward_train(x)
    backprop(np.ones((2, 3)))
    assert all(g.any() for g in layer.grads.values())
    assert len(layer.trainable_weights) == 3 and layer.non_trainable_weights == []


@pytest.mark.parametrize("bad,match", [
    (np.zeros((3, 5)), r"`initial_state` .*list \[h, c\].*got ndarray"),
    ([np.zeros((3, 5))] * 3, r"`initial_state` .*length 3"),
    ([np.zeros((3, 5)), np.zeros((2, 5))], r"`initial_state\[1\]` \(state c\).*\(3, 5\).*\(2, 5\)"),
])
def test_bad_initial_state_names_the_argument(rng, bad, match):
    layer = LSTM(5)
    with pytest.raises(ValueError, match=match):
        layer(_x(rng), initial_state=bad)
