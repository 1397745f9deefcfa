"""Weights between cylstm.layers.LSTM (Keras) and cylstm.nn.LSTM (PyTorch)."""
import numpy as np
import pytest

import cylstm
from cylstm.interop import keras_to_torch_weights, torch_to_keras_weights
from tests.conftest import TOL


@pytest.mark.parametrize("use_bias", [True, False])
def test_keras_layer_and_converted_nn_lstm_agree(dtype, rng, use_bias):
    x = rng.standard_normal((3, 7, 4)).astype(dtype)
    keras_layer = cylstm.layers.LSTM(6, return_sequences=True, return_state=True,
                                     use_bias=use_bias, dtype=dtype, seed=0)
    keras_layer.build(x.shape)
    if use_bias:
        weights = keras_layer.get_weights()
        weights[2] = rng.standard_normal(weights[2].shape).astype(dtype)
        keras_layer.set_weights(weights)
    seq, h, c = keras_layer(x)

    sd = keras_to_torch_weights(*keras_layer.get_weights())
    assert sd["weight_ih_l0"].shape == (24, 4) and sd["weight_hh_l0"].shape == (24, 6)
    torch_style = cylstm.nn.LSTM(4, 6, batch_first=True, bias=use_bias, dtype=dtype)
    torch_style.load_state_dict(sd)
    output, (h_n, c_n) = torch_style(x)
    np.testing.assert_allclose(output, seq, **TOL[dtype])
    np.testing.assert_allclose(h_n[0], h, **TOL[dtype])
    np.testing.assert_allclose(c_n[0], c, **TOL[dtype])

    # and back: a fresh Keras layer with the torch-style module's weights
    back = cylstm.layers.LSTM(6, return_sequences=True, use_bias=use_bias, dtype=dtype)
    back.build(x.shape)
    back.set_weights(torch_to_keras_weights(torch_style.state_dict()))
    np.testing.assert_allclose(back(x), seq, **TOL[dtype])


def test_torch_to_keras_sums_the_two_biases_and_handles_layers_and_directions(rng):
    torch_style = cylstm.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True,
                                 dtype=np.float64, seed=4).eval()
    x = rng.standard_normal((2, 6, 3))
    output, (h_n, _) = torch_style(x)
    sd = torch_style.state_dict()
    kernel, recurrent, bias = torch_to_keras_weights(sd, layer=0, reverse=True)
    np.testing.assert_array_equal(bias, sd["bias_ih_l0_reverse"] + sd["bias_hh_l0_reverse"])
    # layer 0's reverse direction = a Keras LSTM with go_backwards, reversed in time
    layer = cylstm.layers.LSTM(5, return_sequences=True, go_backwards=True, dtype="float64")
    layer.build(x.shape)
    layer.set_weights([kernel, recurrent, bias])
    first_layer = cylstm.nn.LSTM(3, 5, bidirectional=True, batch_first=True, dtype=np.float64)
    first_layer.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    expected = first_layer(x)[0][..., 5:]
    np.testing.assert_allclose(layer(x)[:, ::-1], expected, **TOL["float64"])
    assert torch_to_keras_weights(sd, layer=1)[0].shape == (10, 20)


def test_cell_state_dicts_and_errors():
    cell = cylstm.nn.LSTMCell(3, 4, bias=False, seed=0)
    weights = torch_to_keras_weights(cell.state_dict())
    assert [w.shape for w in weights] == [(3, 16), (4, 16)]
    proj = cylstm.nn.LSTM(3, 5, proj_size=2)
    with pytest.raises(ValueError, match="projection"):
        torch_to_keras_weights(proj.state_dict())
    with pytest.raises(ValueError, match="weight_ih_l3"):
        torch_to_keras_weights(proj.state_dict(), layer=3)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        keras_to_torch_weights(np.zeros((3, 16)), np.zeros((5, 16)))
    sd = keras_to_torch_weights(np.zeros((3, 16)), np.zeros((4, 16)), layer=1, reverse=True)
    assert sorted(sd) == ["weight_hh_l1_reverse", "weight_ih_l1_reverse"]
