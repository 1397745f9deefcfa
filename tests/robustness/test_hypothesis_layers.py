"""Property tests of the layers' entry points on generated inputs: every call
either gives outputs of the documented shapes and the layer's dtype, equal to
the NumPy twin's for valid float64 input, or raises ValueError/TypeError --
never another exception, never a crash. Huge sizes arrive as zero-stride
views, so they cost no memory unless a layer allocates for them (which the
size checks forbid)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cylstm import nn
from cylstm._kernels import reference
from cylstm.layers import LSTM, Bidirectional, LSTMCell

from .strategies import CONTRACT_ERRORS, arrays, masks, sequence_inputs, states

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEATURES, UNITS = 3, 4


def _call_or_contract(fn):
    try:
        return fn()
    except CONTRACT_ERRORS:
        return None


@SETTINGS
@given(data=st.data(), return_sequences=st.booleans(), return_state=st.booleans(),
       go_backwards=st.booleans(), dtype=st.sampled_from(["float32", "float64"]))
def test_layers_lstm_call(data, return_sequences, return_state, go_backwards, dtype):
    layer = LSTM(UNITS, return_sequences=return_sequences, return_state=return_state,
                 go_backwards=go_backwards, dtype=dtype)
    layer.build((None, None, FEATURES))
    x, kind = data.draw(sequence_inputs(FEATURES))
    shape = np.shape(x)
    B, T = (shape[0], shape[1]) if len(shape) == 3 else (1, 1)
    mask = data.draw(masks(B, T)) if kind == "valid" else None
    state = data.draw(states(B, UNITS)) if kind == "valid" else None
    out = _call_or_contract(lambda: layer(x, initial_state=state, mask=mask))
    if out is None:
        return
    assert kind in ("valid", "zero")
    outs = out if return_state else [out]
    first = outs[0]
    assert first.dtype == dtype
    assert first.shape == ((B, T, UNITS) if return_sequences else (B, UNITS))


@SETTINGS
@given(data=st.data())
def test_layers_lstm_matches_reference_on_valid_float64(data):
    B, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5))
    x = data.draw(arrays((B, T, FEATURES), dtype="float64", allow_odd=False))
    x = np.nan_to_num(np.asarray(x, "float64"), nan=0.5, posinf=3.0, neginf=-3.0)
    x = np.clip(x, -3, 3)
    layer = LSTM(UNITS, return_sequences=True, dtype="float64")
    layer.build((None, None, FEATURES))
    y = layer(x)
    W, U, b = layer.get_weights()
    zeros = np.zeros((B, UNITS))
    outs, *_ = reference.lstm_forward(np.ascontiguousarray(x.transpose(1, 0, 2)), W, U, b,
                                      zeros, zeros)
    np.testing.assert_allclose(y, outs.transpose(1, 0, 2), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(data=st.data(), batch=st.integers(0, 3))
def test_step_and_cells(data, batch):
    layer = LSTM(UNITS)
    layer.build((None, None, FEATURES))
    cell = LSTMCell(UNITS)
    cell.build((None, FEATURES))
    tcell = nn.LSTMCell(FEATURES, UNITS)
    x = data.draw(arrays((batch, data.draw(st.sampled_from([FEATURES, FEATURES, 0, 7])))))
    st_ = data.draw(states(batch, UNITS))
    for fn in (lambda: layer.step(x, st_), lambda: cell(x, st_),
               lambda: tcell(x, None if st_ is None else tuple(st_[:2]) if
                             isinstance(st_, list) and len(st_) >= 2 else st_)):
        out = _call_or_contract(fn)
        if out is not None:
            h = out[0]
            assert h.shape == (batch, UNITS)


@SETTINGS
@given(data=st.data(), batch_first=st.booleans(), bidirectional=st.booleans())
def test_nn_lstm_call_and_train(data, batch_first, bidirectional):
    m = nn.LSTM(FEATURES, UNITS, batch_first=batch_first, bidirectional=bidirectional)
    x, kind = data.draw(sequence_inputs(FEATURES))
    res = _call_or_contract(lambda: m.forward_train(x))
    if res is None:
        return
    (out, (h, c)), backprop = res
    dx = backprop((np.ones_like(out), None))
    assert dx.shape == np.shape(x)
    assert np.isfinite(dx).all() or not np.isfinite(np.asarray(x, "f8")).all()


@SETTINGS
@given(data=st.data())
def test_bidirectional_and_weights(data):
    layer = Bidirectional(LSTM(UNITS, return_sequences=True))
    layer.build((None, None, FEATURES))
    x, kind = data.draw(sequence_inputs(FEATURES))
    _call_or_contract(lambda: layer(x))
    weights = [data.draw(arrays(w.shape if data.draw(st.booleans()) else (w.shape[0] + 1,)))
               for w in layer.get_weights()]
    before = layer.get_weights()
    if _call_or_contract(lambda: layer.set_weights(weights)) is None and \
            not all(np.shape(w) == b.shape for w, b in zip(weights, before)):
        # a refused set_weights changes nothing
        assert all(np.array_equal(a, b, equal_nan=True)
                   for a, b in zip(layer.get_weights(), before))


@pytest.mark.parametrize("shape", [(2**31 + 1, 1, 1), (1, 2**31 + 1, 1), (2**28, 1, 8)])
def test_huge_shapes_are_refused_without_allocation(shape):
    x = np.broadcast_to(np.zeros((), "float32"), shape)
    with pytest.raises(ValueError, match="limit"):
        LSTM(2)(x)
