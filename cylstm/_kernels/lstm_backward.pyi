"""Type stubs for the compiled backward kernel (see lstm_backward.pyx)."""
from typing import Optional

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.floating]

def lstm_backward_steps(
    UT: Float, UT_packed: Optional[npt.NDArray[np.float32]], Wr: Optional[Float],
    mask: Optional[npt.NDArray[np.uint8]], rec_mask: Optional[Float],
    rec_mask_gates: Optional[Float], UT_gates_packed: Optional[npt.NDArray[np.float32]],
    go_backwards: bool, act: int, rec_act: int, z_store: Float, cprev_store: Float,
    c_store: Float, d_seq: Optional[Float], d_time_major: bool, d_processing_order: bool,
    dh: Float, dc: Float, dprev: Float, dh_store: Optional[Float], scratch: Float,
    sel: Optional[npt.NDArray[np.float32]], b0: int, b1: int,
) -> None: ...
def lstm_backward_weights(
    x: Float, W: Float, hprev_store: Float, m_store: Optional[Float], dz: Float,
    dh_store: Optional[Float], dx: Optional[Float], dW: Float, dU: Float, db: Float,
    dWr: Optional[Float],
) -> None: ...
