"""The backend contract: every registered backend gives the reference's
outputs and gradients (NumPy reference = the oracle, itself checked by finite
differences) within each dtype's tolerance, for every option of an LSTM call."""
import numpy as np
import pytest

from cylstm import activations as A
from cylstm.backends import (Backend, LSTMGrads, LSTMProblem, backend_named, get_backend,
                             registered_backends, use_backend)

from ._helpers import numerical_gradient


def _available():
    out = []
    for name in registered_backends():
        try:
            backend_named(name)
        except ImportError:
            continue
        out.append(name)
    return out


BACKENDS = _available()
RTOL = {"float32": 2e-5, "float64": 1e-12}
ATOL = {"float32": 2e-6, "float64": 1e-13}
GRAD_KEYS = ("dx", "dh0", "dc0", "kernel", "recurrent_kernel", "bias", "projection")


def softsign_by_hand(z):
    """A Python-callable activation any array namespace can run (no derivative)."""
    return z / (1 + abs(z))


OPTIONS = {
    "plain": dict(),
    "mask": dict(mask=True),
    "go_backwards": dict(go_backwards=True, mask=True),
    "time_order": dict(go_backwards=True, output_order="time", mask=True),
    "time_major": dict(time_major=True, mask=True, go_backwards=True),
    "projection": dict(projection=True, mask=True),
    "no_bias": dict(bias=False),
    "zero_states": dict(zero_states=True),
    "recurrent_dropout": dict(recurrent_mask="shared", mask=True),
    "per_gate_dropout": dict(recurrent_mask="gates", input_mask=True, projection=True),
    "per_gate_time_major": dict(recurrent_mask="gates", input_mask=True, time_major=True,
                                go_backwards=True, mask=True),
    "last_only": dict(return_sequences=False, mask=True),
}


def _problem(rng, dtype, B=3, T=5, I=4, H=3, projection=False, mask=False, bias=True,
             zero_states=False, recurrent_mask=None, input_mask=False, time_major=False,
             **options):
    d = np.dtype(dtype)
    r = lambda *s: rng.uniform(-0.6, 0.6, s).astype(d)
    drop = lambda *s: ((rng.random(s) > 0.3) / 0.7).astype(d)
    P = 2 if projection else H
    x = r(B, T, I)
    m = None
    if mask:
        m = rng.random((B, T)) > 0.3
        m[0, 2] = False
    arrays = dict(
        x=x.transpose(1, 0, 2).copy() if time_major else x,
        kernel=r(I, 4 * H), recurrent_kernel=r(P, 4 * H), bias=r(4 * H) if bias else None,
        h0=np.zeros((B, P), d) if zero_states else r(B, P),
        c0=np.zeros((B, H), d) if zero_states else r(B, H),
        projection=r(H, P) if projection else None,
        mask=None if m is None else (m.T.copy() if time_major else m),
        recurrent_mask={None: None, "shared": drop(B, P), "gates": drop(4, B, P)}[recurrent_mask],
        input_mask=drop(4, B, I) if input_mask else None)
    return arrays, dict(time_major=time_major, **options)


def _run(backend, arrays, options, activation=A.tanh, recurrent_activation=A.sigmoid,
         training=True, seed=7):
    conv = {k: None if v is None else backend.asarray(v) for k, v in arrays.items()}
    problem = LSTMProblem(
        conv["x"], conv["kernel"], conv["recurrent_kernel"], conv["bias"], conv["h0"],
        conv["c0"], projection=conv["projection"], mask=conv["mask"],
        recurrent_mask=conv["recurrent_mask"], input_mask=conv["input_mask"],
        activation=activation, recurrent_activation=recurrent_activation, training=training,
        **options)
    (seq, last, h, c), cache = backend.lstm_forward(problem)
    outs = {k: backend.to_numpy(v) for k, v in dict(seq=seq, last=last, h=h, c=c).items()}
    if not training:
        return outs, None
    rng = np.random.default_rng(seed)
    dtype = arrays["x"].dtype
    g = lambda a: None if a is None else rng.standard_normal(np.shape(a)).astype(dtype)
    d = dict(d_seq=g(outs["seq"]), d_last=g(outs["last"]), d_h=g(outs["h"]), d_c=g(outs["c"]))
    grads = backend.lstm_backward(cache, LSTMGrads(
        **{k: None if v is None else backend.asarray(v) for k, v in d.items()}))
    return outs, {k: backend.to_numpy(grads[k]) for k in GRAD_KEYS}


def _assert_same(got, want, dtype, scale=1, what=""):
    for key, w in want.items():
        if w is None:
            assert got[key] is None, f"{what}{key}"
            continue
        assert got[key].dtype == w.dtype, f"{what}{key}: {got[key].dtype} != {w.dtype}"
        np.testing.assert_allclose(got[key], w, rtol=RTOL[dtype] * scale,
                                   atol=ATOL[dtype] * scale, err_msg=f"{what}{key}")


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("name", BACKENDS)
def test_backend_matches_the_reference(name, option, dtype):
    arrays, options = _problem(np.random.default_rng(3), dtype, **OPTIONS[option])
    want_out, want_grads = _run(backend_named("numpy"), arrays, options)
    got_out, got_grads = _run(backend_named(name), arrays, options)
    _assert_same(got_out, want_out, dtype, what="output ")
    _assert_same(got_grads, want_grads, dtype, scale=10, what="gradient ")
    inference, _ = _run(backend_named(name), arrays, options, training=False)
    _assert_same(inference, want_out, dtype, what="inference ")


@pytest.mark.parametrize("act", sorted(A.KERNEL_CODES))
@pytest.mark.parametrize("name", BACKENDS)
def test_every_activation(name, act):
    arrays, options = _problem(np.random.default_rng(5), "float64", mask=True,
                               projection=True)
    backend = backend_named(name)
    for rec in ("sigmoid", act):
        kw = dict(activation=A.get(act), recurrent_activation=A.get(rec))
        if "gelu" in (act, rec) and backend.xp is not np and not hasattr(backend.xp, "erf"):
            with pytest.raises(NotImplementedError, match="erf"):
                _run(backend, arrays, options, **kw)
            continue
        want = _run(backend_named("numpy"), arrays, options, **kw)
        got = _run(backend, arrays, options, **kw)
        _assert_same(got[0], want[0], "float64", what=f"{act}/{rec} output ")
        _assert_same(got[1], want[1], "float64", scale=10, what=f"{act}/{rec} gradient ")


@pytest.mark.parametrize("name", BACKENDS)
def test_python_callable_activation_runs_forward_and_refuses_gradients(name):
    arrays, options = _problem(np.random.default_rng(6), "float64", mask=True)
    backend = backend_named(name)
    want, _ = _run(backend_named("numpy"), arrays, options, activation=A.softsign,
                   training=False)
    got, _ = _run(backend, arrays, options, activation=softsign_by_hand, training=False)
    _assert_same(got, want, "float64")
    with pytest.raises(TypeError, match="derivative"):
        _run(backend, arrays, options, activation=softsign_by_hand)


@pytest.mark.parametrize("option", ["plain", "projection", "per_gate_dropout", "time_order"])
def test_reference_gradients_match_finite_differences(option):
    """The oracle itself: its gradients are those of its forward pass."""
    ref = backend_named("numpy")
    arrays, options = _problem(np.random.default_rng(9), "float64", B=2, T=3, I=2, H=2,
                               **OPTIONS[option])
    _, grads = _run(ref, arrays, options)
    rng = np.random.default_rng(7)   # the same draws as _run's output gradients
    outs, _ = _run(ref, arrays, options, training=False)
    weights = {k: rng.standard_normal(np.shape(outs[k])) if outs[k] is not None else None
               for k in ("seq", "last", "h", "c")}

    def loss():
        out, _ = _run(ref, arrays, options, training=False)
        return sum(np.sum(out[k] * w) for k, w in weights.items() if w is not None)

    for key, grad_key in (("x", "dx"), ("h0", "dh0"), ("c0", "dc0"), ("kernel", "kernel"),
                          ("recurrent_kernel", "recurrent_kernel"), ("bias", "bias"),
                          ("projection", "projection")):
        if arrays[key] is None:
            continue
        num = numerical_gradient(loss, arrays[key])
        np.testing.assert_allclose(grads[grad_key], num, rtol=1e-6, atol=1e-8, err_msg=key)


@pytest.mark.parametrize("name", BACKENDS)
def test_backprop_twice_raises(name):
    backend = backend_named(name)
    arrays, options = _problem(np.random.default_rng(1), "float64")
    _run(backend, arrays, options)   # fine once
    conv = {k: None if v is None else backend.asarray(v) for k, v in arrays.items()}
    problem = LSTMProblem(conv["x"], conv["kernel"], conv["recurrent_kernel"], conv["bias"],
                          conv["h0"], conv["c0"], training=True)
    (seq, *_), cache = backend.lstm_forward(problem)
    backend.lstm_backward(cache, LSTMGrads(d_seq=seq))
    with pytest.raises(RuntimeError, match="already"):
        backend.lstm_backward(cache, LSTMGrads(d_seq=seq))


@pytest.mark.parametrize("name", BACKENDS)
def test_stepper_matches_one_step_of_the_forward(name, dtype):
    backend = backend_named(name)
    arrays, options = _problem(np.random.default_rng(2), dtype, T=1, projection=True)
    want, _ = _run(backend_named("numpy"), arrays, options, training=False)
    conv = {k: None if v is None else backend.asarray(v) for k, v in arrays.items()}
    step = backend.stepper(conv["kernel"], conv["recurrent_kernel"], conv["bias"],
                           conv["projection"], A.tanh, A.sigmoid, 3)
    x = conv["x"][:, 0, :]
    if backend.xp is np:
        x = np.ascontiguousarray(x)
    h, c = step.step(x, conv["h0"], conv["c0"])
    np.testing.assert_allclose(backend.to_numpy(h), want["h"], rtol=RTOL[dtype],
                               atol=ATOL[dtype])
    np.testing.assert_allclose(backend.to_numpy(c), want["c"], rtol=RTOL[dtype],
                               atol=ATOL[dtype])


def test_registry_and_selection():
    assert {"cpu", "numpy", "array_api_strict"} <= set(registered_backends())
    cpu = backend_named("cpu")
    assert get_backend(np.ones(2)) is cpu and get_backend() is cpu
    assert get_backend(None, np.ones(2)) is cpu
    with use_backend("numpy") as ref:
        assert get_backend(np.ones(2)) is ref and type(ref) is Backend
        with use_backend("cpu"):
            assert get_backend(np.ones(2)) is cpu
        assert get_backend(np.ones(2)) is ref
    assert get_backend(np.ones(2)) is cpu
    with pytest.raises(ValueError, match="Unknown backend 'nope'"):
        backend_named("nope")
    strict = pytest.importorskip("array_api_strict")
    a = strict.asarray([1.0, 2.0])
    assert get_backend(a) is backend_named("array_api_strict")
    assert get_backend(np.ones(2), a) is backend_named("array_api_strict")


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("name", BACKENDS)
def test_stepper_sequence_of_one_and_refusals(name, time_major):
    """StepKernel's contract, for every backend's stepper: a sequence of one
    step gives the forward's outputs; arguments that do not fit give None."""
    backend = backend_named(name)
    arrays, options = _problem(np.random.default_rng(4), "float64", T=1, time_major=time_major)
    want, _ = _run(backend_named("numpy"), arrays, options, training=False)
    conv = {k: None if v is None else backend.asarray(v) for k, v in arrays.items()}
    step = backend.stepper(conv["kernel"], conv["recurrent_kernel"], conv["bias"], None,
                           A.tanh, A.sigmoid, 3)
    assert step.batch == 3
    out, h, c = step.sequence_of_one(conv["x"], conv["h0"], conv["c0"], time_major, True)
    np.testing.assert_allclose(backend.to_numpy(out), want["seq"], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(h), want["h"], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(c), want["c"], rtol=1e-12, atol=1e-13)
    last, h2, _ = step.sequence_of_one(conv["x"], conv["h0"], conv["c0"], time_major, False)
    np.testing.assert_allclose(backend.to_numpy(last), want["last"], rtol=1e-12, atol=1e-13)
    x2 = conv["x"][0, ...] if time_major else conv["x"][:, 0, ...]
    x2 = np.ascontiguousarray(x2) if backend.xp is np else x2
    assert step.step(x2[:2, ...], conv["h0"], conv["c0"]) is None          # wrong batch
    assert step.step(arrays["x"][:, 0, :].tolist(), conv["h0"], conv["c0"]) is None  # a list
    assert step.step(backend.asarray(arrays["h0"].astype("float32")), conv["h0"],
                     conv["c0"]) is None                                   # wrong dtype
