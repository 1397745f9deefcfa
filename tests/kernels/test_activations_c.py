"""The C activations (SIMD float32 sigmoid/tanh included) against float64 NumPy."""
import numpy as np
import pytest

from cylstm import activations as A
from cylstm._kernels.lstm_forward import apply_activation
from cylstm._kernels.reference import ACTIVATIONS


def _grid():
    dense = np.linspace(-40, 40, 400_001)
    tiny = np.geomspace(1e-30, 30, 20_001)
    return np.concatenate([dense, tiny, -tiny, [0.0, -0.0, 0.625, -0.625]])


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("derivative", [False, True])
def test_simd_float32_within_a_few_ulp(name, derivative):
    z64 = _grid().astype(np.float32).astype(np.float64)
    exact = ACTIVATIONS[name][1 if derivative else 0](z64)
    got = apply_activation(A.KERNEL_CODES[name], z64.astype(np.float32), derivative)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    err = np.abs(got - exact)
    # 3 ulp of the value (4 for the derivative, one more rounded operation);
    # results below float32's smallest normal may flush to 0
    bound = 4 if derivative else 3
    assert np.all(err <= bound * ulp + 1.2e-38), float(np.max(err / ulp))


@pytest.mark.parametrize("name", sorted(A.KERNEL_CODES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("derivative", [False, True])
def test_every_activation_matches_numpy(name, dtype, derivative):
    z = np.linspace(-8, 8, 1601).astype(dtype)
    z = z[np.abs(np.abs(z) - 3) > 1e-3]  # hard_sigmoid's kinks
    expected = ACTIVATIONS[name][1 if derivative else 0](z.astype(np.float64))
    got = apply_activation(A.KERNEL_CODES[name], z, derivative)
    tol = dict(rtol=3e-6, atol=3e-7) if dtype == "float32" else dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got, expected, **tol)


def test_nan_and_inf_propagate():
    z = np.array([np.nan, np.inf, -np.inf], np.float32)
    s = apply_activation(A.KERNEL_CODES["sigmoid"], z)
    t = apply_activation(A.KERNEL_CODES["tanh"], z)
    assert np.isnan(s[0]) and s[1] == 1 and s[2] == 0
    assert np.isnan(t[0]) and t[1] == 1 and t[2] == -1
