"""``module.to(name)`` on the PyTorch-style modules: the weights, gradients and
the torch-named views move to a registered backend and back, calls then run
there, and ``LSTMCell``'s cached stepper follows the backend in force."""
import numpy as np
import pytest

from cylstm import nn
from cylstm._kernels.lstm_step import StepKernel
from cylstm.backends import backend_named, use_backend
from cylstm.backends.base import ReferenceStepper

strict = pytest.importorskip("array_api_strict")
StrictArray = type(strict.asarray(0.0))
TOL = dict(rtol=2e-5, atol=2e-6)


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _numpy(a):
    return a if isinstance(a, np.ndarray) else np.from_dlpack(a)


@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, bidirectional=True),
                                    dict(proj_size=2, batch_first=True)],
                         ids=["plain", "stacked_bidirectional", "projection"])
def test_lstm_moves_and_runs_on_array_api_strict(kwargs):
    module = nn.LSTM(4, 5, seed=0, **kwargs)
    x = _x((6, 3, 4))
    out, (h, c) = module(x)
    state = {k: v.copy() for k, v in module.state_dict().items()}
    assert module.to("array_api_strict") is module
    assert all(type(v) is StrictArray for v in module.state_dict().values())
    assert all(type(g) is StrictArray for g in module.grads.values())
    got, (gh, gc) = module(x)
    assert all(type(a) is StrictArray for a in (got, gh, gc))
    for a, b in ((got, out), (gh, h), (gc, c)):
        np.testing.assert_allclose(_numpy(a), b, **TOL)
    module.to("cpu")
    for k, v in module.state_dict().items():
        assert type(v) is np.ndarray
        np.testing.assert_array_equal(v, state[k])
    np.testing.assert_array_equal(module(x)[0], out)


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown backend 'cuda'"):
        nn.LSTM(2, 3).to("cuda")


def test_cell_moves_and_its_stepper_follows_the_backend_in_force():
    cell = nn.LSTMCell(3, 4, seed=0)
    x = _x((2, 3))
    h, c = cell(x)
    assert isinstance(cell._stepper, StepKernel)
    with use_backend("numpy"):
        h2, c2 = cell(x)
        assert isinstance(cell._stepper, ReferenceStepper)
    np.testing.assert_allclose(h2, h, **TOL)
    cell(x)
    assert isinstance(cell._stepper, StepKernel)
    cell.to("array_api_strict")
    assert cell._stepper is None
    h3, c3 = cell(x)
    assert type(h3) is StrictArray and cell._stepper.backend is backend_named("array_api_strict")
    np.testing.assert_allclose(_numpy(h3), h, **TOL)
    np.testing.assert_allclose(_numpy(c3), c, **TOL)
