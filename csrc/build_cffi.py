"""cffi out-of-line API-mode build of the C backend: module ``ef21fast._ckernels``.

Flags: ``-O3 -ffp-contract=off`` (no FMA contraction: results must match the NumPy
reference bit for bit), ``-fopenmp`` when the compiler accepts it, else a serial
build. No ``-march=native`` unless ``EF21FAST_NATIVE=1`` is set at build time.
"""

import os
import re
import sys
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "ef21fast.h")
SOURCES = [os.path.join("csrc", "ef21fast_kernels.c"), os.path.join("csrc", "ef21fast_oracle.c")]


def _cdef_from_header(path):
    """The declarations between the CDEF markers of the header, for cffi."""
    text = open(path).read()
    m = re.search(r"/\* CDEF BEGIN \*/(.*)/\* CDEF END \*/", text, re.S)
    if m is None:
        raise RuntimeError(f"{path} has no CDEF BEGIN/END block")
    return m.group(1)


def _openmp_flags():
    """(compile, link) flags for OpenMP, or empty lists if the compiler lacks it."""
    if os.environ.get("EF21FAST_NO_OPENMP"):
        return [], []
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    cc = new_compiler()
    customize_compiler(cc)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_check.c")
        with open(src, "w") as fh:
            fh.write("#include <omp.h>\nint main(void){return omp_get_max_threads()<1;}\n")
        try:
            objs = cc.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            cc.link_executable(objs, os.path.join(tmp, "omp_check"),
                               extra_postargs=["-fopenmp"])
        except Exception:
            print("ef21fast: compiler has no OpenMP; building the C backend serially",
                  file=sys.stderr)
            return [], []
    return ["-fopenmp"], ["-fopenmp"]


def _make():
    omp_c, omp_l = _openmp_flags()
    cflags = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c99"] + omp_c
    if os.environ.get("EF21FAST_NATIVE"):
        cflags.append("-march=native")
    extra = os.environ.get("EF21FAST_CFLAGS")
    if extra:
        cflags += extra.split()
    ffi = FFI()
    ffi.cdef(_cdef_from_header(HEADER))
    ffi.set_source(
        "ef21fast._ckernels",
        '#include "ef21fast.h"',
        sources=SOURCES,
        include_dirs=[HERE],
        # rebuild when any header changes (setuptools only tracks SOURCES by default)
        depends=sorted(os.path.join("csrc", f) for f in os.listdir(HERE) if f.endswith(".h")),
        extra_compile_args=cflags,
        extra_link_args=omp_l + (extra.split() if extra else []),
    )
    return ffi


ffibuilder = _make()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
