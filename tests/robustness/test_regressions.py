"""Regression tests for the defects found by fuzzing (issue 10), one per item.

The loader items (6, 7, 8) are in test_loader_limits.py; the threads of
item 1 and 9 also in test_thread_stress.py.
"""
import threading

import numpy as np
import pytest

from cylstm import nn
from cylstm.layers import LSTM, Bidirectional, LSTMCell


def _run_threads(fn, n=8):
    errors = []

    def wrap(k):
        try:
            fn(k)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# 1. streaming on one shared object from 8 threads gives the serial results
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shared_layer_step_from_threads(dtype):
    rng = np.random.default_rng(1)
    layer = LSTM(48, dtype=dtype)
    layer(np.zeros((3, 1, 20), dtype))
    xs = [rng.standard_normal((3, 20)).astype(dtype) for _ in range(40)]
    state = [rng.standard_normal((3, 48)).astype(dtype) for _ in range(2)]
    serial = [layer.step(x, state)[0] for x in xs]
    wrong = []

    def work(k):
        for _ in range(25):
            for x, want in zip(xs, serial):
                if not np.array_equal(layer.step(x, state)[0], want):
                    wrong.append(k)
    _run_threads(work)
    assert not wrong


def test_shared_cells_from_threads():
    rng = np.random.default_rng(2)
    kcell = LSTMCell(32)
    tcell = nn.LSTMCell(12, 32)
    xs = [rng.standard_normal((2, 12)).astype("f4") for _ in range(30)]
    st = [np.zeros((2, 32), "f4")] * 2
    want_k = [kcell(x, st)[0] for x in xs]
    want_t = [tcell(x, tuple(st))[0] for x in xs]
    wrong = []

    def work(k):
        for _ in range(20):
            for x, a, b in zip(xs, want_k, want_t):
                if not (np.array_equal(kcell(x, st)[0], a)
                        and np.array_equal(tcell(x, tuple(st))[0], b)):
                    wrong.append(k)
    _run_threads(work)
    assert not wrong


# 2. step() before the first call keeps the weights
def test_step_before_first_call_keeps_weights():
    layer = LSTM(4)
    layer.step(np.ones((2, 3), "f4"), [np.zeros((2, 4), "f4")] * 2)
    assert layer.built
    w = [np.full(v.shape, 0.1, "f4") for v in layer.get_weights()]
    layer.set_weights(w)
    y = layer(np.ones((2, 6, 3), "f4"))
    assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), w))
    h, _ = layer.step(np.ones((2, 3), "f4"), [np.zeros((2, 4), "f4")] * 2)
    ref = LSTM(4)
    ref.build((None, None, 3))
    ref.set_weights(w)
    np.testing.assert_array_equal(y, ref(np.ones((2, 6, 3), "f4")))
    np.testing.assert_allclose(h, ref(np.ones((2, 1, 3), "f4")), rtol=1e-6)
    with pytest.raises(ValueError, match="3 features"):
        layer(np.ones((2, 6, 5), "f4"))


# 3. forward_train on an empty batch backpropagates
@pytest.mark.parametrize("make", [lambda: LSTM(3, return_sequences=True),
                                  lambda: LSTM(3, activation="relu"),
                                  lambda: Bidirectional(LSTM(3))])
def test_empty_batch_backprop_layers(make):
    layer = make()
    layer.build((None, 5, 2))
    y, backprop = layer.forward_train(np.ones((0, 5, 2), "f4"))
    dx = backprop(np.ones_like(y))
    assert dx.shape == (0, 5, 2)
    assert all(not g.any() for g in layer.grads.values())


def test_empty_batch_backprop_nn():
    m = nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    (out, (h, c)), backprop = m.forward_train(np.ones((5, 0, 2), "f4"))
    dx = backprop((np.ones_like(out), None))
    assert dx.shape == (5, 0, 2)
    assert all(not g.any() for g in m.grads.values())


# 4. sizes past 2**31 are refused before any allocation
def test_sizes_past_int32_refused():
    huge_t = np.broadcast_to(np.zeros((1, 1, 1), "f4"), (1, 2**31 + 1, 1))
    with pytest.raises(ValueError, match="timesteps"):
        LSTM(2)(huge_t)
    with pytest.raises(ValueError, match="timesteps"):
        nn.LSTM(1, 2)(np.broadcast_to(np.zeros((1, 1, 1), "f4"), (2**31 + 1, 1, 1)))
    huge_b = np.broadcast_to(np.zeros((1, 1, 8), "f4"), (2**28 + 1, 1, 8))
    with pytest.raises(ValueError, match="batch"):
        LSTM(2)(huge_b)
    with pytest.raises(ValueError, match="4\\*units"):
        LSTM(2**29).build((None, None, 3))
    with pytest.raises(ValueError, match="too large"):
        nn.LSTM(3, 2**29)
    with pytest.raises(ValueError, match="too large"):
        nn.LSTMCell(2**20, 2**10)


# 5. set_weights refuses complex and string arrays
@pytest.mark.parametrize("kind", [complex, str, object])
def test_set_weights_rejects_non_real(kind):
    layer = LSTM(2)
    layer.build((None, None, 3))
    before = layer.get_weights()
    with pytest.raises(TypeError, match="real numbers"):
        layer.set_weights([w.astype(kind) for w in before])
    assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), before))


# 7. a malformed dtype string is a clear error
@pytest.mark.parametrize("dtype", ["f4,(", "f4,", "(", "[('a', 'f4')"])
def test_malformed_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        LSTM(2, dtype=dtype)


def test_dtype_policy_dict_malformed():
    with pytest.raises((TypeError, ValueError), match="dtype"):
        LSTM(2, dtype={"config": "float32"})


# 9. smaller items
def test_empty_mask_list():
    with pytest.raises(ValueError, match="mask"):
        LSTM(2)(np.ones((2, 3, 2), "f4"), mask=[])


def test_nested_list_mask_is_a_mask():
    layer = LSTM(2)
    x = np.ones((2, 3, 2), "f4")
    mask = [[1, 1, 1], [1, 1, 0]]
    np.testing.assert_array_equal(layer(x, mask=mask), layer(x, mask=np.array(mask, bool)))


@pytest.mark.parametrize("sd", [
    {"weight_ih": np.ones(8), "weight_hh": np.ones((8, 2))},
    {"weight_ih": np.ones((7, 3)), "weight_hh": np.ones((7, 2))},
    {"weight_ih": np.ones((8, 3)), "weight_hh": np.ones((8, 3))},
])
def test_cell_from_torch_bad_shapes(sd):
    with pytest.raises(ValueError, match="weight_"):
        nn.LSTMCell.from_torch(sd)


def test_concurrent_training_of_one_layer_adds_every_gradient():
    rng = np.random.default_rng(3)
    layer = LSTM(16, dtype="float64", return_sequences=True)
    xs = [rng.standard_normal((4, 7, 5)) for _ in range(8)]
    layer.build((None, None, 5))
    for x in xs:
        y, bp = layer.forward_train(x)
        bp(np.ones_like(y))
    want = {k: v.copy() for k, v in layer.grads.items()}
    for _ in range(3):
        layer.zero_grad()

        def work(k):
            for _ in range(5):
                y, bp = layer.forward_train(xs[k])
                bp(np.ones_like(y))
        _run_threads(work)
        for k, v in layer.grads.items():
            np.testing.assert_allclose(v, 5 * want[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["byte-swapped", "unaligned", "float64"])
def test_step_states_of_another_layout(layout):
    """layer.step with states the streaming kernel cannot read as they are
    (another byte order, misaligned, another dtype): the same answer as
    native float32 states. Byte-swapped states were read as native ones."""
    rng = np.random.default_rng(3)
    layer = LSTM(6)
    x = rng.standard_normal((2, 1, 4)).astype(np.float32)
    layer(x)
    h, c = (rng.standard_normal((2, 6)).astype(np.float32) for _ in range(2))

    def other(a):
        if layout == "byte-swapped":
            return a.astype(">f4")
        if layout == "float64":
            return a.astype(np.float64)
        return np.frombuffer(b"\0" + a.tobytes(), np.float32, a.size, 1).reshape(a.shape)

    want = layer.step(x[:, 0], [h, c])
    got = layer.step(x[:, 0], [other(h), other(c)])
    for g, w in zip([got[0], *got[1]], [want[0], *want[1]]):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
