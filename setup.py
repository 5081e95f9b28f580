"""Builds the Cython backend (edgewalk._native) from native/ with OpenMP."""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "darwin":
    openmp_compile, openmp_link = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
elif sys.platform == "win32":
    openmp_compile, openmp_link = ["/openmp"], []
else:
    openmp_compile, openmp_link = ["-fopenmp"], ["-fopenmp"]

extension = Extension(
    "edgewalk._native",
    sources=["native/_native.pyx"],
    include_dirs=["native"],
    extra_compile_args=["-O3", *openmp_compile] if sys.platform != "win32" else openmp_compile,
    extra_link_args=openmp_link,
)

setup(ext_modules=cythonize([extension], compiler_directives={"language_level": "3"}))
