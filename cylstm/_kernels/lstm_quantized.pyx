# Quantized (int8, bfloat16) products and LSTM time loop for inference; the
# arithmetic and the CPU paths are described in quantized.h, the NumPy twin
# is cylstm/_kernels/reference_quantized.py.

cimport numpy as cnp
from cpython.pythread cimport (NOWAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_release_lock, PyThread_type_lock)
from libc.stdint cimport int8_t, int32_t, uint8_t, uint16_t
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.string cimport memcpy, memset

import numpy as np

from . import lstm_step as _lstm_step
from .memory import aligned_empty

cnp.import_array()

cdef extern from "quantized.h" nogil:
    ctypedef struct cyl_qmat:
        int kind
        int K
        int N
        const void* packed
        const float* scale
        const int32_t* colsum
    int cyl_q_level(int kind, int force)
    long cyl_q8_packed_size(int K, int N)
    void cyl_q8_pack(const int8_t* W, int K, int N, int8_t* Wp)
    void cyl_q8_quantize(int level, int n, int K, const float* A, int lda, uint8_t* Q,
                         float* scale, int32_t* zp)
    void cyl_q8_gemm(int level, int n, int N, int K, const uint8_t* Q, const int8_t* Wp,
                     int32_t* acc)
    long cyl_bf16_packed_size(int K, int N)
    void cyl_bf16_pack(const uint16_t* W, int K, int N, uint16_t* Wp)
    long cyl_qmat_scratch(const cyl_qmat* m, int n)
    void cyl_qmat_apply(const cyl_qmat* m, int level, int n, const float* A, int lda,
                        float* C, int ldc, void* scratch)
    void cyl_q_lstm(const cyl_qmat* U, const cyl_qmat* R, int level, int T, int B, int H,
                    int P, float* xproj, const uint8_t* mask, float* h, float* c,
                    float* seq, float* prev, float* work, void* scratch)
    int cyl_q_split_parts(const cyl_qmat* U, int threads)
    long cyl_q_split_shared(const cyl_qmat* W, const cyl_qmat* U, int T, int B)
    long cyl_q_split_own(const cyl_qmat* W, const cyl_qmat* U, int T, int B)
    int cyl_q_lstm_split(const cyl_qmat* W, const cyl_qmat* U, int level, int T, int B,
                         int parts, const float* x, float* xproj, const uint8_t* mask,
                         float* h, float* c, float* seq, float* prev, float* work,
                         void* shared, void* own)
    ctypedef struct cyl_pool_api:
        pass
    void cyl_pool_use(const cyl_pool_api* api)
    int cyl_pool_used_size()

KINDS = {"int8": 0, "bfloat16": 1}

# The column split runs on lstm_step's worker threads, the process's one pool
# (workers.h): a pool of its own would spin against it on a small machine.
cyl_pool_use(<const cyl_pool_api*>PyCapsule_GetPointer(_lstm_step.pool_api,
                                                       b"cylstm._kernels.workers.pool_api"))


def pool_size():
    """Worker threads of the process's pool (lstm_step's), which the column
    split uses."""
    return cyl_pool_used_size()


def isa_level(str dtype, int force=-1):
    """The product path used for `dtype` ("int8" or "bfloat16"): 2 AVX-512
    (VNNI / BF16), 1 AVX2, 0 portable C; `force` >= 0 caps it."""
    return cyl_q_level(KINDS[dtype], force)


def _c_f32(a, shape, name):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {a.shape}.")
    return a


cdef class QuantizedMatrix:
    """A K x N weight matrix in int8 (with column scales) or bfloat16, packed
    for the product kernels.

    Parameters
    ----------
    dtype : {"int8", "bfloat16"}
    values : numpy.ndarray
        (K, N): int8 codes for "int8", bfloat16 bit patterns (uint16) for "bfloat16".
    scale : numpy.ndarray, optional
        (N,) float32 column scales ("int8" only).
    """
    cdef cyl_qmat m
    cdef readonly object dtype, values, scale
    cdef object _packed, _colsum

    def __init__(self, str dtype, values, scale=None):
        if dtype not in KINDS:
            raise ValueError(f"`dtype` must be 'int8' or 'bfloat16', got {dtype!r}.")
        values = np.ascontiguousarray(values)
        if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
            raise ValueError(f"`values` must be a non-empty 2-D array, got shape {values.shape}.")
        K, N = values.shape
        self.dtype = dtype
        self.m.kind = KINDS[dtype]
        self.m.K = K
        self.m.N = N
        cdef cnp.ndarray packed
        if dtype == "int8":
            if values.dtype != np.int8:
                raise TypeError(f"int8 `values` must have dtype int8, got {values.dtype}.")
            if scale is None:
                raise ValueError("int8 weights need `scale` (one per column).")
            scale = _c_f32(scale, (N,), "scale")
            packed = aligned_empty(cyl_q8_packed_size(K, N), np.int8)   # cache-line loads
            cyl_q8_pack(<const int8_t*>cnp.PyArray_DATA(values), K, N,
                        <int8_t*>cnp.PyArray_DATA(packed))
            colsum = values.sum(axis=0, dtype=np.int32)
            self._colsum = colsum
            self.m.colsum = <const int32_t*>cnp.PyArray_DATA(colsum)
            self.m.scale = <const float*>cnp.PyArray_DATA(scale)
        else:
            if values.dtype != np.uint16:
                raise TypeError("bfloat16 `values` must be bit patterns of dtype uint16, "
                                f"got {values.dtype}.")
            packed = aligned_empty(cyl_bf16_packed_size(K, N), np.uint16)
            cyl_bf16_pack(<const uint16_t*>cnp.PyArray_DATA(values), K, N,
                          <uint16_t*>cnp.PyArray_DATA(packed))
            self.m.colsum = NULL
            self.m.scale = NULL
        self.values = values
        self.scale = scale
        self._packed = packed
        self.m.packed = cnp.PyArray_DATA(packed)

    @property
    def shape(self):
        return (self.m.K, self.m.N)

    @property
    def nbytes(self):
        """Bytes of the packed weights (what a product streams from memory)."""
        return self._packed.nbytes

    def apply(self, a, out=None, int force=-1):
        """``out + a @ self`` for a (n, K) float32; out (n, N) is added into in place."""
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.m.K:
            raise ValueError(f"`a` must have shape (n, {self.m.K}), got {a.shape}.")
        cdef int n = a.shape[0]
        if out is None:
            out = np.zeros((n, self.m.N), np.float32)
        elif (not isinstance(out, np.ndarray) or out.dtype != np.float32
              or out.shape != (n, self.m.N) or not out.flags.c_contiguous):
            raise ValueError(f"`out` must be a C-contiguous float32 array of shape "
                             f"({n}, {self.m.N}).")
        cdef int level = cyl_q_level(self.m.kind, force)
        cdef cnp.ndarray scratch = np.empty(cyl_qmat_scratch(&self.m, n), np.uint8)
        cdef cnp.ndarray aa = a, oo = out
        with nogil:
            cyl_qmat_apply(&self.m, level, n, <const float*>cnp.PyArray_DATA(aa), self.m.K,
                           <float*>cnp.PyArray_DATA(oo), self.m.N, cnp.PyArray_DATA(scratch))
        return out

    def int8_accumulate(self, a, int force=-1):
        """(acc, row scales, zero points) of ``a @ self`` for int8: the exact
        int32 sums sum_k q_a q_w (tests compare them with NumPy bit for bit)."""
        if self.m.kind != 0:
            raise ValueError("int8_accumulate needs an int8 matrix.")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.m.K:
            raise ValueError(f"`a` must have shape (n, {self.m.K}), got {a.shape}.")
        cdef int n = a.shape[0]
        cdef int K = self.m.K
        cdef cnp.ndarray q = np.empty((n, (K + 3) // 4 * 4), np.uint8)
        cdef cnp.ndarray sa = np.empty(n, np.float32)
        cdef cnp.ndarray zp = np.empty(n, np.int32)
        cdef cnp.ndarray acc = np.empty((n, self.m.N), np.int32)
        cdef cnp.ndarray aa = a
        cdef int level = cyl_q_level(0, force)
        cyl_q8_quantize(level, n, K, <const float*>cnp.PyArray_DATA(aa), K,
                             <uint8_t*>cnp.PyArray_DATA(q), <float*>cnp.PyArray_DATA(sa),
                             <int32_t*>cnp.PyArray_DATA(zp))
        cyl_q8_gemm(level, n, self.m.N, K, <const uint8_t*>cnp.PyArray_DATA(q),
                    <const int8_t*>self.m.packed, <int32_t*>cnp.PyArray_DATA(acc))
        return acc, sa, zp


cdef class QuantizedLSTMKernel:
    """One direction of a quantized LSTM: W (F, 4H), U (P, 4H), the projection
    R (H, P) or None, a float32 bias (4H,), and work buffers kept between calls
    (a call that finds them in use by another thread takes its own).

    ``run(x, h0, c0, mask=None, return_sequences=True, threads=1)`` over
    time-major x (T, B, F) returns (seq (T, B, P) or None, h (B, P), c (B, H),
    last output (B, P)); `mask` (T, B) bool carries the states of masked rows
    (quantized.h, cyl_q_lstm). ``threads`` > 1 splits every product's columns
    and every cell's units over that many threads (the calling one and
    persistent workers, quantized.h's cyl_q_lstm_split; not with a
    projection); the products are the same bit for bit, the gate math to
    float32 rounding (the last bit where H is not a multiple of 16). ``last_threads`` is the
    number the last call used (1 when the pool was busy with another call).
    """
    cdef readonly QuantizedMatrix W, U, R
    cdef readonly object bias
    cdef int F, G, H, P
    cdef object _xproj, _scratch, _work, _prev, _shared, _own
    cdef PyThread_type_lock _busy
    cdef readonly int last_threads

    def __cinit__(self):
        self._busy = PyThread_allocate_lock()
        if self._busy == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self._busy != NULL:
            PyThread_free_lock(self._busy)

    def __init__(self, QuantizedMatrix W, QuantizedMatrix U, QuantizedMatrix R, bias):
        self.G = U.m.N
        self.H = self.G // 4
        self.P = U.m.K
        self.F = W.m.K
        if W.m.N != self.G or self.G != 4 * self.H or W.dtype != U.dtype:
            raise ValueError(f"Quantized weights of shapes {W.shape}, {U.shape} do not make "
                             "an LSTM.")
        if R is None:
            if self.P != self.H:
                raise ValueError("A recurrent kernel of a projected LSTM needs the projection `R`.")
        elif R.m.K != self.H or R.m.N != self.P or R.dtype != U.dtype:
            raise ValueError(f"The projection must be ({self.H}, {self.P}), got {R.shape}.")
        self.W, self.U, self.R = W, U, R
        self.bias = _c_f32(bias, (self.G,), "bias")
        self._xproj = self._scratch = self._work = self._prev = None
        self._shared = self._own = None
        self.last_threads = 1

    def split_parts(self, int threads):
        """Threads a call with `threads` splits over (1: no split; always 1
        with a projection)."""
        if threads < 2 or self.R is not None:
            return 1
        return cyl_q_split_parts(&self.U.m, threads)

    def _split_buffers(self, int T, int B, int parts, bint owned):
        """(shared, own) scratch of the column split, kept when `owned`."""
        cdef long ns = cyl_q_split_shared(&self.W.m, &self.U.m, T, B)
        cdef long no = parts * cyl_q_split_own(&self.W.m, &self.U.m, T, B)
        if not owned:
            return np.empty(ns, np.uint8), np.empty(no, np.uint8)
        if self._shared is None or self._shared.shape[0] < ns:
            self._shared = np.empty(ns, np.uint8)
        if self._own is None or self._own.shape[0] < no:
            self._own = np.empty(no, np.uint8)
        return self._shared, self._own

    def _buffers(self, int T, int B):
        """(xproj, scratch, work, prev) for T steps of B rows."""
        cdef long need = max(cyl_qmat_scratch(&self.W.m, T * B), cyl_qmat_scratch(&self.U.m, B))
        if self.R is not None:
            need = max(need, cyl_qmat_scratch(&self.R.m, B))
        return (np.empty(T * B * self.G, np.float32), np.empty(need, np.uint8),
                np.empty(B * (6 * self.H + self.P), np.float32), np.empty(B * self.P, np.float32))

    def run(self, x, h0, c0, mask=None, bint return_sequences=True, int force=-1,
            int threads=1):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != self.F:
            raise ValueError(f"`x` must be 3-D (T, B, {self.F}) with {self.F} features, got "
                             f"shape {x.shape}.")
        cdef int T = x.shape[0], B = x.shape[1]
        cdef int G = self.G, H = self.H, P = self.P
        cdef cnp.ndarray h = np.array(_c_f32(h0, (B, P), "h0"), copy=True)
        cdef cnp.ndarray c = np.array(_c_f32(c0, (B, H), "c0"), copy=True)
        cdef cnp.ndarray mk = None
        if mask is not None:
            m_arr = np.ascontiguousarray(mask, dtype=np.uint8)
            if m_arr.shape != (T, B):
                raise ValueError(f"`mask` must have shape ({T}, {B}), got {m_arr.shape}.")
            mk = m_arr
        cdef cnp.ndarray seq = np.empty((T, B, P), np.float32) if return_sequences else None
        if T == 0 or B == 0:
            return seq, h, c, np.zeros((B, P), np.float32)
        cdef bint owned = PyThread_acquire_lock(self._busy, NOWAIT_LOCK) == 1
        cdef cnp.ndarray xproj, scratch, work, prev
        cdef cnp.ndarray xs = x, b = self.bias
        cdef int level = cyl_q_level(self.U.m.kind, force)
        cdef const cyl_qmat* rp = NULL if self.R is None else &self.R.m
        cdef const uint8_t* mp = NULL
        if mk is not None:
            mp = <const uint8_t*>cnp.PyArray_DATA(mk)
        cdef float* sp = NULL if seq is None else <float*>cnp.PyArray_DATA(seq)
        cdef float* xp
        cdef const float* bp = <const float*>cnp.PyArray_DATA(b)
        cdef Py_ssize_t r
        cdef int parts = self.split_parts(threads), used = 1
        cdef cnp.ndarray shared = None, own = None
        try:
            if owned:
                if self._xproj is None or self._xproj.shape[0] < T * B * G \
                        or self._prev.shape[0] != B * P:
                    self._xproj, self._scratch, self._work, self._prev = self._buffers(T, B)
                xproj, scratch, work, prev = self._xproj, self._scratch, self._work, self._prev
                if scratch.shape[0] < cyl_qmat_scratch(&self.W.m, T * B):
                    self._scratch = scratch = self._buffers(T, B)[1]
            else:
                xproj, scratch, work, prev = self._buffers(T, B)
            if parts > 1:
                shared, own = self._split_buffers(T, B, parts, owned)
            xp = <float*>cnp.PyArray_DATA(xproj)
            with nogil:
                for r in range(<Py_ssize_t>T * B):
                    memcpy(xp + r * G, bp, G * sizeof(float))
                memset(cnp.PyArray_DATA(prev), 0, <size_t>B * P * sizeof(float))
                if parts > 1:
                    used = cyl_q_lstm_split(&self.W.m, &self.U.m, level, T, B, parts,
                                            <const float*>cnp.PyArray_DATA(xs), xp, mp,
                                            <float*>cnp.PyArray_DATA(h),
                                            <float*>cnp.PyArray_DATA(c), sp,
                                            <float*>cnp.PyArray_DATA(prev),
                                            <float*>cnp.PyArray_DATA(work),
                                            cnp.PyArray_DATA(shared), cnp.PyArray_DATA(own))
                if used == 1:
                    cyl_qmat_apply(&self.W.m, level, T * B, <const float*>cnp.PyArray_DATA(xs),
                                   self.F, xp, G, cnp.PyArray_DATA(scratch))
                    cyl_q_lstm(&self.U.m, rp, level, T, B, H, P, xp, mp,
                               <float*>cnp.PyArray_DATA(h), <float*>cnp.PyArray_DATA(c), sp,
                               <float*>cnp.PyArray_DATA(prev), <float*>cnp.PyArray_DATA(work),
                               cnp.PyArray_DATA(scratch))
            self.last_threads = used
            last = prev[:B * P].reshape(B, P).copy()
        finally:
            if owned:
                PyThread_release_lock(self._busy)
        return seq, h, c, last


    def step(self, x, h0, c0, int threads=1):
        """One step for C-contiguous float32 x (B, F), h0 (B, P), c0 (B, H):
        new arrays (h, c); None when the arguments are not exactly that (the
        caller then takes ``run``). `threads` as in ``run``."""
        if not (_exact(x, -1, self.F) and cnp.PyArray_DIMS(<cnp.ndarray>x)[0] > 0):
            return None
        cdef int B = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
        if not (_exact(h0, B, self.P) and _exact(c0, B, self.H)):
            return None
        if PyThread_acquire_lock(self._busy, NOWAIT_LOCK) != 1:
            return None
        cdef cnp.ndarray h, c, xproj, scratch, work, prev, xs = <cnp.ndarray>x
        cdef int G = self.G
        cdef int level = cyl_q_level(self.U.m.kind, -1)
        cdef const cyl_qmat* rp = NULL if self.R is None else &self.R.m
        cdef const float* bp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>self.bias)
        cdef float* xp
        cdef Py_ssize_t r
        cdef int parts = self.split_parts(threads), used = 1
        cdef cnp.ndarray shared = None, own = None
        try:
            if self._xproj is None or self._xproj.shape[0] < B * G \
                    or self._prev.shape[0] != B * self.P:
                self._xproj, self._scratch, self._work, self._prev = self._buffers(1, B)
            xproj, scratch, work, prev = self._xproj, self._scratch, self._work, self._prev
            if parts > 1:
                shared, own = self._split_buffers(1, B, parts, True)
            h = (<cnp.ndarray>h0).copy()
            c = (<cnp.ndarray>c0).copy()
            xp = <float*>cnp.PyArray_DATA(xproj)
            with nogil:
                for r in range(B):
                    memcpy(xp + r * G, bp, G * sizeof(float))
                if parts > 1:
                    used = cyl_q_lstm_split(&self.W.m, &self.U.m, level, 1, B, parts,
                                            <const float*>cnp.PyArray_DATA(xs), xp, NULL,
                                            <float*>cnp.PyArray_DATA(h),
                                            <float*>cnp.PyArray_DATA(c), NULL,
                                            <float*>cnp.PyArray_DATA(prev),
                                            <float*>cnp.PyArray_DATA(work),
                                            cnp.PyArray_DATA(shared), cnp.PyArray_DATA(own))
                if used == 1:
                    cyl_qmat_apply(&self.W.m, level, B, <const float*>cnp.PyArray_DATA(xs),
                                   self.F, xp, G, cnp.PyArray_DATA(scratch))
                    cyl_q_lstm(&self.U.m, rp, level, 1, B, self.H, self.P, xp, NULL,
                               <float*>cnp.PyArray_DATA(h), <float*>cnp.PyArray_DATA(c), NULL,
                               <float*>cnp.PyArray_DATA(prev), <float*>cnp.PyArray_DATA(work),
                               cnp.PyArray_DATA(scratch))
            self.last_threads = used
        finally:
            PyThread_release_lock(self._busy)
        return h, c


cdef inline bint _exact(object a, int rows, int cols):
    """A C-contiguous 2-D float32 ndarray with `cols` columns (and `rows` rows
    unless rows < 0)."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_NDIM(arr) == 2 and (rows < 0 or cnp.PyArray_DIMS(arr)[0] == rows)
            and cnp.PyArray_DIMS(arr)[1] == cols and cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32
            and cnp.PyArray_IS_C_CONTIGUOUS(arr))


def lstm_forward(QuantizedMatrix W, QuantizedMatrix U, QuantizedMatrix R, bias, x, h0, c0,
                 mask=None, bint return_sequences=True, int force=-1, int threads=1):
    """The quantized LSTM over time-major x (T, B, F), gates i, f, g, o: one
    call of :class:`QuantizedLSTMKernel` ``(W, U, R, bias).run(...)``."""
    return QuantizedLSTMKernel(W, U, R, bias).run(x, h0, c0, mask, return_sequences, force,
                                                  threads)
