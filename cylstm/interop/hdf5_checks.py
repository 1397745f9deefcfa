"""Checks of an HDF5 file's structure before libhdf5 is asked for any data.

``from_keras`` reads Keras ``.h5`` / ``.weights.h5`` files. A corrupt or
crafted file can declare a dataset far larger than the file (chunks never
written read as fill values), keep its data in another file (external
storage, external links), point a soft link anywhere, or nest groups without
end. Every object is visited through hard links only, to a bounded depth and
count, and every dataset's layout, filters and stored size are checked
against its declared size and the file's size. What passes is the only
structure the loader then reads.

Not excludable from Python: libhdf5 itself can loop on some corrupt internal
structures (B-trees, heaps) while these checks walk the file. For files from
untrusted sources, ``from_keras(path, timeout=seconds)`` first runs the same
reads in a child process and refuses the file when that does not finish in
time (docs/security.md).

Known libhdf5 loop, excluded here before the file is opened: a global heap
collection (the ``GCOL`` blocks that hold variable-length strings, such as
Keras's ``model_config``) whose objects do not advance -- a free-space
object of size 0, or sizes that wrap around -- makes libhdf5 1.14 spin in
``H5HG__cache_heap_deserialize`` when a string in it is read.
``check_global_heaps`` parses every collection the file holds the way
libhdf5 will and refuses those.

Known libhdf5 allocation of a declared size at open: the superblock's driver
information block, object headers (version 1 header size, version 2 first
chunk size) and local heaps declare lengths that libhdf5 allocates before it
reads them (a 17 KB file allocated 4 GB). ``check_metadata_lengths`` finds
those structures (from the superblock, and by signature) and refuses a length
larger than the file.

Known libhdf5 allocation of a declared size on read: a variable-length string
attribute (Keras's ``model_config``) keeps, in the attribute's data, a
4-byte length that libhdf5 allocates before it fetches the string (a 20 KB
file allocated 4 GB). ``check_vlen_attribute`` finds the attribute's message
in the file's bytes by name and refuses lengths larger than the file; an
attribute whose message cannot be found is not read.
"""
import contextlib
import mmap
import os
import re
import struct

import numpy as np

# A Keras model file of LSTM layers has a few dozen objects, nested a few
# levels deep; far beyond that is not a Keras file.
MAX_DEPTH = 24
MAX_OBJECTS = 100_000
# Declared data may exceed what is stored by at most deflate's ratio.
MAX_EXPANSION = 1100
MAX_ATTRIBUTE_BYTES = 16 * 2**20
# Filters libhdf5 applies that Keras/h5py files use: gzip, shuffle,
# fletcher32, lzf. Anything else (szip, n-bit, scale-offset, plugins) is refused.
ALLOWED_FILTERS = {1, 2, 3, 32000}


class HDF5StructureError(ValueError):
    """The HDF5 file's structure is not one from_keras reads (the caller adds the file)."""


def check_dataset(ds, where, file_size):
    """Refuse a dataset whose declared size its storage cannot hold, stored
    elsewhere, virtual, or of a non-numeric type."""
    import h5py

    dtype = ds.dtype
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise HDF5StructureError(f"dataset {where!r} has dtype {dtype}; Keras weights are "
                                 "numbers")
    if ds.is_virtual:
        raise HDF5StructureError(f"dataset {where!r} is a virtual dataset (data in other files)")
    plist = ds.id.get_create_plist()
    if plist.get_external_count() > 0:
        raise HDF5StructureError(f"dataset {where!r} keeps its data in external files")
    for k in range(plist.get_nfilters()):
        code = plist.get_filter(k)[0]
        if code not in ALLOWED_FILTERS:
            raise HDF5StructureError(f"dataset {where!r} uses HDF5 filter {code}; only gzip, "
                                     "shuffle, fletcher32 and lzf are read")
    shape = ds.shape
    if shape is None:
        raise HDF5StructureError(f"dataset {where!r} has no shape (a null dataspace)")
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    stored = ds.id.get_storage_size()
    if stored > file_size:
        raise HDF5StructureError(f"dataset {where!r} claims {stored} stored bytes in a file of "
                                 f"{file_size}")
    layout = plist.get_layout()
    if layout == h5py.h5d.CONTIGUOUS and nbytes and stored != nbytes:
        raise HDF5StructureError(f"dataset {where!r} declares shape {shape} of {dtype} "
                                 f"({nbytes} bytes) but stores {stored}")
    if nbytes > MAX_EXPANSION * stored + 4096:
        raise HDF5StructureError(f"dataset {where!r} declares shape {shape} of {dtype} "
                                 f"({nbytes} bytes) from {stored} stored bytes; the file does "
                                 "not hold its data")
    return count


def check_attribute(obj, name, where, data=None, checked=None):
    """Refuse an attribute whose stored size is beyond any Keras attribute, or a
    variable-length one whose declared lengths ``data`` (the file's bytes)
    does not vouch for. The loaders pass ``data`` for every attribute of the
    file (``check_structure``) before reading any."""
    import h5py

    attr = obj.attrs.get_id(name)
    try:
        stored = attr.get_storage_size()
    except Exception:  # noqa: BLE001 - h5py raises on an empty attribute's 0
        stored = 0
    if stored > MAX_ATTRIBUTE_BYTES:
        raise HDF5StructureError(f"attribute {name!r} of {where!r} is {stored} bytes, "
                                 "larger than any Keras attribute")
    kind = attr.dtype.kind
    if kind not in "biufSUO":
        raise HDF5StructureError(f"attribute {name!r} of {where!r} has dtype {attr.dtype}")
    vlen = isinstance(attr.get_type(), h5py.h5t.TypeVlenID) or (
        isinstance(attr.get_type(), h5py.h5t.TypeStringID) and attr.get_type().is_variable_str())
    if vlen and data is not None and (checked is None or name not in checked):
        check_vlen_attribute(data, name)   # every message of that name at once
        if checked is not None:
            checked.add(name)


def check_structure(root, file_size, data=None):
    """Walk every object under ``root`` through hard links only; check each
    dataset and attribute (``data``: the file's bytes, for variable-length
    attributes). Returns the number of values in float datasets (what the
    file can hold as weights)."""
    import h5py

    state = {"objects": 0, "values": 0}
    checked = set()

    def visit(group, path, depth):
        if depth > MAX_DEPTH:
            raise HDF5StructureError(f"groups are nested more than {MAX_DEPTH} deep at "
                                     f"{path!r} (a cycle of hard links?)")
        for name in list(group.attrs):
            check_attribute(group, name, path, data, checked)
        for name in group:
            where = f"{path.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise HDF5StructureError(f"{where!r} is a {type(link).__name__}; Keras files "
                                         "hold only hard links")
            state["objects"] += 1
            if state["objects"] > MAX_OBJECTS:
                raise HDF5StructureError(f"the file holds more than {MAX_OBJECTS} objects")
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                visit(obj, where, depth + 1)
            elif isinstance(obj, h5py.Dataset):
                for attr in list(obj.attrs):
                    check_attribute(obj, attr, where, data, checked)
                count = check_dataset(obj, where, file_size)
                if obj.dtype.kind == "f":
                    state["values"] += count
            else:
                raise HDF5StructureError(f"{where!r} is a {type(obj).__name__}; Keras files "
                                         "hold groups and datasets only")

    visit(root, root.name or "/", 0)
    return state["values"]


def read_weight(ds, shape, where):
    """The float array of dataset ``ds``, after checking it has ``shape``."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise HDF5StructureError(f"{where!r} is not a dataset")
    if ds.dtype.kind != "f":
        raise HDF5StructureError(f"weight {where!r} has dtype {ds.dtype}; expected floats")
    if tuple(ds.shape or ()) != tuple(shape):
        raise HDF5StructureError(f"weight {where!r} has shape {ds.shape}; the layer needs "
                                 f"{tuple(shape)}")
    return np.asarray(ds[()])


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _size_of_lengths(data):
    """The superblock's 'size of lengths' (bytes per length field): 8 for
    files h5py and Keras write, 4 or 2 possible; None if no superblock."""
    for base in (0, 512, 1024, 2048, 4096):
        if data[base:base + 8] == _HDF5_SIGNATURE:
            version = data[base + 8]
            at = base + (14 if version in (0, 1) else 10)
            if at < len(data):
                return data[at]
    return None


def check_global_heaps(data):
    """Refuse the file (bytes or mmap) if any global heap collection in it would
    make libhdf5's parser loop (see the module docstring)."""
    lengths = _size_of_lengths(data) or 8
    if lengths not in (2, 4, 8):
        raise HDF5StructureError(f"the superblock declares {lengths}-byte lengths")
    fmt = {2: "<H", 4: "<I", 8: "<Q"}[lengths]
    header = 8 + lengths            # signature, version, 3 reserved, collection size
    obj_header = 8 + lengths        # index, refcount, 4 reserved, object size
    for m in re.finditer(b"GCOL\x01", data):
        start = m.start()
        if start + header > len(data):
            continue
        size = struct.unpack(fmt, data[start + 8:start + 8 + lengths])[0]
        end = start + size
        p = start + header
        while p < end:
            if p + obj_header > end:
                break            # the tail is free space
            if p + obj_header > len(data):
                break            # libhdf5 cannot read past the file: it fails, not loops
            idx = struct.unpack("<H", data[p:p + 2])[0]
            obj_size = struct.unpack(fmt, data[p + 8:p + 8 + lengths])[0]
            need = obj_header + ((obj_size + 7) // 8) * 8 if idx > 0 else obj_size
            if need == 0 or need >= 2**63:
                raise HDF5StructureError(
                    f"the global heap collection at byte {start} has an object of size "
                    f"{obj_size} that libhdf5's parser would loop on")
            p += need


@contextlib.contextmanager
def mapped(path):
    """The file's bytes, mapped rather than read (b"" for an empty file)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def _superblock(data):
    for base in (0, 512, 1024, 2048, 4096, 8192):
        if data[base:base + 8] == _HDF5_SIGNATURE:
            return base
    return None


def _read_uint(data, at, width):
    if at < 0 or at + width > len(data):
        return None
    return int.from_bytes(data[at:at + width], "little")


def check_metadata_lengths(data):
    """Refuse the file (bytes or mmap) if a superblock driver block, object
    header or local heap declares a length larger than the file: libhdf5
    would allocate it before reading (see the module docstring)."""
    size = len(data)
    base = _superblock(data)
    if base is None or size < base + 96:
        return   # no superblock, or a truncated one: libhdf5 reports it
    version = data[base + 8]

    def too_long(what, length):
        if length is not None and length > size:
            raise HDF5StructureError(f"the {what} declares {length} bytes in a file of {size}")

    def v1_header(addr, what):
        if addr is None or addr >= size:
            return
        at = base + addr
        if _read_uint(data, at, 1) == 1:
            too_long(what, _read_uint(data, at + 8, 4))

    if version in (0, 1):
        offsets, lengths = data[base + 13], data[base + 14]
        if offsets not in (2, 4, 8) or lengths not in (2, 4, 8):
            raise HDF5StructureError(f"the superblock declares {offsets}-byte addresses and "
                                     f"{lengths}-byte lengths")
        at = base + (24 if version == 0 else 28)
        driver = _read_uint(data, at + 3 * offsets, offsets)
        if driver is not None and driver != (1 << (8 * offsets)) - 1:
            too_long("driver information block", _read_uint(data, base + driver + 4, 4))
        root = _read_uint(data, at + 4 * offsets + offsets, offsets)
        v1_header(root, "root group's object header")
        entry = 2 * offsets + 24
        for m in re.finditer(b"SNOD\x01", data):
            count = _read_uint(data, m.start() + 6, 2) or 0
            for k in range(min(count, 1024)):
                addr = _read_uint(data, m.start() + 8 + k * entry + offsets, offsets)
                v1_header(addr, "object header of a group member")
        for m in re.finditer(b"HEAP\x00", data):
            too_long("local heap", _read_uint(data, m.start() + 8, lengths))
    for m in re.finditer(b"OHDR\x02", data):
        flags = _read_uint(data, m.start() + 5, 1) or 0
        at = m.start() + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        too_long("object header", _read_uint(data, at, 1 << (flags & 3)))


def check_file_bytes(data):
    """The byte-level checks made before libhdf5 opens the file."""
    check_metadata_lengths(data)
    check_global_heaps(data)


def _vlen_lengths(data, at, name_size, version):
    """The declared lengths of the elements of the attribute message whose
    name starts at ``at``, or None when the bytes there are not one."""
    lengths = _size_of_lengths(data) or 8
    if version == 1:
        header = at - 8
        pad = lambda n: (n + 7) // 8 * 8  # noqa: E731 - version 1 pads to 8 bytes
    elif version == 2:
        header = at - 8
        pad = lambda n: n  # noqa: E731
    else:
        header = at - 9
        pad = lambda n: n  # noqa: E731
    if header < 0 or _read_uint(data, header, 1) != version \
            or _read_uint(data, header + 2, 2) != name_size:
        return None
    dt_size = _read_uint(data, header + 4, 2)
    ds_size = _read_uint(data, header + 6, 2)
    dt = at + pad(name_size)
    ds = dt + pad(dt_size)
    values = ds + pad(ds_size)
    if _read_uint(data, dt, 1) is None or (data[dt] & 0x0F) != 9:
        return None   # not a variable-length type
    rank = _read_uint(data, ds + 1, 1)
    ds_version = _read_uint(data, ds, 1)
    if rank is None or ds_version not in (1, 2) or rank > 32:
        return None
    dims_at = ds + (8 if ds_version == 1 else 4)
    count = 1
    for k in range(rank):
        d = _read_uint(data, dims_at + k * lengths, lengths)
        if d is None:
            return None
        count *= d
    offsets = 8
    element = 4 + offsets + 4
    if count > len(data) // element:
        return [len(data) + 1]   # more elements than the file can hold
    return [_read_uint(data, values + k * element, 4) for k in range(count)]


def check_vlen_attribute(data, name):
    """Refuse a variable-length attribute whose message (found by its name in
    the file's bytes) declares a length beyond the file, or cannot be found."""
    key = name.encode("utf-8") + b"\x00"
    found = False
    for m in re.finditer(re.escape(key), data):
        for version in (1, 2, 3):
            lengths = _vlen_lengths(data, m.start(), len(key), version)
            if lengths is None:
                continue
            found = True
            for n in lengths:
                if n is None or n > len(data):
                    raise HDF5StructureError(f"attribute {name!r} declares a "
                                             f"variable-length value of {n} bytes in a file "
                                             f"of {len(data)}")
    if not found:
        raise HDF5StructureError(f"attribute {name!r} is variable-length and its message "
                                 "is not where HDF5 keeps it; not read")
