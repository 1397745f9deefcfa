"""The hand-written stubs of the compiled modules (cylstm/_kernels/*.pyi) agree
with the built extension: ``mypy.stubtest`` reads the runtime signatures
(Cython's ``embedsignature``, set in setup.py) and compares them with the stubs.
Stubs drift when a .pyx signature changes; rerun after every kernel change:

    python -m mypy.stubtest --mypy-config-file pyproject.toml \
        --allowlist tests/typing/stubtest_allowlist.txt \
        cylstm._kernels.lstm_forward cylstm._kernels.lstm_backward cylstm._kernels.lstm_step \
        cylstm._kernels.lstm_quantized

The allowlist holds only Cython artefacts (see its comments).
"""
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
MODULES = ["cylstm._kernels.lstm_forward", "cylstm._kernels.lstm_backward",
           "cylstm._kernels.lstm_step", "cylstm._kernels.lstm_quantized"]


def test_stubtest_finds_no_drift():
    pytest.importorskip("mypy.stubtest")
    args = [sys.executable, "-m", "mypy.stubtest", "--allowlist",
            str(HERE / "stubtest_allowlist.txt")]
    if (ROOT / "pyproject.toml").exists():
        args += ["--mypy-config-file", str(ROOT / "pyproject.toml")]
    result = subprocess.run(args + MODULES, cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Success: no issues found in {len(MODULES)} modules" in result.stdout
