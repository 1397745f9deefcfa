"""Layer tracks its sub-layers (Keras's rule: a layer assigned to an attribute
is tracked): weights, gradients, trainable flags, penalties, constraints and
set/get_weights of a composite layer are its own plus its sub-layers', with
no dict of one layer aliased by another (cylstm/layers/base.py)."""
import pickle

import numpy as np
import pytest

from cylstm import constraints, layers, regularizers


class Composite(layers.Layer):
    """A layer with a weight of its own and two tracked Dense sub-layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = layers.Dense(3, kernel_regularizer=regularizers.L2(0.1),
                                  kernel_constraint=constraints.NonNeg())
        self.second = layers.Dense(2, use_bias=False)
        self.note = "not a layer"

    def build(self, input_shape):
        self.add_weight("scale", (input_shape[-1],), "ones")
        self.add_weight("offset", (input_shape[-1],), "zeros", trainable=False)
        self.first.build(input_shape)
        self.second.build((None, 3))
        super().build(input_shape)

    def call(self, x):
        return self.second(self.first(x * self.scale + self.offset))


def _composite():
    layer = Composite(name="composite")
    layer.build((None, 4))
    return layer


def test_assigned_layers_are_tracked_in_assignment_order():
    layer = _composite()
    assert layer.sublayers == [layer.first, layer.second]
    # own weights first (creation order), then each sub-layer's
    assert [w.shape for w in layer.weights] == [(4,), (4,), (4, 3), (3,), (3, 2)]
    assert layer.weights[2] is layer.first.kernel
    assert list(layer._params) == ["scale", "offset", "first/kernel", "first/bias",
                                   "second/kernel"]
    assert list(layer.grads) == list(layer._params)
    assert layer.grads["first/kernel"] is layer.first.grads["kernel"]
    assert layer.count_params() == 4 + 4 + 12 + 3 + 6


def test_trainable_weights_and_named_parameters():
    layer = _composite()
    assert [w.shape for w in layer.trainable_weights] == [(4,), (4, 3), (3,), (3, 2)]
    assert [w.shape for w in layer.non_trainable_weights] == [(4,)]
    names = [n for n, _, _ in layer.named_parameters()]
    assert names == ["scale", "first/kernel", "first/bias", "second/kernel"]
    for name, value, grad in layer.named_parameters():
        assert value is layer._params[name] and grad is layer.grads[name]
    # a frozen sub-layer's weights leave the trainable list, the others stay
    layer.second.trainable = False
    assert [n for n, _, _ in layer.named_parameters()] == ["scale", "first/kernel",
                                                           "first/bias"]
    assert layer.non_trainable_weights[-1] is layer.second.kernel


def test_trainable_flag_reaches_every_sub_layer():
    layer = _composite()
    layer.trainable = False
    assert not layer.first.trainable and not layer.second.trainable
    assert layer.trainable_weights == [] and layer.named_parameters() == []
    assert len(layer.non_trainable_weights) == 5
    layer.trainable = True
    assert layer.first.trainable and layer.second.trainable


def test_set_and_get_weights_cover_sub_layers_in_weights_order():
    layer = _composite()
    new = [np.full(w.shape, k + 1.0, "float32") for k, w in enumerate(layer.weights)]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(layer.first.bias, new[3])
    # checked before anything is written
    with pytest.raises(ValueError, match="first/kernel"):
        layer.set_weights(new[:2] + [np.zeros((4, 4))] + new[3:])
    np.testing.assert_array_equal(layer.first.kernel, new[2])
    with pytest.raises(ValueError, match="expects 5 weight arrays"):
        layer.set_weights(new[:4])


def test_gradients_penalties_and_constraints_of_sub_layers():
    layer = _composite()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    layer.first.kernel[...] = -1.0
    assert layer.losses == pytest.approx([0.1 * 12.0])
    y, backprop = layer.first.forward_train(x)
    backprop(np.ones_like(y))
    layer.add_regularization_gradients()
    want = x.T @ np.ones((5, 3), "float32") + 0.2 * -1.0
    np.testing.assert_allclose(layer.grads["first/kernel"], want, rtol=1e-6)
    layer.apply_constraints()    # NonNeg on first/kernel
    assert not (layer.first.kernel < 0).any()
    layer.zero_grad()
    assert not any(np.any(g) for g in layer.grads.values())


def test_reassigning_or_deleting_an_attribute_stops_tracking():
    layer = _composite()
    replacement = layers.Dense(3)
    replacement.build((None, 4))
    layer.first = replacement
    assert layer.sublayers == [replacement, layer.second]
    assert layer.weights[2] is replacement.kernel
    layer.first = None
    assert layer.sublayers == [layer.second]
    del layer.second
    assert layer.sublayers == [] and list(layer._params) == ["scale", "offset"]


def test_lstm_weights_are_its_cells_without_aliasing():
    layer = layers.LSTM(3)
    layer(np.zeros((2, 4, 5), "float32"))
    assert layer.sublayers == [layer.cell]
    # one dict each, the cell's: writes through the layer reach the cell
    assert layer.grads is layer.cell.grads and layer._params is layer.cell._params
    assert layer.kernel is layer.cell.kernel
    assert "_params" not in layer.__dict__ or layer.__dict__["_params"] == {}
    # a new cell is picked up at once (nothing was copied from the old one)
    cell = layers.LSTMCell(3)
    cell.build((None, 5))
    layer.cell = cell
    assert layer.grads is cell.grads and layer.weights[0] is cell.kernel
    copy = pickle.loads(pickle.dumps(layer))
    assert copy.grads is copy.cell.grads and copy.kernel is copy.cell.kernel


def test_lstm_trainable_flag_reaches_its_cell():
    layer = layers.LSTM(3, trainable=False)
    assert not layer.cell.trainable
    layer.trainable = True
    assert layer.cell.trainable


def test_bidirectional_tracks_both_layers():
    layer = layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(2, go_backwards=True))
    layer(np.zeros((2, 4, 5), "float32"))
    assert layer.sublayers == [layer.forward_layer, layer.backward_layer]
    assert list(layer.grads) == [f"{d}/{n}" for d in ("forward", "backward")
                                 for n in ("kernel", "recurrent_kernel", "bias")]
    assert layer.grads["backward/bias"] is layer.backward_layer.cell.grads["bias"]
    assert layer.weights == layer.forward_layer.weights + layer.backward_layer.weights
    layer.trainable = False
    assert not layer.backward_layer.trainable and not layer.backward_layer.cell.trainable
    assert layer.count_params() == sum(w.size for w in layer.weights)
