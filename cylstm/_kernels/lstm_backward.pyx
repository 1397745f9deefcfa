# Backpropagation through time for the LSTM of lstm_forward.pyx.
#
# Notation as in lstm_forward.pyx (T, B, I, H, P, G = 4H, step s <-> time t).
# The forward pass in training mode stored, per time index t (time-major):
#   z_store[t]     (B, G)  pre-activations z_t (bias included)
#   hprev_store[t] (B, P)  the h that multiplied U at t (after recurrent dropout)
#   cprev_store[t] (B, H)  c_{t-1};   c_store[t] (B, H)  c_t
#   m_store[t]     (B, H)  o * act(c_t), only with a projection
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
#   masked:   dprev = d_out; dz = 0; dh, dc carried unchanged
# After the loop, one gemm each: dW += X^T dZ, dU += Hprev^T dZ,
# dX = dZ W^T, dWr += M^T dH; db += column sums of dZ.
from cython cimport floating
from libc.string cimport memcpy, memset

from .blas cimport gemm
from .activations cimport activate, activate_grad


cdef void backward_rows(
        int T, int B, int I, int H, int P,
        const floating* x,                   # (T, B, I) time-major
        const floating* W, const floating* U, const floating* Wr,
        const unsigned char* mask,           # (B, T) or NULL
        const floating* rec_mask,            # (B, P) or NULL
        bint go_backwards, int act, int rec_act,
        const floating* z_store, const floating* hprev_store,
        const floating* cprev_store, const floating* c_store,
        const floating* m_store,
        const floating* d_seq, Py_ssize_t d_stride_t, Py_ssize_t d_stride_b,
        bint d_processing_order,
        floating* dh, floating* dc, floating* dprev,   # (B,P), (B,H), (B,P) in/out
        floating* dz,                        # (T, B, G) out
        floating* dh_store,                  # (T, B, P) out, projection only
        floating* dx,                        # (T, B, I) out, or NULL
        floating* dW, floating* dU, floating* db, floating* dWr,
        floating* scratch,                   # 6 * H + max(G, P) * B
        ) noexcept nogil:
    cdef int G = 4 * H
    cdef bint has_proj = Wr != NULL
    cdef int s, t, b, j
    cdef Py_ssize_t row
    cdef const floating* zrow
    cdef const floating* drow
    cdef floating* dzrow
    cdef floating* dhrow
    cdef floating* dcrow
    cdef floating* act_z = scratch           # (G) activations
    cdef floating* der_z = scratch + G       # (G) derivatives
    cdef floating* tc = scratch + 2 * G      # (H) act(c_t)
    cdef floating* dtc = tc + H              # (H) act'(c_t)
    cdef floating* dm_all = dtc + H          # (B, max(G,P)) dm rows, then dh tmp
    cdef floating* dm
    cdef floating dcj

    for s in range(T - 1, -1, -1):
        t = T - 1 - s if go_backwards else s
        # Gradient reaching each row's output at this step.
        for b in range(B):
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
            # dm = dh @ Wr^T for all rows; masked rows are ignored below.
            gemm(False, True, B, H, P, 1, dh, P, Wr, P, 0, dm_all, H)
            memcpy(dh_store + <Py_ssize_t>t * B * P, dh, <Py_ssize_t>B * P * sizeof(floating))
        for b in range(B):
            dzrow = dz + (<Py_ssize_t>t * B + b) * G
            if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
                memset(dzrow, 0, G * sizeof(floating))
                if has_proj:
                    memset(dh_store + (<Py_ssize_t>t * B + b) * P, 0, P * sizeof(floating))
                continue
            zrow = z_store + (<Py_ssize_t>t * B + b) * G
            dm = dm_all + <Py_ssize_t>b * H if has_proj else dh + <Py_ssize_t>b * P
            activate(rec_act, zrow, act_z, 2 * H)
            activate(act, zrow + 2 * H, act_z + 2 * H, H)
            activate(rec_act, zrow + 3 * H, act_z + 3 * H, H)
            activate_grad(rec_act, zrow, der_z, 2 * H)
            activate_grad(act, zrow + 2 * H, der_z + 2 * H, H)
            activate_grad(rec_act, zrow + 3 * H, der_z + 3 * H, H)
            activate(act, c_store + (<Py_ssize_t>t * B + b) * H, tc, H)
            activate_grad(act, c_store + (<Py_ssize_t>t * B + b) * H, dtc, H)
            dcrow = dc + <Py_ssize_t>b * H
            for j in range(H):
                dcj = dcrow[j] + dm[j] * act_z[3 * H + j] * dtc[j]
                dzrow[j] = dcj * act_z[2 * H + j] * der_z[j]
                dzrow[H + j] = dcj * cprev_store[(<Py_ssize_t>t * B + b) * H + j] * der_z[H + j]
                dzrow[2 * H + j] = dcj * act_z[j] * der_z[2 * H + j]
                dzrow[3 * H + j] = dm[j] * tc[j] * der_z[3 * H + j]
                dcrow[j] = dcj * act_z[H + j]
        # dh_{t-1} = dz_t @ U^T for unmasked rows; masked rows carry dh.
        gemm(False, True, B, P, G, 1, dz + <Py_ssize_t>t * B * G, G, U, G, 0, dm_all, P)
        for b in range(B):
            if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
                continue
            dhrow = dh + <Py_ssize_t>b * P
            for j in range(P):
                if rec_mask != NULL:
                    dhrow[j] = dm_all[<Py_ssize_t>b * P + j] * rec_mask[<Py_ssize_t>b * P + j]
                else:
                    dhrow[j] = dm_all[<Py_ssize_t>b * P + j]

    # The large products, once for all steps.
    cdef int TB = T * B
    gemm(True, False, I, G, TB, 1, x, I, dz, G, 1, dW, G)
    gemm(True, False, P, G, TB, 1, hprev_store, P, dz, G, 1, dU, G)
    if has_proj:
        gemm(True, False, H, P, TB, 1, m_store, H, dh_store, P, 1, dWr, P)
    if dx != NULL:
        gemm(False, True, TB, I, G, 1, dz, G, W, G, 0, dx, I)
    for row in range(TB):
        dzrow = dz + row * G
        for j in range(G):
            db[j] += dzrow[j]


def lstm_backward(
        const floating[:, :, ::1] x,
        const floating[:, ::1] W, const floating[:, ::1] U, const floating[:, ::1] Wr,
        const unsigned char[:, ::1] mask, const floating[:, ::1] rec_mask,
        bint go_backwards, int act, int rec_act,
        floating[:, :, ::1] z_store, floating[:, :, ::1] hprev_store,
        floating[:, :, ::1] cprev_store, floating[:, :, ::1] c_store,
        floating[:, :, ::1] m_store,
        const floating[:, :, ::1] d_seq, bint d_time_major, bint d_processing_order,
        floating[:, ::1] dh, floating[:, ::1] dc, floating[:, ::1] dprev,
        floating[:, :, ::1] dz, floating[:, :, ::1] dh_store,
        floating[:, :, ::1] dx,
        floating[:, ::1] dW, floating[:, ::1] dU, floating[::1] db,
        floating[:, ::1] dWr, floating[::1] scratch):
    """Backward pass in place. Every shape was validated by the caller.

    `dh`, `dc`, `dprev` hold the gradients w.r.t. the final h, c and last
    output on entry and w.r.t. h0, c0 (and nothing useful) on exit.
    dW, dU, db, dWr are accumulated into; dz and dx are overwritten.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef int P = dh.shape[1], H = dc.shape[1]
    cdef Py_ssize_t st = 0, sb = 0
    if d_seq is not None:
        st = d_seq.strides[0 if d_time_major else 1] // sizeof(floating)
        sb = d_seq.strides[1 if d_time_major else 0] // sizeof(floating)
    if T == 0 or B == 0:
        return
    with nogil:
        backward_rows(
            T, B, I, H, P, &x[0, 0, 0], &W[0, 0], &U[0, 0],
            &Wr[0, 0] if Wr is not None else NULL,
            &mask[0, 0] if mask is not None else NULL,
            &rec_mask[0, 0] if rec_mask is not None else NULL,
            go_backwards, act, rec_act,
            &z_store[0, 0, 0], &hprev_store[0, 0, 0], &cprev_store[0, 0, 0],
            &c_store[0, 0, 0],
            &m_store[0, 0, 0] if m_store is not None else NULL,
            &d_seq[0, 0, 0] if d_seq is not None else NULL, st, sb,
            d_processing_order,
            &dh[0, 0], &dc[0, 0], &dprev[0, 0], &dz[0, 0, 0],
            &dh_store[0, 0, 0] if dh_store is not None else NULL,
            &dx[0, 0, 0] if dx is not None else NULL,
            &dW[0, 0], &dU[0, 0], &db[0],
            &dWr[0, 0] if dWr is not None else NULL,
            &scratch[0])
