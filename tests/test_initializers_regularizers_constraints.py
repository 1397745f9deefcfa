"""Initializers, regularizers and constraints against Keras 3's formulas and configs.

Literal expected values were computed with Keras 3.15.1 (TensorFlow backend).
"""
import json
import pathlib

import numpy as np
import pytest

from cylstm import constraints, initializers, regularizers
from ._helpers import numerical_gradient_at

KERAS_CONFIG = pathlib.Path(__file__).parent / "golden" / "keras_lstm" / "keras_written_config.json"

W = np.array([[3.0, 0.1, -1.0], [4.0, -0.2, 2.0]], dtype="float32")
# A zero column and a zero row exercise Keras's epsilon handling.
Z = np.array([[0.0, 1.0], [0.0, 0.0]], dtype="float32")


# ---------------------------------------------------------------- initializers

RANDOM_INITS = [initializers.RandomNormal, initializers.RandomUniform,
                initializers.TruncatedNormal, initializers.VarianceScaling,
                initializers.GlorotUniform, initializers.GlorotNormal, initializers.HeUniform,
                initializers.HeNormal, initializers.LecunUniform, initializers.LecunNormal,
                initializers.Orthogonal]


@pytest.mark.parametrize("cls", RANDOM_INITS + [initializers.Zeros, initializers.Ones,
                                                initializers.Constant, initializers.Identity])
def test_shape_and_dtype(cls, dtype):
    init = cls()
    out = init((5, 3), dtype=dtype)
    assert out.shape == (5, 3) and out.dtype == dtype
    assert init((5, 3)).dtype == np.float32


@pytest.mark.parametrize("cls", RANDOM_INITS)
def test_int_seed_is_reproducible(cls):
    a = cls(seed=7)((6, 4))
    np.testing.assert_array_equal(a, cls(seed=7)((6, 4)))
    # Keras 3 semantics: an int seed gives the same values on every call.
    init = cls(seed=7)
    np.testing.assert_array_equal(init((6, 4)), init((6, 4)))
    assert not np.array_equal(a, cls(seed=8)((6, 4)))


def test_unseeded_draws_from_global_generator():
    init = initializers.GlorotUniform()
    assert not np.array_equal(init((4, 4)), init((4, 4)))
    initializers.set_global_seed(123)
    first = [init((4, 4)), initializers.Orthogonal()((4, 4))]
    initializers.set_global_seed(123)
    second = [init((4, 4)), initializers.Orthogonal()((4, 4))]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_compute_fans():
    assert initializers.compute_fans((7,)) == (7, 7)
    assert initializers.compute_fans((7, 5)) == (7, 5)
    # Conv kernel (h, w, in, out): fans scale by the receptive field.
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)


SHAPE = (200, 300)  # fan_in 200, fan_out 300


@pytest.mark.parametrize("init, variance, bound", [
    (initializers.GlorotUniform(seed=1), 2 / 500, np.sqrt(6 / 500)),
    (initializers.GlorotNormal(seed=1), 2 / 500, 2 * np.sqrt(2 / 500) / 0.87962566103423978),
    (initializers.HeUniform(seed=1), 2 / 200, np.sqrt(6 / 200)),
    (initializers.HeNormal(seed=1), 2 / 200, 2 * np.sqrt(2 / 200) / 0.87962566103423978),
    (initializers.LecunUniform(seed=1), 1 / 200, np.sqrt(3 / 200)),
    (initializers.LecunNormal(seed=1), 1 / 200, 2 * np.sqrt(1 / 200) / 0.87962566103423978),
    (initializers.VarianceScaling(3.0, "fan_out", "untruncated_normal", seed=1), 3 / 300, None),
    (initializers.RandomUniform(-0.5, 0.5, seed=1), 1 / 12, 0.5),
    (initializers.RandomNormal(0.0, 0.2, seed=1), 0.04, None),
])
def test_variance_matches_formula(init, variance, bound):
    # 60000 draws: the sample variance is within ~1% of the true one.
    w = init(SHAPE, dtype="float64")
    assert abs(w.mean()) < 0.05 * np.sqrt(variance)
    assert w.var() == pytest.approx(variance, rel=0.03)
    if bound is not None:
        assert np.abs(w).max() <= bound


def test_truncated_normal_bounds_and_mean():
    w = initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=2)((100, 100), dtype="float64")
    assert w.min() >= 0.0 and w.max() <= 2.0
    assert w.mean() == pytest.approx(1.0, abs=0.01)
    # A unit normal truncated at +-2 has stddev 0.8796...
    assert w.std() == pytest.approx(0.5 * 0.87962566103423978, rel=0.02)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (2, 3, 4)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    q = initializers.Orthogonal(gain=gain, seed=3)(shape, dtype="float64")
    assert q.shape == shape
    q = q.reshape(-1, shape[-1])
    # Orthonormal columns, or rows when the flattened matrix is wider than tall.
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-12)
    with pytest.raises(ValueError, match="at least two-dimensional"):
        initializers.Orthogonal()((4,))


def test_constant_identity_zeros_ones():
    np.testing.assert_array_equal(initializers.Constant(2.5)((2, 3)), np.full((2, 3), 2.5))
    np.testing.assert_array_equal(initializers.Identity(gain=3.0)((2, 3)), 3.0 * np.eye(2, 3))
    np.testing.assert_array_equal(initializers.Zeros()((3,)), np.zeros(3))
    np.testing.assert_array_equal(initializers.Ones()((3,), dtype="float64"), np.ones(3))
    with pytest.raises(ValueError, match="2D"):
        initializers.Identity()((2, 2, 2))


def test_initializer_argument_errors():
    with pytest.raises(ValueError, match="scale"):
        initializers.VarianceScaling(scale=0.0)
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(distribution="cauchy")
    with pytest.raises(ValueError, match="seed"):
        initializers.GlorotUniform(seed="7")
    with pytest.raises(ValueError, match="floating dtype"):
        initializers.GlorotUniform()((2, 2), dtype="int32")


# ---------------------------------------------------------------- regularizers

@pytest.mark.parametrize("reg, expected", [
    (regularizers.L1(0.1), 1.03000009059906),
    (regularizers.L2(0.1), 3.005000114440918),
    (regularizers.L1L2(0.1, 0.2), 7.0400004386901855),
    (regularizers.OrthogonalRegularizer(0.5), 0.3523178994655609),
    (regularizers.OrthogonalRegularizer(0.5, "columns"), 0.31573784351348877),
])
def test_penalty_values(reg, expected):
    # Keras 3.15.1 multiplies in float32; we do the last product in float64.
    value = reg(W)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-6)


def test_orthogonal_regularizer_zero_row():
    # Keras 3.15.1: a zero row/column is kept at zero by the 1/epsilon clip.
    z = np.array([[0.0, 1.0], [0.0, 0.0], [0.6, 0.8]], dtype="float32")
    rows, columns = (regularizers.OrthogonalRegularizer(0.5, m)(z) for m in ("rows", "columns"))
    assert rows == pytest.approx(0.13333334028720856, rel=1e-6)
    assert columns == pytest.approx(0.31234750151634216, rel=1e-6)


@pytest.mark.parametrize("reg", [
    regularizers.L1(0.3), regularizers.L2(0.3), regularizers.L1L2(0.2, 0.1),
    regularizers.OrthogonalRegularizer(0.7), regularizers.OrthogonalRegularizer(0.7, "columns"),
])
def test_gradient_matches_finite_differences(reg, rng):
    w = rng.standard_normal((4, 5))
    grad = reg.gradient(w)
    assert grad.shape == w.shape and grad.dtype == w.dtype
    numeric = numerical_gradient_at(reg, w)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_regularizer_argument_errors():
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-0.1)
    with pytest.raises(ValueError, match="l1"):
        regularizers.L1(float("nan"))
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="rank 2"):
        regularizers.OrthogonalRegularizer()(np.ones((2, 2, 2)))


def test_regularizer_aliases():
    assert isinstance(regularizers.l2(0.01), regularizers.L2)
    assert regularizers.l1_l2 is regularizers.L1L2
    assert regularizers.get("l2").get_config() == {"l2": 0.01}
    assert regularizers.get("l1").get_config() == {"l1": 0.01}
    # tf.keras 2's string 'l1_l2' (Keras 3 spells it 'l1l2', defaults 0, 0).
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.get("l1l2").get_config() == {"l1": 0.0, "l2": 0.0}


# ---------------------------------------------------------------- constraints

# Outputs of Keras 3.15.1 on W and Z (float32).
CONSTRAINT_CASES = [
    (constraints.MaxNorm(), [[1.2, 0.09999996, -0.8944272], [1.6, -0.19999991, 1.7888544]]),
    (constraints.MaxNorm(1.0, axis=1), [[0.94820935, 0.03160698, -0.31606978],
                                        [0.8935341, -0.044676706, 0.44676706]]),
    (constraints.UnitNorm(), [[0.6, 0.44721338, -0.4472136], [0.8, -0.89442676, 0.8944272]]),
    (constraints.UnitNorm(axis=1), [[0.9482093, 0.031606976, -0.31606978],
                                    [0.8935341, -0.044676706, 0.44676706]]),
    (constraints.MinMaxNorm(0.5, 1.0, 0.5), [[1.8000001, 0.16180332, -0.72360677],
                                             [2.4, -0.32360664, 1.4472135]]),
    (constraints.MinMaxNorm(1.0, 2.0, 1.0, axis=[0, 1]), [[1.0945333, 0.036484446, -0.36484444],
                                                           [1.4593778, -0.07296889, 0.7296889]]),
    (constraints.NonNeg(), [[3.0, 0.1, 0.0], [4.0, 0.0, 2.0]]),
]


@pytest.mark.parametrize("constraint, expected", CONSTRAINT_CASES)
def test_constraint_values(constraint, expected):
    out = constraint(W)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.array(expected, dtype="float32"), rtol=1e-6, atol=1e-7)
    # Keras 3.15.1: zero norms stay zero; a unit norm comes out as 1 / (1 + 1e-7).
    expected_z = Z if isinstance(constraint, constraints.NonNeg) else [[0.0, 0.9999999], [0.0, 0.0]]
    np.testing.assert_allclose(constraint(Z), expected_z, rtol=1e-7, atol=0)


# ---------------------------------------------------------------- get / serialize

MODULES = {
    "keras.initializers": (initializers, [initializers.Constant(1.5), initializers.Identity(2.0),
                                          initializers.VarianceScaling(2.0, "fan_avg",
                                                                       "uniform", 3),
                                          initializers.Orthogonal(1.1, 5)]
                           + [cls(seed=4) for cls in RANDOM_INITS[:3] + RANDOM_INITS[4:10]]
                           + [initializers.Zeros(), initializers.Ones()]),
    "keras.regularizers": (regularizers, [regularizers.L1(0.2), regularizers.L2(0.3),
                                          regularizers.L1L2(0.1, 0.2),
                                          regularizers.OrthogonalRegularizer(0.1, "columns")]),
    "keras.constraints": (constraints, [constraints.MaxNorm(3, 1), constraints.NonNeg(),
                                        constraints.UnitNorm(1),
                                        constraints.MinMaxNorm(0.1, 2.0, 0.5, [0, 1])]),
}
ROUND_TRIP = [(module, obj) for name, (module, objs) in MODULES.items() for obj in objs]


@pytest.mark.parametrize("module, obj", ROUND_TRIP, ids=lambda x: type(x).__name__)
def test_serialize_round_trip(module, obj):
    config = module.serialize(obj)
    assert config == {"module": module.MODULE, "class_name": type(obj).__name__,
                      "config": obj.get_config(), "registered_name": None}
    json.dumps(config)
    for form in (config, {"class_name": config["class_name"], "config": config["config"]}):
        again = module.get(form)
        assert type(again) is type(obj) and again.get_config() == obj.get_config()
    assert module.get(obj) is obj
    assert type(module.get(type(obj).__name__)) is type(obj)


def test_serialize_matches_keras():
    # serialize() output of Keras 3.15.1.
    assert initializers.serialize(initializers.GlorotUniform()) == {
        "module": "keras.initializers", "class_name": "GlorotUniform",
        "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    assert initializers.Orthogonal().get_config() == {"seed": None, "gain": 1.0}
    assert initializers.VarianceScaling().get_config() == {
        "seed": None, "scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
        "input_axes": None, "output_axes": None}
    assert initializers.RandomNormal().get_config() == {"seed": None, "mean": 0.0, "stddev": 0.05}
    assert initializers.RandomUniform().get_config() == {"seed": None, "minval": -0.05,
                                                         "maxval": 0.05}
    assert regularizers.serialize(regularizers.l2(0.01)) == {
        "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
        "registered_name": None}
    assert regularizers.OrthogonalRegularizer().get_config() == {"factor": 0.01, "mode": "rows"}
    assert constraints.serialize(constraints.MaxNorm()) == {
        "module": "keras.constraints", "class_name": "MaxNorm",
        "config": {"max_value": 2, "axis": 0}, "registered_name": None}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0,
                                                     "rate": 1.0, "axis": 0}


@pytest.mark.parametrize("name, cls", [
    ("glorot_uniform", initializers.GlorotUniform), ("glorot_normal", initializers.GlorotNormal),
    ("orthogonal", initializers.Orthogonal), ("zeros", initializers.Zeros),
    ("ones", initializers.Ones), ("he_normal", initializers.HeNormal),
    ("he_uniform", initializers.HeUniform), ("lecun_uniform", initializers.LecunUniform),
    ("lecun_normal", initializers.LecunNormal), ("random_normal", initializers.RandomNormal),
    ("random_uniform", initializers.RandomUniform),
    ("truncated_normal", initializers.TruncatedNormal),
    ("variance_scaling", initializers.VarianceScaling), ("identity", initializers.Identity),
    ("constant", initializers.Constant), ("uniform", initializers.RandomUniform),
])
def test_initializer_names(name, cls):
    assert type(initializers.get(name)) is cls


@pytest.mark.parametrize("module, name, cls", [
    (regularizers, "l1", regularizers.L1), (regularizers, "l2", regularizers.L2),
    (regularizers, "orthogonal_regularizer", regularizers.OrthogonalRegularizer),
    (constraints, "max_norm", constraints.MaxNorm), (constraints, "non_neg", constraints.NonNeg),
    (constraints, "unit_norm", constraints.UnitNorm),
    (constraints, "min_max_norm", constraints.MinMaxNorm),
])
def test_regularizer_and_constraint_names(module, name, cls):
    assert type(module.get(name)) is cls


def test_get_none_and_callables():
    assert regularizers.get(None) is None and constraints.get(None) is None

    def fn(x):
        return x

    for module in (initializers, regularizers, constraints):
        assert module.get(fn) is fn
    value = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(initializers.get(value)((2, 3)), value.astype("float32"))


@pytest.mark.parametrize("module, kind", [(initializers, "initializer"),
                                          (regularizers, "regularizer"),
                                          (constraints, "constraint")])
def test_unknown_names(module, kind):
    with pytest.raises(ValueError, match=f"{kind} identifier: 'glorot_unifrom'") as info:
        module.get("glorot_unifrom")
    assert "Expected one of:" in str(info.value)
    with pytest.raises(ValueError, match="Nope"):
        module.get({"class_name": "Nope", "config": {}})


def test_accepts_keras_written_lstm_config():
    config = json.loads(KERAS_CONFIG.read_text())
    kernel = initializers.get(config["kernel_initializer"])
    assert isinstance(kernel, initializers.GlorotUniform) and kernel.seed is None
    recurrent = initializers.get(config["recurrent_initializer"])
    assert isinstance(recurrent, initializers.Orthogonal) and recurrent.gain == 1.0
    assert isinstance(initializers.get(config["bias_initializer"]), initializers.Zeros)
    reg = regularizers.get(config["kernel_regularizer"])
    assert isinstance(reg, regularizers.L2) and reg.l2 == 0.01
    con = constraints.get(config["kernel_constraint"])
    assert isinstance(con, constraints.MaxNorm) and (con.max_value, con.axis) == (2, 0)
    assert regularizers.get(config["recurrent_regularizer"]) is None
    assert constraints.get(config["bias_constraint"]) is None
    for key, module in [("kernel_initializer", initializers), ("kernel_regularizer", regularizers),
                        ("kernel_constraint", constraints)]:
        assert module.serialize(module.get(config[key])) == config[key]
