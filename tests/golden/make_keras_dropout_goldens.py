"""Golden fixtures for LSTM dropout from the real Keras 3 (TensorFlow backend).

Run from the repository root, in an environment with TensorFlow/Keras 3 (not a
cylstm dependency):

    TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES=-1 \
        python tests/golden/make_keras_dropout_goldens.py

Writes ``tests/golden/keras_dropout/<case>.npz``. Random numbers of Keras and
cylstm differ, so the masks are drawn here with NumPy and handed to Keras's
cell through its own cache (``DropoutRNNCell._dropout_mask`` /
``_recurrent_dropout_mask``, which ``RNN.call`` fills only when empty). The
fixtures then pin down *how* Keras applies them, with ``training=True``:

- ``recurrent_dropout == 0``: one input mask ``(batch, features)``, shared by the
  four gates (key ``input_mask``, 2-D);
- ``recurrent_dropout > 0``: Keras's cell switches to implementation 1
  (``dropout_mask_count = 4``): one input mask per gate ``(4, batch, features)``
  and one recurrent mask per gate ``(4, batch, units)`` (keys ``input_mask``,
  ``recurrent_mask``, gates i, f, c, o).

Keys as in ``keras_lstm/`` (see README.md): ``config`` (JSON: case, layer kwargs
with dtype, dtype, n_outputs), ``versions``, ``x``, ``kernel``,
``recurrent_kernel``, ``bias``, optional ``h0``/``c0``/``mask``, ``out_k``,
``dy_k`` and the ``tf.GradientTape`` gradients ``grad_*`` of
``sum_k sum(out_k * dy_k)``. The masks are scaled by ``1 / (1 - rate)``.
Deterministic (data from ``np.random.default_rng(crc32(case))``); the script
checks each case against its own NumPy recurrence with the masks applied per
gate, and checks that the masks were really used (the dropped output differs
from the undropped one).
"""
import json
import os
import sys
import zlib

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "keras_dropout")
B, T, F, U = 3, 5, 4, 3

VERSIONS = json.dumps({"keras": keras.__version__, "tensorflow": tf.__version__,
                       "numpy": np.__version__, "python": sys.version.split()[0],
                       "keras_backend": keras.backend.backend()})

CASES = {
    "shared_input_mask": dict(dropout=0.4, return_sequences=True),
    "shared_input_mask_go_backwards_state": dict(dropout=0.5, go_backwards=True,
                                                 return_state=True),
    "per_gate_both": dict(dropout=0.3, recurrent_dropout=0.4, return_sequences=True,
                          return_state=True),
    "per_gate_recurrent_only_mask_initial_state": dict(recurrent_dropout=0.5,
                                                       go_backwards=True),
}
WITH_STATE = {"per_gate_recurrent_only_mask_initial_state"}
WITH_MASK = {"per_gate_recurrent_only_mask_initial_state", "shared_input_mask"}


def _sig(z):
    return 1 / (1 + np.exp(-z))


def np_lstm(x, W, Uk, b, h0, c0, mask, in_masks, rec_masks, go_backwards):
    """Keras's implementation-1 step with per-gate masks (4 copies of a shared one
    for the shared case); masked steps carry the state and repeat the output."""
    h, c = h0.astype(np.float64), c0.astype(np.float64)
    prev = np.zeros_like(h)
    outs = []
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    for t in order:
        z = [(x[:, t] * in_masks[g]) @ W[:, g * U:(g + 1) * U] + b[g * U:(g + 1) * U]
             + (h * rec_masks[g]) @ Uk[:, g * U:(g + 1) * U] for g in range(4)]
        i, f, g_, o = _sig(z[0]), _sig(z[1]), np.tanh(z[2]), _sig(z[3])
        cn = f * c + i * g_
        hn = o * np.tanh(cn)
        keep = np.ones((B, 1), bool) if mask is None else mask[:, t:t + 1]
        h, c = np.where(keep, hn, h), np.where(keep, cn, c)
        prev = np.where(keep, h, prev)
        outs.append(prev)
    return np.stack(outs, 1), prev, h, c


def make(case, kw, dtype):
    rng = np.random.default_rng(zlib.crc32((case + dtype).encode()))
    u = lambda shape, lo=-0.6, hi=0.6: rng.uniform(lo, hi, shape).astype(dtype)  # noqa: E731
    layer = keras.layers.LSTM(U, dtype=dtype, **kw)
    layer.build((B, T, F))
    x, W, Uk, b = u((B, T, F), -1, 1), u((F, 4 * U)), u((U, 4 * U)), u((4 * U,))
    layer.set_weights([W, Uk, b])
    arrays = dict(x=x, kernel=W, recurrent_kernel=Uk, bias=b)
    per_gate = kw.get("recurrent_dropout", 0) != 0
    assert layer.cell.implementation == (1 if per_gate else 2)

    def draw(rate, shape):
        return ((rng.random(shape) >= rate) / (1 - rate)).astype(dtype)

    ones_in = np.ones((4, B, F), dtype)
    ones_rec = np.ones((4, B, U), dtype)
    in_masks, rec_masks = ones_in, ones_rec
    if kw.get("dropout", 0):
        m = draw(kw["dropout"], (4, B, F) if per_gate else (B, F))
        arrays["input_mask"] = m
        in_masks = m if per_gate else np.stack([m] * 4)
    if per_gate:
        m = draw(kw["recurrent_dropout"], (4, B, U))
        arrays["recurrent_mask"] = m
        rec_masks = m
    h0 = c0 = np.zeros((B, U), dtype)
    call_kw = {"training": True}
    if case in WITH_STATE:
        h0, c0 = u((B, U), -1, 1), u((B, U), -1, 1)
        arrays.update(h0=h0, c0=c0)
    mask = None
    if case in WITH_MASK:
        mask = rng.random((B, T)) > 0.3
        mask[0, :2] = False
        arrays["mask"] = mask
        call_kw["mask"] = tf.constant(mask)

    x_t, h0_t, c0_t = tf.constant(x), tf.constant(h0), tf.constant(c0)
    if case in WITH_STATE:
        call_kw["initial_state"] = [h0_t, c0_t]

    def inject():
        cell = layer.cell
        if "input_mask" in arrays:
            m = arrays["input_mask"]
            cell._dropout_mask = [tf.constant(g) for g in m] if per_gate else tf.constant(m)
        if "recurrent_mask" in arrays:
            cell._recurrent_dropout_mask = [tf.constant(g) for g in arrays["recurrent_mask"]]

    weights = [layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias]
    inject()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x_t, h0_t, c0_t])
        out = layer(x_t, **call_kw)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        dys = [u(tuple(o.shape), -1, 1) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * tf.constant(d)) for o, d in zip(outs, dys)])
    srcs = [x_t] + weights + ([h0_t, c0_t] if case in WITH_STATE else [])
    names = ["grad_x", "grad_kernel", "grad_recurrent_kernel", "grad_bias"]
    names += ["grad_h0", "grad_c0"] if case in WITH_STATE else []
    for n, g in zip(names, tape.gradient(loss, srcs)):
        arrays[n] = np.asarray(g).astype(dtype)
    for k, (o, d) in enumerate(zip(outs, dys)):
        arrays[f"out_{k}"], arrays[f"dy_{k}"] = o.numpy(), d

    # Independent check of how the masks were applied.
    seq, last, h, c = np_lstm(x.astype(np.float64), W, Uk, b, h0, c0, mask, in_masks,
                              rec_masks, kw.get("go_backwards", False))
    want = [seq if kw.get("return_sequences") else last] + (
        [h, c] if kw.get("return_state") else [])
    tol = 2e-5 if dtype == "float32" else 1e-10
    for k, w in enumerate(want):
        np.testing.assert_allclose(arrays[f"out_{k}"], w, rtol=tol, atol=tol,
                                   err_msg=f"{case}: Keras applies the masks differently")
    plain = layer(x_t, **dict(call_kw, training=False))
    plain = plain[0] if isinstance(plain, (list, tuple)) else plain
    assert not np.allclose(plain.numpy(), arrays["out_0"]), f"{case}: masks unused"

    cfg = dict(case=case, layer=dict(units=U, dtype=dtype, **kw), dtype=dtype,
               n_outputs=len(outs), per_gate=per_gate)
    arrays["config"] = np.array(json.dumps(cfg))
    arrays["versions"] = np.array(VERSIONS)
    path = os.path.join(OUT_DIR, f"{case}_{'f32' if dtype == 'float32' else 'f64'}.npz")
    np.savez_compressed(path, **arrays)
    with np.load(path, allow_pickle=False) as z:
        [z[k] for k in z.files]
    return path


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in os.listdir(OUT_DIR):
        if name.endswith(".npz"):
            os.remove(os.path.join(OUT_DIR, name))
    for dtype in ("float32", "float64"):
        for case, kw in CASES.items():
            print(make(case, kw, dtype))


if __name__ == "__main__":
    main()
