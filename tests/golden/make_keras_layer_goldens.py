"""Generate golden fixtures for cylstm's Dense, Embedding, Masking and Bidirectional
layers from the real Keras 3 (TensorFlow backend).

Run from the repository root, in the dev environment that has TensorFlow/Keras 3
(NOT a cylstm runtime dependency):

    TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES=-1 \
        /work/devvenv/bin/python tests/golden/make_keras_layer_goldens.py

Writes ``tests/golden/keras_layers/<case>.npz`` with the conventions of
``keras_lstm/`` (see tests/golden/README.md, section "Keras 3 layer fixtures").
Deterministic: every case draws its data from a NumPy generator seeded from the
case name. Every forward output is checked against an independent NumPy
reference, float64 tape gradients against central finite differences of that
reference, and the Keras semantics the README lists are asserted at the end.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from make_keras_goldens import (  # noqa: E402  (sets the TF environment variables)
    VERSIONS, _np_act, check_close, jsonable_config, np_lstm, rng_for, u)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

OUT_DIR = os.path.join(HERE, "keras_layers")
B, T, F, U = 4, 6, 4, 5
# Row 0 has holes, row 1 is fully masked, row 2 is left-padded, row 3 right-padded.
MASK = np.array([[1, 1, 0, 1, 0, 1],
                 [0, 0, 0, 0, 0, 0],
                 [0, 0, 1, 1, 1, 1],
                 [1, 1, 1, 1, 0, 0]], dtype=bool)
CASES = []


def save(case, arrays, config):
    arrays = dict(arrays)
    config = dict(config, case=case)
    arrays["config"] = np.array(json.dumps(config))
    arrays["versions"] = np.array(VERSIONS)
    path = os.path.join(OUT_DIR, case + ".npz")
    np.savez_compressed(path, **arrays)
    with np.load(path, allow_pickle=False) as z:  # must load without pickle
        for k in z.files:
            z[k]
    CASES.append(case)


def dense_grad(g):
    return np.asarray(tf.convert_to_tensor(g))


def fd_grads(loss, params, names, eps=1e-6):
    """Central finite differences of ``loss()`` w.r.t. ``params[n]`` (in place)."""
    out = {}
    for n in names:
        p = params[n]
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            v = flat[i]
            flat[i] = v + eps
            lp = loss()
            flat[i] = v - eps
            lm = loss()
            flat[i] = v
            gflat[i] = (lp - lm) / (2 * eps)
        out[n] = g
    return out


def check_fd(case, arrays, loss, params, names, rtol=1e-5, atol=1e-6):
    fd = fd_grads(loss, params, names)
    for n in names:
        if not np.allclose(arrays["grad_" + n], fd[n], rtol=rtol, atol=atol):
            err = np.max(np.abs(arrays["grad_" + n] - fd[n]))
            raise AssertionError(f"{case}/grad_{n}: tape vs finite differences {err}")


# ----------------------------------------------------------------------------
# NumPy references
# ----------------------------------------------------------------------------
def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_dense(x, kernel, bias, activation):
    z = x @ kernel + (0 if bias is None else bias)
    if activation == "softmax":
        return np_softmax(z)
    return _np_act(activation or "linear")(z)


def np_bidirectional(p, mask, fw_kw, bw_kw, merge_mode, has_state):
    """Keras 3 Bidirectional on the NumPy LSTM reference: list of outputs."""
    rs = fw_kw.get("return_sequences", False)
    outs = []
    for prefix, kw, backwards in (("fw", fw_kw, False), ("bw", bw_kw, True)):
        seq, last, h, c = np_lstm(
            p["x"], p[prefix + "_kernel"], p[prefix + "_recurrent_kernel"],
            p.get(prefix + "_bias"), p.get(prefix + "_h0") if has_state else None,
            p.get(prefix + "_c0") if has_state else None, mask,
            kw.get("activation", "tanh"), kw.get("recurrent_activation", "sigmoid"),
            backwards)
        y = seq if rs else last
        if rs and backwards:
            y = y[:, ::-1]
        if rs and mask is not None:
            y = np.where(mask[..., None], y, 0.0)
        outs.append((y, h, c))
    (y, fh, fc), (yr, bh, bc) = outs
    merged = {"concat": lambda: [np.concatenate([y, yr], -1)], "sum": lambda: [y + yr],
              "ave": lambda: [(y + yr) / 2], "mul": lambda: [y * yr],
              None: lambda: [y, yr]}[merge_mode]()
    if fw_kw.get("return_state", False):
        merged += [fh, fc, bh, bc]
    return merged


# ----------------------------------------------------------------------------
# Dense
# ----------------------------------------------------------------------------
def dense_case(case, dtype, x_shape, layer_kwargs, regularized=False):
    rng = rng_for(case)
    kw = dict(layer_kwargs, dtype=dtype)
    layer = keras.layers.Dense(**kw)
    layer.build(x_shape)
    units, f = kw["units"], x_shape[-1]
    use_bias = kw.get("use_bias", True)
    x = u(rng, x_shape, -1.0, 1.0, dtype)
    kernel = u(rng, (f, units), -1.0, 1.0, dtype)
    bias = u(rng, (units,), dtype=dtype) if use_bias else None
    layer.set_weights([kernel] + ([bias] if use_bias else []))
    arrays = {"x": x, "kernel": kernel}
    if use_bias:
        arrays["bias"] = bias
    x_t = tf.constant(x)
    weights = [layer.kernel] + ([layer.bias] if use_bias else [])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_t)
        out = layer(x_t)
        dy = u(rng, tuple(out.shape), -1.0, 1.0, dtype)
        loss = tf.reduce_sum(out * tf.constant(dy))
        if regularized:
            reg = tf.add_n(layer.losses)
            total = loss + reg
    arrays["out_0"] = out.numpy()
    arrays["dy_0"] = dy
    names = ["x", "kernel"] + (["bias"] if use_bias else [])
    for n, g in zip(names, tape.gradient(loss, [x_t] + weights)):
        arrays["grad_" + n] = dense_grad(g).astype(dtype)
    if regularized:
        arrays["reg_loss"] = np.asarray(reg.numpy(), dtype=dtype)
        arrays["reg_losses"] = np.array([float(v) for v in layer.losses], dtype=dtype)
        for n, g in zip(names, tape.gradient(total, [x_t] + weights)):
            arrays["grad_total_" + n] = dense_grad(g).astype(dtype)
    del tape

    act = kw.get("activation")
    check_close(f"{case}/out_0", arrays["out_0"], np_dense(x, kernel, bias, act), dtype)
    if dtype == "float64" and not regularized:
        p = {n: arrays[n].astype(np.float64).copy() for n in names}
        check_fd(case, arrays, lambda: np.sum(np_dense(p["x"], p["kernel"], p.get("bias"),
                                                       act) * dy), p, names)
    config = {"kind": "Dense", "layer": kw, "dtype": dtype, "regularized": regularized,
              "keras_config": jsonable_config(layer.get_config())}
    save(case, arrays, config)


# ----------------------------------------------------------------------------
# Embedding and Masking
# ----------------------------------------------------------------------------
def embedding_case(case, dtype, x_shape, input_dim, output_dim, mask_zero):
    rng = rng_for(case)
    kw = dict(input_dim=input_dim, output_dim=output_dim, mask_zero=mask_zero, dtype=dtype)
    layer = keras.layers.Embedding(**kw)
    layer.build()
    emb = u(rng, (input_dim, output_dim), -1.0, 1.0, dtype)
    layer.set_weights([emb])
    x = rng.integers(0, input_dim, size=x_shape).astype(np.int32)
    if mask_zero:  # trailing padding on some rows, and at least one zero everywhere
        x.reshape(-1, x_shape[-1])[::2, -2:] = 0
    with tf.GradientTape() as tape:
        out = layer(tf.constant(x))
        dy = u(rng, tuple(out.shape), -1.0, 1.0, dtype)
        loss = tf.reduce_sum(out * tf.constant(dy))
    g = dense_grad(tape.gradient(loss, layer.embeddings)).astype(dtype)
    arrays = {"x": x, "embeddings": emb, "out_0": out.numpy(), "dy_0": dy,
              "grad_embeddings": g}
    mask_out = layer.compute_mask(tf.constant(x))
    if mask_out is not None:
        arrays["mask_out"] = np.asarray(mask_out)
    check_close(f"{case}/out_0", arrays["out_0"], emb[x], dtype)
    want = np.zeros_like(emb, dtype=np.float64)
    np.add.at(want, x.reshape(-1), dy.reshape(-1, output_dim).astype(np.float64))
    check_close(f"{case}/grad", g, want, dtype)
    assert len(np.unique(x)) < x.size, f"{case}: want repeated indices"
    config = {"kind": "Embedding", "layer": kw, "dtype": dtype,
              "keras_config": jsonable_config(layer.get_config())}
    save(case, arrays, config)


def masking_case(case, dtype, mask_value):
    rng = rng_for(case)
    kw = dict(mask_value=mask_value, dtype=dtype)
    layer = keras.layers.Masking(**kw)
    x = u(rng, (B, T, F), -1.0, 1.0, dtype)
    x[0, 2] = mask_value            # one masked step
    x[1] = mask_value               # a fully masked row
    x[2, :2] = mask_value           # left padding
    x[3, 4:] = mask_value           # right padding
    x[0, 4, :2] = mask_value        # partly equal: NOT masked
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = layer(x_t)
        dy = u(rng, tuple(out.shape), -1.0, 1.0, dtype)
        loss = tf.reduce_sum(out * tf.constant(dy))
    arrays = {"x": x, "out_0": out.numpy(), "dy_0": dy,
              "grad_x": dense_grad(tape.gradient(loss, x_t)).astype(dtype),
              "mask_out": np.asarray(layer.compute_mask(x_t))}
    keep = np.any(x != mask_value, axis=-1)
    assert (arrays["mask_out"] == keep).all() and not keep[1].any() and keep[0, 4]
    check_close(f"{case}/out_0", arrays["out_0"], np.where(keep[..., None], x, 0), dtype)
    check_close(f"{case}/grad_x", arrays["grad_x"], np.where(keep[..., None], dy, 0), dtype)
    config = {"kind": "Masking", "layer": kw, "dtype": dtype,
              "keras_config": jsonable_config(layer.get_config())}
    save(case, arrays, config)


# ----------------------------------------------------------------------------
# Bidirectional
# ----------------------------------------------------------------------------
def _lstm_weights(rng, f, units, dtype, use_bias=True):
    w = [u(rng, (f, 4 * units), dtype=dtype), u(rng, (units, 4 * units), dtype=dtype)]
    if use_bias:
        w.append(u(rng, (4 * units,), dtype=dtype))
    return w


def bidi_case(case, dtype, merge_mode="concat", lstm_kwargs=None, backward_kwargs=None,
              mask=None, initial_state=False, fd=True):
    """backward_kwargs: None (Keras makes the backward layer) or the kwargs of a
    ``backward_layer`` LSTM (go_backwards=True is added)."""
    rng = rng_for(case)
    fw_kw = dict({"units": U}, **(lstm_kwargs or {}), dtype=dtype)
    if backward_kwargs is None:
        bw_kw = dict(fw_kw, go_backwards=True)
        backward_layer = None
    else:
        bw_kw = dict(fw_kw, **backward_kwargs, go_backwards=True)
        backward_layer = keras.layers.LSTM(**bw_kw)
    # Keras 3's wrapper defaults to float32 whatever the LSTM's dtype: pass it.
    layer = keras.layers.Bidirectional(keras.layers.LSTM(**fw_kw), merge_mode=merge_mode,
                                       backward_layer=backward_layer, dtype=dtype)
    layer.build((B, T, F))
    x = u(rng, (B, T, F), -1.0, 1.0, dtype)
    arrays = {"x": x}
    weights = []
    for prefix, kw in (("fw", fw_kw), ("bw", bw_kw)):
        w = _lstm_weights(rng, F, kw["units"], dtype, kw.get("use_bias", True))
        for n, v in zip(("kernel", "recurrent_kernel", "bias"), w):
            arrays[f"{prefix}_{n}"] = v
        weights += w
    layer.set_weights(weights)
    call_kw = {"training": False}
    states = []
    if initial_state:
        for prefix, kw in (("fw", fw_kw), ("bw", bw_kw)):
            for s in ("h0", "c0"):
                arrays[f"{prefix}_{s}"] = u(rng, (B, kw["units"]), -1.0, 1.0, dtype)
        states = [tf.constant(arrays[k]) for k in ("fw_h0", "fw_c0", "bw_h0", "bw_c0")]
        call_kw["initial_state"] = states
    if mask is not None:
        arrays["mask"] = np.asarray(mask, bool)
        call_kw["mask"] = tf.constant(arrays["mask"])

    x_t = tf.constant(x)
    variables = []
    var_names = []
    for prefix, inner in (("fw", layer.forward_layer), ("bw", layer.backward_layer)):
        for v, n in zip(inner.cell.weights, ("kernel", "recurrent_kernel", "bias")):
            variables.append(v)
            var_names.append(f"{prefix}_{n}")
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        for s in states:
            tape.watch(s)
        res = layer(x_t, **call_kw)
        outs = list(res) if isinstance(res, (list, tuple)) else [res]
        dys = [u(rng, tuple(o.shape), -1.0, 1.0, dtype) for o in outs]
        loss = tf.add_n([tf.reduce_sum(o * tf.constant(dy)) for o, dy in zip(outs, dys)])
    names = ["x"] + var_names + (["fw_h0", "fw_c0", "bw_h0", "bw_c0"] if initial_state else [])
    grads = tape.gradient(loss, [x_t] + variables + states)
    for k, (o, dy) in enumerate(zip(outs, dys)):
        arrays[f"out_{k}"] = o.numpy()
        arrays[f"dy_{k}"] = dy
    for n, g in zip(names, grads):
        arrays["grad_" + n] = (np.zeros_like(arrays[n]) if g is None
                               else dense_grad(g)).astype(dtype)
    assert all(arrays[f"out_{k}"].dtype == np.dtype(dtype) for k in range(len(outs)))

    p = {n: arrays[n].astype(np.float64).copy() for n in names}
    want = np_bidirectional(p, arrays.get("mask"), fw_kw, bw_kw, merge_mode, initial_state)
    assert len(want) == len(outs), case
    for k, w in enumerate(want):
        check_close(f"{case}/out_{k}", arrays[f"out_{k}"], w, dtype)
    if dtype == "float64" and fd:
        def ref_loss():
            got = np_bidirectional(p, arrays.get("mask"), fw_kw, bw_kw, merge_mode,
                                   initial_state)
            return sum(np.sum(o * dy) for o, dy in zip(got, dys))
        check_fd(case, arrays, ref_loss, p, names)

    config = {
        "kind": "Bidirectional", "dtype": dtype, "merge_mode": merge_mode,
        "layer": fw_kw, "backward_layer": None if backward_kwargs is None else bw_kw,
        "has_initial_state": bool(initial_state), "has_mask": mask is not None,
        "n_outputs": len(outs), "keras_config": jsonable_config(layer.get_config()),
    }
    save(case, arrays, config)


def pipeline_case(case, dtype):
    """Sequential: Masking -> Bidirectional(LSTM(return_sequences)) -> Dense(softmax)."""
    rng = rng_for(case)
    model = keras.Sequential([
        keras.Input((T, F), dtype=dtype),
        keras.layers.Masking(0.0, dtype=dtype),
        keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True, dtype=dtype),
                                   dtype=dtype),
        keras.layers.Dense(2, activation="softmax", dtype=dtype),
    ])
    x = u(rng, (B, T, F), -1.0, 1.0, dtype)
    x[~MASK] = 0.0
    weights = [u(rng, w.shape, -1.0, 1.0, dtype) for w in model.get_weights()]
    model.set_weights(weights)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = model(x_t, training=False)
        dy = u(rng, tuple(out.shape), -1.0, 1.0, dtype)
        loss = tf.reduce_sum(out * tf.constant(dy))
    grads = tape.gradient(loss, [x_t] + model.trainable_weights)
    arrays = {"x": x, "out_0": out.numpy(), "dy_0": dy,
              "grad_x": dense_grad(grads[0]).astype(dtype)}
    for k, (w, g) in enumerate(zip(weights, grads[1:])):
        arrays[f"w_{k}"] = w
        arrays[f"grad_w_{k}"] = dense_grad(g).astype(dtype)
    # NumPy reference
    p = {"x": x, "fw_kernel": weights[0], "fw_recurrent_kernel": weights[1],
         "fw_bias": weights[2], "bw_kernel": weights[3], "bw_recurrent_kernel": weights[4],
         "bw_bias": weights[5]}
    kw = {"units": 3, "return_sequences": True}
    (h,) = np_bidirectional(p, MASK, kw, kw, "concat", False)
    check_close(f"{case}/out_0", arrays["out_0"], np_dense(h, weights[6], weights[7], "softmax"),
                dtype)
    config = {"kind": "Sequential", "dtype": dtype,
              "layers": ["Masking", "Bidirectional(LSTM(3, return_sequences=True))",
                         "Dense(2, softmax)"],
              "weights_order": "w_0..w_5: forward then backward LSTM [kernel, recurrent_kernel, "
                               "bias]; w_6, w_7: Dense kernel, bias",
              "keras_config": jsonable_config(model.get_config())}
    save(case, arrays, config)


# ----------------------------------------------------------------------------
def check_facts():
    """The Keras semantics the README states, asserted on the written fixtures."""
    def load(case):
        with np.load(os.path.join(OUT_DIR, case + ".npz"), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # Bidirectional + return_sequences: zero output at masked steps, both halves.
    a = load("bidi_concat_seq_mask_f64")
    assert np.all(a["out_0"][~a["mask"]] == 0)
    assert np.all(a["out_0"][1] == 0)  # the fully masked row
    # return_sequences=False with a fully masked row: last outputs are 0 and the
    # states are the initial states.
    a = load("bidi_none_state_mask_initial_state_last_f64")
    assert np.all(a["out_0"][1] == 0) and np.all(a["out_1"][1] == 0)
    assert np.allclose(a["out_2"][1], a["fw_h0"][1]) and np.allclose(a["out_5"][1], a["bw_c0"][1])
    # return_state order: [output, fw_h, fw_c, bw_h, bw_c]; with return_sequences
    # False the backward half of the output is the backward h.
    a = load("bidi_concat_state_last_f64")
    assert np.allclose(a["out_0"][:, :U], a["out_1"]) and np.allclose(a["out_0"][:, U:], a["out_3"])
    # Keras 3 divides the activity regularizer by the batch size.
    a = load("dense_regularized_f64")
    act = 0.01 * np.sum(a["out_0"] ** 2) / a["out_0"].shape[0]
    assert np.isclose(a["reg_losses"][-1], act) or np.isclose(a["reg_losses"][0], act)
    # Keras 3's Embedding wraps negative indices (numpy-style) on TensorFlow.
    e = keras.layers.Embedding(5, 2)
    e.build()
    w = np.asarray(e.embeddings)
    assert np.allclose(np.asarray(e(np.array([-1]))), w[-1])
    # Bidirectional's `weights=` argument is accepted and ignored by Keras 3.
    lw = [np.full(v.shape, 0.125, "float32") for v in (np.zeros((F, 4)), np.zeros((1, 4)),
                                                       np.zeros(4))] * 2
    bl = keras.layers.Bidirectional(keras.layers.LSTM(1), weights=lw)
    bl.build((1, T, F))
    assert not np.allclose(bl.get_weights()[0], 0.125)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for fn in os.listdir(OUT_DIR):
        if fn.endswith(".npz"):
            os.remove(os.path.join(OUT_DIR, fn))

    for dt, sfx in (("float32", "f32"), ("float64", "f64")):
        dense_case(f"dense_linear_2d_{sfx}", dt, (5, F), {"units": 3})
        dense_case(f"dense_relu_3d_{sfx}", dt, (3, T, F), {"units": 3, "activation": "relu"})
        dense_case(f"dense_softmax_2d_{sfx}", dt, (5, F), {"units": 4, "activation": "softmax"})
        dense_case(f"dense_softmax_3d_{sfx}", dt, (3, T, F),
                   {"units": 4, "activation": "softmax"})
        dense_case(f"dense_sigmoid_3d_{sfx}", dt, (3, T, F), {"units": 1, "activation": "sigmoid"})
    for act in ("tanh", "elu", "selu", "softsign", "swish", "hard_sigmoid", "gelu", "linear"):
        dense_case(f"dense_{act}_2d_f64", "float64", (5, F), {"units": 3, "activation": act})
    dense_case("dense_no_bias_3d_f64", "float64", (2, T, F),
               {"units": 3, "activation": "tanh", "use_bias": False})
    dense_case("dense_regularized_f64", "float64", (5, F),
               {"units": 3, "activation": "relu", "kernel_regularizer": "l2",
                "bias_regularizer": "l1", "activity_regularizer": "l2"}, regularized=True)

    for dt, sfx in (("float32", "f32"), ("float64", "f64")):
        embedding_case(f"embedding_2d_{sfx}", dt, (4, 7), 10, 3, False)
        embedding_case(f"embedding_mask_zero_{sfx}", dt, (4, 7), 10, 3, True)
        masking_case(f"masking_{sfx}", dt, 0.0)
    embedding_case("embedding_3d_f64", "float64", (2, 3, 5), 6, 4, False)
    masking_case("masking_value_f64", "float64", -1.0)

    seq = {"return_sequences": True}
    for dt, sfx in (("float32", "f32"), ("float64", "f64")):
        for mode in ("concat", "sum", "mul", "ave", None):
            name = mode or "none"
            bidi_case(f"bidi_{name}_seq_mask_{sfx}", dt, mode, seq, mask=MASK)
            bidi_case(f"bidi_{name}_last_{sfx}", dt, mode)
        bidi_case(f"bidi_concat_seq_{sfx}", dt, "concat", seq)
        bidi_case(f"bidi_concat_last_mask_{sfx}", dt, "concat", mask=MASK)
        bidi_case(f"bidi_concat_state_last_{sfx}", dt, "concat", {"return_state": True})
        bidi_case(f"bidi_concat_state_seq_mask_{sfx}", dt, "concat",
                  {"return_sequences": True, "return_state": True}, mask=MASK)
        bidi_case(f"bidi_none_state_mask_initial_state_last_{sfx}", dt, None,
                  {"return_state": True}, mask=MASK, initial_state=True)
        bidi_case(f"bidi_sum_initial_state_seq_{sfx}", dt, "sum", seq, initial_state=True)
        bidi_case(f"bidi_concat_state_seq_mask_initial_state_{sfx}", dt, "concat",
                  {"return_sequences": True, "return_state": True}, mask=MASK,
                  initial_state=True)
        bidi_case(f"bidi_backward_layer_seq_mask_{sfx}", dt, "concat", seq,
                  backward_kwargs={"units": 3, "activation": "relu"}, mask=MASK)
        bidi_case(f"bidi_backward_layer_state_last_{sfx}", dt, "concat",
                  {"return_state": True}, backward_kwargs={"units": 3, "use_bias": False,
                                                           "recurrent_activation": "hard_sigmoid"},
                  initial_state=True)
        pipeline_case(f"seq_masking_bidi_dense_{sfx}", dt)

    check_facts()
    total = sum(os.path.getsize(os.path.join(OUT_DIR, fn)) for fn in os.listdir(OUT_DIR))
    print(f"{len(CASES)} cases written to {OUT_DIR} ({total / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
