"""Type stubs for the streaming step kernel (see lstm_step.pyx)."""
from typing import Optional, Tuple

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.floating]

class StepKernel:
    kernel: Float
    recurrent_kernel: Float
    bias: Float
    projection: Optional[Float]
    batch: int
    input_dim: int
    units: int
    output_dim: int
    def __init__(self, kernel: Float, recurrent_kernel: Float, bias: Float,
                 projection: Optional[Float], act: int, rec_act: int, batch: int,
                 fused: bool) -> None: ...
    def step(self, x: Float, h: Float, c: Float) -> Optional[Tuple[Float, Float]]: ...
    def sequence_of_one(self, x: Float, h: Float, c: Float, time_major: bool,
                        return_sequences: bool) -> Optional[Tuple[Float, Float, Float]]: ...
