"""Builds the Cython backend (edgewalk._native) from native/ with OpenMP.

The default build is portable (the compiler's baseline instruction set). EDGEWALK_NATIVE=1
compiles for the machine that builds it (-march=native), for a machine that runs what it built:
``EDGEWALK_NATIVE=1 pip install --no-deps --force-reinstall -e .`` (see bench/README.md for its
measured gain). The Numba backend always compiles for the machine it runs on.
"""

import os
import sys
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "darwin":
    openmp_compile, openmp_link = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
elif sys.platform == "win32":
    openmp_compile, openmp_link = ["/openmp"], []
else:
    openmp_compile, openmp_link = ["-fopenmp"], ["-fopenmp"]

native = os.environ.get("EDGEWALK_NATIVE", "0")
if native not in ("0", "1"):
    sys.exit(f"EDGEWALK_NATIVE: must be 0 (portable build, the default) or 1 (-march=native), "
             f"got {native!r}")
if sys.platform == "win32":
    compile_args = openmp_compile
else:
    # Loops start on a 64-byte boundary: unaligned, the plain kernel's loop ran at 4.2e8 or
    # 4.9e8 steps/s depending on where unrelated code moved it (bench/README.md).
    compile_args = ["-O3", "-falign-loops=64", *openmp_compile, *(["-march=native"] if native == "1" else [])]

extension = Extension(
    "edgewalk._native",
    sources=["native/_native.pyx"],
    depends=glob("native/*.h"),
    include_dirs=["native"],
    define_macros=[("EW_MARCH_NATIVE", native)],
    extra_compile_args=compile_args,
    extra_link_args=openmp_link,
)

setup(ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}))
