"""A/B of C-backend builds in one process: batched ``ef21_step`` with each build's calls
taken in turn, so that the machine's drift reaches every build alike.

    python bench/ab_builds.py HEAD~1 HEAD [--n 1000] [--d 112] [--k 2 8 16]
        [--threads 1] [--seconds 4] [--sets 1] [--unchecked]

Each argument is a git revision (its ``csrc/`` taken with ``git archive``) or a folder
holding a ``csrc`` tree. Each is built as its own cffi module in a temporary folder,
with the flags of ``csrc/build_cffi.py`` (this checkout's), checked to give the same
indices, values and state as the first on every data set, then timed call by call for
``--seconds`` per k: float32 rows of standard normals, the state zeroed before each call
(as in ``bench/test_bench_kernels.py``'s batched rows); ``--sets`` data sets in turn (1:
the rows stay in the cache, as in that benchmark; 8 on 1000 x 112: they do not).
Prints the median per build and its ratio to the first build's. ``--unchecked`` skips
the bit check, for ablations (a build with a stage cut out, to time that stage). The
README's and the issue notes' "A/B in one process" figures come from this.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_of(spec, into, folder="csrc", marker="ef21fast.h"):
    """The ``folder`` tree of ``spec``: a folder (itself or its ``folder``/, recognised
    by the file ``marker``), else a git revision's, extracted under ``into``."""
    for cand in (os.path.join(spec, folder), spec):
        if os.path.isfile(os.path.join(cand, marker)):
            return os.path.abspath(cand)
    os.makedirs(into)
    archive = subprocess.run(["git", "-C", ROOT, "archive", spec, folder], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return os.path.join(into, folder)


def same_bits(first, other):
    """Whether two tuples of arrays (indices, values, state) are equal, bit for bit."""
    return all(a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(np.uint8),
                                                     np.ascontiguousarray(b).view(np.uint8))
               for a, b in zip(first, other))


def _build(csrc, name, tmp):
    """Build the kernels of ``csrc`` as module ``name`` in ``tmp``; returns the module."""
    sys.path.insert(0, os.path.join(ROOT, "csrc"))
    import build_cffi as bc  # this checkout's flags and source list
    from cffi import FFI

    omp_c, omp_l = bc._OMP
    ffi = FFI()
    ffi.cdef(bc._cdef_from_header(os.path.join(csrc, "ef21fast.h")))
    ffi.set_source(name, '#include "ef21fast.h"',
                   sources=[os.path.join(csrc, s) for s in bc.KERNEL_SOURCES],
                   include_dirs=[csrc],
                   extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math",
                                       "-std=c99"] + omp_c,
                   extra_link_args=omp_l)
    path = ffi.compile(tmpdir=tmp, verbose=False)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _call(mod, g, s, k):
    """One timed ef21_step call on the zeroed state s: (seconds, idx, val)."""
    n, d = g.shape
    idx = np.empty((n, k), np.int64)
    val = np.empty((n, k), np.float32)
    ffi, lib = mod.ffi, mod.lib
    s[...] = 0
    t0 = time.perf_counter()
    rc = lib.ef21_ef21_step_f32(ffi.from_buffer("float[]", g), ffi.from_buffer("float[]", s),
                                ffi.NULL, n, d, k, ffi.from_buffer("int64_t[]", idx),
                                ffi.from_buffer("float[]", val))
    t = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"ef21_ef21_step_f32 returned {rc}")
    return t, idx, val


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", help="git revisions or folders with a csrc tree")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=112)
    ap.add_argument("--k", type=int, nargs="+", default=[2, 8, 16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--sets", type=int, default=1)
    ap.add_argument("--unchecked", action="store_true",
                    help="time builds whose results differ (ablations) without the bit check")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        mods = []
        for i, spec in enumerate(a.builds):
            csrc = tree_of(spec, os.path.join(tmp, f"src{i}"))
            mods.append(_build(csrc, f"_ab_build{i}", os.path.join(tmp, f"build{i}")))
            mods[-1].lib.ef21_set_num_threads(a.threads)
        rng = np.random.default_rng(a.n)
        gs = [rng.standard_normal((a.n, a.d)).astype(np.float32) for _ in range(a.sets)]
        ss = [np.zeros_like(g) for g in gs]
        for k in a.k:
            for g, s in zip(gs, ss):
                _, i0, v0 = _call(mods[0], g, s, k)
                s0 = s.copy()
                for m, spec in zip(mods[1:], a.builds[1:]):
                    _, i1, v1 = _call(m, g, s, k)
                    if not a.unchecked and not same_bits((i0, v0, s0), (i1, v1, s)):
                        raise SystemExit(f"k = {k}: {spec} differs from {a.builds[0]}")
            times = [[] for _ in mods]
            end = time.perf_counter() + a.seconds
            j = 0
            while time.perf_counter() < end:
                for m, t in zip(mods, times):
                    t.append(_call(m, gs[j % a.sets], ss[j % a.sets], k)[0])
                j += 1
            base = np.median(times[0])
            print(f"{a.n} x {a.d} float32 ef21_step, k = {k}, {a.threads} thread(s), "
                  f"{a.sets} data set(s), same bits: "
                  + "  ".join(f"{spec} {np.median(t) * 1e6:.1f} us ({np.median(t) / base:.2f})"
                              for spec, t in zip(a.builds, times)))


if __name__ == "__main__":
    main()
