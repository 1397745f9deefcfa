"""The LSTM contract every backend fulfils, and its reference implementation on
an array namespace ``xp`` (NumPy by default).

``Backend`` is what layers, ``nn`` modules and optimizers talk to: arrays
(``asarray``, ``zeros``, ``xp``) and the LSTM (``lstm_forward``,
``lstm_backward``, ``stepper``). Its methods are the plain formulas, written
with array-API functions only, so they run on any namespace that follows
the standard (``array_api_strict`` in the tests, CuPy later); they are also
the oracle the compiled kernels are tested against. A faster backend
(``CpuBackend``) subclasses it and overrides what it has compiled, falling
back to these methods for anything else.

Notation as in ``cylstm/_kernels/lstm_forward.pyx``: x (B, T, I) or
(T, B, I) when time-major, kernel (I, 4H), recurrent_kernel (P, 4H), bias
(4H,) or None, projection (H, P) or None, h0 (B, P), c0 (B, H); gate order
i, f, g(c), o.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import activations as _activations

__all__ = ["Backend", "LSTMProblem", "LSTMGrads", "ReferenceStepper", "xp_activation"]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _erf(xp, z):
    """erf, which the array API does not have: scipy's on NumPy, the
    namespace's own where it has one."""
    if xp is np:
        from scipy.special import erf   # loads on first use (costly to import)
        return erf(z)
    fn = getattr(xp, "erf", None)
    if fn is None:
        raise NotImplementedError(f"gelu needs erf, which the array namespace "
                                  f"{getattr(xp, '__name__', xp)!r} does not have.")
    return fn(z)


def xp_activation(name: str, xp: Any) -> Tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """``(f, f')`` of a built-in activation on namespace ``xp``, the formulas
    of the C kernels (``cylstm/_kernels/activations.pxd``).

    Parameters
    ----------
    name : str
        A name of ``cylstm.activations.KERNEL_CODES``.
    xp : module
        An array namespace.

    Returns
    -------
    tuple of two callables
    """
    def sigmoid(z):
        e = xp.exp(-xp.abs(z))   # exp of a non-positive number only, as the C code
        return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))

    def sigmoid_grad(z):
        e = xp.exp(-xp.abs(z))   # no cancellation where the sigmoid saturates
        return e / (1 + e) ** 2

    def tanh_grad(z):
        e = xp.exp(-2 * xp.abs(z))
        return xp.where(xp.abs(z) < 0.625, 1 - xp.tanh(z) ** 2, 4 * e / (1 + e) ** 2)

    def zeros(z):
        return xp.zeros_like(z)

    def ones(z):
        return xp.ones_like(z)

    def where(cond, a, b):
        return xp.where(cond, a, b)

    def neg_part(z):
        return xp.where(z > 0, zeros(z), z)

    def gelu(z):
        return 0.5 * z * (1 + _erf(xp, z / math.sqrt(2)))

    def gelu_grad(z):
        return (0.5 * (1 + _erf(xp, z / math.sqrt(2)))
                + z * xp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))

    table = {
        "linear": (lambda z: z, ones),
        "tanh": (xp.tanh, tanh_grad),
        "sigmoid": (sigmoid, sigmoid_grad),
        "hard_sigmoid": (
            lambda z: xp.where(z <= -3, zeros(z), xp.where(z >= 3, ones(z), (z + 3) / 6)),
            lambda z: where((z > -3) & (z < 3), ones(z) / 6, zeros(z))),
        "relu": (lambda z: where(z > 0, z, zeros(z)), lambda z: where(z > 0, ones(z), zeros(z))),
        "softsign": (lambda z: z / (1 + xp.abs(z)), lambda z: 1 / (1 + xp.abs(z)) ** 2),
        "elu": (lambda z: where(z > 0, z, xp.expm1(neg_part(z))),
                lambda z: where(z > 0, ones(z), xp.exp(neg_part(z)))),
        "selu": (lambda z: SELU_SCALE * where(z > 0, z, SELU_ALPHA * xp.expm1(neg_part(z))),
                 lambda z: SELU_SCALE * where(z > 0, ones(z), SELU_ALPHA * xp.exp(neg_part(z)))),
        "gelu": (gelu, gelu_grad),
        "swish": (lambda z: z * sigmoid(z),
                  lambda z: sigmoid(z) * (1 + z * (1 - sigmoid(z)))),
    }
    return table[name]


class LSTMProblem:
    """One LSTM call: its arrays and options, as every backend takes them.

    Parameters
    ----------
    x : array
        (B, T, I), or (T, B, I) when ``time_major``.
    kernel, recurrent_kernel : array
        (I, 4H) and (P, 4H).
    bias : array or None
        (4H,).
    h0, c0 : array
        (B, P) and (B, H); not modified.
    projection : array or None
        (H, P).
    mask : array of bool or None
        (B, T), or (T, B) when ``time_major``.
    recurrent_mask : array or None
        Dropout of h: (B, P) shared by the gates, or (4, B, P) one per gate.
    input_mask : array or None
        (4, B, I): one dropout mask of x per gate (a mask shared by the gates
        is applied to x by the caller).
    go_backwards : bool
        Process the steps last to first.
    activation, recurrent_activation : callable
        ``cylstm.activations`` functions, or any Python callable.
    time_major : bool
    return_sequences : bool
        Return the whole sequence (else None in its place).
    output_order : {"processing", "time"}
        Where the output of processing step s goes: position s (Keras
        ``go_backwards``) or the time index it came from (PyTorch, ONNX).
    training : bool
        Keep what ``lstm_backward`` needs.
    workspace : object, optional
        A backend's scratch buffers kept by the caller between calls.
    """

    __slots__ = ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0", "projection", "mask",
                 "recurrent_mask", "input_mask", "go_backwards", "activation",
                 "recurrent_activation", "time_major", "return_sequences", "output_order",
                 "training", "workspace")

    def __init__(self, x: Any, kernel: Any, recurrent_kernel: Any, bias: Any, h0: Any, c0: Any,
                 *, projection: Any = None, mask: Any = None, recurrent_mask: Any = None,
                 input_mask: Any = None, go_backwards: bool = False,
                 activation: Any = None, recurrent_activation: Any = None,
                 time_major: bool = False, return_sequences: bool = True,
                 output_order: str = "processing", training: bool = False,
                 workspace: Any = None) -> None:
        self.x = x
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self.bias = bias
        self.h0 = h0
        self.c0 = c0
        self.projection = projection
        self.mask = mask
        self.recurrent_mask = recurrent_mask
        self.input_mask = input_mask
        self.go_backwards = go_backwards
        self.activation = _activations.tanh if activation is None else activation
        self.recurrent_activation = (_activations.sigmoid if recurrent_activation is None
                                     else recurrent_activation)
        self.time_major = time_major
        self.return_sequences = return_sequences
        self.output_order = output_order
        self.training = training
        self.workspace = workspace


class LSTMGrads:
    """The gradients flowing into a forward pass's outputs (any may be None: zero).

    Parameters
    ----------
    d_seq : array or None
        Of the sequence output, in its layout and order.
    d_last : array or None
        Of the last output (B, P).
    d_h, d_c : array or None
        Of the final states (B, P) and (B, H).
    need_dx : bool, default True
        Whether to compute the input gradient.
    """

    __slots__ = ("d_seq", "d_last", "d_h", "d_c", "need_dx")

    def __init__(self, d_seq: Any = None, d_last: Any = None, d_h: Any = None,
                 d_c: Any = None, need_dx: bool = True) -> None:
        self.d_seq = d_seq
        self.d_last = d_last
        self.d_h = d_h
        self.d_c = d_c
        self.need_dx = need_dx


class ReferenceCache:
    """What the reference backward pass needs from a training forward pass."""

    __slots__ = ("steps", "x", "kernel", "recurrent_kernel", "projection", "recurrent_mask",
                 "input_mask", "act", "rec", "time_major", "go_backwards", "processing_order",
                 "dtype", "used", "backend")

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)
        self.used = False


class Backend:
    """The reference backend: the LSTM contract in array-API formulas on ``xp``.

    Parameters
    ----------
    xp : module, default numpy
        The array namespace arrays live in.
    name : str, default "numpy"
        The name it is registered under.
    """

    def __init__(self, xp: Any = np, name: str = "numpy") -> None:
        self.xp = xp
        self.name = name
        # ``a ** b`` elementwise: the array API's ``pow`` (NumPy < 2 calls it ``power``).
        self.pow = getattr(xp, "pow", None) or xp.power
        # NumPy < 2 has no numpy.bool (the array API's name).
        self._bool = np.bool_ if xp is np else xp.bool

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- arrays ------------------------------------------------------------------------
    def owns(self, array: Any) -> bool:
        """Whether ``array`` belongs to this backend's namespace."""
        if self.xp is np:
            return isinstance(array, (np.ndarray, np.generic))
        ns = getattr(array, "__array_namespace__", None)
        return ns is not None and ns() is self.xp

    def dtype(self, dtype: Any) -> Any:
        """This namespace's dtype for ``dtype`` (a name such as ``"float32"``, a
        NumPy dtype, or already one of the namespace's)."""
        if self.xp is np:
            return np.dtype(dtype)
        try:
            name = np.dtype(dtype).name
        except TypeError:
            return dtype          # already the namespace's own dtype object
        return getattr(self.xp, name)

    def asarray(self, array: Any, dtype: Any = None) -> Any:
        """``array`` in this backend's namespace (no copy when it already is);
        a NumPy array, a Python sequence or another namespace's array (through
        NumPy) are converted."""
        if not self.owns(array) and getattr(array, "__array_namespace__", None) is not None \
                and not isinstance(array, np.ndarray):
            array = np.from_dlpack(array)      # another namespace's array
        if dtype is None:
            return self.xp.asarray(array)
        return self.xp.asarray(array, dtype=self.dtype(dtype))

    def zeros(self, shape: Any, dtype: Any) -> Any:
        """A new zero array."""
        return self.xp.zeros(tuple(shape), dtype=self.dtype(dtype))

    def to_numpy(self, array: Any) -> np.ndarray:
        """A NumPy copy (or view) of ``array``."""
        if array is None or isinstance(array, (np.ndarray, np.generic)):
            return array
        return np.from_dlpack(array)

    def astype(self, array: Any, dtype: Any) -> Any:
        """``array`` with ``dtype`` (itself when it already has it)."""
        if self.xp is np:
            return array.astype(dtype, copy=False)
        dtype = self.dtype(dtype)
        return array if array.dtype == dtype else self._astype(array, dtype)

    def empty(self, shape: Any, dtype: Any) -> Any:
        """A new array whose values are to be written."""
        return self.xp.empty(tuple(shape), dtype=self.dtype(dtype))

    def concat(self, arrays: Any, axis: int = 0) -> Any:
        """The arrays joined along ``axis``."""
        return self._concat(arrays, axis)

    def copy(self, array: Any) -> Any:
        """A new array with ``array``'s values."""
        if self.xp is np:
            return np.array(array, copy=True)
        return self.xp.asarray(array, copy=True)

    def copy_into(self, target: Any, value: Any) -> None:
        """Write ``value`` (any real array-like, cast to ``target``'s dtype) into
        ``target`` in place."""
        if isinstance(target, np.ndarray):
            np.copyto(target, np.asarray(value), casting="unsafe")
        else:
            target[...] = self.asarray(np.asarray(value), target.dtype)

    def is_floating(self, array: Any) -> bool:
        """Whether ``array`` is a real floating array of this backend."""
        if self.xp is np:
            return isinstance(array, np.ndarray) and array.dtype.kind == "f"
        return self.owns(array) and bool(self.xp.isdtype(array.dtype, "real floating"))

    def scalar(self, value: float, dtype: Any) -> Any:
        """``value`` as a scalar of ``dtype`` that combines with this backend's
        arrays without changing their dtype (a NumPy scalar on NumPy, else a
        0-d array)."""
        return self.scalar_maker(dtype)(value)

    def scalar_maker(self, dtype: Any) -> Callable[[float], Any]:
        """A function making ``scalar(value, dtype)`` (on NumPy the scalar type
        itself, a C-level call: the optimizers make several per variable and step)."""
        if self.xp is np:
            return dtype.type if isinstance(dtype, np.dtype) else np.dtype(dtype).type
        xp, dtype = self.xp, self.dtype(dtype)
        return lambda value: xp.asarray(value, dtype=dtype)

    def gradient_like(self, grad: Any, variable: Any) -> Any:
        """``grad`` as an array of this backend with ``variable``'s dtype (no
        copy when it already is one)."""
        if self.xp is np:
            return np.asarray(grad).astype(variable.dtype, copy=False)
        grad = self.asarray(grad)
        return grad if grad.dtype == variable.dtype else self._astype(grad, variable.dtype)

    def sum_of_squares(self, array: Any) -> float:
        """The sum of the squares of ``array``'s elements, in float64, as a float."""
        if self.xp is np:
            return float(np.sum(np.square(array, dtype=np.float64)))
        xp = self.xp
        return float(xp.sum(xp.square(self._astype(array, xp.float64))))

    def _astype(self, a, dtype):
        fn = getattr(self.xp, "astype", None)
        return fn(a, dtype) if fn is not None else a.astype(dtype)

    def _concat(self, arrays, axis):
        fn = getattr(self.xp, "concat", None) or self.xp.concatenate
        return fn(arrays, axis=axis)

    def _swap01(self, a):
        """(T, B, ...) <-> (B, T, ...)."""
        axes = (1, 0) + tuple(range(2, a.ndim))
        fn = getattr(self.xp, "permute_dims", None)
        return fn(a, axes) if fn is not None else self.xp.transpose(a, axes)

    def _activation(self, activation):
        """(f, f' or None) of a cylstm activation or a Python callable."""
        name = getattr(activation, "cylstm_name", None)
        try:
            return xp_activation(name, self.xp)
        except KeyError:
            return activation, None

    def workspace(self) -> Any:
        """Scratch a layer keeps between calls (None: the reference needs none)."""
        return None

    # -- the LSTM ----------------------------------------------------------------------
    def lstm_forward_ext(self, *args: Any, **kwargs: Any) -> Any:
        """ONNX's full LSTM cell (peepholes, clip, three activations): the CPU
        backend's alone for now.

        Raises
        ------
        NotImplementedError
        """
        raise NotImplementedError(f"ONNX's extended LSTM cell (peepholes, clip, input_forget, "
                                  f"a separate cell activation) runs on the 'cpu' backend "
                                  f"only, not on {self.name!r}.")

    def lstm_forward(self, problem: LSTMProblem) -> Tuple[Tuple[Any, Any, Any, Any], Any]:
        """Run an LSTM.

        Parameters
        ----------
        problem : LSTMProblem

        Returns
        -------
        ((sequence or None, last_output, h, c), cache or None)
            The sequence has the layout of x; the cache (training only) is
            for ``lstm_backward`` of the backend in its ``backend`` attribute.
        """
        xp = self.xp
        p = problem
        # Arrays of another namespace (NumPy inputs of a layer moved here with
        # layer.to) become this backend's; its own pass through unchanged.
        own = self.asarray
        x = own(p.x)
        x = x if p.time_major else self._swap01(x)     # (T, B, I) from here on
        dtype = x.dtype
        T, B = x.shape[0], x.shape[1]
        H = p.c0.shape[1]
        P = p.h0.shape[1]
        W, U = own(p.kernel), own(p.recurrent_kernel)
        Wr = None if p.projection is None else own(p.projection)
        bias = xp.zeros((4 * H,), dtype=dtype) if p.bias is None else own(p.bias)
        mask = None
        if p.mask is not None:
            mask = own(p.mask)
            mask = self._astype(mask.T if p.time_major else mask, self._bool)   # (B, T)
        rec_mask = (None if p.recurrent_mask is None
                    else self._astype(own(p.recurrent_mask), dtype))
        in_mask = None if p.input_mask is None else self._astype(own(p.input_mask), dtype)
        act, act_grad = self._activation(p.activation)
        rec, rec_grad = self._activation(p.recurrent_activation)
        cols = [slice(g * H, (g + 1) * H) for g in range(4)]
        per_gate = rec_mask is not None and rec_mask.ndim == 3
        if in_mask is None:
            xw = x @ W + bias
        else:
            xw = self._concat([(x * in_mask[g, ...]) @ W[:, cols[g]] for g in range(4)],
                              axis=2) + bias
        h = xp.asarray(own(p.h0), copy=True) if self.xp is not np else np.array(p.h0, copy=True)
        c = xp.asarray(own(p.c0), copy=True) if self.xp is not np else np.array(p.c0, copy=True)
        prev_out = xp.zeros((B, P), dtype=dtype)
        outputs: List[Any] = []
        steps: List[Dict[str, Any]] = []
        for s in range(T):
            t = T - 1 - s if p.go_backwards else s
            if per_gate:
                hin = h    # each gate block multiplies its own dropped copy
                z = xw[t, ...] + self._concat([(h * rec_mask[g, ...]) @ U[:, cols[g]]
                                               for g in range(4)], axis=1)
            else:
                hin = h if rec_mask is None else h * rec_mask
                z = xw[t, ...] + hin @ U
            i = rec(z[:, :H])
            f = rec(z[:, H:2 * H])
            g = act(z[:, 2 * H:3 * H])
            o = rec(z[:, 3 * H:])
            c_new = f * c + i * g
            m = o * act(c_new)
            h_new = m if Wr is None else m @ Wr
            keep = (xp.ones((B, 1), dtype=self._bool) if mask is None
                    else mask[:, t:t + 1])
            if p.training:
                steps.append(dict(t=t, z=z, hin=hin, c_prev=c, c=c_new, m=m, keep=keep))
            h = xp.where(keep, h_new, h)
            c = xp.where(keep, c_new, c)
            prev_out = xp.where(keep, h, prev_out)
            if p.return_sequences:
                outputs.append(prev_out)
        seq = None
        if p.return_sequences:
            if p.go_backwards and p.output_order != "processing":
                outputs = outputs[::-1]
            seq = (xp.stack(outputs, axis=0) if outputs
                   else xp.zeros((0, B, P), dtype=dtype))
            if not p.time_major:
                seq = self._swap01(seq)
        cache = None
        if p.training:
            cache = ReferenceCache(
                steps=steps, x=x, kernel=W, recurrent_kernel=U, projection=Wr,
                recurrent_mask=rec_mask, input_mask=in_mask, act=(act, act_grad),
                rec=(rec, rec_grad), time_major=p.time_major, go_backwards=p.go_backwards,
                processing_order=p.output_order == "processing", dtype=dtype, backend=self)
        return (seq, prev_out, h, c), cache

    def lstm_backward(self, cache: Any, grads: LSTMGrads) -> Dict[str, Any]:
        """Gradients of the forward pass that made ``cache`` (once per cache).

        Parameters
        ----------
        cache : object
            From ``lstm_forward(problem)`` with ``training=True``.
        grads : LSTMGrads

        Returns
        -------
        dict
            dx (layout of x, or None without ``need_dx``), dh0, dc0, kernel,
            recurrent_kernel, bias, projection (None if absent).

        Raises
        ------
        RuntimeError
            On a second call with the same cache.
        TypeError
            For a Python-callable activation (it has no derivative).
        """
        if cache.used:
            raise RuntimeError("backprop was already called for this forward pass; "
                               "run forward_train again to backpropagate again.")
        cache.used = True
        xp = self.xp
        act, act_grad = cache.act
        rec, rec_grad = cache.rec
        if act_grad is None or rec_grad is None:
            raise TypeError("Gradients need a built-in activation; a Python callable has no "
                            "derivative.")
        x, W, U, Wr = cache.x, cache.kernel, cache.recurrent_kernel, cache.projection
        rec_mask, in_mask = cache.recurrent_mask, cache.input_mask
        dt = cache.dtype
        T, B, I = x.shape
        H = U.shape[1] // 4
        P = U.shape[0]
        cols = [slice(g * H, (g + 1) * H) for g in range(4)]

        def given(a, shape):
            return xp.zeros(shape, dtype=dt) if a is None else self._astype(xp.asarray(a), dt)

        dh = given(grads.d_h, (B, P))
        dc = given(grads.d_c, (B, H))
        dprev = given(grads.d_last, (B, P))
        d_seq = None
        if grads.d_seq is not None:
            d_seq = xp.asarray(grads.d_seq)
            if not cache.time_major:
                d_seq = self._swap01(d_seq)
            if cache.go_backwards and not cache.processing_order:
                d_seq = xp.flip(d_seq, axis=0)
        dz_steps: List[Any] = [None] * T
        dU = xp.zeros(U.shape, dtype=dt)
        dWr = None if Wr is None else xp.zeros(Wr.shape, dtype=dt)
        per_gate = rec_mask is not None and rec_mask.ndim == 3
        zero = xp.zeros((), dtype=dt)
        for s in range(T - 1, -1, -1):
            st = cache.steps[s]
            keep = st["keep"]
            if d_seq is not None:
                dprev = dprev + d_seq[s, ...]
            dh = dh + xp.where(keep, dprev, zero)
            dprev = xp.where(keep, zero, dprev)
            z = st["z"]
            if Wr is not None:
                dWr = dWr + st["m"].T @ xp.where(keep, dh, zero)
                dm = dh @ Wr.T
            else:
                dm = dh
            zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            i, f, g, o = rec(zi), rec(zf), act(zg), rec(zo)
            dcn = dc + dm * o * act_grad(st["c"])
            dz = self._concat([dcn * g * rec_grad(zi), dcn * st["c_prev"] * rec_grad(zf),
                               dcn * i * act_grad(zg), dm * act(st["c"]) * rec_grad(zo)],
                              axis=1)
            dz = xp.where(keep, dz, zero)
            dz_steps[st["t"]] = dz
            if per_gate:
                dh_prev = xp.zeros(dh.shape, dtype=dt)
                parts = []
                for k in range(4):
                    parts.append((st["hin"] * rec_mask[k, ...]).T @ dz[:, cols[k]])
                    dh_prev = dh_prev + (dz[:, cols[k]] @ U[:, cols[k]].T) * rec_mask[k, ...]
                dU = dU + self._concat(parts, axis=1)
            else:
                dU = dU + st["hin"].T @ dz
                dh_prev = dz @ U.T
                if rec_mask is not None:
                    dh_prev = dh_prev * rec_mask
            dh = xp.where(keep, dh_prev, dh)
            dc = xp.where(keep, dcn * f, dc)
        dz_all = (xp.stack(dz_steps, axis=0) if T else xp.zeros((0, B, 4 * H), dtype=dt))
        X = xp.reshape(x, (T * B, I))
        Z = xp.reshape(dz_all, (T * B, 4 * H))
        if in_mask is None:
            dW = X.T @ Z
            dx = dz_all @ W.T if grads.need_dx else None
        else:
            dW = self._concat([xp.reshape(x * in_mask[k, ...], (T * B, I)).T @ Z[:, cols[k]]
                               for k in range(4)], axis=1)
            dx = None
            if grads.need_dx:
                dx = xp.zeros(x.shape, dtype=dt)
                for k in range(4):
                    dx = dx + (dz_all[..., cols[k]] @ W[:, cols[k]].T) * in_mask[k, ...]
        if dx is not None and not cache.time_major:
            dx = self._swap01(dx)
        db = xp.sum(Z, axis=0)
        return dict(dx=dx, dh0=dh, dc0=dc, kernel=dW, recurrent_kernel=dU, bias=db,
                    projection=dWr)

    def stepper(self, kernel: Any, recurrent_kernel: Any, bias: Any, projection: Any,
                activation: Any, recurrent_activation: Any, batch: int) -> "ReferenceStepper":
        """A one-timestep runner for streaming inference with these weights and
        batch size (used in place: weight updates show in the next step).

        Returns
        -------
        object
            With ``batch``, ``step(x, h, c)`` and ``sequence_of_one(x, h, c,
            time_major, return_sequences)``, both None for arguments that do
            not fit (see ``ReferenceStepper``).
        """
        return ReferenceStepper(self, kernel, recurrent_kernel, bias, projection, activation,
                                recurrent_activation, batch)


class ReferenceStepper:
    """One LSTM timestep on a backend's namespace: the twin of the compiled
    ``StepKernel`` (``cylstm/_kernels/lstm_step.pyx``), with its contract.

    ``step`` and ``sequence_of_one`` return None when an argument is not an
    array of this backend of the expected shape and dtype (C-contiguous
    ``numpy.ndarray`` itself on NumPy), so that the caller converts (or
    raises) and tries again. The weights are used in place.
    """

    def __init__(self, backend: Backend, kernel: Any, recurrent_kernel: Any, bias: Any,
                 projection: Any, activation: Any, recurrent_activation: Any,
                 batch: int) -> None:
        self.backend = backend
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self.bias = bias
        self.projection = projection
        self.act = backend._activation(activation)[0]
        self.rec = backend._activation(recurrent_activation)[0]
        self.batch = batch
        self.input_dim = kernel.shape[0]
        self.units = kernel.shape[1] // 4
        self.output_dim = recurrent_kernel.shape[0]

    def _fits(self, a: Any, shape: Tuple[int, ...]) -> bool:
        if self.backend.xp is np:
            return (type(a) is np.ndarray and a.shape == shape and a.dtype == self.kernel.dtype
                    and a.flags.c_contiguous)
        return self.backend.owns(a) and tuple(a.shape) == shape and a.dtype == self.kernel.dtype

    def _run(self, x: Any, h: Any, c: Any) -> Tuple[Any, Any]:
        H = self.units
        z = x @ self.kernel
        if self.bias is not None:
            z = z + self.bias
        z = z + h @ self.recurrent_kernel
        i = self.rec(z[:, :H])
        f = self.rec(z[:, H:2 * H])
        g = self.act(z[:, 2 * H:3 * H])
        o = self.rec(z[:, 3 * H:])
        c_new = f * c + i * g
        m = o * self.act(c_new)
        h_new = m if self.projection is None else m @ self.projection
        dtype = self.kernel.dtype
        if h_new.dtype != dtype or c_new.dtype != dtype:   # a callable may change it
            h_new, c_new = self.backend._astype(h_new, dtype), self.backend._astype(c_new, dtype)
        return h_new, c_new

    def step(self, x: Any, h: Any, c: Any) -> Optional[Tuple[Any, Any]]:
        """``(h_new, c_new)`` from x (batch, input_dim), h (batch, output_dim),
        c (batch, units); None if an argument does not fit."""
        B = self.batch
        if not (self._fits(x, (B, self.input_dim)) and self._fits(h, (B, self.output_dim))
                and self._fits(c, (B, self.units))):
            return None
        return self._run(x, h, c)

    def sequence_of_one(self, x: Any, h: Any, c: Any, time_major: bool,
                        return_sequences: bool) -> Optional[Tuple[Any, Any, Any]]:
        """A whole layer call on one timestep: x (batch, 1, I), or (1, batch, I)
        when time-major; ``(output, h_new, c_new)`` with the output (batch, 1,
        P) / (1, batch, P) when ``return_sequences``, else h_new. None if an
        argument does not fit."""
        B = self.batch
        one = (1, B, self.input_dim) if time_major else (B, 1, self.input_dim)
        if not (self._fits(x, one) and self._fits(h, (B, self.output_dim))
                and self._fits(c, (B, self.units))):
            return None
        h_new, c_new = self._run(self.backend.xp.reshape(x, (B, self.input_dim)), h, c)
        if not return_sequences:
            return h_new, h_new, c_new
        shape = (1, B, self.output_dim) if time_major else (B, 1, self.output_dim)
        return self.backend.xp.reshape(h_new, shape), h_new, c_new
