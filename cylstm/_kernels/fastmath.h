/* Vectorisable float32 sigmoid and tanh for the LSTM gate loops.
 *
 * Why: libm's expf/tanhf are scalar calls, and the gate math at B >= 16,
 * H >= 128 was 1.6-2.4x slower with them than NumPy's SIMD ufuncs. These
 * loops have no calls, and their branches are selects between values that
 * are computed on both sides, so the compiler turns them into SIMD code.
 * GCC only does so with -fno-trapping-math (setup.py passes it; it changes
 * no result, only lets the compiler evaluate both sides of a select:
 * without it GCC reports "control flow in loop" and emits scalar code).
 * Each loop is built for AVX-512, AVX2 + FMA and the baseline and picked
 * per call from the level the other kernels use (isa.h), so a run-time cap
 * (CYLSTM_ISA) reaches these loops too.
 *
 * Accuracy (float32): exp is the Cephes polynomial (about 1 ulp); sigmoid is
 * 1 / (1 + exp(-|x|)) with the negative side e / (1 + e); tanh uses the
 * Cephes odd polynomial for |x| < 0.625 (no cancellation near 0) and
 * (1 - e) / (1 + e), e = exp(-2|x|), above. Measured against float64 over a
 * dense grid: under 3 ulp, tested in tests/kernels/test_activations_c.py.
 * Results below float32's smallest normal number (2^-126) flush to zero.
 */
#ifndef CYLSTM_FASTMATH_H
#define CYLSTM_FASTMATH_H

#include <stdint.h>
#include <string.h>

#include "isa.h"

/* exp(x) for x <= 0 (the gate math only needs that side); 0 below -87.3. */
static inline float cyl_exp_neg(float x0) {
    float x = x0 < -87.3f ? -87.3f : x0;
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest integer */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * z + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x0 < -87.3f ? 0.0f : y * scale;
}

static inline float cyl_sigmoid1(float x) {
    float ax = x < 0 ? -x : x;
    float e = cyl_exp_neg(-ax);
    float s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

static inline float cyl_tanh1(float x) {
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                     - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                   - 3.33332819422e-1f) * z * x + x;
    float e = cyl_exp_neg(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}

CYL_ISA_BODY void cyl_sigmoid_f32_body(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++)
        dst[j] = cyl_sigmoid1(src[j]);
}
CYL_ISA_STAMP(cyl_sigmoid_f32, (const float *src, float *dst, Py_ssize_t n), (src, dst, n))

static void cyl_sigmoid_f32(const float *src, float *dst, Py_ssize_t n) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_sigmoid_f32, (src, dst, n));
}

CYL_ISA_BODY void cyl_tanh_f32_body(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++)
        dst[j] = cyl_tanh1(src[j]);
}
CYL_ISA_STAMP(cyl_tanh_f32, (const float *src, float *dst, Py_ssize_t n), (src, dst, n))

/* At a given level (the quantized kernels pass theirs, capped per call). */
static void cyl_tanh_f32_at(int level, const float *src, float *dst, Py_ssize_t n) {
    CYL_ISA_CALL(level, cyl_tanh_f32, (src, dst, n));
}

static void cyl_tanh_f32(const float *src, float *dst, Py_ssize_t n) {
    cyl_tanh_f32_at(cyl_isa_now(), src, dst, n);
}

/* act'(z) from z, for the backward pass, written without the cancellation of
 * s (1 - s) and 1 - t^2 where the activation saturates. */
CYL_ISA_BODY void cyl_sigmoid_grad_f32_body(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        float ax = src[j] < 0 ? -src[j] : src[j];
        float e = cyl_exp_neg(-ax);
        float d = 1.0f + e;
        dst[j] = e / (d * d);
    }
}
CYL_ISA_STAMP(cyl_sigmoid_grad_f32, (const float *src, float *dst, Py_ssize_t n), (src, dst, n))

static void cyl_sigmoid_grad_f32(const float *src, float *dst, Py_ssize_t n) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_sigmoid_grad_f32, (src, dst, n));
}

CYL_ISA_BODY void cyl_tanh_grad_f32_body(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        float x = src[j];
        float ax = x < 0 ? -x : x;
        float t = cyl_tanh1(x);
        float e = cyl_exp_neg(-2.0f * ax);
        float d = 1.0f + e;
        dst[j] = ax < 0.625f ? 1.0f - t * t : 4.0f * e / (d * d);
    }
}
CYL_ISA_STAMP(cyl_tanh_grad_f32, (const float *src, float *dst, Py_ssize_t n), (src, dst, n))

static void cyl_tanh_grad_f32(const float *src, float *dst, Py_ssize_t n) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_tanh_grad_f32, (src, dst, n));
}

/* The four LSTM gates of a block of rows in one flat loop (vectorised over
 * rows x units, so small H wastes no lanes): sel[j] is 1 for a sigmoid
 * column (i, f, o) and 2 for a tanh column (g). Both share one exp:
 * e = exp(-sel |x|), sigmoid = 1/(1+e) (or e/(1+e)), tanh = (1-e)/(1+e)
 * (or the odd polynomial near 0), as cyl_sigmoid1 / cyl_tanh1 compute. */
CYL_ISA_BODY void cyl_lstm_gates_f32_body(const float *src, float *dst, const float *sel,
                                          Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        float x = src[j];
        float s = sel[j];
        float ax = x < 0 ? -x : x;
        float e = cyl_exp_neg(-s * ax);
        float p = 1.0f / (1.0f + e);
        float sig = x >= 0 ? p : e * p;
        float z = x * x;
        float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                         - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                       - 3.33332819422e-1f) * z * x + x;
        float big = (1.0f - e) * p;
        big = x < 0 ? -big : big;
        float th = ax < 0.625f ? small : big;
        dst[j] = s > 1.5f ? th : sig;
    }
}
CYL_ISA_STAMP(cyl_lstm_gates_f32,
              (const float *src, float *dst, const float *sel, Py_ssize_t n),
              (src, dst, sel, n))

/* At a given level (the quantized kernels pass theirs, capped per call). */
static void cyl_lstm_gates_f32_at(int level, const float *src, float *dst, const float *sel,
                                  Py_ssize_t n) {
    CYL_ISA_CALL(level, cyl_lstm_gates_f32, (src, dst, sel, n));
}

static void cyl_lstm_gates_f32(const float *src, float *dst, const float *sel, Py_ssize_t n) {
    cyl_lstm_gates_f32_at(cyl_isa_now(), src, dst, sel, n);
}

/* Their derivatives w.r.t. the pre-activation, same selector. */
CYL_ISA_BODY void cyl_lstm_gates_grad_f32_body(const float *src, float *dst,
                                               const float *sel, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        float x = src[j];
        float s = sel[j];
        float ax = x < 0 ? -x : x;
        float e = cyl_exp_neg(-s * ax);
        float d = 1.0f + e;
        float g = s * s * e / (d * d);   /* sigmoid': e/d^2; tanh': 4e/d^2 */
        float z = x * x;
        float t = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                     - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                   - 3.33332819422e-1f) * z * x + x;
        float small = 1.0f - t * t;
        dst[j] = (s > 1.5f && ax < 0.625f) ? small : g;
    }
}
CYL_ISA_STAMP(cyl_lstm_gates_grad_f32,
              (const float *src, float *dst, const float *sel, Py_ssize_t n),
              (src, dst, sel, n))

static void cyl_lstm_gates_grad_f32(const float *src, float *dst, const float *sel,
                                    Py_ssize_t n) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_lstm_gates_grad_f32, (src, dst, sel, n));
}

#endif
