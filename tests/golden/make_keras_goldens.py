"""Generate golden fixtures for cylstm from the real Keras 3 (TensorFlow backend).

Run from the repository root, in a dev environment that has TensorFlow/Keras 3
(NOT a cylstm runtime dependency):

    python3 -m venv /work/devvenv
    /work/devvenv/bin/pip install tensorflow-cpu h5py
    TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES=-1 \
        /work/devvenv/bin/python tests/golden/make_keras_goldens.py

Writes ``tests/golden/keras_lstm/<case>.npz`` and
``tests/golden/keras_lstm/keras_written_config.json``.  See tests/golden/README.md
for the key layout.  Deterministic: every case draws its data from a NumPy
generator seeded from the case name.

Every golden is also checked against an independent NumPy reference of the LSTM
recurrence (Keras gate order i, f, c, o; the masking and go_backwards rules listed
in the README), so the script fails loudly if a Keras semantic differs from what
the README states.
"""

import json
import math
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
OUT_DIR = os.path.join(HERE, "keras_lstm")

B, T, F, U = 3, 6, 4, 5

VERSIONS = json.dumps(
    {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "keras_backend": keras.backend.backend(),
    }
)

ACTIVATIONS = [
    "tanh",
    "sigmoid",
    "hard_sigmoid",
    "relu",
    "linear",
    "softsign",
    "elu",
    "selu",
    "gelu",
    "swish",
    "silu",
]


# ----------------------------------------------------------------------------
# NumPy reference (independent check of every golden)
# ----------------------------------------------------------------------------
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
# TF's tf.nn.gelu(approximate=False) computes 0.5 * x * erfc(-x * c) where
# c = math_ops.cast(0.7071067811865476, dtype): the Python float becomes a
# float32 constant first, so even in float64 c == float32(1/sqrt(2)).  This gives
# ~5e-9 differences from the exact erf form in float64; the goldens keep Keras's
# numbers and the reference mirrors it.
_GELU_C = float(np.float32(0.7071067811865476))


def _np_act(name):
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return {
        "tanh": np.tanh,
        "sigmoid": sig,
        # Keras 3: relu6(x + 3) / 6 == clip(x / 6 + 0.5, 0, 1)
        "hard_sigmoid": lambda z: np.clip(z / 6.0 + 0.5, 0.0, 1.0),
        "relu": lambda z: np.maximum(z, 0.0),
        "linear": lambda z: z,
        "softsign": lambda z: z / (1.0 + np.abs(z)),
        "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        "selu": lambda z: scale
        * np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))),
        # Keras 3 'gelu' string -> approximate=False (exact erf form)
        "gelu": lambda z: 0.5 * z * _erfc(-z * _GELU_C),
        "swish": lambda z: z * sig(z),
        "silu": lambda z: z * sig(z),
    }[name]


def np_lstm(x, kernel, rkernel, bias, h0, c0, mask, act, ract, go_backwards):
    """Returns (outputs in processing order, last_output, h, c), float64."""
    x = x.astype(np.float64)
    f_act, f_ract = _np_act(act), _np_act(ract)
    b, t, _ = x.shape
    u = rkernel.shape[0]
    h = np.zeros((b, u)) if h0 is None else h0.astype(np.float64)
    c = np.zeros((b, u)) if c0 is None else c0.astype(np.float64)
    bias = np.zeros(4 * u) if bias is None else bias.astype(np.float64)
    order = range(t - 1, -1, -1) if go_backwards else range(t)
    prev_out = np.zeros((b, u))
    outs = []
    for step in order:
        z = x[:, step] @ kernel + h @ rkernel + bias
        i = f_ract(z[:, :u])
        f = f_ract(z[:, u : 2 * u])
        g = f_act(z[:, 2 * u : 3 * u])
        o = f_ract(z[:, 3 * u :])
        c_new = f * c + i * g
        h_new = o * f_act(c_new)
        if mask is not None:
            m = mask[:, step].astype(bool)[:, None]
            out = np.where(m, h_new, prev_out)
            h = np.where(m, h_new, h)
            c = np.where(m, c_new, c)
        else:
            out, h, c = h_new, h_new, c_new
        prev_out = out
        outs.append(out)
    return np.stack(outs, axis=1), prev_out, h, c


def fd_check(case, arrays, kw, mask, initial_state, use_bias, eps=1e-6):
    """Central finite differences of the NumPy reference vs the tape gradients."""
    act = kw.get("activation", "tanh")
    ract = kw.get("recurrent_activation", "sigmoid")
    names = ["x", "kernel", "recurrent_kernel"]
    names += ["bias"] if use_bias else []
    names += ["h0", "c0"] if initial_state else []
    p = {n: arrays[n].astype(np.float64).copy() for n in names}
    n_out = sum(1 for k in arrays if k.startswith("dy_"))

    def loss():
        seq, last, h, c = np_lstm(
            p["x"], p["kernel"], p["recurrent_kernel"], p.get("bias"),
            p.get("h0"), p.get("c0"), mask, act, ract,
            kw.get("go_backwards", False))
        outs = [seq if kw.get("return_sequences", False) else last]
        if kw.get("return_state", False):
            outs += [h, c]
        return sum(np.sum(o * arrays[f"dy_{k}"]) for k, o in enumerate(outs[:n_out]))

    for n in names:
        g = np.zeros_like(p[n])
        flat, gflat = p[n].reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            v = flat[i]
            flat[i] = v + eps
            lp = loss()
            flat[i] = v - eps
            lm = loss()
            flat[i] = v
            gflat[i] = (lp - lm) / (2 * eps)
        if not np.allclose(arrays["grad_" + n], g, rtol=1e-5, atol=1e-6):
            err = np.max(np.abs(arrays["grad_" + n] - g))
            raise AssertionError(f"{case}/grad_{n}: tape vs finite differences {err}")


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def u(rng, shape, lo=-0.5, hi=0.5, dtype="float64"):
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def jsonable_config(cfg):
    """Round-trip through json with a str fallback (dtype policies are dicts)."""
    return json.loads(json.dumps(cfg, default=str))


def as_list(out):
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def check_close(name, got, want, dtype):
    tol = 2e-5 if dtype == "float32" else 1e-10
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape or not np.allclose(got, want, rtol=tol, atol=tol):
        err = np.max(np.abs(got - want)) if got.shape == want.shape else "shape"
        raise AssertionError(
            f"{name}: Keras output differs from the NumPy reference ({err})"
        )


def save(case, arrays):
    path = os.path.join(OUT_DIR, case + ".npz")
    arrays = dict(arrays)
    arrays["versions"] = np.array(VERSIONS)
    np.savez_compressed(path, **arrays)
    # must load without pickle
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            z[k]
    return path


CASES = []


# ----------------------------------------------------------------------------
# LSTM layer cases
# ----------------------------------------------------------------------------
def lstm_case(
    case,
    dtype="float64",
    layer_kwargs=None,
    initial_state=False,
    mask=None,
    mask_int=False,
    b=B,
    t=T,
    f=F,
    units=U,
    seed=None,
):
    """mask: None, or a (b, t) 0/1 array.  seed: case name to draw data from
    (default: this case's name), to share inputs/weights between cases."""
    rng = rng_for(seed or case)
    kw = {"units": units}
    kw.update(layer_kwargs or {})
    kw["dtype"] = dtype
    layer = keras.layers.LSTM(**kw)
    layer.build((b, t, f))

    x = u(rng, (b, t, f), -1.0, 1.0, dtype)
    kernel = u(rng, (f, 4 * units), dtype=dtype)
    rkernel = u(rng, (units, 4 * units), dtype=dtype)
    use_bias = kw.get("use_bias", True)
    bias = u(rng, (4 * units,), dtype=dtype) if use_bias else None
    layer.set_weights([kernel, rkernel] + ([bias] if use_bias else []))
    h0 = u(rng, (b, units), -1.0, 1.0, dtype) if initial_state else None
    c0 = u(rng, (b, units), -1.0, 1.0, dtype) if initial_state else None

    arrays = {"x": x, "kernel": kernel, "recurrent_kernel": rkernel}
    if use_bias:
        arrays["bias"] = bias
    if initial_state:
        arrays["h0"], arrays["c0"] = h0, c0
    if mask is not None:
        mask = np.asarray(mask)
        mask_arr = mask.astype(np.int32) if mask_int else mask.astype(bool)
        arrays["mask"] = mask_arr

    x_t = tf.constant(x)
    h0_t = tf.constant(h0) if initial_state else None
    c0_t = tf.constant(c0) if initial_state else None
    call_kw = {"training": False}
    if initial_state:
        call_kw["initial_state"] = [h0_t, c0_t]
    if mask is not None:
        call_kw["mask"] = tf.constant(arrays["mask"])

    weights = [layer.cell.kernel, layer.cell.recurrent_kernel]
    if use_bias:
        weights.append(layer.cell.bias)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_t)
        if initial_state:
            tape.watch(h0_t)
            tape.watch(c0_t)
        outs = as_list(layer(x_t, **call_kw))
        dys = [u(rng, tuple(o.shape), -1.0, 1.0, dtype) for o in outs]
        loss = tf.add_n(
            [tf.reduce_sum(o * tf.constant(dy)) for o, dy in zip(outs, dys)]
        )
    for k, (o, dy) in enumerate(zip(outs, dys)):
        arrays[f"out_{k}"] = o.numpy()
        arrays[f"dy_{k}"] = dy
    srcs = [x_t] + weights + ([h0_t, c0_t] if initial_state else [])
    grads = tape.gradient(loss, srcs)
    names = ["grad_x", "grad_kernel", "grad_recurrent_kernel"]
    if use_bias:
        names.append("grad_bias")
    if initial_state:
        names += ["grad_h0", "grad_c0"]
    for n, g in zip(names, grads):
        g = np.zeros_like(arrays[n[5:]]) if g is None else np.asarray(g)
        arrays[n] = g.astype(dtype)
    del tape

    # independent NumPy check of the forward pass
    act = kw.get("activation", "tanh")
    ract = kw.get("recurrent_activation", "sigmoid")
    seq, last, h, c = np_lstm(
        x, kernel, rkernel, bias, h0, c0, mask, act, ract,
        kw.get("go_backwards", False),
    )
    want = [seq if kw.get("return_sequences", False) else last]
    if kw.get("return_state", False):
        want += [h, c]
    assert len(want) == len(outs), case
    for k, w in enumerate(want):
        check_close(f"{case}/out_{k}", arrays[f"out_{k}"], w, dtype)
    assert all(arrays[f"out_{k}"].dtype == np.dtype(dtype) for k in range(len(outs)))

    if dtype == "float64":
        fd_check(case, arrays, kw, mask, initial_state, use_bias)

    config = {
        "case": case,
        "kind": "LSTM",
        "layer": {k: v for k, v in kw.items()},
        "dtype": dtype,
        "has_initial_state": bool(initial_state),
        "has_mask": mask is not None,
        "mask_dtype": None if mask is None else str(arrays["mask"].dtype),
        "n_outputs": len(outs),
        "keras_config": jsonable_config(layer.get_config()),
    }
    arrays["config"] = np.array(json.dumps(config))
    save(case, arrays)
    CASES.append(case)


def stateful_case(case, dtype):
    rng = rng_for(case)
    kw = {
        "units": U,
        "stateful": True,
        "return_sequences": True,
        "return_state": True,
        "dtype": dtype,
    }
    layer = keras.layers.LSTM(**kw)
    layer.build((B, T, F))
    kernel = u(rng, (F, 4 * U), dtype=dtype)
    rkernel = u(rng, (U, 4 * U), dtype=dtype)
    bias = u(rng, (4 * U,), dtype=dtype)
    layer.set_weights([kernel, rkernel, bias])
    arrays = {"kernel": kernel, "recurrent_kernel": rkernel, "bias": bias}
    h = c = None
    for k in range(4):
        if k == 3:
            layer.reset_state()
            h = c = None
        xk = u(rng, (B, T, F), -1.0, 1.0, dtype)
        outs = as_list(layer(tf.constant(xk), training=False))
        arrays[f"x_call{k}"] = xk
        for j, o in enumerate(outs):
            arrays[f"out_call{k}_{j}"] = o.numpy()
        seq, _, h, c = np_lstm(xk, kernel, rkernel, bias, h, c, None,
                               "tanh", "sigmoid", False)
        check_close(f"{case}/call{k}", arrays[f"out_call{k}_0"], seq, dtype)
        check_close(f"{case}/call{k}h", arrays[f"out_call{k}_1"], h, dtype)
        check_close(f"{case}/call{k}c", arrays[f"out_call{k}_2"], c, dtype)
    config = {
        "case": case,
        "kind": "LSTM_stateful",
        "layer": kw,
        "dtype": dtype,
        "has_initial_state": False,
        "has_mask": False,
        "n_calls": 4,
        "reset_state_before_call": 3,
        "n_outputs": 3,
        "keras_config": jsonable_config(layer.get_config()),
    }
    arrays["config"] = np.array(json.dumps(config))
    save(case, arrays)
    CASES.append(case)


def cell_case(case, dtype, cell_kwargs=None):
    rng = rng_for(case)
    kw = {"units": U}
    kw.update(cell_kwargs or {})
    kw["dtype"] = dtype
    cell = keras.layers.LSTMCell(**kw)
    cell.build((B, F))
    use_bias = kw.get("use_bias", True)
    kernel = u(rng, (F, 4 * U), dtype=dtype)
    rkernel = u(rng, (U, 4 * U), dtype=dtype)
    bias = u(rng, (4 * U,), dtype=dtype) if use_bias else None
    cell.set_weights([kernel, rkernel] + ([bias] if use_bias else []))
    x = u(rng, (B, F), -1.0, 1.0, dtype)
    h0 = u(rng, (B, U), -1.0, 1.0, dtype)
    c0 = u(rng, (B, U), -1.0, 1.0, dtype)
    x_t, h0_t, c0_t = tf.constant(x), tf.constant(h0), tf.constant(c0)
    weights = [cell.kernel, cell.recurrent_kernel] + ([cell.bias] if use_bias else [])
    with tf.GradientTape() as tape:
        tape.watch([x_t, h0_t, c0_t])
        out, (h1, c1) = cell(x_t, [h0_t, c0_t], training=False)
        dy_h = u(rng, (B, U), -1.0, 1.0, dtype)
        dy_c = u(rng, (B, U), -1.0, 1.0, dtype)
        loss = tf.reduce_sum(out * dy_h) + tf.reduce_sum(c1 * dy_c)
    grads = tape.gradient(loss, [x_t, h0_t, c0_t] + weights)
    assert np.array_equal(out.numpy(), h1.numpy())
    arrays = {
        "x": x, "h0": h0, "c0": c0, "kernel": kernel, "recurrent_kernel": rkernel,
        "out_h": out.numpy(), "out_c": c1.numpy(), "dy_h": dy_h, "dy_c": dy_c,
    }
    if use_bias:
        arrays["bias"] = bias
    names = ["grad_x", "grad_h0", "grad_c0", "grad_kernel", "grad_recurrent_kernel"]
    if use_bias:
        names.append("grad_bias")
    for n, g in zip(names, grads):
        arrays[n] = np.asarray(g).astype(dtype)
    _, _, h, c = np_lstm(x[:, None, :], kernel, rkernel, bias, h0, c0, None,
                         kw.get("activation", "tanh"),
                         kw.get("recurrent_activation", "sigmoid"), False)
    check_close(case + "/h", arrays["out_h"], h, dtype)
    check_close(case + "/c", arrays["out_c"], c, dtype)
    config = {
        "case": case,
        "kind": "LSTMCell",
        "layer": kw,
        "dtype": dtype,
        "has_initial_state": True,
        "has_mask": False,
        "loss": "sum(out_h * dy_h) + sum(out_c * dy_c)",
        "keras_config": jsonable_config(cell.get_config()),
    }
    arrays["config"] = np.array(json.dumps(config))
    save(case, arrays)
    CASES.append(case)


def masks():
    """(b=3, t=6) patterns, rows are samples."""
    return {
        "random": np.array(
            [[1, 0, 1, 1, 0, 1], [1, 1, 0, 0, 1, 1], [0, 1, 1, 0, 1, 0]], bool
        ),
        "left_padded": np.array(
            [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1]], bool
        ),
        "right_padded": np.array(
            [[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool
        ),
        "full_row": np.array(
            [[1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 1]], bool
        ),
        # rows: first step masked; first two masked; fully masked
        "first_step_initial_state": np.array(
            [[0, 1, 1, 1, 1, 1], [0, 0, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], bool
        ),
    }


def _load(case):
    with np.load(os.path.join(OUT_DIR, case + ".npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def check_facts():
    """Explicit checks of the semantics stated in tests/golden/README.md."""
    for sfx in ("_f32", "_f64"):
        # go_backwards + return_sequences: processing order, i.e. out[:, 0] is the
        # step on x[:, -1]; the sequence is NOT flipped back; the last output
        # (and h) equals out[:, -1].
        g = _load("go_backwards_initial_state" + sfx)
        assert np.array_equal(g["out_0"][:, -1], g["out_1"])
        seq = _load("go_backwards_sequences" + sfx)
        last = _load("go_backwards_last" + sfx)  # same x / weights (shared seed)
        assert np.array_equal(seq["x"], last["x"])
        np.testing.assert_allclose(last["out_0"], seq["out_0"][:, -1], rtol=1e-6)
        one, _, _, _ = np_lstm(seq["x"][:, -1:], seq["kernel"],
                               seq["recurrent_kernel"], seq["bias"], None, None,
                               None, "tanh", "sigmoid", False)
        np.testing.assert_allclose(seq["out_0"][:, 0], one[:, 0], rtol=1e-5,
                                   atol=1e-6)
        # masked step: previous output; zeros before the first unmasked step,
        # even with initial_state; fully masked row: out 0, h == h0, c == c0.
        z = _load("mask_first_step_initial_state" + sfx)
        m = z["mask"]
        assert np.all(z["out_0"][0, 0] == 0) and np.all(z["out_0"][1, :2] == 0)
        assert np.all(z["out_0"][1, 3] == z["out_0"][1, 2])
        assert np.all(z["out_0"][2] == 0)
        assert np.array_equal(z["out_1"][2], z["h0"][2])
        assert np.array_equal(z["out_2"][2], z["c0"][2])
        assert not np.any(m[2])
        z = _load("mask_full_row" + sfx)
        assert np.all(z["out_0"][1] == 0) and np.all(z["out_1"][1] == 0)
        assert np.all(z["out_2"][1] == 0)
        # the last output with a trailing masked step is the last unmasked output
        # and equals h (for rows with at least one unmasked step)
        z = _load("mask_right_padded" + sfx)
        assert np.array_equal(z["out_0"][:, -1], z["out_1"])
        assert np.array_equal(z["out_0"][0, 4], z["out_0"][0, 3])
        # masked steps get zero input gradient
        for case in ("mask_random", "mask_full_row", "mask_go_backwards"):
            z = _load(case + sfx)
            assert np.all(z["grad_x"][~z["mask"].astype(bool)] == 0), case
        # integer mask == boolean mask
        a, b = _load("mask_int" + sfx), _load("mask_random" + sfx)
        assert a["mask"].dtype.kind == "i" and b["mask"].dtype == bool
        assert np.array_equal(a["mask"].astype(bool), b["mask"])
        for k in ("out_0", "out_1", "out_2", "grad_x", "grad_kernel"):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
    print("semantic facts verified")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for fn in os.listdir(OUT_DIR):
        if fn.endswith(".npz"):
            os.remove(os.path.join(OUT_DIR, fn))
    np.random.seed(0)
    keras.utils.set_random_seed(0)
    print("keras", keras.__version__, "tensorflow", tf.__version__)

    rs = {"return_sequences": True}
    rst = {"return_sequences": True, "return_state": True}
    for dt, sfx in (("float32", "_f32"), ("float64", "_f64")):
        lstm_case("default" + sfx, dt)
        lstm_case("return_sequences" + sfx, dt, rs)
        lstm_case("return_state" + sfx, dt, {"return_state": True})
        lstm_case("return_state_sequences" + sfx, dt, rst)
        lstm_case("go_backwards_sequences" + sfx, dt,
                  {"go_backwards": True, "return_sequences": True})
        lstm_case("go_backwards_last" + sfx, dt, {"go_backwards": True},
                  seed="go_backwards_sequences" + sfx)
        lstm_case("initial_state" + sfx, dt, rst, initial_state=True)
        lstm_case("initial_state_last" + sfx, dt, {}, initial_state=True)
        lstm_case("no_bias" + sfx, dt, dict(rst, use_bias=False))
        lstm_case("go_backwards_initial_state" + sfx, dt,
                  {"go_backwards": True, "return_sequences": True,
                   "return_state": True}, initial_state=True)

        m = masks()
        for name in ("random", "left_padded", "right_padded", "full_row"):
            lstm_case(f"mask_{name}{sfx}", dt, rst, mask=m[name])
        lstm_case("mask_first_step_initial_state" + sfx, dt, rst,
                  initial_state=True, mask=m["first_step_initial_state"])
        lstm_case("mask_full_row_last" + sfx, dt, {"return_state": True},
                  mask=m["full_row"])
        lstm_case("mask_go_backwards" + sfx, dt,
                  dict(rst, go_backwards=True), mask=m["random"])
        lstm_case("mask_go_backwards_initial_state" + sfx, dt,
                  dict(rst, go_backwards=True), initial_state=True,
                  mask=m["left_padded"])
        lstm_case("mask_int" + sfx, dt, rst, mask=m["random"], mask_int=True,
                  seed="mask_random" + sfx)

        stateful_case("stateful" + sfx, dt)
        cell_case("cell" + sfx, dt)
    cell_case("cell_no_bias_f64", "float64", {"use_bias": False})
    cell_case("cell_relu_hard_sigmoid_f64", "float64",
              {"activation": "relu", "recurrent_activation": "hard_sigmoid"})

    for a in ACTIVATIONS:
        lstm_case(f"act_{a}_f64", "float64",
                  dict(rs, activation=a, recurrent_activation="sigmoid"))
        lstm_case(f"recact_{a}_f64", "float64",
                  dict(rs, activation="tanh", recurrent_activation=a))
    # a longer / wider case (different shapes than the 3/6/4/5 default)
    lstm_case("shapes_b2_t9_f3_u7_f64", "float64", rst, initial_state=True,
              b=2, t=9, f=3, units=7)
    lstm_case("shapes_b1_t1_f1_u1_f64", "float64", rst, initial_state=True,
              b=1, t=1, f=1, units=1)

    # Keras-written config of an LSTM with many non-default arguments
    layer = keras.layers.LSTM(
        7,
        activation="relu",
        recurrent_activation="hard_sigmoid",
        use_bias=True,
        kernel_regularizer="l2",
        dropout=0.1,
        recurrent_dropout=0.2,
        return_sequences=True,
        go_backwards=True,
        stateful=False,
        seed=3,
        kernel_constraint="max_norm",
        name="lstm_from_keras",
    )
    cfg = layer.get_config()
    serialized = keras.saving.serialize_keras_object(layer)
    # keras_written_config.json is exactly layer.get_config() (what
    # LSTM.from_config receives); the full serialize_keras_object() envelope
    # ({"module", "class_name", "config", ...}) goes to a second file.
    for fname, obj in (("keras_written_config.json", cfg),
                       ("keras_written_serialized.json", serialized)):
        text = json.dumps(obj, indent=1, sort_keys=True)  # no default=: must be JSON
        with open(os.path.join(OUT_DIR, fname), "w") as fh:
            fh.write(text + "\n")

    check_facts()

    total = sum(
        os.path.getsize(os.path.join(OUT_DIR, fn)) for fn in os.listdir(OUT_DIR)
    )
    print(f"{len(CASES)} cases written to {OUT_DIR} ({total / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
