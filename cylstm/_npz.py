"""Reading ``.npz`` archives without trusting their declared sizes.

``numpy.load`` allocates whatever an ``.npy`` header declares before it reads
a byte of data (a 10**12-element header is a MemoryError), and an ``.npz``
member may be compressed a thousandfold. Here every member's header is read
and checked first -- a float dtype, C or Fortran order, and a declared size
that the member (and the archive it sits in) actually holds -- and data is
read only for the members the caller needs, after the caller has compared
their shapes with what it expects. Nothing is ever unpickled.
"""
import zipfile

import numpy as np

# Deflate cannot expand data by more than about 1032:1; a member whose
# declared size is larger than this many times its compressed size is lying.
MAX_EXPANSION = 1100
# Largest .npy header numpy writes for any shape is a few hundred bytes.
MAX_HEADER_BYTES = 10_000


class NpzError(ValueError):
    """What is wrong with an ``.npz`` archive (the caller adds the file name)."""


class Header:
    """One member's checked ``.npy`` header: shape, dtype, data offset."""

    __slots__ = ("member", "shape", "dtype", "fortran", "offset", "nbytes")

    def __init__(self, member, shape, dtype, fortran, offset):
        self.member = member
        self.shape = shape
        self.dtype = dtype
        self.fortran = fortran
        self.offset = offset
        count = 1
        for d in shape:
            count *= d
        self.nbytes = count * dtype.itemsize

    @property
    def size(self):
        return self.nbytes // self.dtype.itemsize


def check_member_sizes(info, what):
    """Refuse a zip member whose declared size its compressed bytes cannot give."""
    if info.file_size > MAX_EXPANSION * info.compress_size + 1024:
        raise NpzError(f"{what} declares {info.file_size} bytes from {info.compress_size} "
                       "compressed bytes, more than any real compression gives")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise NpzError(f"{what} uses zip compression method {info.compress_type}; only "
                       "stored and deflate are read")
    if info.flag_bits & 0x1:
        raise NpzError(f"{what} is encrypted")


def _read_header(fp, member, info, kinds):
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(
            fp, max_header_size=MAX_HEADER_BYTES)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(
            fp, max_header_size=MAX_HEADER_BYTES)
    else:
        raise NpzError(f"{member!r} has .npy format version {version}")
    if dtype.hasobject:
        raise NpzError(f"{member!r} holds dtype {dtype}: reading it would need unpickling, "
                       "which cylstm never does")
    if dtype.kind not in kinds or dtype.fields is not None \
            or dtype.subdtype is not None:
        raise NpzError(f"{member!r} holds dtype {dtype}, expected "
                       + ("float32 or float64" if kinds == "f" else f"a kind in {kinds!r}"))
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise NpzError(f"{member!r} declares an invalid shape {shape}")
    header = Header(member, tuple(shape), dtype, bool(fortran), fp.tell())
    if info.file_size != header.offset + header.nbytes:
        raise NpzError(f"{member!r} declares shape {header.shape} of {dtype} "
                       f"({header.nbytes} bytes) but holds {info.file_size - header.offset}")
    return header


class NpzReader:
    """Open ``.npz`` archive (a path or a seekable binary file) with checked headers.

    ``headers`` maps array names (member names without ``.npy``) to Header.
    ``read(name)`` reads one array; ``allowed`` (a set of names), when given,
    refuses any other member before anything is read.
    """

    def __init__(self, file, allowed=None, kinds="f"):
        try:
            self._zip = zipfile.ZipFile(file)
        except zipfile.BadZipFile as e:
            raise NpzError(f"not a zip archive ({e})") from None
        try:
            self.headers = {}
            for info in self._zip.infolist():
                if not info.filename.endswith(".npy"):
                    raise NpzError(f"member {info.filename!r} is not an .npy array")
                name = info.filename[:-4]
                if allowed is not None and name not in allowed:
                    raise NpzError(f"member {info.filename!r} is not one this file needs")
                if name in self.headers:
                    raise NpzError(f"member {info.filename!r} appears twice")
                check_member_sizes(info, repr(info.filename))
                with self._zip.open(info) as fp:
                    self.headers[name] = _read_header(fp, info.filename, info, kinds)
        except BaseException:
            self._zip.close()
            raise

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, name, out=None):
        """The array ``name``; into ``out`` (same shape, any float dtype) when given."""
        h = self.headers[name]
        arr = np.empty(h.shape, h.dtype, order="F" if h.fortran else "C")
        with self._zip.open(h.member) as fp:
            fp.seek(h.offset)
            view = memoryview(arr.reshape(-1, order="A")).cast("B")
            got = 0
            while got < h.nbytes:   # in pieces: no second full-size buffer
                piece = fp.read(min(1 << 22, h.nbytes - got))
                if not piece:
                    raise NpzError(f"{h.member!r} is truncated")
                view[got:got + len(piece)] = piece
                got += len(piece)
        if out is not None:
            np.copyto(out, arr, casting="unsafe")
            return out
        return arr
