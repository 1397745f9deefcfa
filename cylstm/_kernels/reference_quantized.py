"""NumPy twin of the quantized kernels (quantized.h, lstm_quantized.pyx).

The same arithmetic, step by step, in float32 and int64: the tests compare the
compiled int32 sums with :func:`int8_accumulate` bit for bit, and the float
outputs with :func:`lstm_forward` to float32 rounding.
"""
import numpy as np

_F32 = np.float32


def quantize_weights_int8(w):
    """Symmetric int8 codes and float32 scales, one per column of w (K, N).

    ``scale = max|w[:, j]| / 127`` (1 for an all-zero column), ``q =
    clip(round(w / scale), -127, 127)``, rounding half to even.
    """
    w = np.asarray(w, dtype=_F32)
    amax = np.max(np.abs(w), axis=0)
    scale = (amax / _F32(127)).astype(_F32)
    scale[~(scale > 0) | ~np.isfinite(scale)] = 1
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def to_bfloat16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    u = np.ascontiguousarray(a, dtype=_F32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def from_bfloat16_bits(b):
    """bfloat16 bit patterns (uint16) -> float32."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(_F32)


def quantize_rows(a):
    """Per-row asymmetric uint8: (q (n, K) uint8, scale (n,), zero point (n,) int32)."""
    a = np.asarray(a, dtype=_F32)
    lo = np.minimum(a.min(axis=1), _F32(0))
    hi = np.maximum(a.max(axis=1), _F32(0))
    s = ((hi - lo) / _F32(255)).astype(_F32)
    s[~(s > 0) | ~np.isfinite(s)] = 1
    inv = (_F32(1) / s).astype(_F32)
    zp = np.clip(np.rint(-lo * inv), 0, 255).astype(np.int32)
    q = np.clip(np.rint(a * inv[:, None]) + zp[:, None].astype(_F32), 0, 255).astype(np.uint8)
    return q, s, zp


def int8_accumulate(a, qw):
    """(exact int32 sums of q_a @ q_w, row scales, zero points) for rows a (n, K)."""
    q, s, zp = quantize_rows(a)
    acc = q.astype(np.int64) @ qw.astype(np.int64)
    return acc.astype(np.int32), s, zp


def int8_linear(a, qw, scale):
    """a @ w with w = qw * scale, quantized as the kernel does (float32 result)."""
    acc, sa, zp = int8_accumulate(a, qw)
    colsum = qw.astype(np.int32).sum(axis=0)
    v = (acc - zp[:, None] * colsum[None, :]).astype(_F32)
    return v * (sa[:, None] * scale[None, :])


def bf16_linear(a, wbits):
    """a @ w with a and w rounded to bfloat16, products summed in float32 (float64
    here: the compiled sum differs from it only in float32 summation rounding)."""
    a16 = from_bfloat16_bits(to_bfloat16_bits(a)).astype(np.float64)
    return (a16 @ from_bfloat16_bits(wbits).astype(np.float64)).astype(_F32)


def linear(dtype, a, weights):
    """The quantized product for ``dtype``; ``weights`` is (codes, scale) for
    int8 and the bit patterns for bfloat16."""
    if dtype == "int8":
        return int8_linear(a, *weights)
    return bf16_linear(a, weights)


def _sigmoid(z):
    return (_F32(1) / (_F32(1) + np.exp(-z))).astype(_F32)


def lstm_forward(dtype, W, U, R, bias, x, h0, c0, mask=None):
    """Quantized LSTM over time-major x (T, B, F): (seq, h, c, last output).

    W, U, R (or None): the quantized weights as :func:`linear` takes them. A
    masked row carries h and c and repeats its previous output (zeros before
    its first unmasked step).
    """
    x = np.asarray(x, dtype=_F32)
    T, B, F = x.shape
    h = np.array(h0, dtype=_F32)
    c = np.array(c0, dtype=_F32)
    H = c.shape[1]
    xproj = (bias[None, :] + linear(dtype, x.reshape(T * B, F), W)).reshape(T, B, 4 * H)
    prev = np.zeros_like(h)
    seq = np.empty((T, B, h.shape[1]), _F32)
    for t in range(T):
        z = xproj[t] + linear(dtype, h, U)
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_new = _sigmoid(o) * np.tanh(c_new)
        if R is not None:
            h_new = linear(dtype, h_new, R)
        keep = np.ones(B, bool) if mask is None else np.asarray(mask[t], bool)
        h = np.where(keep[:, None], h_new, h)
        c = np.where(keep[:, None], c_new, c)
        prev = np.where(keep[:, None], h_new, prev)
        seq[t] = prev
    return seq, h, c, prev
