"""Fixtures of the kernel tests."""
import pytest

from cylstm import _ops
from cylstm._isa import cap_kernels, kernel_levels, restore_kernel_levels
from cylstm._kernels.lstm_forward import recurrent_isa

# Each extension module keeps its own level (isa.h's static): capping one
# leaves the others at the CPU's, so the fixture caps every module's hook, as
# CYLSTM_ISA does (cylstm/_isa.py).

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
    _ops.cpu()   # made first: it applies CYLSTM_ISA's cap, which `before` must see
    before = kernel_levels()
    if request.param > recurrent_isa():
        pytest.skip("this CPU lacks the instruction set")
    cap_kernels(request.param)
    yield request.param
    restore_kernel_levels(before)
