/* Quantized products and the quantized LSTM time loop (inference only).
 *
 * Two weight formats, both for C (n x N) += A (n x K, float32) @ W (K x N):
 *
 * int8: W is symmetric int8 with one float32 scale per output column (per
 *   gate column), w = q_w * s_w. Each row of A (x_t or h_{t-1} of one batch
 *   row, one step) is quantized to asymmetric uint8: s_a = (max(a, 0) -
 *   min(a, 0)) / 255, zp = round(-min(a, 0) / s_a), q_a = clamp(round(a /
 *   s_a) + zp, 0, 255). The products are summed exactly in int32:
 *   acc = sum_k q_a q_w, then C += (float)(acc - zp * colsum(q_w)) * (s_a s_w).
 *   Per row rather than per tensor (torch's fbgemm and ORT quantize the whole
 *   activation tensor), so a row's result does not depend on the others.
 * bfloat16: W and the rows of A are rounded to bfloat16 (nearest even);
 *   their products are exact in float32 and summed in float32.
 *
 * Paths, chosen at run time from the CPU's features (tests force each):
 *   int8: 2 AVX-512 VNNI (vpdpbusd), 1 AVX2 (widen to int16, vpmaddwd: exact
 *   for all 8-bit values, where vpmaddubsw would saturate), 0 portable C.
 *   bf16: 2 AVX-512 BF16 (vdpbf16ps), 1 AVX2 + FMA (widen bf16 to float32), 0
 *   portable C.
 * The int32 sums are identical on every path (tests check them bit for bit
 * against NumPy); the bfloat16 float32 sums differ only in summation order.
 *
 * Layout: W is packed once into panels of 64 columns, zero-padded. int8:
 * Wp[panel][k/4][64][4] (the 4 consecutive k of a column are the 4 bytes
 * vpdpbusd multiplies into one int32 lane); bf16: Wp[panel][k/2][64][2] (the
 * pair vdpbf16ps multiplies into one float lane). K is padded to 4 (int8) or
 * 2 (bf16); the quantized rows of A are padded the same way with zeros.
 */
#ifndef CYLSTM_QUANTIZED_H
#define CYLSTM_QUANTIZED_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fastmath.h"   /* the SIMD-friendly sigmoid and tanh of the float kernels */
#include "simd_math.h"  /* exp(-x) of 16 lanes, shared with fused_step.h */
#include "workers.h"    /* the persistent threads that split a step's columns */

/* Same guard as recurrent.h: target attributes and __builtin_cpu_supports
 * exist on GCC/clang for x86-64 only; MSVC and aarch64 take the portable path. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_MSC_VER)
#define CYL_Q_HAVE_X86 1
#include <immintrin.h>
#else
#define CYL_Q_HAVE_X86 0
#endif

/* AVX512-BF16 intrinsics need GCC >= 10 or clang >= 9. */
#if CYL_Q_HAVE_X86 && ((defined(__clang__) && __clang_major__ >= 9) || \
                       (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define CYL_Q_HAVE_BF16_ISA 1
#else
#define CYL_Q_HAVE_BF16_ISA 0
#endif

#define CYL_Q_PANEL 64

/* Best level for a format on this CPU: kind 0 int8, 1 bf16. */
static int cyl_q_detect(int kind) {
#if CYL_Q_HAVE_X86
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (kind == 0 && avx512 && __builtin_cpu_supports("avx512vnni"))
        return 2;
#if CYL_Q_HAVE_BF16_ISA
    if (kind == 1 && avx512 && __builtin_cpu_supports("avx512bf16"))
        return 2;
#endif
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    (void)kind;
    return 0;
}

/* The level used for `kind`: the best one, capped by `force` when >= 0. */
static int cyl_q_level(int kind, int force) {
    static int best[2] = {-1, -1};
    if (best[kind] < 0)
        best[kind] = cyl_q_detect(kind);
    return (force >= 0 && force < best[kind]) ? force : best[kind];
}

static inline int cyl_q_round_up(int v, int m) { return (v + m - 1) / m * m; }

/* ---------------------------------------------------------------- int8 */

/* Packed size in bytes of a K x N int8 matrix. */
static long cyl_q8_packed_size(int K, int N) {
    return (long)cyl_q_round_up(N, CYL_Q_PANEL) * cyl_q_round_up(K, 4);
}

static void cyl_q8_pack(const int8_t *W, int K, int N, int8_t *Wp) {
    int Kp = cyl_q_round_up(K, 4), panels = (N + CYL_Q_PANEL - 1) / CYL_Q_PANEL;
    memset(Wp, 0, (size_t)cyl_q8_packed_size(K, N));
    for (int p = 0; p < panels; p++)
        for (int k = 0; k < K; k++)
            for (int jj = 0; jj < CYL_Q_PANEL; jj++) {
                int j = p * CYL_Q_PANEL + jj;
                if (j >= N)
                    break;
                Wp[(((long)p * (Kp / 4) + k / 4) * CYL_Q_PANEL + jj) * 4 + (k & 3)] =
                    W[(long)k * N + j];
            }
}

/* Round to nearest, ties to even, for |v| < 2^22 (all the quantizer rounds:
 * |a / s_a| <= 255): the same result as rint, without the libm call that
 * nearbyintf/rintf are on baseline x86-64 (no SSE4.1), 10-20 ns each. */
static inline float cyl_q_rint(float v) {
    return (v + 12582912.0f) - 12582912.0f;
}

/* Quantize the n rows of A (n x K, row stride lda) to uint8 rows of Kp bytes. */
static void cyl_q8_quantize_rows(int n, int K, const float *A, int lda, uint8_t *Q,
                                 float *scale, int32_t *zp) {
    int Kp = cyl_q_round_up(K, 4);
    for (int i = 0; i < n; i++) {
        const float *a = A + (long)i * lda;
        float lo = 0.0f, hi = 0.0f;
        for (int k = 0; k < K; k++) {
            lo = a[k] < lo ? a[k] : lo;
            hi = a[k] > hi ? a[k] : hi;
        }
        float s = (hi - lo) / 255.0f;
        if (!(s > 0.0f) || !isfinite(s))
            s = 1.0f;   /* an all-zero row (or a non-finite one: garbage in, garbage out) */
        float inv = 1.0f / s;
        float z = cyl_q_rint(-lo * inv);
        int32_t zi = z < 0.0f ? 0 : (z > 255.0f ? 255 : (int32_t)z);
        uint8_t *q = Q + (long)i * Kp;
        for (int k = 0; k < K; k++) {
            float v = cyl_q_rint(a[k] * inv) + (float)zi;
            q[k] = (uint8_t)(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
        }
        for (int k = K; k < Kp; k++)
            q[k] = 0;
        scale[i] = s;
        zp[i] = zi;
    }
}

#if CYL_Q_HAVE_X86
/* cyl_q8_quantize_rows with AVX-512: the same scale, zero point and codes
 * (roundscale rounds to nearest even as cyl_q_rint does; min and max of
 * finite values are exact). */
__attribute__((target("avx512f,avx512bw")))
static void cyl_q8_quantize_rows_avx512(int n, int K, const float *A, int lda, uint8_t *Q,
                                        float *scale, int32_t *zp) {
    int Kp = cyl_q_round_up(K, 4);
    for (int i = 0; i < n; i++) {
        const float *a = A + (long)i * lda;
        __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
        for (int k = 0; k < K; k += 16) {
            int w = K - k < 16 ? K - k : 16;
            __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << w) - 1u), a + k);
            vlo = _mm512_min_ps(vlo, v);
            vhi = _mm512_max_ps(vhi, v);
        }
        float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
        float s = (hi - lo) / 255.0f;
        if (!(s > 0.0f) || !isfinite(s))
            s = 1.0f;
        float inv = 1.0f / s;
        float z = cyl_q_rint(-lo * inv);
        int32_t zi = z < 0.0f ? 0 : (z > 255.0f ? 255 : (int32_t)z);
        __m512 vinv = _mm512_set1_ps(inv), vz = _mm512_set1_ps((float)zi);
        __m512 v0 = _mm512_setzero_ps(), v255 = _mm512_set1_ps(255.0f);
        uint8_t *q = Q + (long)i * Kp;
        for (int k = 0; k < Kp; k += 16) {
            int w = K - k < 16 ? (K - k > 0 ? K - k : 0) : 16;
            int wp = Kp - k < 16 ? Kp - k : 16;
            __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << w) - 1u), a + k);
            v = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, vz), v0), v255);
            __m512i iv = _mm512_maskz_cvtps_epi32((__mmask16)((1u << w) - 1u), v);
            _mm512_mask_storeu_epi8(q + k, (__mmask64)((1ull << wp) - 1ull),
                                    _mm512_castsi128_si512(_mm512_cvtepi32_epi8(iv)));
        }
        scale[i] = s;
        zp[i] = zi;
    }
}
#endif

static void cyl_q8_quantize(int level, int n, int K, const float *A, int lda, uint8_t *Q,
                            float *scale, int32_t *zp) {
#if CYL_Q_HAVE_X86
    if (level >= 2) {
        cyl_q8_quantize_rows_avx512(n, K, A, lda, Q, scale, zp);
        return;
    }
#endif
    (void)level;
    cyl_q8_quantize_rows(n, K, A, lda, Q, scale, zp);
}

/* acc (n x N, int32) = Q (n x Kp uint8) @ W (packed), portable C. */
static void cyl_q8_gemm_c(int p0, int p1, int n, int N, int K, const uint8_t *Q, const int8_t *Wp,
                          int32_t *acc) {
    int Kp = cyl_q_round_up(K, 4);
    for (int p = p0, j0 = p0 * CYL_Q_PANEL; p < p1; p++, j0 += CYL_Q_PANEL) {
        const int8_t *panel = Wp + (long)p * Kp * CYL_Q_PANEL;
        int w = N - j0 < CYL_Q_PANEL ? N - j0 : CYL_Q_PANEL;
        for (int i = 0; i < n; i++) {
            int32_t sums[CYL_Q_PANEL] = {0};
            const uint8_t *q = Q + (long)i * Kp;
            for (int k4 = 0; k4 < Kp / 4; k4++) {
                const int8_t *wk = panel + (long)k4 * CYL_Q_PANEL * 4;
                for (int jj = 0; jj < CYL_Q_PANEL; jj++)
                    for (int r = 0; r < 4; r++)
                        sums[jj] += (int32_t)q[4 * k4 + r] * (int32_t)wk[4 * jj + r];
            }
            memcpy(acc + (long)i * N + j0, sums, (size_t)w * sizeof(int32_t));
        }
    }
}

#if CYL_Q_HAVE_X86

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void cyl_q8_gemm_vnni(int p0, int p1, int n, int N, int K,
                             const uint8_t *Q, const int8_t *Wp,
                             int32_t *acc) {
    int Kp = cyl_q_round_up(K, 4), K4 = Kp / 4;
    for (int p = p0, j0 = p0 * CYL_Q_PANEL; p < p1; p++, j0 += CYL_Q_PANEL) {
        const int8_t *panel = Wp + (long)p * Kp * CYL_Q_PANEL;
        __mmask16 m[4];
        for (int q = 0; q < 4; q++) {
            int w = N - j0 - 16 * q;
            w = w < 0 ? 0 : (w > 16 ? 16 : w);
            m[q] = (__mmask16)((1u << w) - 1u);
        }
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            __m512i s[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    s[r][q] = _mm512_setzero_si512();
            for (int k4 = 0; k4 < K4; k4++) {
                const int8_t *wk = panel + (long)k4 * CYL_Q_PANEL * 4;
                __m512i w0 = _mm512_loadu_si512(wk), w1 = _mm512_loadu_si512(wk + 64);
                __m512i w2 = _mm512_loadu_si512(wk + 128), w3 = _mm512_loadu_si512(wk + 192);
                for (int r = 0; r < 4; r++) {
                    int32_t a4;
                    memcpy(&a4, Q + (long)(i + r) * Kp + 4 * k4, 4);
                    __m512i a = _mm512_set1_epi32(a4);
                    s[r][0] = _mm512_dpbusd_epi32(s[r][0], a, w0);
                    s[r][1] = _mm512_dpbusd_epi32(s[r][1], a, w1);
                    s[r][2] = _mm512_dpbusd_epi32(s[r][2], a, w2);
                    s[r][3] = _mm512_dpbusd_epi32(s[r][3], a, w3);
                }
            }
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    _mm512_mask_storeu_epi32(acc + (long)(i + r) * N + j0 + 16 * q, m[q],
                                             s[r][q]);
        }
        for (; i < n; i++) {
            /* One row: two accumulator sets (even and odd k4) for more
             * independent dependency chains. */
            __m512i s[2][4];
            for (int h = 0; h < 2; h++)
                for (int q = 0; q < 4; q++)
                    s[h][q] = _mm512_setzero_si512();
            const uint8_t *qrow = Q + (long)i * Kp;
            int k4 = 0;
            for (; k4 + 2 <= K4; k4 += 2) {
                for (int h = 0; h < 2; h++) {
                    const int8_t *wk = panel + (long)(k4 + h) * CYL_Q_PANEL * 4;
                    int32_t a4;
                    memcpy(&a4, qrow + 4 * (k4 + h), 4);
                    __m512i a = _mm512_set1_epi32(a4);
                    for (int q = 0; q < 4; q++)
                        s[h][q] = _mm512_dpbusd_epi32(s[h][q], a,
                                                      _mm512_loadu_si512(wk + 64 * q));
                }
            }
            for (; k4 < K4; k4++) {
                const int8_t *wk = panel + (long)k4 * CYL_Q_PANEL * 4;
                int32_t a4;
                memcpy(&a4, qrow + 4 * k4, 4);
                __m512i a = _mm512_set1_epi32(a4);
                for (int q = 0; q < 4; q++)
                    s[0][q] = _mm512_dpbusd_epi32(s[0][q], a, _mm512_loadu_si512(wk + 64 * q));
            }
            for (int q = 0; q < 4; q++)
                _mm512_mask_storeu_epi32(acc + (long)i * N + j0 + 16 * q, m[q],
                                         _mm512_add_epi32(s[0][q], s[1][q]));
        }
    }
}

/* AVX2: 16 bytes of a panel row (4 columns x 4 k) widen to int16 and
 * vpmaddwd with the row's 4 k values gives per column two int32 partial sums
 * (k0+k1, k2+k3); they are added pairwise after the k loop. */
__attribute__((target("avx2,fma")))
static inline __m256i cyl_q8_pairsum_avx2(__m256i lo, __m256i hi) {
    /* lo: columns 0-3 as (c0a c0b c1a c1b | c2a c2b c3a c3b), hi: columns 4-7.
     * hadd -> (c0 c1 c4 c5 | c2 c3 c6 c7); permute 64-bit lanes 0,2,1,3. */
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}

__attribute__((target("avx2,fma")))
static void cyl_q8_gemm_avx2(int p0, int p1, int n, int N, int K,
                             const uint8_t *Q, const int8_t *Wp,
                             int32_t *acc) {
    int Kp = cyl_q_round_up(K, 4), K4 = Kp / 4;
    for (int p = p0, j0 = p0 * CYL_Q_PANEL; p < p1; p++, j0 += CYL_Q_PANEL) {
        const int8_t *panel = Wp + (long)p * Kp * CYL_Q_PANEL;
        int w = N - j0 < CYL_Q_PANEL ? N - j0 : CYL_Q_PANEL;
        for (int c0 = 0; c0 < w; c0 += 16) {   /* 16 columns = 64 bytes per k4 */
            for (int i = 0; i < n; i++) {
                __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
                __m256i s2 = _mm256_setzero_si256(), s3 = _mm256_setzero_si256();
                const uint8_t *qrow = Q + (long)i * Kp;
                for (int k4 = 0; k4 < K4; k4++) {
                    const int8_t *wk = panel + ((long)k4 * CYL_Q_PANEL + c0) * 4;
                    int64_t a8 = (int64_t)qrow[4 * k4] | ((int64_t)qrow[4 * k4 + 1] << 16)
                                 | ((int64_t)qrow[4 * k4 + 2] << 32)
                                 | ((int64_t)qrow[4 * k4 + 3] << 48);
                    __m256i a = _mm256_set1_epi64x(a8);
                    __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wk));
                    __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wk + 16)));
                    __m256i w2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wk + 32)));
                    __m256i w3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wk + 48)));
                    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a, w0));
                    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a, w1));
                    s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(a, w2));
                    s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(a, w3));
                }
                int32_t out[16];
                _mm256_storeu_si256((__m256i *)out, cyl_q8_pairsum_avx2(s0, s1));
                _mm256_storeu_si256((__m256i *)(out + 8), cyl_q8_pairsum_avx2(s2, s3));
                int cols = w - c0 < 16 ? w - c0 : 16;
                memcpy(acc + (long)i * N + j0 + c0, out, (size_t)cols * sizeof(int32_t));
            }
        }
    }
}

#endif  /* CYL_Q_HAVE_X86 */

/* acc (n x N) = Q @ W over the column panels p0 .. p1-1 (64 columns each). */
static void cyl_q8_gemm_panels(int level, int p0, int p1, int n, int N, int K,
                               const uint8_t *Q, const int8_t *Wp, int32_t *acc) {
#if CYL_Q_HAVE_X86
    if (level >= 2) {
        cyl_q8_gemm_vnni(p0, p1, n, N, K, Q, Wp, acc);
        return;
    }
    if (level == 1) {
        cyl_q8_gemm_avx2(p0, p1, n, N, K, Q, Wp, acc);
        return;
    }
#endif
    (void)level;
    cyl_q8_gemm_c(p0, p1, n, N, K, Q, Wp, acc);
}

static inline int cyl_q_panels(int N) { return (N + CYL_Q_PANEL - 1) / CYL_Q_PANEL; }

static void cyl_q8_gemm(int level, int n, int N, int K, const uint8_t *Q, const int8_t *Wp,
                        int32_t *acc) {
    cyl_q8_gemm_panels(level, 0, cyl_q_panels(N), n, N, K, Q, Wp, acc);
}

/* Columns j0 .. j1-1 of C (n x N, stride ldc) += dequantized acc (built per
 * instruction set, as fastmath.h's loops, so that it vectorises beyond SSE2,
 * and picked from `level`: AVX-512 from 2, AVX2 + FMA from 1). */
CYL_ISA_BODY void cyl_q8_dequant_cols_body(int n, int N, int j0, int j1, const int32_t *acc,
                                           const float *sa, const int32_t *zp, const float *sw,
                                           const int32_t *colsum, float *C, int ldc) {
    for (int i = 0; i < n; i++) {
        const int32_t *ai = acc + (long)i * N;
        float *ci = C + (long)i * ldc;
        for (int j = j0; j < j1; j++)
            ci[j] += (float)(ai[j] - zp[i] * colsum[j]) * (sa[i] * sw[j]);
    }
}
CYL_ISA_STAMP(cyl_q8_dequant_cols,
              (int n, int N, int j0, int j1, const int32_t *acc, const float *sa,
               const int32_t *zp, const float *sw, const int32_t *colsum, float *C, int ldc),
              (n, N, j0, j1, acc, sa, zp, sw, colsum, C, ldc))

static void cyl_q8_dequant_cols(int level, int n, int N, int j0, int j1, const int32_t *acc,
                                const float *sa, const int32_t *zp, const float *sw,
                                const int32_t *colsum, float *C, int ldc) {
    CYL_ISA_CALL(level, cyl_q8_dequant_cols, (n, N, j0, j1, acc, sa, zp, sw, colsum, C, ldc));
}

static void cyl_q8_dequant_add(int level, int n, int N, const int32_t *acc, const float *sa,
                               const int32_t *zp, const float *sw, const int32_t *colsum,
                               float *C, int ldc) {
    cyl_q8_dequant_cols(level, n, N, 0, N, acc, sa, zp, sw, colsum, C, ldc);
}

/* ---------------------------------------------------------------- bfloat16 */

static inline uint16_t cyl_bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);   /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float cyl_f32_from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static long cyl_bf16_packed_size(int K, int N) {   /* in uint16 elements */
    return (long)cyl_q_round_up(N, CYL_Q_PANEL) * cyl_q_round_up(K, 2);
}

static void cyl_bf16_pack(const uint16_t *W, int K, int N, uint16_t *Wp) {
    int Kp = cyl_q_round_up(K, 2), panels = (N + CYL_Q_PANEL - 1) / CYL_Q_PANEL;
    memset(Wp, 0, (size_t)cyl_bf16_packed_size(K, N) * sizeof(uint16_t));
    for (int p = 0; p < panels; p++)
        for (int k = 0; k < K; k++)
            for (int jj = 0; jj < CYL_Q_PANEL; jj++) {
                int j = p * CYL_Q_PANEL + jj;
                if (j >= N)
                    break;
                Wp[(((long)p * (Kp / 2) + k / 2) * CYL_Q_PANEL + jj) * 2 + (k & 1)] =
                    W[(long)k * N + j];
            }
}

static void cyl_bf16_round_rows(int n, int K, const float *A, int lda, uint16_t *Q) {
    int Kp = cyl_q_round_up(K, 2);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < K; k++)
            Q[(long)i * Kp + k] = cyl_bf16_from_f32(A[(long)i * lda + k]);
        if (Kp > K)
            Q[(long)i * Kp + K] = 0;
    }
}

static void cyl_bf16_gemm_c(int p0, int p1, int n, int N, int K,
                            const uint16_t *Q, const uint16_t *Wp,
                            float *C, int ldc) {
    int Kp = cyl_q_round_up(K, 2);
    for (int p = p0, j0 = p0 * CYL_Q_PANEL; p < p1; p++, j0 += CYL_Q_PANEL) {
        const uint16_t *panel = Wp + (long)p * Kp * CYL_Q_PANEL;
        int w = N - j0 < CYL_Q_PANEL ? N - j0 : CYL_Q_PANEL;
        for (int i = 0; i < n; i++) {
            float sums[CYL_Q_PANEL] = {0};
            const uint16_t *q = Q + (long)i * Kp;
            for (int k2 = 0; k2 < Kp / 2; k2++) {
                const uint16_t *wk = panel + (long)k2 * CYL_Q_PANEL * 2;
                float a0 = cyl_f32_from_bf16(q[2 * k2]), a1 = cyl_f32_from_bf16(q[2 * k2 + 1]);
                for (int jj = 0; jj < CYL_Q_PANEL; jj++)
                    sums[jj] += a0 * cyl_f32_from_bf16(wk[2 * jj])
                                + a1 * cyl_f32_from_bf16(wk[2 * jj + 1]);
            }
            for (int jj = 0; jj < w; jj++)
                C[(long)i * ldc + j0 + jj] += sums[jj];
        }
    }
}

#if CYL_Q_HAVE_X86

#if CYL_Q_HAVE_BF16_ISA
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void cyl_bf16_gemm_avx512(int p0, int p1, int n, int N, int K, const uint16_t *Q,
                                 const uint16_t *Wp, float *C, int ldc) {
    int Kp = cyl_q_round_up(K, 2), K2 = Kp / 2;
    for (int p = p0, j0 = p0 * CYL_Q_PANEL; p < p1; p++, j0 += CYL_Q_PANEL) {
        const uint16_t *panel = Wp + (long)p * Kp * CYL_Q_PANEL;
        __mmask16 m[4];
        for (int q = 0; q < 4; q++) {
            int w = N - j0 - 16 * q;
            w = w < 0 ? 0 : (w > 16 ? 16 : w);
            m[q] = (__mmask16)((1u << w) - 1u);
        }
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            __m512 s[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    s[r][q] = _mm512_setzero_ps();
            for (int k2 = 0; k2 < K2; k2++) {
                const uint16_t *wk = panel + (long)k2 * CYL_Q_PANEL * 2;
                __m512bh w0 = (__m512bh)_mm512_loadu_si512(wk);
                __m512bh w1 = (__m512bh)_mm512_loadu_si512(wk + 32);
                __m512bh w2 = (__m512bh)_mm512_loadu_si512(wk + 64);
                __m512bh w3 = (__m512bh)_mm512_loadu_si512(wk + 96);
                for (int r = 0; r < 4; r++) {
                    int32_t a2;
                    memcpy(&a2, Q + (long)(i + r) * Kp + 2 * k2, 4);
                    __m512bh a = (__m512bh)_mm512_set1_epi32(a2);
                    s[r][0] = _mm512_dpbf16_ps(s[r][0], a, w0);
                    s[r][1] = _mm512_dpbf16_ps(s[r][1], a, w1);
                    s[r][2] = _mm512_dpbf16_ps(s[r][2], a, w2);
                    s[r][3] = _mm512_dpbf16_ps(s[r][3], a, w3);
                }
            }
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) {
                    float *c = C + (long)(i + r) * ldc + j0 + 16 * q;
                    _mm512_mask_storeu_ps(c, m[q], _mm512_add_ps(_mm512_maskz_loadu_ps(m[q], c),
                                                                 s[r][q]));
                }
        }
        for (; i < n; i++) {
            __m512 s[2][4];
            for (int h = 0; h < 2; h++)
                for (int q = 0; q < 4; q++)
                    s[h][q] = _mm512_setzero_ps();
            const uint16_t *qrow = Q + (long)i * Kp;
            int k2 = 0;
            for (; k2 + 2 <= K2; k2 += 2)
                for (int h = 0; h < 2; h++) {
                    const uint16_t *wk = panel + (long)(k2 + h) * CYL_Q_PANEL * 2;
                    int32_t a2;
                    memcpy(&a2, qrow + 2 * (k2 + h), 4);
                    __m512bh a = (__m512bh)_mm512_set1_epi32(a2);
                    for (int q = 0; q < 4; q++)
                        s[h][q] = _mm512_dpbf16_ps(s[h][q], a,
                                                   (__m512bh)_mm512_loadu_si512(wk + 32 * q));
                }
            for (; k2 < K2; k2++) {
                const uint16_t *wk = panel + (long)k2 * CYL_Q_PANEL * 2;
                int32_t a2;
                memcpy(&a2, qrow + 2 * k2, 4);
                __m512bh a = (__m512bh)_mm512_set1_epi32(a2);
                for (int q = 0; q < 4; q++)
                    s[0][q] = _mm512_dpbf16_ps(s[0][q], a,
                                               (__m512bh)_mm512_loadu_si512(wk + 32 * q));
            }
            for (int q = 0; q < 4; q++) {
                float *c = C + (long)i * ldc + j0 + 16 * q;
                __m512 t = _mm512_add_ps(s[0][q], s[1][q]);
                _mm512_mask_storeu_ps(c, m[q], _mm512_add_ps(_mm512_maskz_loadu_ps(m[q], c), t));
            }
        }
    }
}
#endif  /* CYL_Q_HAVE_BF16_ISA */

/* Widening fallback: a 32-bit lane holds the bf16 pair (k even low, k odd
 * high); the odd value is the lane with its low half cleared, the even one
 * the lane shifted left by 16. */
__attribute__((target("avx2,fma")))
static void cyl_bf16_gemm_avx2(int p0, int p1, int n, int N, int K,
                               const uint16_t *Q, const uint16_t *Wp,
                               float *C, int ldc) {
    int Kp = cyl_q_round_up(K, 2), K2 = Kp / 2;
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    for (int p = p0, j0 = p0 * CYL_Q_PANEL; p < p1; p++, j0 += CYL_Q_PANEL) {
        const uint16_t *panel = Wp + (long)p * Kp * CYL_Q_PANEL;
        int w = N - j0 < CYL_Q_PANEL ? N - j0 : CYL_Q_PANEL;
        for (int c0 = 0; c0 < w; c0 += 16) {
            for (int i = 0; i < n; i++) {
                __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
                const uint16_t *qrow = Q + (long)i * Kp;
                for (int k2 = 0; k2 < K2; k2++) {
                    const uint16_t *wk = panel + ((long)k2 * CYL_Q_PANEL + c0) * 2;
                    __m256 a0 = _mm256_set1_ps(cyl_f32_from_bf16(qrow[2 * k2]));
                    __m256 a1 = _mm256_set1_ps(cyl_f32_from_bf16(qrow[2 * k2 + 1]));
                    __m256i v0 = _mm256_loadu_si256((const __m256i *)wk);
                    __m256i v1 = _mm256_loadu_si256((const __m256i *)(wk + 16));
                    s0 = _mm256_fmadd_ps(a0, _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), s0);
                    s0 = _mm256_fmadd_ps(a1, _mm256_castsi256_ps(_mm256_and_si256(v0, hi_mask)), s0);
                    s1 = _mm256_fmadd_ps(a0, _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), s1);
                    s1 = _mm256_fmadd_ps(a1, _mm256_castsi256_ps(_mm256_and_si256(v1, hi_mask)), s1);
                }
                float out[16];
                _mm256_storeu_ps(out, s0);
                _mm256_storeu_ps(out + 8, s1);
                int cols = w - c0 < 16 ? w - c0 : 16;
                for (int jj = 0; jj < cols; jj++)
                    C[(long)i * ldc + j0 + c0 + jj] += out[jj];
            }
        }
    }
}

#endif  /* CYL_Q_HAVE_X86 */

/* C (n x N) += Q @ W over the column panels p0 .. p1-1. */
static void cyl_bf16_gemm_panels(int level, int p0, int p1, int n, int N, int K,
                                 const uint16_t *Q, const uint16_t *Wp, float *C, int ldc) {
#if CYL_Q_HAVE_X86
#if CYL_Q_HAVE_BF16_ISA
    if (level >= 2) {
        cyl_bf16_gemm_avx512(p0, p1, n, N, K, Q, Wp, C, ldc);
        return;
    }
#endif
    if (level >= 1) {
        cyl_bf16_gemm_avx2(p0, p1, n, N, K, Q, Wp, C, ldc);
        return;
    }
#endif
    (void)level;
    cyl_bf16_gemm_c(p0, p1, n, N, K, Q, Wp, C, ldc);
}

static void cyl_bf16_gemm(int level, int n, int N, int K, const uint16_t *Q,
                          const uint16_t *Wp, float *C, int ldc) {
    cyl_bf16_gemm_panels(level, 0, cyl_q_panels(N), n, N, K, Q, Wp, C, ldc);
}

/* ---------------------------------------------------------------- one matrix */

/* A quantized K x N matrix and what its product needs. */
typedef struct {
    int kind;                 /* 0 int8, 1 bf16 */
    int K, N;
    const void *packed;       /* int8_t or uint16_t, as packed above */
    const float *scale;       /* int8: N column scales */
    const int32_t *colsum;    /* int8: N column sums of q_w */
} cyl_qmat;

/* Scratch bytes cyl_qmat_apply needs for n rows. */
static long cyl_qmat_scratch(const cyl_qmat *m, int n) {
    if (m->kind == 0)
        return (long)n * cyl_q_round_up(m->K, 4) + 8L * n + 4L * n * m->N + 64;
    return 2L * n * cyl_q_round_up(m->K, 2) + 64;
}

/* C (n x N, stride ldc) += A (n x K, stride lda) @ m, quantized as above. */
static void cyl_qmat_apply(const cyl_qmat *m, int level, int n, const float *A, int lda,
                           float *C, int ldc, void *scratch) {
    if (n <= 0)
        return;
    if (m->kind == 0) {
        int Kp = cyl_q_round_up(m->K, 4);
        int32_t *acc = (int32_t *)scratch;
        float *sa = (float *)(acc + (long)n * m->N);
        int32_t *zp = (int32_t *)(sa + n);
        uint8_t *q = (uint8_t *)(zp + n);
        (void)Kp;
        cyl_q8_quantize(level, n, m->K, A, lda, q, sa, zp);
        cyl_q8_gemm(level, n, m->N, m->K, q, (const int8_t *)m->packed, acc);
        cyl_q8_dequant_add(level, n, m->N, acc, sa, zp, m->scale, m->colsum, C, ldc);
    } else {
        uint16_t *q = (uint16_t *)scratch;
        cyl_bf16_round_rows(n, m->K, A, lda, q);
        cyl_bf16_gemm(level, n, m->N, m->K, q, (const uint16_t *)m->packed, C, ldc);
    }
}

/* ---------------------------------------------------------------- the LSTM loop */

#if CYL_Q_HAVE_X86
/* exp(x) for x <= 0 of 16 lanes (simd_math.h's reduction and polynomial,
 * 2^n by scalef); a NaN gives exp(-87.3) (max returns its second operand). */
__attribute__((target("avx512f")))
static inline __m512 cyl_q_exp_neg16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    __m512 n;
    __m512 y = cyl_exp_reduced16(x, &n);
    return _mm512_scalef_ps(y, n);
}

__attribute__((target("avx512f")))
static inline __m512 cyl_q_sigmoid16(__m512 x) {
    __m512 ax = _mm512_abs_ps(x);
    __m512 e = cyl_q_exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), ax));
    __m512 s = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(s, neg, e, s);
}

__attribute__((target("avx512f")))
static inline __m512 cyl_q_tanh16(__m512 x) {
    __m512 ax = _mm512_abs_ps(x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    __m512 e = cyl_q_exp_neg16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), ax));
    __m512 big = _mm512_div_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e),
                               _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    /* the sign of x onto big */
    big = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(big),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    __mmask16 lo = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(lo, big, small);
}

/* cyl_q_cell_units with AVX-512: all four gates of 16 units and their cell
 * update in registers, one pass over z (lanes are independent: the same
 * bits whatever the split of units). */
__attribute__((target("avx512f")))
static void cyl_q_cell_avx512(int B, int H, const float *z, const float *c, float *cn,
                              float *hn, int u0, int u1) {
    int G = 4 * H;
    for (int b = 0; b < B; b++) {
        const float *zb = z + (long)b * G, *cb = c + (long)b * H;
        float *nb = cn + (long)b * H, *hb = hn + (long)b * H;
        for (int j = u0; j < u1; j += 16) {
            int w = u1 - j < 16 ? u1 - j : 16;
            __mmask16 m = (__mmask16)((1u << w) - 1u);
            __m512 i = cyl_q_sigmoid16(_mm512_maskz_loadu_ps(m, zb + j));
            __m512 f = cyl_q_sigmoid16(_mm512_maskz_loadu_ps(m, zb + H + j));
            __m512 g = cyl_q_tanh16(_mm512_maskz_loadu_ps(m, zb + 2 * H + j));
            __m512 o = cyl_q_sigmoid16(_mm512_maskz_loadu_ps(m, zb + 3 * H + j));
            __m512 cnew = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, cb + j),
                                          _mm512_mul_ps(i, g));
            _mm512_mask_storeu_ps(nb + j, m, cnew);
            _mm512_mask_storeu_ps(hb + j, m, _mm512_mul_ps(o, cyl_q_tanh16(cnew)));
        }
    }
}
#endif

/* The cell of B rows: gates z (B x 4H: i, f, g, o blocks of H per row) are
 * activated in place in one call over all rows (sel, B x 4H: 1 for a sigmoid
 * column, 2 for tanh, as fastmath.h's cyl_lstm_gates_f32 takes it), then
 * c -> cn and hn = o * tanh(cn). Few calls per step: a loop per row and gate
 * cost more than the arithmetic at small H. */
static void cyl_q_cell(int level, int B, int H, float *z, const float *sel, const float *c,
                       float *cn, float *hn) {
    int G = 4 * H;
#if CYL_Q_HAVE_X86
    if (level >= 2) {   /* the AVX-512 paths (VNNI, BF16) imply AVX-512F */
        cyl_q_cell_avx512(B, H, z, c, cn, hn, 0, H);
        return;
    }
#endif
    cyl_lstm_gates_f32_at(level, z, z, sel, (Py_ssize_t)B * G);
    for (int b = 0; b < B; b++) {
        const float *zb = z + (long)b * G, *cb = c + (long)b * H;
        float *nb = cn + (long)b * H;
        for (int j = 0; j < H; j++)
            nb[j] = zb[H + j] * cb[j] + zb[j] * zb[2 * H + j];
    }
    cyl_tanh_f32_at(level, cn, hn, (Py_ssize_t)B * H);
    for (int b = 0; b < B; b++) {
        const float *ob = z + (long)b * G + 3 * H;
        float *hb = hn + (long)b * H;
        for (int j = 0; j < H; j++)
            hb[j] *= ob[j];
    }
}

/* The quantized LSTM over T steps of B rows, gates i, f, g, o (Keras's and
 * torch's order), tanh and sigmoid.
 *   xproj (T*B x 4H): on entry bias + x_t @ W for every step (the caller
 *     computes it with one cyl_qmat_apply over all T*B rows: per-row
 *     quantization makes that equal to doing it step by step).
 *   h (B x P), c (B x H): the initial states, overwritten by the final ones.
 *   R: the projection (H x P) or NULL (then P == H).
 *   mask (T x B) or NULL: a masked row carries h and c and outputs the
 *     previous output (zeros before its first unmasked step), as Keras.
 *   seq (T x B x P) or NULL: the outputs of every step.
 *   prev (B x P): the last outputs (zero them on entry); work: B*(4H + 2H + P)
 *   floats (the gate selector, h before projection, the new h and c); scratch: cyl_qmat_scratch for B rows of U and of R.
 */
static void cyl_q_lstm(const cyl_qmat *U, const cyl_qmat *R, int level, int T, int B,
                       int H, int P, float *xproj, const uint8_t *mask, float *h, float *c,
                       float *seq, float *prev, float *work, void *scratch) {
    int G = 4 * H;
    float *sel = work, *hfull = work + (long)B * G, *hnew = hfull + (long)B * H;
    float *cnew = hnew + (long)B * P;
    for (int j = 0; j < G; j++)
        sel[j] = (j >= 2 * H && j < 3 * H) ? 2.0f : 1.0f;
    for (int b = 1; b < B; b++)
        memcpy(sel + (long)b * G, sel, (size_t)G * sizeof(float));
    for (int t = 0; t < T; t++) {
        float *z = xproj + (long)t * B * G;
        cyl_qmat_apply(U, level, B, h, P, z, G, scratch);
        cyl_q_cell(level, B, H, z, sel, c, cnew, hfull);
        if (R != NULL) {
            memset(hnew, 0, (size_t)B * P * sizeof(float));
            cyl_qmat_apply(R, level, B, hfull, H, hnew, P, scratch);
        } else {
            memcpy(hnew, hfull, (size_t)B * H * sizeof(float));
        }
        if (mask == NULL) {   /* every row moves on: whole blocks */
            memcpy(h, hnew, (size_t)B * P * sizeof(float));
            memcpy(c, cnew, (size_t)B * H * sizeof(float));
            memcpy(prev, hnew, (size_t)B * P * sizeof(float));
            if (seq != NULL)
                memcpy(seq + (long)t * B * P, hnew, (size_t)B * P * sizeof(float));
            continue;
        }
        for (int b = 0; b < B; b++) {
            int keep = mask[(long)t * B + b];
            if (keep) {
                memcpy(h + (long)b * P, hnew + (long)b * P, (size_t)P * sizeof(float));
                memcpy(c + (long)b * H, cnew + (long)b * H, (size_t)H * sizeof(float));
                memcpy(prev + (long)b * P, hnew + (long)b * P, (size_t)P * sizeof(float));
            }
            if (seq != NULL)
                memcpy(seq + ((long)t * B + b) * P, prev + (long)b * P, (size_t)P * sizeof(float));
        }
    }
}


/* ---------------------------------------------------------------- the column split */

/* The LSTM of cyl_q_lstm (no projection) with every product's column panels
 * and every cell's units split between `parts` threads: the calling thread
 * and workers of the persistent pool (workers.h). For few rows (B = 1 cannot
 * be split by rows): each thread streams only its share of the weights.
 *
 * Pool steps (each starts when the previous one is complete): per time step
 * t, 2t the recurrent product into xproj's step t (panels split; each
 * thread quantizes h_{t-1} itself into its own scratch, P values, rather
 * than wait on a barrier for one copy) and 2t + 1 the cell (units split, in
 * whole 16-unit vectors). The input product (panels split) runs in step 0
 * before the recurrent one: a thread's columns of xproj are its own to add
 * into. Its quantized rows of x: each thread quantizes them itself where x
 * is small (CYL_Q_SPLIT_OWN_X values: one-step serving then has one barrier
 * per call), otherwise one extra pool step first quantizes them (rows
 * split) into shared scratch. The products
 * are those of cyl_q_lstm bit for bit (the same int32 sums, the same float32
 * bfloat16 sums: a column's sum does not depend on the panels around it); the
 * gate math is the same function on shorter runs of units, whose vectorised
 * loops may round the last bit of an element differently where H is not a
 * multiple of 16 (a run's tail). */
typedef struct {
    const cyl_qmat *W, *U;
    int level, T, B, H, parts;
    const float *x;            /* T*B x F */
    float *xproj;              /* T*B x 4H, bias on entry */
    const uint8_t *mask;       /* T x B or NULL */
    float *h, *c, *seq, *prev, *sel, *hnew, *cnew;
    unsigned char *shared;     /* the quantized x rows and the int32 sums */
    unsigned char *own;        /* parts x own_bytes: each thread's quantized h (and x) */
    long own_bytes;
    int pre;                   /* 1: a first pool step quantizes x into shared */
} cyl_q_split_job;

/* Up to this many values of x (T*B*F) each thread quantizes x itself. */
#ifndef CYL_Q_SPLIT_OWN_X
#define CYL_Q_SPLIT_OWN_X 8192L
#endif

static inline int cyl_q_split_pre(const cyl_qmat *W, int T, int B) {
    return (long)T * B * W->K > CYL_Q_SPLIT_OWN_X;
}

/* Bytes of quantized rows (with scales and zero points for int8) of n x K. */
static inline long cyl_q_rows_bytes(int kind, int n, int K) {
    return kind == 0 ? (long)n * (cyl_q_round_up(K, 4) + 8) : 2L * n * cyl_q_round_up(K, 2);
}

/* Bytes of cyl_q_split_job's shared and own scratch. */
static long cyl_q_split_shared(const cyl_qmat *W, const cyl_qmat *U, int T, int B) {
    long rows = (long)T * B;
    return 4L * (rows + B) * U->N + cyl_q_rows_bytes(W->kind, (int)rows, W->K) + 64;
}

static long cyl_q_split_own(const cyl_qmat *W, const cyl_qmat *U, int T, int B) {
    long b = cyl_q_rows_bytes(U->kind, B, U->K);
    if (!cyl_q_split_pre(W, T, B))
        b += cyl_q_rows_bytes(W->kind, T * B, W->K);
    return (b + 63) / 64 * 64;
}

static inline void cyl_q_share(int total, int part, int parts, int grain, int *a, int *b) {
    int units = (total + grain - 1) / grain;
    *a = (int)((long)units * part / parts) * grain;
    *b = (int)((long)units * (part + 1) / parts) * grain;
    if (*b > total)
        *b = total;
}

/* The cell of rows 0..B-1 for units u0 .. u1-1 (cyl_q_cell's math, per gate block). */
static void cyl_q_cell_units(int level, int B, int H, float *z, const float *sel,
                             const float *c, float *cn, float *hn, int u0, int u1) {
    int G = 4 * H, n = u1 - u0;
#if CYL_Q_HAVE_X86
    if (level >= 2) {
        cyl_q_cell_avx512(B, H, z, c, cn, hn, u0, u1);
        return;
    }
#endif
    for (int b = 0; b < B; b++) {
        float *zb = z + (long)b * G;
        for (int g = 0; g < 4; g++)   /* the same function as cyl_q_cell: the same bits */
            cyl_lstm_gates_f32_at(level, zb + g * H + u0, zb + g * H + u0, sel + g * H + u0, n);
        const float *cb = c + (long)b * H;
        float *nb = cn + (long)b * H, *hb = hn + (long)b * H;
        for (int j = u0; j < u1; j++)
            nb[j] = zb[H + j] * cb[j] + zb[j] * zb[2 * H + j];
        cyl_tanh_f32_at(level, nb + u0, hb + u0, n);
        for (int j = u0; j < u1; j++)
            hb[j] *= zb[3 * H + j];
    }
}

/* Quantize n rows of A (n x K) into q: int8 codes, then n scales and n zero
 * points (the layout cyl_q_rows_bytes counts); bf16 bit patterns. */
static void cyl_q_rows_into(int level, int kind, int n, int K, const float *A, void *q) {
    if (kind == 0) {
        uint8_t *codes = (uint8_t *)q;
        float *sa = (float *)(codes + (long)n * cyl_q_round_up(K, 4));
        cyl_q8_quantize(level, n, K, A, K, codes, sa, (int32_t *)(sa + n));
    } else {
        cyl_bf16_round_rows(n, K, A, K, (uint16_t *)q);
    }
}

/* C (n x N) += the panels p0 .. p1-1 of rows q (cyl_q_rows_into) @ m; acc:
 * n x N int32 scratch (int8). */
static void cyl_q_panels_apply(const cyl_qmat *m, int level, int p0, int p1, int n,
                               const void *q, int32_t *acc, float *C) {
    int N = m->N;
    if (m->kind == 0) {
        const uint8_t *codes = (const uint8_t *)q;
        const float *sa = (const float *)(codes + (long)n * cyl_q_round_up(m->K, 4));
        int j0 = p0 * CYL_Q_PANEL, j1 = p1 * CYL_Q_PANEL < N ? p1 * CYL_Q_PANEL : N;
        cyl_q8_gemm_panels(level, p0, p1, n, N, m->K, codes, (const int8_t *)m->packed, acc);
        cyl_q8_dequant_cols(level, n, N, j0, j1, acc, sa, (const int32_t *)(sa + n), m->scale,
                            m->colsum, C, N);
    } else {
        cyl_bf16_gemm_panels(level, p0, p1, n, N, m->K, (const uint16_t *)q,
                             (const uint16_t *)m->packed, C, N);
    }
}

static void cyl_q_split_chunk(void *arg, int step, int part, int parts) {
    const cyl_q_split_job *s = (const cyl_q_split_job *)arg;
    const cyl_qmat *W = s->W, *U = s->U;
    int B = s->B, H = s->H, G = 4 * H, rows = s->T * s->B;
    /* shared: the int32 sums of the input product (rows x G) and of a step
     * (B x G), then x's quantized rows when s->pre; own: h's quantized rows,
     * then x's when not s->pre */
    int32_t *acc = (int32_t *)s->shared;
    int32_t *acc_t = acc + (long)rows * G;
    void *qx_shared = acc_t + (long)B * G;
    unsigned char *own = s->own + (long)part * s->own_bytes;
    void *qh = own;
    void *qx = s->pre ? qx_shared : (void *)(own + cyl_q_rows_bytes(U->kind, B, U->K));
    if (s->pre) {
        if (step == 0) {   /* quantize x's rows, rows split, into shared */
            int r0, r1;
            cyl_q_share(rows, part, parts, 1, &r0, &r1);
            if (r1 <= r0)
                return;
            /* whole rows of the shared layout: codes of rows r0.., their scales, zps */
            if (W->kind == 0) {
                int Kp = cyl_q_round_up(W->K, 4);
                uint8_t *codes = (uint8_t *)qx_shared;
                float *sa = (float *)(codes + (long)rows * Kp);
                int32_t *zp = (int32_t *)(sa + rows);
                cyl_q8_quantize(s->level, r1 - r0, W->K, s->x + (long)r0 * W->K, W->K,
                                codes + (long)r0 * Kp, sa + r0, zp + r0);
            } else {
                cyl_bf16_round_rows(r1 - r0, W->K, s->x + (long)r0 * W->K, W->K,
                                    (uint16_t *)qx_shared + (long)r0 * cyl_q_round_up(W->K, 2));
            }
            return;
        }
        step -= 1;
    }
    int p0, p1;
    cyl_q_share(cyl_q_panels(G), part, parts, 1, &p0, &p1);
    int t = step / 2;
    float *z = s->xproj + (long)t * B * G;
    if ((step & 1) == 0) {   /* (the input product, then) the recurrent product of step t */
        if (p1 <= p0)
            return;
        if (step == 0) {
            if (!s->pre)
                cyl_q_rows_into(s->level, W->kind, rows, W->K, s->x, qx);
            cyl_q_panels_apply(W, s->level, p0, p1, rows, qx, acc, s->xproj);
        }
        cyl_q_rows_into(s->level, U->kind, B, U->K, s->h, qh);
        cyl_q_panels_apply(U, s->level, p0, p1, B, qh, acc_t, z);
        return;
    }
    /* the cell of step t for this thread's units */
    int u0, u1;
    cyl_q_share(H, part, parts, 16, &u0, &u1);
    if (u1 <= u0)
        return;
    size_t nb = (size_t)(u1 - u0) * sizeof(float);
    cyl_q_cell_units(s->level, B, H, z, s->sel, s->c, s->cnew, s->hnew, u0, u1);
    for (int b = 0; b < B; b++) {
        long o = (long)b * H + u0;
        if (s->mask == NULL || s->mask[(long)t * B + b]) {
            memcpy(s->h + o, s->hnew + o, nb);
            memcpy(s->c + o, s->cnew + o, nb);
            memcpy(s->prev + o, s->hnew + o, nb);
        }
        if (s->seq != NULL)
            memcpy(s->seq + ((long)t * B + b) * H + u0, s->prev + o, nb);
    }
}

/* Threads a split over `threads` can use for this shape (1: do not split). */
static int cyl_q_split_parts(const cyl_qmat *U, int threads) {
    int H = U->N / 4, panels = cyl_q_panels(U->N), vecs = (H + 15) / 16;
    int parts = threads < panels ? threads : panels;
    return parts < vecs ? parts : vecs;
}

/* The whole time loop (input product included) split over `parts` threads
 * (cyl_q_split_parts; xproj holds the bias rows on entry, prev zeros; work
 * 4H + 2*B*H floats). Returns the threads used: 1 when the pool was busy or not
 * to be had, and then the caller runs its unsplit path (nothing was done). */
static int cyl_q_lstm_split(const cyl_qmat *W, const cyl_qmat *U, int level, int T, int B,
                            int parts, const float *x, float *xproj, const uint8_t *mask,
                            float *h, float *c, float *seq, float *prev, float *work,
                            void *shared, void *own) {
    int H = U->N / 4, G = 4 * H;
    cyl_q_split_job job = {W, U, level, T, B, H, parts, x, xproj, mask, h, c, seq, prev,
                           work, work + G, work + G + (long)B * H, (unsigned char *)shared,
                           (unsigned char *)own, cyl_q_split_own(W, U, T, B),
                           cyl_q_split_pre(W, T, B)};
    if (parts < 2 || T < 1 || B < 1)
        return 1;
    for (int j = 0; j < G; j++)
        work[j] = (j >= 2 * H && j < 3 * H) ? 2.0f : 1.0f;
    if (cyl_pool_dispatch(cyl_q_split_chunk, &job, job.pre + 2 * T, parts, parts - 1) != 0)
        return 1;
    return parts;
}

#endif  /* CYLSTM_QUANTIZED_H */
