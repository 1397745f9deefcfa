"""CYLSTM_ISA (cylstm/_isa.py): the environment variable caps the kernels'
instruction set through their force hook, and a capped run gives the same
results."""
import numpy as np
import pytest

import cylstm
from cylstm import _isa
from cylstm._kernels.lstm_forward import recurrent_isa


@pytest.fixture
def restore_isa():
    saved = _isa.kernel_levels()   # every module the variable caps
    yield recurrent_isa()
    _isa.restore_kernel_levels(saved)


def test_unset_changes_nothing(monkeypatch, restore_isa):
    monkeypatch.delenv(_isa.ENV, raising=False)
    assert _isa.requested_level() is None
    assert _isa.apply_env_cap() is None
    assert recurrent_isa() == restore_isa


@pytest.mark.parametrize("name", ["none", "avx2", "AVX512 "])
def test_cap_reaches_the_kernels(monkeypatch, restore_isa, name):
    # the CPU's own level (the session may run under a cap: CYLSTM_ISA=avx2)
    best = _isa.cap_kernels(2)
    monkeypatch.setenv(_isa.ENV, name)
    level = _isa.LEVELS[name.strip().lower()]
    assert _isa.apply_env_cap() == min(level, best)
    assert recurrent_isa() == min(level, best)
    # lstm_backward's elementwise loops and lstm_step's kernels too
    assert set(_isa.kernel_levels().values()) == {min(level, best)}
    assert set(_isa.kernel_levels()) == {"lstm_forward", "lstm_step", "lstm_backward"}


def test_capped_results_match(monkeypatch, restore_isa, rng):
    x = rng.standard_normal((8, 5, 16)).astype("float32")
    layer = cylstm.layers.LSTM(64, return_sequences=True)   # 8 rows: the packed kernel
    want = layer(x)
    for name in ("avx2", "none"):
        monkeypatch.setenv(_isa.ENV, name)
        _isa.apply_env_cap()
        np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-6)


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(_isa.ENV, "sse9")
    with pytest.raises(ValueError, match="CYLSTM_ISA.*avx2"):
        _isa.requested_level()
