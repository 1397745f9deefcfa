/* The recurrent product of one LSTM step, C (n x N) += A (n x K) @ B (K x N),
 * for the few rows of a time loop, with B packed once per call.
 *
 * Why it exists: scipy's sgemm re-packs B (the recurrent kernel U, K x N) on
 * every call, i.e. on every timestep. With few rows per step that packing
 * costs as much as the arithmetic: at batch 16, 128 -> 512 columns, `perf`
 * showed sgemm_itcopy at 25 % of the forward pass (sgemm_kernel 40 %).
 * Here B is packed once per sequence into panels of NR columns
 * (Bp[panel][k][NR], zero-padded), so each k reads NR contiguous values and
 * a panel stays in cache while every row of A passes over it; reading B in
 * place instead thrashed L1 when its row stride was a multiple of 4 KiB.
 * Register block: 4 rows x 64 columns (AVX-512F) or 4 rows x 16 (AVX2+FMA),
 * chosen at run time from the CPU's features. Other CPUs, and calls with
 * many rows, use scipy's gemm (the caller decides). Tested against NumPy on
 * many shapes, both instruction sets, in tests/kernels/test_recurrent.py.
 * float32 only.
 */
#ifndef CYLSTM_RECURRENT_H
#define CYLSTM_RECURRENT_H

#include <string.h>

/* CYL_HAVE_X86_KERNELS, the level (cyl_isa_level) and cyl_recurrent_isa. */
#include "isa.h"

/* Columns per packed panel for the level in use, 0 when there is no kernel. */
static int cyl_rec_panel_width(void) {
    int level = cyl_isa_level >= 0 ? cyl_isa_level : cyl_recurrent_isa(-1);
    return level == 2 ? 64 : (level == 1 ? 16 : 0);
}

/* Bp[p][k][0:nr] = B[k, p*nr : p*nr + nr], zero past column N. */
static void cyl_rec_pack(const float *B, int K, int N, int nr, float *Bp) {
    int panels = (N + nr - 1) / nr;
    for (int p = 0; p < panels; p++) {
        int j = p * nr;
        int w = N - j < nr ? N - j : nr;
        for (int k = 0; k < K; k++) {
            float *dst = Bp + ((long)p * K + k) * nr;
            memcpy(dst, B + (long)k * N + j, (size_t)w * sizeof(float));
            if (w < nr)
                memset(dst + w, 0, (size_t)(nr - w) * sizeof(float));
        }
    }
}

#if CYL_HAVE_X86_KERNELS

__attribute__((target("avx512f")))
static inline __mmask16 cyl_mask16(int N, int j) {
    int w = N - j;
    w = w < 0 ? 0 : (w > 16 ? 16 : w);
    return (__mmask16)((1u << w) - 1u);
}

__attribute__((target("avx512f")))
static void cyl_rec_avx512(int n, int N, int K, const float *A, int lda,
                           const float *Bp, float *C, int ldc) {
    for (int j = 0, p = 0; j < N; j += 64, p++) {
        const float *panel = Bp + (long)p * K * 64;
        __mmask16 m[4];
        for (int q = 0; q < 4; q++)
            m[q] = cyl_mask16(N, j + 16 * q);
        int b = 0;
        for (; b + 4 <= n; b += 4) {
            __m512 acc[4][4];
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    acc[r][q] = _mm512_maskz_loadu_ps(m[q], C + (long)(b + r) * ldc + j + 16 * q);
            for (int k = 0; k < K; k++) {
                const float *bk = panel + (long)k * 64;
                __m512 u0 = _mm512_loadu_ps(bk), u1 = _mm512_loadu_ps(bk + 16);
                __m512 u2 = _mm512_loadu_ps(bk + 32), u3 = _mm512_loadu_ps(bk + 48);
                for (int r = 0; r < 4; r++) {
                    __m512 a = _mm512_set1_ps(A[(long)(b + r) * lda + k]);
                    acc[r][0] = _mm512_fmadd_ps(a, u0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(a, u1, acc[r][1]);
                    acc[r][2] = _mm512_fmadd_ps(a, u2, acc[r][2]);
                    acc[r][3] = _mm512_fmadd_ps(a, u3, acc[r][3]);
                }
            }
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++)
                    _mm512_mask_storeu_ps(C + (long)(b + r) * ldc + j + 16 * q, m[q], acc[r][q]);
        }
        for (; b < n; b++) {
            __m512 acc[4];
            for (int q = 0; q < 4; q++)
                acc[q] = _mm512_maskz_loadu_ps(m[q], C + (long)b * ldc + j + 16 * q);
            for (int k = 0; k < K; k++) {
                const float *bk = panel + (long)k * 64;
                __m512 a = _mm512_set1_ps(A[(long)b * lda + k]);
                for (int q = 0; q < 4; q++)
                    acc[q] = _mm512_fmadd_ps(a, _mm512_loadu_ps(bk + 16 * q), acc[q]);
            }
            for (int q = 0; q < 4; q++)
                _mm512_mask_storeu_ps(C + (long)b * ldc + j + 16 * q, m[q], acc[q]);
        }
    }
}

__attribute__((target("avx2,fma")))
static inline __m256i cyl_mask8(int N, int j) {
    int w = N - j;
    w = w < 0 ? 0 : (w > 8 ? 8 : w);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma")))
static void cyl_rec_avx2(int n, int N, int K, const float *A, int lda,
                         const float *Bp, float *C, int ldc) {
    for (int j = 0, p = 0; j < N; j += 16, p++) {
        const float *panel = Bp + (long)p * K * 16;
        __m256i m0 = cyl_mask8(N, j), m1 = cyl_mask8(N, j + 8);
        int b = 0;
        for (; b + 4 <= n; b += 4) {
            __m256 acc[4][2];
            for (int r = 0; r < 4; r++) {
                acc[r][0] = _mm256_maskload_ps(C + (long)(b + r) * ldc + j, m0);
                acc[r][1] = _mm256_maskload_ps(C + (long)(b + r) * ldc + j + 8, m1);
            }
            for (int k = 0; k < K; k++) {
                const float *bk = panel + (long)k * 16;
                __m256 u0 = _mm256_loadu_ps(bk), u1 = _mm256_loadu_ps(bk + 8);
                for (int r = 0; r < 4; r++) {
                    __m256 a = _mm256_broadcast_ss(A + (long)(b + r) * lda + k);
                    acc[r][0] = _mm256_fmadd_ps(a, u0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, u1, acc[r][1]);
                }
            }
            for (int r = 0; r < 4; r++) {
                _mm256_maskstore_ps(C + (long)(b + r) * ldc + j, m0, acc[r][0]);
                _mm256_maskstore_ps(C + (long)(b + r) * ldc + j + 8, m1, acc[r][1]);
            }
        }
        for (; b < n; b++) {
            __m256 a0 = _mm256_maskload_ps(C + (long)b * ldc + j, m0);
            __m256 a1 = _mm256_maskload_ps(C + (long)b * ldc + j + 8, m1);
            for (int k = 0; k < K; k++) {
                const float *bk = panel + (long)k * 16;
                __m256 a = _mm256_broadcast_ss(A + (long)b * lda + k);
                a0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(bk), a0);
                a1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(bk + 8), a1);
            }
            _mm256_maskstore_ps(C + (long)b * ldc + j, m0, a0);
            _mm256_maskstore_ps(C + (long)b * ldc + j + 8, m1, a1);
        }
    }
}

#endif

/* C += A @ B from Bp, packed by cyl_rec_pack in panels of nr columns. */
static void cyl_rec_packed_f32(int nr, int n, int N, int K, const float *A, int lda,
                               const float *Bp, float *C, int ldc) {
#if CYL_HAVE_X86_KERNELS
    if (nr == 64)
        cyl_rec_avx512(n, N, K, A, lda, Bp, C, ldc);
    else if (nr == 16)
        cyl_rec_avx2(n, N, K, A, lda, Bp, C, ldc);
#else
    (void)nr; (void)n; (void)N; (void)K; (void)A; (void)lda; (void)Bp; (void)C; (void)ldc;
#endif
}

#endif
