/* Vectorisable float32 sigmoid and tanh for the LSTM gate loops.
 *
 * Why: libm's expf/tanhf are scalar calls, and the gate math at B >= 16,
 * H >= 128 was 1.6-2.4x slower with them than NumPy's SIMD ufuncs. These
 * loops have no calls, and their branches are selects between values that
 * are computed on both sides, so the compiler turns them into SIMD code.
 * GCC only does so with -fno-trapping-math (setup.py passes it; it changes
 * no result, only lets the compiler evaluate both sides of a select:
 * without it GCC reports "control flow in loop" and emits scalar code).
 * On x86-64 Linux with GCC and glibc each loop is built for AVX-512, AVX2
 * and the baseline, and the CPU picks one at load time (CYL_CLONES below).
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

/* target_clones builds each loop for AVX-512, AVX2 and the baseline and
 * picks one at load time through an ifunc, which only GCC on x86-64 Linux
 * with glibc is known to provide: musl has no ifunc, MSVC and macOS have
 * neither, clang's support is younger, and aarch64 gains little (NEON is its
 * baseline, and GCC only clones for it from version 14 on). Everywhere
 * else the loops are built once for the compiler's baseline target (SSE2 on
 * x86-64, NEON on aarch64) and still vectorise. __GLIBC__ comes from
 * <features.h>, which musl also has (without defining it). */
#if defined(__linux__)
#include <features.h>
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && defined(__GLIBC__)
#define CYL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CYL_CLONES
#endif

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

CYL_CLONES
static void cyl_sigmoid_f32(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++)
        dst[j] = cyl_sigmoid1(src[j]);
}

CYL_CLONES
static void cyl_tanh_f32(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++)
        dst[j] = cyl_tanh1(src[j]);
}

/* act'(z) from z, for the backward pass, written without the cancellation of
 * s (1 - s) and 1 - t^2 where the activation saturates. */
CYL_CLONES
static void cyl_sigmoid_grad_f32(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        float ax = src[j] < 0 ? -src[j] : src[j];
        float e = cyl_exp_neg(-ax);
        float d = 1.0f + e;
        dst[j] = e / (d * d);
    }
}

CYL_CLONES
static void cyl_tanh_grad_f32(const float *src, float *dst, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        float x = src[j];
        float ax = x < 0 ? -x : x;
        float t = cyl_tanh1(x);
        float e = cyl_exp_neg(-2.0f * ax);
        float d = 1.0f + e;
        dst[j] = ax < 0.625f ? 1.0f - t * t : 4.0f * e / (d * d);
    }
}

/* The four LSTM gates of a block of rows in one flat loop (vectorised over
 * rows x units, so small H wastes no lanes): sel[j] is 1 for a sigmoid
 * column (i, f, o) and 2 for a tanh column (g). Both share one exp:
 * e = exp(-sel |x|), sigmoid = 1/(1+e) (or e/(1+e)), tanh = (1-e)/(1+e)
 * (or the odd polynomial near 0), as cyl_sigmoid1 / cyl_tanh1 compute. */
CYL_CLONES
static void cyl_lstm_gates_f32(const float *src, float *dst, const float *sel,
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

/* Their derivatives w.r.t. the pre-activation, same selector. */
CYL_CLONES
static void cyl_lstm_gates_grad_f32(const float *src, float *dst, const float *sel,
                                    Py_ssize_t n) {
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

#endif
