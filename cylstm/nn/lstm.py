"""PyTorch-style LSTM: ``cylstm.nn.LSTM`` and ``cylstm.nn.LSTMCell``.

Same constructor arguments, call, shapes, weight names and gate order
(i, f, g, o) as ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``, on the compiled
kernels (through ``cylstm.backends``). This file holds only PyTorch semantics.

Weight storage (the "flattened" layout, derived at no cost):
- every weight matrix is stored once, in the kernel's layout, and the
  torch-named attribute is a transposed *view* of it: ``weight_ih_l0`` (4H, I)
  is ``kernel.T`` with kernel (I, 4H) C-contiguous; likewise ``weight_hh_l0``
  (4H, P) and ``weight_hr_l0`` (P, H). Loading a state dict, assigning an
  attribute (``lstm.weight_ih_l0 = w`` copies ``w`` in) and in-place edits
  (``lstm.weight_ih_l0[...] *= 0.5``, an optimizer step) all write straight
  into what the kernels read, so nothing is ever re-derived or stale;
- ``bias_ih`` and ``bias_hh`` stay separate (torch's state dict) and the kernel
  gets their sum, an O(4H) add per layer and direction per call -- the
  "cheap check" that keeps in-place bias edits exact. It costs about 0.6 us
  (about 4% of a batch-1 ``LSTMCell`` step of 32 -> 64 units, nothing
  measurable on sequences).
``flatten_parameters()`` exists for torch code that calls it; it does nothing.

Choices where torch and NumPy differ (also in docs/interop.md):
- inputs of any real dtype are cast to the module's dtype (torch raises on a
  dtype mismatch); errors torch raises as RuntimeError (input size, hx
  shapes) are ValueError here, with torch's messages;
- ``train()``/``eval()`` as torch; modules start in training mode, and the
  inter-layer dropout (``dropout > 0``, ``num_layers > 1``) acts in training
  mode on calls and on ``forward_train`` alike, drawn from the module's
  ``numpy.random.Generator`` (``seed=``), which also draws the initial weights;
- ``state_dict()`` returns the module's own arrays (views that share memory,
  as torch's tensors do): copy them for a snapshot.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import collections
import collections.abc
import numbers
import os
import warnings

import numpy as np

from .. import _pickling
from .. import activations as _activations
from ..backends import (LSTMGrads, LSTMProblem, backend_copy, backend_named, forced_backend,
                        get_backend, move_array, owning_backend)
from .._call_plan import ModuleCallPlan
from .._threads import GRADIENT_LOCK
from .._validation import (as_float_array, check_input_sizes, check_weight_sizes,
                           standardize_dtype)
from .._loading import file_errors
from .._npz import NpzReader
from .._typing import Array, ArrayLike, DTypeLike
from ..layers.base import (_backend_for_to, deferred_weights, reserve_weights,
                           weights_deferred)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["LSTM", "LSTMCell"]

IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def to_numpy(value: Any) -> Array:
    """A NumPy array from an array-like or a torch tensor (duck-typed: no torch import)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        t = value.detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            return t.float().numpy()
    return np.asarray(value)


def _module_dtype(dtype):
    if dtype is None:
        return np.dtype(np.float32)
    text = str(dtype)
    if text.startswith("torch."):  # torch.float32 / torch.float64
        dtype = text[len("torch."):]
    return np.dtype(standardize_dtype(dtype))


def _check_size(value, argument, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} should be of type int, got: {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{argument} must be greater than zero")
    return int(value)


def _check_flag(value, argument):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} should be of type bool, got: {type(value).__name__}")
    return bool(value)


class _Slot:
    """The weights of one (layer, direction) in the kernel's layout."""

    __slots__ = ("kernel", "recurrent", "projection", "bias_ih", "bias_hh",
                 "g_kernel", "g_recurrent", "g_projection", "g_bias_ih", "g_bias_hh")

    def __init__(self, input_size: int, hidden_size: int, proj_size: int, bias: bool,
                 dtype: DTypeLike) -> None:
        G = 4 * hidden_size
        P = proj_size or hidden_size
        zeros = owning_backend().zeros     # the default backend ("cpu"); to() moves them
        self.kernel = zeros((input_size, G), dtype)
        self.recurrent = zeros((P, G), dtype)
        self.projection = zeros((hidden_size, P), dtype) if proj_size else None
        self.bias_ih = zeros((G,), dtype) if bias else None
        self.bias_hh = zeros((G,), dtype) if bias else None
        self.g_kernel = zeros(self.kernel.shape, dtype)
        self.g_recurrent = zeros(self.recurrent.shape, dtype)
        self.g_projection = None if self.projection is None else zeros((hidden_size, P), dtype)
        self.g_bias_ih = None if self.bias_ih is None else zeros((G,), dtype)
        self.g_bias_hh = None if self.bias_hh is None else zeros((G,), dtype)

    def move(self, backend):
        """Move every weight and gradient to ``backend`` (``module.to``)."""
        for n in self.__slots__:
            setattr(self, n, move_array(getattr(self, n), backend))

    def bias(self):
        """The kernel's single bias: bias_ih + bias_hh (None without biases)."""
        if self.bias_ih is None:
            return None
        return self.bias_ih + self.bias_hh

    def named(self, suffix):
        """(torch name, weight view, gradient view) in torch's order."""
        out = [("weight_ih" + suffix, self.kernel.T, self.g_kernel.T),
               ("weight_hh" + suffix, self.recurrent.T, self.g_recurrent.T)]
        if self.bias_ih is not None:
            out += [("bias_ih" + suffix, self.bias_ih, self.g_bias_ih),
                    ("bias_hh" + suffix, self.bias_hh, self.g_bias_hh)]
        if self.projection is not None:
            out.append(("weight_hr" + suffix, self.projection.T, self.g_projection.T))
        return out

    # Pickling: the weights, and the gradients only when some are non-zero.
    def __getstate__(self):
        grads = ("g_kernel", "g_recurrent", "g_projection", "g_bias_ih", "g_bias_hh")
        keep = not _pickling.all_zero(getattr(self, n) for n in grads)
        return {n: getattr(self, n) for n in self.__slots__ if keep or n not in grads}

    def __setstate__(self, state):
        for n in self.__slots__:
            if n in state:
                # into arrays of the backend's making, as __init__'s (backend_copy)
                setattr(self, n, backend_copy(state[n]))
            else:  # a zero gradient, shaped as its weight
                weight = state[{"g_kernel": "kernel", "g_recurrent": "recurrent"}.get(
                    n, n[2:])]
                setattr(self, n, None if weight is None
                        else owning_backend(weight).zeros(weight.shape, weight.dtype))

    def accumulate(self, g):
        with GRADIENT_LOCK:   # threads training one module add up, none lost
            self.g_kernel += g["kernel"]
            self.g_recurrent += g["recurrent_kernel"]
            if self.bias_ih is not None:
                # z = W x + b_ih + U h + b_hh: both biases get the gate gradient.
                self.g_bias_ih += g["bias"]
                self.g_bias_hh += g["bias"]
            if self.projection is not None:
                self.g_projection += g["projection"]


class _Module:
    """What ``cylstm.nn.LSTM`` and ``cylstm.nn.LSTMCell`` share with
    ``torch.nn.Module``: torch-named weights (``module.weight_ih_l0``, ...)
    over storage in the kernel's layout, state dicts, gradients
    (``module.grads``, under the same names), ``train``/``eval``.
    ``module(input, hx)`` runs ``forward``.
    """

    _module_name = "Module"

    def _register(self, slots_and_suffixes):
        params = collections.OrderedDict()
        grads = collections.OrderedDict()
        for slot, suffix in slots_and_suffixes:
            for name, value, grad in slot.named(suffix):
                params[name] = value
                grads[name] = grad
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "grads", grads)

    # -- weights as attributes ------------------------------------------------
    def __getattr__(self, name: str) -> Array:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            self._copy_into(name, to_numpy(value))
        else:
            object.__setattr__(self, name, value)

    def _copy_into(self, name, value):
        target = self._params[name]
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(
                f"size mismatch for {name}: copying a param with shape {value.shape} from "
                f"checkpoint, the shape in current model is {target.shape}.")
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {value.dtype}.")
        np.copyto(target, value, casting="unsafe")

    # -- backends ----------------------------------------------------------------
    def _backend_for(self, *arrays: Any) -> Any:
        """The backend a call runs on: the one ``use_backend`` forces, else the
        one ``to(name)`` named, else the arrays' own (``get_backend``)."""
        name = self.__dict__.get("_backend_name")
        if name is None:
            return get_backend(*arrays)
        return forced_backend() or backend_named(name)

    def to(self, device: str) -> Self:
        """Move the weights and gradients to the registered backend ``device``,
        as torch's ``module.to(device)`` (no dtype argument).

        Parameters
        ----------
        device : str
            A registered backend name (``cylstm.backends.registered_backends()``):
            ``"cpu"``, ``"numpy"``, ``"array_api_strict"``, ...

        Returns
        -------
        module
            The module itself.

        Raises
        ------
        ValueError
            For a name that is not registered.
        """
        target = _backend_for_to(device)
        for slot, _ in self._slots_and_suffixes():
            slot.move(target)
        object.__setattr__(self, "_backend_name", target.name)
        self._register(self._slots_and_suffixes())   # torch-named views of the moved arrays
        self._moved(target)
        return self

    def _moved(self, backend):
        """Hook: move what else the module keeps (caches) to ``backend``."""

    def flatten_parameters(self) -> None:
        """Kept for torch code that calls it. The weights already live in the
        kernel layout (torch names are views of it), so there is nothing to do."""

    # -- torch.nn.Module surface ---------------------------------------------
    def parameters(self) -> Iterator[Array]:
        """The weight arrays in torch's order (the module's own arrays).

        Returns
        -------
        iterator of numpy.ndarray
        """
        return iter(list(self._params.values()))

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Array]]:
        """``(name, array)`` pairs in torch's order (the arrays are the module's own).

        Parameters
        ----------
        prefix : str, default ""
            Put in front of every name.

        Returns
        -------
        iterator of (str, numpy.ndarray)
        """
        return iter([(prefix + n, v) for n, v in self._params.items()])

    def state_dict(self, prefix: str = "") -> Dict[str, Array]:
        """The weights under torch's names, in torch's order.

        The arrays are the module's own (they share memory, as torch's
        tensors do); ``{k: v.copy() for k, v in sd.items()}`` for a snapshot.

        Parameters
        ----------
        prefix : str, default ""
            Put in front of every key.

        Returns
        -------
        collections.OrderedDict of str to numpy.ndarray
        """
        return collections.OrderedDict((prefix + n, v) for n, v in self._params.items())

    def load_state_dict(self, state_dict: Mapping[str, Any],
                        strict: bool = True) -> IncompatibleKeys:
        """Copy weights in from a mapping of torch names to arrays.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            NumPy arrays or torch tensors, any float dtype (cast to the module's).
        strict : bool, default True
            As torch: missing or unexpected keys raise ``ValueError`` (torch:
            ``RuntimeError``); with ``strict=False`` they are only reported.

        Returns
        -------
        IncompatibleKeys
            The named tuple ``(missing_keys, unexpected_keys)``.

        Raises
        ------
        ValueError
            For a shape mismatch (always) or, with ``strict``, missing or
            unexpected keys. No weight is written when it raises.
        TypeError
            If ``state_dict`` is not a mapping, or an array is not real.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError("load_state_dict expects a mapping of parameter names to "
                            f"arrays, got {type(state_dict).__name__}.")
        missing = [n for n in self._params if n not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("Missing key(s) in state_dict: "
                             + ", ".join(f'"{k}"' for k in missing) + ".")
            if unexpected:
                parts.append("Unexpected key(s) in state_dict: "
                             + ", ".join(f'"{k}"' for k in unexpected) + ".")
            raise ValueError(f"Error(s) in loading state_dict for {self._module_name}:\n\t"
                             + "\n\t".join(parts))
        arrays = {n: to_numpy(state_dict[n]) for n in self._params if n in state_dict}
        for n, value in arrays.items():  # check every shape before writing any
            if value.shape != self._params[n].shape:
                raise ValueError(
                    f"Error(s) in loading state_dict for {self._module_name}: size mismatch "
                    f"for {n}: copying a param with shape {value.shape} from checkpoint, "
                    f"the shape in current model is {self._params[n].shape}.")
        for n, value in arrays.items():
            self._copy_into(n, value)
        return IncompatibleKeys(missing, unexpected)

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero ``module.grads`` in place.

        Parameters
        ----------
        set_to_none : bool, default False
            Accepted for torch's signature; the gradients are always zeroed in place.
        """
        for g in self.grads.values():
            g.fill(0)

    def train(self, mode: bool = True) -> Self:
        """Set training mode (dropout between layers acts in ``forward``).

        Parameters
        ----------
        mode : bool, default True
            True for training, False for evaluation.

        Returns
        -------
        module
            The module itself.
        """
        self.training = bool(mode)
        return self

    def eval(self) -> Self:
        """Set evaluation mode (no dropout); the same as ``train(False)``.

        Returns
        -------
        module
            The module itself.
        """
        return self.train(False)

    def reset_parameters(self) -> None:
        """Re-draw the weights as torch does: every weight and bias ~ U(-k, k),
        k = 1/sqrt(hidden_size)."""
        k = 1.0 / np.sqrt(self.hidden_size)
        for value in self._params.values():
            value[...] = self._rng.uniform(-k, k, size=value.shape)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(input, hx=None)``: runs ``forward``."""
        return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self._module_name}({self.extra_repr()})"

    # -- pickling (for shipping to workers; see cylstm/_pickling.py) ---------
    def __getstate__(self):
        # The torch-named weights and gradients are views of the slots'
        # arrays: the slots travel, the views are made again on arrival.
        state = _pickling.without_scratch(self.__dict__)
        del state["_params"], state["grads"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(_pickling.rebuild_scratch(state))
        self._register(self._slots_and_suffixes())


def _pair(hx, argument="hx"):
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise ValueError(f"`{argument}` must be a tuple (h_0, c_0) of two arrays; "
                         f"got {type(hx).__name__}.")
    return hx


class LSTM(_Module):
    """``torch.nn.LSTM`` on cylstm's kernels.

    ``output, (h_n, c_n) = lstm(input, hx=None)`` with input (L, N, H_in)
    ((N, L, H_in) with ``batch_first``) or unbatched (L, H_in); output
    (L, N, D*H_out); h_n (D*num_layers, N, H_out); c_n (D*num_layers, N,
    hidden_size), with D = 2 if bidirectional, H_out = proj_size or
    hidden_size. Weights ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}`` (and ``_reverse``),
    gates i, f, g, o, so ``lstm.load_state_dict(torch_lstm.state_dict())``
    gives torch's outputs.

    Parameters
    ----------
    input_size : int
        The number of input features.
    hidden_size : int
        The size of the cell state (and of h without a projection).
    num_layers : int, default 1
        Stacked layers.
    bias : bool, default True
        Whether the layers have ``bias_ih``/``bias_hh``.
    batch_first : bool, default False
        Input and output are (N, L, ...) instead of (L, N, ...).
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
        Run every layer in both directions.
    proj_size : int, default 0
        If positive, h is projected to this size (``weight_hr_l{k}``);
        must be smaller than ``hidden_size``.
    dtype : numpy dtype, default numpy.float32
        ``float32`` or ``float64``.
    seed : int, optional
        Seeds the initial weights and the dropout masks.
    device : {"cpu", None}, optional
        Any other device raises ``ValueError``.
    """

    _module_name = "LSTM"

    if TYPE_CHECKING:
        # _Module.__call__ forwards to forward(); this gives it forward's signature.
        def __call__(self, input: ArrayLike, hx: Optional[Tuple[ArrayLike, ArrayLike]] = None
                     ) -> Tuple[Array, Tuple[Array, Array]]: ...

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 dtype: DTypeLike = np.float32, seed: Optional[int] = None,
                 device: Optional[str] = None) -> None:
        if device not in (None, "cpu"):
            raise ValueError(f"cylstm.nn.LSTM runs on the CPU; got device={device!r}.")
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        self.input_size = _check_size(input_size, "input_size")
        self.hidden_size = _check_size(hidden_size, "hidden_size")
        if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) \
                or num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        self.num_layers = int(num_layers)
        self.bias = _check_flag(bias, "bias")
        self.batch_first = _check_flag(batch_first, "batch_first")
        self.bidirectional = _check_flag(bidirectional, "bidirectional")
        if isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral) \
                or proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.proj_size = int(proj_size)
        self.dropout = float(dropout)
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, "
                          "so non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=2)
        self.dtype = _module_dtype(dtype)
        self.seed = seed
        self.training = True
        self._rng = np.random.default_rng(seed)
        self._workspace = get_backend().workspace()
        # Not in torch: set by cylstm.from_onnx for ONNX nodes torch cannot express.
        self._reverse_only = False
        self._activation = _activations.tanh
        self._recurrent_activation = _activations.sigmoid

        D = 2 if self.bidirectional else 1
        P = self.proj_size or self.hidden_size
        check_weight_sizes(max(self.input_size, P * D), self.hidden_size, P, "nn.LSTM")
        G = 4 * self.hidden_size
        per_direction = [(I + P + 2 * self.bias) * G + (self.hidden_size * P if self.proj_size
                                                        else 0)
                         for I in [self.input_size] + [P * D] * (self.num_layers - 1)]
        reserve_weights(D * sum(per_direction), "nn.LSTM")
        self._slots = []
        registered = []
        for layer in range(self.num_layers):
            size_in = self.input_size if layer == 0 else P * D
            row = []
            for d in range(D):
                slot = _Slot(size_in, self.hidden_size, self.proj_size, self.bias, self.dtype)
                row.append(slot)
                registered.append((slot, f"_l{layer}" + ("_reverse" if d else "")))
            self._slots.append(row)
        self._register(registered)
        if not weights_deferred():   # a loader fills them: draw nothing
            self.reset_parameters()

    def _slots_and_suffixes(self):
        """(slot, torch name suffix) of every layer and direction, in order."""
        return [(slot, f"_l{layer}" + ("_reverse" if d else ""))
                for layer, row in enumerate(self._slots) for d, slot in enumerate(row)]

    @property
    def num_directions(self) -> int:
        """2 for a bidirectional LSTM, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self):
        return self.proj_size or self.hidden_size

    def extra_repr(self) -> str:
        """The constructor arguments that differ from the defaults, as torch prints them."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name}"
        if self._reverse_only:  # from an ONNX node; not a torch argument
            s += ", onnx_direction='reverse'"
        return s

    # -- argument checks -------------------------------------------------------
    def _prepare(self, input, hx):
        """(x in the kernel's layout, time_major, batched, h0, c0) with h0, c0 3-D."""
        check_input_sizes(input, self.hidden_size, self._out_size * self.num_directions,
                          time_major=not self.batch_first, two_d="sequence")
        x = as_float_array(input, self.dtype, "input")
        if x.ndim not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {x.ndim}D instead")
        batched = x.ndim == 3
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input.size(-1) must be equal to input_size. Expected "
                             f"{self.input_size}, got {x.shape[-1]}")
        if batched:
            time_major = not self.batch_first
        else:
            x = x[:, None]  # (L, 1, H_in): an unbatched input is one time-major row
            time_major = True
        T, B = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        if T == 0:
            raise ValueError("Expected sequence length to be larger than 0 in RNN")
        LD = self.num_layers * self.num_directions
        h_shape = (LD, B, self._out_size)
        c_shape = (LD, B, self.hidden_size)
        if hx is None:
            return x, time_major, batched, np.zeros(h_shape, self.dtype), \
                np.zeros(c_shape, self.dtype)
        h0, c0 = _pair(hx)
        h0 = as_float_array(h0, self.dtype, "hx[0]")
        c0 = as_float_array(c0, self.dtype, "hx[1]")
        if batched and (h0.ndim != 3 or c0.ndim != 3):
            raise ValueError("For batched 3-D input, hx and cx should also be 3-D but got "
                             f"({h0.ndim}-D, {c0.ndim}-D) tensors")
        if not batched:
            if h0.ndim != 2 or c0.ndim != 2:
                raise ValueError("For unbatched 2-D input, hx and cx should also be 2-D but "
                                 f"got ({h0.ndim}-D, {c0.ndim}-D) tensors")
            h0, c0 = h0[:, None], c0[:, None]
        if h0.shape != h_shape:
            raise ValueError(f"Expected hidden[0] size {h_shape}, got {list(h0.shape)}")
        if c0.shape != c_shape:
            raise ValueError(f"Expected hidden[1] size {c_shape}, got {list(c0.shape)}")
        return x, time_major, batched, np.ascontiguousarray(h0), np.ascontiguousarray(c0)

    # -- the stack of layers ---------------------------------------------------------
    def _run(self, x, time_major, h0, c0, kernel_training, mask=None, zero_masked=False):
        """All layers and directions. Returns (output, h_n, c_n, caches, dropout masks).

        ``mask`` (batch, time) or (time, batch) with time_major -- used by the
        ONNX wrapper for sequence_lens; ``zero_masked`` zeroes masked steps of
        every output sequence.
        """
        D = self.num_directions
        backend = self._backend_for(x)
        h_n = backend.empty(h0.shape, h0.dtype)
        c_n = backend.empty(c0.shape, c0.dtype)
        caches, drop_masks = [], []
        layer_input = x
        for layer, row in enumerate(self._slots):
            outs, row_caches = [], []
            for d, slot in enumerate(row):
                idx = layer * D + d
                backwards = d == 1 or self._reverse_only
                ext = self._extended_cell(idx)
                if ext is not None:
                    # ONNX's full cell (set by cylstm.from_onnx): inference only.
                    if kernel_training:
                        raise ValueError(
                            "This LSTM uses ONNX's peepholes, clip, input_forget or "
                            "activations with alpha/beta, which cylstm runs for inference "
                            "only; training it is not supported.")
                    seq, _, h, c, cache = get_backend(layer_input).lstm_forward_ext(
                        layer_input, slot.kernel, slot.recurrent, slot.bias(), h0[idx],
                        c0[idx], mask=mask, go_backwards=backwards, time_major=time_major,
                        output_order="time", workspace=self._workspace, **ext)
                else:
                    (seq, _, h, c), cache = backend.lstm_forward(LSTMProblem(
                        layer_input, slot.kernel, slot.recurrent, slot.bias(), h0[idx], c0[idx],
                        projection=slot.projection, mask=mask, go_backwards=backwards,
                        activation=self._activation,
                        recurrent_activation=self._recurrent_activation,
                        time_major=time_major, return_sequences=True, output_order="time",
                        training=kernel_training, workspace=self._workspace))
                if zero_masked and mask is not None:
                    seq *= mask[..., None]
                h_n[idx, ...] = h
                c_n[idx, ...] = c
                outs.append(seq)
                row_caches.append(cache)
            out = outs[0] if D == 1 else backend.concat(outs, axis=-1)
            drop = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                keep = self._rng.random(out.shape) >= self.dropout
                scale = 0.0 if self.dropout >= 1 else 1.0 / (1.0 - self.dropout)
                drop = keep.astype(self.dtype) * self.dtype.type(scale)
                out = out * drop
            caches.append(row_caches)
            drop_masks.append(drop)
            layer_input = out
        return layer_input, h_n, c_n, caches, drop_masks

    def _extended_cell(self, index):
        """Options of ``CpuBackend.lstm_forward_ext`` for layer-direction ``index``,
        or None for the common cell (always, for a torch-configured LSTM)."""
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(input, hx=None)``: runs ``forward`` (a planned call goes
        straight to its plan: Module.__call__'s hop cost ~1 us of a 6 us call)."""
        plan = self.__dict__.get("_call_plan")
        if plan is not None and not kwargs and 0 < len(args) <= 2 \
                and type(self).forward is LSTM.forward:
            out = plan(self, args[0], args[1] if len(args) == 2 else None)
            if out is not None:
                return out
        return self.forward(*args, **kwargs)

    def forward(self, input: ArrayLike, hx: Optional[Tuple[ArrayLike, ArrayLike]] = None
                ) -> Tuple[Array, Tuple[Array, Array]]:
        """Run the LSTM over a sequence: ``output, (h_n, c_n)``, with torch.nn.LSTM's shapes.

        Parameters
        ----------
        input : array_like
            (L, N, H_in), (N, L, H_in) with ``batch_first``, or unbatched (L, H_in).
        hx : tuple of two array_like, optional
            ``(h_0, c_0)``, each (D*num_layers, N, H_out / hidden_size)
            (without N when unbatched); zeros when omitted.

        Returns
        -------
        output : numpy.ndarray
            (L, N, D*H_out) (batch first with ``batch_first``).
        (h_n, c_n) : tuple of numpy.ndarray
            The final states of every layer and direction.
        """
        plan = self.__dict__.get("_call_plan")
        if plan is not None:
            out = plan(self, input, hx)
            if out is not None:
                return out
        x, time_major, batched, h0, c0 = self._prepare(input, hx)
        if type(self)._extended_cell is LSTM._extended_cell and x.shape[0] and x.shape[1]:
            # Later calls like this one check only what can change (_call_plan.py).
            plan = ModuleCallPlan.make(self, self._backend_for(x), np.shape(input), x, time_major)
            if plan is not None:
                object.__setattr__(self, "_call_plan", plan)
                out = plan.run(np.ascontiguousarray(x), h0[0], c0[0])
                if out is not None:
                    return out
        out, h_n, c_n, _, _ = self._run(x, time_major, h0, c0, False)
        if not batched:
            return out[:, 0], (h_n[:, 0], c_n[:, 0])
        return out, (h_n, c_n)

    def forward_train(self, input: ArrayLike,
                      hx: Optional[Tuple[ArrayLike, ArrayLike]] = None
                      ) -> Tuple[Tuple[Array, Tuple[Array, Array]], Callable[[Any], Any]]:
        """Training forward: ``((output, (h_n, c_n)), backprop)``.

        ``backprop((d_output, (d_h_n, d_c_n)))`` (entries may be None) adds
        every weight gradient into ``self.grads[torch_name]`` and returns dx, or
        ``(dx, (dh0, dc0))`` when ``hx`` was given. The gradients are those of
        ``sum(output*d_output) + sum(h_n*d_h_n) + sum(c_n*d_c_n)``. Dropout
        acts as in a call (training mode only).

        Parameters
        ----------
        input : array_like
            As in ``forward``.
        hx : tuple of two array_like, optional
            ``(h_0, c_0)``; zeros when omitted.

        Returns
        -------
        outputs : tuple
            ``(output, (h_n, c_n))`` as ``forward`` returns them.
        backprop : callable
            The backward function, to be called once.
        """
        x, time_major, batched, h0, c0 = self._prepare(input, hx)
        out, h_n, c_n, caches, drop_masks = self._run(x, time_major, h0, c0, True)
        given_state = hx is not None
        if batched:
            result = (out, (h_n, c_n))
        else:
            result = (out[:, 0], (h_n[:, 0], c_n[:, 0]))
        D, P = self.num_directions, self._out_size

        def backprop(dy):
            if not isinstance(dy, (tuple, list)) or len(dy) != 2:
                raise ValueError("backprop expects (d_output, (d_h_n, d_c_n)); entries may "
                                 "be None.")
            d_out, d_state = dy
            d_hn, d_cn = (None, None) if d_state is None else _pair(d_state, "(d_h_n, d_c_n)")
            d_out = _check_grad(d_out, result[0], self.dtype, "d_output")
            d_hn = _check_grad(d_hn, result[1][0], self.dtype, "d_h_n")
            d_cn = _check_grad(d_cn, result[1][1], self.dtype, "d_c_n")
            if not batched:
                d_out = None if d_out is None else d_out[:, None]
                d_hn = None if d_hn is None else d_hn[:, None]
                d_cn = None if d_cn is None else d_cn[:, None]
            dh0 = np.zeros_like(h0)
            dc0 = np.zeros_like(c0)
            d_seq = d_out
            for layer in range(self.num_layers - 1, -1, -1):
                dx = None
                for d, slot in enumerate(self._slots[layer]):
                    idx = layer * D + d
                    part = d_seq
                    if d_seq is not None and D == 2:
                        part = d_seq[..., d * P:(d + 1) * P]
                    cache = caches[layer][d]
                    g = cache.backend.lstm_backward(cache, LSTMGrads(
                        d_seq=part, d_h=None if d_hn is None else d_hn[idx],
                        d_c=None if d_cn is None else d_cn[idx]))
                    slot.accumulate(g)
                    dh0[idx] = g["dh0"]
                    dc0[idx] = g["dc0"]
                    dx = g["dx"] if dx is None else dx + g["dx"]
                if layer > 0 and drop_masks[layer - 1] is not None:
                    dx = dx * drop_masks[layer - 1]
                d_seq = dx
            dx = d_seq
            if not batched:
                dx, dh0, dc0 = dx[:, 0], dh0[:, 0], dc0[:, 0]
            if given_state:
                return dx, (dh0, dc0)
            return dx

        return result, backprop

    # -- other worlds ------------------------------------------------------------
    @classmethod
    def from_torch(cls, module_or_state_dict: Any, *, batch_first: Optional[bool] = None,
                   dtype: Optional[DTypeLike] = None, prefix: Optional[str] = None) -> Self:
        """A cylstm.nn.LSTM with the weights of a ``torch.nn.LSTM`` or of its state dict.

        A state dict may hold torch tensors or NumPy arrays (what a server
        without torch loads from an ``.npz``); input_size, hidden_size,
        num_layers, bias, bidirectional and proj_size are inferred from its
        names and shapes. Keys with a common prefix (``"encoder.lstm.weight_ih_l0"``,
        from a bigger model's state dict) are found automatically when one LSTM
        is in it.

        Parameters
        ----------
        module_or_state_dict : torch.nn.LSTM or mapping
            The module, or a mapping of torch names to arrays or tensors.
        batch_first : bool, optional
            Taken from the module; for a state dict (which cannot say) this
            argument, default False.
        dtype : numpy dtype, optional
            Default: float64 for float64 weights, float32 for anything else.
        prefix : str, optional
            The key prefix of the LSTM's entries when the state dict holds several.

        Returns
        -------
        LSTM
            In the module's training mode (train mode for a state dict).

        Raises
        ------
        ValueError
            For a module that is not an LSTM or a state dict without one.
        TypeError
            For anything that is neither a module nor a mapping.
        """
        obj = module_or_state_dict
        if _is_npz(obj):
            return _from_npz(cls, obj, "weight_ih_l0", dict(batch_first=batch_first,
                                                             dtype=dtype, prefix=prefix))
        module = None
        if hasattr(obj, "state_dict") and callable(obj.state_dict):
            module = obj
            kind = type(module).__name__
            if kind != "LSTM":
                raise ValueError(f"LSTM.from_torch expects a torch.nn.LSTM or its state dict; "
                                 f"got a {kind!r}. Pass the LSTM submodule (model.lstm), or "
                                 "the model's state_dict() when it holds one LSTM.")
            sd = module.state_dict()
            if batch_first is None:
                batch_first = bool(getattr(module, "batch_first", False))
        elif isinstance(obj, collections.abc.Mapping):
            sd = obj
        else:
            raise TypeError("LSTM.from_torch expects a torch.nn.LSTM or a state dict (a "
                            f"mapping of names to arrays); got {type(obj).__name__}.")
        arrays = _strip_prefix({k: to_numpy(v) for k, v in sd.items()}, "weight_ih_l0", prefix)
        config = infer_lstm_config(arrays)
        if dtype is None:
            dtype = np.float64 if arrays["weight_ih_l0"].dtype == np.float64 else np.float32
        dropout = float(getattr(module, "dropout", 0.0)) if module is not None else 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch already warned about dropout with 1 layer
            lstm = cls(**config, batch_first=bool(batch_first), dropout=dropout, dtype=dtype)
        lstm.load_state_dict(arrays, strict=True)
        if module is not None:
            lstm.train(bool(getattr(module, "training", True)))
        return lstm

    def to_torch(self) -> Any:
        """A ``torch.nn.LSTM`` with this module's configuration and weights (needs torch).

        Returns
        -------
        torch.nn.LSTM

        Raises
        ------
        ValueError
            For an LSTM loaded from ONNX with a reverse-only direction or other
            activations, which torch cannot express.
        """
        if self._reverse_only or self._activation is not _activations.tanh \
                or self._recurrent_activation is not _activations.sigmoid:
            raise ValueError("This LSTM (loaded from ONNX with a reverse-only direction or "
                             "non-default activations) has no torch.nn.LSTM equivalent.")
        try:
            import torch
        except ImportError as exc:
            raise ImportError("LSTM.to_torch() needs PyTorch (pip install torch); cylstm "
                              "itself runs without it.") from exc
        tdtype = torch.float64 if self.dtype == np.float64 else torch.float32
        module = torch.nn.LSTM(self.input_size, self.hidden_size, num_layers=self.num_layers,
                               bias=self.bias, batch_first=self.batch_first,
                               dropout=self.dropout, bidirectional=self.bidirectional,
                               proj_size=self.proj_size, dtype=tdtype)
        with torch.no_grad():
            module.load_state_dict({k: torch.from_numpy(np.array(v, order="C", copy=True))
                                    for k, v in self._params.items()})
        module.train(self.training)
        return module


def _is_npz(obj):
    return isinstance(obj, (str, os.PathLike, np.lib.npyio.NpzFile))


def _from_npz(cls, obj, anchor, kwargs):
    """``cls.from_torch`` of a state dict saved with ``np.savez``: a path or an
    open NpzFile. Every header is checked first; the module is built from the
    declared shapes (stand-ins that hold no memory, no random weights drawn),
    and only the arrays it uses are read."""
    if isinstance(obj, np.lib.npyio.NpzFile):
        source, fileobj = "(the .npz state dict)", obj.fid
        if fileobj is None:
            fileobj = obj.zip.fp
    else:
        fileobj = os.fspath(obj)
        source = repr(fileobj)
        if not os.path.exists(fileobj):
            from ..saving import ModelFileNotFoundError
            raise ModelFileNotFoundError(f"No .npz state dict at {source}.")
        if not os.path.isfile(fileobj):
            raise ValueError(f"Cannot load the state dict {source}: it is not a regular file.")
    with file_errors(source, "Cannot load the state dict"):
        with NpzReader(fileobj) as npz:
            stand_ins = {k: np.broadcast_to(np.zeros((), h.dtype), h.shape)
                         for k, h in npz.headers.items()}
            names = _strip_prefix({k: k for k in npz.headers}, anchor, kwargs.get("prefix"))
            budget = sum(h.size for h in npz.headers.values())
            with deferred_weights(budget):
                module = cls.from_torch(stand_ins, **kwargs)
            for n in module._params:
                module._copy_into(n, npz.read(names[n]))
    return module


def _strip_prefix(arrays, anchor, prefix):
    """Drop a common key prefix ('lstm.', 'model.encoder.') from a bigger state dict."""
    if prefix is None:
        if anchor in arrays:
            return arrays
        found = sorted(k[:-len(anchor)] for k in arrays if k.endswith("." + anchor))
        if len(found) > 1:
            raise ValueError(f"The state dict holds several LSTMs (prefixes {found}); pass "
                             "prefix= to choose one.")
        prefix = found[0] if found else ""
    if not prefix:
        return arrays
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def infer_lstm_config(arrays: Mapping[str, Array]) -> Dict[str, Any]:
    """torch.nn.LSTM's constructor arguments from a state dict's names and shapes."""
    if "weight_ih_l0" not in arrays:
        hint = (" (it looks like an LSTMCell's: use cylstm.nn.LSTMCell.from_torch)"
                if "weight_ih" in arrays else "")
        raise ValueError("Cannot infer an LSTM from this state dict: no 'weight_ih_l0' key"
                         f"{hint}. Keys: {sorted(arrays)[:8]}.")
    w_ih = arrays["weight_ih_l0"]
    if w_ih.ndim != 2 or w_ih.shape[0] % 4:
        raise ValueError(f"'weight_ih_l0' must have shape (4*hidden_size, input_size); got "
                         f"{w_ih.shape}.")
    num_layers = 0
    while f"weight_ih_l{num_layers}" in arrays:
        num_layers += 1
    proj_size = 0
    if "weight_hr_l0" in arrays:
        proj_size, hidden_size = arrays["weight_hr_l0"].shape
    else:
        hidden_size = w_ih.shape[0] // 4
    return dict(input_size=int(w_ih.shape[1]), hidden_size=int(hidden_size),
                num_layers=num_layers, bias="bias_ih_l0" in arrays,
                bidirectional="weight_ih_l0_reverse" in arrays, proj_size=int(proj_size))


def _check_grad(g, like, dtype, argument):
    if g is None:
        return None
    g = as_float_array(g, dtype, argument)
    if g.shape != like.shape:
        raise ValueError(f"`{argument}` must have shape {like.shape}, got {g.shape}.")
    return g


class LSTMCell(_Module):
    """``torch.nn.LSTMCell`` on cylstm's kernels (one step; streaming inference).

    ``h_1, c_1 = cell(input, hx=None)`` with input (N, input_size) or
    unbatched (input_size,), hx = (h_0, c_0) each (N, hidden_size) or
    (hidden_size,). Weights ``weight_ih`` (4H, I), ``weight_hh`` (4H, H),
    ``bias_ih``, ``bias_hh`` (4H,), gates i, f, g, o.

    Parameters
    ----------
    input_size : int
        The number of input features.
    hidden_size : int
        The size of h and c.
    bias : bool, default True
        Whether the cell has ``bias_ih``/``bias_hh``.
    dtype : numpy dtype, default numpy.float32
        ``float32`` or ``float64``.
    seed : int, optional
        Seeds the initial weights.
    device : {"cpu", None}, optional
        Any other device raises ``ValueError``.
    """

    _module_name = "LSTMCell"

    if TYPE_CHECKING:
        # _Module.__call__ forwards to forward(); this gives it forward's signature.
        def __call__(self, input: ArrayLike, hx: Optional[Tuple[ArrayLike, ArrayLike]] = None
                     ) -> Tuple[Array, Array]: ...

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, seed: Optional[int] = None,
                 device: Optional[str] = None) -> None:
        if device not in (None, "cpu"):
            raise ValueError(f"cylstm.nn.LSTMCell runs on the CPU; got device={device!r}.")
        self.input_size = _check_size(input_size, "input_size")
        self.hidden_size = _check_size(hidden_size, "hidden_size")
        self.bias = _check_flag(bias, "bias")
        self.dtype = _module_dtype(dtype)
        self.seed = seed
        self.training = True
        self._rng = np.random.default_rng(seed)
        self._workspace = get_backend().workspace()
        check_weight_sizes(self.input_size, self.hidden_size, self.hidden_size, "nn.LSTMCell")
        reserve_weights((self.input_size + self.hidden_size + 2 * self.bias)
                        * 4 * self.hidden_size, "nn.LSTMCell")
        self._slot = _Slot(self.input_size, self.hidden_size, 0, self.bias, self.dtype)
        self._stepper = None
        self._stepper_forced = None
        self._step_bias = owning_backend().zeros((4 * self.hidden_size,), self.dtype)
        self._register(self._slots_and_suffixes())
        if not weights_deferred():   # a loader fills them: draw nothing
            self.reset_parameters()

    # The use_backend in force when the cached stepper was made (see forward).
    _stepper_forced = None

    def _slots_and_suffixes(self):
        return [(self._slot, "")]

    def _moved(self, backend):
        self._stepper = None    # packed from the old arrays
        self._step_bias = move_array(self._step_bias, backend)

    def extra_repr(self) -> str:
        """The constructor arguments that differ from the defaults, as torch prints them."""
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.dtype != np.float32:
            s += f", dtype={self.dtype.name}"
        return s

    def _prepare(self, input, hx):
        check_input_sizes(input, self.hidden_size)
        x = as_float_array(input, self.dtype, "input")
        if x.ndim not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {x.ndim}D instead")
        batched = x.ndim == 2
        if not batched:
            x = x[None]
        if x.shape[1] != self.input_size:
            raise ValueError(f"input has inconsistent input_size: got {x.shape[1]} expected "
                             f"{self.input_size}")
        B, H = x.shape[0], self.hidden_size
        if hx is None:
            zeros = np.zeros((B, H), self.dtype)
            return x, batched, zeros, zeros
        states = []
        for k, s in enumerate(_pair(hx)):
            s = as_float_array(s, self.dtype, f"hx[{k}]")
            if s.ndim not in (1, 2):
                raise ValueError(f"LSTMCell: Expected hx[{k}] to be 1D or 2D, got {s.ndim}D "
                                 "instead")
            if s.ndim != x.ndim - (0 if batched else 1):
                raise ValueError(f"LSTMCell: hx[{k}] must be {'2' if batched else '1'}-D for a "
                                 f"{'2' if batched else '1'}-D input; got {s.ndim}-D")
            if not batched:
                s = s[None]
            if s.shape[0] != B:
                raise ValueError(f"Input batch size {B} doesn't match hidden{k} batch size "
                                 f"{s.shape[0]}")
            if s.shape[1] != H:
                raise ValueError(f"hidden{k} has inconsistent hidden_size: got {s.shape[1]}, "
                                 f"expected {H}")
            states.append(s)
        return x, batched, states[0], states[1]

    def forward(self, input: ArrayLike,
                hx: Optional[Tuple[ArrayLike, ArrayLike]] = None) -> Tuple[Array, Array]:
        """One LSTM step, on the streaming kernel: ``(h_1, c_1)``.

        Parameters
        ----------
        input : array_like
            (N, input_size) or unbatched (input_size,).
        hx : tuple of two array_like, optional
            ``(h_0, c_0)``; zeros when omitted.

        Returns
        -------
        h_1, c_1 : numpy.ndarray
            (N, hidden_size), or (hidden_size,) when unbatched.
        """
        x, batched, h0, c0 = self._prepare(input, hx)
        slot = self._slot
        k = self._stepper
        forced = forced_backend()
        if k is None or k.batch != x.shape[0] or forced is not self._stepper_forced:
            # Made again for a new batch size or another backend in force.
            k = self._stepper = self._backend_for(slot.kernel).stepper(
                slot.kernel, slot.recurrent, self._step_bias, None, _activations.tanh,
                _activations.sigmoid, x.shape[0])
            self._stepper_forced = forced
        if slot.bias_ih is not None:
            # bias_ih + bias_hh in place, in one write of the final values: a
            # thread stepping the same cell meanwhile never reads a partial sum.
            self._step_bias[...] = slot.bias_ih + slot.bias_hh
        out = k.step(np.ascontiguousarray(x), np.ascontiguousarray(h0),
                     np.ascontiguousarray(c0))
        if out is None:   # another backend's stepper: its own arrays
            be = k.backend
            out = k.step(be.asarray(x), be.asarray(h0), be.asarray(c0))
        h, c = out
        if not batched:
            return h[0], c[0]
        return h, c

    def forward_train(self, input: ArrayLike,
                      hx: Optional[Tuple[ArrayLike, ArrayLike]] = None
                      ) -> Tuple[Tuple[Array, Array], Callable[[Any], Any]]:
        """Training forward of one step: ``((h_1, c_1), backprop)``.

        ``backprop((d_h_1, d_c_1))`` (entries may be None) adds the weight
        gradients into ``self.grads`` and returns dx, or ``(dx, (dh0, dc0))``
        when ``hx`` was given.

        Parameters
        ----------
        input : array_like
            (N, input_size) or unbatched (input_size,).
        hx : tuple of two array_like, optional
            ``(h_0, c_0)``; zeros when omitted.

        Returns
        -------
        outputs : tuple
            ``(h_1, c_1)``.
        backprop : callable
            The backward function, to be called once.
        """
        x, batched, h0, c0 = self._prepare(input, hx)
        slot = self._slot
        (_, _, h, c), cache = self._backend_for(x).lstm_forward(LSTMProblem(
            x[None], slot.kernel, slot.recurrent, slot.bias(), h0, c0, time_major=True,
            return_sequences=False, training=True))
        result = (h, c) if batched else (h[0], c[0])
        given_state = hx is not None

        def backprop(dy):
            d_h, d_c = (None, None) if dy is None else _pair(dy, "(d_h_1, d_c_1)")
            d_h = _check_grad(d_h, result[0], self.dtype, "d_h_1")
            d_c = _check_grad(d_c, result[1], self.dtype, "d_c_1")
            if not batched:
                d_h = None if d_h is None else d_h[None]
                d_c = None if d_c is None else d_c[None]
            g = cache.backend.lstm_backward(cache, LSTMGrads(d_h=d_h, d_c=d_c))
            slot.accumulate(g)
            dx, dh0, dc0 = g["dx"][0], g["dh0"], g["dc0"]
            if not batched:
                dx, dh0, dc0 = dx[0], dh0[0], dc0[0]
            if given_state:
                return dx, (dh0, dc0)
            return dx

        return result, backprop

    @classmethod
    def from_torch(cls, module_or_state_dict: Any, *, dtype: Optional[DTypeLike] = None,
                   prefix: Optional[str] = None) -> Self:
        """A cylstm.nn.LSTMCell with the weights of a ``torch.nn.LSTMCell`` or its state dict.

        Parameters
        ----------
        module_or_state_dict : torch.nn.LSTMCell, mapping, str or NpzFile
            The module, a mapping of torch names to arrays or tensors, an
            ``.npz`` path or an open ``numpy.load`` result.
        dtype : numpy dtype, optional
            Default: float64 for float64 weights, float32 for anything else.
        prefix : str, optional
            The key prefix of the cell's entries in a bigger state dict.

        Returns
        -------
        LSTMCell
        """
        obj = module_or_state_dict
        if _is_npz(obj):
            return _from_npz(cls, obj, "weight_ih", dict(dtype=dtype, prefix=prefix))
        if hasattr(obj, "state_dict") and callable(obj.state_dict):
            kind = type(obj).__name__
            if kind != "LSTMCell":
                raise ValueError("LSTMCell.from_torch expects a torch.nn.LSTMCell or its state "
                                 f"dict; got a {kind!r}.")
            obj = obj.state_dict()
        if not isinstance(obj, collections.abc.Mapping):
            raise TypeError("LSTMCell.from_torch expects a torch.nn.LSTMCell or a state dict; "
                            f"got {type(obj).__name__}.")
        arrays = _strip_prefix({k: to_numpy(v) for k, v in obj.items()}, "weight_ih", prefix)
        if "weight_ih" not in arrays or "weight_hh" not in arrays:
            raise ValueError("Cannot infer an LSTMCell from this state dict: it needs "
                             f"'weight_ih' and 'weight_hh'. Keys: {sorted(arrays)[:8]}.")
        w_ih, w_hh = arrays["weight_ih"], arrays["weight_hh"]
        if w_ih.ndim != 2 or w_ih.shape[0] % 4 or w_ih.shape[0] == 0 or w_ih.shape[1] == 0:
            raise ValueError("'weight_ih' must have shape (4*hidden_size, input_size) with "
                             f"both sizes positive; got {w_ih.shape}.")
        if w_hh.shape != (w_ih.shape[0], w_ih.shape[0] // 4):
            raise ValueError(f"'weight_hh' must have shape {(w_ih.shape[0], w_ih.shape[0] // 4)}"
                             f" to go with 'weight_ih' of shape {w_ih.shape}; got {w_hh.shape}.")
        if dtype is None:
            dtype = np.float64 if w_ih.dtype == np.float64 else np.float32
        cell = cls(int(w_ih.shape[1]), int(w_ih.shape[0]) // 4, bias="bias_ih" in arrays,
                   dtype=dtype)
        cell.load_state_dict(arrays, strict=True)
        return cell

    def to_torch(self) -> Any:
        """A ``torch.nn.LSTMCell`` with the same weights (needs torch).

        Returns
        -------
        torch.nn.LSTMCell
        """
        try:
            import torch
        except ImportError as exc:
            raise ImportError("LSTMCell.to_torch() needs PyTorch (pip install torch); "
                              "cylstm itself runs without it.") from exc
        tdtype = torch.float64 if self.dtype == np.float64 else torch.float32
        module = torch.nn.LSTMCell(self.input_size, self.hidden_size, bias=self.bias,
                                   dtype=tdtype)
        with torch.no_grad():
            module.load_state_dict({k: torch.from_numpy(np.array(v, order="C", copy=True))
                                    for k, v in self._params.items()})
        return module
