/* The elementwise part of one backward step, for a block of rows in one
 * call: the gradient reaching each row's output, the masks, and the gate and
 * cell gradients, float32 and float64.
 *
 * Why: lstm_backward.pyx walked these per row and per pass in Cython loops
 * built for the baseline target, with one call of the cell gradient per row.
 * Measured with `perf` at 128,300,15,10 (one thread, AMD EPYC Zen 4) those
 * loops and calls were 20 % of a training step, twice the time of the
 * step's product. Here each row is one pass, in loops built for AVX-512 /
 * AVX2 / the baseline and picked per call from the kernels' level
 * (CYL_ISA_STAMP, see isa.h).
 *
 * Notation as in lstm_backward.pyx; no projection (the output is h, P = H).
 */
#ifndef CYLSTM_BACKWARD_STEP_H
#define CYLSTM_BACKWARD_STEP_H

#include <string.h>

#include "fastmath.h"

#if defined(_MSC_VER)
#define CYL_BW_RESTRICT __restrict
#else
#define CYL_BW_RESTRICT restrict
#endif

/* Rows [0, nb) of one step, stored activations (the fused float32 forward):
 * dz (row stride G = 4H) holds the activations i, f, g, o on entry and the
 * gate gradients on exit; tc (nb, H) is tanh(c_t); cprev (nb, H) c_{t-1}.
 * dh, dprev (nb, H): gradients w.r.t. h_t and the repeated previous output;
 * dc (nb, H): w.r.t. c_t on entry, c_{t-1} on exit. dseq, unless NULL, is
 * the gradient of the sequence output at this step, row stride dseq_stride.
 * A row whose byte in mask (stride mask_stride; NULL: every row) is 0 is a
 * masked step: its gate gradients are 0 and dh, dc carry over. */
CYL_ISA_BODY void cyl_bwd_gates_act_f32_body(
    float *CYL_BW_RESTRICT dz, const float *CYL_BW_RESTRICT tc,
    const float *CYL_BW_RESTRICT cprev, float *CYL_BW_RESTRICT dh, float *CYL_BW_RESTRICT dc,
    float *CYL_BW_RESTRICT dprev, const float *dseq, Py_ssize_t dseq_stride,
    const unsigned char *mask, Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H) {
    const Py_ssize_t G = 4 * H;
    /* The sequence gradient first, in a pass of its own: its rows are far
     * apart (a batch-major dseq), and a loop of loads alone keeps many of
     * them in flight (interleaved with the gate math, this load was 60 % of
     * the call at 128,300,15,10). */
    if (dseq != NULL) {
        for (Py_ssize_t b = 0; b < nb; b++) {
            const float *CYL_BW_RESTRICT sb = dseq + b * dseq_stride;
            float *CYL_BW_RESTRICT pb = dprev + b * H;
            for (Py_ssize_t j = 0; j < H; j++)
                pb[j] += sb[j];
        }
    }
    for (Py_ssize_t b = 0; b < nb; b++) {
        float *CYL_BW_RESTRICT z = dz + b * G;
        float *CYL_BW_RESTRICT hb = dh + b * H;
        float *CYL_BW_RESTRICT cb = dc + b * H;
        float *CYL_BW_RESTRICT pb = dprev + b * H;
        const float *CYL_BW_RESTRICT tb = tc + b * H;
        const float *CYL_BW_RESTRICT cp = cprev + b * H;
        if (mask != NULL && !mask[b * mask_stride]) {
            memset(z, 0, (size_t)G * sizeof(float));
            continue;
        }
        for (Py_ssize_t j = 0; j < H; j++) {
            float mj = hb[j] + pb[j];
            pb[j] = 0;
            hb[j] = mj;
            float ai = z[j], af = z[H + j], ag = z[2 * H + j], ao = z[3 * H + j];
            float t = tb[j];
            float dcj = cb[j] + mj * ao * (1 - t * t);
            z[j] = dcj * ag * ai * (1 - ai);
            z[H + j] = dcj * cp[j] * af * (1 - af);
            z[2 * H + j] = dcj * ai * (1 - ag * ag);
            z[3 * H + j] = mj * t * ao * (1 - ao);
            cb[j] = dcj * af;
        }
    }
}
CYL_ISA_STAMP(cyl_bwd_gates_act_f32,
              (float *CYL_BW_RESTRICT dz, const float *CYL_BW_RESTRICT tc,
               const float *CYL_BW_RESTRICT cprev, float *CYL_BW_RESTRICT dh,
               float *CYL_BW_RESTRICT dc, float *CYL_BW_RESTRICT dprev, const float *dseq,
               Py_ssize_t dseq_stride, const unsigned char *mask, Py_ssize_t mask_stride,
               Py_ssize_t nb, Py_ssize_t H),
              (dz, tc, cprev, dh, dc, dprev, dseq, dseq_stride, mask, mask_stride, nb, H))

static void cyl_bwd_gates_act_f32(float *CYL_BW_RESTRICT dz, const float *CYL_BW_RESTRICT tc,
                                  const float *CYL_BW_RESTRICT cprev, float *CYL_BW_RESTRICT dh,
                                  float *CYL_BW_RESTRICT dc, float *CYL_BW_RESTRICT dprev,
                                  const float *dseq, Py_ssize_t dseq_stride,
                                  const unsigned char *mask, Py_ssize_t mask_stride,
                                  Py_ssize_t nb, Py_ssize_t H) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_bwd_gates_act_f32,
                 (dz, tc, cprev, dh, dc, dprev, dseq, dseq_stride, mask, mask_stride, nb, H));
}

/* The same step from the pre-activations' activations `a` (row stride G:
 * i, f, g, o) and derivatives `d` (row stride G), act(c_t) `tc` and act'(c_t)
 * `dtc` (nb, H) the caller computed for any activation pair: dz (row stride
 * G) receives the gate gradients (it may be the pre-activation block the
 * caller read a and d from). dm (row stride dm_stride) is the gradient
 * w.r.t. o * act(c_t): dh after the output's gradient was added, or the
 * projection's dh @ Wr^T. Masked rows: dz = 0, dc carried. The gradient
 * reaching the output (dseq, dprev, dh) is handled by the caller. */
#define CYL_BWD_GATES_PRE(NAME, T)                                                        \
    CYL_ISA_BODY void NAME##_body(T *CYL_BW_RESTRICT dz, const T *CYL_BW_RESTRICT a,                   \
                     const T *CYL_BW_RESTRICT d, const T *CYL_BW_RESTRICT tc,             \
                     const T *CYL_BW_RESTRICT dtc, const T *CYL_BW_RESTRICT cprev,        \
                     const T *CYL_BW_RESTRICT dm, Py_ssize_t dm_stride,                   \
                     T *CYL_BW_RESTRICT dc, const unsigned char *mask,                    \
                     Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H) {               \
        const Py_ssize_t G = 4 * H;                                                       \
        for (Py_ssize_t b = 0; b < nb; b++) {                                             \
            T *CYL_BW_RESTRICT z = dz + b * G;                                            \
            if (mask != NULL && !mask[b * mask_stride]) {                                 \
                memset(z, 0, (size_t)G * sizeof(T));                                      \
                continue;                                                                 \
            }                                                                             \
            const T *CYL_BW_RESTRICT ab = a + b * G;                                      \
            const T *CYL_BW_RESTRICT db = d + b * G;                                      \
            const T *CYL_BW_RESTRICT tb = tc + b * H;                                     \
            const T *CYL_BW_RESTRICT eb = dtc + b * H;                                    \
            const T *CYL_BW_RESTRICT cp = cprev + b * H;                                  \
            const T *CYL_BW_RESTRICT mb = dm + b * dm_stride;                             \
            T *CYL_BW_RESTRICT cb = dc + b * H;                                           \
            for (Py_ssize_t j = 0; j < H; j++) {                                          \
                T mj = mb[j];                                                             \
                T dcj = cb[j] + mj * ab[3 * H + j] * eb[j];                               \
                z[j] = dcj * ab[2 * H + j] * db[j];                                       \
                z[H + j] = dcj * cp[j] * db[H + j];                                       \
                z[2 * H + j] = dcj * ab[j] * db[2 * H + j];                               \
                z[3 * H + j] = mj * tb[j] * db[3 * H + j];                                \
                cb[j] = dcj * ab[H + j];                                                  \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    CYL_ISA_STAMP(NAME,                                                                   \
                  (T *CYL_BW_RESTRICT dz, const T *CYL_BW_RESTRICT a,                     \
                   const T *CYL_BW_RESTRICT d, const T *CYL_BW_RESTRICT tc,               \
                   const T *CYL_BW_RESTRICT dtc, const T *CYL_BW_RESTRICT cprev,          \
                   const T *CYL_BW_RESTRICT dm, Py_ssize_t dm_stride,                     \
                   T *CYL_BW_RESTRICT dc, const unsigned char *mask,                      \
                   Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H),                  \
                  (dz, a, d, tc, dtc, cprev, dm, dm_stride, dc, mask, mask_stride, nb, H)) \
    static void NAME(T *CYL_BW_RESTRICT dz, const T *CYL_BW_RESTRICT a,                   \
                     const T *CYL_BW_RESTRICT d, const T *CYL_BW_RESTRICT tc,             \
                     const T *CYL_BW_RESTRICT dtc, const T *CYL_BW_RESTRICT cprev,        \
                     const T *CYL_BW_RESTRICT dm, Py_ssize_t dm_stride,                   \
                     T *CYL_BW_RESTRICT dc, const unsigned char *mask,                    \
                     Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H) {               \
        CYL_ISA_CALL(cyl_isa_now(), NAME,                                                 \
                     (dz, a, d, tc, dtc, cprev, dm, dm_stride, dc, mask, mask_stride, nb, H)); \
    }

CYL_BWD_GATES_PRE(cyl_bwd_gates_pre_f32, float)
CYL_BWD_GATES_PRE(cyl_bwd_gates_pre_f64, double)

#endif
