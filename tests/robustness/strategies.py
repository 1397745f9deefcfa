"""Hypothesis strategies for the layers' entry points: shapes (0 and huge
included), dtypes, layouts, masks, states and weights, valid or not."""
import numpy as np
from hypothesis import strategies as st

#: what any entry point may raise on bad input (the contract): nothing else
CONTRACT_ERRORS = (ValueError, TypeError)

real_dtypes = st.sampled_from(["float32", "float64", "float16", "int32", "int8", "bool"])
odd_dtypes = st.sampled_from(["complex64", "complex128", "U3", "O", "S2", "datetime64[s]"])
small = st.integers(0, 4)
huge = st.sampled_from([2**31 - 1, 2**31, 2**31 + 1, 2**32 + 7, 2**40])


def _fill(draw, shape, dtype):
    n = int(np.prod(shape)) if shape else 1
    if dtype in ("U3", "S2"):
        return np.array(["ab"] * n, dtype).reshape(shape)
    if dtype == "O":
        return np.array([None] * n, object).reshape(shape)
    if dtype.startswith("datetime"):
        return np.zeros(shape, dtype)
    values = draw(st.lists(st.sampled_from([0.0, 1.0, -2.5, 0.3, 1e30, -1e30, np.nan, np.inf]),
                           min_size=n, max_size=n))
    with np.errstate(all="ignore"):
        return np.array(values, "float64").astype(dtype).reshape(shape)


@st.composite
def arrays(draw, shape, dtype=None, allow_odd=True):
    """An array of ``shape`` (memory only for small ones; a zero-stride view
    for huge shapes), in any layout: C, Fortran, a non-contiguous slice,
    read-only."""
    dtype = dtype or draw(st.one_of(real_dtypes, odd_dtypes) if allow_odd else real_dtypes)
    if int(np.prod(shape, dtype=object)) > 10_000:
        return np.broadcast_to(np.zeros((), dtype), shape)
    arr = _fill(draw, shape, dtype)
    layout = draw(st.sampled_from(["C", "F", "strided", "readonly", "list"]))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim:
        big = np.repeat(arr, 2, axis=-1)
        arr = big[..., ::2]
    elif layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
    elif layout == "list" and dtype in ("float32", "float64"):
        return arr.tolist()
    return arr


@st.composite
def sequence_inputs(draw, features):
    """(x, description): a 3-D input, mostly with ``features`` features,
    sometimes with 0 or huge sizes, wrong rank or wrong features."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "zero", "huge", "rank", "features"]))
    batch, steps = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    if kind == "zero":
        batch, steps = draw(st.sampled_from([(0, steps), (batch, 0), (0, 0)]))
    shape = (batch, steps, features)
    if kind == "huge":
        which = draw(st.integers(0, 1))
        shape = tuple(draw(huge) if k == which else d for k, d in enumerate(shape))
    elif kind == "rank":
        shape = draw(st.sampled_from([(features,), (batch, features), (1, batch, steps, features)]))
    elif kind == "features":
        shape = (batch, steps, draw(st.sampled_from([0, features + 1])))
    return draw(arrays(shape, allow_odd=kind != "huge")), kind


@st.composite
def masks(draw, batch, steps):
    return draw(st.one_of(
        st.none(),
        arrays((batch, steps), dtype="bool", allow_odd=False),
        arrays((batch, steps), dtype="int8", allow_odd=False),
        st.just([]),
        arrays((batch,), allow_odd=True),
        arrays((steps, batch), dtype="bool", allow_odd=False),
        st.just([[True] * steps] * batch)))


@st.composite
def states(draw, batch, units):
    good = st.lists(arrays((batch, units), allow_odd=False), min_size=2, max_size=2)
    return draw(st.one_of(
        st.none(), good,
        st.lists(arrays((batch, units), allow_odd=True), min_size=0, max_size=3),
        st.just(np.zeros((2, batch, units))),
        st.lists(arrays((batch + 1, units), allow_odd=False), min_size=2, max_size=2)))
