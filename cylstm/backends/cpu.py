"""The CPU backend: the compiled Cython kernels over scipy's BLAS, on NumPy arrays.

``CpuBackend`` overrides the reference methods of ``Backend`` with the
compiled paths: it normalises the layout, applies the threading policy and
the thresholds (attributes of the backend, chosen from benchmark runs),
leases workspaces and calls the kernels of ``cylstm/_kernels/``. What has no
compiled path -- a Python-callable activation -- runs the reference methods
of ``Backend`` (whole-array per step), with BLAS on one thread per call as
the compiled path uses it. Layers never see BLAS; kernels never see Keras or
PyTorch. Weights use the kernel layout: kernel (I, 4H), recurrent_kernel
(P, 4H), bias (4H,) or None, projection (H, P) or None, gates in the order
i, f, g(c), o.

Training memory: the forward pass keeps, per (batch row, step), 4H gate
values (pre-activations, or the activations themselves on the fused float32
tanh/sigmoid path), P + 2H state values (plus H with a projection) and a
time-major copy of the input: 4H + P + 2H + I values. The backward pass
writes the gate gradients over the gate store, so a training forward can be
backpropagated once; the stores then return to the layer's workspace for the
next step. Without per-gate dropout masks it also keeps, in the workspace
across calls, the input and state stores side by side with a column of ones
(I + P + 1 values per row and step: dW, dU and db are then one product) and,
for a batch-major input of more than BATCH_MAJOR_DX_MAX_INPUTS features, a
time-major dx (I values).
"""
from __future__ import annotations

import threading
from functools import partial
from typing import Any, Dict, Tuple

import numpy as np

from .. import activations as _activations
from .._kernels import reference
from .._kernels.memory import aligned_empty, aligned_zeros
from .._threads import current_threads, one_blas_thread, run_parallel, split
from .._validation import check_sequence_sizes
from .base import Backend, LSTMGrads, LSTMProblem, ReferenceCache

__all__ = ["CpuBackend", "Workspace", "ForwardCache"]


# The compiled kernels load on their first call, not with `import cylstm`:
# they import scipy.linalg (for its BLAS), which takes longer than numpy.
def _backward_steps_kernel(*args, **kwargs):
    from .._kernels.lstm_backward import lstm_backward_steps
    return lstm_backward_steps(*args, **kwargs)


def _backward_weights_kernel(*args, **kwargs):
    from .._kernels.lstm_backward import lstm_backward_weights
    return lstm_backward_weights(*args, **kwargs)


def _backward_transpose_kernel(*args, **kwargs):
    from .._kernels.lstm_backward import lstm_backward_transpose
    return lstm_backward_transpose(*args, **kwargs)


def _backward_join_kernel(*args, **kwargs):
    from .._kernels.lstm_backward import lstm_backward_join
    return lstm_backward_join(*args, **kwargs)


def _forward_kernel(*args, **kwargs):
    from .._kernels.lstm_forward import lstm_forward
    return lstm_forward(*args, **kwargs)


def _forward_fused_kernel(*args, **kwargs):
    from .._kernels.lstm_forward import lstm_forward_fused
    return lstm_forward_fused(*args, **kwargs)


def pack_fused(*args, **kwargs):
    from .._kernels.lstm_forward import pack_fused
    return pack_fused(*args, **kwargs)


def _step_isa():
    """The SIMD level of lstm_step's fused kernels (2 AVX-512, 1 AVX2, 0 none)."""
    from .._kernels.lstm_step import fused_isa
    return fused_isa()


def _kernel_isa():
    """The SIMD level of the step kernels in force (2 AVX-512, 1 AVX2, 0 none)."""
    from .._kernels.lstm_forward import recurrent_isa
    return recurrent_isa()


def _forward_ext_kernel(*args, **kwargs):
    from .._kernels.lstm_forward import lstm_forward_ext
    return lstm_forward_ext(*args, **kwargs)


def pack_recurrent(*args, **kwargs):
    from .._kernels.lstm_forward import pack_recurrent
    return pack_recurrent(*args, **kwargs)


# The activations of the fused step (activations.pxd codes): tanh, sigmoid gates.
_FUSED_CODES = (1, 2)


def _fused_sequence_kernel(*args, **kwargs):
    from .._kernels.lstm_step import fused_sequence
    return fused_sequence(*args, **kwargs)


def _fused_sequence_parts(*args, **kwargs):
    from .._kernels.lstm_step import sequence_parts
    return sequence_parts(*args, **kwargs)


def _project_kernel(*args, **kwargs):
    from .._kernels.lstm_forward import project_inputs
    return project_inputs(*args, **kwargs)


def _project_gates_kernel(*args, **kwargs):
    from .._kernels.lstm_forward import project_inputs_gates
    return project_inputs_gates(*args, **kwargs)


def _fused_gates(dtype, act_code, rec_code):
    """Whether the fused float32 sigmoid/tanh gate loop applies."""
    return (dtype == np.float32 and act_code == _activations.KERNEL_CODES["tanh"]
            and rec_code == _activations.KERNEL_CODES["sigmoid"])


class Workspace:
    """Scratch buffers reused across calls of one layer.

    A call takes the workspace with ``acquire()``; a second thread calling the
    same layer at the same time gets private buffers instead of waiting.
    """

    def __init__(self):
        self._buffers = {}
        self._lock = threading.Lock()
        self._free_stores = []
        self._stores_lock = threading.Lock()

    def take_stores(self, shapes, dtype):
        """Training stores of these shapes: a set a finished backward pass gave
        back, or new arrays. Reuse saves the page faults of fresh large
        allocations on every training step."""
        key = (tuple(sorted(shapes.items())), np.dtype(dtype))
        with self._stores_lock:
            for i, (k, arrays) in enumerate(self._free_stores):
                if k == key:
                    del self._free_stores[i]
                    return arrays
        return {name: None if shape is None else aligned_empty(shape, dtype)
                for name, shape in shapes.items()}

    def give_back_stores(self, shapes, dtype, arrays):
        key = (tuple(sorted(shapes.items())), np.dtype(dtype))
        with self._stores_lock:
            self._free_stores = [(key, arrays)] + self._free_stores[:1]

    def get_private(self, name, shape, dtype):
        """A buffer of this shape that no other call holds until it is given
        back (give_back_private): the backward pass's, which runs outside
        ``acquire`` (a layer may start its next forward pass meanwhile)."""
        with self._stores_lock:
            buf = self._buffers.pop(name, None)
        if buf is None or buf.dtype != dtype or buf.shape != tuple(shape):
            buf = aligned_empty(shape, dtype)
        return buf

    def give_back_private(self, name, buf):
        with self._stores_lock:
            self._buffers[name] = buf

    def acquire(self):
        if self._lock.acquire(blocking=False):
            return _Lease(self, owned=True)
        return _Lease(Workspace(), owned=False)

    def get(self, name, size, dtype):
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = aligned_empty(max(size, 1), dtype)
            self._buffers[name] = buf
        return buf[:max(size, 1)]


class _Lease:
    def __init__(self, workspace, owned):
        self.workspace = workspace
        self.owned = owned

    def __enter__(self):
        return self.workspace

    def __exit__(self, *exc):
        if self.owned:
            self.workspace._lock.release()


class ForwardCache:
    """What the backward pass needs from a training forward pass."""

    __slots__ = ("arrays", "options", "used", "workspace", "shapes", "backend")

    def __init__(self, arrays, options, workspace=None, shapes=None):
        self.arrays = arrays
        self.options = options
        self.backend = None   # the backend whose lstm_backward takes it
        self.used = False
        self.workspace = workspace
        self.shapes = shapes


def _as_mask(mask, B, T, time_major):
    if mask is None:
        return None
    m = np.asarray(mask)
    if time_major:
        m = m.T
    return np.ascontiguousarray(m.astype(bool, copy=False)).view(np.uint8)


def _project_gates(x, kernel, bias, input_mask, z, parts):
    """z (T, B, G)[..., gate k] = (x * input_mask[k]) @ kernel[:, k] + bias[k]:
    the input projection under per-gate input dropout, gates split over
    ``parts`` threads."""
    run_parallel([partial(_project_gates_kernel, x, kernel, bias, input_mask, z,
                          np.empty_like(x), k0, k1)
                  for k0, k1 in split(4, min(parts, 4))])


def _gate_weight_products(a, kernel, input_mask, rec_gates, dh_store, dx, grads,
                          gates, proj_cols, times):
    """The products after the backward time loop under per-gate dropout masks:
    dW[:, k] = (X * in_k)^T dZ_k, dU[:, k] = (Hprev * r_k)^T dZ_k and db[k] for
    the gates in ``gates``; dWr for columns ``proj_cols``; dX = sum_k
    (dZ_k W_k^T) * in_k for the time indices ``times``. Without input masks
    (or recurrent ones) the plain products stand in, on the stored X (Hprev)."""
    T, B, I = a["x"].shape
    P = a["hprev"].shape[2]
    G = kernel.shape[1]
    H = G // 4
    TB = T * B
    X = a["x"].reshape(TB, I)
    Hp = a["hprev"].reshape(TB, P)
    Z = a["z"].reshape(TB, G)
    xm = None if input_mask is None else np.empty_like(a["x"])
    hm = None if rec_gates is None else np.empty_like(a["hprev"])
    for k in range(*gates):
        cols = slice(k * H, (k + 1) * H)
        if xm is not None:
            np.multiply(a["x"], input_mask[k], out=xm)
        xk = X if xm is None else xm.reshape(TB, I)
        np.matmul(xk.T, Z[:, cols], out=grads["kernel"][:, cols])
        if hm is not None:
            np.multiply(a["hprev"], rec_gates[k], out=hm)
        hk = Hp if hm is None else hm.reshape(TB, P)
        np.matmul(hk.T, Z[:, cols], out=grads["recurrent_kernel"][:, cols])
        np.sum(Z[:, cols], axis=0, out=grads["bias"][cols])
    p0, p1 = proj_cols
    if grads["projection"] is not None and p1 > p0:
        np.matmul(a["m"].reshape(TB, -1).T, dh_store.reshape(TB, P)[:, p0:p1],
                  out=grads["projection"][:, p0:p1])
    t0, t1 = times
    if dx is None or t1 <= t0:
        return
    n = (t1 - t0) * B
    z = Z[t0 * B:t1 * B]
    dx2 = dx[t0:t1].reshape(n, I)
    if input_mask is None:
        np.matmul(z, kernel.T, out=dx2)
        return
    dx2[:] = 0
    part = np.empty((t1 - t0, B, I), dx.dtype)
    for k in range(4):
        cols = slice(k * H, (k + 1) * H)
        np.matmul(z[:, cols], kernel[:, cols].T, out=part.reshape(n, I))
        part *= input_mask[k]
        dx2 += part.reshape(n, I)


class CpuBackend(Backend):
    """Compiled kernels on NumPy arrays: the default backend.

    The class attributes below decide how a call runs; set them on an
    instance (``backend_named("cpu")``) to change them for that backend.
    """

    # Elements of the gate block of one chunk of timesteps (inference). Keeps the
    # input projection's output in cache and memory flat in T.
    CHUNK_ELEMENTS = 1 << 18

    # Multiply-adds of a whole call below which splitting the batch over threads
    # costs more (thread hand-off, ~20 us) than it saves; and the fewest rows a
    # slice gets. Chosen from benchmarks/ runs on the 2-core machine.
    PARALLEL_MIN_WORK = 4_000_000
    PARALLEL_MIN_ROWS = 2

    # Where the float32 step kernel (recurrent.h) beats scipy's sgemm, measured
    # per call on this project's 2-core AVX-512 machine: up to 256 rows, for
    # recurrent kernels of at least 16K values (below, packing costs little),
    # from 4 rows, or from 2 once U has 512K values. gemm re-packs U on every step,
    # which at few rows costs more than the product: at 8 rows and 256 units it
    # took 2.8x the kernel's time, at 2-4 rows and 512 units 2.5-3x; at 2-3 rows
    # and 256 units gemm is ahead (by up to 20 %), at one row gemv.
    RECURRENT_KERNEL_ROWS = (4, 256)
    RECURRENT_KERNEL_FEW_ROWS = (2, 1 << 19)
    RECURRENT_KERNEL_MIN_SIZE = 16384

    # Sequences of up to this many rows (float32, tanh/sigmoid, no projection,
    # mask, dropout or training) run the fused step's time loop
    # (lstm_step.fused_sequence): one pass per step instead of a gemv and four
    # passes over the gates, and, for steps large enough, its units split
    # between persistent C threads (too few rows to split by row).
    FUSED_SEQUENCE_ROWS = 2
    # At the AVX2 level (step_fused.h's 8-wide kernels) at most this many.
    # With the 2-4 row products in register tiles (CYLSTM_ISA=avx2, AMD EPYC
    # Zen 4, one thread, alternating calls, medians of CPU time; the unfused
    # path's sgemm still at the machine's AVX-512), three runs, against the
    # unfused path: 2,100,{32,128 64,64 128,128 256,256} 0.89-1.10x,
    # 0.86-0.98x, 0.95-1.26x, 0.83-1.09x (the previous product: 1.18-1.71x);
    # with OpenBLAS capped too (OPENBLAS_CORETYPE=Haswell, as on an AVX2-only
    # CPU) 0.13-0.25x. Three rows gained too (0.63-1.04x) but stay with
    # FUSED_SEQUENCE_ROWS, the cap of every level.
    FUSED_SEQUENCE_AVX2_ROWS = 2

    def _few_row_sequence(self, B, H, P, codes, dtype, go_backwards):
        """Whether an inference call without masks or dropout of this shape
        runs lstm_step.fused_sequence (see FUSED_SEQUENCE_ROWS)."""
        if not (0 < B <= self.FUSED_SEQUENCE_ROWS and H == P and tuple(codes) == _FUSED_CODES
                and dtype == np.float32 and not go_backwards):
            return False
        return B <= self.FUSED_SEQUENCE_AVX2_ROWS or _step_isa() != 1

    def _use_packed(self, matrix, slices):
        """Whether the step kernel, rather than BLAS, multiplies by ``matrix``."""
        rows = min(b1 - b0 for b0, b1 in slices)
        lo, hi = self.RECURRENT_KERNEL_ROWS
        few_rows, large = self.RECURRENT_KERNEL_FEW_ROWS
        if matrix.size >= large:
            lo = few_rows
        return (matrix.dtype == np.float32 and lo <= rows <= hi
                and matrix.size >= self.RECURRENT_KERNEL_MIN_SIZE)


    def _packed(self, matrix, slices):
        """The step kernel's packed copy of ``matrix``, or None to use BLAS."""
        return pack_recurrent(matrix) if self._use_packed(matrix, slices) else None


    # The fused step kernel (fused_step.h: product, gates and cell in one pass)
    # runs float32 tanh/sigmoid calls without a projection or per-gate recurrent
    # dropout when every thread's slice has at least FUSED_STEP_MIN_ROWS rows,
    # the layer at most FUSED_STEP_MAX_UNITS units and the CPU's kernel packs
    # panels of one of FUSED_STEP_PANEL_UNITS units (16: AVX-512, 8: AVX2).
    # Measured against the unfused path on the 2-core AMD EPYC (Zen 4) machine,
    # one thread, alternating calls: 3-11 % faster at one row and at 4-16 rows
    # with 128 units, even at the IMDB shape (10 units), even to 2 % either way
    # at 256 units, 2-6 % slower at 512 (there the gate arithmetic, which both
    # paths do, outweighs the passes over the gate block that fusion saves; the
    # product itself runs at the same rate).
    FUSED_STEP_MIN_ROWS = 1
    FUSED_STEP_MAX_UNITS = 128
    FUSED_STEP_PANEL_UNITS = (16, 8)
    # The AVX2 + FMA kernel (8-unit panels; what an AVX2-only CPU gets) runs
    # only calls that make the input projection in the step, with at
    # least FUSED_STEP_AVX2_MIN_ROWS rows per thread and FUSED_STEP_AVX2_MIN_UNITS
    # units. CYLSTM_ISA=avx2 does not reach the unfused path's gate loops
    # (target_clones: the loader picks the AVX-512 clone on an AVX-512 CPU) nor
    # OpenBLAS, so the cap alone compares this kernel with an unfused path of
    # AVX-512 gate math and sgemm; perf at 32,300,15,10 there: the unfused
    # path's time 25 % in cyl_lstm_gates_f32.avx512f / cyl_tanh_f32.avx512f,
    # 22 % in OpenBLAS's SKYLAKEX sgemm (the fused kernel: 49 % its epilogue,
    # 25 % its products) -- so the kernel "lost" 1.23-1.34x at 10 units, which
    # on an AVX2-only CPU it does not. Measured as that CPU runs the unfused
    # path (a private build whose gate loops clone for avx2 and the baseline
    # only; AMD EPYC Zen 4, one thread, alternating calls, medians of CPU
    # time), fused / unfused, sgemm at SkylakeX / with OPENBLAS_CORETYPE=Haswell:
    # 32,300,15,10 0.86 / 0.79, 128,300,15,10 0.92 / 0.91, 3,300,15,10
    # 1.04 / 0.66, 4 and 8,300,15,10 0.99-1.01 / 0.73-0.82, 16,100,16,16
    # 0.68 / 0.58, 16,100,32,32 0.70 / 0.59, 16,100,48,48 0.90 / 0.51,
    # 5,100,48,48 0.80 / 0.37, 4,100,64,64 0.76 / 0.76, 3,100,32,128
    # 0.67 / 0.16, 6,100,128,128 0.58 / 0.64, 7,100,64,128 0.63 / 0.67,
    # 4,100,128,256 0.89 / 1.00, 3,100,256,256 0.56 / 0.23; at 1-2 rows
    # 1.02-1.18 / 0.23-1.14 (those take lstm_step.fused_sequence where they
    # can, see FUSED_SEQUENCE_AVX2_ROWS). Training (its projection by sgemm
    # into the store) from FUSED_STEP_AVX2_TRAINING_MIN_UNITS units: the
    # training forward pass, same build, fused / unfused: 16,100,16,16
    # 0.83 / 0.64, 32,100,32,32 0.80-0.87 / 0.67, 16,100,32,64 0.79 / 0.76,
    # 4,100,64,64 0.76 / 0.80, 16,100,64,128 0.87-0.88 / 0.89, 8,100,128,128
    # 0.77 / 0.97, but 10 units 1.06-1.13 / 1.07-1.17 (32 and 128,300,15,10:
    # a second panel for 2 units, whose activations training writes back).
    # The backward pass is the same after either; a whole training step
    # (forward + backward): 16,100,64,128 0.82, 16,100,16,16 0.87, 4,100,64,64
    # 0.97, 32,100,32,32 0.93-1.10 (three runs). FUSED_STEP_AVX2_INPUT_ONLY
    # keeps inference with the projection by sgemm (FUSED_STEP_INPUT off;
    # 0.96-1.3x, measured with the AVX-512 gate clones) unfused. With the
    # training step's input projection in the step too (FUSED_STEP_INPUT_
    # TRAINING), a whole training step against the unfused path, gate loops
    # at AVX2 (isa.h): 16,100,64,128 0.92x, 32,100,64,64 0.86x, 8,100,64,128 0.97x.
    FUSED_STEP_AVX2_MIN_ROWS = 3
    FUSED_STEP_AVX2_MIN_UNITS = 1
    FUSED_STEP_AVX2_TRAINING_MIN_UNITS = 16
    FUSED_STEP_AVX2_INPUT_ONLY = True
    # Inference on the fused step makes the input projection in the step too
    # (W packed as U is: bias + x_t @ W + h_{t-1} @ U in the registers) instead
    # of one sgemm per chunk of timesteps into a gate buffer, at any unit count
    # (FUSED_STEP_MAX_UNITS then limits training only). Same machine, one
    # thread, alternating calls, against main's choice (unfused above 128
    # units, projection by sgemm): 64,100,128,256 0.86x, 256,50,256,512 0.91x,
    # 16,100,64,128 0.91-0.95x, 32,300,15,10 0.91x, I >= 512 0.73-0.80x; at
    # 3 rows and I = H = 256 the sgemm projection was 5 % faster (kept simple:
    # one rule).
    FUSED_STEP_INPUT = True
    FUSED_STEP_INPUT_MAX_UNITS = 1 << 30
    # ... and so does a training forward pass (no input dropout), whose step
    # then writes the gate activations it made in the registers to the
    # training store instead of reading the store's projection back: one
    # sgemm over all T B rows and a pass over the T x B x 4H store fewer.
    FUSED_STEP_INPUT_TRAINING = True

    # The backward pass makes dW and dU as one product over X and Hprev side
    # by side (lstm_backward_join), which packs dZ once instead of twice.
    # Measured on the 2-core AMD EPYC (Zen 4) machine, one thread, scipy's
    # OpenBLAS, alternating calls: a training step 5 % faster at
    # 16,100,64,128, 4 % at 128,300,15,10, 1 % at 64,100,128,256.
    JOINT_WEIGHT_PRODUCT = True
    # ... and db too, as the product's row of a column of ones in X | Hprev,
    # not a pass of its own over dZ (3-4 % at 128,300,15,10 and
    # 64,100,128,256, even at 16,100,64,128).
    JOINT_BIAS_GRADIENT = True
    # ... whose rows, not columns, threads split (see _compiled_backward).
    JOINT_PRODUCT_ROW_SPLIT = True
    # With at most BATCH_MAJOR_DX_MAX_INPUTS inputs it writes a batch-major dx
    # in place, one product per batch row (T rows of dZ, B * 4H apart),
    # instead of a time-major dx and a transposed copy, whose short rows copy
    # slowly: 2-4 % faster at 128,300,15,10, 1-4 % slower at 64 and 128 inputs.
    BATCH_MAJOR_DX_MAX_INPUTS = 32

    def _input_in_step(self, training, input_mask):
        """Whether a fused forward pass makes the input projection in the step
        (FUSED_STEP_INPUT, FUSED_STEP_INPUT_TRAINING): not with per-gate input
        masks, which need the whole projection up front."""
        return self.FUSED_STEP_INPUT and input_mask is None and (
            not training or self.FUSED_STEP_INPUT_TRAINING)

    def _fused_packed(self, recurrent_kernel, slices, training=False, input_in_step=None):
        """U packed gate-interleaved for the fused step kernel, or None to run
        the unfused path (see FUSED_STEP_*). Inference calls take the larger
        limit of the step that projects the input too. ``input_in_step``:
        whether the call makes the input projection in the step (default:
        as an inference call without input masks would)."""
        if input_in_step is None:
            input_in_step = self._input_in_step(training, None)
        max_units = self.FUSED_STEP_MAX_UNITS
        if not training and self.FUSED_STEP_INPUT:
            max_units = max(max_units, self.FUSED_STEP_INPUT_MAX_UNITS)
        if (min(b1 - b0 for b0, b1 in slices) < self.FUSED_STEP_MIN_ROWS
                or recurrent_kernel.shape[1] // 4 > max_units):
            return None
        units = recurrent_kernel.shape[1] // 4
        if _kernel_isa() == 1 and (   # AVX2 (8-unit panels): where it measured faster
                min(b1 - b0 for b0, b1 in slices) < self.FUSED_STEP_AVX2_MIN_ROWS
                or units < self.FUSED_STEP_AVX2_MIN_UNITS
                or (training and units < self.FUSED_STEP_AVX2_TRAINING_MIN_UNITS)
                or (self.FUSED_STEP_AVX2_INPUT_ONLY and not training and not input_in_step)):
            return None
        packed = pack_fused(recurrent_kernel)
        if packed is None or packed.shape[1] // 4 not in self.FUSED_STEP_PANEL_UNITS:
            return None
        return packed

    def _packed_blocks(self, matrix, blocks, slices):
        """The packed copies of the blocks (4, K, N) of ``matrix``, stacked, or
        None to use BLAS. The choice follows the whole matrix: the step makes the
        four block products back to back, as one product of the whole."""
        if not self._use_packed(matrix, slices):
            return None
        packed = [pack_recurrent(block) for block in blocks]
        return None if packed[0] is None else np.stack(packed)

    def _product_parts(self, work):
        """How many threads share one large product of `work` multiply-adds."""
        return current_threads() if work >= self.PARALLEL_MIN_WORK else 1


    def row_slices(self, B, work):
        """Split batch rows into contiguous slices, one per thread, when worth it."""
        n = min(current_threads(), B // self.PARALLEL_MIN_ROWS)
        if n <= 1 or work < self.PARALLEL_MIN_WORK:
            return [(0, B)]
        return split(B, n)

    def __init__(self) -> None:
        super().__init__(np, name="cpu")
        from .._isa import apply_env_cap
        apply_env_cap()   # CYLSTM_ISA, read once (see cylstm/_isa.py)

    @staticmethod
    def compiled(problem: LSTMProblem) -> bool:
        """Whether the compiled kernels run this problem (built-in activations)."""
        return (_activations.kernel_code(problem.activation) is not None
                and _activations.kernel_code(problem.recurrent_activation) is not None)

    def workspace(self) -> "Workspace":
        """Scratch buffers a layer keeps between calls."""
        return Workspace()

    def zeros(self, shape: Any, dtype: Any) -> Any:
        """A new zero array whose data start on a 64-byte boundary: weights,
        gradients and optimizer slots are made here, and the kernels that read
        weights in place load whole cache lines from them (_kernels/memory.py)."""
        return aligned_zeros(shape, self.dtype(dtype))

    def asarray(self, array: Any, dtype: Any = None) -> Any:
        """A C-contiguous NumPy array (the layout the kernels index), no copy
        when ``array`` already is one of ``dtype``."""
        if not isinstance(array, np.ndarray) and hasattr(array, "__array_namespace__"):
            array = np.from_dlpack(array)      # another namespace's array
        return np.ascontiguousarray(array, dtype=dtype)

    def forward_plan(self, kernel: Any, recurrent_kernel: Any, bias: Any, projection: Any,
                     activation: Any, recurrent_activation: Any, x_shape: Tuple[int, int, int],
                     *, time_major: bool = False, return_sequences: bool = True,
                     go_backwards: bool = False, output_order: str = "processing",
                     workspace: Any = None, bias_parts: Any = None, return_last: bool = True,
                     return_states: bool = True) -> Any:
        """A ``ForwardPlan`` (``backends/cpu_plan.py``): inference calls of this
        shape and these options, decided once (a ``StepPlan`` on the streaming
        kernel for one timestep). ``bias_parts``: two arrays whose sum is the
        bias, added on every call (torch's bias_ih, bias_hh). ``return_last``,
        ``return_states`` False: the caller drops those outputs (the plan then
        reuses its own arrays for them). None where the
        compiled kernels do not apply (Python-callable activations, an empty
        batch, arrays that are not C-contiguous NumPy arrays of one float dtype)."""
        from .cpu_plan import ForwardPlan, StepPlan
        act = _activations.kernel_code(activation)
        rec = _activations.kernel_code(recurrent_activation)
        B = x_shape[1] if time_major else x_shape[0]
        arrays = [a for a in (kernel, recurrent_kernel, bias, projection, *(bias_parts or ()))
                  if a is not None]
        if (act is None or rec is None or B == 0 or workspace is None
                or kernel.dtype not in (np.float32, np.float64)
                or not all(type(a) is np.ndarray and a.dtype == kernel.dtype
                           and a.flags.c_contiguous for a in arrays)):
            return None
        if (x_shape[0] if time_major else x_shape[1]) == 1:
            return StepPlan(self, kernel, recurrent_kernel, bias, projection, activation,
                            recurrent_activation, x_shape, time_major, return_sequences,
                            workspace, bias_parts)
        plan = ForwardPlan(self, kernel, recurrent_kernel, bias, projection, (act, rec), x_shape,
                           time_major, return_sequences, go_backwards, output_order, workspace,
                           _fused_gates(np.dtype(kernel.dtype), act, rec), return_last,
                           return_states)
        if bias_parts is not None:
            plan.sum_biases(*bias_parts)
        return plan

    def lstm_forward(self, problem: LSTMProblem) -> Tuple[Tuple[Any, Any, Any, Any], Any]:
        p = problem
        act_code = _activations.kernel_code(p.activation)
        rec_code = _activations.kernel_code(p.recurrent_activation)
        if act_code is None or rec_code is None:
            T, B, I = p.x.shape if p.time_major else (p.x.shape[1], p.x.shape[0], p.x.shape[2])
            check_sequence_sizes(T, B, I, p.c0.shape[1], p.h0.shape[1])
            dtype = p.x.dtype
            with one_blas_thread(all_blas=True):
                (seq, last, h, c), cache = super().lstm_forward(p)
            seq = None if seq is None else np.ascontiguousarray(seq, dtype)
            return (seq, last.astype(dtype, copy=False), h.astype(dtype, copy=False),
                    c.astype(dtype, copy=False)), cache
        seq, last, h, c, cache = self._compiled_forward(
            p.x, p.kernel, p.recurrent_kernel, p.bias, p.h0, p.c0, projection=p.projection,
            mask=p.mask, recurrent_mask=p.recurrent_mask, input_mask=p.input_mask,
            go_backwards=p.go_backwards, activation=p.activation,
            recurrent_activation=p.recurrent_activation, time_major=p.time_major,
            return_sequences=p.return_sequences, output_order=p.output_order,
            training=p.training, workspace=p.workspace, codes=(act_code, rec_code))
        if cache is not None:
            cache.backend = self
        return (seq, last, h, c), cache

    def lstm_backward(self, cache: Any, grads: LSTMGrads) -> Dict[str, Any]:
        if isinstance(cache, ReferenceCache):
            with one_blas_thread(all_blas=True):
                out = super().lstm_backward(cache, grads)
            if out["dx"] is not None:
                out["dx"] = np.ascontiguousarray(out["dx"], cache.dtype)
            return out
        return self._compiled_backward(cache, grads.d_seq, grads.d_last, grads.d_h,
                                       grads.d_c, need_dx=grads.need_dx)

    def stepper(self, kernel: Any, recurrent_kernel: Any, bias: Any, projection: Any,
                activation: Any, recurrent_activation: Any, batch: int) -> Any:
        act = _activations.kernel_code(activation)
        rec = _activations.kernel_code(recurrent_activation)
        if act is None or rec is None:
            return super().stepper(kernel, recurrent_kernel, bias, projection, activation,
                                   recurrent_activation, batch)
        from .._kernels.lstm_step import StepKernel  # loads scipy.linalg: not at import
        if bias is None:
            bias = np.zeros(kernel.shape[1], kernel.dtype)
        return StepKernel(kernel, recurrent_kernel, bias, projection, act, rec, batch,
                          _fused_gates(np.dtype(kernel.dtype), act, rec))


    def _compiled_forward(self, x, kernel, recurrent_kernel, bias, h0, c0, *, projection=None,
                     mask=None, recurrent_mask=None, input_mask=None, go_backwards=False,
                     activation=_activations.tanh, recurrent_activation=_activations.sigmoid,
                     time_major=False, return_sequences=True, output_order="processing",
                     training=False, workspace=None, codes=None):
        """Run an LSTM over ``x`` (B, T, I), or (T, B, I) when ``time_major``.

        ``h0`` (B, P) and ``c0`` (B, H) are not modified. ``mask`` (B, T) (or
        (T, B) when time_major) of bools. Dropout: ``recurrent_mask`` (B, P) is
        shared by the four gates, or (4, B, P) one per gate i, f, g, o;
        ``input_mask`` (4, B, I) gives each gate its own input mask (a mask shared
        by the gates is applied to ``x`` by the caller). Per-gate masks are Keras 3
        with ``recurrent_dropout > 0``: the input masks only change the input
        projection, made here gate by gate; the recurrent ones go to the kernels
        (four block products per step). ``output_order`` 'processing' puts the
        output of processing step s at position s (Keras ``go_backwards``);
        'time' puts it at the time index it came from (PyTorch/ONNX reverse).

        Returns ``(sequence or None, last_output, h, c, cache or None)``; the
        sequence has the layout of ``x``. Built-in activations only (the caller,
        ``lstm_forward``, sends Python callables to the reference).
        """
        dtype = x.dtype
        if time_major:
            T, B, I = x.shape
        else:
            B, T, I = x.shape
        H = c0.shape[1]
        P = h0.shape[1]
        G = 4 * H
        check_sequence_sizes(T, B, I, H, P)
        if bias is None:
            bias = np.zeros(G, dtype)
        mask8 = _as_mask(mask, B, T, time_major)
        if codes is None:
            codes = (_activations.kernel_code(activation),
                     _activations.kernel_code(recurrent_activation))
        act_code, rec_code = codes
        processing_order = output_order == "processing"

        if (T > 0 and not training and mask is None and recurrent_mask is None
                and input_mask is None
                and self._few_row_sequence(B, H, P, (act_code, rec_code), dtype, go_backwards)):
            seq, last, h, c = _fused_sequence_kernel(
                x, time_major, kernel, recurrent_kernel, bias, h0, c0, return_sequences,
                _fused_sequence_parts(B, I, H))
            return seq, last, h, c, None

        h = np.array(h0, dtype=dtype, order="C", copy=True)
        c = np.array(c0, dtype=dtype, order="C", copy=True)
        last = np.zeros((B, P), dtype)
        seq = None
        if return_sequences:
            seq = np.empty((T, B, P) if time_major else (B, T, P), dtype)
        if B == 0:
            cache = None
            if training:   # nothing to backpropagate: zero gradients of the right shapes
                cache = ForwardCache(None, dict(
                    kernel=kernel, recurrent_kernel=recurrent_kernel, projection=projection,
                    time_major=time_major, shape=(T, B, I, H, P), dtype=dtype))
            return seq, last, h, c, cache
        slices = self.row_slices(B, T * B * G * (I + P))
        fused = _fused_gates(dtype, act_code, rec_code)

        rec_gates = u_gates = u_gates_packed = None
        if recurrent_mask is not None and recurrent_mask.ndim == 3:
            rec_gates = np.ascontiguousarray(recurrent_mask, dtype)
            recurrent_mask = None
            # U's gate column blocks (4, P, H), each contiguous for the step product.
            u_gates = np.ascontiguousarray(recurrent_kernel.reshape(P, 4, H).transpose(1, 0, 2))
            u_gates_packed = self._packed_blocks(recurrent_kernel, u_gates, slices)
        elif recurrent_mask is not None:
            recurrent_mask = np.ascontiguousarray(recurrent_mask, dtype)
        if input_mask is not None:
            input_mask = np.ascontiguousarray(input_mask, dtype)
        # Per-gate input masks need the whole input projection made up front,
        # which only the kernel's training layout takes; an inference call with
        # them fills the training stores and gives them back at the end.
        kernel_training = training or input_mask is not None

        if workspace is None:
            workspace = Workspace()
        arrays = None
        with workspace.acquire() as ws, one_blas_thread():
            if kernel_training:
                # The backward pass needs a time-major input for its dW/dX gemms,
                # and the projection of all steps is one gemm up front.
                store_shapes = dict(
                    x=(T, B, I), z=(T, B, G), hprev=(T, B, P), cprev=(T, B, H), c=(T, B, H),
                    m=(T, B, H) if projection is not None else None)
                arrays = workspace.take_stores(store_shapes, dtype)
                xk = arrays["x"]
                np.copyto(xk, x if time_major else x.transpose(1, 0, 2))
                x_time_major = True
                chunk = T
            else:
                xk = np.ascontiguousarray(x)
                x_time_major = time_major
                chunk = int(max(1, min(T, self.CHUNK_ELEMENTS // max(B * G, 1))))

            u_fused = None
            input_in_step = self._input_in_step(training, input_mask)
            if fused and projection is None and rec_gates is None:
                u_fused = self._fused_packed(recurrent_kernel, slices, kernel_training,
                                             input_in_step)
            w_fused = None
            if u_fused is not None and input_in_step:
                w_fused = pack_fused(kernel)
            if kernel_training and w_fused is None:
                if input_mask is None:
                    run_parallel([partial(_project_kernel, xk, kernel, bias, arrays["z"], r0, r1)
                                  for r0, r1 in split(T * B, self._product_parts(T * B * G * I))])
                else:
                    _project_gates(xk, kernel, bias, input_mask, arrays["z"],
                                   self._product_parts(T * B * G * I))
            u_packed = None
            if rec_gates is None and u_fused is None:
                u_packed = self._packed(recurrent_kernel, slices)

            def run(i, b0, b1):
                nb = b1 - b0
                if u_fused is not None:
                    _forward_fused_kernel(
                        xk, x_time_major, kernel, u_fused, u_fused.shape[1] // 4, bias, mask8,
                        recurrent_mask, go_backwards, h, c, last, seq, time_major,
                        processing_order,
                        arrays["z"] if kernel_training else None,
                        arrays["hprev"] if kernel_training else None,
                        arrays["cprev"] if kernel_training else None,
                        arrays["c"] if kernel_training else None,
                        None if kernel_training or w_fused is not None
                        else ws.get(f"gates{i}", chunk * nb * G, dtype),
                        chunk, None if w_fused is not None
                        else ws.get(f"x{i}", 1 if kernel_training else chunk * nb * I, dtype),
                        ws.get(f"h{i}", nb * H, dtype), ws.get(f"h2_{i}", nb * H, dtype),
                        b0, b1, w_fused, w_fused is not None)
                    return
                gbuf = None if kernel_training else ws.get(f"gates{i}", chunk * nb * G, dtype)
                _forward_kernel(
                    xk, x_time_major, kernel, recurrent_kernel, u_packed, bias, projection, mask8,
                    recurrent_mask, rec_gates, u_gates, u_gates_packed,
                    go_backwards, act_code, rec_code, h, c, last,
                    seq, time_major, processing_order,
                    arrays["z"] if kernel_training else None,
                    arrays["hprev"] if kernel_training else None,
                    arrays["cprev"] if kernel_training else None,
                    arrays["c"] if kernel_training else None,
                    arrays["m"] if kernel_training else None,
                    gbuf, chunk, ws.get(f"x{i}", 1 if kernel_training else chunk * nb * I, dtype),
                    ws.get(f"act{i}", nb * G if kernel_training else 1, dtype),
                    ws.get(f"h{i}", nb * P, dtype), ws.get(f"m{i}", nb * H, dtype),
                    ws.get(f"sel{i}", nb * G, np.float32) if fused else None, b0, b1)

            run_parallel([partial(run, i, b0, b1) for i, (b0, b1) in enumerate(slices)])
        cache = None
        if kernel_training and not training:
            workspace.give_back_stores(store_shapes, dtype, arrays)
        elif training:
            cache = ForwardCache(arrays, dict(
                kernel=kernel, recurrent_kernel=recurrent_kernel, projection=projection,
                mask=mask8, recurrent_mask=recurrent_mask, recurrent_mask_gates=rec_gates,
                input_mask=input_mask, go_backwards=go_backwards,
                act=act_code, rec=rec_code, time_major=time_major,
                processing_order=processing_order, shape=(T, B, I, H, P), dtype=dtype,
                slices=slices, fused=fused), workspace, store_shapes)
        return seq, last, h, c, cache

    def lstm_forward_ext(self, x, kernel, recurrent_kernel, bias, h0, c0, *, gate_activation,
                         candidate_activation, cell_activation, peephole=None, clip=None,
                         input_forget=False, mask=None, go_backwards=False, time_major=False,
                         return_sequences=True, output_order="processing", workspace=None):
        """ONNX's full LSTM cell, inference only: ``lstm_forward`` (no projection,
        no dropout) with three activations -- ``gate_activation`` (i, f, o),
        ``candidate_activation`` (g), ``cell_activation`` (on c_t) -- each an
        ``OnnxActivation`` (compiled, with its alpha/beta) or a Python callable
        (the NumPy twin), ``peephole`` (3, H) for i, f, o, ``clip`` (a positive
        number or None) and ``input_forget``. Returns ``(sequence or None,
        last_output, h, c, None)`` as ``lstm_forward`` does.
        """
        dtype = x.dtype
        if time_major:
            T, B, I = x.shape
        else:
            B, T, I = x.shape
        H = c0.shape[1]
        G = 4 * H
        if bias is None:
            bias = np.zeros(G, dtype)
        if peephole is not None:
            peephole = np.ascontiguousarray(peephole, dtype).reshape(3, H)
        mask8 = _as_mask(mask, B, T, time_major)
        acts = (gate_activation, candidate_activation, cell_activation)
        processing_order = output_order == "processing"
        if not all(isinstance(getattr(a, "code", None), int) and hasattr(a, "alpha")
                   for a in acts):
            xt = x if time_major else x.transpose(1, 0, 2)
            with one_blas_thread(all_blas=True):
                outs, last, h, c, _ = reference.lstm_forward(
                    xt, kernel, recurrent_kernel, bias, h0, c0,
                    mask=None if mask8 is None else mask8.astype(bool), go_backwards=go_backwards,
                    activation=candidate_activation, recurrent_activation=gate_activation,
                    cell_activation=cell_activation, peephole=peephole, clip=clip,
                    input_forget=input_forget)
            seq = None
            if return_sequences:
                if go_backwards and not processing_order:
                    outs = outs[::-1]
                seq = np.ascontiguousarray(outs if time_major else outs.transpose(1, 0, 2), dtype)
            return seq, last.astype(dtype), h.astype(dtype), c.astype(dtype), None

        codes = np.array([a.code for a in acts], np.intc)
        alphas = np.array([a.alpha for a in acts], dtype)
        betas = np.array([a.beta for a in acts], dtype)
        h = np.array(h0, dtype=dtype, order="C", copy=True)
        c = np.array(c0, dtype=dtype, order="C", copy=True)
        last = np.zeros((B, H), dtype)
        seq = None
        if return_sequences:
            seq = np.zeros((T, B, H) if time_major else (B, T, H), dtype)
        if B == 0:
            return seq, last, h, c, None
        slices = self.row_slices(B, T * B * G * (I + H))
        xk = np.ascontiguousarray(x)
        chunk = int(max(1, min(T, self.CHUNK_ELEMENTS // max(B * G, 1))))
        if workspace is None:
            workspace = Workspace()
        with workspace.acquire() as ws, one_blas_thread():
            u_packed = self._packed(recurrent_kernel, slices)

            def run(i, b0, b1):
                nb = b1 - b0
                _forward_ext_kernel(
                    xk, time_major, kernel, recurrent_kernel, u_packed, bias, mask8, go_backwards,
                    codes, alphas, betas, peephole, clip is not None,
                    0.0 if clip is None else float(clip), bool(input_forget), h, c, last, seq,
                    time_major, processing_order, ws.get(f"gates{i}", chunk * nb * G, dtype), chunk,
                    ws.get(f"x{i}", chunk * nb * I, dtype), ws.get(f"m{i}", nb * H, dtype), b0, b1)

            run_parallel([partial(run, i, b0, b1) for i, (b0, b1) in enumerate(slices)])
        return seq, last, h, c, None

    def _compiled_backward(self, cache, d_seq=None, d_last=None, d_h=None, d_c=None, need_dx=True):
        """Gradients of the forward pass that made ``cache``.

        ``d_seq`` has the layout and order of the forward's sequence output;
        ``d_last``, ``d_h``, ``d_c`` are the gradients of the last output and final
        states. Any of them may be None (zero). Returns a dict: dx (layout of x),
        dh0, dc0, kernel, recurrent_kernel, bias, projection (None if absent).
        """
        if cache.used:
            raise RuntimeError("backprop was already called for this forward pass; "
                               "run forward_train again to backpropagate again.")
        cache.used = True
        opt = cache.options
        T, B, I, H, P = opt["shape"]
        dtype = opt["dtype"]
        time_major = opt["time_major"]

        if B == 0:   # an empty batch: every gradient is zero
            proj = opt["projection"]
            return dict(
                dx=np.zeros((T, 0, I) if time_major else (0, T, I), dtype) if need_dx else None,
                dh0=np.zeros((0, P), dtype), dc0=np.zeros((0, H), dtype),
                kernel=np.zeros_like(opt["kernel"]),
                recurrent_kernel=np.zeros_like(opt["recurrent_kernel"]),
                bias=np.zeros(4 * H, dtype),
                projection=None if proj is None else np.zeros_like(proj))

        a = cache.arrays
        kernel = opt["kernel"]
        G = 4 * H
        dh = np.zeros((B, P), dtype) if d_h is None else np.array(d_h, dtype, order="C")
        dc = np.zeros((B, H), dtype) if d_c is None else np.array(d_c, dtype, order="C")
        dprev = np.zeros((B, P), dtype) if d_last is None else np.array(d_last, dtype, order="C")
        if d_seq is not None:
            d_seq = np.ascontiguousarray(d_seq, dtype=dtype)
        proj = opt["projection"]
        rec_gates = opt["recurrent_mask_gates"]
        input_mask = opt["input_mask"]
        plain_products = rec_gates is None and input_mask is None
        joint = plain_products and self.JOINT_WEIGHT_PRODUCT
        ones = int(joint and self.JOINT_BIAS_GRADIENT)
        if joint:
            # dW, dU (and db) as the rows of one array: one product makes them.
            dwu = np.zeros((I + P + ones, G), dtype)
            dw, du = dwu[:I], dwu[I:I + P]
            db = dwu[I + P] if ones else np.zeros(G, dtype)
        else:
            dw, du = np.zeros_like(kernel), np.zeros_like(opt["recurrent_kernel"])
            db = np.zeros(G, dtype)
        grads = dict(
            kernel=dw, recurrent_kernel=du,
            bias=db, projection=None if proj is None else np.zeros_like(proj))
        dh_store = np.empty((T, B, P), dtype) if proj is not None else None

        # U^T, by tiles (lstm_backward_transpose: 2-4x NumPy's strided copy).
        ut = np.empty((G, P), dtype)
        _backward_transpose_kernel(np.ascontiguousarray(opt["recurrent_kernel"], dtype), ut)
        ut_packed = ut_gates_packed = None
        if rec_gates is None:
            ut_packed = self._packed(ut, opt["slices"])
        else:
            # The gate blocks of U^T are its row blocks (H, P), contiguous.
            ut_gates_packed = self._packed_blocks(ut, ut.reshape(4, H, P), opt["slices"])

        def run(b0, b1):
            nb = b1 - b0
            _backward_steps_kernel(
                ut, ut_packed, proj, opt["mask"], opt["recurrent_mask"], rec_gates,
                ut_gates_packed, opt["go_backwards"], opt["act"], opt["rec"], a["z"],
                a["cprev"], a["c"],
                d_seq, time_major, opt["processing_order"], dh, dc, dprev, dh_store,
                np.empty(nb * (2 * G + 2 * H + max(H, P)), dtype), opt["fused"], b0, b1)

        # A batch-major dx is written in place (lstm_backward_weights), not
        # made time-major and copied.
        batch_major_dx = (need_dx and not time_major and plain_products
                          and I <= self.BATCH_MAJOR_DX_MAX_INPUTS)
        dx = None
        dx_temp = need_dx and not time_major and not batch_major_dx
        if dx_temp:
            # Time-major, then copied to the layout of x: a reused buffer
            # (fresh pages of a new one cost their faults on every call).
            dx = cache.workspace.get_private("backward_dx", (T, B, I), dtype)
        elif need_dx:
            dx = np.empty((B, T, I) if batch_major_dx else (T, B, I), dtype)
        n = self._product_parts(T * B * G * (I + P))

        xh = None
        if joint:
            xh = cache.workspace.get_private("backward_xh", (T, B, I + P + ones), dtype)

        def join_and_run(b0, b1, r0, r1):
            # The join reads only forward stores, so it shares the rows' threads.
            if xh is not None:
                _backward_join_kernel(a["x"], a["hprev"], xh, r0, r1)
            run(b0, b1)

        def products(cols, proj_cols, rows):
            _backward_weights_kernel(a["x"], kernel, a["hprev"], a["m"], a["z"], dh_store, dx,
                                     grads["kernel"], grads["recurrent_kernel"], grads["bias"],
                                     grads["projection"], *cols, *proj_cols, *rows, xh,
                                     batch_major_dx)

        # With the column of ones (db inside the joint product) n threads
        # split the product's rows (time steps x batch rows), each into a
        # partial sum, rather than its gate columns: every thread then packs
        # only its rows of X|Hprev and dZ, not all of X|Hprev. Per thread, at
        # 16,100,64,128 on two: 2.6 ms against 3.4 (AMD EPYC Zen 4).
        partials = []
        if ones and n > 1 and self.JOINT_PRODUCT_ROW_SPLIT:
            partials = [dwu] + [cache.workspace.get_private(f"backward_dwu{k}", dwu.shape, dtype)
                                for k in range(1, n)]

        def row_products(k, joint_rows, proj_cols, rows):
            part = partials[k]
            if k:
                part.fill(0)
            _backward_weights_kernel(a["x"], kernel, a["hprev"], a["m"], a["z"], dh_store, dx,
                                     part[:I], part[I:I + P], part[I + P],
                                     grads["projection"], 0, G, *proj_cols, *rows, xh,
                                     batch_major_dx, *joint_rows)

        with one_blas_thread():
            slices = opt["slices"]
            run_parallel([partial(join_and_run, b0, b1, r0, r1) for (b0, b1), (r0, r1)
                          in zip(slices, split(T * B, len(slices)))])
            # The gate gradients now sit where the pre-activations were.
            if batch_major_dx:
                dx_rows = split(B, n)
            else:   # whole time steps: each thread then copies its own to dx_out
                dx_rows = [(t0 * B, t1 * B) for t0, t1 in split(T, n)]
            if plain_products and dx_temp:
                dx_out = np.empty((B, T, I), dtype)

                def copied(task, rows):
                    task()
                    t0, t1 = rows[0] // B, rows[1] // B
                    np.copyto(dx_out[:, t0:t1], dx[t0:t1].transpose(1, 0, 2))
            else:
                copied = None
            if partials:
                run_parallel([partial(copied, partial(row_products, k, j, p, r), r) if copied
                              else partial(row_products, k, j, p, r) for k, (j, p, r) in
                              enumerate(zip(split(T * B, n), split(P, n), dx_rows))])
                for k, part in enumerate(partials[1:], 1):
                    dwu += part
                    cache.workspace.give_back_private(f"backward_dwu{k}", part)
            elif plain_products:
                run_parallel([partial(copied, partial(products, c, p, r), r) if copied
                              else partial(products, c, p, r) for c, p, r in
                              zip(split(G, n), split(P, n), dx_rows)])
        if xh is not None:
            cache.workspace.give_back_private("backward_xh", xh)
        if rec_gates is not None or input_mask is not None:
            with one_blas_thread(all_blas=True):
                run_parallel([partial(_gate_weight_products, a, kernel, input_mask, rec_gates,
                                      dh_store, dx, grads, g, p, t)
                              for g, p, t in zip(split(4, min(n, 4)), split(P, min(n, 4)),
                                                 split(T, min(n, 4)))])
        if dx_temp:
            # Copied to x's layout by the product threads, or here.
            dx_tm = dx
            dx = dx_out if copied else np.ascontiguousarray(dx_tm.transpose(1, 0, 2))
            cache.workspace.give_back_private("backward_dx", dx_tm)
        grads.update(dx=dx, dh0=dh, dc0=dc)
        cache.workspace.give_back_stores(cache.shapes, dtype, a)
        cache.arrays = None
        return grads
