"""Helpers shared by the test files: finite differences and the comparison of
the compiled LSTM kernels with their NumPy twin."""
import numpy as np

from cylstm import _ops
from cylstm import activations as A
from cylstm._kernels import reference

# Kernel against twin, per dtype: the same arithmetic in another order.
KERNEL_RTOL = {"float32": 2e-5, "float64": 1e-12}
KERNEL_ATOL = {"float32": 2e-6, "float64": 1e-13}
# (key of _ops.lstm_backward's dict, key of reference.lstm_backward's dict)
LSTM_GRADS = (("dx", "dx"), ("kernel", "dW"), ("recurrent_kernel", "dU"), ("bias", "db"),
              ("dh0", "dh0"), ("dc0", "dc0"), ("projection", "dWr"))


def numerical_gradient(f, array, eps=1e-6, indices=None):
    """Central differences ``(f() at a+eps - f() at a-eps) / 2eps`` of the scalar
    ``f()`` for each entry of ``array``, which is perturbed in place (``f`` reads
    it) and restored. ``indices`` (default: every entry) picks the entries;
    the others stay zero. The result has ``array``'s dtype."""
    num = np.zeros_like(array)
    for idx in (np.ndindex(array.shape) if indices is None else indices):
        old = array[idx]
        array[idx] = old + eps
        up = f()
        array[idx] = old - eps
        down = f()
        array[idx] = old
        num[idx] = (up - down) / (2 * eps)
    return num


def numerical_gradient_at(f, x, eps=1e-6, indices=None):
    """``numerical_gradient`` of ``f(x)``, evaluated on perturbed copies of ``x``
    (``x`` itself is not touched)."""
    work = np.array(x, copy=True)
    return numerical_gradient(lambda: f(work), work, eps, indices)


def assert_matches_finite_differences(g, p, weights, loss, eps=1e-6):
    """The backward pass's gradients `g` against central differences of
    `loss()` (which reads `p["x"]` and `weights`, perturbed in place)."""
    targets = dict(kernel="kernel", recurrent_kernel="recurrent_kernel", bias="bias",
                   h0="dh0", c0="dc0", projection="projection", x="dx")
    for name, gname in targets.items():
        arr = p["x"] if name == "x" else weights[name]
        if arr is None:
            continue
        num = numerical_gradient(loss, arr, eps)
        np.testing.assert_allclose(g[gname], num, rtol=1e-5, atol=1e-7, err_msg=name)


def kernel_and_reference(p, go_backwards=False, time_major=False, training=True, act="tanh",
                         rec="sigmoid"):
    """``_ops.lstm_forward`` (batch- or time-major) and the NumPy twin (time-major)
    on one problem dict: x, kernel, recurrent_kernel, bias, h0, c0, projection,
    mask, recurrent_mask and (optional) input_mask."""
    x = p["x"].transpose(1, 0, 2).copy() if time_major else p["x"]
    mask = None if p["mask"] is None else (p["mask"].T if time_major else p["mask"])
    got = _ops.lstm_forward(
        x, p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"], p["c0"],
        projection=p["projection"], mask=mask, recurrent_mask=p["recurrent_mask"],
        input_mask=p.get("input_mask"), go_backwards=go_backwards, activation=A.get(act),
        recurrent_activation=A.get(rec), time_major=time_major, training=training)
    ref = reference.lstm_forward(
        p["x"].transpose(1, 0, 2), p["kernel"], p["recurrent_kernel"], p["bias"], p["h0"],
        p["c0"], Wr=p["projection"], mask=p["mask"], rec_mask=p["recurrent_mask"],
        in_mask=p.get("input_mask"), go_backwards=go_backwards, activation=act,
        recurrent_activation=rec, training=True)
    return got, ref


def assert_kernel_matches_reference(p, dtype, rng, time_major=False, scale=1, compiled=False,
                                    **kw):
    """Outputs, states and every gradient of the kernel against the twin within
    ``KERNEL_RTOL/ATOL * scale`` (gradients ten times that). `scale` widens the
    tolerances for larger sums (float32 rounding grows with them: the twin and
    the kernel then differ from float64 by about the same amount).
    ``compiled=True`` also asserts that the compiled path ran."""
    (seq, last, h, c, cache), (rseq, rlast, rh, rc, rcache) = kernel_and_reference(
        p, time_major=time_major, **kw)
    if compiled:
        assert isinstance(cache, _ops.ForwardCache)     # the compiled path ran
    tol = dict(rtol=KERNEL_RTOL[dtype] * scale, atol=KERNEL_ATOL[dtype] * scale)
    np.testing.assert_allclose(seq, rseq if time_major else rseq.transpose(1, 0, 2), **tol)
    for a, b in ((last, rlast), (h, rh), (c, rc)):
        np.testing.assert_allclose(a, b, **tol)
    d_seq = rng.standard_normal(seq.shape).astype(dtype)
    d_last, d_h = (rng.standard_normal(h.shape).astype(dtype) for _ in range(2))
    d_c = rng.standard_normal(c.shape).astype(dtype)
    g = _ops.lstm_backward(cache, d_seq, d_last, d_h, d_c)
    r = reference.lstm_backward(rcache, d_seq if time_major else d_seq.transpose(1, 0, 2),
                                d_last, d_h, d_c)
    if not time_major:
        r["dx"] = r["dx"].transpose(1, 0, 2)
    gtol = dict(rtol=KERNEL_RTOL[dtype] * 10 * scale, atol=KERNEL_ATOL[dtype] * 10 * scale)
    for mine, theirs in LSTM_GRADS:
        if r[theirs] is None:
            assert g[mine] is None, mine
        else:
            np.testing.assert_allclose(g[mine], r[theirs], err_msg=mine, **gtol)
