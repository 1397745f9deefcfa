/* SIMD math shared by the kernels' gate activations: the fused step
 * (fused_step.h, cyl_exp_neg16 and cyl_exp_neg8) and the quantized kernels'
 * cell update (quantized.h, cyl_q_exp_neg16).
 *
 * Each caller clamps its argument and applies the 2^n scale itself: they
 * differ in what a NaN and an argument below the clamp give (see there), so
 * only the range reduction and the polynomial, where they agree bit for
 * bit, live here.
 */
#ifndef CYLSTM_SIMD_MATH_H
#define CYLSTM_SIMD_MATH_H

/* The same guard as recurrent.h and quantized.h: target attributes exist on
 * GCC/clang for x86-64 only; MSVC and aarch64 have no caller of these. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_MSC_VER)
#include <immintrin.h>

/* exp(x) = y 2^n for x in [-87.3, 0] on 16 lanes: n = round(x / ln 2),
 * r = x - n ln 2 (ln 2 in two parts, Cody-Waite), y = 1 + r + r^2 p(r) with
 * Cephes's expf polynomial; n comes back through n_out, integer-valued. */
__attribute__((target("avx512f")))
static inline __attribute__((always_inline)) __m512 cyl_exp_reduced16(__m512 x, __m512 *n_out) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 z = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    *n_out = n;
    return _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0f));
}

/* The same on 8 lanes (AVX2 + FMA): the fused step's AVX2 kernel
 * (fused_step.h, cyl_exp_neg8). */
__attribute__((target("avx2,fma")))
static inline __attribute__((always_inline)) __m256 cyl_exp_reduced8(__m256 x, __m256 *n_out) {
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    *n_out = n;
    return _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
}

#endif /* x86-64 GCC/clang */
#endif /* CYLSTM_SIMD_MATH_H */
