"""``pad_sequences`` with Keras's arguments, defaults, results and errors.

A line-for-line port of ``keras/src/utils/sequence_utils.py::pad_sequences``
(Keras 3), so edge cases behave as in Keras: the sample shape is taken from the
first non-empty sequence, empty sequences become all-``value`` rows, a bad
``padding``/``truncating`` raises ``ValueError`` only once a non-empty sequence
reaches it, a string ``value`` needs ``dtype=object`` (or a string dtype), and
an empty list of sequences raises ``ValueError`` (no length to pad to). One
departure: a negative or non-integer ``maxlen`` raises a ``ValueError`` that
names it, where Keras lets NumPy fail with a message about array dimensions.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from .._typing import Array, ArrayLike, DTypeLike

__all__ = ["pad_sequences"]


def pad_sequences(sequences: Sequence[ArrayLike], maxlen: Optional[int] = None,
                  dtype: DTypeLike = "int32", padding: str = "pre", truncating: str = "pre",
                  value: Any = 0.0) -> Array:
    """Pads sequences to the same length (``keras.utils.pad_sequences``).

    Parameters
    ----------
    sequences : sequence of array_like
        Each a list or array of ints, floats or equal-shaped vectors.
    maxlen : int, optional
        The length of every output row; default: the longest sequence.
    dtype : str or numpy dtype, default "int32"
        dtype of the output (``object`` for strings).
    padding : {"pre", "post"}, default "pre"
        Pad before or after each sequence.
    truncating : {"pre", "post"}, default "pre"
        Drop values from the start or the end of sequences longer than ``maxlen``.
    value : scalar, default 0.0
        The padding value.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(sequences), maxlen) + sample_shape``.

    Raises
    ------
    ValueError
        For non-iterable sequences, a bad ``maxlen``, ``padding`` or
        ``truncating``, or samples of different shapes.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    num_samples = len(sequences)

    lengths = []
    sample_shape = ()
    flag = True
    # the sample shape comes from the first non-empty sequence; the main loop
    # below checks the others against it
    for x in sequences:
        try:
            lengths.append(len(x))
            if flag and len(x):
                sample_shape = np.asarray(x).shape[1:]
                flag = False
        except TypeError as e:
            raise ValueError("`sequences` must be a list of iterables. "
                             f"Found non-iterable: {str(x)}") from e

    if maxlen is not None and (isinstance(maxlen, (bool, np.bool_))
                               or not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise ValueError(f"`maxlen` must be None or a non-negative integer; got {maxlen!r}.")
    if maxlen is None:
        if not lengths:
            raise ValueError("`sequences` is empty and `maxlen` is None: there is no length "
                             "to pad to (pass maxlen=, or at least one sequence).")
        maxlen = np.max(lengths)

    is_dtype_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_dtype_str:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}\nYou should set `dtype=object` for variable length "
                         "strings.")

    x = np.full((num_samples, maxlen) + sample_shape, value, dtype=dtype)
    for idx, s in enumerate(sequences):
        if not len(s):
            continue  # an empty sequence stays all `value`
        if truncating == "pre":
            trunc = s[-maxlen:]
        elif truncating == "post":
            trunc = s[:maxlen]
        else:
            raise ValueError(f'Truncating type "{truncating}" not understood')

        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} "
                             f"is different from expected shape {sample_shape}")

        if padding == "post":
            x[idx, :len(trunc)] = trunc
        elif padding == "pre":
            x[idx, -len(trunc):] = trunc
        else:
            raise ValueError(f'Padding type "{padding}" not understood')
    return x
