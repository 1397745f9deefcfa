"""The fused float32 tanh/sigmoid cell (cell.h), against the NumPy twin.

The kernel grids elsewhere use a few units; the fused loops run from 16
units on, vectorised over units, so these cases cover full vectors and a
remainder, with masks, projections, recurrent dropout and go_backwards,
forward and gradients.
"""
import numpy as np
import pytest

from cylstm import _ops

from .._helpers import assert_kernel_matches_reference
from .test_lstm_kernels import _problem


@pytest.mark.parametrize("H", [16, 37])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("proj", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_cell_matches_reference(rng, H, with_mask, proj, go_backwards):
    p = _problem(rng, 5, 6, 4, H, 11 if proj else H, "float32", proj=proj,
                 with_mask=with_mask, rec_drop=with_mask)
    assert_kernel_matches_reference(p, "float32", rng, go_backwards=go_backwards)


def test_fused_cell_keeps_masked_rows_state(rng):
    # A row masked at every step keeps its initial state bit for bit.
    p = _problem(rng, 4, 5, 3, 24, 24, "float32", with_mask=True)
    p["mask"][1] = False
    _, last, h, c, _ = _ops.lstm_forward(p["x"], p["kernel"], p["recurrent_kernel"],
                                         p["bias"], p["h0"], p["c0"], mask=p["mask"])
    np.testing.assert_array_equal(h[1], p["h0"][1])
    np.testing.assert_array_equal(c[1], p["c0"][1])
    np.testing.assert_array_equal(last[1], 0)
