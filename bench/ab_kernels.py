"""A/B of Numba-backend versions in one process, as ``ab_builds.py`` does for C builds:
batched ``ef21_step`` with each version's calls taken in turn, so that the machine's
drift reaches every version alike; optionally the C backend beside them.

    python bench/ab_kernels.py HEAD~1 HEAD [--c] [--n 1000] [--d 112] [--k 2 8 16]
        [--threads 1] [--seconds 4] [--unchecked]

Each argument is a git revision (its ``kernels/`` taken with ``git archive``) or a
folder holding a ``kernels`` tree. Each is imported as its own package from a temporary
folder (so each compiles, and caches, its own code: the first call of each takes a few
seconds), checked to give the same indices, values and state as the first on the data,
then timed call by call for ``--seconds`` per k: float32 rows of standard normals, the
state zeroed before each call (as in ``bench/test_bench_kernels.py``'s batched rows).
``--c`` adds the installed C backend as a last column; ``--unchecked`` skips the
check (for ablations: versions with a stage cut out, whose results differ). Prints the median per version
and its ratio to the first one's. The README's and the issue notes' Numba "A/B in one
process" figures come from this.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_builds import same_bits, tree_of  # noqa: E402


def _load(tree, name, tmp):
    """The kernels package of ``tree``, imported as ``name`` from a copy under ``tmp``."""
    shutil.copytree(tree, os.path.join(tmp, name),
                    ignore=shutil.ignore_patterns("__pycache__"))
    if tmp not in sys.path:
        sys.path.insert(0, tmp)
    return importlib.import_module(name)


def _call(step, g, s, k):
    """One timed call on the zeroed state s: (seconds, idx, val)."""
    s[...] = 0
    t0 = time.perf_counter()
    idx, val = step(g, s, k, None)
    return time.perf_counter() - t0, idx, val


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("versions", nargs="+",
                    help="git revisions or folders with a kernels tree")
    ap.add_argument("--c", action="store_true", help="the C backend beside them")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=112)
    ap.add_argument("--k", type=int, nargs="+", default=[2, 8, 16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--unchecked", action="store_true",
                    help="time versions whose results differ (ablations)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        names, steps = list(a.versions), []
        for i, spec in enumerate(a.versions):
            tree = tree_of(spec, os.path.join(tmp, f"src{i}"), "kernels", "rows.py")
            mod = _load(tree, f"_ab_kernels{i}", os.path.join(tmp, "pkgs"))
            mod.set_num_threads(a.threads)
            steps.append(mod.ef21_step)
        if a.c:
            from ef21fast.backends import registry
            registry.set_num_threads(a.threads)
            names.append("c")
            steps.append(registry.get_kernel("ef21_step", "c"))
        g = np.random.default_rng(a.n).standard_normal((a.n, a.d)).astype(np.float32)
        s = np.zeros_like(g)
        for k in a.k:
            _, i0, v0 = _call(steps[0], g, s, k)
            s0 = s.copy()
            for step, name in zip(steps[1:], names[1:]):
                _, i1, v1 = _call(step, g, s, k)
                if not a.unchecked and not same_bits((i0, v0, s0), (i1, v1, s)):
                    raise SystemExit(f"k = {k}: {name} differs from {names[0]}")
            times = [[] for _ in steps]
            end = time.perf_counter() + a.seconds
            while time.perf_counter() < end:
                for step, t in zip(steps, times):
                    t.append(_call(step, g, s, k)[0])
            base = np.median(times[0])
            check = "unchecked" if a.unchecked else "same bits"
            print(f"{a.n} x {a.d} float32 ef21_step, k = {k}, {a.threads} thread(s), "
                  f"{check}: " + "  ".join(
                      f"{name} {np.median(t) * 1e6:.1f} us ({np.median(t) / base:.2f})"
                      for name, t in zip(names, times)))


if __name__ == "__main__":
    main()
