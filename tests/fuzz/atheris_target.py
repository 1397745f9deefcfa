"""One coverage-guided (atheris / libFuzzer) fuzz target per loader.

    python -m tests.fuzz.atheris_target TARGET [libFuzzer options] [CORPUS_DIR ...]

Each input is written to a file with the target's suffix, in a folder that
also holds the external-data files an ONNX model may name (a sparse 2.5 GB
file among them), and loaded. ValueError is the contract; any other
exception is reported by atheris as a crash, and libFuzzer's ``-timeout`` and
``-rss_limit_mb`` / ``-malloc_limit_mb`` report hangs and memory blow-ups.
Run through ``python -m tests.fuzz.run`` (it picks the options and seeds).
"""
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["cylstm"]):
    import cylstm  # noqa: F401 - instrumented for coverage
    import cylstm.interop.hdf5_checks  # noqa: F401
    import cylstm.interop.keras_files  # noqa: F401
    import cylstm.interop.onnx_lstm  # noqa: F401
    import cylstm.interop.onnx_tensors  # noqa: F401
    import cylstm.saving  # noqa: F401

from .loaders import LOADERS, in_contract  # noqa: E402


def main(argv):
    if len(argv) < 2 or argv[1] not in LOADERS:
        print(f"usage: python -m tests.fuzz.atheris_target {{{','.join(LOADERS)}}} [options]")
        return 2
    name = argv[1]
    loader, suffix = LOADERS[name]
    folder = tempfile.mkdtemp(prefix=f"cylstm-fuzz-{name}-")
    with open(os.path.join(folder, "sparse.bin"), "wb") as f:
        f.truncate(2**31 + 2**29)
    with open(os.path.join(folder, "small.bin"), "wb") as f:
        f.write(b"\0" * 64)
    path = os.path.join(folder, "input" + suffix)

    def test_one_input(data):
        with open(path, "wb") as f:
            f.write(data)
        try:
            loader(path)
        except Exception as e:  # noqa: BLE001 - out-of-contract ones re-raised
            if not in_contract(e):
                raise

    atheris.Setup([argv[0]] + argv[2:], test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
