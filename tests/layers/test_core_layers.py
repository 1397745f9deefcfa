"""cylstm.layers Dense, Embedding, Masking and Dropout.

Outputs and gradients are compared with fixtures written by Keras 3
(tests/golden/keras_layers/, made by tests/golden/make_keras_layer_goldens.py);
gradients are also checked against finite differences in float64.
"""
import json

import numpy as np
import pytest

import cylstm
from cylstm.layers import Dense, Dropout, Embedding, Masking
from tests.conftest import TOL, golden_cases, load_golden
from .._helpers import numerical_gradient

DENSE = golden_cases("keras_layers", "dense_*.npz")
EMBEDDING = golden_cases("keras_layers", "embedding_*.npz")
MASKING = golden_cases("keras_layers", "masking_*.npz")


def _tol(cfg):
    tol = dict(TOL[cfg["dtype"]])
    if "gelu" in cfg["case"] and cfg["dtype"] == "float64":
        tol = dict(rtol=1e-6, atol=1e-7)  # TF builds gelu's 1/sqrt(2) in float32
    if cfg.get("regularized") and cfg["dtype"] == "float64":
        # Keras's penalties use the factor (0.01) rounded to float32 even on float64
        # weights: a 2.2e-8 relative difference.
        tol = dict(rtol=1e-7, atol=1e-10)
    return tol


def _dense(arrays, cfg):
    layer = Dense(**cfg["layer"])
    layer.build(arrays["x"].shape)
    layer.set_weights([arrays["kernel"]] + ([arrays["bias"]] if "bias" in arrays else []))
    return layer


def _fd_check(loss, params, analytic, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Central differences of loss() w.r.t. each array in params (modified in place)."""
    for name, p in params.items():
        fd = numerical_gradient(loss, p, eps)
        np.testing.assert_allclose(analytic[name], fd, rtol=rtol, atol=atol, err_msg=name)


# -- Dense -------------------------------------------------------------------
@pytest.mark.parametrize("path", DENSE, ids=lambda p: p.stem)
def test_dense_forward_matches_keras(path):
    arrays, cfg = load_golden(path)
    layer = _dense(arrays, cfg)
    out = layer(arrays["x"])
    assert out.dtype == np.dtype(cfg["dtype"])
    np.testing.assert_allclose(out, arrays["out_0"], **_tol(cfg))


@pytest.mark.parametrize("path", DENSE, ids=lambda p: p.stem)
def test_dense_gradients_match_keras(path):
    arrays, cfg = load_golden(path)
    layer = _dense(arrays, cfg)
    y, backprop = layer.forward_train(arrays["x"])
    np.testing.assert_allclose(y, arrays["out_0"], **_tol(cfg))
    dx = backprop(arrays["dy_0"])
    assert dx.dtype == np.dtype(cfg["dtype"])
    if cfg["regularized"]:
        # grad_* are of sum(out*dy) only; the activity penalty enters backprop.
        layer.add_regularization_gradients()
        np.testing.assert_allclose(sum(layer.losses), arrays["reg_loss"], **_tol(cfg))
        np.testing.assert_allclose(sorted(layer.losses), sorted(arrays["reg_losses"]),
                                   **_tol(cfg))
        prefix = "grad_total_"
    else:
        prefix = "grad_"
    np.testing.assert_allclose(dx, arrays[prefix + "x"], **_tol(cfg))
    for name in ("kernel", "bias"):
        if prefix + name in arrays:
            np.testing.assert_allclose(layer.grads[name], arrays[prefix + name], **_tol(cfg))


@pytest.mark.parametrize("path", DENSE, ids=lambda p: p.stem)
def test_dense_config_round_trips_keras_written_config(path):
    _, cfg = load_golden(path)
    keras_config = cfg["keras_config"]
    layer = Dense.from_config(keras_config)
    assert layer.get_config() == keras_config
    again = Dense.from_config(json.loads(json.dumps(layer.get_config())))
    assert again.get_config() == keras_config


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid", "softmax", "elu",
                                        "selu", "softsign", "swish", "gelu", "hard_sigmoid"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3)])
def test_dense_gradients_finite_differences(activation, shape, rng):
    layer = Dense(4, activation=activation, dtype="float64",
                  kernel_regularizer="l2", activity_regularizer=cylstm.regularizers.L2(0.1))
    x = rng.uniform(-1, 1, shape)
    layer.build(shape)
    layer.set_weights([rng.uniform(-1, 1, (3, 4)), rng.uniform(-0.5, 0.5, 4)])
    dy = rng.uniform(-1, 1, shape[:-1] + (4,))

    def loss():
        y = layer(x)
        return float(np.sum(y * dy)) + sum(layer.losses)

    layer.zero_grad()
    _, backprop = layer.forward_train(x)
    dx = backprop(dy)
    layer.add_regularization_gradients()
    analytic = {"x": dx, "kernel": layer.grads["kernel"].copy(),
                "bias": layer.grads["bias"].copy()}
    _fd_check(loss, {"x": x, "kernel": layer.kernel, "bias": layer.bias}, analytic)


def test_dense_on_sequences_applies_per_step(rng):
    layer = Dense(2, activation="relu")
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    y = layer(x)
    assert y.shape == (3, 5, 2)
    np.testing.assert_allclose(y[:, 2], layer(x[:, 2]), rtol=1e-6, atol=1e-7)
    assert layer.compute_output_shape((None, 5, 4)) == (None, 5, 2)
    assert layer.output.shape == (None, 5, 2)
    assert layer.count_params() == 4 * 2 + 2


def test_dense_passes_the_mask_through():
    layer = Dense(2)
    mask = np.array([[True, False, True]])
    assert layer.compute_mask(np.zeros((1, 3, 4)), mask) is mask
    assert layer.compute_mask(np.zeros((1, 3, 4)), None) is None
    y = layer(np.ones((1, 3, 4)), mask=mask)  # accepted, not applied (Keras)
    assert np.allclose(y[0, 0], y[0, 1])


def test_dense_errors():
    layer = Dense(3)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        layer(np.ones(4))
    layer(np.ones((2, 4)))
    with pytest.raises(ValueError, match="must have 4 features"):
        layer(np.ones((2, 5)))
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="Unknown activation"):
        Dense(2, activation="nope")
    with pytest.raises(TypeError):
        layer(np.array([["a", "b", "c", "d"]]))
    _, backprop = layer.forward_train(np.ones((2, 4)))
    with pytest.raises(ValueError, match="dy"):
        backprop(np.ones((2, 2)))
    with pytest.raises(TypeError, match="callable activation"):
        Dense(2, activation=lambda z: z).forward_train(np.ones((1, 2)))
    with pytest.raises(ValueError, match="lora"):
        Dense(2, lora_rank=4)


def test_dense_trainable_false_and_no_bias(rng):
    layer = Dense(3, use_bias=False, trainable=False)
    _, backprop = layer.forward_train(rng.standard_normal((2, 4)))
    backprop(np.ones((2, 3), "float32"))
    assert list(layer.grads) == ["kernel"] and not layer.grads["kernel"].any()
    assert layer.named_parameters() == [] and len(layer.get_weights()) == 1


def test_dense_grads_accumulate(rng):
    layer = Dense(2, dtype="float64")
    x = rng.standard_normal((3, 4))
    for _ in range(2):
        _, bp = layer.forward_train(x)
        bp(np.ones((3, 2)))
    np.testing.assert_allclose(layer.grads["kernel"], 2 * x.T @ np.ones((3, 2)))
    layer.zero_grad()
    assert not layer.grads["kernel"].any()


# -- Embedding ---------------------------------------------------------------
def _embedding(arrays, cfg):
    layer = Embedding(**cfg["layer"])
    layer.build()
    layer.set_weights([arrays["embeddings"]])
    return layer


@pytest.mark.parametrize("path", EMBEDDING, ids=lambda p: p.stem)
def test_embedding_matches_keras(path):
    arrays, cfg = load_golden(path)
    layer = _embedding(arrays, cfg)
    out = layer(arrays["x"])
    assert out.dtype == np.dtype(cfg["dtype"])
    np.testing.assert_allclose(out, arrays["out_0"], **_tol(cfg))
    y, backprop = layer.forward_train(arrays["x"])
    assert backprop(arrays["dy_0"]) is None
    np.testing.assert_allclose(layer.grads["embeddings"], arrays["grad_embeddings"], **_tol(cfg))
    mask = layer.compute_mask(arrays["x"])
    if "mask_out" in arrays:
        np.testing.assert_array_equal(mask, arrays["mask_out"])
    else:
        assert mask is None


@pytest.mark.parametrize("path", EMBEDDING, ids=lambda p: p.stem)
def test_embedding_config_round_trips_keras_written_config(path):
    _, cfg = load_golden(path)
    layer = Embedding.from_config(cfg["keras_config"])
    assert layer.get_config() == cfg["keras_config"]


def test_embedding_gradient_finite_differences(rng):
    layer = Embedding(6, 3, dtype="float64", embeddings_regularizer="l2")
    x = np.array([[1, 2, 2, 0], [5, 1, 1, 1]])
    layer.build()
    dy = rng.uniform(-1, 1, (2, 4, 3))

    def loss():
        return float(np.sum(layer(x) * dy)) + sum(layer.losses)

    _, backprop = layer.forward_train(x)
    backprop(dy)
    layer.add_regularization_gradients()
    _fd_check(loss, {"embeddings": layer.embeddings},
              {"embeddings": layer.grads["embeddings"].copy()})


def test_embedding_index_errors():
    layer = Embedding(10, 3)
    with pytest.raises(ValueError, match=r"index 10 .*input_dim\) = \[0, 10\)"):
        layer(np.array([[1, 10]]))
    with pytest.raises(ValueError, match=r"index -1 at position \(1, 0\)"):
        layer(np.array([[1, 2], [-1, 3]]))
    with pytest.raises(TypeError, match="integer"):
        layer(np.array([[1.5, 2.0]]))
    with pytest.raises(TypeError, match="integer"):
        layer(np.array([["a"]]))
    np.testing.assert_array_equal(layer(np.array([[1.0, 2.0]])), layer(np.array([[1, 2]])))
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="output_dim"):
        Embedding(3, -1)


def test_embedding_mask_zero_and_shapes():
    layer = Embedding(5, 2, mask_zero=True)
    x = np.array([[3, 1, 0, 0], [2, 0, 4, 0]])
    assert layer(x).shape == (2, 4, 2)
    np.testing.assert_array_equal(layer.compute_mask(x), x != 0)
    assert Embedding(5, 2).compute_mask(x) is None
    assert layer.compute_output_shape((None, 4)) == (None, 4, 2)
    assert layer.output.shape == (None, 4, 2)
    assert layer.count_params() == 10
    assert layer(np.zeros((0, 4), int)).shape == (0, 4, 2)


def test_embedding_input_length_declares_the_input_shape():
    layer = Embedding(5000, 15, input_length=300)
    assert layer._declared_input_shape == (None, 300)
    assert layer.get_config()["input_length"] == 300
    assert Embedding.from_config(layer.get_config())._declared_input_shape == (None, 300)
    assert Embedding(5, 2, input_shape=(7,))._declared_input_shape == (None, 7)
    assert Embedding(5, 2)._declared_input_shape is None
    layer.build((None, 300))
    assert layer.count_params() == 75000


def test_embedding_pretrained_weights_and_frozen():
    matrix = np.arange(12, dtype="float32").reshape(4, 3)
    layer = Embedding(4, 3, weights=[matrix], trainable=False)
    layer.build((None, 2))  # already built by weights=: records the input shape only
    assert layer.output.shape == (None, 2, 3)
    np.testing.assert_array_equal(layer(np.array([[3, 0]]))[0], matrix[[3, 0]])
    _, backprop = layer.forward_train(np.array([[3, 0]]))
    backprop(np.ones((1, 2, 3)))
    assert not layer.grads["embeddings"].any()
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1


# -- Masking -----------------------------------------------------------------
@pytest.mark.parametrize("path", MASKING, ids=lambda p: p.stem)
def test_masking_matches_keras(path):
    arrays, cfg = load_golden(path)
    layer = Masking(**cfg["layer"])
    out = layer(arrays["x"])
    assert out.dtype == np.dtype(cfg["dtype"])
    np.testing.assert_array_equal(out, arrays["out_0"])
    np.testing.assert_array_equal(layer.compute_mask(arrays["x"]), arrays["mask_out"])
    y, backprop = layer.forward_train(arrays["x"])
    np.testing.assert_array_equal(backprop(arrays["dy_0"]), arrays["grad_x"])
    assert Masking.from_config(cfg["keras_config"]).get_config() == cfg["keras_config"]


def test_masking_feeds_an_lstm_as_keras(rng):
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    x[0, 3:] = 0.0
    masking = Masking(0.0)
    lstm = cylstm.layers.LSTM(4)
    y = lstm(masking(x), mask=masking.compute_mask(x))
    np.testing.assert_allclose(y[0], lstm(x[:1, :3])[0], rtol=1e-5, atol=1e-6)


def test_masking_errors():
    with pytest.raises(TypeError, match="mask_value"):
        Masking("zero")
    with pytest.raises(ValueError, match="at least 2"):
        Masking()(np.zeros(3))


# -- Dropout -----------------------------------------------------------------
def test_dropout_statistics():
    layer = Dropout(0.3, seed=0)
    x = np.ones((400, 500), "float32")
    y = layer(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01
    assert y.dtype == np.float32


def test_dropout_training_false_is_identity():
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype("float32")
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y, backprop = layer.forward_train(x, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(backprop(x), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)
    assert not Dropout(1.0)(x, training=True).any()


def test_dropout_backprop_uses_the_forward_mask():
    layer = Dropout(0.5, seed=3)
    x = np.ones((10, 10), "float32")
    y, backprop = layer.forward_train(x)
    np.testing.assert_array_equal(backprop(np.full((10, 10), 2.0)), 2 * y)


def test_dropout_masks_are_fresh_and_seeded():
    x = np.ones((50, 50))
    a, b = Dropout(0.5, seed=7), Dropout(0.5, seed=7)
    first = a(x, training=True)
    np.testing.assert_array_equal(first, b(x, training=True))
    assert not np.array_equal(first, a(x, training=True))


def test_dropout_noise_shape():
    layer = Dropout(0.5, noise_shape=(None, 1, 6), seed=1)
    y = layer(np.ones((4, 5, 6)), training=True)
    assert (y == y[:, :1, :]).all()  # the same features dropped at every step
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape=(None, 2, 6))(np.ones((4, 5, 6)), training=True)
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape="abc")


def test_dropout_errors_mask_and_config():
    for rate in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="rate"):
            Dropout(rate)
    layer = Dropout(0.2, noise_shape=(None, 1, 3), seed=5, name="drop")
    mask = np.array([[True, False]])
    assert layer.compute_mask(np.ones((1, 2, 3)), mask) is mask
    config = layer.get_config()
    assert set(config) == {"name", "trainable", "dtype", "rate", "seed", "noise_shape"}
    again = Dropout.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config and again.noise_shape == (None, 1, 3)
    assert layer.count_params() == 0


def test_float64_layers_keep_float64():
    x = np.ones((2, 3, 4))
    for layer in (Dense(2, dtype="float64"), Masking(dtype="float64"),
                  Dropout(0.5, dtype="float64")):
        assert layer(x, training=True).dtype == np.float64
    assert Embedding(3, 2, dtype="float64")(np.array([[1, 2]])).dtype == np.float64
