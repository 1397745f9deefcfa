"""Plain-NumPy twin of the compiled LSTM kernels.

Same notation and semantics as ``lstm_forward.pyx`` / ``lstm_backward.pyx``
(read the notation block there): time-major ``x`` (T, B, I), weights
``W`` (I, 4H), ``U`` (P, 4H), ``bias`` (4H,), optional projection
``Wr`` (H, P), gate order i, f, g, o. Outputs are in processing order.

It is the oracle the compiled kernels are tested against (per-gate dropout
masks, Keras 3 with ``recurrent_dropout > 0``, included), and the slow path
for activations given as Python callables (which run here, on whole arrays).

Dropout masks: ``rec_mask`` is (B, P), shared by the four gates, or
(4, B, P), one per gate (i, f, g, o); ``in_mask`` is None or (4, B, I), one
input mask per gate (a mask shared by the gates is applied to ``x`` by the
caller instead). Both are constant over time.

ONNX's extras (inference only, the twin of ``lstm_forward_ext``):
``cell_activation`` (ONNX's h, applied to c_t; default: ``activation``),
``peephole`` (3, H) for gates i, f, o (i and f see c_{t-1}, o sees c_t),
``clip`` (pre-activations clamped to [-clip, clip] before their activation)
and ``input_forget`` (f = 1 - i).
"""
import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(z):
    # exp of a non-positive number only, as the C code does.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _hard_sigmoid(z):
    return np.clip((z + 3) / 6, 0, 1)


def _sigmoid_grad(z):
    # e / (1 + e)^2 has no cancellation where the sigmoid saturates.
    e = np.exp(-np.abs(z))
    return e / (1 + e) ** 2


def _tanh_grad(z):
    e = np.exp(-2 * np.abs(z))
    return np.where(np.abs(z) < 0.625, 1 - np.tanh(z) ** 2, 4 * e / (1 + e) ** 2)


def erf(z):
    """scipy.special.erf, imported on first use: scipy.special costs more to
    import than numpy itself, and only gelu needs it."""
    from scipy.special import erf as _erf
    return _erf(z)


def _gelu(z):
    return 0.5 * z * (1 + erf(z / np.sqrt(2)).astype(z.dtype))


ACTIVATIONS = {
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
    "tanh": (np.tanh, _tanh_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "hard_sigmoid": (
        _hard_sigmoid,
        lambda z: np.where((z > -3) & (z < 3), 1 / 6, 0).astype(z.dtype),
    ),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "softsign": (lambda z: z / (1 + np.abs(z)), lambda z: 1 / (1 + np.abs(z)) ** 2),
    "elu": (
        lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        lambda z: np.where(z > 0, 1, np.exp(np.minimum(z, 0))).astype(z.dtype),
    ),
    "selu": (
        lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))),
        lambda z: SELU_SCALE * np.where(z > 0, 1, SELU_ALPHA * np.exp(np.minimum(z, 0))),
    ),
    "gelu": (
        _gelu,
        lambda z: 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi),
    ),
    "swish": (
        lambda z: z * _sigmoid(z),
        lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z))),
    ),
}


def _resolve(activation):
    """(function, derivative or None) for a name or a Python callable."""
    if callable(activation):
        return activation, None
    return ACTIVATIONS[activation]


def _gate_cols(H):
    return [slice(g * H, (g + 1) * H) for g in range(4)]


def _per_gate(mask):
    return mask is not None and np.ndim(mask) == 3


def lstm_forward(x, W, U, bias, h0, c0, *, Wr=None, mask=None, rec_mask=None,
                 in_mask=None, go_backwards=False, activation="tanh",
                 recurrent_activation="sigmoid", training=False, cell_activation=None,
                 peephole=None, clip=None, input_forget=False):
    """Forward pass. Returns (outputs (T, B, P), last_output, h, c, cache)."""
    act, _ = _resolve(activation)
    rec, _ = _resolve(recurrent_activation)
    cell_act = act if cell_activation is None else _resolve(cell_activation)[0]
    extended = (cell_activation is not None or peephole is not None or clip is not None
                or input_forget)
    if training and extended:
        raise ValueError("Training with peepholes, clip, input_forget or a separate cell "
                         "activation (ONNX's extras) is not supported; inference only.")
    T, B, _ = x.shape
    H = c0.shape[1]
    cols = _gate_cols(H)
    h = h0.copy()
    c = c0.copy()
    prev_out = np.zeros_like(h0)
    outputs = np.zeros((T, B, h0.shape[1]), dtype=x.dtype)
    if in_mask is None:
        xw = x @ W + bias
    else:
        xw = np.concatenate([(x * in_mask[g]) @ W[:, cols[g]] for g in range(4)],
                            axis=-1) + bias
    per_gate_rec = _per_gate(rec_mask)
    steps = []
    for s in range(T):
        t = T - 1 - s if go_backwards else s
        if per_gate_rec:
            # hin is h itself; each gate block multiplies its own dropped copy.
            hin = h
            z = xw[t] + np.concatenate([(h * rec_mask[g]) @ U[:, cols[g]]
                                        for g in range(4)], axis=1)
        else:
            hin = h if rec_mask is None else h * rec_mask
            z = xw[t] + hin @ U
        if extended:
            i, f, g, o, c_new, m = _extended_cell(z, c, H, rec, act, cell_act, peephole,
                                                  clip, input_forget)
        else:
            i = rec(z[:, :H])
            f = rec(z[:, H:2 * H])
            g = act(z[:, 2 * H:3 * H])
            o = rec(z[:, 3 * H:])
            c_new = f * c + i * g
            m = o * act(c_new)
        h_new = m if Wr is None else m @ Wr
        keep = np.ones((B, 1), bool) if mask is None else mask[:, t:t + 1].astype(bool)
        if training:
            steps.append(dict(t=t, z=z, hin=hin, c_prev=c, c=c_new, m=m, keep=keep))
        h = np.where(keep, h_new, h)
        c = np.where(keep, c_new, c)
        prev_out = np.where(keep, h, prev_out)
        outputs[s] = prev_out
    cache = None
    if training:
        cache = dict(x=x, W=W, U=U, Wr=Wr, rec_mask=rec_mask, in_mask=in_mask, steps=steps,
                     act=_resolve(activation), rec=_resolve(recurrent_activation),
                     shape=(T, B, H, h0.shape[1]))
    return outputs, prev_out, h, c, cache


def _extended_cell(z, c, H, rec, act, cell_act, peephole, clip, input_forget):
    """One step of ONNX's full LSTM cell: (i, f, g, o, c_t, m_t)."""
    zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
    if peephole is not None:
        zi = zi + peephole[0] * c
        zf = zf + peephole[1] * c
    if clip is not None:
        zi, zf, zg = (np.clip(v, -clip, clip) for v in (zi, zf, zg))
    i = rec(zi)
    f = 1 - i if input_forget else rec(zf)
    g = act(zg)
    c_new = f * c + i * g
    if peephole is not None:
        zo = zo + peephole[2] * c_new
    if clip is not None:
        zo = np.clip(zo, -clip, clip)
    o = rec(zo)
    return i, f, g, o, c_new, o * cell_act(c_new)


def lstm_backward(cache, d_seq=None, d_last=None, dh=None, dc=None):
    """Gradients of a forward pass. ``d_seq`` (T, B, P) is in processing order.

    Returns a dict with dx (T, B, I), dW, dU, db, dWr (or None), dh0, dc0.
    """
    act, act_grad = cache["act"]
    rec, rec_grad = cache["rec"]
    if act_grad is None or rec_grad is None:
        raise TypeError("Gradients need a built-in activation; a Python callable has no derivative.")
    x, W, U, Wr, rec_mask = cache["x"], cache["W"], cache["U"], cache["Wr"], cache["rec_mask"]
    T, B, H, P = cache["shape"]
    dt = x.dtype
    dh = np.zeros((B, P), dt) if dh is None else dh.astype(dt, copy=True)
    dc = np.zeros((B, H), dt) if dc is None else dc.astype(dt, copy=True)
    dprev = np.zeros((B, P), dt) if d_last is None else d_last.astype(dt, copy=True)
    dz_all = np.zeros((T, B, 4 * H), dt)
    dW = np.zeros_like(W)
    dU = np.zeros_like(U)
    dWr = None if Wr is None else np.zeros_like(Wr)
    for s in range(T - 1, -1, -1):
        st = cache["steps"][s]
        keep = st["keep"]
        if d_seq is not None:
            dprev = dprev + d_seq[s]
        dh = dh + np.where(keep, dprev, 0)
        dprev = np.where(keep, 0, dprev)
        z = st["z"]
        if Wr is not None:
            dWr += st["m"].T @ np.where(keep, dh, 0)
            dm = dh @ Wr.T
        else:
            dm = dh
        zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        i, f, g, o = rec(zi), rec(zf), act(zg), rec(zo)
        tc = act(st["c"])
        dcn = dc + dm * o * act_grad(st["c"])
        dz = np.concatenate([
            dcn * g * rec_grad(zi),
            dcn * st["c_prev"] * rec_grad(zf),
            dcn * i * act_grad(zg),
            dm * tc * rec_grad(zo),
        ], axis=1)
        dz = np.where(keep, dz, 0)
        dz_all[st["t"]] = dz
        if _per_gate(rec_mask):
            dh_prev = np.zeros_like(dh)
            for g, col in enumerate(_gate_cols(H)):
                dU[:, col] += (st["hin"] * rec_mask[g]).T @ dz[:, col]
                dh_prev += (dz[:, col] @ U[:, col].T) * rec_mask[g]
        else:
            dU += st["hin"].T @ dz
            dh_prev = dz @ U.T
            if rec_mask is not None:
                dh_prev = dh_prev * rec_mask
        dh = np.where(keep, dh_prev, dh)
        dc = np.where(keep, dcn * f, dc)
    in_mask = cache.get("in_mask")
    if in_mask is None:
        dW = np.einsum("tbi,tbg->ig", x, dz_all)
        dx = dz_all @ W.T
    else:
        dx = np.zeros_like(x)
        for g, col in enumerate(_gate_cols(H)):
            dW[:, col] = np.einsum("tbi,tbg->ig", x * in_mask[g], dz_all[..., col])
            dx += (dz_all[..., col] @ W[:, col].T) * in_mask[g]
    db = dz_all.sum(axis=(0, 1))
    return dict(dx=dx, dW=dW, dU=dU, db=db, dWr=dWr, dh0=dh, dc0=dc)
