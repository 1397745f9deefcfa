/* The fused LSTM step for few batch rows (float32, sigmoid gates, tanh):
 * z = b + x_t @ W + h_{t-1} @ U, the gate activations, c_t and
 * h_t = o * tanh(c_t) in one pass over a range of units, and a time loop of
 * such steps whose units are split between persistent threads (workers.h).
 *
 * Why: with one or two rows a step is a matrix-vector product whose cost is
 * reading W and U (2 MiB at 256 -> 1024 columns), and the unfused path adds
 * six passes over the 4H gate values (bias copy, two gemv, activations, cell,
 * tanh, product) plus a BLAS call's fixed cost each. Here a thread owns a
 * range of units and all four gates of them: it accumulates its columns of
 * the four gate blocks, then finishes those units while their gate values are
 * still in L1, so a split of the units between threads needs no exchange
 * but h_t (one barrier per step), and each core streams only its share of
 * the weights (and keeps it in its L2 across steps).
 *
 * W (I x 4H) and U (H x 4H) are read in place, row by row: the layers update
 * them in place, so a packed copy could go stale, and a row-major walk of k
 * (four rows at a time) reads each weight row as contiguous runs, which the
 * hardware prefetchers follow; the products accumulate in a row's z (4H
 * values, L1) and the epilogue reads the four gates of each unit from there.
 * AVX-512F (16 units a vector) and AVX2 + FMA (8), chosen at run time with
 * cyl_recurrent_isa (recurrent.h); other CPUs use the unfused path. The
 * epilogue is the scalar formulas of fastmath.h, vectorised by the compiler
 * inside each ISA's function, so the accuracy is theirs: the gates as
 * cyl_lstm_gates_f32 computes them, tanh(c) as cyl_lstm_cell_f32 does.
 * Tested against the NumPy reference in tests/kernels/test_step_fused.py.
 */
#ifndef CYLSTM_STEP_FUSED_H
#define CYLSTM_STEP_FUSED_H

#include "fastmath.h"
#include "recurrent.h"
#include "workers.h"

/* A time loop of T steps over n rows. Row b of step t reads
 * x + t * x_step + b * x_row and writes h_t to h + t' * h_step + b * h_row,
 * where t' = t, or t % 2 when h_ring (the caller keeps no sequence; h holds
 * two steps). h_{-1} is h0 (row stride h0_row); c (n x H) holds c_{-1} and
 * becomes c_T, updated in place. z is scratch of cyl_fs_scratch(n, H) values. */
typedef struct {
    int rows, inputs, units, steps, h_ring, level;
    const float *x;
    long x_row, x_step;
    const float *W, *U, *bias, *h0;
    long h0_row;
    const float *bias2;   /* added to bias when not NULL (torch's bias_hh) */
    /* When not NULL (scratch of cyl_fs_zx_scratch(rows, units) values):
     * b + x_t @ W is made for CYL_FS_ZX_STEPS steps at once, their rows
     * sharing each load of W (see cyl_fs_zx_fill). */
    float *zx;
    float *h;
    long h_row, h_step;
    float *c, *z;
} cyl_fused_job;

/* The floats between two rows of z (and of zx): four gate blocks of Hp
 * units, then CYL_FS_ZSKEW more (64 bytes: rows stay aligned). The skew keeps
 * the rows of a register tile out of one L1 set: at 4 * Hp = 1024 (256
 * units) they would be 4 KiB apart, in the set of the weight rows (4 KiB
 * apart too). Measured at the AVX2 cap, one step of 4 rows, I = H = 256:
 * 122 us without, 87 us with it. */
#ifndef CYL_FS_ZSKEW
#define CYL_FS_ZSKEW 16
#endif
#define CYL_FS_ZROW(Hp) (4L * (Hp) + CYL_FS_ZSKEW)

/* The gate values of fastmath.h's cyl_lstm_gates_f32, one at a time. */
static inline float cyl_fs_gate_tanh(float x) {
    float ax = x < 0 ? -x : x;
    float e = cyl_exp_neg(-2.0f * ax);
    float p = 1.0f / (1.0f + e);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                     - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                   - 3.33332819422e-1f) * z * x + x;
    float big = (1.0f - e) * p;
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}

/* z, c and h never overlap: saying so keeps the compiler from a run-time
 * overlap check that, for small adjacent arrays, chose its scalar loop. */
#if defined(_MSC_VER)
#define CYL_FS_RESTRICT __restrict
#else
#define CYL_FS_RESTRICT __restrict__
#endif

/* Units [u0, u1) of one row: c and h from the row's gate values in z (a
 * function of its own, so the restrict parameters reach the vectoriser). */
#define CYL_FS_EPILOGUE_ROW(NAME, ATTR)                                              \
    ATTR static void NAME(int H, int Hp, const float *CYL_FS_RESTRICT zb,           \
                          float *CYL_FS_RESTRICT cb, float *CYL_FS_RESTRICT hb,      \
                          int u0, int u1) {                                          \
        (void)H;                                                                     \
        /* gate pointers, not zb[g * Hp + j]: under Python's -fwrapv an int   */   \
        /* sum in an index may wrap, and GCC then left this loop scalar-slow   */   \
        const float *CYL_FS_RESTRICT zi = zb, *CYL_FS_RESTRICT zf = zb + Hp;         \
        const float *CYL_FS_RESTRICT zg = zb + 2L * Hp, *CYL_FS_RESTRICT zo = zb + 3L * Hp; \
        for (int j = u0; j < u1; j++) {                                              \
            float gi = cyl_sigmoid1(zi[j]);                                          \
            float gf = cyl_sigmoid1(zf[j]);                                          \
            float gg = cyl_fs_gate_tanh(zg[j]);                                      \
            float go = cyl_sigmoid1(zo[j]);                                          \
            float cn = gf * cb[j] + gi * gg;                                         \
            cb[j] = cn;                                                              \
            hb[j] = go * cyl_tanh1(cn);                                              \
        }                                                                            \
    }

#define CYL_FS_EPILOGUE(ROW, n, H, Hp, z, c, hrow, h_row, u0, u1)                   \
    for (int b = 0; b < (n); b++)                                                   \
        ROW(H, Hp, (z) + (long)b * CYL_FS_ZROW(Hp), (c) + (long)b * (H),            \
            (hrow) + (long)b * (h_row), u0, u1);

/* The scalar twin of the kernels below: z[b, g*H + u] for units [u0, u1)
 * += A[b, :K] @ B[:, g*H + u]. Used for the step on CPUs without the vector
 * kernels only by the tests' level-0 runs of this file (the layers take the
 * unfused path there). */
static void cyl_fs_acc_scalar(int n, int K, int H, int Hp, const float *A, long lda,
                              const float *B, float *z, int u0, int u1) {
    long N = 4L * H;
    for (int b = 0; b < n; b++)
        for (int k = 0; k < K; k++) {
            float a = A[b * lda + k];
            const float *bk = B + k * N;
            float *zb = z + b * CYL_FS_ZROW(Hp);
            for (int g = 0; g < 4; g++)
                for (int u = u0; u < u1; u++)
                    zb[g * Hp + u] += a * bk[g * H + u];
        }
}

CYL_FS_EPILOGUE_ROW(cyl_fs_row_scalar, )

static void cyl_fs_epilogue_scalar(int n, int H, int Hp, const float *z, float *c, float *h,
                                   long h_row, int u0, int u1) {
    CYL_FS_EPILOGUE(cyl_fs_row_scalar, n, H, Hp, z, c, h, h_row, u0, u1)
}

#if CYL_HAVE_X86_KERNELS

/* Rows b0 .. b0+NR-1 (NR <= 4, a constant after inlining), four k at a time.
 * Full vectors load and store unmasked (masked stores are slow on AMD cores,
 * AVX2's vmaskmovps store very much so); only a range's last vector masks.
 * z has a row stride of CYL_FS_ZROW(Hp) and gate blocks Hp apart (Hp = H
 * rounded up to 16, so z's vectors are aligned when z is). The four products of a k
 * block go into two chains, so a step waits on two FMA latencies, not four. */
#define CYL_FS_ACC_BODY(VEC, WIDTH, LOADU, STOREU, LOADM, STOREM, FMA, MUL, ADD, SET1,    \
                        MASK_T, MAKE_MASK)                                                \
    long N = 4L * H, Z = CYL_FS_ZROW(Hp);                                                 \
    int k = 0;                                                                            \
    for (; k + 4 <= K; k += 4) {                                                          \
        const float *B0 = B + k * N, *B1 = B0 + N, *B2 = B1 + N, *B3 = B2 + N;             \
        for (int g = 0; g < 4; g++) {                                                     \
            int u = u0;                                                                   \
            for (; u + WIDTH <= u1; u += WIDTH) {                                         \
                long col = (long)g * H + u, zc = (long)g * Hp + u;                        \
                VEC v0 = LOADU(B0 + col), v1 = LOADU(B1 + col);                           \
                VEC v2 = LOADU(B2 + col), v3 = LOADU(B3 + col);                           \
                for (int r = 0; r < NR; r++) {                                            \
                    const float *ar = A + (long)(b0 + r) * lda + k;                       \
                    float *zp = z + (long)(b0 + r) * Z + zc;                              \
                    VEC p = FMA(SET1(ar[0]), v0, LOADU(zp));                              \
                    VEC q = MUL(SET1(ar[1]), v1);                                         \
                    p = FMA(SET1(ar[2]), v2, p);                                          \
                    q = FMA(SET1(ar[3]), v3, q);                                          \
                    STOREU(zp, ADD(p, q));                                                \
                }                                                                         \
            }                                                                             \
            if (u < u1) {                                                                 \
                MASK_T m = MAKE_MASK(u1 - u);                                             \
                long col = (long)g * H + u, zc = (long)g * Hp + u;                        \
                VEC v0 = LOADM(B0 + col, m), v1 = LOADM(B1 + col, m);                     \
                VEC v2 = LOADM(B2 + col, m), v3 = LOADM(B3 + col, m);                     \
                for (int r = 0; r < NR; r++) {                                            \
                    const float *ar = A + (long)(b0 + r) * lda + k;                       \
                    float *zp = z + (long)(b0 + r) * Z + zc;                              \
                    VEC p = FMA(SET1(ar[0]), v0, LOADU(zp));                              \
                    VEC q = MUL(SET1(ar[1]), v1);                                         \
                    p = FMA(SET1(ar[2]), v2, p);                                          \
                    q = FMA(SET1(ar[3]), v3, q);                                          \
                    STOREU(zp, ADD(p, q));                                                \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    for (; k < K; k++) {                                                                  \
        const float *B0 = B + k * N;                                                      \
        for (int g = 0; g < 4; g++)                                                       \
            for (int u = u0; u < u1; u += WIDTH) {                                        \
                MASK_T m = MAKE_MASK(u1 - u);                                             \
                long col = (long)g * H + u, zc = (long)g * Hp + u;                        \
                VEC v0 = LOADM(B0 + col, m);                                              \
                for (int r = 0; r < NR; r++) {                                            \
                    float *zp = z + (long)(b0 + r) * Z + zc;                              \
                    STOREU(zp, FMA(SET1(A[(long)(b0 + r) * lda + k]), v0, LOADU(zp)));   \
                }                                                                         \
            }                                                                             \
    }

/* One row (the streaming and one-sequence case), eight k at a time: the
 * eight broadcasts of x_t / h_{t-1} are made once per k block, not per
 * vector (z's stores could alias A, so the compiler reloads them inside the
 * loop otherwise), and z is loaded and stored once per eight weight vectors,
 * not four, so a step issues little besides the weight loads and the FMAs. */
#define CYL_FS_ACC1_BODY(VEC, WIDTH, LOADU, STOREU, LOADM, FMA, MUL, ADD, SET1, MASK_T,     \
                         MAKE_MASK)                                                         \
    long N = 4L * H;                                                                        \
    int k = 0;                                                                              \
    for (; k + 8 <= K; k += 8) {                                                            \
        const float *B0 = B + k * N;                                                        \
        VEC a0 = SET1(A[k]), a1 = SET1(A[k + 1]), a2 = SET1(A[k + 2]), a3 = SET1(A[k + 3]);  \
        VEC a4 = SET1(A[k + 4]), a5 = SET1(A[k + 5]), a6 = SET1(A[k + 6]);                   \
        VEC a7 = SET1(A[k + 7]);                                                            \
        for (int g = 0; g < 4; g++) {                                                       \
            const float *Bg = B0 + (long)g * H;                                             \
            float *zg = z + (long)g * Hp;                                                   \
            int u = u0;                                                                     \
            for (; u + WIDTH <= u1; u += WIDTH) {                                           \
                const float *bp = Bg + u;                                                   \
                VEC p = FMA(a0, LOADU(bp), LOADU(zg + u));                                  \
                VEC q = MUL(a1, LOADU(bp + N));                                             \
                p = FMA(a2, LOADU(bp + 2 * N), p);                                          \
                q = FMA(a3, LOADU(bp + 3 * N), q);                                          \
                p = FMA(a4, LOADU(bp + 4 * N), p);                                          \
                q = FMA(a5, LOADU(bp + 5 * N), q);                                          \
                p = FMA(a6, LOADU(bp + 6 * N), p);                                          \
                q = FMA(a7, LOADU(bp + 7 * N), q);                                          \
                STOREU(zg + u, ADD(p, q));                                                  \
            }                                                                               \
            if (u < u1) {                                                                   \
                MASK_T m = MAKE_MASK(u1 - u);                                               \
                const float *bp = Bg + u;                                                   \
                VEC p = FMA(a0, LOADM(bp, m), LOADU(zg + u));                               \
                VEC q = MUL(a1, LOADM(bp + N, m));                                          \
                p = FMA(a2, LOADM(bp + 2 * N, m), p);                                       \
                q = FMA(a3, LOADM(bp + 3 * N, m), q);                                       \
                p = FMA(a4, LOADM(bp + 4 * N, m), p);                                       \
                q = FMA(a5, LOADM(bp + 5 * N, m), q);                                       \
                p = FMA(a6, LOADM(bp + 6 * N, m), p);                                       \
                q = FMA(a7, LOADM(bp + 7 * N, m), q);                                       \
                STOREU(zg + u, ADD(p, q));                                                  \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    for (; k < K; k++) {                                                                    \
        const float *B0 = B + k * N;                                                        \
        VEC a0 = SET1(A[k]);                                                                \
        for (int g = 0; g < 4; g++)                                                         \
            for (int u = u0; u < u1; u += WIDTH) {                                          \
                MASK_T m = MAKE_MASK(u1 - u);                                               \
                float *zp = z + (long)g * Hp + u;                                           \
                STOREU(zp, FMA(a0, LOADM(B0 + (long)g * H + u, m), LOADU(zp)));             \
            }                                                                               \
    }

#define CYL_M512_LOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define CYL_M512_STORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)

__attribute__((target("avx512f")))
static inline __mmask16 cyl_fs_mask16(int w) {
    return (__mmask16)(w >= 16 ? 0xFFFFu : ((1u << w) - 1u));
}

__attribute__((target("avx512f"), always_inline))
static inline void cyl_fs_rows512(const int NR, int b0, int K, int H, int Hp, const float *A,
                                  long lda, const float *B, float *z, int u0, int u1) {
    CYL_FS_ACC_BODY(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, CYL_M512_LOAD,
                    CYL_M512_STORE, _mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps,
                    _mm512_set1_ps, __mmask16, cyl_fs_mask16)
}

__attribute__((target("avx512f")))
static void cyl_fs_acc512(int n, int K, int H, int Hp, const float *A, long lda,
                          const float *B, float *z, int u0, int u1) {
    if (n == 1) {
        CYL_FS_ACC1_BODY(__m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, CYL_M512_LOAD,
                         _mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_set1_ps,
                         __mmask16, cyl_fs_mask16)
        return;
    }
    int b0 = 0;
    for (; b0 + 4 <= n; b0 += 4)
        cyl_fs_rows512(4, b0, K, H, Hp, A, lda, B, z, u0, u1);
    switch (n - b0) {
    case 3: cyl_fs_rows512(3, b0, K, H, Hp, A, lda, B, z, u0, u1); break;
    case 2: cyl_fs_rows512(2, b0, K, H, Hp, A, lda, B, z, u0, u1); break;
    case 1: cyl_fs_rows512(1, b0, K, H, Hp, A, lda, B, z, u0, u1); break;
    default: break;
    }
}

CYL_FS_EPILOGUE_ROW(cyl_fs_row512, __attribute__((target("avx512f"))))

__attribute__((target("avx512f")))
static void cyl_fs_epilogue512(int n, int H, int Hp, const float *z, float *c, float *h,
                               long h_row, int u0, int u1) {
    CYL_FS_EPILOGUE(cyl_fs_row512, n, H, Hp, z, c, h, h_row, u0, u1)
}

#define CYL_M256_LOAD(p, m) _mm256_maskload_ps(p, m)
#define CYL_M256_STORE(p, m, v) _mm256_maskstore_ps(p, m, v)

__attribute__((target("avx2,fma")))
static inline __m256i cyl_fs_mask8(int w) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The AVX2 product of 2-4 rows. With 8-wide vectors, CYL_FS_ACC_BODY's
 * walk (z loaded and stored, and each row's four values of A broadcast again,
 * for every 8 columns) is bound by loads and stores, not FMAs: at two rows
 * it was slower than the unfused path. Here a tile of NR rows x NV vectors
 * of z stays in registers over a block of CYL_FS_KB k: per k, NV weight
 * loads and NR broadcasts feed NR * NV FMAs, and z is loaded and stored once
 * per block. Tiles of 4 x 2, 3 x 3 and 2 x 4 vectors: 8-9 accumulators
 * (enough chains for FMA latency x two pipes) and NV + 1 more registers,
 * within AVX2's 16. A range ends in one-vector tiles, the last one's
 * weights loaded masked (z is padded to Hp, so its own loads and stores need
 * no mask). The block keeps the weight reads to CYL_FS_KB row streams, each
 * walked in order (the prefetchers follow), not a column walk down all of K.
 * Eight k: at 256 units a weight row is 4 KiB, so the block's rows share
 * one L1 set, and 16 of them (more than its 8 ways) took twice as long.
 * Measured alone (Zen 4 at the AVX2 cap, 128 x 512 weights, GCC): 2 rows
 * 53 -> 73 GFLOP/s, 3 rows 49 -> 76, 4 rows 60 -> 91 (the FMA peak, peak.c:
 * 117). */
#ifndef CYL_FS_KB
#define CYL_FS_KB 8
#endif

__attribute__((target("avx2,fma"), always_inline))
static inline void cyl_fs_tile256(const int NR, const int NV, const int masked, __m256i m,
                                  int k0, int k1, long N, const float *A, long lda,
                                  const float *Bc, float *zc, long Z) {
    __m256 acc[4][4];
    for (int r = 0; r < NR; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = _mm256_loadu_ps(zc + r * Z + 8 * v);
    const float *bk = Bc + k0 * N;
    for (int k = k0; k < k1; k++, bk += N) {
        __m256 bv[4];
        for (int v = 0; v < NV; v++) {
            bv[v] = masked ? _mm256_maskload_ps(bk + 8 * v, m) : _mm256_loadu_ps(bk + 8 * v);
            /* in a register: GCC otherwise folds the load into each row's
             * FMA, NR loads of the same vector, and the loop waits on loads */
            __asm__("" : "+x"(bv[v]));
        }
        for (int r = 0; r < NR; r++) {
            __m256 a = _mm256_set1_ps(A[r * lda + k]);
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm256_fmadd_ps(a, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int v = 0; v < NV; v++)
            _mm256_storeu_ps(zc + r * Z + 8 * v, acc[r][v]);
}

/* Rows b0 .. b0+NR-1 (2 <= NR <= 4, a constant after inlining) in tiles of
 * NV vectors (NR * NV <= 8). */
__attribute__((target("avx2,fma"), always_inline))
static inline void cyl_fs_rows256(const int NR, const int NV, int b0, int K, int H, int Hp,
                                  const float *A, long lda, const float *B, float *z, int u0,
                                  int u1) {
    long N = 4L * H, Z = CYL_FS_ZROW(Hp);
    const float *Ab = A + (long)b0 * lda;
    float *zb = z + (long)b0 * Z;
    __m256i none = _mm256_setzero_si256();
    for (int k0 = 0; k0 < K; k0 += CYL_FS_KB) {
        int k1 = K - k0 < CYL_FS_KB ? K : k0 + CYL_FS_KB;
        for (int g = 0; g < 4; g++) {
            const float *Bg = B + (long)g * H;
            float *zg = zb + (long)g * Hp;
            int u = u0;
            for (; u + 8 * NV <= u1; u += 8 * NV)
                cyl_fs_tile256(NR, NV, 0, none, k0, k1, N, Ab, lda, Bg + u, zg + u, Z);
            for (; u + 8 <= u1; u += 8)
                cyl_fs_tile256(NR, 1, 0, none, k0, k1, N, Ab, lda, Bg + u, zg + u, Z);
            if (u < u1)
                cyl_fs_tile256(NR, 1, 1, cyl_fs_mask8(u1 - u), k0, k1, N, Ab, lda, Bg + u,
                               zg + u, Z);
        }
    }
}

/* One row: CYL_FS_ACC1_BODY (its broadcasts already made once per k block). */
__attribute__((target("avx2,fma"), always_inline))
static inline void cyl_fs_row1_256(int K, int H, int Hp, const float *A, const float *B,
                                   float *z, int u0, int u1) {
    CYL_FS_ACC1_BODY(__m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, CYL_M256_LOAD,
                     _mm256_fmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_set1_ps,
                     __m256i, cyl_fs_mask8)
}

__attribute__((target("avx2,fma")))
static void cyl_fs_acc256(int n, int K, int H, int Hp, const float *A, long lda,
                          const float *B, float *z, int u0, int u1) {
    int b0 = 0;
    for (; b0 + 4 <= n; b0 += 4)
        cyl_fs_rows256(4, 2, b0, K, H, Hp, A, lda, B, z, u0, u1);
    switch (n - b0) {
    case 3: cyl_fs_rows256(3, 3, b0, K, H, Hp, A, lda, B, z, u0, u1); break;
    case 2: cyl_fs_rows256(2, 4, b0, K, H, Hp, A, lda, B, z, u0, u1); break;
    case 1:
        cyl_fs_row1_256(K, H, Hp, A + (long)b0 * lda, B, z + (long)b0 * CYL_FS_ZROW(Hp), u0,
                        u1);
        break;
    default: break;
    }
}

CYL_FS_EPILOGUE_ROW(cyl_fs_row256, __attribute__((target("avx2,fma"))))

__attribute__((target("avx2,fma")))
static void cyl_fs_epilogue256(int n, int H, int Hp, const float *z, float *c, float *h,
                               long h_row, int u0, int u1) {
    CYL_FS_EPILOGUE(cyl_fs_row256, n, H, Hp, z, c, h, h_row, u0, u1)
}

#endif

/* The units of a gate block in z: H rounded up to a whole AVX-512 vector. */
static inline int cyl_fs_padded(int H) {
    return (H + 15) / 16 * 16;
}

/* z's first 64-byte boundary (the scratch has 16 floats to spare). */
static inline float *cyl_fs_aligned(float *z) {
    return (float *)(((uintptr_t)z + 63) & ~(uintptr_t)63);
}

/* Scratch values a job of n rows and H units needs for z. */
static inline long cyl_fs_scratch(int n, int H) {
    return (long)n * CYL_FS_ZROW(cyl_fs_padded(H)) + 16;
}

/* Steps whose input projections a time loop makes together: with few rows a
 * step's x_t @ W reads all of W for one or two rows of x; made for this many
 * steps at once, the steps' rows share each load of W in the kernels' 4-row
 * register block (measured, 1,100,32,128 one thread, C harness: see
 * lstm_step.pyx). More steps gain nothing more: the block is four rows. */
#ifndef CYL_FS_ZX_STEPS
#define CYL_FS_ZX_STEPS 8
#endif

/* Scratch values of a job's zx: CYL_FS_ZX_STEPS steps of n rows. */
static inline long cyl_fs_zx_scratch(int n, int H) {
    return (long)n * CYL_FS_ZX_STEPS * CYL_FS_ZROW(cyl_fs_padded(H)) + 16;
}

/* The bias (b + bias2) into units [u0, u1) of a z row, gate blocks Hp
 * apart, and the padding past H zeroed when this range ends the row (the
 * last vector of the kernels reads it). */
static void cyl_fs_bias_row(const cyl_fused_job *s, int H, int Hp, float *zrow, int u0, int u1) {
    for (int g = 0; g < 4; g++) {
        float *zg = zrow + (long)g * Hp;
        memcpy(zg + u0, s->bias + (long)g * H + u0, (size_t)(u1 - u0) * sizeof(float));
        if (s->bias2 != NULL) {
            const float *b2 = s->bias2 + (long)g * H;
            for (int u = u0; u < u1; u++)
                zg[u] += b2[u];
        }
        if (u1 == H && Hp > H)
            memset(zg + H, 0, (size_t)(Hp - H) * sizeof(float));
    }
}

/* Units [u0, u1) of b + x_t @ W for steps t0 .. t0 + nt - 1, row b of step
 * t at zx row b * CYL_FS_ZX_STEPS + (t - t0). */
static void cyl_fs_zx_fill(const cyl_fused_job *s, int Hp, int t0, int nt, int u0, int u1) {
    int n = s->rows, H = s->units;
    float *zx = cyl_fs_aligned(s->zx);
    for (int b = 0; b < n; b++) {
        float *zb = zx + (long)b * CYL_FS_ZX_STEPS * CYL_FS_ZROW(Hp);
        for (int i = 0; i < nt; i++)
            cyl_fs_bias_row(s, H, Hp, zb + (long)i * CYL_FS_ZROW(Hp), u0, u1);
        /* the steps of row b: x rows x_step apart */
        const float *xb = s->x + (long)t0 * s->x_step + (long)b * s->x_row;
#if CYL_HAVE_X86_KERNELS
        if (s->level == 2) {
            cyl_fs_acc512(nt, s->inputs, H, Hp, xb, s->x_step, s->W, zb, u0, u1);
            continue;
        }
        if (s->level == 1) {
            cyl_fs_acc256(nt, s->inputs, H, Hp, xb, s->x_step, s->W, zb, u0, u1);
            continue;
        }
#endif
        cyl_fs_acc_scalar(nt, s->inputs, H, Hp, xb, s->x_step, s->W, zb, u0, u1);
    }
}

/* Units per vector of the level (the grain of a split between threads). */
static int cyl_fs_width(int level) {
    return level == 2 ? 16 : (level == 1 ? 8 : 1);
}

/* Step `t` of the job for units chunk `part` of `parts` (whole vectors). */
static void cyl_fused_chunk(void *arg, int t, int part, int parts) {
    const cyl_fused_job *s = (const cyl_fused_job *)arg;
    int n = s->rows, H = s->units, Hp = cyl_fs_padded(H);
    float *z = cyl_fs_aligned(s->z);
    int w = cyl_fs_width(s->level);
    int vecs = (H + w - 1) / w;
    int u0 = (int)((long)vecs * part / parts) * w;
    int u1 = (int)((long)vecs * (part + 1) / parts) * w;
    if (u1 > H)
        u1 = H;
    if (u0 >= u1)
        return;
    const float *x = s->x + (long)t * s->x_step;
    const float *hprev;
    long hprev_row;
    if (t == 0) {
        hprev = s->h0;
        hprev_row = s->h0_row;
    } else {
        hprev = s->h + (long)(s->h_ring ? (t - 1) % 2 : t - 1) * s->h_step;
        hprev_row = s->h_row;
    }
    float *hout = s->h + (long)(s->h_ring ? t % 2 : t) * s->h_step;
    int project = 1;   /* x_t @ W still to add to z */
    if (s->zx != NULL && s->inputs > 0) {
        int i = t % CYL_FS_ZX_STEPS;
        if (i == 0) {
            int nt = s->steps - t < CYL_FS_ZX_STEPS ? s->steps - t : CYL_FS_ZX_STEPS;
            cyl_fs_zx_fill(s, Hp, t, nt, u0, u1);
        }
        const float *zx = cyl_fs_aligned(s->zx);
        for (int b = 0; b < n; b++) {
            const float *src = zx + ((long)b * CYL_FS_ZX_STEPS + i) * CYL_FS_ZROW(Hp);
            float *dst = z + b * CYL_FS_ZROW(Hp);
            for (int g = 0; g < 4; g++) {
                long off = (long)g * Hp + u0;
                long len = (u1 == H ? Hp : u1) - u0;   /* with the zeroed padding */
                memcpy(dst + off, src + off, (size_t)len * sizeof(float));
            }
        }
        project = 0;
    } else {
        for (int b = 0; b < n; b++)
            cyl_fs_bias_row(s, H, Hp, z + b * CYL_FS_ZROW(Hp), u0, u1);
    }
#if CYL_HAVE_X86_KERNELS
    if (s->level == 2) {
        if (project)
            cyl_fs_acc512(n, s->inputs, H, Hp, x, s->x_row, s->W, z, u0, u1);
        cyl_fs_acc512(n, H, H, Hp, hprev, hprev_row, s->U, z, u0, u1);
        cyl_fs_epilogue512(n, H, Hp, z, s->c, hout, s->h_row, u0, u1);
        return;
    }
    if (s->level == 1) {
        if (project)
            cyl_fs_acc256(n, s->inputs, H, Hp, x, s->x_row, s->W, z, u0, u1);
        cyl_fs_acc256(n, H, H, Hp, hprev, hprev_row, s->U, z, u0, u1);
        cyl_fs_epilogue256(n, H, Hp, z, s->c, hout, s->h_row, u0, u1);
        return;
    }
#endif
    if (project)
        cyl_fs_acc_scalar(n, s->inputs, H, Hp, x, s->x_row, s->W, z, u0, u1);
    cyl_fs_acc_scalar(n, H, H, Hp, hprev, hprev_row, s->U, z, u0, u1);
    cyl_fs_epilogue_scalar(n, H, Hp, z, s->c, hout, s->h_row, u0, u1);
}

/* Chunks per thread in a step: a thread that has its core to itself takes
 * more of them than one that shares it (the busy machine this was measured
 * on shares both cores with other work). */
#ifndef CYL_FS_CHUNKS
#define CYL_FS_CHUNKS 1
#endif

/* Run the job's steps with each step's units split into chunks shared by
 * this thread and threads - 1 of the pool's workers, or on this thread alone
 * when threads is 1 or the pool is busy. Returns the threads used. */
static int cyl_fused_run(cyl_fused_job *job, int threads) {
    int w = cyl_fs_width(job->level);
    int vecs = (job->units + w - 1) / w;
    if (threads > vecs)
        threads = vecs;
    int parts = threads * CYL_FS_CHUNKS;
    if (parts > vecs)
        parts = vecs;
    if (threads > 1 && cyl_pool_run(cyl_fused_chunk, job, job->steps, parts, threads - 1) == 0)
        return threads;
    for (int t = 0; t < job->steps; t++)
        cyl_fused_chunk(job, t, 0, 1);
    return 1;
}

#endif
