"""cylstm.optimizers against Keras 3's optimizers: one and three steps on fixed
gradients (goldens), clipping, weight decay, and the API around them."""
import numpy as np
import pytest

from cylstm import optimizers

from .conftest import case_params

# Keras keeps the learning rate in a float32 variable (0.001 -> 0.0010000000475) and,
# for float64 variables, computes Adam's step size partly in float32; cylstm does
# all of a float64 variable's step in float64. That shows at ~1e-5 of one step.
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-5, atol=2e-7)}


@pytest.mark.parametrize("case,arrays", case_params("optimizers.npz"))
def test_matches_keras_one_and_three_steps(case, arrays):
    opt = getattr(optimizers, case["cls"])(**case["kwargs"])
    n = case["n_vars"]
    variables = [arrays[f"init{i}"].copy() for i in range(n)]
    for step in range(3):
        opt.apply([(f"v{i}", variables[i], arrays[f"grad{step}_{i}"]) for i in range(n)])
        for v in variables:
            assert v.dtype == case["dtype"]
        if step in (0, 2):
            for i in range(n):
                np.testing.assert_allclose(variables[i], arrays[f"step{step + 1}_{i}"],
                                           err_msg=f"{case['case']} step {step + 1} var {i}",
                                           **TOL[case["dtype"]])
    assert opt.iterations == 3


def test_updates_arrays_in_place_and_keeps_slots_per_key():
    w1, w2 = np.ones(3, "float32"), np.ones(3, "float32")
    ids = id(w1), id(w2)
    opt = optimizers.Adam(0.1)
    g = np.array([1.0, -1.0, 0.5], "float32")
    opt.apply([("a", w1, g), ("b", w2, 2 * g)])
    assert (id(w1), id(w2)) == ids
    assert set(opt._slots) == {"a", "b"}
    # Adam's first step moves every weight by lr * sign(g) (bias-corrected).
    np.testing.assert_allclose(w1, 1 - 0.1 * np.sign(g), rtol=1e-5)
    np.testing.assert_allclose(w2, w1, rtol=1e-5)


def test_apply_gradients_keras_spelling_and_none_gradients():
    w = np.zeros(2)
    opt = optimizers.SGD(0.5)
    opt.apply_gradients([(np.array([1.0, 2.0]), w)])
    np.testing.assert_array_equal(w, [-0.5, -1.0])
    opt.apply([("x", w, None)])           # skipped, as Keras skips missing gradients
    assert opt.iterations == 1


def test_clipnorm_is_per_variable_not_global():
    a, b = np.zeros(2), np.zeros(2)
    opt = optimizers.SGD(1.0, clipnorm=1.0)
    opt.apply([("a", a, np.array([3.0, 4.0])), ("b", b, np.array([0.3, 0.4]))])
    np.testing.assert_allclose(a, [-0.6, -0.8])     # norm 5 clipped to 1
    np.testing.assert_allclose(b, [-0.3, -0.4])     # norm 0.5 untouched
    a, b = np.zeros(2), np.zeros(2)
    opt = optimizers.SGD(1.0, global_clipnorm=1.0)
    opt.apply([("a", a, np.array([3.0, 4.0])), ("b", b, np.array([0.3, 0.4]))])
    scale = 1.0 / np.sqrt(25 + 0.25)
    np.testing.assert_allclose(a, -scale * np.array([3.0, 4.0]))
    np.testing.assert_allclose(b, -scale * np.array([0.3, 0.4]))


def test_get_by_name_object_and_config():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    assert isinstance(optimizers.get("rmsprop"), optimizers.RMSprop)
    opt = optimizers.RMSprop(0.01, momentum=0.5, centered=True, clipvalue=0.1)
    assert optimizers.get(opt) is opt
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.get_config() == opt.get_config()
    assert opt.get_config()["momentum"] == 0.5 and opt.get_config()["clipvalue"] == 0.1
    # Keras's automatic names
    assert optimizers.Adam().name.startswith("adam")
    assert optimizers.RMSprop().name.startswith("rm_sprop")


def test_learning_rate_schedule_callable():
    w = np.zeros(1)
    opt = optimizers.SGD(lambda step: 0.1 * (step + 1))
    for _ in range(3):
        opt.apply([("w", w, np.ones(1))])
    np.testing.assert_allclose(w, [-(0.1 + 0.2 + 0.3)])


@pytest.mark.parametrize("kwargs,match", [
    (dict(clipnorm=1.0, clipvalue=1.0), "Only one of"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(use_ema=True), "use_ema"),
    (dict(foo=1), "not recognized"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimizers.Adam(**kwargs)


def test_bad_identifiers_and_shapes():
    with pytest.raises(ValueError, match="Could not interpret optimizer"):
        optimizers.get("adamw_not_here")
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="shape"):
        optimizers.SGD().apply([("w", np.zeros(3), np.zeros(2))])
    with pytest.raises(TypeError, match="floating NumPy array"):
        optimizers.SGD().apply([("w", [0.0, 1.0], np.zeros(2))])


# -- variables of another backend (array-API arrays) -----------------------------

def _strict():
    return pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("case,arrays", case_params("optimizers.npz"))
def test_matches_keras_on_array_api_strict_variables(case, arrays):
    """The same Keras goldens with the variables and gradients in the strict
    array-API namespace: the update uses the backend's xp only, and its
    slots are that backend's arrays."""
    xp = _strict()
    opt = getattr(optimizers, case["cls"])(**case["kwargs"])
    n = case["n_vars"]
    variables = [xp.asarray(arrays[f"init{i}"].copy()) for i in range(n)]
    for step in range(3):
        opt.apply([(f"v{i}", variables[i], xp.asarray(arrays[f"grad{step}_{i}"]))
                   for i in range(n)])
        if step in (0, 2):
            for i in range(n):
                np.testing.assert_allclose(np.from_dlpack(variables[i]),
                                           arrays[f"step{step + 1}_{i}"],
                                           err_msg=f"{case['case']} step {step + 1} var {i}",
                                           **TOL[case["dtype"]])
    for slots in opt.get_slots().values():
        assert all(type(s) is type(variables[0]) for s in slots.values())


@pytest.mark.parametrize("opt", [optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                                 optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5),
                                 optimizers.RMSprop(0.01, momentum=0.5, centered=True,
                                                    weight_decay=0.1, global_clipnorm=0.3),
                                 optimizers.SGD(0.1, clipvalue=0.05)],
                         ids=["sgd_nesterov", "adam_amsgrad_clipnorm",
                              "rmsprop_centered_decay_global", "sgd_clipvalue"])
def test_strict_variables_step_exactly_as_numpy_ones(opt):
    xp = _strict()
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4)).astype("float32")
    grads = [rng.standard_normal((3, 4)).astype("float32") for _ in range(3)]
    on_numpy, on_strict = (optimizers.get(optimizers.serialize(opt)) for _ in range(2))
    w_np, w_xp = w.copy(), xp.asarray(w)
    for g in grads:
        on_numpy.apply([("w", w_np, g)])
        on_strict.apply([("w", w_xp, g)])    # a NumPy gradient is converted
    np.testing.assert_array_equal(np.from_dlpack(w_xp), w_np)


def test_slots_follow_a_variable_moved_to_another_backend():
    xp = _strict()
    opt = optimizers.Adam(0.01)
    w = np.ones(3, "float32")
    opt.apply([("w", w, np.ones(3, "float32"))])
    moments = {k: v.copy() for k, v in opt.get_slots()["w"].items()}
    moved = xp.asarray(w)
    opt.apply([("w", moved, xp.asarray(np.ones(3, "float32")))])
    slots = opt.get_slots()["w"]
    assert all(type(s) is type(moved) for s in slots.values())
    # the moments carried over (not restarted): m = 0.9 m + 0.1 g
    np.testing.assert_allclose(np.from_dlpack(slots["momentum"]),
                               0.9 * moments["momentum"] + 0.1, rtol=1e-6)


def test_a_non_floating_array_of_a_backend_is_refused():
    xp = _strict()
    with pytest.raises(TypeError, match="floating"):
        optimizers.SGD().apply([("w", xp.asarray([1, 2]), np.zeros(2))])
