"""Type stubs for the compiled forward kernel (see lstm_forward.pyx)."""
from typing import Optional

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.floating]

def lstm_forward(
    x: Float, x_time_major: bool, W: Float, U: Float,
    U_packed: Optional[npt.NDArray[np.float32]], bias: Float, Wr: Optional[Float],
    mask: Optional[npt.NDArray[np.uint8]], rec_mask: Optional[Float],
    rec_mask_gates: Optional[Float], U_gates: Optional[Float],
    U_gates_packed: Optional[npt.NDArray[np.float32]], go_backwards: bool, act: int,
    rec_act: int, h: Float, c: Float, prev_out: Float,
    out_seq: Optional[Float], out_time_major: bool, out_processing_order: bool,
    z_store: Optional[Float], hprev_store: Optional[Float], cprev_store: Optional[Float],
    c_store: Optional[Float], m_store: Optional[Float], gbuf: Optional[Float], chunk: int,
    xbuf: Float, abuf: Float, hbuf: Float, mbuf: Float,
    sel: Optional[npt.NDArray[np.float32]], b0: int, b1: int,
) -> None: ...
def lstm_forward_ext(
    x: Float, x_time_major: bool, W: Float, U: Float,
    U_packed: Optional[npt.NDArray[np.float32]], bias: Float,
    mask: Optional[npt.NDArray[np.uint8]], go_backwards: bool,
    codes: npt.NDArray[np.intc], alphas: Float, betas: Float, peephole: Optional[Float],
    has_clip: bool, clip: float, input_forget: bool, h: Float, c: Float, prev_out: Float,
    out_seq: Optional[Float], out_time_major: bool, out_processing_order: bool,
    gbuf: Float, chunk: int, xbuf: Float, mbuf: Float, b0: int, b1: int,
) -> None: ...
def project_inputs(x: Float, W: Float, bias: Float, z: Float) -> None: ...
def project_inputs_gates(x: Float, W: Float, bias: Float, in_mask: Float, z: Float,
                         xbuf: Float, k0: int, k1: int) -> None: ...
def apply_activation(code: int, z: Float, derivative: bool = ...) -> Float: ...
def pack_recurrent(B: npt.NDArray[np.float32]) -> Optional[npt.NDArray[np.float32]]: ...
def recurrent_product_f32(A: npt.NDArray[np.float32], B: npt.NDArray[np.float32],
                          C: npt.NDArray[np.float32], packed: bool = ...) -> None: ...
def recurrent_isa(force: int = ...) -> int: ...
