"""cylstm.losses and cylstm.metrics against Keras 3 (values and gradients from
goldens), finite differences in float64, and Keras's 'accuracy' resolution."""
import numpy as np
import pytest

from cylstm import losses, metrics

from .conftest import case_params, load_cases
from .._helpers import numerical_gradient_at

LOSS_TOL = dict(rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case,arrays", case_params("losses.npz"))
def test_loss_value_and_gradient_match_keras(case, arrays):
    loss = getattr(losses, case["cls"])(**case["kwargs"])
    kwargs = {}
    if case["has_mask"]:
        kwargs["mask"] = arrays["mask"]
    if case["has_sample_weight"]:
        kwargs["sample_weight"] = arrays["sample_weight"]
    y_true, y_pred = arrays["y_true"], arrays["y_pred"]
    value = loss(y_true, y_pred, **kwargs)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, arrays["value"], **LOSS_TOL)
    value2, grad = loss.value_and_grad(y_true, y_pred, **kwargs)
    assert value2 == pytest.approx(value, rel=1e-12)
    assert grad.shape == y_pred.shape and grad.dtype == y_pred.dtype
    np.testing.assert_allclose(grad, arrays["grad"], rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("case,arrays", case_params("losses.npz"))
def test_loss_gradient_matches_finite_differences_in_float64(case, arrays):
    loss = getattr(losses, case["cls"])(**case["kwargs"])
    kwargs = {}
    if case["has_mask"]:
        kwargs["mask"] = arrays["mask"]
    if case["has_sample_weight"]:
        kwargs["sample_weight"] = arrays["sample_weight"].astype(np.float64)
    y_true = arrays["y_true"]
    y_pred = arrays["y_pred"].astype(np.float64)
    # Stay away from the clipping kinks, where the derivative jumps.
    if "from_logits" not in case["kwargs"] and ("crossentropy" in case["cls"].lower()):
        y_pred = np.clip(y_pred, 1e-3, 1 - 1e-3) if "Binary" in case["cls"] else y_pred + 0.01
    if case["cls"] in ("MeanAbsoluteError", "Huber"):
        y_pred = y_pred + 1e-3 * (np.abs(y_pred - y_true.reshape(y_pred.shape)) < 1e-3)
    _, grad = loss.value_and_grad(y_true, y_pred, **kwargs)
    fd = numerical_gradient_at(lambda yp: loss(y_true, yp, **kwargs), y_pred)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def test_keras_loss_names():
    for name, cls in [("mse", losses.MeanSquaredError),
                      ("mean_squared_error", losses.MeanSquaredError),
                      ("mae", losses.MeanAbsoluteError), ("huber", losses.Huber),
                      ("binary_crossentropy", losses.BinaryCrossentropy),
                      ("categorical_crossentropy", losses.CategoricalCrossentropy),
                      ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy)]:
        assert isinstance(losses.get(name), cls)
    assert isinstance(losses.get(losses.mse), losses.MeanSquaredError)
    assert losses.BinaryCrossentropy().name == "binary_crossentropy"
    assert losses.Huber().name == "huber_loss"
    bce = losses.BinaryCrossentropy(from_logits=True)
    again = losses.deserialize(losses.serialize(bce))
    assert isinstance(again, losses.BinaryCrossentropy) and again.from_logits


def test_bce_on_probabilities_clips_and_takes_plain_log():
    """SPEC 7b: clip to [1e-7, 1 - 1e-7], then log(p) (no + eps)."""
    y_pred = np.array([[1.0], [0.0]], np.float64)
    y_true = np.array([0.0, 1.0])
    expected = -np.log(1e-7)
    assert losses.BinaryCrossentropy()(y_true, y_pred) == pytest.approx(expected, rel=1e-9)
    _, grad = losses.BinaryCrossentropy().value_and_grad(y_true, y_pred)
    np.testing.assert_array_equal(grad, 0.0)      # clipped: no gradient, as tf.clip_by_value


def test_functional_forms_return_per_sample_values():
    y_true = np.zeros((4, 3))
    y_pred = np.ones((4, 3))
    np.testing.assert_array_equal(losses.mean_squared_error(y_true, y_pred), np.ones(4))
    np.testing.assert_array_equal(losses.MeanSquaredError(reduction=None)(y_true, y_pred),
                                  np.ones(4))


def test_loss_errors():
    with pytest.raises(ValueError, match="Could not interpret loss"):
        losses.get("hinge_not_supported")
    with pytest.raises(ValueError, match="gradients"):
        losses.get(lambda a, b: 0.0)
    with pytest.raises(ValueError, match="same shape"):
        losses.MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 3]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="median")


# -- metrics ---------------------------------------------------------------------------

METRIC_CASES = [p for p in case_params("metrics.npz") if p.id != "accuracy_resolution"]


@pytest.mark.parametrize("case,arrays", METRIC_CASES)
def test_metric_running_mean_matches_keras(case, arrays):
    metric = getattr(metrics, case["cls"])(**case["kwargs"])
    for b in range(case["n_batches"]):
        metric.update_state(arrays[f"y_true{b}"], arrays[f"y_pred{b}"],
                            sample_weight=arrays.get(f"sw{b}"), mask=arrays.get(f"mask{b}"))
        np.testing.assert_allclose(metric.result(), arrays[f"result{b}"], rtol=1e-6,
                                   err_msg=f"after batch {b}")
    metric.reset_state()
    assert metric.result() == 0.0


def test_accuracy_resolves_from_shapes_as_keras():
    (case, _), = [c for c in load_cases("metrics.npz") if c[0]["case"] == "accuracy_resolution"]
    for entry in case["resolution"]:
        m = metrics.resolve("accuracy", np.zeros(entry["y_true"]), np.zeros(entry["y_pred"]))
        assert type(m).__name__ == entry["class"], entry
        assert m.name == entry["name"]
    assert metrics.resolve("acc", np.zeros(4), np.zeros((4, 1))).name == "acc"


def test_metric_names_and_lookup():
    assert metrics.resolve("mse", None, None).name == "mse"
    assert metrics.resolve("mae", None, None).name == "mae"
    assert isinstance(metrics.get("mean_absolute_error"), metrics.MeanAbsoluteError)
    assert metrics.get(metrics.MeanSquaredError).name == "mean_squared_error"
    assert metrics.BinaryAccuracy().name == "binary_accuracy"
    m = metrics.BinaryAccuracy()
    assert m([1, 0], [[0.9], [0.8]]) == 0.5          # __call__ updates and returns
    with pytest.raises(ValueError, match="Could not interpret metric"):
        metrics.get("f1_score_not_here")
    with pytest.raises(ValueError, match="shapes"):
        metrics.get("accuracy")
