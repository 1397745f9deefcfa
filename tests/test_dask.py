"""cylstm.dask on a real distributed.LocalCluster (2 worker processes, one
thread each): predict equals single-process results bit for bit, the model
is in the graph once, fit_many equals fitting one by one, a killed worker
loses nothing, a bad series is a per-series error.

Skipped when dask or distributed is not installed (the `dask` extra).
"""
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import cylstm  # noqa: E402
import cylstm.dask as cdask  # noqa: E402
from cylstm import layers, nn  # noqa: E402
from tests.conftest import GOLDEN  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _data(dtype, shape=(600, 12, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _sequential(dtype):
    model = cylstm.Sequential([layers.LSTM(16, return_sequences=True, input_shape=(12, 3),
                                           dtype=dtype),
                               layers.LSTM(8, dtype=dtype), layers.Dense(2, dtype=dtype)])
    return model


def _equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b), np.abs(a - b).max()


# -- predict ----------------------------------------------------------------------------

def test_predict_sequential_bit_for_bit(client, dtype):
    x = _data(dtype)
    model = _sequential(dtype)
    y = cdask.predict(model, da.from_array(x, chunks=(96, 12, 3)))
    assert isinstance(y, da.Array) and y.shape == (600, 2)
    assert y.chunks[0] == (96,) * 6 + (24,)       # multiples of predict's batch, 32
    _equal(y.compute(), model.predict(x, verbose=0))
    # another batch size: chunks realigned (100 is not a multiple of 64)
    y = cdask.predict(model, da.from_array(x, chunks=(100, 12, 3)), batch_size=64)
    assert all(c % 64 == 0 for c in y.chunks[0][:-1])
    _equal(y.compute(), model.predict(x, batch_size=64, verbose=0))


def test_predict_nn_lstm_with_states_bit_for_bit(client, dtype):
    x = _data(dtype)
    lstm = nn.LSTM(3, 64, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype,
                   seed=1).eval()
    out, (h, c) = cdask.predict(lstm, da.from_array(x, chunks=(300, 12, 3)))
    assert h.shape == (4, 600, 64) and h.chunks[1] == (300, 300)
    got = dask.compute(out, h, c)
    ref_out, (ref_h, ref_c) = lstm(x)
    for a, b in zip(got, (ref_out, ref_h, ref_c)):
        _equal(a, b)
    # time-major module: the batch is axis 1 of the input, as in its call
    tm = nn.LSTM(3, 8, dtype=dtype, seed=2)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    out, (h, c) = cdask.predict(tm, da.from_array(xt, chunks=(12, 200, 3)), batch_size=50)
    ref = [tm(xt[:, i:i + 50]) for i in range(0, 600, 50)]
    _equal(out.compute(), np.concatenate([r[0] for r in ref], axis=1))
    _equal(h.compute(), np.concatenate([r[1][0] for r in ref], axis=1))


def test_predict_keras_layer_with_return_state(client):
    x = _data("float32")
    layer = layers.LSTM(300, return_sequences=True, return_state=True)
    layer.build(x.shape)
    result = cdask.predict(layer, da.from_array(x, chunks=(300, 12, 3)))
    assert isinstance(result, list) and len(result) == 3
    # float32, 300 rows per chunk and 600 in all: the same recurrent product
    for a, b in zip(dask.compute(*result), layer(x)):
        _equal(a, b)


def test_predict_model_loaded_from_a_keras_file(client):
    pytest.importorskip("h5py")
    model = cylstm.from_keras(GOLDEN / "keras_files" / "lstm_dense.keras")
    with np.load(GOLDEN / "keras_files" / "lstm_dense.npz") as z:
        x = np.concatenate([z["x"]] * 40)
    for dtype in ("float32", "float64"):
        xd = x.astype(dtype)
        y = cdask.predict(model, da.from_array(xd, chunks=(64,) + xd.shape[1:]))
        _equal(y.compute(), model.predict(xd, verbose=0))
    # Embedding -> LSTM -> Bidirectional -> Dense from a tf.keras .h5 file, (N, T) token ids
    model = cylstm.from_keras(GOLDEN / "keras_files" / "embed_lstm_bidi_dense.h5")
    with np.load(GOLDEN / "keras_files" / "embed_lstm_bidi_dense.npz") as z:
        tokens = np.concatenate([z["x"]] * 40)
    y = cdask.predict(model, tokens, chunk_rows=64)
    _equal(y.compute(), model.predict(tokens, verbose=0))


def test_the_model_is_in_the_graph_once():
    x = _data("float32", (4096, 12, 3))
    model = cylstm.Sequential([layers.LSTM(128, input_shape=(12, 3)), layers.Dense(2)])
    size = len(pickle.dumps(model))
    assert size > 250_000
    y = cdask.predict(model, da.from_array(x, chunks=(256, 12, 3)))
    graph = dict(y.__dask_graph__())
    model_keys = [k for k in graph if isinstance(k, str) and k.startswith("cylstm-model-")]
    assert len(model_keys) == 1
    tasks = {k: len(pickle.dumps(v)) for k, v in graph.items()
             if not (isinstance(k, tuple) and k[0].startswith(("array-", "rechunk")))}
    assert len(tasks) == 1 + 2 * 16          # the model, then 16 chunks x (run, output)
    assert tasks[model_keys[0]] >= size
    # every chunk's task refers to the model by its key: none carries weights
    assert max(n for k, n in tasks.items() if k != model_keys[0]) < 2048


def test_each_task_runs_on_the_threads_asked_for(client):
    x = da.zeros((8, 4, 2), chunks=(4, 4, 2))
    for n in (1, 2):
        seen = cdask.predict(_ThreadProbe(), x, threads_per_task=n).compute()
        assert (seen == n).all()


class _ThreadProbe:
    """A callable 'model' reporting the cylstm thread count its call sees."""

    def __call__(self, x):
        return np.full((x.shape[0], 1), cylstm.get_num_threads(), np.int64)


def test_predict_rejects_what_it_cannot_do():
    x = da.zeros((8, 4, 2), chunks=(4, 4, 2))
    with pytest.raises(ValueError, match="not built"):
        cdask.predict(layers.LSTM(3), x)
    stateful = layers.LSTM(3, stateful=True)
    stateful.build((8, 4, 2))
    with pytest.raises(ValueError, match="stateful"):
        cdask.predict(stateful, x)
    with pytest.raises(TypeError, match="`model`"):
        cdask.predict(42, x)
    built = layers.LSTM(3)
    built.build((8, 4, 2))
    with pytest.raises(TypeError, match="`data`"):
        cdask.predict(built, [[1.0]])
    with pytest.raises(ValueError, match="batch_size"):
        cdask.predict(built, x, batch_size=0)
    with pytest.raises(ValueError, match="eval"):
        cdask.predict(nn.LSTM(2, 3, num_layers=2, dropout=0.5), x)
    with pytest.raises(ValueError, match="no rows"):
        cdask.predict(built, da.zeros((0, 4, 2), chunks=(1, 4, 2)))


def test_numpy_input_is_chunked_by_chunk_rows():
    x = _data("float64", (100, 5, 3))
    lstm = nn.LSTM(3, 4, batch_first=True, dtype="float64")
    out, _ = cdask.predict(lstm, x, chunk_rows=30)
    assert out.chunks[0] == (30, 30, 30, 10)
    _equal(out.compute(scheduler="sync"), lstm(x)[0])


# -- a worker killed in the middle of a job ----------------------------------------------

class SlowModel:
    """A Sequential whose predict takes at least 0.4 s per chunk, so that the
    job is still running when the test kills a worker."""

    def __init__(self, model):
        self.model = model

    def predict(self, x, **kwargs):
        time.sleep(0.4)
        return self.model.predict(x, **kwargs)


def test_killed_worker_job_still_completes(client):
    x = _data("float32", (384, 12, 3))
    model = _sequential("float32")
    expected = model.predict(x, verbose=0)
    y = cdask.predict(SlowModel(model), da.from_array(x, chunks=(32, 12, 3)))   # 12 chunks
    future = client.compute(y)
    pids = client.run(os.getpid)
    time.sleep(1.0)
    assert not future.done()
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)
    _equal(future.result(timeout=120), expected)
    client.wait_for_workers(2, timeout=60)
    assert pids[victim] not in client.run(os.getpid).values()   # it really went away


# -- fit_many ---------------------------------------------------------------------------

def build_forecaster():
    model = cylstm.Sequential([layers.LSTM(6, input_shape=(8, 1)), layers.Dense(2)])
    model.compile(optimizer=cylstm.optimizers.Adam(0.01), loss="mse")
    return model


FIT = dict(epochs=3, batch_size=16, shuffle=True)


def _series(n=8):
    t = np.arange(80)
    return [np.sin(0.2 * t * (1 + 0.1 * i)) + 0.05 * i for i in range(n)]


def test_fit_many_equals_fitting_one_by_one(client):
    series = _series()
    results = cdask.fit_many(build_forecaster, series, lookback=8, horizon=2, fit_kwargs=FIT,
                             seed=100)
    assert list(results) == list(range(8))
    for i, s in enumerate(series):
        r = results[i]
        assert r.ok and r.seed == 100 + i and len(r.history["loss"]) == 3
        cylstm.utils.set_random_seed(100 + i)
        model = build_forecaster()
        x, y = cdask.make_windows(s, 8, 2)
        history = model.fit(x, y, verbose=0, **FIT)
        for a, b in zip(r.model.get_weights(), model.get_weights()):
            _equal(a, b)
        assert r.history["loss"] == history.history["loss"]


def test_fit_many_reports_bad_series_and_keeps_the_others(client):
    good = _series(3)
    nan = good[1].copy()
    nan[[4, 9]] = np.nan
    series = {"a": good[0], "nan": nan, "2d": np.ones((40, 2)), "short": good[2][:5],
              "text": ["x"] * 20, "b": good[2]}
    results = cdask.fit_many(build_forecaster, series, lookback=8, horizon=2,
                             fit_kwargs=FIT, return_models=False)
    assert list(results) == list(series)
    assert results["a"].ok and results["b"].ok
    assert results["a"].model is None and len(results["a"].weights) == 5
    errors = {k: str(r.error) for k, r in results.items() if not r.ok}
    assert set(errors) == {"nan", "2d", "short", "text"}
    assert "2 NaN or infinite value(s) (first at index 4)" in errors["nan"]
    assert "must be 1-D" in errors["2d"] and "(40, 2)" in errors["2d"]
    assert "has 5 values" in errors["short"] and "at least 10" in errors["short"]
    assert "series 'text'" in errors["text"]
    for key in errors:
        assert f"series {key!r}" in errors[key]
    # the good ones are what fitting them alone gives
    alone = cdask.fit_many(build_forecaster, {"b": good[2]}, lookback=8, horizon=2,
                           fit_kwargs=FIT, seed=5, return_models=False)
    for a, b in zip(alone["b"].weights, results["b"].weights):
        _equal(a, b)


def build_failing():
    raise RuntimeError("no model today")


def test_fit_many_reports_failures_of_build_fn_and_fit(client):
    results = cdask.fit_many(build_failing, [_series(1)[0]], lookback=8)
    err = results[0].error
    assert err.type == "RuntimeError" and "no model today" in err.message
    assert "build_failing" in err.traceback
    # (x, y) pairs: a length mismatch is caught before fitting
    x = np.zeros((10, 8, 1))
    results = cdask.fit_many(build_forecaster, [(x, np.zeros((10, 2))), (x, np.zeros((9, 2)))],
                             fit_kwargs=dict(epochs=1))
    assert results[0].ok and not results[1].ok
    assert "one row per sample" in results[1].error.message


def test_fit_many_checks_its_arguments():
    with pytest.raises(TypeError, match="build_fn"):
        cdask.fit_many(None, [])
    with pytest.raises(TypeError, match="series"):
        cdask.fit_many(build_forecaster, np.zeros((3, 10)))
    with pytest.raises(ValueError, match="lookback"):
        cdask.fit_many(build_forecaster, [], lookback=0)
    assert cdask.fit_many(build_forecaster, []) == {}


def test_import_cylstm_does_not_import_dask():
    code = "import sys, cylstm; print('dask' in sys.modules, 'cylstm.dask' in sys.modules)"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["False", "False"]


def test_fit_many_gives_each_series_its_own_callbacks():
    """An EarlyStopping passed in fit_kwargs keeps state; every series gets a
    fresh copy (also on Dask's local threads, where tasks share objects)."""
    stop = cylstm.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    kwargs = dict(epochs=5, batch_size=16, callbacks=[stop])
    series = _series(3)
    results = cdask.fit_many(build_forecaster, series, lookback=8, horizon=2,
                             fit_kwargs=kwargs, scheduler="threads")
    for i, s in enumerate(series):
        cylstm.utils.set_random_seed(i)
        model = build_forecaster()
        x, y = cdask.make_windows(s, 8, 2)
        fresh = cylstm.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
        history = model.fit(x, y, verbose=0, epochs=5, batch_size=16, callbacks=[fresh])
        assert results[i].history["loss"] == history.history["loss"]
        assert len(history.history["loss"]) == 2          # stopped by its own callback
    assert stop.model is None and stop.best is None     # the caller's object is untouched


def build_slowly():
    time.sleep(0.4)
    return build_forecaster()


def test_fit_many_survives_a_killed_worker(client):
    series = _series(8)
    expected = cdask.fit_many(build_forecaster, series, lookback=8, horizon=2, fit_kwargs=FIT,
                              return_models=False, scheduler="sync")
    pids = client.run(os.getpid)
    done = []
    runner = threading.Thread(target=lambda: done.append(cdask.fit_many(
        build_slowly, series, lookback=8, horizon=2, fit_kwargs=FIT, return_models=False)))
    runner.start()
    time.sleep(1.0)
    assert not done                                     # 8 fits of >= 0.4 s on 2 workers
    os.kill(pids[sorted(pids)[0]], signal.SIGKILL)
    runner.join(timeout=120)
    results = done[0]
    for i in range(8):
        assert results[i].ok
        for a, b in zip(results[i].weights, expected[i].weights):
            _equal(a, b)
    client.wait_for_workers(2, timeout=60)
