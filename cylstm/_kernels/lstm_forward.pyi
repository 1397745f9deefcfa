"""Type stubs for the compiled forward kernel (see lstm_forward.pyx)."""
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

# Cython's typed memoryviews accept any buffer of the right dtype and rank; the
# callers (cylstm._ops) pass C-contiguous NumPy arrays. `floating` is float32
# or float64 (one dtype per call); `float` arguments are float32 only.
_Float = npt.NDArray[np.floating[Any]]
_F32 = npt.NDArray[np.float32]

def lstm_forward(
    x: _Float, x_time_major: bool, W: _Float, U: _Float,
    U_packed: Optional[_F32], bias: _Float, Wr: Optional[_Float],
    mask: Optional[npt.NDArray[np.uint8]], rec_mask: Optional[_Float],
    rec_mask_gates: Optional[_Float], U_gates: Optional[_Float],
    U_gates_packed: Optional[_F32], go_backwards: bool, act: int,
    rec_act: int, h: _Float, c: _Float, prev_out: _Float,
    out_seq: Optional[_Float], out_time_major: bool, out_processing_order: bool,
    z_store: Optional[_Float], hprev_store: Optional[_Float], cprev_store: Optional[_Float],
    c_store: Optional[_Float], m_store: Optional[_Float], gbuf: Optional[_Float], chunk: int,
    xbuf: _Float, abuf: _Float, hbuf: _Float, mbuf: _Float,
    sel: Optional[_F32], b0: int, b1: int,
) -> None: ...
def lstm_forward_fused(
    x: _F32, x_time_major: bool, W: _F32, U_fused: _F32, units: int, bias: _F32,
    mask: Optional[npt.NDArray[np.uint8]], rec_mask: Optional[_F32], go_backwards: bool,
    h: _F32, c: _F32, prev_out: _F32, out_seq: Optional[_F32], out_time_major: bool,
    out_processing_order: bool, z_store: Optional[_F32], hprev_store: Optional[_F32],
    cprev_store: Optional[_F32], c_store: Optional[_F32], gbuf: Optional[_F32], chunk: int,
    xbuf: Optional[_F32], hbuf: _F32, h2: _F32, b0: int, b1: int,
    W_fused: Optional[_F32] = ..., fuse_input: bool = ...,
) -> None: ...
def lstm_forward_ext(
    x: _Float, x_time_major: bool, W: _Float, U: _Float,
    U_packed: Optional[_F32], bias: _Float,
    mask: Optional[npt.NDArray[np.uint8]], go_backwards: bool,
    codes: npt.NDArray[np.intc], alphas: _Float, betas: _Float, peephole: Optional[_Float],
    has_clip: bool, clip: float, input_forget: bool, h: _Float, c: _Float, prev_out: _Float,
    out_seq: Optional[_Float], out_time_major: bool, out_processing_order: bool,
    gbuf: _Float, chunk: int, xbuf: _Float, mbuf: _Float, b0: int, b1: int,
) -> None: ...
def project_inputs(x: _Float, W: _Float, bias: _Float, z: _Float, r0: int, r1: int) -> None: ...
def project_inputs_gates(x: _Float, W: _Float, bias: _Float, in_mask: _Float, z: _Float,
                         xbuf: _Float, k0: int, k1: int) -> None: ...
def apply_activation(code: int, z: _Float, derivative: bool = ...) -> _Float: ...
def pack_recurrent(B: _F32) -> Optional[_F32]: ...
def pack_fused(U: _F32) -> Optional[_F32]: ...
def recurrent_product_f32(A: _F32, B: _F32,
                          C: _F32, packed: bool = ...) -> None: ...
def recurrent_isa(force: int = ...) -> int: ...
