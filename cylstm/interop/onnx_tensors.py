"""ONNX tensors read on demand, without trusting their declared sizes.

``onnx.load`` reads every external-data tensor at the length its model
declares, before anything can look at it (a 1 KB model beside a sparse file
reads gigabytes), and ``numpy_helper.to_array`` converts whatever it is given.
Here the model is parsed without external data; a tensor is converted only
when ``from_onnx`` asks for it, after its declared dims, data type and data
(inline bytes, or the external file's range) have been checked against each
other; the caller can compare the dims of W, R and B with each other before
any is read (``dims``).
"""
import os

import numpy as np

from .._validation import C_INT_MAX


class OnnxTensorError(ValueError):
    """A tensor of the ONNX model is malformed (the caller adds the file)."""


def _count(dims, name):
    count = 1
    for d in dims:
        if d < 0:
            raise OnnxTensorError(f"tensor {name!r} has a negative dimension in {list(dims)}")
        count *= int(d)
    return count


class LazyConstants:
    """Initializers and Constant nodes' values of a graph, by name, converted on
    first access. ``base_dir`` is the model file's folder (external data is
    refused without one)."""

    def __init__(self, graph, onnx, numpy_helper, base_dir=None):
        self._onnx = onnx
        self._numpy_helper = numpy_helper
        self._base_dir = base_dir
        self._tensors = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                for attr in node.attribute:
                    if attr.name == "value":
                        self._tensors[node.output[0]] = attr.t
        self._values = {}

    def __contains__(self, name):
        return name in self._tensors

    def get(self, name, default=None):
        return self[name] if name in self._tensors else default

    def __iter__(self):
        return iter(self._tensors)

    def keys(self):
        return self._tensors.keys()

    def __setitem__(self, name, value):
        """A value computed at load time (a Constant node the graph importer parsed)."""
        self._tensors.setdefault(name, None)
        self._values[name] = value

    def dtype(self, name):
        """The declared element type of ``name``, nothing read."""
        if self._tensors[name] is None:
            return np.asarray(self._values[name]).dtype
        return self._dtype(self._tensors[name])

    def dims(self, name):
        """The declared dims of ``name``, nothing read."""
        if self._tensors[name] is None:
            return tuple(np.shape(self._values[name]))
        return tuple(int(d) for d in self._tensors[name].dims)

    def __getitem__(self, name):
        if name not in self._values:
            self._values[name] = self._convert(self._tensors[name])
        return self._values[name]

    def _dtype(self, t):
        try:
            dtype = np.dtype(self._onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
        except Exception:  # noqa: BLE001 - unknown or undefined element type
            raise OnnxTensorError(f"tensor {t.name!r} has an unknown data type "
                                  f"{t.data_type}") from None
        if dtype.kind not in "biuf":
            raise OnnxTensorError(f"tensor {t.name!r} has data type {dtype}; LSTM inputs "
                                  "are numbers")
        return dtype

    def _convert(self, t):
        dims = tuple(int(d) for d in t.dims)
        count = _count(dims, t.name)
        if count > C_INT_MAX:
            raise OnnxTensorError(f"tensor {t.name!r} declares {count} values, more than "
                                  f"cylstm's limit of {C_INT_MAX}")
        dtype = self._dtype(t)
        if t.HasField("segment"):
            raise OnnxTensorError(f"tensor {t.name!r} is segmented; not supported")
        if t.data_location == self._onnx.TensorProto.EXTERNAL:
            return self._external(t, dims, count, dtype)
        if t.raw_data:
            if len(t.raw_data) != count * dtype.itemsize:
                raise OnnxTensorError(f"tensor {t.name!r} declares dims {list(dims)} of "
                                      f"{dtype} ({count * dtype.itemsize} bytes) but holds "
                                      f"{len(t.raw_data)}")
        return np.asarray(self._numpy_helper.to_array(t)).reshape(dims)

    def _external(self, t, dims, count, dtype):
        info = {e.key: e.value for e in t.external_data}
        if self._base_dir is None:
            raise OnnxTensorError(f"tensor {t.name!r} keeps its data in an external file, "
                                  "which only a model loaded from a path can refer to")
        location = info.get("location", "")
        parts = location.replace("\\", "/").split("/")
        if not location or os.path.isabs(location) or ".." in parts or ":" in location:
            raise OnnxTensorError(f"tensor {t.name!r}: external data location {location!r} "
                                  "is not a file name inside the model's folder")
        path = os.path.join(self._base_dir, location)
        if not os.path.isfile(path):
            raise OnnxTensorError(f"tensor {t.name!r}: external data file {location!r} is "
                                  "missing or not a regular file")
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else None
        except ValueError:
            raise OnnxTensorError(f"tensor {t.name!r}: external data offset/length are not "
                                  "integers") from None
        nbytes = count * dtype.itemsize
        size = os.path.getsize(path)
        if offset < 0 or (length is not None and length != nbytes):
            raise OnnxTensorError(f"tensor {t.name!r} declares dims {list(dims)} of {dtype} "
                                  f"({nbytes} bytes) but external data of length {length} "
                                  f"at offset {offset}")
        if offset + nbytes > size:
            raise OnnxTensorError(f"tensor {t.name!r} needs {nbytes} bytes at offset {offset} "
                                  f"of {location!r}, which has {size}")
        arr = np.fromfile(path, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
        if arr.size != count:
            raise OnnxTensorError(f"tensor {t.name!r}: {location!r} is shorter than declared")
        return arr.astype(dtype.newbyteorder("="), copy=False).reshape(dims)


def check_lstm_dims(consts, w_name, r_name, b_name, label, check_weight_sizes):
    """W, R and B of an LSTM node agree and fit the kernels: checked on the
    declared dims, before any of them is read."""
    for name, what in ((w_name, "W"), (r_name, "R"), (b_name, "B")):
        if name and name not in consts:
            return   # from_onnx reports the missing constant itself
    W, R = consts.dims(w_name), consts.dims(r_name)
    if len(W) != 3 or W[1] % 4 or W[1] == 0 or W[2] == 0:
        raise OnnxTensorError(f"ONNX LSTM node {label}: W must have shape "
                              f"[directions, 4*hidden, input] with sizes > 0; got {list(W)}")
    D, H, I = W[0], W[1] // 4, W[2]
    if R != (D, 4 * H, H):
        raise OnnxTensorError(f"ONNX LSTM node {label}: R must have shape "
                              f"{[D, 4 * H, H]} to go with W {list(W)}; got {list(R)}")
    if b_name and consts.dims(b_name) != (D, 8 * H):
        raise OnnxTensorError(f"ONNX LSTM node {label}: B must have shape [{D}, {8 * H}]; "
                              f"got {list(consts.dims(b_name))}")
    check_weight_sizes(I, H, H, label)
