"""Build the compiled kernels of cylstm.

Set ``CYLSTM_DEBUG_CYTHON=1`` for a debug build: bounds checks, wraparound and
initialised-memoryview checks on, ``-O0 -g``, symbols kept. Release builds use
``-O3`` and no ``-ffast-math`` (the gate math must match Keras/PyTorch to float
rounding), without debug information, and are stripped on Linux (the wheel
shrinks from 2.5 MB to under 1 MB).

Flags depend on the compiler that builds, not on the platform alone: MSVC
takes its own; GCC and clang take ``-fno-trapping-math``, which changes no
result but lets GCC vectorise the selects of the gate loops (see fastmath.h).
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MOD_NAMES = [
    "cylstm._kernels.lstm_forward",
    "cylstm._kernels.lstm_backward",
    "cylstm._kernels.lstm_step",
    "cylstm._kernels.lstm_quantized",
]

DEBUG = os.environ.get("CYLSTM_DEBUG_CYTHON", "0") not in ("", "0")


def compiler_flags(compiler):
    """(compile args, link args) for a distutils compiler object."""
    if compiler.compiler_type == "msvc":
        return (["/Od", "/Zi"], ["/DEBUG"]) if DEBUG else (["/O2"], [])
    cc = os.path.basename(str(getattr(compiler, "compiler_so", ["cc"])[0]))
    is_clang = "clang" in cc or sys.platform == "darwin"
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
    compile_args += ["-fno-trapping-math", "-Wno-unused-function"]
    if not is_clang:
        compile_args.append("-Wno-maybe-uninitialized")
    link_args = []
    if not DEBUG and sys.platform.startswith("linux"):
        link_args.append("-s")  # strip the symbol table too
    return compile_args, link_args


class BuildExt(build_ext):
    """build_ext with flags chosen for the compiler it found."""

    def build_extensions(self):
        compile_args, link_args = compiler_flags(self.compiler)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + list(ext.extra_compile_args)
            ext.extra_link_args = link_args + list(ext.extra_link_args)
        super().build_extensions()


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
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


setup(
    ext_modules=cythonize(
        [make_extension(name) for name in MOD_NAMES],
        compiler_directives=DIRECTIVES,
    ),
    cmdclass={"build_ext": BuildExt},
)
