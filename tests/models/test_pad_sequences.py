"""pad_sequences against Keras 3 on edge cases (goldens), and its three import paths."""
import numpy as np
import pytest

import cylstm
from cylstm.preprocessing.sequence import pad_sequences

from .conftest import case_params


def _arg(case):
    if case["sequences"] == "numpy":
        return np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    return case["sequences"]


@pytest.mark.parametrize("case,arrays", case_params("pad_sequences.npz"))
def test_matches_keras(case, arrays):
    if case["error"] is not None:
        with pytest.raises(ValueError) as info:
            pad_sequences(_arg(case), **case["kwargs"])
        assert case["error"] == "ValueError"
        # Keras's own messages are kept, except where NumPy's was cryptic.
        if case["case"] != "no_sequences":
            assert str(info.value) == case["message"]
        return
    out = pad_sequences(_arg(case), **case["kwargs"])
    assert str(out.dtype) == case["dtype"]
    assert list(out.shape) == case["shape"]
    assert out.tolist() == case["values"]
    if "out" in arrays:
        np.testing.assert_array_equal(out, arrays["out"])


def test_import_paths_are_the_same_function():
    assert cylstm.preprocessing.pad_sequences is pad_sequences
    assert cylstm.utils.pad_sequences is pad_sequences
    assert cylstm.preprocessing.sequence.pad_sequences is pad_sequences


def test_tutorial_call():
    seqs = [[5, 8, 2], [1], list(range(1, 400))]
    out = pad_sequences(seqs, maxlen=300, value=0.0)
    assert out.shape == (3, 300) and out.dtype == np.int32
    assert out[0, -3:].tolist() == [5, 8, 2] and out[0, :-3].sum() == 0
    assert out[2, -1] == 399 and out[2, 0] == 100     # truncating='pre' keeps the end


@pytest.mark.parametrize("maxlen", [-1, 1.5, "300", True])
def test_bad_maxlen_is_a_clear_error(maxlen):
    # Keras lets NumPy fail here ("negative dimensions are not allowed", "'float'
    # object cannot be interpreted as an integer"); cylstm names the argument.
    with pytest.raises(ValueError, match="`maxlen` must be None or a non-negative integer"):
        pad_sequences([[1, 2, 3]], maxlen=maxlen)


def test_numpy_integer_maxlen():
    out = pad_sequences([[1, 2, 3]], maxlen=np.int64(2))
    assert out.tolist() == [[2, 3]]
