# Backpropagation through time for the LSTM of lstm_forward.pyx.
#
# Notation as in lstm_forward.pyx (T, B, I, H, P, G = 4H, step s <-> time t).
# The forward pass in training mode stored, per time index t (time-major):
#   z_store[t]     (B, G)  pre-activations z_t (bias included)
#   hprev_store[t] (B, P)  the h that multiplied U at t (after recurrent dropout)
#   cprev_store[t] (B, H)  c_{t-1};   c_store[t] (B, H)  c_t
#   m_store[t]     (B, H)  o * act(c_t), only with a projection
# On the fused float32 tanh/sigmoid path (`stored_activations`) z_store holds
# the gate activations and c_store tanh(c_t); the derivatives then come from
# them (s (1 - s), 1 - t^2) with no transcendental function in this pass.
#
# Walking the steps in reverse processing order, with dh, dc the gradients
# w.r.t. the state after the step and dprev the gradient w.r.t. the
# "previous output" that masked steps repeat:
#   d_out  = d_seq[t] + dprev
#   unmasked: dh += d_out; dprev = 0; dm = dh (or dh @ Wr^T)
#             dc' = dc + dm * o * act'(c_t)
#             dz  = [dc' g rec'(z_i), dc' c_{t-1} rec'(z_f), dc' i act'(z_g),
#                    dm act(c_t) rec'(z_o)]
#             dc  = dc' f;  dh = (dz @ U^T) [* rec_mask]
#             (per-gate masks r_k: dh = sum_k (dz[:, k] @ U[:, k]^T) * r_k)
#   masked:   dprev = d_out; dz = 0; dh, dc carried unchanged
# backward_rows handles a range of rows (rows are independent, so ranges run
# in parallel threads); the elementwise part of a step (output gradient,
# masks, gate and cell gradients) is one C call per row block
# (backward_step.h), the product dz_t @ U^T the step kernel's or BLAS's.
# After the loop, backward_weights does one gemm each: dW += X^T dZ,
# dU += Hprev^T dZ, dX = dZ W^T, dWr += M^T dH; db += sum dZ -- or, given
# lstm_backward_join's [X | Hprev | 1], dW, dU and db as one product.
# With per-gate dropout masks (input or recurrent) those products take a mask
# per gate column block; cylstm/_ops.py makes them with NumPy instead.
from cython cimport floating
from libc.string cimport memcpy, memset

from .blas cimport gemm
from .recurrent cimport cyl_recurrent_isa, recurrent_product
from .activations cimport activate, activate_grad, activate_gates, activate_gates_grad

cdef extern from "cell.h" nogil:
    void cyl_lstm_cell_grad_f32(float* dz, const float* tc, const float* cprev,
                                const float* dm, float* dc, Py_ssize_t H)

cdef extern from "backward_step.h" nogil:
    void cyl_bwd_gates_act_f32(float* dz, const float* tc, const float* cprev, float* dh,
                               float* dc, float* dprev, const float* dseq,
                               Py_ssize_t dseq_stride, const unsigned char* mask,
                               Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H)
    void cyl_bwd_gates_pre_f32(float* dz, const float* a, const float* d, const float* tc,
                               const float* dtc, const float* cprev, const float* dm,
                               Py_ssize_t dm_stride, float* dc, const unsigned char* mask,
                               Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H)
    void cyl_bwd_gates_pre_f64(double* dz, const double* a, const double* d, const double* tc,
                               const double* dtc, const double* cprev, const double* dm,
                               Py_ssize_t dm_stride, double* dc, const unsigned char* mask,
                               Py_ssize_t mask_stride, Py_ssize_t nb, Py_ssize_t H)


cdef void backward_rows(
        int T, int B, int H, int P,
        const floating* UT, const float* UTp, int UTp_width, const floating* Wr,
        const unsigned char* mask,           # (B, T) or NULL
        const floating* rec_mask,            # (B, P) or NULL
        # Per-gate recurrent dropout (instead of rec_mask), or NULL: masks
        # (4, B, P); UTgp: the gate row blocks of UT packed (4 of UTgp_size
        # values each), or NULL for BLAS.
        const floating* rec_mask_gates, const float* UTgp, Py_ssize_t UTgp_size,
        bint go_backwards, int act, int rec_act,
        floating* z_store,                   # (T, B, G) in: z; out: dz
        const floating* cprev_store, const floating* c_store,
        const floating* d_seq, Py_ssize_t d_stride_t, Py_ssize_t d_stride_b,
        bint d_processing_order,
        floating* dh, floating* dc, floating* dprev,   # (B,P), (B,H), (B,P) in/out
        floating* dh_store,                  # (T, B, P) out, projection only
        floating* scratch,                   # nb * (2G + 2H + max(H, P))
        bint stored_activations,
        int b0, int b1) noexcept nogil:
    """The per-step part for rows [b0, b1): turns z_store into dz (and fills
    dh_store), updates dh, dc, dprev. Rows are independent, so row ranges can
    run in parallel."""
    cdef int G = 4 * H
    cdef int nb = b1 - b0
    cdef bint has_proj = Wr != NULL
    cdef int s, t, b, j
    cdef Py_ssize_t row
    cdef const floating* drow
    cdef const floating* cprow
    cdef floating* zblk
    cdef floating* dzrow
    cdef floating* dhrow
    cdef floating* dcrow
    cdef floating* dm
    cdef floating* act_z = scratch                       # (nb, G) activations
    cdef floating* der_z = act_z + <Py_ssize_t>nb * G    # (nb, G) derivatives
    cdef floating* tc = der_z + <Py_ssize_t>nb * G       # (nb, H) act(c_t)
    cdef floating* dtc = tc + <Py_ssize_t>nb * H         # (nb, H) act'(c_t)
    cdef floating* tmp = dtc + <Py_ssize_t>nb * H        # (nb, max(H, P))
    cdef const floating* mk
    cdef int k
    cdef const unsigned char* mrow
    cdef bint fused = stored_activations and not has_proj and floating is float
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if go_backwards else s
        mrow = mask + <Py_ssize_t>b0 * T + t if mask != NULL else NULL
        zblk = z_store + (<Py_ssize_t>t * B + b0) * G
        if fused:
            # The output's gradient, the masks and the gate and cell
            # gradients of the block in one call (backward_step.h).
            if floating is float:
                cyl_bwd_gates_act_f32(
                    zblk, c_store + (<Py_ssize_t>t * B + b0) * H,
                    cprev_store + (<Py_ssize_t>t * B + b0) * H, dh + <Py_ssize_t>b0 * P,
                    dc + <Py_ssize_t>b0 * H, dprev + <Py_ssize_t>b0 * P,
                    d_seq + (s if d_processing_order else t) * d_stride_t + b0 * d_stride_b
                    if d_seq != NULL else NULL,
                    d_stride_b, mrow, T, nb, H)
        # Gradient reaching each row's output at this step.
        for b in range(b0 if not fused else b1, b1):
            row = <Py_ssize_t>b * P
            if d_seq != NULL:
                drow = d_seq + (s if d_processing_order else t) * d_stride_t + b * d_stride_b
                for j in range(P):
                    dprev[row + j] += drow[j]
            if mask == NULL or mask[<Py_ssize_t>b * T + t]:
                for j in range(P):
                    dh[row + j] += dprev[row + j]
                    dprev[row + j] = 0
        if has_proj:
            # dm = dh @ Wr^T for the rows; masked rows are ignored below.
            gemm(False, True, nb, H, P, 1, dh + <Py_ssize_t>b0 * P, P, Wr, P, 0, tmp, H)
            memcpy(dh_store + (<Py_ssize_t>t * B + b0) * P, dh + <Py_ssize_t>b0 * P,
                   <Py_ssize_t>nb * P * sizeof(floating))
        if not stored_activations:
            # Activations and derivatives of the block, before dz overwrites z.
            activate_gates(act, rec_act, zblk, act_z, NULL, nb, H)
            activate_gates_grad(act, rec_act, zblk, der_z, NULL, nb, H)
            activate(act, c_store + (<Py_ssize_t>t * B + b0) * H, tc, <Py_ssize_t>nb * H)
            activate_grad(act, c_store + (<Py_ssize_t>t * B + b0) * H, dtc,
                          <Py_ssize_t>nb * H)
            # The gate and cell gradients of the block in one call.
            if floating is float:
                cyl_bwd_gates_pre_f32(
                    zblk, act_z, der_z, tc, dtc, cprev_store + (<Py_ssize_t>t * B + b0) * H,
                    tmp if has_proj else dh + <Py_ssize_t>b0 * P, H if has_proj else P,
                    dc + <Py_ssize_t>b0 * H, mrow, T, nb, H)
            else:
                cyl_bwd_gates_pre_f64(
                    zblk, act_z, der_z, tc, dtc, cprev_store + (<Py_ssize_t>t * B + b0) * H,
                    tmp if has_proj else dh + <Py_ssize_t>b0 * P, H if has_proj else P,
                    dc + <Py_ssize_t>b0 * H, mrow, T, nb, H)
            if has_proj and mask != NULL:
                for b in range(b0, b1):
                    if not mask[<Py_ssize_t>b * T + t]:
                        memset(dh_store + (<Py_ssize_t>t * B + b) * P, 0, P * sizeof(floating))
        for b in range(b0, b1 if stored_activations and not fused else b0):
            dzrow = zblk + <Py_ssize_t>(b - b0) * G
            if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
                memset(dzrow, 0, G * sizeof(floating))
                if has_proj:
                    memset(dh_store + (<Py_ssize_t>t * B + b) * P, 0, P * sizeof(floating))
                continue
            row = <Py_ssize_t>(b - b0)
            dm = tmp + row * H if has_proj else dh + <Py_ssize_t>b * P
            cprow = cprev_store + (<Py_ssize_t>t * B + b) * H
            dcrow = dc + <Py_ssize_t>b * H
            # Stored activations with a projection (not made by today's
            # forward, which stores activations only without one): per row.
            # dzrow holds i, f, g, o and c_store tanh(c_t) (float32 only).
            if floating is float:
                cyl_lstm_cell_grad_f32(dzrow, c_store + (<Py_ssize_t>t * B + b) * H,
                                       cprow, dm, dcrow, H)
        if rec_mask_gates != NULL:
            # dh_{t-1} = sum_k (dz_t[:, k] @ U[:, k]^T) * r_k; U[:, k]^T is
            # rows [kH, (k+1)H) of UT. Masked rows carry dh.
            for k in range(4):
                memset(tmp, 0, <Py_ssize_t>nb * P * sizeof(floating))
                recurrent_product(nb, P, H, zblk + k * H, G, UT + <Py_ssize_t>k * H * P,
                                  UTgp + k * UTgp_size if UTgp != NULL else NULL,
                                  UTp_width, tmp, P)
                for b in range(b0, b1):
                    if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
                        continue
                    dhrow = dh + <Py_ssize_t>b * P
                    dzrow = tmp + <Py_ssize_t>(b - b0) * P
                    mk = rec_mask_gates + (<Py_ssize_t>k * B + b) * P
                    if k == 0:
                        for j in range(P):
                            dhrow[j] = dzrow[j] * mk[j]
                    else:
                        for j in range(P):
                            dhrow[j] += dzrow[j] * mk[j]
            continue
        # dh_{t-1} = dz_t @ U^T for unmasked rows; masked rows carry dh.
        if mask == NULL and rec_mask == NULL:
            # Every row takes the product: straight into dh.
            memset(dh + <Py_ssize_t>b0 * P, 0, <Py_ssize_t>nb * P * sizeof(floating))
            recurrent_product(nb, P, G, zblk, G, UT, UTp, UTp_width, dh + <Py_ssize_t>b0 * P, P)
            continue
        memset(tmp, 0, <Py_ssize_t>nb * P * sizeof(floating))
        recurrent_product(nb, P, G, zblk, G, UT, UTp, UTp_width, tmp, P)
        for b in range(b0, b1):
            if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
                continue
            dhrow = dh + <Py_ssize_t>b * P
            dzrow = tmp + <Py_ssize_t>(b - b0) * P
            for j in range(P):
                if rec_mask != NULL:
                    dhrow[j] = dzrow[j] * rec_mask[<Py_ssize_t>b * P + j]
                else:
                    dhrow[j] = dzrow[j]


cdef void backward_weights(
        int T, int B, int I, int H, int P,
        const floating* x, const floating* W, const floating* hprev_store,
        const floating* m_store, const floating* dz, const floating* dh_store,
        floating* dx, floating* dW, floating* dU, floating* db, floating* dWr,
        const floating* xh, int xh_width, bint dx_batch_major,
        int g0, int g1, int p0, int p1, Py_ssize_t r0, Py_ssize_t r1,
        Py_ssize_t k0, Py_ssize_t k1) noexcept nogil:
    """The large products, once for all steps and rows: gate columns
    [g0, g1) of dW, dU and db, columns [p0, p1) of dWr and the flattened rows
    [r0, r1) of dx. Disjoint ranges may run in parallel threads. With `xh`
    ((T*B, I + P): X and Hprev side by side, see lstm_backward_join), dU must
    be dW + I * G: one product makes both (each product packs dZ again, and
    at 16,100,64,128 the one product was 20 % faster than the two). `xh`'s
    rows are `xh_width` long: I + P, or I + P + 1 with a last column of ones,
    whose product row is db (which must then be dW + (I + P) * G); that
    product sums over the flattened rows [k0, k1) only (threads may each
    take a range into a partial sum of their own). With
    `dx_batch_major`, dx is (B, T, I) and [r0, r1) are batch rows."""
    cdef int G = 4 * H
    cdef int TB = T * B
    cdef int ng = g1 - g0, npj = p1 - p0
    cdef int nr = <int>(r1 - r0)
    cdef Py_ssize_t row
    cdef int j
    cdef const floating* dzrow
    if ng > 0 and xh != NULL:
        # dW and dU in one product: [X | Hprev]^T dZ, dU's rows right after
        # dW's (and db's after dU's when xh ends in a column of ones).
        if k1 > k0:
            gemm(True, False, xh_width, ng, <int>(k1 - k0), 1, xh + k0 * xh_width, xh_width,
                 dz + k0 * G + g0, G, 1, dW + g0, G)
    elif ng > 0:
        gemm(True, False, I, ng, TB, 1, x, I, dz + g0, G, 1, dW + g0, G)
        gemm(True, False, P, ng, TB, 1, hprev_store, P, dz + g0, G, 1, dU + g0, G)
    if ng > 0 and (xh == NULL or xh_width == I + P):
        for row in range(TB):
            dzrow = dz + row * G
            for j in range(g0, g1):
                db[j] += dzrow[j]
    if dWr != NULL and npj > 0:
        gemm(True, False, H, npj, TB, 1, m_store, H, dh_store + p0, P, 1, dWr + p0, P)
    if dx != NULL and nr > 0 and dx_batch_major:
        # dx (B, T, I): batch row b is dZ[:, b] (T rows, B * G apart) @ W^T,
        # written in place of a time-major dx and a transposed copy.
        for row in range(r0, r1):
            gemm(False, True, T, I, G, 1, dz + row * G, B * G, W, G, 0, dx + row * T * I, I)
    elif dx != NULL and nr > 0:
        gemm(False, True, nr, I, G, 1, dz + r0 * G, G, W, G, 0, dx + r0 * I, I)


def lstm_backward_steps(
        const floating[:, ::1] UT, const float[:, ::1] UT_packed, const floating[:, ::1] Wr,
        const unsigned char[:, ::1] mask, const floating[:, ::1] rec_mask,
        const floating[:, :, ::1] rec_mask_gates, const float[:, :, ::1] UT_gates_packed,
        bint go_backwards, int act, int rec_act,
        floating[:, :, ::1] z_store, const floating[:, :, ::1] cprev_store,
        const floating[:, :, ::1] c_store,
        const floating[:, :, ::1] d_seq, bint d_time_major, bint d_processing_order,
        floating[:, ::1] dh, floating[:, ::1] dc, floating[:, ::1] dprev,
        floating[:, :, ::1] dh_store, floating[::1] scratch, bint stored_activations,
        int b0, int b1):
    """The time loop of the backward pass for rows [b0, b1), in place.

    `UT` is the recurrent kernel transposed, (G, P) C-contiguous, and
    `UT_packed` its `pack_recurrent` form or None. Per-gate recurrent dropout:
    `rec_mask_gates` (4, B, P) replaces `rec_mask`, and `UT_gates_packed`
    stacks the `pack_recurrent` forms of UT's four gate row blocks (or is
    None; `UT_packed` is then unused). `stored_activations`: the
    forward pass ran the fused float32 tanh/sigmoid path (z_store holds the
    gate activations, c_store tanh(c_t)).
    `dh`, `dc`, `dprev` hold the gradients w.r.t. the final h, c and the last
    output on entry and w.r.t. h0, c0 on exit. The gate gradients overwrite
    `z_store` (so a forward pass is backpropagated once); `dh_store` is needed
    with a projection only. Every shape was validated by the caller.
    """
    cdef int T = z_store.shape[0], B = z_store.shape[1]
    cdef int P = dh.shape[1], H = dc.shape[1]
    cdef Py_ssize_t st = 0, sb = 0
    if d_seq is not None:
        st = d_seq.strides[0 if d_time_major else 1] // sizeof(floating)
        sb = d_seq.strides[1 if d_time_major else 0] // sizeof(floating)
    if T == 0 or b1 <= b0:
        return
    with nogil:
        backward_rows(
            T, B, H, P, &UT[0, 0], &UT_packed[0, 0] if UT_packed is not None else NULL,
            UT_packed.shape[1] if UT_packed is not None
            else (UT_gates_packed.shape[2] if UT_gates_packed is not None else 0),
            &Wr[0, 0] if Wr is not None else NULL,
            &mask[0, 0] if mask is not None else NULL,
            &rec_mask[0, 0] if rec_mask is not None else NULL,
            &rec_mask_gates[0, 0, 0] if rec_mask_gates is not None else NULL,
            &UT_gates_packed[0, 0, 0] if UT_gates_packed is not None else NULL,
            UT_gates_packed.shape[1] * UT_gates_packed.shape[2]
            if UT_gates_packed is not None else 0,
            go_backwards, act, rec_act,
            &z_store[0, 0, 0], &cprev_store[0, 0, 0], &c_store[0, 0, 0],
            &d_seq[0, 0, 0] if d_seq is not None else NULL, st, sb,
            d_processing_order,
            &dh[0, 0], &dc[0, 0], &dprev[0, 0],
            &dh_store[0, 0, 0] if dh_store is not None else NULL,
            &scratch[0], stored_activations, b0, b1)


def lstm_backward_weights(
        const floating[:, :, ::1] x, const floating[:, ::1] W,
        const floating[:, :, ::1] hprev_store, const floating[:, :, ::1] m_store,
        const floating[:, :, ::1] dz, const floating[:, :, ::1] dh_store,
        floating[:, :, ::1] dx, floating[:, ::1] dW, floating[:, ::1] dU,
        floating[::1] db, floating[:, ::1] dWr, int g0, int g1, int p0, int p1,
        Py_ssize_t r0, Py_ssize_t r1, const floating[:, :, ::1] xh=None,
        bint dx_batch_major=False, Py_ssize_t k0=0, Py_ssize_t k1=-1):
    """dW += X^T dZ, dU += Hprev^T dZ, db += sum dZ for gate columns [g0, g1);
    dWr += M^T dH for columns [p0, p1); dx = dZ W^T for the flattened rows
    [r0, r1) (skipped when dx is None): the products after the time loop.
    With `dx_batch_major`, dx is (B, T, I) (the layout of a batch-major x)
    and [r0, r1) are its batch rows.
    `xh` (T, B, I + P), lstm_backward_join's X and Hprev side by side, or
    None: with it, `dU` must be the rows of one (I + P, 4H) array right
    after `dW`'s, and one product makes both. With `xh` (T, B, I + P + 1)
    (a last column of ones) the product makes db too, the array's last row.
    The joint product sums over the flattened rows [k0, k1) of xh and dz
    (k1 = -1: all of them), so threads can each make a partial sum."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef int H = dz.shape[2] // 4, P = hprev_store.shape[2]
    cdef int xh_width = 0 if xh is None else xh.shape[2]
    if xh is not None and (xh.shape[0] != T or xh.shape[1] != B
                           or xh_width not in (I + P, I + P + 1)):
        raise ValueError(f"xh must have shape ({T}, {B}, {I + P}) or ({T}, {B}, {I + P + 1}), "
                         f"got ({xh.shape[0]}, {xh.shape[1]}, {xh.shape[2]}).")
    if xh is not None and dU.shape[0] > 0 and &dU[0, 0] != &dW[0, 0] + <Py_ssize_t>I * 4 * H:
        raise ValueError("with xh, dU must be the rows of one array right after dW's.")
    if xh_width == I + P + 1 and &db[0] != &dW[0, 0] + <Py_ssize_t>(I + P) * 4 * H:
        raise ValueError("with a column of ones in xh, db must be the row right after dU's.")
    if dx is not None:
        shape = (B, T, I) if dx_batch_major else (T, B, I)
        if (dx.shape[0], dx.shape[1], dx.shape[2]) != shape:
            raise ValueError(f"dx must have shape {shape}, got "
                             f"({dx.shape[0]}, {dx.shape[1]}, {dx.shape[2]}).")
        if not (0 <= r0 <= r1 <= (B if dx_batch_major else <Py_ssize_t>T * B)):
            raise ValueError(f"rows [{r0}, {r1}) out of range for dx.")
    if k1 == -1:
        k1 = <Py_ssize_t>T * B
    if not (0 <= k0 <= k1 <= <Py_ssize_t>T * B):
        raise ValueError(f"rows [{k0}, {k1}) of the joint product out of range.")
    if T == 0 or B == 0:
        return
    with nogil:
        backward_weights(
            T, B, I, H, P, &x[0, 0, 0], &W[0, 0], &hprev_store[0, 0, 0],
            &m_store[0, 0, 0] if m_store is not None else NULL, &dz[0, 0, 0],
            &dh_store[0, 0, 0] if dh_store is not None else NULL,
            &dx[0, 0, 0] if dx is not None else NULL, &dW[0, 0], &dU[0, 0], &db[0],
            &dWr[0, 0] if dWr is not None else NULL,
            &xh[0, 0, 0] if xh is not None else NULL, xh_width, dx_batch_major,
            g0, g1, p0, p1, r0, r1, k0, k1)


def lstm_backward_join(const floating[:, :, ::1] x, const floating[:, :, ::1] hprev_store,
                       floating[:, :, ::1] xh, Py_ssize_t r0, Py_ssize_t r1):
    """xh[r] = [x[r], hprev_store[r]] (and a last 1 when xh has I + P + 1
    columns) for the flattened (time, row) rows [r0, r1): the left operand
    of lstm_backward_weights' joint dW/dU(/db) product."""
    cdef int I = x.shape[2], P = hprev_store.shape[2]
    cdef Py_ssize_t TB = <Py_ssize_t>x.shape[0] * x.shape[1], r
    if (hprev_store.shape[0] != x.shape[0] or hprev_store.shape[1] != x.shape[1]
            or xh.shape[0] != x.shape[0] or xh.shape[1] != x.shape[1]
            or xh.shape[2] not in (I + P, I + P + 1)):
        raise ValueError("x (T, B, I), hprev_store (T, B, P) and xh (T, B, I + P) or "
                         "(T, B, I + P + 1) must match.")
    if not (0 <= r0 <= r1 <= TB):
        raise ValueError(f"rows [{r0}, {r1}) must lie in [0, {TB}].")
    if r1 == r0:
        return
    cdef const floating* xp = &x[0, 0, 0]
    cdef const floating* hp = &hprev_store[0, 0, 0]
    cdef floating* out = &xh[0, 0, 0]
    cdef int W = xh.shape[2]
    with nogil:
        for r in range(r0, r1):
            memcpy(out + r * W, xp + r * I, I * sizeof(floating))
            memcpy(out + r * W + I, hp + r * P, P * sizeof(floating))
            if W > I + P:
                out[r * W + I + P] = 1


def lstm_backward_transpose(const floating[:, ::1] src, floating[:, ::1] dst):
    """dst = src^T in tiles of 8 rows x 16 columns of src: U^T for the backward
    time loop's product. The 8 source rows of a tile may lie a multiple of
    4 KiB apart (one L1 set), so a tile takes no more lines of a set than the
    cache has ways; NumPy's strided copy of U.T took 0.14 ms at 128 units."""
    cdef Py_ssize_t R = src.shape[0], C = src.shape[1]
    cdef Py_ssize_t i0, j0, i, j, i1, j1
    cdef const floating* s
    cdef floating* d
    if dst.shape[0] != C or dst.shape[1] != R:
        raise ValueError(f"dst must have shape ({C}, {R}), got ({dst.shape[0]}, {dst.shape[1]}).")
    if R == 0 or C == 0:
        return
    s = &src[0, 0]
    d = &dst[0, 0]
    with nogil:
        i0 = 0
        while i0 < R:
            i1 = i0 + 8 if i0 + 8 < R else R
            j0 = 0
            while j0 < C:
                j1 = j0 + 16 if j0 + 16 < C else C
                for j in range(j0, j1):
                    for i in range(i0, i1):
                        d[j * R + i] = s[i * C + j]
                j0 += 16
            i0 += 8


def recurrent_isa(int force=-1):
    """The instruction-set level of this module's elementwise loops (the gate
    and cell gradients of backward_step.h, cell.h and fastmath.h): 2 AVX-512F,
    1 AVX2 + FMA, 0 the baseline. `force` >= 0 caps it for this process
    (CYLSTM_ISA and the tests do, with the other modules' hooks)."""
    return cyl_recurrent_isa(force)
