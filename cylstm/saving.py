"""cylstm's model file: one zip holding ``config.json`` and ``weights.npz``.

The format (version 1) is documented in docs/saving.md. Writing is atomic (a
temporary file in the target's folder, then ``os.replace``), so a crash never
leaves a half-written model under the target name. Reading never executes
anything from the file: the config is parsed with ``json``, layers are rebuilt
only from cylstm's own classes (``cylstm/layers/_registry.py``, through the model
registry of ``cylstm/_serialization.py``), and arrays are read
with ``np.load(..., allow_pickle=False)``. Whatever is wrong with a file
(not a zip, truncated, a Keras ``.keras`` file, a missing member, a bad config,
weights of the wrong shape) raises ``ValueError`` naming the path and the problem.
"""
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from ._loading import file_errors
from ._npz import NpzError, NpzReader, check_member_sizes
from ._serialization import MODELS
from ._version import __version__

__all__ = ["save_model", "load_model", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "cylstm.model"
FORMAT_VERSION = 1
CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "weights.npz"
MAX_CONFIG_BYTES = 16 * 2**20   # a config larger than this is not ours


class ModelFileNotFoundError(FileNotFoundError, ValueError):
    """Raised when the model file does not exist (both a FileNotFoundError and,
    as in Keras's ``load_model``, a ValueError)."""


def _fspath(filepath):
    try:
        return os.fspath(filepath)
    except TypeError:
        raise TypeError(f"`filepath` must be a str or os.PathLike, got "
                        f"{type(filepath).__name__}.") from None


# -- writing -------------------------------------------------------------------------

def _weights_and_index(model):
    """The arrays to store and the index that says where each belongs."""
    arrays = {}
    layers = []
    for i, layer in enumerate(model.layers):
        names = []
        for j, w in enumerate(layer.get_weights()):
            key = f"layer.{i}.{j}"
            arrays[key] = np.ascontiguousarray(w)
            names.append(key)
        layers.append({"name": layer.name, "class_name": type(layer).__name__,
                       "weights": names})
    optimizer = None
    opt = model.optimizer
    if model.compiled and opt is not None and opt.built:
        slots = []
        for s, (key, slot) in enumerate(opt.get_slots().items()):
            entry = {"key": key, "arrays": {}}
            for name, arr in slot.items():
                member = f"optimizer.{s}.{name}"
                arrays[member] = np.ascontiguousarray(arr)
                entry["arrays"][name] = member
            slots.append(entry)
        optimizer = {"iterations": int(opt.iterations), "slots": slots}
    return arrays, {"layers": layers, "optimizer": optimizer}


def _file_mode(path):
    """The permissions a plain ``open(path, 'w')`` would give (or the existing file's)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save_model(model, filepath, overwrite=True, **kwargs):
    """Write ``model`` to ``filepath`` (any name) atomically; see docs/saving.md."""
    if kwargs:
        unknown = sorted(k for k in kwargs if k not in ("zipped", "include_optimizer",
                                                         "save_format"))
        if unknown:
            raise ValueError(f"Unknown argument(s) to save: {unknown}.")
    if not isinstance(model, tuple(MODELS.classes.values())):
        raise TypeError(f"Only cylstm.Sequential models can be saved; got "
                        f"{type(model).__name__}.")
    path = _fspath(filepath)
    if os.path.isdir(path):
        raise ValueError(f"Cannot save the model to {path!r}: it is a directory. Pass a file "
                         "name such as 'model.cylstm'.")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False.")
    arrays, index = _weights_and_index(model)
    if not kwargs.get("include_optimizer", True):
        index["optimizer"] = None
        arrays = {k: v for k, v in arrays.items() if not k.startswith("optimizer.")}
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "cylstm_version": __version__,
        "model": {"class_name": "Sequential", "config": model.get_config()},
        "compile_config": model.get_compile_config(),
        "weights": index,
    }
    try:
        config_bytes = json.dumps(config, indent=1, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueError(f"Cannot save the model to {path!r}: its config is not JSON "
                         f"serializable ({e}). Python-callable activations, initializers or "
                         "metrics cannot be saved; use Keras names.") from None
    buf = io.BytesIO()
    np.savez(buf, **arrays)

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                for member, data, method in ((CONFIG_MEMBER, config_bytes, zipfile.ZIP_DEFLATED),
                                             (WEIGHTS_MEMBER, buf.getvalue(), zipfile.ZIP_STORED)):
                    info = zipfile.ZipInfo(member, (1980, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, data, compress_type=method)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- reading -------------------------------------------------------------------------

class _Bad(ValueError):
    """Internal: what is wrong with the file (turned into ValueError with the path)."""


def _read_member(zf, name, limit=None):
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _Bad(f"the archive has no {name!r} member") from None
    if limit is not None and info.file_size > limit:
        raise _Bad(f"{name!r} is {info.file_size} bytes, larger than any cylstm config")
    return zf.read(info)


def _foreign_description(names):
    if "metadata.json" in names and ("model.weights.h5" in names or "config.json" in names):
        return ("it is a Keras .keras file, not a cylstm model file (convert Keras models "
                "with cylstm.from_keras(path))")
    return None


# The format name of cylstm.quantize's files (cylstm.quantization.FORMAT_NAME).
QUANTIZED_FORMAT_NAME = "cylstm.quantized"


def _is_quantized(raw):
    """Whether a config.json declares the format of ``cylstm.quantize``'s files."""
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False   # _parse_config names the problem
    return isinstance(config, dict) and config.get("format") == QUANTIZED_FORMAT_NAME


def _parse_config(raw):
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Bad(f"config.json is not valid JSON ({e})") from None
    except RecursionError:
        raise _Bad("config.json is nested too deeply to be a cylstm config") from None
    if not isinstance(config, dict):
        raise _Bad("config.json does not hold a JSON object")
    if config.get("format") != FORMAT_NAME:
        if "class_name" in config and "module" in config:
            raise _Bad("it is a Keras .keras file, not a cylstm model file (convert Keras "
                       "models with cylstm.from_keras(path))")
        raise _Bad(f"config.json does not declare format {FORMAT_NAME!r}; this is not a "
                   "cylstm model file")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _Bad(f"format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise _Bad(f"it was written in format version {version}, newer than this cylstm "
                   f"reads ({FORMAT_VERSION}); upgrade cylstm")
    for key, kind in (("model", dict), ("weights", dict)):
        if not isinstance(config.get(key), kind):
            raise _Bad(f"config.json has no valid {key!r} entry")
    return config


def _weight_names(config):
    """The array names the index needs: per layer, and per optimizer slot."""
    index = config["weights"]
    entries = index.get("layers")
    if not isinstance(entries, list):
        raise _Bad("the weights index has no list of layers")
    layers = []
    for k, entry in enumerate(entries):
        names = entry.get("weights") if isinstance(entry, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Bad(f"the weights index entry of layer {k} is malformed")
        layers.append(names)
    slots = []
    state = index.get("optimizer")
    if state:
        if not isinstance(state, dict) or not isinstance(state.get("slots"), list):
            raise _Bad("the optimizer state is malformed")
        for entry in state["slots"]:
            arrays = entry.get("arrays") if isinstance(entry, dict) else None
            if not isinstance(arrays, dict) or not isinstance(entry.get("key"), str) \
                    or not all(isinstance(m, str) for m in arrays.values()):
                raise _Bad("the optimizer state is malformed")
            slots.append(entry)
    return layers, slots


def _restore(config, npz, compile):
    """Build the model of ``config`` and read its weights from ``npz`` (an
    NpzReader): every declared shape is checked before anything is read."""
    from .layers.base import WeightBudgetError, deferred_weights
    model_cfg = config["model"]
    if model_cfg.get("class_name") != "Sequential":
        raise _Bad(f"unsupported model class {model_cfg.get('class_name')!r}")
    layer_names, slots = _weight_names(config)
    needed = {n for names in layer_names for n in names}
    needed |= {m for entry in slots for m in entry["arrays"].values()}
    missing = sorted(needed - set(npz.headers))
    if missing:
        raise _Bad(f"weights.npz lacks weights the index lists: {missing[:5]}")
    extra = sorted(set(npz.headers) - needed)
    if extra:
        raise _Bad(f"weights.npz holds arrays {extra[:5]} that the weights index does not use")
    budget = sum(npz.headers[n].size for names in layer_names for n in names)
    try:
        # No random weights drawn, and none beyond what the file holds.
        with deferred_weights(budget):
            model = MODELS.deserialize(model_cfg)
    except WeightBudgetError as e:
        raise _Bad(f"the weights in weights.npz do not fit the model's config ({e})") from None
    except (ValueError, TypeError, KeyError) as e:
        raise _Bad(f"the model config cannot be rebuilt ({e})") from None
    if len(layer_names) != len(model.layers):
        raise _Bad(f"the weights index lists {len(layer_names)} layers but the config has "
                   f"{len(model.layers)}")
    for layer, names in zip(model.layers, layer_names):
        if not layer.built and names:
            raise _Bad(f"layer {layer.name!r} has weights but the config does not give the "
                       "model's input shape")
        targets = layer.weights
        shapes = [npz.headers[n].shape for n in names]
        if shapes != [w.shape for w in targets]:
            raise _Bad(f"the weights of layer {layer.name!r} do not fit it: the file has "
                       f"shapes {shapes}, the layer needs {[w.shape for w in targets]}")
    for layer, names in zip(model.layers, layer_names):
        if names:
            layer.set_weights([npz.read(n) for n in names])
    compile_config = config.get("compile_config")
    if compile and compile_config:
        try:
            model.compile_from_config(compile_config)
        except (ValueError, TypeError, KeyError) as e:
            raise _Bad(f"the compile config cannot be restored ({e})") from None
        _restore_optimizer(model, config["weights"].get("optimizer"), slots, npz)
    return model


def _restore_optimizer(model, state, slots, npz):
    if not state:
        return
    opt = model.optimizer
    params = {key: var for key, var, _ in model.named_parameters()}
    iterations = state.get("iterations")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise _Bad(f"the optimizer state is malformed (iterations {iterations!r})")
    restored_slots = {}
    for entry in slots:   # check every shape, then read
        var = params.get(entry["key"])
        for name, member in entry["arrays"].items():
            if var is None or npz.headers[member].shape != var.shape:
                raise _Bad(f"optimizer slot {name!r} of {entry['key']!r} does not match the "
                           "model")
    for entry in slots:
        var = params[entry["key"]]
        restored_slots[entry["key"]] = {name: npz.read(member).astype(var.dtype)
                                        for name, member in entry["arrays"].items()}
    opt.set_slots(restored_slots, iterations)


def load_model(filepath, compile=True, quantized_reader=None):
    """Read a model written by ``save_model``; see ``cylstm.models.load_model``.
    A file of ``cylstm.quantize``'s format goes to ``quantized_reader(path)``
    (passed in by the caller: this module does not import the quantized one)."""
    path = _fspath(filepath)
    if not os.path.exists(path):
        raise ModelFileNotFoundError(f"File not found: filepath={path}. Please ensure the file "
                                     "is an accessible cylstm model file.")
    if os.path.isdir(path):
        raise ValueError(f"Cannot load a cylstm model from {path!r}: it is a directory (a "
                         "TensorFlow SavedModel?), not a cylstm model file.")
    if not os.path.isfile(path):
        raise ValueError(f"Cannot load a cylstm model from {path!r}: it is not a regular file.")
    source = repr(path)
    try:
        with file_errors(source, "Cannot load a cylstm model from"):
            return _load(path, compile, quantized_reader)
    except _Bad as e:
        raise ValueError(f"Cannot load a cylstm model from {source}: {e}.") from None


def _load(path, compile, quantized_reader=None):
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise _Bad("it is not a zip archive (corrupt or truncated, or not a model file)") \
            from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if CONFIG_MEMBER not in names or WEIGHTS_MEMBER not in names:
            foreign = _foreign_description(set(names))
            if foreign:
                raise _Bad(foreign)
            missing = [m for m in (CONFIG_MEMBER, WEIGHTS_MEMBER) if m not in names]
            raise _Bad(f"the archive has no {' or '.join(map(repr, missing))} member; "
                       "it is not a cylstm model file")
        if len(names) != 2:
            others = sorted(set(n for n in names if n not in (CONFIG_MEMBER, WEIGHTS_MEMBER)))
            raise _Bad(f"the archive holds members other than {CONFIG_MEMBER!r} and "
                       f"{WEIGHTS_MEMBER!r} ({others[:5] or 'duplicates'}); a cylstm model "
                       "file has exactly these two")
        for info in infos:
            try:
                check_member_sizes(info, repr(info.filename))
            except NpzError as e:
                raise _Bad(str(e)) from None
        raw_config = _read_member(zf, CONFIG_MEMBER, MAX_CONFIG_BYTES)
        if quantized_reader is not None and _is_quantized(raw_config):
            return quantized_reader(path)
        config = _parse_config(raw_config)
        with zf.open(WEIGHTS_MEMBER) as wf:
            try:
                npz = NpzReader(wf)
            except NpzError as e:
                raise _Bad(f"weights.npz: {e}") from None
            with npz:
                try:
                    return _restore(config, npz, compile)
                except NpzError as e:
                    raise _Bad(f"weights.npz: {e}") from None
