/* The LSTM cell update, fused, float32 with tanh/sigmoid: c_t, tanh(c_t)
 * and m_t = o * tanh(c_t) of a block of rows in one pass, and the gradient
 * of one row's gates and cell in one pass.
 *
 * Why: the Cython loops they replace are compiled for the baseline x86-64
 * target (SSE2 at best) and walked the gate block in several passes. These
 * are built for AVX-512 / AVX2 / the baseline and picked per call from the
 * kernels' level (CYL_ISA_STAMP, see isa.h). Measured with `perf` at 16,100,64,128 on
 * one thread: the Cython gradient loop was 12 % of a training step, this
 * one is 2 %; a training step got 6-10 % faster and inference about 5 %.
 * tanh(c_t) is cyl_tanh1, as on the unfused path.
 */
#ifndef CYLSTM_CELL_H
#define CYLSTM_CELL_H

#include "fastmath.h"

#if defined(_MSC_VER)
#define CYL_RESTRICT __restrict
#else
#define CYL_RESTRICT restrict
#endif

/* The cell update of rows [0, nb) after the gate activations: for row b,
 * a = gates + b * G holds i, f, g, o (G = 4H); c (nb, H) holds c_{t-1} and
 * becomes c_t, except for rows whose byte in `mask` (stride mask_stride; NULL
 * means all rows) is 0, which keep c_{t-1}; tc (nb, H), unless NULL, receives
 * tanh(c) and m (nb, H) o * tanh(c) for every row. */
CYL_ISA_BODY void cyl_lstm_cell_f32_body(const float *CYL_RESTRICT gates, Py_ssize_t G,
                                         float *CYL_RESTRICT c, float *CYL_RESTRICT tc,
                                         float *CYL_RESTRICT m, Py_ssize_t nb, Py_ssize_t H,
                                         const unsigned char *mask, Py_ssize_t mask_stride) {
    for (Py_ssize_t b = 0; b < nb; b++) {
        const float *CYL_RESTRICT a = gates + b * G;
        float *CYL_RESTRICT cb = c + b * H;
        float *CYL_RESTRICT tb = tc != NULL ? tc + b * H : NULL;
        float *CYL_RESTRICT mb = m + b * H;
        if (mask == NULL || mask[b * mask_stride]) {
            for (Py_ssize_t j = 0; j < H; j++)
                cb[j] = a[H + j] * cb[j] + a[j] * a[2 * H + j];
        }
        if (tc != NULL) {
            for (Py_ssize_t j = 0; j < H; j++) {
                float t = cyl_tanh1(cb[j]);
                tb[j] = t;
                mb[j] = a[3 * H + j] * t;
            }
        } else {
            for (Py_ssize_t j = 0; j < H; j++)
                mb[j] = a[3 * H + j] * cyl_tanh1(cb[j]);
        }
    }
}
CYL_ISA_STAMP(cyl_lstm_cell_f32,
              (const float *CYL_RESTRICT gates, Py_ssize_t G, float *CYL_RESTRICT c,
               float *CYL_RESTRICT tc, float *CYL_RESTRICT m, Py_ssize_t nb, Py_ssize_t H,
               const unsigned char *mask, Py_ssize_t mask_stride),
              (gates, G, c, tc, m, nb, H, mask, mask_stride))

static void cyl_lstm_cell_f32(const float *CYL_RESTRICT gates, Py_ssize_t G, float *CYL_RESTRICT c,
                              float *CYL_RESTRICT tc, float *CYL_RESTRICT m, Py_ssize_t nb,
                              Py_ssize_t H, const unsigned char *mask,
                              Py_ssize_t mask_stride) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_lstm_cell_f32, (gates, G, c, tc, m, nb, H, mask, mask_stride));
}

/* The gradient of the row: dz holds the activations i, f, g, o on entry and
 * d(pre-activations) on exit; tc is tanh(c_t), cprev c_{t-1}, dm the
 * gradient w.r.t. m_t; dc is d c_t on entry and d c_{t-1} on exit. */
CYL_ISA_BODY void cyl_lstm_cell_grad_f32_body(float *CYL_RESTRICT dz,
                                              const float *CYL_RESTRICT tc,
                                              const float *CYL_RESTRICT cprev,
                                              const float *CYL_RESTRICT dm,
                                              float *CYL_RESTRICT dc, Py_ssize_t H) {
    for (Py_ssize_t j = 0; j < H; j++) {
        float ai = dz[j], af = dz[H + j], ag = dz[2 * H + j], ao = dz[3 * H + j];
        float t = tc[j], mj = dm[j];
        float dcj = dc[j] + mj * ao * (1 - t * t);
        dz[j] = dcj * ag * ai * (1 - ai);
        dz[H + j] = dcj * cprev[j] * af * (1 - af);
        dz[2 * H + j] = dcj * ai * (1 - ag * ag);
        dz[3 * H + j] = mj * t * ao * (1 - ao);
        dc[j] = dcj * af;
    }
}
CYL_ISA_STAMP(cyl_lstm_cell_grad_f32,
              (float *CYL_RESTRICT dz, const float *CYL_RESTRICT tc,
               const float *CYL_RESTRICT cprev, const float *CYL_RESTRICT dm,
               float *CYL_RESTRICT dc, Py_ssize_t H),
              (dz, tc, cprev, dm, dc, H))

static void cyl_lstm_cell_grad_f32(float *CYL_RESTRICT dz, const float *CYL_RESTRICT tc,
                                   const float *CYL_RESTRICT cprev, const float *CYL_RESTRICT dm,
                                   float *CYL_RESTRICT dc, Py_ssize_t H) {
    CYL_ISA_CALL(cyl_isa_now(), cyl_lstm_cell_grad_f32, (dz, tc, cprev, dm, dc, H));
}

#endif
