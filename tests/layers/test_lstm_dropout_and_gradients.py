"""cylstm.layers.LSTM dropout against Keras 3 (masks injected on both sides),
the masks Keras 3 draws per gate, and layer-level gradients against finite
differences in float64 for the options of the training contract."""
import numpy as np
import pytest

from cylstm.layers import LSTM, LSTMCell
from tests.conftest import TOL, golden_cases, load_golden
from .._helpers import numerical_gradient

DROPOUT = golden_cases("keras_dropout")


def test_dropout_fixtures_exist():
    assert len(DROPOUT) == 8


def _with_masks(layer, arrays, per_gate):
    """Make the layer use the fixture's masks instead of drawing its own."""
    m = arrays.get("input_mask")
    masks = (None if per_gate else m, m if per_gate else None, arrays.get("recurrent_mask"))
    layer.cell._dropout_masks.for_call = lambda *args: masks
    return layer


@pytest.mark.parametrize("path", DROPOUT, ids=lambda p: p.stem)
def test_dropout_matches_keras_with_the_same_masks(path):
    arrays, cfg = load_golden(path)
    layer = LSTM(**cfg["layer"])
    layer.build(arrays["x"].shape)
    layer.set_weights([arrays["kernel"], arrays["recurrent_kernel"], arrays["bias"]])
    _with_masks(layer, arrays, cfg["per_gate"])
    kw = {}
    if "h0" in arrays:
        kw["initial_state"] = [arrays["h0"], arrays["c0"]]
    if "mask" in arrays:
        kw["mask"] = arrays["mask"]
    tol = TOL[cfg["dtype"]]
    out = layer(arrays["x"], training=True, **kw)
    outs = out if isinstance(out, list) else [out]
    assert len(outs) == cfg["n_outputs"]
    for k, o in enumerate(outs):
        np.testing.assert_allclose(o, arrays[f"out_{k}"], **tol)
    # training=False never drops
    plain = layer(arrays["x"], **kw)
    plain = plain[0] if isinstance(plain, list) else plain
    assert not np.allclose(plain, arrays["out_0"])

    y, backprop = layer.forward_train(arrays["x"], **kw)
    dys = [arrays[f"dy_{k}"] for k in range(cfg["n_outputs"])]
    result = backprop(dys if layer.return_state else dys[0])
    if "h0" in arrays:
        dx, (dh0, dc0) = result
        np.testing.assert_allclose(dh0, arrays["grad_h0"], **tol)
        np.testing.assert_allclose(dc0, arrays["grad_c0"], **tol)
    else:
        dx = result
    np.testing.assert_allclose(dx, arrays["grad_x"], **tol)
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(layer.grads[name], arrays[f"grad_{name}"], **tol)


def test_masks_are_per_gate_only_with_recurrent_dropout():
    shared = LSTM(5, dropout=0.3, seed=1)
    m, gates, rec = shared.cell._draw_dropout(2000, 6)
    assert m.shape == (2000, 6) and gates is None and rec is None
    per_gate = LSTM(5, dropout=0.3, recurrent_dropout=0.2, seed=1)
    m, gates, rec = per_gate.cell._draw_dropout(2000, 6)
    assert m is None and gates.shape == (4, 2000, 6) and rec.shape == (4, 2000, 5)
    for masks, rate in ((gates, 0.3), (rec, 0.2)):
        assert set(np.unique(masks)) == {0, np.float32(1 / (1 - rate))}
        assert abs((masks == 0).mean() - rate) < 0.01
        assert not np.array_equal(masks[0], masks[1])   # a separate mask per gate
    only_rec = LSTM(5, recurrent_dropout=0.2, seed=1)
    m, gates, rec = only_rec.cell._draw_dropout(10, 6)
    assert m is None and gates is None and rec.shape == (4, 10, 5)
    # Keras applies no dropout at rate 1 (0 < rate < 1 only)
    full = LSTM(5, dropout=1.0, seed=1)
    assert full.cell._draw_dropout(10, 6) == (None, None, None)


def test_per_gate_dropout_reproducible_and_fresh(rng):
    x = rng.standard_normal((3, 5, 2))
    a = LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=9, dtype="float64")
    b = LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=9, dtype="float64")
    a.build(x.shape)
    b.build(x.shape)
    b.set_weights(a.get_weights())
    first = a(x, training=True)
    np.testing.assert_array_equal(first, b(x, training=True))
    assert not np.array_equal(first, a(x, training=True))


def test_cell_draws_and_applies_the_same_masks_as_the_layer(rng):
    x = rng.standard_normal((3, 1, 4))
    h0 = [rng.standard_normal((3, 5)) for _ in range(2)]
    layer = LSTM(5, return_state=True, dropout=0.3, recurrent_dropout=0.4, seed=2,
                 dtype="float64")
    cell = LSTMCell(5, dropout=0.3, recurrent_dropout=0.4, seed=2, dtype="float64")
    layer.build(x.shape)
    cell.build((3, 4))
    cell.set_weights(layer.get_weights())
    y, _ = layer.forward_train(x, initial_state=h0)
    (h1, (_, c1)), _ = cell.forward_train(x[:, 0], h0)
    np.testing.assert_allclose(y[1], h1, rtol=1e-12)
    np.testing.assert_allclose(y[2], c1, rtol=1e-12)
    plain, _ = cell(x[:, 0], h0)
    assert not np.allclose(plain, h1)


# -- finite differences in float64 --------------------------------------------

_num_grad = numerical_gradient


OPTIONS = [
    dict(),
    dict(return_sequences=True, go_backwards=True),
    dict(return_state=True, use_bias=False),
    dict(return_sequences=True, return_state=True, time_major=True),
    dict(return_state=True, go_backwards=True, activation="softsign",
         recurrent_activation="hard_sigmoid"),
    dict(return_sequences=True, zero_output_for_mask=True, go_backwards=True),
]


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(sorted(o)) or "default")
def test_layer_gradients_match_finite_differences(rng, options, with_mask, with_state):
    B, T, I, U = 2, 4, 3, 3
    tm = options.get("time_major", False)
    layer = LSTM(U, dtype="float64", **options)
    x = rng.uniform(-1, 1, (T, B, I) if tm else (B, T, I))
    layer.build(x.shape)
    layer.set_weights([rng.uniform(-0.7, 0.7, w.shape) for w in layer.get_weights()])
    kw = {}
    if with_mask:
        mask = rng.random((B, T)) > 0.4
        mask[0, 1] = False
        mask[1, 0] = True
        kw["mask"] = mask.T if tm else mask
    h0 = c0 = None
    if with_state:
        h0, c0 = rng.uniform(-1, 1, (B, U)), rng.uniform(-1, 1, (B, U))
        kw["initial_state"] = [h0, c0]
    y, backprop = layer.forward_train(x, **kw)
    ys = y if layer.return_state else [y]
    dys = [rng.standard_normal(a.shape) for a in ys]
    layer.zero_grad()
    result = backprop(dys if layer.return_state else dys[0])
    if with_state:
        dx, (dh0, dc0) = result
    else:
        dx = result
        assert isinstance(dx, np.ndarray)

    def loss():
        out = layer(x, **kw)
        outs = out if isinstance(out, list) else [out]
        return sum(np.sum(o * d) for o, d in zip(outs, dys))

    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, _num_grad(loss, x), **tol, err_msg="dx")
    for name, value in zip(("kernel", "recurrent_kernel", "bias"), layer.weights):
        np.testing.assert_allclose(layer.grads[name], _num_grad(loss, value), **tol,
                                   err_msg=name)
    if with_state:
        np.testing.assert_allclose(dh0, _num_grad(loss, h0), **tol, err_msg="dh0")
        np.testing.assert_allclose(dc0, _num_grad(loss, c0), **tol, err_msg="dc0")


@pytest.mark.parametrize("kw", [dict(dropout=0.4), dict(recurrent_dropout=0.4),
                                dict(dropout=0.3, recurrent_dropout=0.5, return_state=True)])
def test_dropout_weight_gradients_match_finite_differences_under_fixed_masks(rng, kw):
    x = rng.standard_normal((3, 4, 2))
    layer = LSTM(3, seed=5, dtype="float64", **kw)
    layer.build(x.shape)
    layer.set_weights([rng.uniform(-0.7, 0.7, w.shape) for w in layer.get_weights()])
    masks = layer.cell._draw_dropout(3, 2)
    layer.cell._dropout_masks.for_call = lambda *args: masks   # fixed for every call
    y, backprop = layer.forward_train(x)
    ys = y if layer.return_state else [y]
    dys = [rng.standard_normal(a.shape) for a in ys]
    layer.zero_grad()
    dx = backprop(dys if layer.return_state else dys[0])

    def loss(training=True):
        out = layer(x, training=training)
        outs = out if isinstance(out, list) else [out]
        return sum(np.sum(o * d) for o, d in zip(outs, dys))

    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, _num_grad(loss, x), **tol, err_msg="dx")
    for name, value in zip(("kernel", "recurrent_kernel", "bias"), layer.weights):
        np.testing.assert_allclose(layer.grads[name], _num_grad(loss, value), **tol,
                                   err_msg=name)
    assert not np.isclose(loss(), loss(training=False))   # the masks act on the loss
