"""Make a corpus of malformed model files of every format cylstm loads.

    python -m tests.fuzz.make_corpus OUT_DIR [--random N] [--seed S]

Writes, next to one valid seed file per format (tests/fuzz/loaders.py):
targeted malformations -- the file classes of issue 10 (size bombs, lying
headers and shapes, configs declaring huge models, deep nesting, odd dtypes,
HDF5 soft/external links and external storage, ONNX external data outside the
folder or past its file) -- and N random byte-level mutations of each seed
(bit flips, truncations, insertions, splices). Deterministic for a given seed.
The corpus pass (tests/fuzz/run.py --corpus) loads each file in a child
process under a timeout and a memory cap.
"""
import argparse
import io
import json
import pathlib
import random
import re
import sys
import zipfile

import numpy as np

from .loaders import make_seeds


# -- helpers -------------------------------------------------------------------------

def _zip_members(path):
    with zipfile.ZipFile(path) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def _write_zip(path, members):
    """members: list of (name, bytes, compress_type)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, method in members:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            zf.writestr(info, data, compress_type=method)


def _replace(path, out, name, data, extra=()):
    members = [(i.filename, data if i.filename == name else d, i.compress_type)
               for i, d in _zip_members(path)]
    _write_zip(out, members + list(extra))


def _npy(arr_or_header, data=b""):
    if isinstance(arr_or_header, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, arr_or_header, allow_pickle=False)
        return buf.getvalue()
    header = repr(arr_or_header).encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _npz(members, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name + ".npy", (1980, 1, 1, 0, 0, 0)), data,
                        compress_type=method)
    return buf.getvalue()


def _deep_json(depth):
    return ("[" * depth + "]" * depth).encode()


def _config_mutants(config):
    """(label, config bytes) variants of a Keras-style model config dict."""
    out = []
    text = json.dumps(config)
    def units(value):
        return re.sub(r'"units": \d+', f'"units": {value}', text)
    out.append(("units4000", units(4000)))
    out.append(("units1e7", units(10**7)))
    out.append(("units_neg", units(-3)))
    out.append(("units_float", units("1e308")))
    out.append(("units_bigint", units("9" * 400)))
    out.append(("dtype_int", text.replace('"name": "float32"', '"name": 5')))
    out.append(("dtype_syntax", text.replace('"name": "float32"', '"name": "f4,("')))
    out.append(("dtype_config_str", text.replace('"config": {"name": "float32"}',
                                                 '"config": "float32"')))
    out.append(("shape_huge", re.sub(r'(shape": \[null, (?:null, )?)\d+\]', r"\g<1>100000000]",
                                     text)))
    out.append(("layers_not_list", text.replace('"layers": [', '"layers": {"a": [')
                .replace("]}}", "]}}}", 1)))
    out.append(("class_junk", text.replace('"class_name": "LSTM"', '"class_name": 7')))
    out.append(("not_json", text[: len(text) // 2]))
    out.append(("utf8_bad", None))
    out.append(("deep", None))
    result = []
    for label, value in out:
        if label == "utf8_bad":
            result.append((label, b"\xff\xfe" + text.encode()))
        elif label == "deep":
            result.append((label, _deep_json(200_000)))
        else:
            result.append((label, value.encode()))
    return result


# -- targeted malformations per format ---------------------------------------------------

def cylstm_files(seed, out):
    members = dict((i.filename, d) for i, d in _zip_members(seed))
    config = json.loads(members["config.json"])
    for label, raw in _config_mutants(config):
        _replace(seed, out / f"cfg_{label}.cylstm", "config.json", raw)
    # weights index of the wrong types
    bad = dict(config)
    bad["weights"] = {"layers": [{"weights": [1, 2]}] * 2}
    _replace(seed, out / "index_types.cylstm", "config.json", json.dumps(bad).encode())
    bad = dict(config)
    bad["weights"] = dict(config["weights"], optimizer={"iterations": 10**30, "slots": 5})
    _replace(seed, out / "optimizer_types.cylstm", "config.json", json.dumps(bad).encode())
    bad = dict(config)
    bad["format_version"] = 10**400
    _replace(seed, out / "version_huge.cylstm", "config.json", json.dumps(bad).encode())
    # an unused compressed member of 64 MiB (deflate: ~64 KB in the file)
    _replace(seed, out / "extra_member_bomb.cylstm", "config.json", members["config.json"],
             extra=[("padding.bin", bytes(64 * 2**20), zipfile.ZIP_DEFLATED)])
    # weights.npz variants
    with np.load(io.BytesIO(members["weights.npz"])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    first = sorted(arrays)[0]

    def with_npz(label, inner):
        _replace(seed, out / f"npz_{label}.cylstm", "weights.npz", inner)
    raw = {k: _npy(v) for k, v in arrays.items()}
    with_npz("header_1e12", _npz(dict(raw, **{first: _npy(
        {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}, b"\0" * 64)})))
    with_npz("header_neg", _npz(dict(raw, **{first: _npy(
        {"descr": "<f4", "fortran_order": False, "shape": (-1, 4)}, b"\0" * 64)})))
    with_npz("object", _npz(dict(raw, **{first: _npy(
        {"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\x80\x04N.")})))
    with_npz("complex", _npz(dict(raw, **{first: _npy(arrays[first].astype(complex))})))
    with_npz("string", _npz(dict(raw, **{first: _npy(arrays[first].astype(str))})))
    with_npz("fortran", _npz(dict(raw, **{first: _npy(np.asfortranarray(
        arrays[first].T).T if arrays[first].ndim == 2 else arrays[first])})))
    with_npz("shape_wrong", _npz(dict(raw, **{first: _npy(np.ones((7, 3), "f4"))})))
    with_npz("extra_array", _npz(dict(raw, extra=_npy(np.ones(3, "f4")))))
    with_npz("missing_array", _npz({k: v for k, v in raw.items() if k != first}))
    with_npz("inner_bomb", _npz(dict(raw, extra=_npy(np.zeros(2**24, "f4"))),
                                method=zipfile.ZIP_DEFLATED))
    with_npz("header_junk", _npz(dict(raw, **{first: b"\x93NUMPY\x01\x00\xff\xff{" + b"(" * 5000})))
    with_npz("not_zip", b"not a zip at all")


def keras_files(seed, out):
    members = dict((i.filename, d) for i, d in _zip_members(seed))
    config = json.loads(members["config.json"])
    for label, raw in _config_mutants(config):
        _replace(seed, out / f"cfg_{label}.keras", "config.json", raw)
    # no weights member, and a config declaring a large model (found by fuzzing:
    # it was built, random weights and all, before the missing member was noticed)
    big = re.sub(r'"units": \d+', '"units": 20000', members["config.json"].decode())
    _write_zip(out / "no_weights_big_config.keras",
               [("config.json", big.encode(), zipfile.ZIP_DEFLATED),
                ("metadata.json", members["metadata.json"], zipfile.ZIP_STORED),
                ("model.weights.h2", members["model.weights.h5"], zipfile.ZIP_STORED)])
    _replace(seed, out / "extra_member_bomb.keras", "config.json", members["config.json"],
             extra=[("padding.bin", bytes(64 * 2**20), zipfile.ZIP_DEFLATED)])
    _write_zip(out / "weights_bomb.keras",
               [(n, bytes(64 * 2**20) if n == "model.weights.h5" else d,
                 zipfile.ZIP_DEFLATED) for n, d in members.items()])
    for label, h5 in h5_mutants(io.BytesIO(members["model.weights.h5"])):
        _replace(seed, out / f"h5_{label}.keras", "model.weights.h5", h5)


def _copy_h5(src):
    """An in-memory copy of HDF5 bytes or file to mutate with h5py."""
    data = src.getvalue() if isinstance(src, io.BytesIO) else pathlib.Path(src).read_bytes()
    return io.BytesIO(data)


def h5_mutants(src):
    """(label, HDF5 bytes) variants: the structures check_structure refuses."""
    import h5py

    def mutate(fn):
        buf = _copy_h5(src)
        with h5py.File(buf, "r+") as f:
            fn(f)
        return buf.getvalue()

    def first_dataset(f):
        found = []
        f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
        return found[0]

    def huge_chunked(f):
        name = first_dataset(f)
        del f[name]
        f.create_dataset(name, shape=(2**30,), dtype="f4", chunks=(1024,))

    def huge_2d(f):
        name = first_dataset(f)
        del f[name]
        f.create_dataset(name, shape=(2**16, 2**14), dtype="f4", chunks=(16, 16))

    def soft_link(f):
        name = first_dataset(f)
        del f[name]
        f[name] = h5py.SoftLink("/" + name + "_elsewhere")

    def external_link(f):
        name = first_dataset(f)
        del f[name]
        f[name] = h5py.ExternalLink("/etc/passwd", "/x")

    def external_storage(f):
        name = first_dataset(f)
        shape = f[name].shape
        del f[name]
        f.create_dataset(name, shape=shape, dtype="f4", external=[("/dev/zero", 0, 2**20)])

    def string_dataset(f):
        name = first_dataset(f)
        del f[name]
        f[name] = np.array([b"x" * 10] * 3)

    def deep_groups(f):
        g = f
        for k in range(40):
            g = g.create_group(f"g{k}")

    def hard_cycle(f):
        g = f.create_group("cycle")
        g["self"] = g

    def many_attrs(f):
        f.attrs["large"] = np.zeros(60_000, "u1")

    return [(label, mutate(fn)) for label, fn in (
        ("huge_chunked", huge_chunked), ("huge_2d", huge_2d), ("soft_link", soft_link),
        ("external_link", external_link), ("external_storage", external_storage),
        ("string_dataset", string_dataset), ("deep_groups", deep_groups),
        ("hard_cycle", hard_cycle), ("big_attribute", many_attrs))]


def h5_files(seed, out, suffix):
    import h5py

    for label, data in h5_mutants(seed):
        (out / f"h5_{label}{suffix}").write_bytes(data)
    if suffix == ".h5":
        with h5py.File(seed, "r") as f:
            config = json.loads(f.attrs["model_config"])
        for label, raw in _config_mutants(config):
            buf = _copy_h5(seed)
            with h5py.File(buf, "r+") as f:
                f.attrs["model_config"] = raw
            (out / f"cfg_{label}{suffix}").write_bytes(buf.getvalue())
        buf = _copy_h5(seed)
        with h5py.File(buf, "r+") as f:
            g = f["model_weights"]
            g.attrs["layer_names"] = np.array([b"missing"])
        (out / f"layer_names_missing{suffix}").write_bytes(buf.getvalue())
        buf = _copy_h5(seed)
        with h5py.File(buf, "r+") as f:
            f["model_weights"].attrs["layer_names"] = np.arange(3)
        (out / f"layer_names_ints{suffix}").write_bytes(buf.getvalue())
        buf = _copy_h5(seed)
        with h5py.File(buf, "r+") as f:
            f.attrs["model_config"] = np.arange(5)
        (out / f"model_config_array{suffix}").write_bytes(buf.getvalue())


def onnx_files(seed, out):
    import onnx

    model = onnx.load(seed)

    def save(label, m):
        (out / f"{label}.onnx").write_bytes(m.SerializeToString())

    def variant(fn):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        fn(m)
        return m

    def external(location, length=None, offset=None):
        def fn(m):
            t = m.graph.initializer[0]
            t.ClearField("raw_data")
            t.ClearField("float_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            for key, value in (("location", location), ("offset", offset),
                               ("length", length)):
                if value is not None:
                    entry = t.external_data.add()
                    entry.key, entry.value = key, str(value)
        return fn
    # a sparse file beside the model: a huge apparent size, no blocks
    with open(out / "sparse.bin", "wb") as f:
        f.truncate(2**31 + 2**29)
    (out / "small.bin").write_bytes(b"\0" * 64)
    save("ext_parent", variant(external("../../../../etc/passwd")))
    save("ext_absolute", variant(external("/etc/passwd")))
    save("ext_missing", variant(external("nothere.bin")))
    save("ext_short", variant(external("small.bin")))
    save("ext_length_lies", variant(external("sparse.bin", length=2**31)))
    save("ext_offset_past", variant(external("sparse.bin", offset=2**40)))
    save("ext_offset_junk", variant(external("sparse.bin", offset="x")))

    def huge_dims(m):
        t = m.graph.initializer[0]
        del t.dims[:]
        t.dims.extend([2, 2**20, 2**20])
    save("dims_huge_inline", variant(huge_dims))

    def huge_dims_external(m):
        external("sparse.bin")(m)
        t = m.graph.initializer[0]
        del t.dims[:]
        t.dims.extend([2, 4 * 2**14, 2**14])
    save("dims_huge_external", variant(huge_dims_external))

    def neg_dims(m):
        t = m.graph.initializer[0]
        t.dims[0] = -1
    save("dims_negative", variant(neg_dims))

    def bad_type(m):
        m.graph.initializer[0].data_type = 999
    save("data_type_unknown", variant(bad_type))

    def string_type(m):
        m.graph.initializer[0].data_type = onnx.TensorProto.STRING
    save("data_type_string", variant(string_type))

    def raw_short(m):
        t = m.graph.initializer[0]
        t.raw_data = t.raw_data[:7] if t.raw_data else b"\0" * 7
    save("raw_short", variant(raw_short))

    def attr_bytes(m):
        for node in m.graph.node:
            if node.op_type == "LSTM":
                a = node.attribute.add()
                a.name = "direction"
                a.type = onnx.AttributeProto.STRING
                a.s = b"\xff\xfe"
    save("attr_not_utf8", variant(attr_bytes))

    def hidden_mismatch(m):
        for node in m.graph.node:
            for a in node.attribute:
                if a.name == "hidden_size":
                    a.i = 2**40
    save("hidden_size_huge", variant(hidden_mismatch))
    data = model.SerializeToString()
    (out / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (out / "garbage.onnx").write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + data)


def npz_files(seed, out):
    with np.load(seed) as npz:
        arrays = {k: npz[k] for k in npz.files}
    raw = {k: _npy(v) for k, v in arrays.items()}
    first = "weight_ih_l0"
    (out / "header_1e12.npz").write_bytes(_npz(dict(raw, **{first: _npy(
        {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}, b"\0" * 64)})))
    (out / "object.npz").write_bytes(_npz(dict(raw, **{first: _npy(
        {"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\x80\x04N.")})))
    (out / "shape_1d.npz").write_bytes(_npz(dict(raw, **{first: _npy(np.ones(12, "f4"))})))
    (out / "shape_huge_consistent.npz").write_bytes(_npz(dict(raw, **{first: _npy(
        {"descr": "<f4", "fortran_order": False, "shape": (4 * 2**20, 2)}, b"")})))
    (out / "bomb.npz").write_bytes(_npz(dict(raw, extra=_npy(np.zeros(2**24, "f4"))),
                                        method=zipfile.ZIP_DEFLATED))
    (out / "missing.npz").write_bytes(_npz({k: v for k, v in raw.items() if k != first}))
    (out / "int_weights.npz").write_bytes(_npz(dict(raw, **{first: _npy(
        arrays[first].astype("i4"))})))


# -- random byte-level mutations -------------------------------------------------------

def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(("flip", "truncate", "insert", "splice", "zero"))
        if not data:
            break
        i = rng.randrange(len(data))
        if op == "flip":
            data[i] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == "splice":
            j = rng.randrange(len(data))
            n = rng.randint(1, 64)
            data[i:i + n] = data[j:j + n]
        else:
            data[i:i + rng.randint(1, 8)] = b"\0" * min(8, len(data) - i)
    return bytes(data)


def make_corpus(out, random_per_seed=20, seed=0):
    """Write the corpus into ``out``; returns the list of files to load."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = make_seeds(out / "seeds")
    by_suffix = {p.name.split(".", 1)[1]: p for p in seeds}
    cylstm_files(by_suffix["cylstm"], out)
    keras_files(by_suffix["keras"], out)
    h5_files(by_suffix["h5"], out, ".h5")
    h5_files(by_suffix["weights.h5"], out, ".weights.h5")
    onnx_files(by_suffix["onnx"], out)
    npz_files(by_suffix["npz"], out)
    rng = random.Random(seed)
    for path in seeds:
        data = path.read_bytes()
        suffix = "." + path.name.split(".", 1)[1]
        for k in range(random_per_seed):
            (out / f"random_{path.name.split('.')[0]}_{k}{suffix}").write_bytes(
                mutate(data, rng))
    files = sorted(p for p in out.iterdir() if p.is_file() and not p.name.endswith(".bin"))
    return seeds + files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--random", type=int, default=20, help="random mutants per seed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = make_corpus(args.out, args.random, args.seed)
    print(f"{len(files)} files in {args.out}")


if __name__ == "__main__":
    sys.exit(main())
