"""The extended (ONNX) forward kernel against its NumPy twin.

``_ops.lstm_forward_ext`` runs ONNX's full cell -- activations with alpha/beta
for the gates, the candidate and the cell output, peepholes, clip,
input_forget -- on the compiled kernel when the activations are
``OnnxActivation`` objects, and on the NumPy twin (``reference.lstm_forward``)
when they are Python callables; both must agree in float32 and float64, for
every layout, direction and mask.
"""
import itertools

import numpy as np
import pytest

from cylstm import _ops
from cylstm._kernels import reference
from cylstm._kernels.onnx_activations import ONNX_ACTIVATION_NAMES, OnnxActivation as A

ACTS = [
    (A("Sigmoid"), A("Tanh"), A("Tanh")),
    (A("HardSigmoid", 0.3, 0.4), A("ScaledTanh", 0.7, 0.8), A("LeakyRelu", 0.1)),
    (A("Sigmoid"), A("Softplus"), A("Elu", 0.5)),
    (A("Sigmoid"), A("Affine", 0.5, 0.1), A("ThresholdedRelu", 0.2)),
    (A("Sigmoid"), A("Softsign"), A("Relu")),
]
EXTRAS = ["peephole", "clip", "input_forget", "all", "none"]


def _callables(acts):
    return [(lambda a: (lambda z: a(z)))(a) for a in acts]


@pytest.mark.parametrize("acts", ACTS, ids=lambda a: "-".join(x.name for x in a))
@pytest.mark.parametrize("extra", EXTRAS)
def test_compiled_equals_twin(dtype, acts, extra):
    rng = np.random.default_rng(7)
    T, B, I, H = 6, 5, 4, 7
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for time_major, backwards, masked in itertools.product((True, False), repeat=3):
        x = rng.standard_normal((T, B, I) if time_major else (B, T, I)).astype(dtype)
        W = rng.standard_normal((I, 4 * H)).astype(dtype)
        U = (rng.standard_normal((H, 4 * H)) * 0.5).astype(dtype)
        b = rng.standard_normal(4 * H).astype(dtype)
        h0 = rng.standard_normal((B, H)).astype(dtype)
        c0 = rng.standard_normal((B, H)).astype(dtype)
        mask = None
        if masked:
            lens = rng.integers(1, T + 1, B)
            mask = np.arange(T)[None] < lens[:, None]
            mask = mask.T if time_major else mask
        kw = {}
        if extra in ("peephole", "all"):
            kw["peephole"] = rng.standard_normal((3, H)).astype(dtype)
        if extra in ("clip", "all"):
            kw["clip"] = 0.8
        if extra in ("input_forget", "all"):
            kw["input_forget"] = True
        common = dict(mask=mask, go_backwards=backwards, time_major=time_major,
                      output_order="time", **kw)
        got = _ops.lstm_forward_ext(x, W, U, b, h0, c0, gate_activation=acts[0],
                                    candidate_activation=acts[1], cell_activation=acts[2],
                                    **common)
        f, g, h = _callables(acts)
        want = _ops.lstm_forward_ext(x, W, U, b, h0, c0, gate_activation=f,
                                     candidate_activation=g, cell_activation=h, **common)
        for a, w in zip(got[:4], want[:4]):
            assert a.dtype == np.dtype(dtype)
            np.testing.assert_allclose(a, w, **tol)


def test_default_onnx_cell_equals_the_common_kernel(dtype):
    """Sigmoid/Tanh/Tanh without extras on the extended kernel is the LSTM of
    the common path (bit-for-bit in float64 up to summation order)."""
    rng = np.random.default_rng(3)
    T, B, I, H = 5, 4, 3, 6
    x = rng.standard_normal((B, T, I)).astype(dtype)
    W = rng.standard_normal((I, 4 * H)).astype(dtype)
    U = rng.standard_normal((H, 4 * H)).astype(dtype)
    b = rng.standard_normal(4 * H).astype(dtype)
    z = np.zeros((B, H), dtype)
    ext = _ops.lstm_forward_ext(x, W, U, b, z, z, gate_activation=A("Sigmoid"),
                                candidate_activation=A("Tanh"), cell_activation=A("Tanh"))
    base = _ops.lstm_forward(x, W, U, b, z, z)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    for a, w in zip(ext[:4], base[:4]):
        np.testing.assert_allclose(a, w, **tol)


@pytest.mark.parametrize("name", ONNX_ACTIVATION_NAMES)
def test_activation_twin_matches_definition(name):
    z = np.linspace(-4, 4, 81)
    act = A(name, 0.3, 0.6)
    defs = {
        "Relu": np.maximum(z, 0), "Tanh": np.tanh(z), "Sigmoid": 1 / (1 + np.exp(-z)),
        "Affine": 0.3 * z + 0.6, "LeakyRelu": np.where(z >= 0, z, 0.3 * z),
        "ThresholdedRelu": np.where(z > 0.3, z, 0), "ScaledTanh": 0.3 * np.tanh(0.6 * z),
        "HardSigmoid": np.clip(0.3 * z + 0.6, 0, 1), "Elu": np.where(z >= 0, z, 0.3 * np.expm1(z)),
        "Softsign": z / (1 + np.abs(z)), "Softplus": np.log1p(np.exp(z)),
    }
    np.testing.assert_allclose(act(z), defs[name], rtol=1e-6, atol=1e-7)


def test_training_with_extras_is_refused():
    x = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="inference only"):
        reference.lstm_forward(x, np.zeros((3, 8)), np.zeros((2, 8)), np.zeros(8),
                               np.zeros((1, 2)), np.zeros((1, 2)), clip=1.0, training=True)
