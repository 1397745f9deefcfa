"""Build the compiled kernels of cylstm.

Set ``CYLSTM_DEBUG_CYTHON=1`` for a debug build: bounds checks, wraparound and
initialised-memoryview checks on, ``-O0 -g``. Release builds use ``-O3`` and
no ``-ffast-math`` (the gate math must match Keras/PyTorch to float rounding).
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

MOD_NAMES = [
    "cylstm._kernels.lstm_forward",
    "cylstm._kernels.lstm_backward",
    "cylstm._kernels.lstm_step",
]

DEBUG = os.environ.get("CYLSTM_DEBUG_CYTHON", "0") not in ("", "0")

if sys.platform == "win32":
    COMPILE_ARGS = ["/O2"]
else:
    COMPILE_ARGS = ["-O0", "-g"] if DEBUG else ["-O3"]
    COMPILE_ARGS += ["-Wno-unused-function", "-Wno-maybe-uninitialized"]

DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": True,
}


def make_extension(name):
    return Extension(
        name,
        [name.replace(".", os.sep) + ".pyx"],
        include_dirs=[numpy.get_include(), os.path.join("cylstm", "_kernels")],
        extra_compile_args=COMPILE_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


setup(
    ext_modules=cythonize(
        [make_extension(name) for name in MOD_NAMES],
        compiler_directives=DIRECTIVES,
    ),
)
