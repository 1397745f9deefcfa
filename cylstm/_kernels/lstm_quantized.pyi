"""Type stubs for the quantized kernels (see lstm_quantized.pyx, quantized.h)."""
from typing import Any, Dict, Optional, Tuple

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_F32 = npt.NDArray[np.float32]
_Array = npt.NDArray[Any]

KINDS: Dict[str, int]

def isa_level(dtype: str, force: int = -1) -> int: ...
def pool_size() -> int: ...

@disjoint_base  # a Cython extension type (cdef class)
class QuantizedMatrix:
    dtype: str
    values: _Array
    scale: Optional[_F32]
    def __init__(self, dtype: str, values: _Array, scale: Optional[_Array] = None) -> None: ...
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def nbytes(self) -> int: ...
    def apply(self, a: _Array, out: Optional[_F32] = None, force: int = -1) -> _F32: ...
    def int8_accumulate(self, a: _Array, force: int = -1
                        ) -> Tuple[npt.NDArray[np.int32], _F32, npt.NDArray[np.int32]]: ...

@disjoint_base
class QuantizedLSTMKernel:
    W: QuantizedMatrix
    U: QuantizedMatrix
    R: Optional[QuantizedMatrix]
    bias: _F32
    last_threads: int
    def __init__(self, W: QuantizedMatrix, U: QuantizedMatrix, R: Optional[QuantizedMatrix],
                 bias: _Array) -> None: ...
    def split_parts(self, threads: int) -> int: ...
    def run(self, x: _Array, h0: _Array, c0: _Array, mask: Optional[_Array] = None,
            return_sequences: bool = True, force: int = -1, threads: int = 1
            ) -> Tuple[Optional[_F32], _F32, _F32, _F32]: ...
    def step(self, x: _Array, h0: _Array, c0: _Array, threads: int = 1
             ) -> Optional[Tuple[_F32, _F32]]: ...

def lstm_forward(W: QuantizedMatrix, U: QuantizedMatrix, R: Optional[QuantizedMatrix],
                 bias: _Array, x: _Array, h0: _Array, c0: _Array,
                 mask: Optional[_Array] = None, return_sequences: bool = True,
                 force: int = -1, threads: int = 1
                 ) -> Tuple[Optional[_F32], _F32, _F32, _F32]: ...
