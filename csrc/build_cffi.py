"""cffi out-of-line API-mode builds of the two C extension modules (setup.py lists both):

``ef21fast._ckernels``
    The kernels of the ``"c"`` backend (``ef21fast.h``; ``keys.c`` ... ``plan.c``), used
    by :mod:`ef21fast.backends.c`.
``ef21fast._coracle``
    The fused GLM oracle (``glm_oracle.h``, ``glm_oracle.c``), used by
    :mod:`ef21fast.methods.oracle`.

Each builds on its own: if one fails, the other is still installed, and setup.py records
each failure in its own file. Flags: ``-O3 -ffp-contract=off -fno-fast-math`` (no FMA
contraction: results must match the NumPy reference bit for bit), ``-fopenmp`` when the
compiler accepts it (else a serial build; ``EF21FAST_NO_OPENMP=1`` forces that), no
``-march=native`` unless ``EF21FAST_NATIVE=1`` is set at build time, and
``EF21FAST_CFLAGS`` appended last (so e.g. ``-O1`` overrides ``-O3``).
"""

import os
import re
import sys
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

#: The translation units of the kernels, in the order of the Numba backend's modules.
KERNEL_SOURCES = ["keys.c", "passes.c", "passes_avx512.c", "select.c", "select_avx512.c",
                  "candidates.c", "rows.c", "scatter.c", "plan.c"]
#: The headers the kernels include (setuptools tracks only the sources by default).
KERNEL_HEADERS = ["ef21fast.h", "internal.h", "isa.h", "each_type.h", "typed.h", "keys.h",
                  "passes.h"]
ORACLE_SOURCES = ["glm_oracle.c"]
ORACLE_HEADERS = ["glm_oracle.h", "glm_oracle_typed.h", "isa.h"]


def _cdef_from_header(path):
    """The declarations between the CDEF markers of the header, for cffi."""
    with open(path) as fh:
        text = fh.read()
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
            print("ef21fast: compiler has no OpenMP; building the C modules serially",
                  file=sys.stderr)
            return [], []
    return ["-fopenmp"], ["-fopenmp"]


def _csrc(names):
    return [os.path.join("csrc", name) for name in names]


def _make(module, header, sources, headers, omp):
    """The FFI builder of one extension module: its CDEF block, sources and flags."""
    omp_c, omp_l = omp
    cflags = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c99"] + omp_c
    if os.environ.get("EF21FAST_NATIVE"):
        cflags.append("-march=native")
    extra = os.environ.get("EF21FAST_CFLAGS")
    if extra:
        cflags += extra.split()
    ffi = FFI()
    ffi.cdef(_cdef_from_header(os.path.join(HERE, header)))
    ffi.set_source(
        module,
        f'#include "{header}"',
        sources=_csrc(sources),
        include_dirs=[HERE],
        # rebuild when a header changes (the units also include themselves, see
        # each_type.h, so each source is its own dependency already)
        depends=_csrc(headers),
        extra_compile_args=cflags,
        extra_link_args=omp_l + (extra.split() if extra else []),
    )
    return ffi


_OMP = _openmp_flags()
ckernels = _make("ef21fast._ckernels", "ef21fast.h", KERNEL_SOURCES, KERNEL_HEADERS, _OMP)
coracle = _make("ef21fast._coracle", "glm_oracle.h", ORACLE_SOURCES, ORACLE_HEADERS, _OMP)

if __name__ == "__main__":
    ckernels.compile(verbose=True)
    coracle.compile(verbose=True)
