# Element-wise activations and their derivatives, in C.
#
# Each function works on a contiguous block of n values so the loop the
# compiler sees has no branch on the activation inside it. `src` and `dst`
# may be the same pointer (in-place). Derivatives are taken with respect to
# the pre-activation `z`, so every activation (gelu and swish included) is
# handled the same way by the backward pass.
#
# Definitions follow Keras 3: hard_sigmoid(x) = relu6(x + 3) / 6, elu with
# alpha 1, selu with the usual constants, gelu exact (erf), swish = silu.
from cython cimport floating
from libc.math cimport exp, expm1, tanh, erf, fabs, sqrt
from libc.math cimport expf, expm1f, tanhf, erff, fabsf

cdef extern from "fastmath.h" nogil:
    # SIMD float32 sigmoid / tanh (and derivatives); see fastmath.h for accuracy.
    void cyl_sigmoid_f32(const float* src, float* dst, Py_ssize_t n)
    void cyl_tanh_f32(const float* src, float* dst, Py_ssize_t n)
    void cyl_sigmoid_grad_f32(const float* src, float* dst, Py_ssize_t n)
    void cyl_tanh_grad_f32(const float* src, float* dst, Py_ssize_t n)
    void cyl_lstm_gates_f32(const float* src, float* dst, const float* sel, Py_ssize_t n)
    void cyl_lstm_gates_grad_f32(const float* src, float* dst, const float* sel,
                                 Py_ssize_t n)

cdef enum:
    ACT_LINEAR = 0
    ACT_TANH = 1
    ACT_SIGMOID = 2
    ACT_HARD_SIGMOID = 3
    ACT_RELU = 4
    ACT_SOFTSIGN = 5
    ACT_ELU = 6
    ACT_SELU = 7
    ACT_GELU = 8
    ACT_SWISH = 9

cdef extern from *:
    """
    #define CYLSTM_SELU_ALPHA 1.6732632423543772848170429916717
    #define CYLSTM_SELU_SCALE 1.0507009873554804934193349852946
    #define CYLSTM_INV_SQRT2 0.70710678118654752440084436210485
    #define CYLSTM_INV_SQRT_2PI 0.39894228040143267793994605993438
    """
    const double SELU_ALPHA "CYLSTM_SELU_ALPHA"
    const double SELU_SCALE "CYLSTM_SELU_SCALE"
    const double INV_SQRT2 "CYLSTM_INV_SQRT2"
    const double INV_SQRT_2PI "CYLSTM_INV_SQRT_2PI"


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating _sigmoid(floating x) noexcept nogil:
    # Split by sign so exp never overflows.
    cdef floating e
    if x >= 0:
        return 1 / (1 + _exp(-x))
    e = _exp(x)
    return e / (1 + e)


cdef inline void activate(int code, const floating* src, floating* dst,
                          Py_ssize_t n) noexcept nogil:
    """dst[j] = act(src[j]) for j < n."""
    cdef Py_ssize_t j
    cdef floating v
    if floating is float:
        if code == ACT_TANH:
            cyl_tanh_f32(src, dst, n)
            return
        if code == ACT_SIGMOID:
            cyl_sigmoid_f32(src, dst, n)
            return
    if code == ACT_TANH:
        for j in range(n):
            dst[j] = _tanh(src[j])
    elif code == ACT_SIGMOID:
        for j in range(n):
            dst[j] = _sigmoid(src[j])
    elif code == ACT_HARD_SIGMOID:
        for j in range(n):
            v = (src[j] + 3) / 6
            dst[j] = 0 if v < 0 else (1 if v > 1 else v)
    elif code == ACT_RELU:
        for j in range(n):
            dst[j] = src[j] if src[j] > 0 else 0
    elif code == ACT_SOFTSIGN:
        for j in range(n):
            dst[j] = src[j] / (1 + fabs(src[j]))
    elif code == ACT_ELU:
        for j in range(n):
            dst[j] = src[j] if src[j] > 0 else _expm1(src[j])
    elif code == ACT_SELU:
        for j in range(n):
            v = src[j]
            dst[j] = <floating>SELU_SCALE * (v if v > 0 else <floating>SELU_ALPHA * _expm1(v))
    elif code == ACT_GELU:
        for j in range(n):
            v = src[j]
            dst[j] = <floating>0.5 * v * (1 + _erf(v * <floating>INV_SQRT2))
    elif code == ACT_SWISH:
        for j in range(n):
            dst[j] = src[j] * _sigmoid(src[j])
    else:  # ACT_LINEAR
        if dst != src:
            for j in range(n):
                dst[j] = src[j]


cdef inline void activate_grad(int code, const floating* z, floating* dst,
                               Py_ssize_t n) noexcept nogil:
    """dst[j] = act'(z[j]) for j < n."""
    cdef Py_ssize_t j
    cdef floating v, s
    if floating is float:
        if code == ACT_TANH:
            cyl_tanh_grad_f32(z, dst, n)
            return
        if code == ACT_SIGMOID:
            cyl_sigmoid_grad_f32(z, dst, n)
            return
    if code == ACT_TANH:
        # 4e / (1 + e)^2 with e = exp(-2|z|): no cancellation where tanh saturates.
        for j in range(n):
            v = fabs(z[j])
            if v < <floating>0.625:
                s = _tanh(z[j])
                dst[j] = 1 - s * s
            else:
                s = _exp(-2 * v)
                dst[j] = 4 * s / ((1 + s) * (1 + s))
    elif code == ACT_SIGMOID:
        for j in range(n):
            s = _exp(-fabs(z[j]))
            dst[j] = s / ((1 + s) * (1 + s))
    elif code == ACT_HARD_SIGMOID:
        for j in range(n):
            dst[j] = <floating>(1.0 / 6.0) if (z[j] > -3 and z[j] < 3) else 0
    elif code == ACT_RELU:
        for j in range(n):
            dst[j] = 1 if z[j] > 0 else 0
    elif code == ACT_SOFTSIGN:
        for j in range(n):
            v = 1 + fabs(z[j])
            dst[j] = 1 / (v * v)
    elif code == ACT_ELU:
        for j in range(n):
            dst[j] = 1 if z[j] > 0 else _exp(z[j])
    elif code == ACT_SELU:
        for j in range(n):
            dst[j] = <floating>SELU_SCALE * (1 if z[j] > 0 else <floating>SELU_ALPHA * _exp(z[j]))
    elif code == ACT_GELU:
        for j in range(n):
            v = z[j]
            dst[j] = (<floating>0.5 * (1 + _erf(v * <floating>INV_SQRT2))
                      + v * <floating>INV_SQRT_2PI * _exp(<floating>-0.5 * v * v))
    elif code == ACT_SWISH:
        for j in range(n):
            s = _sigmoid(z[j])
            dst[j] = s * (1 + z[j] * (1 - s))
    else:  # ACT_LINEAR
        for j in range(n):
            dst[j] = 1


# -- the four gates of a block of rows -------------------------------------
# A block is (nb, 4H) with columns i, f, g, o. The fused float32 path for
# sigmoid gates and a tanh candidate runs one flat loop over nb * 4H values
# (vectorised however small H is), steered by `sel` (1: sigmoid, 2: tanh).

cdef inline void fill_gate_selector(float* sel, int nb, int H) noexcept nogil:
    cdef int b, j
    for b in range(nb):
        for j in range(4 * H):
            sel[<Py_ssize_t>b * 4 * H + j] = 2 if 2 * H <= j < 3 * H else 1


cdef inline void activate_gates(int act, int rec_act, const floating* src, floating* dst,
                                const float* sel, int nb, int H) noexcept nogil:
    """dst = gate activations of the block src (dst may be src). `sel` is
    given only when act is tanh and rec_act sigmoid."""
    cdef int b
    cdef Py_ssize_t row
    cdef int G = 4 * H
    if floating is float:
        if sel != NULL:
            cyl_lstm_gates_f32(src, dst, sel, <Py_ssize_t>nb * G)
            return
    for b in range(nb):
        row = <Py_ssize_t>b * G
        activate(rec_act, src + row, dst + row, 2 * H)
        activate(act, src + row + 2 * H, dst + row + 2 * H, H)
        activate(rec_act, src + row + 3 * H, dst + row + 3 * H, H)


cdef inline void activate_gates_grad(int act, int rec_act, const floating* src,
                                     floating* dst, const float* sel, int nb,
                                     int H) noexcept nogil:
    """dst = derivatives of the gate activations w.r.t. the block src."""
    cdef int b
    cdef Py_ssize_t row
    cdef int G = 4 * H
    if floating is float:
        if sel != NULL:
            cyl_lstm_gates_grad_f32(src, dst, sel, <Py_ssize_t>nb * G)
            return
    for b in range(nb):
        row = <Py_ssize_t>b * G
        activate_grad(rec_act, src + row, dst + row, 2 * H)
        activate_grad(act, src + row + 2 * H, dst + row + 2 * H, H)
        activate_grad(rec_act, src + row + 3 * H, dst + row + 3 * H, H)
