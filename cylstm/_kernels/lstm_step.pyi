"""Type stubs for the streaming step kernel (see lstm_step.pyx)."""
from typing import Any, Optional, Tuple

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

# Cython's typed memoryviews accept any buffer of the right dtype and rank; the
# callers (cylstm._ops) pass C-contiguous NumPy arrays. `floating` is float32
# or float64 (one dtype per call); `float` arguments are float32 only.
_Float = npt.NDArray[np.floating[Any]]
_F32 = npt.NDArray[np.float32]

@disjoint_base  # a Cython extension type (cdef class)
class StepKernel:
    kernel: _Float
    recurrent_kernel: _Float
    bias: _Float
    projection: Optional[_Float]
    bias2: Optional[_Float]
    batch: int
    input_dim: int
    units: int
    output_dim: int
    def __init__(self, kernel: _Float, recurrent_kernel: _Float, bias: _Float,
                 projection: Optional[_Float], act: int, rec_act: int, batch: int,
                 fused: bool) -> None: ...
    def set_second_bias(self, bias2: Optional[_Float]) -> None: ...
    def step(self, x: _Float, h: _Float, c: _Float) -> Optional[Tuple[_Float, _Float]]: ...
    def sequence_of_one(self, x: _Float, h: _Float, c: _Float, time_major: bool,
                        return_sequences: bool, torch_states: bool = ...,
                        states_3d: bool = ...) -> Optional[Tuple[_Float, _Float, _Float]]: ...

def fused_isa(force: int = ...) -> int: ...
# The process's worker pool for the other kernel modules (a PyCapsule).
pool_api: Any

def pool_size() -> int: ...
def set_split_work(step: Optional[int] = ..., sequence: Optional[int] = ...) -> Tuple[int, int]: ...
def fused_sequence(x: _F32, time_major: bool, kernel: _F32, recurrent_kernel: _F32, bias: _F32,
                   h0: _F32, c0: _F32, return_sequences: bool, parts: int,
                   bias2: Optional[_F32] = ...) -> Tuple[Optional[_F32], _F32, _F32, _F32]: ...
def sequence_parts(B: int, I: int, H: int) -> int: ...
