#!/usr/bin/env python
"""Regenerate the PyTorch golden fixtures in tests/golden/torch_lstm/.

Run from the repository root with a venv that has the real PyTorch (never
needed by cylstm's own tests, which only read the .npz files):

    python3 -m venv /work/devvenv-torch
    /work/devvenv-torch/bin/pip install torch==2.13.0 onnx onnxruntime numpy
    /work/devvenv-torch/bin/python tests/golden/make_torch_goldens.py

Every case is fully determined by its seed: ``torch.manual_seed(seed)`` is
called, then the module is built with torch's own default initialisation, then
x, h0, c0 and the cotangents are drawn with ``torch.randn`` in that order.
See tests/golden/README_torch_onnx.md for the key layout.
"""

import json
import os
import platform
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "torch_lstm")

SEQ, BATCH, INPUT, HIDDEN, PROJ = 5, 3, 4, 5, 3

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def versions_string():
    return json.dumps({
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "generator": "tests/golden/make_torch_goldens.py",
    }, sort_keys=True)


# name -> (module, extra kwargs, has_hx, unbatched). Defaults are filled in below.
LSTM_CASES = [
    ("default", {}, False, False),
    ("batch_first", {"batch_first": True}, False, False),
    ("hx", {}, True, False),
    ("layers2", {"num_layers": 2}, False, False),
    ("layers3_batch_first", {"num_layers": 3, "batch_first": True}, False, False),
    ("bidirectional", {"bidirectional": True}, False, False),
    ("bidir_layers2_hx", {"bidirectional": True, "num_layers": 2}, True, False),
    ("proj", {"proj_size": PROJ}, False, False),
    ("proj_hx_batch_first", {"proj_size": PROJ, "batch_first": True}, True, False),
    ("proj_bidir_layers2", {"proj_size": PROJ, "bidirectional": True, "num_layers": 2},
     False, False),
    ("nobias", {"bias": False}, False, False),
    ("nobias_bidir_layers2_hx", {"bias": False, "bidirectional": True, "num_layers": 2},
     True, False),
    ("unbatched", {}, False, True),
    ("unbatched_hx", {}, True, True),
    ("unbatched_bidir", {"bidirectional": True}, False, True),
    ("unbatched_proj_bidir_layers2_hx",
     {"proj_size": PROJ, "bidirectional": True, "num_layers": 2}, True, True),
]

# Added later; generated after CELL_CASES so the seeds of the cases above stay put.
EXTRA_LSTM_CASES = [
    # batch_first does not apply to unbatched (L, H_in) input
    ("unbatched_batch_first_proj_hx", {"batch_first": True, "proj_size": PROJ}, True, True),
    ("nobias_proj_bidir_layers2_batch_first_hx",
     {"bias": False, "proj_size": PROJ, "bidirectional": True, "num_layers": 2,
      "batch_first": True}, True, False),
    # inter-layer dropout is off in eval mode, for the outputs and the gradients
    ("dropout_eval_layers2", {"num_layers": 2, "dropout": 0.5}, False, False),
]

CELL_CASES = [
    ("cell", {}, False, False),
    ("cell_hx", {}, True, False),
    ("cell_nobias_hx", {"bias": False}, True, False),
    ("cell_unbatched", {}, False, True),
    ("cell_unbatched_hx", {}, True, True),
]


def lstm_kwargs(extra, dtype_name):
    kw = {
        "input_size": INPUT,
        "hidden_size": HIDDEN,
        "num_layers": 1,
        "bias": True,
        "batch_first": False,
        "dropout": 0.0,
        "bidirectional": False,
        "proj_size": 0,
    }
    kw.update(extra)
    kw["dtype"] = dtype_name
    return kw


def cell_kwargs(extra, dtype_name):
    kw = {"input_size": INPUT, "hidden_size": HIDDEN, "bias": True}
    kw.update(extra)
    kw["dtype"] = dtype_name
    return kw


def to_np(t):
    return t.detach().cpu().numpy().copy()


def make_lstm_case(name, extra, has_hx, unbatched, dtype_name, seed):
    kw = lstm_kwargs(extra, dtype_name)
    tkw = dict(kw)
    tkw["dtype"] = DTYPES[dtype_name]
    torch.manual_seed(seed)
    mod = torch.nn.LSTM(**tkw)
    mod.eval()
    dt = DTYPES[dtype_name]
    D = 2 if kw["bidirectional"] else 1
    L = kw["num_layers"]
    h_out = kw["proj_size"] if kw["proj_size"] > 0 else kw["hidden_size"]

    if unbatched:
        x_shape = (SEQ, INPUT)
        st_h, st_c = (D * L, h_out), (D * L, HIDDEN)
    else:
        x_shape = (BATCH, SEQ, INPUT) if kw["batch_first"] else (SEQ, BATCH, INPUT)
        st_h, st_c = (D * L, BATCH, h_out), (D * L, BATCH, HIDDEN)

    x = torch.randn(x_shape, dtype=dt, requires_grad=True)
    inputs = [x]
    if has_hx:
        h0 = torch.randn(st_h, dtype=dt, requires_grad=True)
        c0 = torch.randn(st_c, dtype=dt, requires_grad=True)
        inputs += [h0, c0]
        output, (h_n, c_n) = mod(x, (h0, c0))
    else:
        output, (h_n, c_n) = mod(x)

    d_output = torch.randn(output.shape, dtype=dt)
    d_h_n = torch.randn(h_n.shape, dtype=dt)
    d_c_n = torch.randn(c_n.shape, dtype=dt)
    loss = (output * d_output).sum() + (h_n * d_h_n).sum() + (c_n * d_c_n).sum()
    names = [n for n, _ in mod.named_parameters()]
    params = [p for _, p in mod.named_parameters()]
    grads = torch.autograd.grad(loss, inputs + params)

    arrs = {"x": to_np(x)}
    if has_hx:
        arrs["h0"] = to_np(h0)
        arrs["c0"] = to_np(c0)
    for k, v in mod.state_dict().items():
        arrs["sd__" + k] = to_np(v)
    arrs.update(output=to_np(output), h_n=to_np(h_n), c_n=to_np(c_n),
                d_output=to_np(d_output), d_h_n=to_np(d_h_n), d_c_n=to_np(d_c_n))
    arrs["grad_x"] = to_np(grads[0])
    if has_hx:
        arrs["grad_h0"] = to_np(grads[1])
        arrs["grad_c0"] = to_np(grads[2])
    for n, g in zip(names, grads[len(inputs):]):
        arrs["grad__" + n] = to_np(g)
    config = {"module": "LSTM", "kwargs": kw, "has_hx": has_hx,
              "unbatched": unbatched, "seed": seed, "case": name}
    return config, arrs


def make_cell_case(name, extra, has_hx, unbatched, dtype_name, seed):
    kw = cell_kwargs(extra, dtype_name)
    tkw = dict(kw)
    tkw["dtype"] = DTYPES[dtype_name]
    torch.manual_seed(seed)
    mod = torch.nn.LSTMCell(**tkw)
    mod.eval()
    dt = DTYPES[dtype_name]
    if unbatched:
        x_shape, st = (INPUT,), (HIDDEN,)
    else:
        x_shape, st = (BATCH, INPUT), (BATCH, HIDDEN)
    x = torch.randn(x_shape, dtype=dt, requires_grad=True)
    inputs = [x]
    if has_hx:
        h0 = torch.randn(st, dtype=dt, requires_grad=True)
        c0 = torch.randn(st, dtype=dt, requires_grad=True)
        inputs += [h0, c0]
        h_1, c_1 = mod(x, (h0, c0))
    else:
        h_1, c_1 = mod(x)
    d_h_1 = torch.randn(h_1.shape, dtype=dt)
    d_c_1 = torch.randn(c_1.shape, dtype=dt)
    loss = (h_1 * d_h_1).sum() + (c_1 * d_c_1).sum()
    names = [n for n, _ in mod.named_parameters()]
    params = [p for _, p in mod.named_parameters()]
    grads = torch.autograd.grad(loss, inputs + params)

    arrs = {"x": to_np(x)}
    if has_hx:
        arrs["h0"] = to_np(h0)
        arrs["c0"] = to_np(c0)
    for k, v in mod.state_dict().items():
        arrs["sd__" + k] = to_np(v)
    arrs.update(h_1=to_np(h_1), c_1=to_np(c_1), d_h_1=to_np(d_h_1), d_c_1=to_np(d_c_1))
    arrs["grad_x"] = to_np(grads[0])
    if has_hx:
        arrs["grad_h0"] = to_np(grads[1])
        arrs["grad_c0"] = to_np(grads[2])
    for n, g in zip(names, grads[len(inputs):]):
        arrs["grad__" + n] = to_np(g)
    config = {"module": "LSTMCell", "kwargs": kw, "has_hx": has_hx,
              "unbatched": unbatched, "seed": seed, "case": name}
    return config, arrs


def _same(old, new):
    """Equal, or float arrays within 64 ulp: torch's results can differ in the last
    bits between CPUs (BLAS code paths) for the same inputs and weights."""
    if old.dtype != new.dtype or old.shape != new.shape:
        return False
    if old.dtype.kind == "f":
        eps = np.finfo(old.dtype).eps
        return bool(np.allclose(old, new, rtol=64 * eps, atol=64 * eps))
    return bool(np.array_equal(old, new))


def unchanged(path, arrays):
    """Whether ``path`` already holds these arrays (see ``_same``); then it is not
    rewritten, so a rerun leaves the committed files alone instead of writing new
    zip timestamps and last-bit differences."""
    if not os.path.exists(path):
        return False
    with np.load(path, allow_pickle=False) as z:
        if sorted(z.files) != sorted(arrays):
            return False
        return all(_same(z[k], np.asarray(v)) for k, v in arrays.items())


def save(path, config, arrs, versions):
    for k, v in arrs.items():
        assert isinstance(v, np.ndarray) and v.dtype != object, k
    everything = dict(arrs, config=np.array(json.dumps(config, sort_keys=True)),
                      seed=np.array(config["seed"], dtype=np.int64),
                      versions=np.array(versions))
    if unchanged(path, everything):
        return
    np.savez_compressed(path, config=np.array(json.dumps(config, sort_keys=True)),
                        seed=np.array(config["seed"], dtype=np.int64),
                        versions=np.array(versions), **arrs)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    versions = versions_string()
    written = []
    seed = 1000
    for builder, cases in ((make_lstm_case, LSTM_CASES), (make_cell_case, CELL_CASES),
                           (make_lstm_case, EXTRA_LSTM_CASES)):
        for name, extra, has_hx, unbatched in cases:
            for dtype_name, suffix in (("float32", "_f32"), ("float64", "_f64")):
                seed += 1
                config, arrs = builder(name, extra, has_hx, unbatched, dtype_name, seed)
                path = os.path.join(OUT_DIR, name + suffix + ".npz")
                save(path, config, arrs, versions)
                written.append(path)

    # A bare state dict (NumPy arrays under the exact torch names, nothing else):
    # input_size=4, hidden_size=5, num_layers=2, bias=True, bidirectional=True,
    # proj_size=3 must be inferable from the names and shapes alone.
    torch.manual_seed(7)
    mod = torch.nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, proj_size=PROJ)
    sd = {k: to_np(v) for k, v in mod.state_dict().items()}
    path = os.path.join(OUT_DIR, "state_dict_only.npz")
    if not unchanged(path, sd):
        np.savez_compressed(path, **sd)
    written.append(path)

    # Verify everything loads without pickle.
    for p in written:
        with np.load(p, allow_pickle=False) as z:
            for k in z.files:
                z[k]
    total = sum(os.path.getsize(p) for p in written)
    print("wrote %d files (%d bytes) to %s" % (len(written), total, OUT_DIR))


if __name__ == "__main__":
    sys.exit(main())
