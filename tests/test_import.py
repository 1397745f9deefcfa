"""``import cylstm`` stays light: what only some calls need loads on first use.

scipy.special (only gelu's erf needs it) and scipy.linalg (the compiled
kernels' BLAS, loaded by the first layer call) each took longer to import than
numpy itself. Checked in a fresh interpreter, by module, not by time.
"""
import os
import pathlib
import subprocess
import sys

import cylstm

SCRIPT = """
import sys
import cylstm
eager = sorted(m for m in ("scipy.special", "scipy.linalg") if m in sys.modules)
print("eager:", eager)
import numpy as np
out = cylstm.layers.LSTM(3)(np.ones((2, 4, 5), "float32"))
print("forward:", out.shape, "scipy.linalg" in sys.modules)
"""


def test_import_cylstm_loads_neither_scipy_special_nor_scipy_linalg(tmp_path):
    env = dict(os.environ)
    # The cylstm under test (a checkout or an installed wheel), not the cwd's.
    env["PYTHONPATH"] = str(pathlib.Path(cylstm.__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eager: []" in proc.stdout, proc.stdout
    # ...and a forward pass still works, loading the kernels when it needs them.
    assert "forward: (2, 3) True" in proc.stdout, proc.stdout
