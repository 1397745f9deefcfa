"""ONNX's RNN activations (with their ``alpha``/``beta``) as NumPy functions.

The list and definitions are the ONNX ``LSTM`` operator's. The defaults for a
missing alpha/beta (the operator's own where it has one -- LeakyRelu,
HardSigmoid, Elu -- else 0) and the order in which ``activation_alpha`` /
``activation_beta`` are consumed are onnxruntime's (checked against it by
tests/golden/make_onnx_operator_goldens.py):

    Relu        max(0, x)
    Tanh        tanh(x)
    Sigmoid     1 / (1 + e^-x)
    Affine      alpha * x + beta               (alpha 0, beta 0)
    LeakyRelu   x if x >= 0 else alpha * x     (alpha 0.01)
    ThresholdedRelu  x if x > alpha else 0     (alpha 0)
    ScaledTanh  alpha * tanh(beta * x)         (alpha 0, beta 0)
    HardSigmoid min(max(alpha * x + beta, 0), 1)   (alpha 0.2, beta 0.5)
    Elu         x if x >= 0 else alpha * (e^x - 1) (alpha 1)
    Softsign    x / (1 + |x|)
    Softplus    log(1 + e^x)

``OnnxActivation`` objects are what the extended forward kernel takes: its
``code`` matches the PACT_* enum of ``param_activations.pxd``; calling one
applies it to a NumPy array (the kernel's NumPy twin).
"""
import numpy as np

__all__ = ["OnnxActivation", "ONNX_ACTIVATION_NAMES", "parse_activations"]

# name (lower case) -> (C code, ONNX spelling, default alpha or None, default beta or None)
_TABLE = {
    "relu": (0, "Relu", None, None),
    "tanh": (1, "Tanh", None, None),
    "sigmoid": (2, "Sigmoid", None, None),
    "affine": (3, "Affine", 0.0, 0.0),
    "leakyrelu": (4, "LeakyRelu", 0.01, None),
    "thresholdedrelu": (5, "ThresholdedRelu", 0.0, None),
    "scaledtanh": (6, "ScaledTanh", 0.0, 0.0),
    "hardsigmoid": (7, "HardSigmoid", 0.2, 0.5),
    "elu": (8, "Elu", 1.0, None),
    "softsign": (9, "Softsign", None, None),
    "softplus": (10, "Softplus", None, None),
}

ONNX_ACTIVATION_NAMES = tuple(v[1] for v in _TABLE.values())


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class OnnxActivation:
    """One ONNX RNN activation with its alpha and beta (floats; 0 when unused)."""

    __slots__ = ("name", "code", "alpha", "beta")

    def __init__(self, name, alpha=None, beta=None):
        key = str(name).lower()
        if key not in _TABLE:
            raise ValueError(f"Unknown ONNX RNN activation {name!r}; ONNX lists "
                             f"{', '.join(ONNX_ACTIVATION_NAMES)}.")
        code, spelling, a0, b0 = _TABLE[key]
        self.name = spelling
        self.code = code
        # onnxruntime keeps alpha/beta as float32.
        self.alpha = float(np.float32(a0 if alpha is None else alpha)) if a0 is not None else 0.0
        self.beta = float(np.float32(b0 if beta is None else beta)) if b0 is not None else 0.0

    @property
    def takes_alpha(self):
        return _TABLE[self.name.lower()][2] is not None

    @property
    def takes_beta(self):
        return _TABLE[self.name.lower()][3] is not None

    def __eq__(self, other):
        return (isinstance(other, OnnxActivation) and other.code == self.code
                and other.alpha == self.alpha and other.beta == self.beta)

    def __hash__(self):
        return hash((self.code, self.alpha, self.beta))

    def __repr__(self):
        extra = ""
        if self.takes_alpha:
            extra += f", alpha={self.alpha!r}"
        if self.takes_beta:
            extra += f", beta={self.beta!r}"
        return f"OnnxActivation({self.name!r}{extra})"

    def __call__(self, z):
        z = np.asarray(z)
        a = z.dtype.type(self.alpha)
        b = z.dtype.type(self.beta)
        n = self.code
        if n == 0:
            return np.maximum(z, 0)
        if n == 1:
            return np.tanh(z)
        if n == 2:
            return _sigmoid(z)
        if n == 3:
            return a * z + b
        if n == 4:
            return np.where(z >= 0, z, a * z)
        if n == 5:
            return np.where(z > a, z, 0).astype(z.dtype)
        if n == 6:
            return a * np.tanh(b * z)
        if n == 7:
            return np.clip(a * z + b, 0, 1).astype(z.dtype)
        if n == 8:
            return np.where(z >= 0, z, a * np.expm1(np.minimum(z, 0)))
        if n == 9:
            return z / (1 + np.abs(z))
        return np.logaddexp(z.dtype.type(0), z)


def parse_activations(names, alphas, betas, num_directions):
    """[(f, g, h)] per direction from the node's ``activations``,
    ``activation_alpha`` and ``activation_beta`` (lists or None).

    Raises ValueError (message without the node; the caller adds it) for a
    wrong count, an unknown name, or alphas/betas left over.
    """
    if not names:
        names = ["Sigmoid", "Tanh", "Tanh"] * num_directions
    names = list(names)
    if len(names) != 3 * num_directions:
        raise ValueError(f"`activations` must list 3 per direction ({3 * num_directions} "
                         f"for {num_directions} direction(s)); got {names}.")
    alphas = list(alphas or [])
    betas = list(betas or [])
    ia = ib = 0
    acts = []
    for name in names:
        if not isinstance(name, str) or name.lower() not in _TABLE:
            raise ValueError(f"unknown activation {name!r} in `activations`; ONNX lists "
                             f"{', '.join(ONNX_ACTIVATION_NAMES)}.")
        _, _, a0, b0 = _TABLE[name.lower()]
        alpha = beta = None
        if a0 is not None and ia < len(alphas):
            alpha = alphas[ia]
            ia += 1
        if b0 is not None and ib < len(betas):
            beta = betas[ib]
            ib += 1
        acts.append(OnnxActivation(name, alpha, beta))
    return [tuple(acts[3 * d:3 * d + 3]) for d in range(num_directions)]
