"""Argument checks shared by the layers. Every failure names the argument,
what came and what was expected; nothing invalid reaches compiled code."""
import numbers

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def standardize_dtype(dtype, argument="dtype"):
    """'float32' or 'float64' from a name, numpy dtype or a Keras DTypePolicy dict."""
    if dtype is None:
        return "float32"
    if isinstance(dtype, dict):  # Keras 3 writes {"class_name": "DTypePolicy", "config": {"name": ...}}
        inner = dtype.get("config")
        dtype = inner.get("name") if isinstance(inner, dict) else dtype.get("name")
    name = getattr(dtype, "name", dtype)
    if not isinstance(name, (str, type, np.dtype)):
        raise TypeError(f"Received an invalid value for argument `{argument}`: "
                        f"expected 'float32' or 'float64', got {dtype!r}.")
    try:
        name = np.dtype(name).name
    except Exception as e:  # numpy's parser lets out TypeError, SyntaxError ('f4,('), ...
        if isinstance(e, TypeError) and not isinstance(name, str):
            raise TypeError(f"Received an invalid value for argument `{argument}`: "
                            f"expected 'float32' or 'float64', got {dtype!r}.") from None
        raise ValueError(f"Received an invalid value for argument `{argument}`: "
                         f"expected 'float32' or 'float64', got {dtype!r}.") from None
    if name not in FLOAT_DTYPES:
        raise ValueError(f"Received an invalid value for argument `{argument}`: expected "
                         f"'float32' or 'float64', got {name!r}. Mixed precision is not supported.")
    return name


def is_cupy(x):
    return type(x).__module__.split(".")[0] == "cupy"


def as_float_array(x, dtype, argument="inputs"):
    """Convert array-likes to a NumPy array of the layer's dtype.

    The rule: any real numeric or bool input (int, float16, float64, ...) is
    cast to the layer's dtype, as Keras casts inputs to its compute dtype.
    Complex, object and string inputs raise TypeError. Read-only and
    non-contiguous arrays are accepted (the kernels get a contiguous copy).
    """
    if is_cupy(x):
        raise TypeError(f"`{argument}` is a CuPy array; the GPU path is not available in "
                        "this build of cylstm. Pass a NumPy array (cupy.asnumpy(x)).")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{argument}` must hold real numbers; got an array of dtype "
                        f"{arr.dtype} (expected float32/float64, or ints/bools to convert).")
    return arr.astype(dtype, copy=False)


def check_positive_int(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Received an invalid value for argument `{argument}`, "
                         f"expected a positive integer, got {value!r}.")
    return int(value)


def check_fraction(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"Received an invalid value for argument `{argument}`, "
                         f"expected a float between 0 and 1, got {value!r}.")
    return float(value)


def check_bool(value, argument):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Received an invalid value for argument `{argument}`, "
                        f"expected True or False, got {value!r}.")
    return bool(value)


def check_mask(mask, expected_shape, argument="mask"):
    """A (batch, timesteps) boolean mask from a bool or 0/1 integer array."""
    if mask is None:
        return None
    if is_cupy(mask):
        raise TypeError(f"`{argument}` is a CuPy array; the GPU path is not available.")
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"`{argument}` must be boolean or integer, got dtype {m.dtype}.")
    if m.shape != tuple(expected_shape):
        raise ValueError(f"`{argument}` must have shape {tuple(expected_shape)}, got {m.shape}.")
    return m.astype(bool, copy=False)


# The compiled kernels index with C int: every count and every product of
# counts that sizes one array or one loop must stay below 2**31.
C_INT_MAX = 2**31 - 1


def _check_products(named, what):
    for label, value in named:
        if value > C_INT_MAX:
            raise ValueError(f"{what}: {label} = {value} exceeds the kernels' limit of "
                             f"{C_INT_MAX} (2**31 - 1) per array or loop.")


def check_weight_sizes(input_size, units, output_size, name="layer"):
    """ValueError (before any allocation) when an LSTM of these sizes has a
    weight matrix or a gate row the kernels cannot index."""
    G = 4 * int(units)
    _check_products([("4*units", G), ("input_size*4*units", int(input_size) * G),
                     ("output_size*4*units", int(output_size) * G),
                     ("units*output_size", int(units) * int(output_size))],
                    f"LSTM {name!r} is too large")


def check_sequence_sizes(T, B, I, H, P):
    """ValueError (before any allocation) when a call of T steps over B rows
    has a size the kernels cannot index."""
    G = 4 * H
    widest = max(I, G, P, 1)
    _check_products([("timesteps", T), ("batch", B), ("timesteps*batch", T * B),
                     ("batch*max(features, 4*units)", B * widest)],
                    f"An LSTM call on {T} timesteps x {B} rows x {I} features")


def check_input_sizes(inputs, units, output_size=None, time_major=False, two_d="cell"):
    """``check_sequence_sizes`` on the raw input's shape, before it is converted
    and before any state is allocated for it. A 2-D input is one step of a
    batch (``two_d='cell'``) or an unbatched sequence (``two_d='sequence'``)."""
    shape = getattr(inputs, "shape", None)
    if not isinstance(shape, tuple):
        try:
            shape = np.shape(inputs)
        except Exception:  # noqa: BLE001 - ragged input: the conversion reports it
            return
    if len(shape) == 3:
        T, B = (shape[0], shape[1]) if time_major else (shape[1], shape[0])
    elif len(shape) == 2:
        T, B = (1, shape[0]) if two_d == "cell" else (shape[0], 1)
    else:
        return
    check_sequence_sizes(int(T), int(B), int(shape[-1]), int(units),
                         int(output_size or units))
