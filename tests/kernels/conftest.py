"""Fixtures of the kernel tests."""
import pytest

from cylstm import _ops
from cylstm._kernels.lstm_forward import recurrent_isa
from cylstm._kernels.lstm_step import fused_isa

# Each extension module keeps its own level (recurrent.h's static): capping
# one leaves the other at the CPU's, so the fixture caps both hooks, as
# CYLSTM_ISA does (cylstm/_isa.py).
_HOOKS = (recurrent_isa, fused_isa)

# The levels a module's tests run at, and their test ids; a module names
# others in ISA_LEVELS (e.g. {..., 0: "blas"} for its fallback path too).
DEFAULT_LEVELS = {2: "avx512", 1: "avx2"}


def pytest_generate_tests(metafunc):
    if "isa" in metafunc.fixturenames:
        levels = getattr(metafunc.module, "ISA_LEVELS", DEFAULT_LEVELS)
        metafunc.parametrize("isa", list(levels), ids=list(levels.values()), indirect=True)


@pytest.fixture
def isa(request):
    """The test runs with the kernels capped at instruction-set level
    ``request.param`` (2 AVX-512F, 1 AVX2 + FMA, 0 none); skipped where the
    CPU lacks it. The levels in force before are restored after."""
    _ops.cpu()   # made first: it applies CYLSTM_ISA's cap, which `best` must see
    best = [hook() for hook in _HOOKS]
    if request.param > best[0]:
        pytest.skip("this CPU lacks the instruction set")
    for hook in _HOOKS:
        hook(request.param)
    yield request.param
    for hook, level in zip(_HOOKS, best):
        hook(level)
