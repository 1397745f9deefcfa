# One LSTM timestep for streaming inference, with as little per-call work as
# the computation allows (SPEC 6b): the weights are held by pointer, the
# gate workspace is preallocated, and the argument checks are a few C
# comparisons. Per call: z = bias + x @ W + h @ U (two gemv/gemm), the fused
# gate loop, then c and h. Notation as in lstm_forward.pyx.
#
# float32 with sigmoid gates, tanh and no projection, for up to FUSED_MAX_ROWS
# rows, takes the fused step of step_fused.h instead (one pass; the units split
# between persistent C threads when the step is big enough), and so does
# `fused_sequence`, the time loop of few-row sequences (see its docstring).
cimport numpy as cnp
from cpython.pythread cimport (NOWAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_release_lock, PyThread_type_lock)
from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
from libc.string cimport memcpy

from .activations cimport activate, activate_gates, fill_gate_selector
from .blas cimport gemm
from .recurrent cimport recurrent_product

import atexit

import numpy as np

from .._threads import current_threads

cnp.import_array()

cdef extern from "step_fused.h" nogil:
    ctypedef struct cyl_fused_job:
        int rows, inputs, units, steps, h_ring, level
        const float* x
        long x_row, x_step
        const float* W
        const float* U
        const float* bias
        const float* h0
        long h0_row
        const float* bias2
        float* zx
        float* h
        long h_row, h_step
        float* c
        float* z
    int cyl_fused_run(cyl_fused_job* job, int parts)
    long cyl_fs_scratch(int n, int H)
    long cyl_fs_zx_scratch(int n, int H)
    int cyl_recurrent_isa(int force)
    void cyl_pool_shutdown()
    int cyl_pool_size()
    ctypedef struct cyl_pool_api:
        pass
    cyl_pool_api cyl_pool_own_api

# The fused step serves up to this many rows (beyond, the packed/BLAS products
# of the unfused path share each weight read between more rows).
DEF FUSED_MAX_ROWS = 8
# Multiply-adds per thread below which a step runs on fewer threads (a step
# of 2x this splits in two), alone and in a time loop. Measured on the
# project's 2-core AMD EPYC VM (C harness, medians, load 1.3): 1,1,256,256
# (524K) 31.6 us on one thread, 25.5 us on two; 128x128 (131K) 7.8 / 6.9 us;
# 64x64 (33K) 2.1 / 3.4 us; a 1,100,32,128 sequence (82K a step) 598 us
# unfused, 571 us fused, 471 us fused on two threads. With both cores busy
# with other work (load 5-6) two threads lost at all of these (1,1,256,256:
# 47 us against 31; 1,100,32,128: 2.2 ms against 1.2): the worker seldom had
# its core. `set_split_work` changes both (the tests use it to reach the
# threaded path at every size).
cdef Py_ssize_t _split_min_work = 1 << 17
cdef Py_ssize_t _sequence_split_min_work = 1 << 15


def set_split_work(step=None, sequence=None):
    """Set the multiply-adds per step from which a step (`step`) or each step
    of a time loop (`sequence`) splits its units between threads; returns the
    previous pair. None leaves one as it is."""
    global _split_min_work, _sequence_split_min_work
    old = (_split_min_work, _sequence_split_min_work)
    for value in (step, sequence):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"split work must be a positive int, got {value!r}.")
    if step is not None:
        _split_min_work = step
    if sequence is not None:
        _sequence_split_min_work = sequence
    return old

atexit.register(lambda: cyl_pool_shutdown())

# This module's pool is the process's: the other kernel modules run their
# column splits on it through these functions (workers.h, cyl_pool_use).
pool_api = PyCapsule_New(<void*>&cyl_pool_own_api, b"cylstm._kernels.workers.pool_api", NULL)


def fused_isa(int force=-1):
    """The instruction-set level of the fused step (2: AVX-512F, 1: AVX2 +
    FMA, 0: scalar); `force` >= 0 caps it (the tests reach each level)."""
    return cyl_recurrent_isa(force)


def pool_size():
    """Worker threads the fused step has started in this process."""
    return cyl_pool_size()


cdef int _parts(Py_ssize_t work, Py_ssize_t minimum):
    """Threads for a step of `work` multiply-adds, within cylstm's setting:
    one per `minimum` of work."""
    if work < 2 * minimum:
        return 1
    cdef Py_ssize_t n = current_threads()
    return <int>min(n, work // minimum, 64)


cdef inline bint fused_activations(int act, int rec_act):
    return act == 1 and rec_act == 2     # tanh, sigmoid (activations.pxd)


def fused_sequence(x, bint time_major, kernel, recurrent_kernel, bias, h0, c0,
                   bint return_sequences, int parts, bias2=None):
    """The forward pass of a float32 LSTM (sigmoid gates, tanh, no projection,
    mask or dropout) over few rows, on `parts` threads splitting each step's
    units (workers.h), one barrier per step.

    Each step is the fused step of step_fused.h, x_t @ W included: at few rows
    a time loop is bound by reading W and U. The input projections of eight
    steps at a time are made together (their rows share each read of W, in
    the threads' own units, no BLAS call), so a step reads W an eighth as
    often as U. x is (B, T, I), or (T, B, I)
    when time_major, C-contiguous float32; h0 (B, H), c0 (B, H); bias2, when
    given, (4H,) added to bias in the kernel (torch's bias_hh). Returns
    (sequence or None, last, h, c) as CpuBackend._compiled_forward does.
    """
    cdef cnp.ndarray xa = np.ascontiguousarray(x, np.float32)
    cdef cnp.ndarray W = np.ascontiguousarray(kernel, np.float32)
    cdef cnp.ndarray U = np.ascontiguousarray(recurrent_kernel, np.float32)
    cdef cnp.ndarray bvec = np.ascontiguousarray(bias, np.float32)
    cdef Py_ssize_t T, B, I
    if time_major:
        T, B, I = xa.shape[0], xa.shape[1], xa.shape[2]
    else:
        B, T, I = xa.shape[0], xa.shape[1], xa.shape[2]
    cdef Py_ssize_t H = U.shape[0]
    if (W.shape[0] != I or W.shape[1] != 4 * H or U.shape[1] != 4 * H
            or bvec.shape[0] != 4 * H or tuple(h0.shape) != (B, H)
            or tuple(c0.shape) != (B, H)):
        raise ValueError(f"fused_sequence: shapes x {x.shape}, kernel {kernel.shape}, "
                         f"recurrent_kernel {recurrent_kernel.shape}, bias {bias.shape}, "
                         f"h0 {h0.shape}, c0 {c0.shape} do not make one LSTM.")
    cdef cnp.ndarray b2 = None
    if bias2 is not None:
        b2 = np.ascontiguousarray(bias2, np.float32)
        if b2.ndim != 1 or b2.shape[0] != 4 * H:
            raise ValueError(f"fused_sequence: bias2 of shape {bias2.shape}; expected "
                             f"({4 * H},).")
    cdef cnp.ndarray h0a = np.ascontiguousarray(h0, np.float32)
    cdef cnp.ndarray c = np.array(c0, np.float32, order="C", copy=True)
    # z, then (for more than one step) the input projections of a few steps
    # made together (step_fused.h, CYL_FS_ZX_STEPS): 5-19 % less time a step
    # at 1,100,{32,64,128},{128,64,128} (C harness, one thread).
    cdef Py_ssize_t zsize = cyl_fs_scratch(<int>B, <int>H)
    cdef bint project_ahead = T > 1 and I > 0
    cdef cnp.ndarray z = np.empty(zsize + (cyl_fs_zx_scratch(<int>B, <int>H)
                                           if project_ahead else 0), np.float32)
    cdef cnp.ndarray seq = None
    cdef cnp.ndarray ring = None
    cdef cyl_fused_job job
    job.rows = <int>B
    job.inputs = <int>I
    job.units = <int>H
    job.steps = <int>T
    job.level = cyl_recurrent_isa(-1)
    job.x = <const float*>cnp.PyArray_DATA(xa)
    job.x_row = T * I if not time_major else I
    job.x_step = I if not time_major else B * I
    job.W = <const float*>cnp.PyArray_DATA(W)
    job.U = <const float*>cnp.PyArray_DATA(U)
    job.bias = <const float*>cnp.PyArray_DATA(bvec)
    job.h0 = <const float*>cnp.PyArray_DATA(h0a)
    job.h0_row = H
    job.bias2 = NULL
    if b2 is not None:
        job.bias2 = <const float*>cnp.PyArray_DATA(b2)
    job.c = <float*>cnp.PyArray_DATA(c)
    job.z = <float*>cnp.PyArray_DATA(z)
    job.zx = job.z + zsize if project_ahead else NULL
    if return_sequences:
        seq = np.empty((T, B, H) if time_major else (B, T, H), np.float32)
        job.h = <float*>cnp.PyArray_DATA(seq)
        job.h_ring = 0
        job.h_row = T * H if not time_major else H
        job.h_step = H if not time_major else B * H
    else:
        ring = np.empty((2, B, H), np.float32)
        job.h = <float*>cnp.PyArray_DATA(ring)
        job.h_ring = 1
        job.h_row = H
        job.h_step = B * H
    if T > 0 and B > 0 and H > 0:
        with nogil:
            cyl_fused_run(&job, parts)
    if T == 0 or B == 0:
        last = np.array(h0a, copy=True)
    elif return_sequences:
        last = np.ascontiguousarray(seq[T - 1] if time_major else seq[:, T - 1])
    else:
        last = np.array(ring[(T - 1) % 2], copy=True)
    return seq, last, last.copy(), c


def sequence_parts(Py_ssize_t B, Py_ssize_t I, Py_ssize_t H):
    """Threads `fused_sequence` would use for rows of this size now."""
    return _parts(B * (I + H) * 4 * H, _sequence_split_min_work)


cdef void step_rows(int nb, int I, int H, int P, const floating* x, const floating* h,
                    const floating* c, const floating* W, const floating* U,
                    const floating* bias, const floating* bias2, const floating* Wr,
                    int act, int rec_act,
                    floating* gates, floating* mbuf, const float* sel,
                    floating* h_out, floating* c_out) noexcept nogil:
    cdef int G = 4 * H
    cdef int b, j
    cdef floating* arow
    for b in range(nb):
        memcpy(gates + <Py_ssize_t>b * G, bias, G * sizeof(floating))
        if bias2 != NULL:
            arow = gates + <Py_ssize_t>b * G
            for j in range(G):
                arow[j] += bias2[j]
    recurrent_product(nb, G, I, x, I, W, <const float*>NULL, 0, gates, G)
    recurrent_product(nb, G, P, h, P, U, <const float*>NULL, 0, gates, G)
    activate_gates(act, rec_act, gates, gates, sel, nb, H)
    for b in range(nb):
        arow = gates + <Py_ssize_t>b * G
        for j in range(H):
            c_out[b * H + j] = arow[H + j] * c[b * H + j] + arow[j] * arow[2 * H + j]
    activate(act, c_out, mbuf, <Py_ssize_t>nb * H)
    for b in range(nb):
        arow = gates + <Py_ssize_t>b * G + 3 * H
        for j in range(H):
            mbuf[b * H + j] = arow[j] * mbuf[b * H + j]
    if Wr != NULL:
        gemm(False, False, nb, P, H, 1, mbuf, H, Wr, P, 0, h_out, P)
    else:
        memcpy(h_out, mbuf, <Py_ssize_t>nb * H * sizeof(floating))


cdef inline bint _fits(object a, int rows, int cols, int typenum, bint lead=False):
    """A C-contiguous 2-D ndarray of this exact shape and dtype, in the
    machine's byte order and aligned; with ``lead``, a (1, rows, cols) one
    instead (torch's (num_layers, batch, hidden) states: the same memory)."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef cnp.npy_intp* d = cnp.PyArray_DIMS(arr)
    if lead:
        if cnp.PyArray_NDIM(arr) != 3 or d[0] != 1:
            return False
        d += 1
    elif cnp.PyArray_NDIM(arr) != 2:
        return False
    return (d[0] == rows and d[1] == cols and cnp.PyArray_TYPE(arr) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISBEHAVED_RO(arr))


cdef inline bint _fits_one_step(object a, int batch, int cols, int typenum,
                                bint time_major):
    """A C-contiguous (batch, 1, cols) array, or (1, batch, cols) when time-major:
    the same memory as (batch, cols)."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_NDIM(arr) != 3 or cnp.PyArray_TYPE(arr) != typenum \
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return False
    cdef cnp.npy_intp* d = cnp.PyArray_DIMS(arr)
    if time_major:
        return d[0] == 1 and d[1] == batch and d[2] == cols
    return d[0] == batch and d[1] == 1 and d[2] == cols


cdef class StepKernel:
    """One timestep of an LSTM for a fixed batch size and the given weights.

    The weight arrays are used in place (a layer updates them in place), so
    results follow weight changes without a rebuild. ``step(x, h, c)``
    returns new arrays ``(h_new, c_new)``; it returns None when an argument is
    not a C-contiguous ndarray of the expected shape and dtype, so the caller
    can convert (or raise) and try again.

    Thread safety: the gate workspace is leased per call (a non-blocking
    lock, a few ns uncontended). A call that finds it busy -- another thread
    is stepping the same kernel -- uses private scratch for that call, so
    concurrent calls on one layer give the serial results.
    """
    cdef readonly object kernel, recurrent_kernel, bias, projection, bias2
    cdef readonly int batch, input_dim, units, output_dim
    cdef int act, rec_act, typenum, is_float, fused_step
    cdef object _gates, _m, _sel
    cdef PyThread_type_lock _busy

    def __cinit__(self, *args, **kwargs):
        self._busy = PyThread_allocate_lock()
        if self._busy == NULL:
            raise MemoryError("cannot allocate the step kernel's workspace lock")

    def __dealloc__(self):
        if self._busy != NULL:
            PyThread_free_lock(self._busy)

    def __init__(self, kernel, recurrent_kernel, bias, projection, int act, int rec_act,
                 Py_ssize_t batch, bint fused):
        # The kernel indexes rows with C int: every size product must fit.
        cdef Py_ssize_t limit = 2147483647
        cdef Py_ssize_t widest = max(kernel.shape[0], recurrent_kernel.shape[0], kernel.shape[1])
        if batch < 0 or kernel.shape[1] > limit or batch > limit // max(widest, 1):
            raise ValueError(f"batch size {batch} with weights of shape {kernel.shape} "
                             f"exceeds the step kernel's limit of {limit} values per array.")
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self.bias = bias
        self.bias2 = None
        self.projection = projection
        self.batch = batch
        self.input_dim = kernel.shape[0]
        self.units = kernel.shape[1] // 4
        self.output_dim = recurrent_kernel.shape[0]
        self.act = act
        self.rec_act = rec_act
        self.is_float = kernel.dtype == np.float32
        self.typenum = cnp.NPY_FLOAT32 if self.is_float else cnp.NPY_FLOAT64
        G = 4 * self.units
        self._gates = np.empty(max(batch * G, cyl_fs_scratch(<int>batch, self.units)),
                               kernel.dtype)
        self._m = np.empty(max(batch * self.units, 1), kernel.dtype)
        self._sel = None
        self.fused_step = (self.is_float and fused_activations(act, rec_act)
                           and projection is None and batch <= FUSED_MAX_ROWS)
        if fused:
            self._sel = np.empty(max(batch * G, 1), np.float32)
            fill_gate_selector(<float*>cnp.PyArray_DATA(self._sel), batch, self.units)

    def set_second_bias(self, bias2):
        """Add ``bias2`` (4 * units,) to the bias on every step, read in place
        (torch's bias_hh next to bias_ih: no per-call sum, and edits of either
        show in the next step); None removes it."""
        cdef cnp.ndarray arr
        if bias2 is not None:
            ok = cnp.PyArray_CheckExact(bias2)
            if ok:
                arr = <cnp.ndarray>bias2
                ok = (cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_DIMS(arr)[0] == 4 * self.units
                      and cnp.PyArray_TYPE(arr) == self.typenum
                      and cnp.PyArray_IS_C_CONTIGUOUS(arr))
            if not ok:
                raise ValueError(f"bias2 must be a C-contiguous ndarray of shape "
                                 f"({4 * self.units},) and dtype {self.kernel.dtype}; got "
                                 f"{getattr(bias2, 'shape', type(bias2))} "
                                 f"{getattr(bias2, 'dtype', '')}.")
        self.bias2 = bias2

    def step(self, x, h, c):
        """(h_new, c_new) from x (batch, input_dim), h, c; None if an argument
        does not fit (see the class docstring)."""
        if not (_fits(x, self.batch, self.input_dim, self.typenum)
                and _fits(h, self.batch, self.output_dim, self.typenum)
                and _fits(c, self.batch, self.units, self.typenum)):
            return None
        return self._run(x, h, c, 2, False, False)

    def sequence_of_one(self, x, h, c, bint time_major, bint return_sequences,
                        bint torch_states=False, bint states_3d=False):
        """A whole layer call on a sequence of one timestep: x is (batch, 1, I)
        (or (1, batch, I)); returns (output, h_new, c_new) with the output
        (batch, 1, P) / (1, batch, P) when return_sequences, else h_new.
        ``torch_states`` (with return_sequences): h_new (1, batch, P) and c_new
        (1, batch, H), h_new an array of its own (torch's h_n, c_n).
        h (batch, P) and c (batch, H), or (1, batch, P) and (1, batch, H) with
        ``states_3d``. None when an argument is not such an array of the
        kernel's dtype (the caller then takes its general path)."""
        if not (_fits_one_step(x, self.batch, self.input_dim, self.typenum, time_major)
                and _fits(h, self.batch, self.output_dim, self.typenum, states_3d)
                and _fits(c, self.batch, self.units, self.typenum, states_3d)):
            return None
        if not return_sequences:
            h_new, c_new = self._run(x, h, c, 2, False, False)
            return h_new, h_new, c_new
        if torch_states:
            return self._run(x, h, c, 3, time_major, True)
        out, c_new = self._run(x, h, c, 3, time_major, False)
        return out, out.reshape(self.batch, self.output_dim), c_new

    cdef tuple _run(self, x, h, c, int out_ndim, bint time_major, bint torch_states):
        cdef int B = self.batch, P = self.output_dim, H = self.units
        cdef cnp.npy_intp hdims[3]
        cdef cnp.npy_intp cdims[2]
        if out_ndim == 2:
            hdims[0] = B
            hdims[1] = P
        else:
            hdims[0] = 1 if time_major else B
            hdims[1] = B if time_major else 1
            hdims[2] = P
        cdef cnp.npy_intp sdims[3]
        sdims[0] = 1
        sdims[1] = B
        sdims[2] = P
        cdims[0] = B
        cdims[1] = H
        cdef cnp.ndarray h_out = cnp.PyArray_EMPTY(out_ndim, hdims, self.typenum, 0)
        cdef cnp.ndarray c_out
        cdef cnp.ndarray h_state = None
        if torch_states:
            h_state = cnp.PyArray_EMPTY(3, sdims, self.typenum, 0)
            sdims[2] = H
            c_out = cnp.PyArray_EMPTY(3, sdims, self.typenum, 0)
        else:
            c_out = cnp.PyArray_EMPTY(2, cdims, self.typenum, 0)
        if B == 0:
            return (h_out, h_state, c_out) if torch_states else (h_out, c_out)
        cdef void* phs = NULL
        if torch_states:
            phs = cnp.PyArray_DATA(h_state)
        cdef size_t item = sizeof(float) if self.is_float else sizeof(double)
        cdef void* px = cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef void* ph = cnp.PyArray_DATA(<cnp.ndarray>h)
        cdef void* pc = cnp.PyArray_DATA(<cnp.ndarray>c)
        cdef void* pW = cnp.PyArray_DATA(<cnp.ndarray>self.kernel)
        cdef void* pU = cnp.PyArray_DATA(<cnp.ndarray>self.recurrent_kernel)
        cdef void* pb = cnp.PyArray_DATA(<cnp.ndarray>self.bias)
        cdef void* pb2 = NULL
        if self.bias2 is not None:
            pb2 = cnp.PyArray_DATA(<cnp.ndarray>self.bias2)
        cdef void* pWr = NULL
        if self.projection is not None:
            pWr = cnp.PyArray_DATA(<cnp.ndarray>self.projection)
        # Lease the shared workspace; if another thread holds it, use private
        # scratch (released GIL below: two calls must never share it).
        cdef bint owned = PyThread_acquire_lock(self._busy, NOWAIT_LOCK) == 1
        cdef object gates = self._gates if owned else np.empty_like(self._gates)
        cdef object mscratch = self._m if owned else np.empty_like(self._m)
        cdef void* pg = cnp.PyArray_DATA(<cnp.ndarray>gates)
        cdef void* pm = cnp.PyArray_DATA(<cnp.ndarray>mscratch)
        cdef float* psel = NULL
        if self._sel is not None:
            psel = <float*>cnp.PyArray_DATA(<cnp.ndarray>self._sel)
        cdef void* pho = cnp.PyArray_DATA(h_out)
        cdef void* pco = cnp.PyArray_DATA(c_out)
        cdef cyl_fused_job job
        cdef int parts = 1
        if self.fused_step:
            parts = _parts(<Py_ssize_t>B * (self.input_dim + H) * 4 * H, _split_min_work)
            job.rows = B
            job.inputs = self.input_dim
            job.units = H
            job.steps = 1
            job.h_ring = 0
            job.level = cyl_recurrent_isa(-1)
            job.x = <const float*>px
            job.x_row = self.input_dim
            job.x_step = 0
            job.W = <const float*>pW
            job.U = <const float*>pU
            job.bias = <const float*>pb
            job.h0 = <const float*>ph
            job.h0_row = H
            job.bias2 = <const float*>pb2
            job.zx = NULL
            job.h = <float*>pho
            job.h_row = H
            job.h_step = 0
            job.c = <float*>pco
            job.z = <float*>pg
        with nogil:
            if self.fused_step:
                memcpy(pco, pc, <size_t>B * H * sizeof(float))
                cyl_fused_run(&job, parts)
            elif self.is_float:
                step_rows[float](B, self.input_dim, H, P, <float*>px, <float*>ph, <float*>pc,
                                 <float*>pW, <float*>pU, <float*>pb, <float*>pb2, <float*>pWr,
                                 self.act, self.rec_act, <float*>pg, <float*>pm, psel,
                                 <float*>pho, <float*>pco)
            else:
                step_rows[double](B, self.input_dim, H, P, <double*>px, <double*>ph,
                                  <double*>pc, <double*>pW, <double*>pU, <double*>pb,
                                  <double*>pb2, <double*>pWr, self.act, self.rec_act, <double*>pg,
                                  <double*>pm, NULL, <double*>pho, <double*>pco)
            if owned:
                PyThread_release_lock(self._busy)
            if phs != NULL:
                memcpy(phs, pho, <size_t>B * P * item)
        if torch_states:
            return h_out, h_state, c_out
        return h_out, c_out
