# The LSTM forward pass: one gemm for the input projection of a block of
# timesteps, then per step one gemm against the recurrent kernel and a fused
# C loop for the gates. The whole time loop runs without the GIL.
#
# Notation (sizes):   T timesteps, B batch rows, I input features,
#                     H units, P = output/state width (H, or proj_size),
#                     G = 4 * H gate columns in the order i, f, g, o.
# Processing step s handles time index t = s, or t = T - 1 - s when
# `go_backwards`. "Rows" are batch rows; a call handles rows [b0, b1).
#
#   z_t   = x_t @ W + h_{t-1} @ U + bias          (B, G)  pre-activations
#           (per-gate recurrent dropout, masks r_k (B, P), k = i, f, g, o:
#            z_t[:, k] = ... + (h_{t-1} * r_k) @ U[:, k]; per-gate input masks
#            go into z_store before the loop, see project_inputs_gates)
#   i,f,o = rec_act(z_i, z_f, z_o); g = act(z_g)
#   c_t   = f * c_{t-1} + i * g
#   m_t   = o * act(c_t)                          (B, H)
#   h_t   = m_t, or m_t @ Wr with a projection    (B, P)
#
# Masked (row, step) pairs carry h and c unchanged; their output is the
# previous step's output ("prev_out"), zeros before the first unmasked step.
#
# The kernels know nothing of Keras or PyTorch: weights arrive as
# W (I, G), U (P, G), bias (G), Wr (H, P); all arrays C-contiguous.
# Shapes are checked by the Python caller (cylstm/_ops.py) before entry.
from cython cimport floating
from libc.string cimport memcpy, memset

from .blas cimport gemm
from .recurrent cimport (cyl_rec_pack, cyl_rec_panel_width, cyl_recurrent_isa,
                         recurrent_product)
from .activations cimport activate, activate_grad, activate_gates, fill_gate_selector
from .param_activations cimport activate_param

cdef extern from "cell.h" nogil:
    void cyl_lstm_cell_f32(const float* gates, Py_ssize_t G, float* c, float* tc, float* m,
                           Py_ssize_t nb, Py_ssize_t H, const unsigned char* mask,
                           Py_ssize_t mask_stride)


cdef extern from "fused_step.h" nogil:
    ctypedef struct cyl_fused_args:
        int H
        int K
        int u
        const float* A
        Py_ssize_t lda
        const float* Up
        float* z
        Py_ssize_t ldz
        int store_act
        float* c
        Py_ssize_t ldc
        float* h
        Py_ssize_t ldh
        float* out
        Py_ssize_t ldo
        float* tc
        Py_ssize_t ldtc
        float* cprev
        Py_ssize_t ldcp
        const unsigned char* mask
        Py_ssize_t mask_stride
        const float* X
        Py_ssize_t ldx
        int nx
        const float* Wp
        const float* bias
    int cyl_fused_units()
    void cyl_fused_pack(const float* U, int K, int H, int u, float* Up)
    void cyl_fused_step_f32(const cyl_fused_args* a, int b0, int b1, int p0, int p1)


cdef inline void fill_rows(floating* dst, const floating* row, Py_ssize_t nrows,
                           int n) noexcept nogil:
    """Copy one row of n values into nrows consecutive rows."""
    cdef Py_ssize_t r
    for r in range(nrows):
        memcpy(dst + r * n, row, n * sizeof(floating))


cdef void _project_inputs(
        const floating* x, bint x_time_major, int T, int B, int I, int G,
        const floating* W, const floating* bias, int tlo, int thi, int b0, int b1,
        floating* gates, floating* xbuf) noexcept nogil:
    """gates[t - tlo, b - b0, :] = x[t, b] @ W + bias, t in [tlo, thi), b in [b0, b1)."""
    cdef int nb = b1 - b0
    cdef int nt = thi - tlo
    cdef int t, b, j
    cdef const floating* xsrc
    cdef const floating* xrow
    cdef floating* xdst
    if x_time_major and nb == B:
        xsrc = x + <Py_ssize_t>tlo * B * I      # already (nt * nb, I) contiguous
    else:
        for t in range(tlo, thi):
            for b in range(b0, b1):
                xdst = xbuf + (<Py_ssize_t>(t - tlo) * nb + (b - b0)) * I
                if x_time_major:
                    xrow = x + (<Py_ssize_t>t * B + b) * I
                else:
                    xrow = x + (<Py_ssize_t>b * T + t) * I
                for j in range(I):
                    xdst[j] = xrow[j]
        xsrc = xbuf
    fill_rows(gates, bias, <Py_ssize_t>nt * nb, G)
    gemm(False, False, nt * nb, G, I, 1, xsrc, I, W, G, 1, gates, G)


cdef inline void cell_update(const floating* gates, floating* c, floating* mdst,
                             floating* c_store, const unsigned char* mask, bint training,
                             bint store_act_c, int act, int T, int B, int H, int t, int b0,
                             int b1) noexcept nogil:
    """c_t for the unmasked rows of [b0, b1) (masked rows keep c_{t-1}),
    c_t (or act(c_t) with `store_act_c`) into c_store when training, and
    mdst = o * act(c_t) for all rows."""
    cdef int G = 4 * H
    cdef int nb = b1 - b0
    cdef int b, j
    cdef const floating* arow
    cdef floating* crow
    cdef floating* mrow
    for b in range(b0, b1):
        if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
            continue
        arow = gates + <Py_ssize_t>(b - b0) * G
        crow = c + <Py_ssize_t>b * H
        for j in range(H):
            crow[j] = arow[H + j] * crow[j] + arow[j] * arow[2 * H + j]
    if training and not store_act_c:
        memcpy(c_store + (<Py_ssize_t>t * B + b0) * H, c + <Py_ssize_t>b0 * H,
               <Py_ssize_t>nb * H * sizeof(floating))
    activate(act, c + <Py_ssize_t>b0 * H, mdst, <Py_ssize_t>nb * H)
    if training and store_act_c:
        memcpy(c_store + (<Py_ssize_t>t * B + b0) * H, mdst,
               <Py_ssize_t>nb * H * sizeof(floating))
    for b in range(nb):
        arow = gates + <Py_ssize_t>b * G + 3 * H
        mrow = mdst + <Py_ssize_t>b * H
        for j in range(H):
            mrow[j] = arow[j] * mrow[j]


cdef void forward_rows(
        # sizes
        int T, int B, int I, int H, int P,
        # inputs
        const floating* x, bint x_time_major,
        const floating* W, const floating* U, const float* Up, int Up_width,
        const floating* bias,
        const floating* Wr,
        const unsigned char* mask,          # (B, T) or NULL
        const floating* rec_mask,           # (B, P) recurrent dropout or NULL
        # Per-gate recurrent dropout (instead of rec_mask), or NULL: masks
        # (4, B, P), U split by gate (4, P, H) and its packed form (4 panels
        # of Ugp_size values each, or NULL for BLAS).
        const floating* rec_mask_gates, const floating* Ug, const float* Ugp,
        Py_ssize_t Ugp_size,
        bint go_backwards, int act, int rec_act,
        # state, in/out: rows b0..b1 are read and updated
        floating* h, floating* c,
        # outputs
        floating* prev_out,                 # (B, P): last output at exit
        floating* out_seq, Py_ssize_t out_stride_t, Py_ssize_t out_stride_b,
        bint out_processing_order,
        # training stores (time-indexed, time-major) or NULL. With `sel`
        # (fused float32 tanh/sigmoid), z_store keeps the gate activations and
        # c_store tanh(c_t) instead: the backward pass needs nothing else.
        floating* z_store,                  # (T, B, G) pre-activations, x @ W + b on entry
        floating* hprev_store,              # (T, B, P) h fed to the recurrent gemm
                                            # (h itself with rec_mask_gates)
        floating* cprev_store,              # (T, B, H)
        floating* c_store,                  # (T, B, H) c_t, or tanh(c_t)
        floating* m_store,                  # (T, B, H), projection only
        # workspace
        floating* gbuf, int chunk,          # (chunk, nb, G) when not training
        floating* xbuf,                     # (chunk, nb, I)
        floating* abuf,                     # (nb, G) activated gates (training)
        floating* hbuf,                     # (nb, P) dropped h / projected h
        floating* mbuf,                     # (nb, H) m before projection
        float* sel,                         # (nb, G) gate selector, or NULL
        int b0, int b1) noexcept nogil:
    cdef int nb = b1 - b0
    cdef int G = 4 * H
    cdef bint training = z_store != NULL
    cdef bint has_proj = Wr != NULL
    cdef bint fused
    cdef int s, t, b, j, tlo, thi, s0, s1
    cdef Py_ssize_t gstride, r
    cdef floating* gbase
    cdef floating* grow
    cdef floating* gates
    cdef floating* arow
    cdef floating* crow
    cdef floating* mrow
    cdef floating* orow
    cdef floating* mdst
    cdef const floating* hsrc
    cdef const floating* mk
    cdef int k

    if training:
        chunk = T
        gbase = z_store + <Py_ssize_t>b0 * G
        gstride = <Py_ssize_t>B * G
    else:
        gbase = gbuf
        gstride = <Py_ssize_t>nb * G
    if sel != NULL:
        fill_gate_selector(sel, nb, H)

    s0 = 0
    while s0 < T:
        s1 = s0 + chunk
        if s1 > T:
            s1 = T
        # The time range of this chunk, in time order.
        if go_backwards:
            tlo = T - s1
            thi = T - s0
        else:
            tlo = s0
            thi = s1
        if not training:
            _project_inputs(x, x_time_major, T, B, I, G, W, bias, tlo, thi, b0, b1,
                            gbase, xbuf)

        for s in range(s0, s1):
            t = T - 1 - s if go_backwards else s
            grow = gbase + (t - tlo) * gstride     # (nb, G) for this step

            # Recurrent input: h_{t-1}, with recurrent dropout if asked.
            hsrc = h + <Py_ssize_t>b0 * P
            if rec_mask != NULL:
                for r in range(<Py_ssize_t>nb * P):
                    hbuf[r] = hsrc[r] * rec_mask[<Py_ssize_t>b0 * P + r]
                hsrc = hbuf
            if training:
                # With per-gate masks this is h_{t-1} itself: the weight
                # gradients apply the four masks after the loop.
                memcpy(hprev_store + (<Py_ssize_t>t * B + b0) * P, hsrc,
                       <Py_ssize_t>nb * P * sizeof(floating))
                memcpy(cprev_store + (<Py_ssize_t>t * B + b0) * H,
                       c + <Py_ssize_t>b0 * H, <Py_ssize_t>nb * H * sizeof(floating))
            if rec_mask_gates == NULL:
                recurrent_product(nb, G, P, hsrc, P, U, Up, Up_width, grow, G)
            else:
                # Each gate block multiplies its own dropped copy of h_{t-1}.
                for k in range(4):
                    mk = rec_mask_gates + (<Py_ssize_t>k * B + b0) * P
                    for r in range(<Py_ssize_t>nb * P):
                        hbuf[r] = hsrc[r] * mk[r]
                    recurrent_product(nb, H, P, hbuf, P, Ug + <Py_ssize_t>k * P * H,
                                      Ugp + k * Ugp_size if Ugp != NULL else NULL,
                                      Up_width, grow + k * H, G)

            # Gate activations for the whole block. Training keeps z intact,
            # except on the fused float32 tanh/sigmoid path, whose backward
            # pass takes the derivatives from the stored activations.
            gates = abuf if (training and sel == NULL) else grow
            activate_gates(act, rec_act, grow, gates, sel, nb, H)

            # m_t = o * act(c_t), computed for all rows, used for the unmasked.
            # Without a mask or projection it is h_t and goes straight into h.
            mdst = h + <Py_ssize_t>b0 * P if (mask == NULL and not has_proj) else mbuf
            fused = False
            if floating is float:
                if sel != NULL and H >= 16:
                    # c_t (unmasked rows), tanh(c_t) (kept when training) and
                    # m_t in one pass, vectorised over units (so not for a
                    # few units, where the flat loops over rows x units win).
                    cyl_lstm_cell_f32(
                        gates, G, c + <Py_ssize_t>b0 * H,
                        c_store + (<Py_ssize_t>t * B + b0) * H if training else NULL,
                        mdst, nb, H, mask + <Py_ssize_t>b0 * T + t if mask != NULL else NULL, T)
                    fused = True
            if not fused:
                cell_update(gates, c, mdst, c_store, mask, training, sel != NULL, act,
                            T, B, H, t, b0, b1)
            if training and has_proj:
                memcpy(m_store + (<Py_ssize_t>t * B + b0) * H, mbuf,
                       <Py_ssize_t>nb * H * sizeof(floating))
            if has_proj:
                # h_t = m_t @ Wr
                gemm(False, False, nb, P, H, 1, mbuf, H, Wr, P, 0, hbuf, P)
                mrow = hbuf
            else:
                mrow = mdst

            if mask == NULL:
                # Every row takes h_t; the last output is h_T.
                if has_proj:
                    memcpy(h + <Py_ssize_t>b0 * P, hbuf, <Py_ssize_t>nb * P * sizeof(floating))
                if s == T - 1:
                    memcpy(prev_out + <Py_ssize_t>b0 * P, h + <Py_ssize_t>b0 * P,
                           <Py_ssize_t>nb * P * sizeof(floating))
                if out_seq != NULL:
                    for b in range(b0, b1):
                        orow = out_seq + (s if out_processing_order else t) * out_stride_t \
                            + b * out_stride_b
                        memcpy(orow, h + <Py_ssize_t>b * P, P * sizeof(floating))
                continue

            # h and outputs: unmasked rows take h_t; masked rows repeat prev_out.
            for b in range(b0, b1):
                if mask[<Py_ssize_t>b * T + t]:
                    memcpy(h + <Py_ssize_t>b * P, mrow + <Py_ssize_t>(b - b0) * P,
                           P * sizeof(floating))
                    memcpy(prev_out + <Py_ssize_t>b * P, mrow + <Py_ssize_t>(b - b0) * P,
                           P * sizeof(floating))
                elif training:
                    # Masked rows pass no gradient through the gates.
                    memset(grow + <Py_ssize_t>(b - b0) * G, 0, G * sizeof(floating))
                    if has_proj:
                        memset(m_store + (<Py_ssize_t>t * B + b) * H, 0,
                               H * sizeof(floating))
                if out_seq != NULL:
                    orow = out_seq + (s if out_processing_order else t) * out_stride_t \
                        + b * out_stride_b
                    memcpy(orow, prev_out + <Py_ssize_t>b * P, P * sizeof(floating))
        s0 = s1


def lstm_forward(
        const floating[:, :, ::1] x, bint x_time_major,
        const floating[:, ::1] W, const floating[:, ::1] U, const float[:, ::1] U_packed,
        const floating[::1] bias, const floating[:, ::1] Wr,
        const unsigned char[:, ::1] mask,
        const floating[:, ::1] rec_mask,
        const floating[:, :, ::1] rec_mask_gates, const floating[:, :, ::1] U_gates,
        const float[:, :, ::1] U_gates_packed,
        bint go_backwards, int act, int rec_act,
        floating[:, ::1] h, floating[:, ::1] c, floating[:, ::1] prev_out,
        floating[:, :, ::1] out_seq, bint out_time_major, bint out_processing_order,
        floating[:, :, ::1] z_store, floating[:, :, ::1] hprev_store,
        floating[:, :, ::1] cprev_store, floating[:, :, ::1] c_store,
        floating[:, :, ::1] m_store,
        floating[::1] gbuf, int chunk, floating[::1] xbuf, floating[::1] abuf,
        floating[::1] hbuf, floating[::1] mbuf, float[::1] sel, int b0, int b1):
    """Run the forward pass for batch rows [b0, b1) in place. Every shape was
    validated by the caller. Row ranges are independent and may run in
    parallel threads, each with its own workspace.

    `h`, `c` hold the initial state on entry and the final state on exit;
    `prev_out` must be zeros on entry and holds the last output on exit.
    Optional arrays are None. `U_packed` is `pack_recurrent(U)` or None.
    Per-gate recurrent dropout: `rec_mask_gates` (4, B, P) replaces
    `rec_mask`, with `U_gates` (4, P, H) the gate column blocks of U and
    `U_gates_packed` their `pack_recurrent` forms stacked (or None); `hprev_store`
    then keeps h undropped. When training, `z_store` holds x @ W + bias on
    entry (see `project_inputs`) and the pre-activations on exit. Workspace
    sizes, nb = b1 - b0: gbuf chunk*nb*G (unused when training), xbuf
    chunk*nb*I, abuf nb*G, hbuf nb*P, mbuf nb*H; `sel` (nb*G float32) is
    needed only for the fused float32 tanh/sigmoid gates (None otherwise).
    """
    cdef int T, B, I, H, P
    if x_time_major:
        T, B = x.shape[0], x.shape[1]
    else:
        B, T = x.shape[0], x.shape[1]
    I = x.shape[2]
    P = h.shape[1]
    H = c.shape[1]
    cdef Py_ssize_t st = 0, sb = 0
    if out_seq is not None:
        st = out_seq.strides[0 if out_time_major else 1] // sizeof(floating)
        sb = out_seq.strides[1 if out_time_major else 0] // sizeof(floating)
    if b1 <= b0 or T == 0:
        return
    with nogil:
        forward_rows(
            T, B, I, H, P, &x[0, 0, 0], x_time_major, &W[0, 0], &U[0, 0],
            &U_packed[0, 0] if U_packed is not None else NULL,
            U_packed.shape[1] if U_packed is not None
            else (U_gates_packed.shape[2] if U_gates_packed is not None else 0), &bias[0],
            &Wr[0, 0] if Wr is not None else NULL,
            &mask[0, 0] if mask is not None else NULL,
            &rec_mask[0, 0] if rec_mask is not None else NULL,
            &rec_mask_gates[0, 0, 0] if rec_mask_gates is not None else NULL,
            &U_gates[0, 0, 0] if U_gates is not None else NULL,
            &U_gates_packed[0, 0, 0] if U_gates_packed is not None else NULL,
            U_gates_packed.shape[1] * U_gates_packed.shape[2]
            if U_gates_packed is not None else 0,
            go_backwards, act, rec_act, &h[0, 0], &c[0, 0], &prev_out[0, 0],
            &out_seq[0, 0, 0] if out_seq is not None else NULL, st, sb,
            out_processing_order,
            &z_store[0, 0, 0] if z_store is not None else NULL,
            &hprev_store[0, 0, 0] if hprev_store is not None else NULL,
            &cprev_store[0, 0, 0] if cprev_store is not None else NULL,
            &c_store[0, 0, 0] if c_store is not None else NULL,
            &m_store[0, 0, 0] if m_store is not None else NULL,
            &gbuf[0] if gbuf is not None else NULL, chunk,
            &xbuf[0], &abuf[0], &hbuf[0], &mbuf[0],
            &sel[0] if sel is not None else NULL, b0, b1)


# -- The fused float32 step (fused_step.h) ----------------------------------
# The time loop of forward_rows for float32 with tanh/sigmoid, no projection
# and no per-gate recurrent dropout, where one C call per step does the
# recurrent product, the gate activations and the cell update (fused_step.h
# says why). h_t goes to a second buffer (h_{t-1} is still being read by
# other unit panels of the step); the two swap each step. Masked rows keep
# h and c (the kernel leaves their c alone; here h is carried and the output
# repeats prev_out), as in forward_rows. Training stores what the unfused
# float32 path stores (z_store: gate activations, c_store: tanh(c_t)).

cdef void forward_rows_fused(
        int T, int B, int I, int H,
        const float* x, bint x_time_major, const float* W, const float* Up, int units,
        const float* bias, const unsigned char* mask, const float* rec_mask,
        bint go_backwards, float* h, float* c, float* prev_out,
        float* out_seq, Py_ssize_t out_stride_t, Py_ssize_t out_stride_b,
        bint out_processing_order,
        float* z_store, float* hprev_store, float* cprev_store, float* c_store,
        float* gbuf, int chunk, float* xbuf, float* hbuf, float* h2,
        const float* Wp, int b0, int b1) noexcept nogil:
    # Wp: W packed as U is; the step then makes the input projection itself
    # and gbuf / xbuf are not used (in training z_store only receives the
    # gate activations).
    cdef int nb = b1 - b0
    cdef int G = 4 * H
    cdef int panels = (H + units - 1) // units
    cdef bint training = z_store != NULL
    cdef int s, t, b, tlo, thi, s0, s1
    cdef Py_ssize_t gstride, r
    cdef float* gbase
    cdef float* hcur = h + <Py_ssize_t>b0 * H
    cdef float* hnext = h2
    cdef float* tmp
    cdef float* orow
    cdef cyl_fused_args a

    if training:
        chunk = T
        gbase = z_store + <Py_ssize_t>b0 * G
        gstride = <Py_ssize_t>B * G
    else:
        gbase = gbuf
        gstride = <Py_ssize_t>nb * G
    a.H = H
    a.K = H
    a.u = units
    a.lda = H
    a.Up = Up
    a.ldz = G
    a.store_act = training
    a.c = c + <Py_ssize_t>b0 * H
    a.ldc = H
    a.ldh = H
    a.ldo = out_stride_b
    a.ldtc = H
    a.ldcp = H
    a.mask_stride = T
    a.nx = I
    a.bias = bias
    a.Wp = NULL
    a.X = NULL
    a.ldx = 0
    if Wp != NULL:
        a.Wp = Wp
        a.ldx = I if x_time_major else <Py_ssize_t>T * I
        chunk = T

    s0 = 0
    while s0 < T:
        s1 = s0 + chunk
        if s1 > T:
            s1 = T
        if go_backwards:
            tlo = T - s1
            thi = T - s0
        else:
            tlo = s0
            thi = s1
        if not training and a.Wp == NULL:
            _project_inputs(x, x_time_major, T, B, I, G, W, bias, tlo, thi, b0, b1,
                            gbase, xbuf)
        for s in range(s0, s1):
            t = T - 1 - s if go_backwards else s
            a.A = hcur
            if a.Wp != NULL:
                if x_time_major:
                    a.X = x + (<Py_ssize_t>t * B + b0) * I
                else:
                    a.X = x + (<Py_ssize_t>b0 * T + t) * I
            if rec_mask != NULL:
                for r in range(<Py_ssize_t>nb * H):
                    hbuf[r] = hcur[r] * rec_mask[<Py_ssize_t>b0 * H + r]
                a.A = hbuf
            if training:
                memcpy(hprev_store + (<Py_ssize_t>t * B + b0) * H, a.A,
                       <Py_ssize_t>nb * H * sizeof(float))
                a.tc = c_store + (<Py_ssize_t>t * B + b0) * H
                a.cprev = cprev_store + (<Py_ssize_t>t * B + b0) * H
            else:
                a.tc = NULL
                a.cprev = NULL
            # the step's gate input, or with Wp in training where its activations go
            a.z = gbase + (t - tlo) * gstride if a.Wp == NULL or training else NULL
            a.h = hnext
            a.out = NULL
            if mask == NULL and out_seq != NULL:
                a.out = out_seq + (s if out_processing_order else t) * out_stride_t \
                    + b0 * out_stride_b
            a.mask = mask + <Py_ssize_t>b0 * T + t if mask != NULL else NULL
            cyl_fused_step_f32(&a, 0, nb, 0, panels)
            if mask != NULL:
                # Unmasked rows: h_t is the output; masked ones carry h and
                # repeat the last output.
                for b in range(b0, b1):
                    if mask[<Py_ssize_t>b * T + t]:
                        memcpy(prev_out + <Py_ssize_t>b * H, hnext + <Py_ssize_t>(b - b0) * H,
                               H * sizeof(float))
                    else:
                        memcpy(hnext + <Py_ssize_t>(b - b0) * H, hcur + <Py_ssize_t>(b - b0) * H,
                               H * sizeof(float))
                    if out_seq != NULL:
                        orow = out_seq + (s if out_processing_order else t) * out_stride_t \
                            + b * out_stride_b
                        memcpy(orow, prev_out + <Py_ssize_t>b * H, H * sizeof(float))
            tmp = hcur
            hcur = hnext
            hnext = tmp
        s0 = s1
    if hcur != h + <Py_ssize_t>b0 * H:
        memcpy(h + <Py_ssize_t>b0 * H, hcur, <Py_ssize_t>nb * H * sizeof(float))
    if mask == NULL:
        memcpy(prev_out + <Py_ssize_t>b0 * H, h + <Py_ssize_t>b0 * H,
               <Py_ssize_t>nb * H * sizeof(float))


def lstm_forward_fused(
        const float[:, :, ::1] x, bint x_time_major,
        const float[:, ::1] W, const float[:, ::1] U_fused, int units,
        const float[::1] bias, const unsigned char[:, ::1] mask,
        const float[:, ::1] rec_mask, bint go_backwards,
        float[:, ::1] h, float[:, ::1] c, float[:, ::1] prev_out,
        float[:, :, ::1] out_seq, bint out_time_major, bint out_processing_order,
        float[:, :, ::1] z_store, float[:, :, ::1] hprev_store,
        float[:, :, ::1] cprev_store, float[:, :, ::1] c_store,
        float[::1] gbuf, int chunk, float[::1] xbuf, float[::1] hbuf, float[::1] h2,
        int b0, int b1, const float[:, ::1] W_fused=None, bint fuse_input=True):
    """`lstm_forward` on the fused step kernel (float32, tanh/sigmoid, no
    projection, no per-gate recurrent dropout) for batch rows [b0, b1), in
    place. `U_fused` is `pack_fused(U)` made at `units` (its panel width / 4).
    Conventions and training stores as in `lstm_forward` (z_store holds the
    gate activations and c_store tanh(c_t) on exit). Workspace, nb = b1 - b0:
    gbuf chunk*nb*4H (unused when training), xbuf chunk*nb*I, hbuf and h2
    nb*H each. A call with `fuse_input` makes the input projection in the
    step too (bias + x_t @ W + h @ U in the registers) from `W_fused`,
    `pack_fused(W)` at the same `units`, or, when that is None, a copy of W
    packed here; gbuf and xbuf may then be None, and in training z_store
    only receives the activations. Without `fuse_input` one sgemm per chunk
    of timesteps makes it into gbuf (in training: the caller has made it
    into z_store for all steps)."""
    cdef int T, B, I, H
    if x_time_major:
        T, B = x.shape[0], x.shape[1]
    else:
        B, T = x.shape[0], x.shape[1]
    I = x.shape[2]
    H = c.shape[1]
    if h.shape[1] != H or U_fused.shape[1] != 4 * units or units not in (8, 16):
        raise ValueError("lstm_forward_fused: h must have as many units as c, and "
                         "U_fused a pack_fused layout")
    cdef bint training = z_store is not None
    if fuse_input and W_fused is None:
        W_fused = pack_fused(W)
        if W_fused is not None and W_fused.shape[1] != 4 * units:
            W_fused = None   # the ISA level changed since U_fused was packed
    if not fuse_input:
        W_fused = None
    if W_fused is not None and (
            W_fused.shape[1] != 4 * units or W_fused.shape[0] != (H + units - 1) // units * I):
        raise ValueError("lstm_forward_fused: W_fused must be pack_fused(W) at `units`, "
                         f"shape ({(H + units - 1) // units * I}, {4 * units}), got "
                         f"({W_fused.shape[0]}, {W_fused.shape[1]})")
    if W_fused is None and (xbuf is None or (gbuf is None and not training)):
        raise ValueError("lstm_forward_fused: gbuf and xbuf are needed unless "
                         "W_fused is given for an inference call")
    cdef const float* wp = NULL
    if W_fused is not None:
        # With I = 0 the kernel reads no W: any non-NULL pointer marks the mode.
        wp = &W_fused[0, 0] if I > 0 else &bias[0]
    cdef Py_ssize_t st = 0, sb = 0
    if out_seq is not None:
        st = out_seq.strides[0 if out_time_major else 1] // sizeof(float)
        sb = out_seq.strides[1 if out_time_major else 0] // sizeof(float)
    if b1 <= b0 or T == 0:
        return
    with nogil:
        forward_rows_fused(
            T, B, I, H, &x[0, 0, 0], x_time_major, &W[0, 0], &U_fused[0, 0], units,
            &bias[0], &mask[0, 0] if mask is not None else NULL,
            &rec_mask[0, 0] if rec_mask is not None else NULL, go_backwards,
            &h[0, 0], &c[0, 0], &prev_out[0, 0],
            &out_seq[0, 0, 0] if out_seq is not None else NULL, st, sb,
            out_processing_order,
            &z_store[0, 0, 0] if z_store is not None else NULL,
            &hprev_store[0, 0, 0] if hprev_store is not None else NULL,
            &cprev_store[0, 0, 0] if cprev_store is not None else NULL,
            &c_store[0, 0, 0] if c_store is not None else NULL,
            &gbuf[0] if gbuf is not None else NULL, chunk,
            &xbuf[0] if xbuf is not None else NULL, &hbuf[0], &h2[0], wp, b0, b1)


def pack_fused(const float[:, ::1] U):
    """U (K x 4H) packed gate-interleaved for the fused step kernel:
    (panels * K, 4 * units), or None where the CPU has no kernel."""
    import numpy as np
    from .memory import aligned_empty
    cdef int K = U.shape[0], N = U.shape[1]
    cdef int u = cyl_fused_units()
    if u == 0 or K == 0 or N == 0 or N % 4:
        return None
    cdef int H = N // 4
    # panels on cache lines: the kernel loads each 64-byte row of a panel whole
    packed = aligned_empty(((H + u - 1) // u * K, 4 * u), np.float32)
    cdef float[:, ::1] out = packed
    with nogil:
        cyl_fused_pack(&U[0, 0], K, H, u, &out[0, 0])
    return packed


# -- ONNX's full LSTM cell (inference) --------------------------------------
# A separate time loop, so the common path above has no new branch in it:
# three activations with alpha/beta (gates f, candidate g, cell output h),
# peepholes (i, f see c_{t-1}; o sees c_t), clip of the pre-activations to
# [-clip, clip] before their activation, and input_forget (f = 1 - i):
#
#   i = f(clip(z_i + p_i * c_{t-1}))      g = g(clip(z_g))
#   f = f(clip(z_f + p_f * c_{t-1}))  or  1 - i with input_forget
#   c_t = f * c_{t-1} + i * g
#   o = f(clip(z_o + p_o * c_t))          h_t = o * h(c_t)
#
# No projection, no dropout, no training stores.

cdef inline void clip_block(floating* z, Py_ssize_t n, floating lim) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if z[j] > lim:
            z[j] = lim
        elif z[j] < -lim:
            z[j] = -lim


cdef void forward_rows_ext(
        int T, int B, int I, int H,
        const floating* x, bint x_time_major,
        const floating* W, const floating* U, const float* Up, int Up_width,
        const floating* bias, const unsigned char* mask, bint go_backwards,
        const int* codes, const floating* alphas, const floating* betas,
        const floating* peep, bint has_clip, floating clip, bint input_forget,
        floating* h, floating* c, floating* prev_out,
        floating* out_seq, Py_ssize_t out_stride_t, Py_ssize_t out_stride_b,
        bint out_processing_order,
        floating* gbuf, int chunk, floating* xbuf, floating* mbuf,
        int b0, int b1) noexcept nogil:
    cdef int nb = b1 - b0
    cdef int G = 4 * H
    cdef int s, t, b, j, tlo, thi, s0, s1
    cdef Py_ssize_t gstride = <Py_ssize_t>nb * G
    cdef floating* grow
    cdef floating* a
    cdef floating* crow
    cdef floating* mrow
    cdef floating* orow
    cdef const floating* p_i = peep
    cdef const floating* p_f = peep + H if peep != NULL else NULL
    cdef const floating* p_o = peep + 2 * H if peep != NULL else NULL

    s0 = 0
    while s0 < T:
        s1 = s0 + chunk
        if s1 > T:
            s1 = T
        if go_backwards:
            tlo = T - s1
            thi = T - s0
        else:
            tlo = s0
            thi = s1
        _project_inputs(x, x_time_major, T, B, I, G, W, bias, tlo, thi, b0, b1, gbuf, xbuf)
        for s in range(s0, s1):
            t = T - 1 - s if go_backwards else s
            grow = gbuf + (t - tlo) * gstride
            recurrent_product(nb, G, H, h + <Py_ssize_t>b0 * H, H, U, Up, Up_width, grow, G)
            for b in range(b0, b1):
                if mask != NULL and not mask[<Py_ssize_t>b * T + t]:
                    continue
                a = grow + <Py_ssize_t>(b - b0) * G
                crow = c + <Py_ssize_t>b * H
                mrow = mbuf + <Py_ssize_t>(b - b0) * H
                if peep != NULL:
                    for j in range(H):
                        a[j] += p_i[j] * crow[j]
                        a[H + j] += p_f[j] * crow[j]
                if has_clip:
                    clip_block(a, 3 * H, clip)
                activate_param(codes[0], alphas[0], betas[0], a, a,
                               H if input_forget else 2 * H)
                if input_forget:
                    for j in range(H):
                        a[H + j] = 1 - a[j]
                activate_param(codes[1], alphas[1], betas[1], a + 2 * H, a + 2 * H, H)
                for j in range(H):
                    crow[j] = a[H + j] * crow[j] + a[j] * a[2 * H + j]
                if peep != NULL:
                    for j in range(H):
                        a[3 * H + j] += p_o[j] * crow[j]
                if has_clip:
                    clip_block(a + 3 * H, H, clip)
                activate_param(codes[0], alphas[0], betas[0], a + 3 * H, a + 3 * H, H)
                activate_param(codes[2], alphas[2], betas[2], crow, mrow, H)
                for j in range(H):
                    mrow[j] = a[3 * H + j] * mrow[j]
                memcpy(h + <Py_ssize_t>b * H, mrow, H * sizeof(floating))
                memcpy(prev_out + <Py_ssize_t>b * H, mrow, H * sizeof(floating))
            if out_seq != NULL:
                for b in range(b0, b1):
                    orow = out_seq + (s if out_processing_order else t) * out_stride_t \
                        + b * out_stride_b
                    memcpy(orow, prev_out + <Py_ssize_t>b * H, H * sizeof(floating))
        s0 = s1


def lstm_forward_ext(
        const floating[:, :, ::1] x, bint x_time_major,
        const floating[:, ::1] W, const floating[:, ::1] U, const float[:, ::1] U_packed,
        const floating[::1] bias, const unsigned char[:, ::1] mask, bint go_backwards,
        const int[::1] codes, const floating[::1] alphas, const floating[::1] betas,
        const floating[:, ::1] peephole, bint has_clip, double clip, bint input_forget,
        floating[:, ::1] h, floating[:, ::1] c, floating[:, ::1] prev_out,
        floating[:, :, ::1] out_seq, bint out_time_major, bint out_processing_order,
        floating[::1] gbuf, int chunk, floating[::1] xbuf, floating[::1] mbuf,
        int b0, int b1):
    """ONNX's full LSTM cell (see the block above) for batch rows [b0, b1),
    in place, inference only. `codes`, `alphas`, `betas` (3,) give the
    activations f, g, h (PACT_* codes of param_activations.pxd);
    `peephole` (3, H) for i, f, o, or None. Same conventions as
    `lstm_forward` otherwise (no projection: P = H). Workspace, nb = b1 - b0:
    gbuf chunk*nb*4H, xbuf chunk*nb*I, mbuf nb*H."""
    cdef int T, B, I, H
    if x_time_major:
        T, B = x.shape[0], x.shape[1]
    else:
        B, T = x.shape[0], x.shape[1]
    I = x.shape[2]
    H = c.shape[1]
    cdef Py_ssize_t st = 0, sb = 0
    if out_seq is not None:
        st = out_seq.strides[0 if out_time_major else 1] // sizeof(floating)
        sb = out_seq.strides[1 if out_time_major else 0] // sizeof(floating)
    if b1 <= b0 or T == 0:
        return
    with nogil:
        forward_rows_ext(
            T, B, I, H, &x[0, 0, 0], x_time_major, &W[0, 0], &U[0, 0],
            &U_packed[0, 0] if U_packed is not None else NULL,
            U_packed.shape[1] if U_packed is not None else 0, &bias[0],
            &mask[0, 0] if mask is not None else NULL, go_backwards,
            &codes[0], &alphas[0], &betas[0],
            &peephole[0, 0] if peephole is not None else NULL, has_clip, <floating>clip,
            input_forget, &h[0, 0], &c[0, 0], &prev_out[0, 0],
            &out_seq[0, 0, 0] if out_seq is not None else NULL, st, sb,
            out_processing_order, &gbuf[0], chunk, &xbuf[0], &mbuf[0], b0, b1)


def project_inputs(const floating[:, :, ::1] x, const floating[:, ::1] W,
                   const floating[::1] bias, floating[:, :, ::1] z, Py_ssize_t r0,
                   Py_ssize_t r1):
    """z (T, B, G) = x (T, B, I) @ W (I, G) + bias for the flattened rows
    [r0, r1) of T * B: the input projection of a training pass, one gemm per
    row range (ranges may run in parallel threads)."""
    cdef int I = x.shape[2], G = W.shape[1]
    cdef int n = <int>(r1 - r0)
    if n <= 0:
        return
    cdef const floating* xs = &x[0, 0, 0] + r0 * I
    cdef floating* zs = &z[0, 0, 0] + r0 * G
    with nogil:
        fill_rows(zs, &bias[0], n, G)
        gemm(False, False, n, G, I, 1, xs, I, &W[0, 0], G, 1, zs, G)


def project_inputs_gates(const floating[:, :, ::1] x, const floating[:, ::1] W,
                         const floating[::1] bias, const floating[:, :, ::1] in_mask,
                         floating[:, :, ::1] z, floating[:, :, ::1] xbuf, int k0, int k1):
    """z (T, B, G)[..., gate k] = (x * in_mask[k]) @ W[:, gate k] + bias[gate k]
    for the gates [k0, k1), with one input mask (B, I) per gate in `in_mask`
    (4, B, I): the input projection of a training pass under per-gate input
    dropout. `xbuf` (T, B, I) is scratch; gate ranges may run in parallel
    threads, each with its own xbuf."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], G = W.shape[1]
    cdef int H = G // 4
    cdef Py_ssize_t r, n = <Py_ssize_t>T * B, row
    cdef int k, b, j
    cdef const floating* xs = &x[0, 0, 0]
    cdef const floating* m
    cdef floating* xb = &xbuf[0, 0, 0]
    cdef floating* zs = &z[0, 0, 0]
    if n == 0 or I == 0:
        return
    with nogil:
        for k in range(k0, k1):
            for r in range(n):
                b = <int>(r % B)
                row = r * I
                m = &in_mask[k, b, 0]
                for j in range(I):
                    xb[row + j] = xs[row + j] * m[j]
            for r in range(n):
                memcpy(zs + r * G + k * H, &bias[k * H], H * sizeof(floating))
            gemm(False, False, <int>n, H, I, 1, xb, I, &W[0, 0] + k * H, G, 1,
                 zs + k * H, G)


def apply_activation(int code, floating[::1] z, bint derivative=False):
    """act(z) or act'(z) with the kernels' C code, into a new array (for tests)."""
    import numpy as np
    out = np.empty(z.shape[0], dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] dst = out
    if z.shape[0] == 0:
        return out
    with nogil:
        if derivative:
            activate_grad(code, &z[0], &dst[0], z.shape[0])
        else:
            activate(code, &z[0], &dst[0], z.shape[0])
    return out


def pack_recurrent(const float[:, ::1] B):
    """B (K x N) packed for the step kernel: (panels * K, panel width), or
    None where the CPU has no kernel."""
    import numpy as np
    cdef int K = B.shape[0], N = B.shape[1]
    cdef int nr = cyl_rec_panel_width()
    if nr == 0 or K == 0 or N == 0:
        return None
    packed = np.empty(((N + nr - 1) // nr * K, nr), dtype=np.float32)
    cdef float[:, ::1] out = packed
    with nogil:
        cyl_rec_pack(&B[0, 0], K, N, nr, &out[0, 0])
    return packed


def recurrent_product_f32(const float[:, ::1] A, const float[:, ::1] B, float[:, ::1] C,
                          bint packed=True):
    """C += A @ B with the step kernel (packed) or BLAS (for tests and benchmarks)."""
    Bp = pack_recurrent(B) if packed else None
    cdef const float[:, ::1] bp = Bp
    if A.shape[0] == 0:
        return
    with nogil:
        recurrent_product(A.shape[0], B.shape[1], A.shape[1], &A[0, 0], A.shape[1],
                          &B[0, 0], &bp[0, 0] if bp is not None else NULL,
                          bp.shape[1] if bp is not None else 0, &C[0, 0], C.shape[1])


def recurrent_isa(int force=-1):
    """The SIMD level of the step kernel: 2 AVX-512, 1 AVX2, 0 none (BLAS).
    `force` caps it for this process (tests reach each path with it)."""
    return cyl_recurrent_isa(force)
