/* One whole LSTM step, float32, tanh/sigmoid, in one pass over the gates:
 * z = zx_t + h_{t-1} @ U accumulated in registers, then, still in registers,
 * i, f, o = sigmoid, g = tanh, c_t = f c_{t-1} + i g, h_t = o tanh(c_t),
 * and only c_t, h_t (and what training keeps) go to memory.
 *
 * Why: the unfused step (recurrent.h, then the gate activations, then the
 * cell loop of cell.h) writes the B x 4H pre-activations to a gate buffer,
 * reads them back to activate them, writes them again and reads them for
 * the cell update: four passes over B x 4H per step that oneDNN's fused RNN
 * does not make. Here the four gates of the same units share one register
 * block: U is packed gate-interleaved, panel p holding, for every k, the
 * i, f, g, o columns of units [p u, p u + u) (u = 16 with AVX-512: 4 zmm per
 * row; u = 8 with AVX2 + FMA: 4 ymm per row, stored as two half panels,
 * i and f of every k, then g and o), zero past unit H.
 *
 * The input projection zx = x @ W + b keeps the standard layout
 * [i | f | g | o] (each gate H wide): a gate of a unit block is one
 * contiguous run there, so it loads as one vector just as from an
 * interleaved layout, and keeping it leaves W, the training store and the
 * backward pass (lstm_backward.pyx) unchanged. In training the step writes
 * the gate activations over zx and tanh(c_t) to the c store: what the
 * unfused float32 path stores.
 *
 * The activations are those of fastmath.h (Cephes exp, the odd polynomial
 * for tanh near 0), written with intrinsics; they divide with a reciprocal
 * estimate (rcp14, AVX2's 12-bit rcp) and a Newton step (within 2-3 ulp of
 * the quotient). NaN and inf propagate as there.
 *
 * Inference can also make the input projection in the step (Wp, packed
 * as U is): the accumulators start from the bias, take x_t @ W, then
 * h_{t-1} @ U, so no gate block goes through memory at all, and the
 * projection runs on this register block (near the core's FMA peak)
 * instead of scipy's sgemm on a few timesteps at a time, which packed
 * its operands on every call and ran at about 70 % of it.
 *
 * What it gained (AMD EPYC Zen 4, one thread, against the unfused path in
 * alternating calls): with the projection by sgemm, 3-11 % at one row and
 * at few rows up to 128 units, even at 256, 2-6 % slower at 512 (the
 * passes it saves were cheap: a step's gate block stays in L2); with the
 * projection in the step, 5-15 % at 16-256 rows and 64-512 units, 20-27 %
 * where the input is wide (I >= 512). AVX2 + FMA (CYLSTM_ISA=avx2 on the
 * same core, projection in the step): 0.84-0.97x from 8 rows and 64 units;
 * from 3 rows and 10 units 0.56-1.04x against the unfused path as an
 * AVX2-only CPU runs it (see the AVX2 section). The backend picks by these numbers
 * (CpuBackend.FUSED_STEP_*). Work can be split by rows
 * [b0, b1) and by unit panels [p0, p1) (h_t goes to a buffer other than
 * h_{t-1}, so panels of one step may run in parallel). Tested against the
 * NumPy twin at both levels in tests/kernels/test_fused_step.py. Other CPUs
 * (no x86 kernels), float64, other activations, a projection and per-gate
 * recurrent dropout use the unfused path (the caller decides).
 */
#ifndef CYLSTM_FUSED_STEP_H
#define CYLSTM_FUSED_STEP_H

#include <stddef.h>
#include <string.h>

#include "recurrent.h"
#include "simd_math.h"

/* Pointers address row 0 of the caller's row range; strides in floats. */
typedef struct {
    int H;                    /* units */
    int K;                    /* width of the recurrent input (= H) */
    int u;                    /* units per panel the packing used (16 or 8) */
    const float *A;           /* h_{t-1} (dropped, if so), rows of K */
    ptrdiff_t lda;
    const float *Up;          /* U packed by cyl_fused_pack */
    float *z;                 /* zx_t rows, [i | f | g | o]; activations out if store_act */
    ptrdiff_t ldz;
    int store_act;
    float *c;                 /* c_{t-1} in, c_t out (rows the mask keeps) */
    ptrdiff_t ldc;
    float *h;                 /* h_t out (rows the mask keeps) */
    ptrdiff_t ldh;
    float *out;               /* a second copy of h_t, or NULL */
    ptrdiff_t ldo;
    float *tc;                /* tanh(c_t), or NULL */
    ptrdiff_t ldtc;
    float *cprev;             /* a copy of c_{t-1}, or NULL */
    ptrdiff_t ldcp;
    const unsigned char *mask; /* row b steps iff mask[b * mask_stride]; NULL: all */
    ptrdiff_t mask_stride;
    /* The input projection in the step, or Wp NULL to read zx_t from z:
     * z_t = bias + x_t @ W + h_{t-1} @ U, all in the registers, W packed by
     * cyl_fused_pack as U is. z is then not read, only written with the
     * activations when store_act (training). */
    const float *X;           /* x_t rows, I values each */
    ptrdiff_t ldx;
    int nx;                   /* I, the width of x_t */
    const float *Wp;          /* W (I x 4H) packed by cyl_fused_pack, or NULL */
    const float *bias;        /* 4H, [i | f | g | o] */
} cyl_fused_args;

/* Units per panel for the level in use, 0 when there is no kernel. */
static int cyl_fused_units(void) {
    int level = cyl_isa_level >= 0 ? cyl_isa_level : cyl_recurrent_isa(-1);
    return level == 2 ? 16 : (level == 1 ? 8 : 0);
}

/* Up[p][k][q u + j] = U[k, q H + p u + j] (gate q, unit p u + j), zero past H;
 * for u = 8 Up[p][q / 2][k][(q % 2) 8 + j] (each half panel contiguous). */
static void cyl_fused_pack(const float *U, int K, int H, int u, float *Up) {
    int panels = (H + u - 1) / u;
    for (int p = 0; p < panels; p++) {
        int w = H - p * u < u ? H - p * u : u;
        for (int k = 0; k < K; k++) {
            float *dst = Up + ((ptrdiff_t)p * K + k) * 4 * u;
            const float *src = U + (ptrdiff_t)k * 4 * H + p * u;
            /* Whole panels: copies of a constant size, which the compiler
             * makes vector moves (a call per 64 bytes made packing a
             * 128 x 1024 W take 0.1 ms, paid per call by the call plans). */
            if (w == 16 && u == 16) {
                for (int q = 0; q < 4; q++)
                    memcpy(dst + q * 16, src + (ptrdiff_t)q * H, 16 * sizeof(float));
                continue;
            }
            for (int q = 0; q < 4; q++) {
                /* u = 8 (AVX2): gates i, f of every k, then g, o (two half
                 * panels the kernel streams one after the other). */
                float *d = u == 8 ? Up + (((ptrdiff_t)p * 2 + q / 2) * K + k) * 16 + (q % 2) * 8
                                  : dst + q * u;
                if (w == 8 && u == 8) {   /* a constant size: vector moves */
                    memcpy(d, src + (ptrdiff_t)q * H, 8 * sizeof(float));
                    continue;
                }
                memcpy(d, src + (ptrdiff_t)q * H, (size_t)w * sizeof(float));
                if (w < u)
                    memset(d + w, 0, (size_t)(u - w) * sizeof(float));
            }
        }
    }
}

#if CYL_HAVE_X86_KERNELS

#define CYL_FORCE_INLINE inline __attribute__((always_inline))

/* ---- AVX-512F: 16 units x 4 gates per row, up to 6 rows ---------------- */

__attribute__((target("avx512f")))
static CYL_FORCE_INLINE __m512 cyl_exp_neg16(__m512 x0) {
    const __m512 lo = _mm512_set1_ps(-87.3f);
    __m512 x = _mm512_max_ps(lo, x0);   /* (lo, x0): a NaN x0 passes through */
    __m512 n;
    __m512 y = cyl_exp_reduced16(x, &n);   /* simd_math.h */
    /* y 2^n (n >= -126 here, so no denormal), 0 below the clamp, NaN for
     * NaN (a NaN input must reach the output, as on the unfused path). */
    return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(x0, lo, _CMP_NLT_UQ), y, n);
}

/* 1 / d for d in [1, 2] (all the gate math divides by): the 14-bit
 * estimate and one Newton step, within 2 ulp of the quotient, and several
 * times the throughput of vdivps on the double-pumped 512-bit units. */
__attribute__((target("avx512f")))
static CYL_FORCE_INLINE __m512 cyl_recip16(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

__attribute__((target("avx512f")))
static CYL_FORCE_INLINE __m512 cyl_sigmoid16(__m512 x) {
    __m512 e = cyl_exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
    __m512 s = cyl_recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), e));
    return _mm512_mask_mul_ps(s, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), e, s);
}

__attribute__((target("avx512f")))
static CYL_FORCE_INLINE __m512 cyl_tanh16(__m512 x) {
    __m512 ax = _mm512_abs_ps(x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(-5.70498872745e-3f), z,
                               _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    __m512 e = cyl_exp_neg16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), ax));
    __m512 big = _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e),
                               cyl_recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    /* big >= 0: give it x's sign. */
    big = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(big),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ),
                              small);
}

#ifndef CYL_FUSED_ROWS16
#define CYL_FUSED_ROWS16 6 /* at most 6: cyl_fused_blocks16 */
#endif

/* Rows of a panel go through in chunks of at most this many: first the
 * products of the chunk's row blocks, each into an L1 copy (zs: per row the
 * four gates' 16 pre-activations and c_{t-1}), then the activations and the
 * cell update of the whole chunk in one loop. The activations are long
 * dependency chains; a loop over many rows lets the core overlap them,
 * while an epilogue after each block (a few rows between two long product
 * loops) cost twice its arithmetic. The copy is 48 x 320 bytes. */
#define CYL_FUSED_CHUNK16 48

/* Products of rows [b, b + R) of panel p (m: its live lanes) into zs. */
__attribute__((target("avx512f")))
static CYL_FORCE_INLINE void cyl_fused_block16(const int R, const cyl_fused_args *a, int b,
                                               int p, __mmask16 m, float *zs) {
    const int H = a->H, K = a->K;
    const int unit0 = p * 16;
    const float *panel = a->Up + (ptrdiff_t)p * K * 64;
    __m512 acc[6][4];
    if (a->Wp != NULL) {
        /* bias + x_t @ W: the projection's panel streams from L2 as U's does,
         * and no gate block goes through memory. */
        for (int q = 0; q < 4; q++) {
            __m512 bq = _mm512_maskz_loadu_ps(m, a->bias + (ptrdiff_t)q * H + unit0);
            for (int r = 0; r < R; r++)
                acc[r][q] = bq;
        }
        const float *wpanel = a->Wp + (ptrdiff_t)p * a->nx * 64;
        const float *X = a->X + (ptrdiff_t)b * a->ldx;
        for (int k = 0; k < a->nx; k++) {
            const float *wk = wpanel + (ptrdiff_t)k * 64;
            __m512 w0 = _mm512_loadu_ps(wk), w1 = _mm512_loadu_ps(wk + 16);
            __m512 w2 = _mm512_loadu_ps(wk + 32), w3 = _mm512_loadu_ps(wk + 48);
            for (int r = 0; r < R; r++) {
                __m512 xv = _mm512_set1_ps(X[(ptrdiff_t)r * a->ldx + k]);
                acc[r][0] = _mm512_fmadd_ps(xv, w0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(xv, w1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(xv, w2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(xv, w3, acc[r][3]);
            }
        }
    } else {
        for (int r = 0; r < R; r++) {
            const float *zr = a->z + (ptrdiff_t)(b + r) * a->ldz + unit0;
            for (int q = 0; q < 4; q++)
                acc[r][q] = _mm512_maskz_loadu_ps(m, zr + (ptrdiff_t)q * H);
        }
    }
    const float *A = a->A + (ptrdiff_t)b * a->lda;
    for (int k = 0; k < K; k++) {
        const float *bk = panel + (ptrdiff_t)k * 64;
        __m512 u0 = _mm512_loadu_ps(bk), u1 = _mm512_loadu_ps(bk + 16);
        __m512 u2 = _mm512_loadu_ps(bk + 32), u3 = _mm512_loadu_ps(bk + 48);
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(A[(ptrdiff_t)r * a->lda + k]);
            acc[r][0] = _mm512_fmadd_ps(av, u0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, u1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(av, u2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(av, u3, acc[r][3]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < 4; q++)
            _mm512_store_ps(zs + r * 80 + q * 16, acc[r][q]);
        /* c_{t-1} here, before the chunk's stores: rows are 4H floats apart,
         * and a load after a store 4 KiB away waits for it (4K aliasing). */
        _mm512_store_ps(zs + r * 80 + 64,
                        _mm512_maskz_loadu_ps(m, a->c + (ptrdiff_t)(b + r) * a->ldc + unit0));
    }
}

/* Gates, c_t and h_t of rows [b, b + n) of panel p from their copy zs. */
__attribute__((target("avx512f")))
static void cyl_fused_epilogue16(const cyl_fused_args *a, int b, int n, int p, __mmask16 m,
                                 const float *zs) {
    const ptrdiff_t H = a->H;
    const int unit0 = p * 16;
    for (int r = 0; r < n; r++) {
        const float *zr = zs + r * 80;
        const ptrdiff_t row = b + r;
        __m512 gi = cyl_sigmoid16(_mm512_load_ps(zr));
        __m512 gf = cyl_sigmoid16(_mm512_load_ps(zr + 16));
        __m512 gg = cyl_tanh16(_mm512_load_ps(zr + 32));
        __m512 go = cyl_sigmoid16(_mm512_load_ps(zr + 48));
        __m512 cold = _mm512_load_ps(zr + 64);
        __m512 cn = _mm512_fmadd_ps(gf, cold, _mm512_mul_ps(gi, gg));
        __m512 tc = cyl_tanh16(cn);
        __m512 hn = _mm512_mul_ps(go, tc);
        if (a->cprev != NULL)
            _mm512_mask_storeu_ps(a->cprev + row * a->ldcp + unit0, m, cold);
        if (a->tc != NULL)
            _mm512_mask_storeu_ps(a->tc + row * a->ldtc + unit0, m, tc);
        if (a->store_act) {
            float *z = a->z + row * a->ldz + unit0;
            _mm512_mask_storeu_ps(z, m, gi);
            _mm512_mask_storeu_ps(z + H, m, gf);
            _mm512_mask_storeu_ps(z + 2 * H, m, gg);
            _mm512_mask_storeu_ps(z + 3 * H, m, go);
        }
        if (a->mask != NULL && !a->mask[row * a->mask_stride])
            continue;   /* a masked row keeps c_{t-1}; the caller carries h */
        _mm512_mask_storeu_ps(a->c + row * a->ldc + unit0, m, cn);
        _mm512_mask_storeu_ps(a->h + row * a->ldh + unit0, m, hn);
        if (a->out != NULL)
            _mm512_mask_storeu_ps(a->out + row * a->ldo + unit0, m, hn);
    }
}

/* One function per row count, each with its own register allocation (with
 * all six inlined into one function GCC spilled accumulators in the loop). */
#define CYL_BLOCK16(R)                                                              \
    __attribute__((target("avx512f"), noinline))                                   \
    static void cyl_fused_block16_##R(const cyl_fused_args *a, int b, int p, __mmask16 m, \
                                      float *zs) {                                  \
        cyl_fused_block16(R, a, b, p, m, zs);                                       \
    }
CYL_BLOCK16(1)
CYL_BLOCK16(2)
CYL_BLOCK16(3)
CYL_BLOCK16(4)
CYL_BLOCK16(5)
CYL_BLOCK16(6)
#undef CYL_BLOCK16

static void (*const cyl_fused_blocks16[6])(const cyl_fused_args *, int, int, __mmask16,
                                           float *) = {
    cyl_fused_block16_1, cyl_fused_block16_2, cyl_fused_block16_3,
    cyl_fused_block16_4, cyl_fused_block16_5, cyl_fused_block16_6};

/* Ask for the gate inputs and cell state of rows [b, b + n) of the panel at
 * unit0 (n <= 6): a block's rows are 4H floats apart, too far for the
 * hardware prefetcher, and the block before gives them time to arrive. */
static inline void cyl_fused_prefetch(const cyl_fused_args *a, int b, int n, int unit0,
                                      int width) {
    for (int r = 0; r < n; r++) {
        if (a->Wp == NULL) {   /* else no z: x_t's rows are read in order */
            const float *zr = a->z + (ptrdiff_t)(b + r) * a->ldz + unit0;
            for (int q = 0; q < 4; q++) {
                __builtin_prefetch(zr + (ptrdiff_t)q * a->H);
                __builtin_prefetch(zr + (ptrdiff_t)q * a->H + width - 1);
            }
        }
        const float *cr = a->c + (ptrdiff_t)(b + r) * a->ldc + unit0;
        __builtin_prefetch(cr);
        __builtin_prefetch(cr + width - 1);
    }
}

/* The next block's rows after rows [b, b + R) of panel p: the following rows,
 * or the first rows of the next panel. */
static inline void cyl_fused_prefetch_next(const cyl_fused_args *a, int b, int R, int b0,
                                           int b1, int p, int p1, int u) {
    if (b + R < b1) {
        int n = b1 - b - R;
        cyl_fused_prefetch(a, b + R, n < 6 ? n : 6, p * u, u);
    } else if (p + 1 < p1) {
        int n = b1 - b0, w = a->H - (p + 1) * u;
        cyl_fused_prefetch(a, b0, n < 6 ? n : 6, (p + 1) * u, w < u ? w : u);
    }
}

__attribute__((target("avx512f")))
static void cyl_fused_step_avx512(const cyl_fused_args *a, int b0, int b1, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        int w = a->H - p * 16;
        __mmask16 m = (__mmask16)(w >= 16 ? 0xFFFFu : ((1u << w) - 1u));
        if (p == p0)
            cyl_fused_prefetch(a, b0, b1 - b0 < 6 ? b1 - b0 : 6, p * 16, w < 16 ? w : 16);
        __attribute__((aligned(64))) float zs[CYL_FUSED_CHUNK16 * 80];
        for (int c0 = b0; c0 < b1; c0 += CYL_FUSED_CHUNK16) {
            int c1 = b1 - c0 > CYL_FUSED_CHUNK16 ? c0 + CYL_FUSED_CHUNK16 : b1;
            /* Blocks of nearly equal rows, at most 6 (8 rows: 4 + 4, not
             * 6 + 2: a 2-row block does twice the loads per multiply-add). */
            int n = c1 - c0, blocks = (n + CYL_FUSED_ROWS16 - 1) / CYL_FUSED_ROWS16;
            for (int i = 0, b = c0; i < blocks; i++) {
                int R = n / blocks + (i < n % blocks);
                cyl_fused_prefetch_next(a, b, R, b0, b1, p, p1, 16);
                cyl_fused_blocks16[R - 1](a, b, p, m, zs + (ptrdiff_t)(b - c0) * 80);
                b += R;
            }
            cyl_fused_epilogue16(a, c0, n, p, m, zs);
        }
    }
}

/* ---- AVX2 + FMA: 8 units x 2 gates per row, up to 6 rows --------------- *
 * Profiled at the AVX2 cap (perf, Zen 4): the first version (8 units x 4
 * gates, at most 3 rows, accumulators in an array) lost 5-50 % to the
 * unfused path because GCC kept the array in memory -- 12 stores to the
 * stack per k next to its 12 FMAs -- and each k loaded 15 vectors for 12
 * FMAs; its epilogue after every block divided five times per unit. Now:
 * half-panel blocks of up to 6 rows (12 accumulators in registers, 8 loads
 * per 12 FMAs), the epilogue once per chunk of rows from an L1 copy, and
 * rcp + one Newton step instead of vdivps. The products then run at the
 * FMA rate. Where it seemed to lose under CYLSTM_ISA=avx2 (10-48 units,
 * 1.0-1.34x) the cap was the reason: it does not reach the unfused path's
 * gate loops (AVX-512 target_clones) or OpenBLAS (SKYLAKEX kernels), which
 * there took 25 % and 22 % of that path's time at 32,300,15,10 (perf),
 * while this kernel spent 49 % in its epilogue (10 units: two panels, 16
 * lanes of gate math for 10 units) and 25 % in its products. With the gate
 * loops built for AVX2 (as an AVX2-only CPU runs them) it won from 3 rows
 * and 10 units (CpuBackend.FUSED_STEP_AVX2_* has the numbers); at 1-2 rows
 * the short FMA chains still leave it behind. */

__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE __m256 cyl_exp_neg8(__m256 x0) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    __m256 x = _mm256_max_ps(lo, x0);   /* (lo, x0): a NaN x0 passes through */
    __m256 n;
    __m256 y = cyl_exp_reduced8(x, &n);   /* simd_math.h */
    __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 v = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    return _mm256_and_ps(v, _mm256_cmp_ps(x0, lo, _CMP_NLT_UQ));
}

__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE __m256 cyl_abs8(__m256 x) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/* 1 / d for d in [1, 2]: the 12-bit estimate and one Newton step (within
 * 2 ulp of the quotient). vdivps ymm issues once per 5 cycles on Zen 4 and
 * the step divides five times per unit: a third of the epilogue's time. */
__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE __m256 cyl_recip8(__m256 d) {
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0f)), r);
}

__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE __m256 cyl_sigmoid8(__m256 x) {
    __m256 e = cyl_exp_neg8(_mm256_sub_ps(_mm256_setzero_ps(), cyl_abs8(x)));
    __m256 s = cyl_recip8(_mm256_add_ps(_mm256_set1_ps(1.0f), e));
    return _mm256_blendv_ps(s, _mm256_mul_ps(e, s),
                            _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}

__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE __m256 cyl_tanh8(__m256 x) {
    __m256 ax = cyl_abs8(x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(-5.70498872745e-3f), z,
                               _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    __m256 e = cyl_exp_neg8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), ax));
    __m256 big = _mm256_mul_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), e),
                               cyl_recip8(_mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    big = _mm256_or_ps(big, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

/* Loads and stores of a panel's units: masked only in the last, partial
 * panel (vmaskmovps stores are slow on AMD cores). */
__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE __m256 cyl_ld8(const float *p, __m256i m, int full) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE void cyl_st8(float *p, __m256i m, int full, __m256 v) {
    if (full)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, m, v);
}

#define CYL_FUSED_CHUNK8 48

/* Products of rows [b, b + R) (R <= 6) of half `half` of panel p (gates
 * 2 half, 2 half + 1: two ymm per row) into zs (per row i, f, g, o, c_{t-1},
 * 8 floats each). Why halves: 16 ymm registers hold 6 rows x 2 vectors of
 * accumulators, 2 of the panel and a broadcast -- per k 8 loads for 12 FMAs,
 * and 12 independent chains for the FMA latency (4 cycles x 2 pipes). The
 * whole panel (4 vectors a row) fit 3 rows only: 12 FMAs per 15 loads, the
 * loads the bound (the kernel ran 5-50 % slower than the unfused path). */
__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE void cyl_fused_half8(const int R, const cyl_fused_args *a, int b, int p,
                                             int half, __m256i m, int full, float *zs) {
    const int H = a->H, K = a->K;
    const int unit0 = p * 8;
    const int q0 = 2 * half;
    (void)full;   /* loads mask always: a branch here kept acc[] in memory */
    __m256 acc[6][2];
    if (a->Wp != NULL) {   /* bias + x_t @ W, as in the AVX-512 block */
        for (int q = 0; q < 2; q++) {
            __m256 bq = _mm256_maskload_ps(a->bias + (ptrdiff_t)(q0 + q) * H + unit0, m);
            _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)
                acc[r][q] = bq;
        }
        const float *wpanel = a->Wp + ((ptrdiff_t)p * 2 + half) * a->nx * 16;
        const float *X = a->X + (ptrdiff_t)b * a->ldx;
        for (int k = 0; k < a->nx; k++) {
            const float *wk = wpanel + (ptrdiff_t)k * 16;
            __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8);
            _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
                __m256 xv = _mm256_broadcast_ss(X + (ptrdiff_t)r * a->ldx + k);
                acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
            }
        }
    } else {
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
            const float *zr = a->z + (ptrdiff_t)(b + r) * a->ldz + unit0;
            for (int q = 0; q < 2; q++)
                acc[r][q] = _mm256_maskload_ps(zr + (ptrdiff_t)(q0 + q) * H, m);
        }
    }
    const float *panel = a->Up + ((ptrdiff_t)p * 2 + half) * K * 16;
    const float *A = a->A + (ptrdiff_t)b * a->lda;
    for (int k = 0; k < K; k++) {
        const float *bk = panel + (ptrdiff_t)k * 16;
        __m256 u0 = _mm256_loadu_ps(bk), u1 = _mm256_loadu_ps(bk + 8);
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(A + (ptrdiff_t)r * a->lda + k);
            acc[r][0] = _mm256_fmadd_ps(av, u0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, u1, acc[r][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
        _mm256_store_ps(zs + r * 40 + q0 * 8, acc[r][0]);
        _mm256_store_ps(zs + r * 40 + q0 * 8 + 8, acc[r][1]);
    }
    if (half == 1)
        /* c_{t-1} here, before the chunk's stores (4K aliasing, as above). */
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++)
            _mm256_store_ps(zs + r * 40 + 32,
                            _mm256_maskload_ps(a->c + (ptrdiff_t)(b + r) * a->ldc + unit0, m));
}

#define CYL_HALF8(R)                                                                \
    __attribute__((target("avx2,fma"), noinline))                                  \
    static void cyl_fused_half8_##R(const cyl_fused_args *a, int b, int p, int half, \
                                    __m256i m, int full, float *zs) {               \
        cyl_fused_half8(R, a, b, p, half, m, full, zs);                             \
    }
CYL_HALF8(1)
CYL_HALF8(2)
CYL_HALF8(3)
CYL_HALF8(4)
CYL_HALF8(5)
CYL_HALF8(6)
#undef CYL_HALF8

static void (*const cyl_fused_halves8[6])(const cyl_fused_args *, int, int, int, __m256i, int,
                                          float *) = {
    cyl_fused_half8_1, cyl_fused_half8_2, cyl_fused_half8_3,
    cyl_fused_half8_4, cyl_fused_half8_5, cyl_fused_half8_6};

/* acc[s][q] += A[r, k] * panel[k][q] for k < K: with R = 2 rows s = r;
 * with one row s = k % 2, two chains per gate (one row's four gates alone
 * are four chains, half the FMA latency x throughput of the core). */
__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE void cyl_fused_full8_product(const int R, __m256 acc[2][4],
                                                     const float *A, ptrdiff_t lda,
                                                     const float *panel, int K) {
    const ptrdiff_t hs = (ptrdiff_t)K * 16;   /* the second half of the panel */
    int k = 0;
    if (R == 1) {
        for (; k + 2 <= K; k += 2) {
            const float *bk = panel + (ptrdiff_t)k * 16;
            __m256 a0 = _mm256_broadcast_ss(A + k), a1 = _mm256_broadcast_ss(A + k + 1);
            for (int q = 0; q < 4; q++)
                acc[0][q] = _mm256_fmadd_ps(a0, _mm256_loadu_ps(bk + (q >> 1) * hs + 8 * (q & 1)),
                                            acc[0][q]);
            for (int q = 0; q < 4; q++)
                acc[1][q] = _mm256_fmadd_ps(a1, _mm256_loadu_ps(bk + 16 + (q >> 1) * hs
                                                                + 8 * (q & 1)), acc[1][q]);
        }
    }
    for (; k < K; k++) {
        const float *bk = panel + (ptrdiff_t)k * 16;
        __m256 u0 = _mm256_loadu_ps(bk), u1 = _mm256_loadu_ps(bk + 8);
        __m256 u2 = _mm256_loadu_ps(bk + hs), u3 = _mm256_loadu_ps(bk + hs + 8);
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(A + (ptrdiff_t)r * lda + k);
            acc[r][0] = _mm256_fmadd_ps(av, u0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, u1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(av, u2, acc[r][2]);
            acc[r][3] = _mm256_fmadd_ps(av, u3, acc[r][3]);
        }
    }
}

/* Products of rows [b, b + R) (R <= 2) of the whole panel p into zs: the
 * half-panel blocks give one or two rows only 2-4 FMA chains. */
__attribute__((target("avx2,fma")))
static CYL_FORCE_INLINE void cyl_fused_full8(const int R, const cyl_fused_args *a, int b, int p,
                                             __m256i m, float *zs) {
    const int H = a->H;
    const int unit0 = p * 8;
    __m256 acc[2][4];
    for (int q = 0; q < 4; q++) {
        if (a->Wp != NULL) {
            __m256 bq = _mm256_maskload_ps(a->bias + (ptrdiff_t)q * H + unit0, m);
            acc[0][q] = bq;
            acc[1][q] = R == 2 ? bq : _mm256_setzero_ps();
        } else {
            acc[0][q] = _mm256_maskload_ps(a->z + (ptrdiff_t)b * a->ldz + (ptrdiff_t)q * H + unit0,
                                           m);
            acc[1][q] = R == 2 ? _mm256_maskload_ps(a->z + (ptrdiff_t)(b + 1) * a->ldz
                                                    + (ptrdiff_t)q * H + unit0, m)
                               : _mm256_setzero_ps();
        }
    }
    if (a->Wp != NULL)
        cyl_fused_full8_product(R, acc, a->X + (ptrdiff_t)b * a->ldx, a->ldx,
                                a->Wp + (ptrdiff_t)p * a->nx * 32, a->nx);
    cyl_fused_full8_product(R, acc, a->A + (ptrdiff_t)b * a->lda, a->lda,
                            a->Up + (ptrdiff_t)p * a->K * 32, a->K);
    if (R == 1)
        for (int q = 0; q < 4; q++)
            acc[0][q] = _mm256_add_ps(acc[0][q], acc[1][q]);
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < 4; q++)
            _mm256_store_ps(zs + r * 40 + q * 8, acc[r][q]);
        _mm256_store_ps(zs + r * 40 + 32,
                        _mm256_maskload_ps(a->c + (ptrdiff_t)(b + r) * a->ldc + unit0, m));
    }
}

__attribute__((target("avx2,fma"), noinline))
static void cyl_fused_full8_1(const cyl_fused_args *a, int b, int p, __m256i m, float *zs) {
    cyl_fused_full8(1, a, b, p, m, zs);
}

__attribute__((target("avx2,fma"), noinline))
static void cyl_fused_full8_2(const cyl_fused_args *a, int b, int p, __m256i m, float *zs) {
    cyl_fused_full8(2, a, b, p, m, zs);
}

/* Gates, c_t and h_t of rows [b, b + n) of panel p from their copy zs. */
__attribute__((target("avx2,fma")))
static void cyl_fused_epilogue8(const cyl_fused_args *a, int b, int n, int p, __m256i m,
                                int full, const float *zs) {
    const ptrdiff_t H = a->H;
    const int unit0 = p * 8;
    for (int r = 0; r < n; r++) {
        const float *zr = zs + r * 40;
        const ptrdiff_t row = b + r;
        __m256 gi = cyl_sigmoid8(_mm256_load_ps(zr));
        __m256 gf = cyl_sigmoid8(_mm256_load_ps(zr + 8));
        __m256 gg = cyl_tanh8(_mm256_load_ps(zr + 16));
        __m256 go = cyl_sigmoid8(_mm256_load_ps(zr + 24));
        __m256 cold = _mm256_load_ps(zr + 32);
        __m256 cn = _mm256_fmadd_ps(gf, cold, _mm256_mul_ps(gi, gg));
        __m256 tc = cyl_tanh8(cn);
        __m256 hn = _mm256_mul_ps(go, tc);
        if (a->cprev != NULL)
            cyl_st8(a->cprev + row * a->ldcp + unit0, m, full, cold);
        if (a->tc != NULL)
            cyl_st8(a->tc + row * a->ldtc + unit0, m, full, tc);
        if (a->store_act) {
            float *z = a->z + row * a->ldz + unit0;
            cyl_st8(z, m, full, gi);
            cyl_st8(z + H, m, full, gf);
            cyl_st8(z + 2 * H, m, full, gg);
            cyl_st8(z + 3 * H, m, full, go);
        }
        if (a->mask != NULL && !a->mask[row * a->mask_stride])
            continue;   /* a masked row keeps c_{t-1}; the caller carries h */
        cyl_st8(a->c + row * a->ldc + unit0, m, full, cn);
        cyl_st8(a->h + row * a->ldh + unit0, m, full, hn);
        if (a->out != NULL)
            cyl_st8(a->out + row * a->ldo + unit0, m, full, hn);
    }
}

__attribute__((target("avx2,fma")))
static void cyl_fused_step_avx2(const cyl_fused_args *a, int b0, int b1, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        int w = a->H - p * 8;
        w = w > 8 ? 8 : w;
        int full = w == 8;
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(w),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        if (p == p0)
            cyl_fused_prefetch(a, b0, b1 - b0 < 6 ? b1 - b0 : 6, p * 8, w);
        __attribute__((aligned(32))) float zs[CYL_FUSED_CHUNK8 * 40];
        for (int c0 = b0; c0 < b1; c0 += CYL_FUSED_CHUNK8) {
            int c1 = b1 - c0 > CYL_FUSED_CHUNK8 ? c0 + CYL_FUSED_CHUNK8 : b1;
            /* Blocks of nearly equal rows, at most 6 (as the AVX-512 kernel). */
            int n = c1 - c0, blocks = (n + 5) / 6;
            for (int i = 0, b = c0; i < blocks; i++) {
                int R = n / blocks + (i < n % blocks);
                cyl_fused_prefetch_next(a, b, R, b0, b1, p, p1, 8);
                float *zb = zs + (ptrdiff_t)(b - c0) * 40;
                if (R <= 2) {   /* only when the whole chunk is 1-2 rows */
                    (R == 1 ? cyl_fused_full8_1 : cyl_fused_full8_2)(a, b, p, m, zb);
                } else {
                    cyl_fused_halves8[R - 1](a, b, p, 0, m, full, zb);
                    cyl_fused_halves8[R - 1](a, b, p, 1, m, full, zb);
                }
                b += R;
            }
            cyl_fused_epilogue8(a, c0, n, p, m, full, zs);
        }
    }
}

#endif

/* One step for rows [b0, b1) and unit panels [p0, p1), at the level the
 * packing was made for (a->u). */
static void cyl_fused_step_f32(const cyl_fused_args *a, int b0, int b1, int p0, int p1) {
#if CYL_HAVE_X86_KERNELS
    if (a->u == 16)
        cyl_fused_step_avx512(a, b0, b1, p0, p1);
    else if (a->u == 8)
        cyl_fused_step_avx2(a, b0, b1, p0, p1);
#else
    (void)a; (void)b0; (void)b1; (void)p0; (void)p1;
#endif
}

#endif
