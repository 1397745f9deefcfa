"""The loaders' error contract, in one place.

Every loader (``load_model``, ``from_keras``, ``from_onnx``, state dicts read
from ``.npz``) raises ``ValueError`` -- or a documented subclass, such as
``ModelFileNotFoundError`` -- naming the file and what is wrong, whatever the
file holds. Parsers below them (zipfile, json, h5py, protobuf, numpy) let out
their own exception types on malformed input (OSError, KeyError,
RecursionError, UnicodeDecodeError, OverflowError, DecodeError, ...); the
guard here turns those into ValueError. MemoryError, ImportError (a missing
optional package) and KeyboardInterrupt pass through unchanged: they say
something about the machine, not about the file.
"""
import contextlib


@contextlib.contextmanager
def file_errors(source, what="Cannot load"):
    """Re-raise anything a malformed file provokes as ValueError naming ``source``."""
    try:
        yield
    except (MemoryError, ImportError, KeyboardInterrupt, SystemExit):
        raise
    except FileNotFoundError as e:
        if isinstance(e, ValueError):   # ModelFileNotFoundError: already in contract
            raise
        raise ValueError(f"{what} {source}: a file it refers to is missing ({e}).") from None
    except ValueError as e:
        if source in str(e):
            raise
        raise ValueError(f"{what} {source}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the contract: any malformed input is ValueError
        raise ValueError(f"{what} {source}: the file is malformed, truncated or corrupt "
                         f"({type(e).__name__}: {e}).") from None
