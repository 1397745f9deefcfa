"""Type stubs for the compiled backward kernel (see lstm_backward.pyx)."""
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

# Cython's typed memoryviews accept any buffer of the right dtype and rank; the
# callers (cylstm._ops) pass C-contiguous NumPy arrays. `floating` is float32
# or float64 (one dtype per call); `float` arguments are float32 only.
_Float = npt.NDArray[np.floating[Any]]
_F32 = npt.NDArray[np.float32]

def lstm_backward_steps(
    UT: _Float, UT_packed: Optional[_F32], Wr: Optional[_Float],
    mask: Optional[npt.NDArray[np.uint8]], rec_mask: Optional[_Float],
    rec_mask_gates: Optional[_Float], UT_gates_packed: Optional[_F32],
    go_backwards: bool, act: int, rec_act: int, z_store: _Float, cprev_store: _Float,
    c_store: _Float, d_seq: Optional[_Float], d_time_major: bool, d_processing_order: bool,
    dh: _Float, dc: _Float, dprev: _Float, dh_store: Optional[_Float], scratch: _Float,
    stored_activations: bool, b0: int, b1: int,
) -> None: ...
def lstm_backward_weights(
    x: _Float, W: _Float, hprev_store: _Float, m_store: Optional[_Float], dz: _Float,
    dh_store: Optional[_Float], dx: Optional[_Float], dW: _Float, dU: _Float, db: _Float,
    dWr: Optional[_Float], g0: int, g1: int, p0: int, p1: int, r0: int, r1: int,
    xh: Optional[_Float] = None, dx_batch_major: bool = False, k0: int = 0, k1: int = -1,
) -> None: ...
def lstm_backward_join(x: _Float, hprev_store: _Float, xh: _Float, r0: int, r1: int) -> None: ...
def lstm_backward_transpose(src: _Float, dst: _Float) -> None: ...
def recurrent_isa(force: int = ...) -> int: ...
