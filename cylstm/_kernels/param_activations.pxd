# ONNX's RNN activations with their alpha/beta, in C, for the extended
# (ONNX) forward kernel. Codes match OnnxActivation.code in
# onnx_activations.py, which also gives the definitions and defaults. Tanh,
# sigmoid, relu and softsign reuse activations.pxd, so float32 tanh and
# sigmoid take the same SIMD code as the common path.
from cython cimport floating
from libc.math cimport exp, expm1, log1p, fabs

from .activations cimport activate, ACT_TANH, ACT_SIGMOID, ACT_RELU, ACT_SOFTSIGN

cdef enum:
    PACT_RELU = 0
    PACT_TANH = 1
    PACT_SIGMOID = 2
    PACT_AFFINE = 3
    PACT_LEAKY_RELU = 4
    PACT_THRESHOLDED_RELU = 5
    PACT_SCALED_TANH = 6
    PACT_HARD_SIGMOID = 7
    PACT_ELU = 8
    PACT_SOFTSIGN = 9
    PACT_SOFTPLUS = 10


cdef inline void activate_param(int code, floating alpha, floating beta,
                                const floating* src, floating* dst,
                                Py_ssize_t n) noexcept nogil:
    """dst[j] = act(src[j]) for j < n (src may be dst)."""
    cdef Py_ssize_t j
    cdef floating v
    if code == PACT_TANH:
        activate(ACT_TANH, src, dst, n)
    elif code == PACT_SIGMOID:
        activate(ACT_SIGMOID, src, dst, n)
    elif code == PACT_RELU:
        activate(ACT_RELU, src, dst, n)
    elif code == PACT_SOFTSIGN:
        activate(ACT_SOFTSIGN, src, dst, n)
    elif code == PACT_AFFINE:
        for j in range(n):
            dst[j] = alpha * src[j] + beta
    elif code == PACT_LEAKY_RELU:
        for j in range(n):
            v = src[j]
            dst[j] = v if v >= 0 else alpha * v
    elif code == PACT_THRESHOLDED_RELU:
        for j in range(n):
            v = src[j]
            dst[j] = v if v > alpha else 0
    elif code == PACT_SCALED_TANH:
        for j in range(n):
            dst[j] = beta * src[j]
        activate(ACT_TANH, dst, dst, n)
        for j in range(n):
            dst[j] = alpha * dst[j]
    elif code == PACT_HARD_SIGMOID:
        for j in range(n):
            v = alpha * src[j] + beta
            dst[j] = 0 if v < 0 else (1 if v > 1 else v)
    elif code == PACT_ELU:
        for j in range(n):
            v = src[j]
            dst[j] = v if v >= 0 else alpha * <floating>expm1(v)
    elif code == PACT_SOFTPLUS:
        # log(1 + e^v) = max(v, 0) + log1p(e^-|v|): no overflow for large v.
        for j in range(n):
            v = src[j]
            dst[j] = (v if v > 0 else 0) + <floating>log1p(exp(-fabs(v)))
