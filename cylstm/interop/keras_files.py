"""``cylstm.from_keras``: Keras LSTM layers and models, live or saved, as cylstm's.

    model = cylstm.from_keras("model.keras")     # or .h5, or a live Keras object
    y = model.predict(x)

Nothing here imports Keras or TensorFlow. A live object is duck-typed: its class
name, ``get_config()`` and ``get_weights()``. A file is read with the ``json``
module and h5py (the optional ``interop`` extra); nothing in it is executed.

The config goes to the layers' own ``from_config``, which accept what Keras
writes (DTypePolicy dicts, initializer/regularizer/constraint dicts, Keras 2's
``batch_input_shape``, ``time_major``, ``implementation``). The weights go to
``set_weights`` in Keras's ``get_weights`` order. Files come in three layouts,
all read by content, whatever their name:

- **``.keras`` archive** (Keras 3 and tf.keras >= 2.13): a zip of
  ``config.json`` (``{"class_name": "Sequential", "config": {"layers": [...]}}``),
  ``metadata.json`` and ``model.weights.h5``. In that HDF5 file each layer of the
  model is a group ``layers/<key>``, where ``<key>`` is the layer's class name in
  snake case, numbered from the second one of a class on (``dense``, ``dense_1``;
  the layer's own name is not used), and a layer's variables are datasets
  ``vars/0``, ``vars/1``, ... in ``get_weights`` order:

      layers/embedding/vars/0                               embeddings
      layers/lstm/cell/vars/{0,1,2}                         kernel, recurrent_kernel, bias
      layers/bidirectional/{forward,backward}_layer/cell/vars/{0,1,2}
      layers/dense/vars/{0,1}                               kernel, bias

  ``model.save_weights("x.weights.h5")`` writes the same HDF5 file on its own.
  An unzipped archive (a folder with the two members) is read as well.
- **Legacy ``.h5``** (``model.save("x.h5")``, Keras 3 and tf.keras 2): the
  config as JSON in the root attribute ``model_config``; the weights in the group
  ``model_weights``, whose attribute ``layer_names`` lists one group per layer;
  each has the attribute ``weight_names`` (paths inside that group, in
  ``get_weights`` order), e.g. ``model_weights/lstm/lstm/lstm_cell/kernel:0``
  (tf.keras 2) or ``model_weights/lstm/sequential/lstm/lstm_cell/kernel`` (Keras 3).
  Long attributes are split into ``layer_names0``, ``layer_names1``, ... .
- **Legacy weights-only ``.h5``** (tf.keras 2 ``save_weights("x.h5")``): the
  ``model_weights`` layout at the root of the file.

Weights-only files need the model to load into: ``from_keras(path, model=m)``.
Legacy weights are matched to layers by name, or, when the names differ, by
position among the layers that have weights (Keras's own rule).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

import io
import json
import os
import re
import subprocess
import sys
import zipfile
import zlib

import numpy as np

from .._loading import file_errors
from .._npz import NpzError, check_member_sizes
from ..layers import Bidirectional, Dense, Dropout, Embedding, LSTM, Masking
from ..layers.base import Layer, WeightBudgetError, deferred_weights
from .hdf5_checks import check_file_bytes, check_structure, mapped, read_weight

if TYPE_CHECKING:
    from ..models import Sequential

__all__ = ["from_keras", "SUPPORTED_LAYERS"]

#: Keras layer classes that from_keras converts (InputLayer becomes the input shape).
SUPPORTED_LAYERS = ("InputLayer", "Embedding", "Masking", "Dense", "Dropout", "LSTM",
                    "Bidirectional")
_CLASSES = {"Embedding": Embedding, "Masking": Masking, "Dense": Dense, "Dropout": Dropout,
            "LSTM": LSTM, "Bidirectional": Bidirectional}
_KERAS_MODULES = ("keras", "tf_keras", "tensorflow")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
_ARCHIVE_CONFIG = "config.json"
_ARCHIVE_WEIGHTS = "model.weights.h5"
_MAX_CONFIG_BYTES = 16 * 2**20
# model.weights.h5 of a .keras archive holds the weights, the optimizer's
# variables (Adam: two per weight) and HDF5's overhead: anything much larger
# than that is not read into memory.
_WEIGHTS_FILE_FACTOR = 4
_WEIGHTS_FILE_SLACK = 4 * 2**20


def from_keras(obj: Any, model: Any = None, timeout: Optional[float] = None
               ) -> Union[Layer, Sequential]:
    """The cylstm equivalent of a Keras layer or model, with the same weights.

    A model gives a built ``cylstm.models.Sequential`` (not compiled); a layer
    gives the ``cylstm.layers`` layer, built when the Keras layer was. With
    ``model=`` (a built cylstm ``Sequential`` or layer), the file's weights are
    loaded into that model, which is returned; weights-only files require it.

    Parameters
    ----------
    obj : Keras layer or model, str or os.PathLike
        A live Keras object (an ``LSTM``, a ``Bidirectional`` wrapping one,
        another supported layer, or a ``Sequential`` of ``Embedding``,
        ``Masking``, ``Dense``, ``Dropout``, ``LSTM`` and ``Bidirectional``
        layers), or a path to a Keras ``.keras`` archive, a legacy ``.h5``
        model file, or a weights-only ``.weights.h5`` / legacy ``.h5`` file.
    model : Sequential or Layer, optional
        A built cylstm model to load the weights into.
    timeout : float, optional
        Seconds, files only: first read the file in a child process and
        refuse it (ValueError) if that does not finish in time or crashes.
        libhdf5 can loop forever on some corrupt files, which no check made
        from Python excludes; pass a timeout for files from untrusted sources
        (docs/security.md). It costs one extra read of the file.

    Returns
    -------
    Sequential or Layer

    Raises
    ------
    ValueError
        Naming the Keras class of a layer cylstm cannot convert (e.g.
        ``'Conv1D'``), or the path of a file that is not a Keras file, is
        truncated or corrupt.
    FileNotFoundError
        For a missing file (also a ``ValueError``).
    ImportError
        When reading a file without h5py (``pip install 'cylstm[interop]'``).
    """
    if isinstance(obj, (str, os.PathLike)):
        if model is not None:
            _model_layers_type_check(model)
        if timeout is not None:
            _probe_in_child(os.fspath(obj), timeout)
        source = repr(os.fspath(obj))
        with file_errors(source, "Cannot load the Keras file"):
            return _from_path(obj, model)
    if isinstance(obj, bytes):
        raise TypeError("from_keras takes a path as str or os.PathLike, not bytes.")
    if model is not None:
        raise TypeError("`model=` is for loading the weights of a file; a live Keras object "
                        "carries its own weights.")
    return _from_live(obj)


# -- configs ---------------------------------------------------------------------------

def _unsupported(class_name, layer_name=None, detail=""):
    where = f" (layer {layer_name!r})" if layer_name else ""
    return ValueError(
        f"cylstm.from_keras cannot convert Keras layer class {class_name!r}{where}{detail}; "
        f"cylstm has equivalents for {', '.join(SUPPORTED_LAYERS)} only.")


def _check_entry(entry):
    """Raise ValueError naming the Keras class of a layer entry cylstm cannot rebuild."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"A Keras layer entry must be a dict with a 'class_name'; got {entry!r}.")
    class_name = entry["class_name"]
    config = entry.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    if class_name not in SUPPORTED_LAYERS:
        raise _unsupported(class_name, name)
    module = entry.get("module")
    if module and module.split(".")[0] not in _KERAS_MODULES:
        # A custom class that happens to be called "LSTM", "Dense", ...
        raise _unsupported(class_name, name, f" from module {module!r}, not Keras's")
    if not isinstance(config, dict):
        raise ValueError(f"The config of Keras layer {name or class_name!r} must be a dict; "
                         f"got {type(config).__name__}.")
    if class_name == "Bidirectional":
        for key in ("layer", "backward_layer"):
            inner = config.get(key)
            if inner is None and key == "backward_layer":
                continue
            if not isinstance(inner, dict) or inner.get("class_name") != "LSTM":
                inner_class = inner.get("class_name") if isinstance(inner, dict) else inner
                raise _unsupported(inner_class, name,
                                   " wrapped in Bidirectional (cylstm's wraps LSTM only)")
            _check_entry(inner)


def _layer_from_entry(entry):
    _check_entry(entry)
    cls = _CLASSES[entry["class_name"]]
    try:
        return cls.from_config(dict(entry["config"]))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"Could not rebuild Keras layer {entry['config'].get('name')!r} "
                         f"(class {entry['class_name']!r}) from its config: {e}") from None


def _model_from_config(config, source, budget=None):
    """A built cylstm Sequential from a Keras model config (``{"class_name", "config"}``);
    errors name ``source``. With ``budget`` (the values a file holds), no weights
    are drawn and a config declaring more than that fails before allocating."""
    try:
        if budget is None:
            return _convert_model_config(config, source)
        with deferred_weights(budget):
            return _convert_model_config(config, source)
    except WeightBudgetError as e:
        raise ValueError(f"{source}: the file's weights do not fit its config ({e}).") from None
    except ValueError as e:
        message = str(e)
        if message.startswith(source):
            raise
        raise ValueError(f"{source}: {message}") from None


def _convert_model_config(config, source):
    from ..models import Sequential

    if not isinstance(config, dict):
        raise ValueError(f"{source}: the model config must be a JSON object; got "
                         f"{type(config).__name__}.")
    class_name = config.get("class_name")
    if class_name != "Sequential":
        if class_name in ("Functional", "Model"):
            raise ValueError(f"{source}: cylstm.from_keras converts Sequential models only; "
                             f"this is a Keras {class_name!r} model.")
        if isinstance(class_name, str) and "config" in config:
            # A saved layer, not a model: convert it on its own.
            return _layer_from_entry(config)
        raise ValueError(f"{source}: not a Keras model config (no 'class_name').")
    inner = config.get("config")
    if isinstance(inner, list):          # Keras <= 2.2 wrote the layer list directly
        inner = {"layers": inner}
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ValueError(f"{source}: a Sequential config needs a 'layers' list.")
    entries = inner["layers"]
    for entry in entries:
        _check_entry(entry)
    inner = dict(inner)
    if not any(e["class_name"] == "InputLayer" for e in entries) \
            and inner.get("build_input_shape") is None:
        # No InputLayer: the shape Keras built the model (or its first layer) with.
        build = config.get("build_config") or {}
        first = next((e for e in entries if e["class_name"] != "InputLayer"), {})
        shape = build.get("input_shape") or (first.get("build_config") or {}).get("input_shape")
        if shape is not None:
            inner["build_input_shape"] = shape
    model = Sequential(name=inner.get("name"), trainable=inner.get("trainable", True))
    build_shape = inner.get("build_input_shape")
    for entry in entries:
        if entry["class_name"] == "InputLayer":
            lc = entry["config"]
            shape = lc.get("batch_shape") or lc.get("batch_input_shape")
            if shape is not None:
                model._input_shape = tuple(shape)
                build_shape = build_shape or shape
            continue
        model.add(_layer_from_entry(entry), rebuild=False)
    try:
        if build_shape is not None:
            model.build(tuple(build_shape))
        else:
            model._maybe_build()
    except WeightBudgetError:
        raise
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: could not build the converted model: {e}") from None
    if not inner.get("trainable", True):
        model.trainable = False
    return model


# -- weights ---------------------------------------------------------------------------

def _is_dataset(value):
    h5py = sys.modules.get("h5py")
    return h5py is not None and isinstance(value, h5py.Dataset)


def _set_layer_weights(layer, arrays, source, where):
    if not arrays and not layer.weights:
        return
    if not layer.built:
        raise ValueError(f"{source}: cannot load weights into layer {layer.name!r}, which is "
                         "not built; build the model first (give it an input shape).")
    if any(_is_dataset(a) for a in arrays):
        # Datasets of a file: count and shapes are checked before any is read.
        targets = layer.weights
        if len(arrays) != len(targets):
            raise ValueError(f"{source}: the weights of {where} do not fit layer "
                             f"{layer.name!r}: it has {len(targets)} weights, the file "
                             f"{len(arrays)}.")
        names = list(layer._params)
        for k, (a, t) in enumerate(zip(arrays, targets)):
            if tuple(a.shape or ()) != t.shape:
                name = names[k] if len(names) == len(targets) else str(k)
                raise ValueError(f"{source}: the weights of {where} do not fit layer "
                                 f"{layer.name!r}: weight `{name}` has shape {t.shape}; got "
                                 f"an array of shape {a.shape}.")
        arrays = [read_weight(a, t.shape, a.name) for a, t in zip(arrays, targets)]
    try:
        layer.set_weights(arrays)
    except ValueError as e:
        raise ValueError(f"{source}: the weights of {where} do not fit layer "
                         f"{layer.name!r}: {e}") from None


def _model_layers(model, source):
    from ..models import Sequential

    if isinstance(model, Sequential):
        if not model.built:
            raise ValueError(f"{source}: cannot load weights into Sequential model "
                             f"{model.name!r}, which is not built; build it first "
                             "(model.build(input_shape) or the first layer's input_shape=).")
        return model.layers
    if isinstance(model, Layer):
        return [model]
    raise TypeError("`model` must be a cylstm Sequential model or layer; got "
                    f"{type(model).__name__}.")


def _model_layers_type_check(model):
    """TypeError for a `model=` argument that is neither a Sequential nor a layer
    (an argument error, raised before the file is read)."""
    from ..models import Sequential

    if not isinstance(model, (Sequential, Layer)):
        raise TypeError("`model` must be a cylstm Sequential model or layer; got "
                        f"{type(model).__name__}.")


def _keras3_keys(layers):
    """Keras 3's group name of each layer: snake-case class name, ``_1``, ``_2``, ... from
    the second layer of a class on (``saving_lib._save_container_state``)."""
    from ..layers.base import _snake_case

    used, keys = {}, []
    for layer in layers:
        key = _snake_case(re.sub(r"\W+", "", type(layer).__name__))
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def _vars(group):
    """The datasets ``vars/0``, ``vars/1``, ... of a group, in order (not read yet)."""
    out = []
    v = group.get("vars") if group is not None else None
    if v is None:
        return out
    while str(len(out)) in v and len(out) < 64:
        out.append(v[str(len(out))])
    return out


def _keras3_arrays(group, layer):
    if isinstance(layer, LSTM):
        return _vars(group.get("cell"))
    if isinstance(layer, Bidirectional):
        return (_vars(group.get("forward_layer/cell"))
                + _vars(group.get("backward_layer/cell")))
    return _vars(group)


def _has_datasets(group):
    import h5py

    found = []
    group.visititems(lambda name, obj: found.append(name)
                     if isinstance(obj, h5py.Dataset) else None)
    return bool(found)


def _load_keras3_weights(f, layers, source):
    root = f.get("layers")
    if root is None:
        raise ValueError(f"{source}: no 'layers' group; not a Keras weights file.")
    keys = _keras3_keys(layers)
    missing = [(k, l.name) for k, l in zip(keys, layers) if l.weights and k not in root]
    if missing:
        raise ValueError(f"{source}: no weights for layer(s) "
                         f"{', '.join(f'{n!r} (group layers/{k})' for k, n in missing)}; the "
                         f"file has groups {sorted(root)}. Is it the same architecture?")
    extra = sorted(k for k in root if k not in keys and _has_datasets(root[k]))
    if extra:
        raise ValueError(f"{source}: the file has weights for layer groups {extra} that the "
                         f"model has no layer for (its groups are {keys}).")
    for key, layer in zip(keys, layers):
        group = root.get(key)
        arrays = _keras3_arrays(group, layer) if group is not None else []
        _set_layer_weights(layer, arrays, source, f"group 'layers/{key}'")


def _attr_strings(group, name):
    """A list-of-strings attribute, joining Keras's chunks ``name0``, ``name1``, ..."""
    # Every attribute of the file passed check_structure before this reads it.
    if name in group.attrs:
        values = list(np.atleast_1d(group.attrs[name]))
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(np.atleast_1d(group.attrs[f"{name}{i}"]))
            i += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _load_legacy_weights(root, layers, source):
    import h5py

    stored = []
    for name in _attr_strings(root, "layer_names"):
        if name not in root or not isinstance(root[name], h5py.Group):
            raise ValueError(f"{source}: layer group {name!r} is listed but missing.")
        g = root[name]
        arrays = []
        for w in _attr_strings(g, "weight_names"):
            if w not in g or not isinstance(g[w], h5py.Dataset):
                raise ValueError(f"{source}: weight {w!r} of layer group {name!r} is listed "
                                 "but missing.")
            arrays.append(g[w])
        stored.append((name, arrays))
    by_name = dict(stored)
    weighted = [l for l in layers if l.weights]
    names = {l.name for l in layers}
    if all(l.name in by_name for l in weighted):
        extra = [n for n, a in stored if a and n not in names]
        if extra:
            raise ValueError(f"{source}: the file has weights for layer(s) {extra} that the "
                             "model has no layer of that name for.")
        for layer in layers:
            _set_layer_weights(layer, by_name.get(layer.name, []), source,
                               f"layer {layer.name!r}")
        return
    # Keras's rule for legacy files: match the layers that have weights by position.
    stored = [(n, a) for n, a in stored if a]
    if len(stored) != len(weighted):
        raise ValueError(f"{source}: the file has weights for {len(stored)} layer(s) "
                         f"({', '.join(n for n, _ in stored)}) but the model has "
                         f"{len(weighted)} layer(s) with weights "
                         f"({', '.join(l.name for l in weighted)}).")
    for layer, (name, arrays) in zip(weighted, stored):
        _set_layer_weights(layer, arrays, source, f"layer {name!r}")


def _load_h5_weights(f, layers, source):
    """Weights from an open HDF5 file in any of the three layouts."""
    if "model_weights" in f:
        _load_legacy_weights(f["model_weights"], layers, source)
    elif "layers" in f:
        _load_keras3_weights(f, layers, source)
    elif "layer_names" in f.attrs or "layer_names0" in f.attrs:
        _load_legacy_weights(f, layers, source)
    else:
        raise ValueError(f"{source}: an HDF5 file, but not a Keras model or weights file "
                         "(no 'layers' or 'model_weights' group, no 'layer_names').")


# -- files -----------------------------------------------------------------------------

def _require_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading Keras .keras/.h5 files needs h5py, the optional `interop` "
                          "extra: pip install 'cylstm[interop]' (or pip install h5py).") \
            from None
    return h5py


def _parse_json(raw, source, what):
    try:
        if isinstance(raw, np.ndarray) and raw.shape == ():
            raw = raw[()]
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, ValueError, TypeError) as e:
        raise ValueError(f"{source}: the {what} is not valid JSON ({e}); the file is "
                         "corrupt or not a Keras file.") from None
    except RecursionError:
        raise ValueError(f"{source}: the {what} is nested too deeply to be a Keras "
                         "config.") from None


def _finish(config, weights_reader, model, source, budget=None):
    """Build from ``config`` (unless ``model``) and load the weights into it."""
    if model is None:
        if config is None:
            raise ValueError(f"{source} holds weights only, no model config; build the same "
                             "architecture in cylstm and pass it: "
                             "cylstm.from_keras(path, model=model).")
        model = _model_from_config(config, source, budget)
    weights_reader(_model_layers(model, source))
    return model


def _from_archive(path, source, model):
    """A ``.keras`` zip archive."""
    h5py = _require_h5py()
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "weights.npz" in names and _ARCHIVE_WEIGHTS not in names:
                raise ValueError(f"{source} is not a Keras .keras file: it is a cylstm model "
                                 "file; load it with cylstm.models.load_model.")
            if _ARCHIVE_CONFIG not in names:
                raise ValueError(f"{source} is not a Keras .keras file: it is a zip archive "
                                 "without 'config.json'.")
            for name in (_ARCHIVE_CONFIG, _ARCHIVE_WEIGHTS):
                if name in names:
                    try:
                        check_member_sizes(zf.getinfo(name), repr(name))
                    except NpzError as e:
                        raise ValueError(f"{source}: {e}.") from None
            if zf.getinfo(_ARCHIVE_CONFIG).file_size > _MAX_CONFIG_BYTES:
                raise ValueError(f"{source}: 'config.json' is too large for a Keras config.")
            config = _parse_json(zf.read(_ARCHIVE_CONFIG), source, "'config.json'")
            weights_size = (zf.getinfo(_ARCHIVE_WEIGHTS).file_size
                            if _ARCHIVE_WEIGHTS in names else 0)
            if model is None and _ARCHIVE_WEIGHTS in names:
                # Unsupported layers fail first; no config declares more values
                # than the weights file can hold (2 bytes each at least).
                model = _model_from_config(config, source, budget=weights_size // 2)
            elif model is None:
                # No weights to load: check the config (unsupported layers are
                # named first) without allocating any weight for it.
                try:
                    with deferred_weights(0):
                        _convert_model_config(config, source)
                except WeightBudgetError:
                    pass
            if _ARCHIVE_WEIGHTS not in names:
                other = sorted(n for n in names if n.startswith("model.weights"))
                raise ValueError(f"{source}: no '{_ARCHIVE_WEIGHTS}' in the archive"
                                 + (f" (it has {other}: only HDF5 weights are read)"
                                    if other else "") + ".")
            layers = _model_layers(model, source)
            limit = (_WEIGHTS_FILE_FACTOR * 8 * sum(w.size for l in layers for w in l.weights)
                     + _WEIGHTS_FILE_SLACK)
            if weights_size > limit:
                raise ValueError(f"{source}: '{_ARCHIVE_WEIGHTS}' is {weights_size} bytes, far "
                                 "more than the model's weights need; not read.")
            weights = zf.read(_ARCHIVE_WEIGHTS)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise ValueError(f"{source}: cannot read the .keras archive; it is truncated or "
                         f"corrupt ({e}).") from None
    check_file_bytes(weights)
    try:
        with h5py.File(io.BytesIO(weights), "r") as f:
            check_structure(f, len(weights), weights)
            return _finish(config, lambda layers: _load_keras3_weights(f, layers, source),
                           model, source)
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"{source}: cannot read '{_ARCHIVE_WEIGHTS}'; the archive is "
                         f"truncated or corrupt ({e}).") from None


def _from_folder(path, source, model):
    """An unzipped ``.keras`` archive (``saving.save_model(..., zipped=False)``)."""
    h5py = _require_h5py()
    config_path = os.path.join(path, _ARCHIVE_CONFIG)
    weights_path = os.path.join(path, _ARCHIVE_WEIGHTS)
    if not (os.path.isfile(config_path) and os.path.isfile(weights_path)):
        raise ValueError(f"{source} is a folder without '{_ARCHIVE_CONFIG}' and "
                         f"'{_ARCHIVE_WEIGHTS}'; not an unzipped Keras model.")
    with open(config_path, "rb") as fh:
        config = _parse_json(fh.read(_MAX_CONFIG_BYTES), source, "'config.json'")
    weights_size = os.path.getsize(weights_path)
    if model is None:
        model = _model_from_config(config, source, budget=weights_size // 2)
    with mapped(weights_path) as data:
        check_file_bytes(data)
        return _finish_folder(h5py, weights_path, weights_size, data, config, model, source)


def _finish_folder(h5py, weights_path, weights_size, data, config, model, source):
    try:
        with h5py.File(weights_path, "r") as f:
            check_structure(f, weights_size, data)
            return _finish(config, lambda layers: _load_keras3_weights(f, layers, source),
                           model, source)
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"{source}: cannot read '{_ARCHIVE_WEIGHTS}'; it is truncated or "
                         f"corrupt ({e}).") from None


def _hdf5_layout(f):
    """'model' (legacy full model), 'weights' (either weights layout), or None."""
    if "model_config" in f.attrs:
        return "model"
    if ("layers" in f or "model_weights" in f or "layer_names" in f.attrs
            or "layer_names0" in f.attrs):
        return "weights"
    return None


def _from_hdf5(path, source, model):
    """A legacy ``.h5`` model, or a weights-only file (Keras 3 or legacy layout)."""
    h5py = _require_h5py()
    with mapped(path) as data:
        check_file_bytes(data)
        return _read_hdf5(h5py, path, data, source, model)


def _read_hdf5(h5py, path, data, source, model):
    try:
        with h5py.File(path, "r") as f:
            size = os.path.getsize(path)
            budget = check_structure(f, size, data)
            layout = _hdf5_layout(f)
            if layout is None:
                raise ValueError(f"{source}: an HDF5 file, but not a Keras model or weights "
                                 "file (no 'model_config', no 'layers' or 'model_weights' "
                                 "group, no 'layer_names').")
            config = None
            if layout == "model":
                config = _parse_json(f.attrs["model_config"], source,
                                     "'model_config' attribute")
                if model is None:
                    model = _model_from_config(config, source, budget=budget)
            return _finish(config, lambda layers: _load_h5_weights(f, layers, source),
                           model, source)
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"{source}: cannot read the HDF5 file; it is truncated or corrupt "
                         f"({e}).") from None


def _from_path(path, model):
    from ..saving import ModelFileNotFoundError

    path = os.fspath(path)
    source = repr(path)
    if not os.path.exists(path):
        raise ModelFileNotFoundError(f"File not found: {source}. from_keras reads a .keras "
                                     "archive or an .h5 file.")
    if os.path.isdir(path):
        return _from_folder(path, source, model)
    if not os.path.isfile(path):
        raise ValueError(f"{source} is not a regular file; from_keras reads a .keras archive, "
                         "an .h5 file or an unzipped .keras folder.")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(_ZIP_SIGNATURE) or head.startswith(b"PK\x05\x06"):
        return _from_archive(path, source, model)
    # HDF5's signature is at 0 or, after a user block, at 512, 1024, 2048, ...
    if head.startswith(_HDF5_SIGNATURE) or any(
            head[k:k + 8] == _HDF5_SIGNATURE for k in (512, 1024, 2048)):
        return _from_hdf5(path, source, model)
    if not head:
        raise ValueError(f"{source} is empty; not a Keras file.")
    raise ValueError(f"{source} is not a Keras file: expected a .keras (zip) archive or an "
                     "HDF5 (.h5) file.")


# -- live Keras objects ----------------------------------------------------------------

def _class_name(obj):
    return type(obj).__name__


def _is_keras_object(obj):
    module = type(obj).__module__ or ""
    return module.split(".")[0] in _KERAS_MODULES and callable(getattr(obj, "get_config", None))


def _live_weights(obj):
    get = getattr(obj, "get_weights", None)
    return [] if get is None else [getattr(w, "numpy", lambda w=w: w)() for w in get()]


def _build_live(layer, obj, weights):
    """Build the converted layer for the shape the Keras layer was built with."""
    shape = None
    get_build_config = getattr(obj, "get_build_config", None)
    if callable(get_build_config):
        build_config = get_build_config() or {}
        shape = build_config.get("input_shape")
    if shape is None and weights:
        # Not recorded: infer the feature size from the first weight.
        if isinstance(layer, (LSTM, Bidirectional)):
            shape = (None, None, weights[0].shape[0])
        elif isinstance(layer, Dense):
            shape = (None, weights[0].shape[0])
        elif isinstance(layer, Embedding):
            shape = (None, None)
    if shape is None:
        return
    if isinstance(shape, dict) or (isinstance(shape, (list, tuple)) and shape
                                   and isinstance(shape[0], (list, tuple, dict))):
        shape = shape[0] if isinstance(shape, (list, tuple)) else next(iter(shape.values()))
    layer.build(tuple(None if d is None else int(d) for d in shape))
    if layer._build_input_shape is None:
        layer._build_input_shape = tuple(shape)


def _from_live(obj):
    if isinstance(obj, Layer) or type(obj).__module__.split(".")[0] == "cylstm":
        raise TypeError(f"from_keras converts Keras objects; {obj!r} is already cylstm's.")
    if not _is_keras_object(obj):
        raise TypeError("from_keras expects a Keras layer or Sequential model, or a path to a "
                        f".keras/.h5 file; got {type(obj).__module__}.{_class_name(obj)}.")
    class_name = _class_name(obj)
    name = getattr(obj, "name", None)
    source = f"Keras {class_name} {name!r}" if isinstance(name, str) else f"Keras {class_name}"
    if class_name in ("Functional", "Model"):
        raise ValueError(f"cylstm.from_keras converts Sequential models only; got a Keras "
                         f"{class_name!r} model.")
    if class_name == "Sequential":
        config = {"class_name": "Sequential", "config": obj.get_config()}
        model = _model_from_config(config, source)
        keras_layers = [l for l in obj.layers if _class_name(l) != "InputLayer"]
        for ours, theirs in zip(model.layers, keras_layers):
            _set_layer_weights(ours, _live_weights(theirs), source,
                               f"Keras layer {getattr(theirs, 'name', '?')!r}")
        return model
    entry = {"class_name": class_name, "config": obj.get_config(),
             "module": type(obj).__module__}
    layer = _layer_from_entry(entry)
    weights = _live_weights(obj)
    _build_live(layer, obj, weights)
    _set_layer_weights(layer, weights, source, f"Keras layer {getattr(obj, 'name', '?')!r}")
    return layer


# -- time-bounded reading --------------------------------------------------------------

def _probe(path):
    """Everything libhdf5 is asked while loading ``path``, in this (child)
    process, under an address-space cap of its size now plus 10 times the
    file's size plus 1 GiB. Exit status: 0 loaded, 10 refused (the
    ValueError's message on stdout), 12 out of memory."""
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        cap = vm + 10 * os.path.getsize(path) + 2**30
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, OSError, StopIteration, ValueError):
        pass   # no cap where the platform has none; the timeout still holds
    try:
        from_keras(path)
    except MemoryError:
        sys.exit(12)
    except ValueError as e:
        sys.stdout.write(str(e))
        sys.stdout.flush()
        sys.exit(10)
    sys.exit(0)


def _probe_in_child(path, timeout):
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"`timeout` must be a positive number of seconds; got {timeout!r}.")
    if not os.path.exists(path):
        return   # the in-process load reports it
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    code = "import sys; from cylstm.interop.keras_files import _probe; _probe(sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, path], env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ValueError(f"Cannot load the Keras file {path!r}: reading it did not finish "
                         f"within {timeout} s (a corrupt HDF5 structure can make libhdf5 "
                         "loop); refused.") from None
    if done.returncode == 10:
        raise ValueError(done.stdout.decode("utf-8", "replace").strip()
                         or f"Cannot load the Keras file {path!r}.")
    if done.returncode == 12:
        raise ValueError(f"Cannot load the Keras file {path!r}: reading it needed more than "
                         "10 times the file's size plus 1 GiB of memory; refused.")
    if done.returncode != 0:
        raise ValueError(f"Cannot load the Keras file {path!r}: reading it ended the reading "
                         f"process with status {done.returncode}; refused.")
