"""8 threads on shared and on separate objects, every entry point (sequence
calls, T=1 calls, step, cells, training), each result compared with the one
the same call gives serially. README promises that one layer may be called
from several threads; this holds it to that."""
import threading

import numpy as np
import pytest

from cylstm import nn
from cylstm.layers import LSTM, Bidirectional, LSTMCell

THREADS = 8
ROUNDS = 6


def _fixed_weights(layer, seed=5):
    """Keras-style layers draw their weights from the global generator: give
    every copy the same ones."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.5, 0.5, w.shape) for w in layer.get_weights()])
    return layer


def _layer_lstm(seed):
    layer = LSTM(24, return_sequences=True, seed=seed)
    layer.build((None, None, 10))
    return _fixed_weights(layer)


def _entry_points(seed):
    """name -> (object factory, call(obj, x) -> list of arrays, input maker)."""
    def seq(obj, x):
        return [obj(x)]

    def one_step(obj, x):
        return [obj(x[:, :1])]

    def step(obj, x):
        st = [np.zeros((x.shape[0], 24), x.dtype)] * 2
        h, (h2, c) = obj.step(x[:, 0], st)
        return [h, c]

    def kcell(obj, x):
        h, (_, c) = obj(x[:, 0], [np.zeros((x.shape[0], 24), x.dtype)] * 2)
        return [h, c]

    def tcell(obj, x):
        h, c = obj(x[:, 0])
        return [h, c]

    def tseq(obj, x):
        out, (h, c) = obj(x)
        return [out, h, c]

    def bidi(obj, x):
        return [obj(x)]

    def make_kcell():
        cell = LSTMCell(24, seed=seed)
        cell.build((None, 10))
        return _fixed_weights(cell)

    def make_bidi():
        b = Bidirectional(LSTM(24, return_sequences=True, seed=seed))
        b.build((None, None, 10))
        return _fixed_weights(b)

    return {
        "layers.LSTM sequence": (lambda: _layer_lstm(seed), seq),
        "layers.LSTM T=1": (lambda: _layer_lstm(seed), one_step),
        "layers.LSTM.step": (lambda: _layer_lstm(seed), step),
        "layers.LSTMCell": (make_kcell, kcell),
        "nn.LSTMCell": (lambda: nn.LSTMCell(10, 24, seed=seed), tcell),
        "nn.LSTM": (lambda: nn.LSTM(10, 24, num_layers=2, batch_first=True, seed=seed)
                    .eval(), tseq),
        "Bidirectional": (make_bidi, bidi),
    }


def _inputs(n):
    rng = np.random.default_rng(7)
    return [rng.standard_normal((3, 5, 10)).astype("f4") for _ in range(n)]


def _threads(work):
    errors = []

    def wrap(k):
        try:
            work(k)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=(k,)) for k in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("name", list(_entry_points(0)))
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "separate"])
def test_inference_from_threads(name, shared):
    make, call = _entry_points(0)[name]
    # One-step calls are microseconds: many more rounds to overlap them.
    rounds = ROUNDS if name in ("layers.LSTM sequence", "nn.LSTM", "Bidirectional") else 60
    xs = _inputs(12)
    objs = [make()] * THREADS if shared else [make() for _ in range(THREADS)]
    serial = [call(objs[0], x) for x in xs]
    bad = []

    def work(k):
        for _ in range(rounds):
            for x, want in zip(xs, serial):
                got = call(objs[k], x)
                if not all(np.array_equal(a, b) for a, b in zip(got, want)):
                    bad.append(k)
    _threads(work)
    assert not bad, f"{len(bad)} results differ from the serial ones"


def _train_cases():
    def keras_train(obj, x):
        y, bp = obj.forward_train(x)
        return [y, bp(np.ones_like(y))]

    def torch_train(obj, x):
        (out, _), bp = obj.forward_train(x)
        return [out, bp((np.ones_like(out), None))]

    def cell_train(obj, x):
        (h, c), bp = obj.forward_train(x[:, 0])
        return [h, bp((np.ones_like(h), None))]

    def make_bidi():
        b = Bidirectional(LSTM(8, return_sequences=True, seed=1, dtype="float64"))
        b.build((None, None, 10))
        return _fixed_weights(b)

    def make_keras():
        layer = LSTM(8, return_sequences=True, dtype="float64", seed=1)
        layer.build((None, None, 10))
        return _fixed_weights(layer)
    return {
        "layers.LSTM": (make_keras, keras_train),
        "Bidirectional": (make_bidi, keras_train),
        "nn.LSTM": (lambda: nn.LSTM(10, 8, batch_first=True, dtype=np.float64, seed=1),
                    torch_train),
        "nn.LSTMCell": (lambda: nn.LSTMCell(10, 8, dtype=np.float64, seed=1), cell_train),
    }


@pytest.mark.parametrize("name", list(_train_cases()))
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "separate"])
def test_training_from_threads(name, shared):
    make, call = _train_cases()[name]
    xs = [x.astype("f8") for x in _inputs(THREADS)]
    ref = make()
    serial = [call(ref, x) for x in xs]
    total = {k: np.array(v) for k, v in ref.grads.items()}
    objs = [make()] * THREADS if shared else [make() for _ in range(THREADS)]
    bad = []

    def work(k):
        for _ in range(ROUNDS):
            got = call(objs[k], xs[k])
            if not all(np.array_equal(a, b) for a, b in zip(got, serial[k])):
                bad.append(k)
    _threads(work)
    assert not bad
    if shared:
        grads = objs[0].grads
        for key in total:
            np.testing.assert_allclose(np.asarray(grads[key]), ROUNDS * total[key],
                                       rtol=1e-12, atol=1e-12)
    else:
        for k, obj in enumerate(objs):
            one = make()
            call(one, xs[k])
            for key in total:
                np.testing.assert_allclose(np.asarray(obj.grads[key]),
                                           ROUNDS * np.asarray(one.grads[key]),
                                           rtol=1e-12, atol=1e-12)
