"""EF21 at scale through the public API: setup time (load, constants), time per round
and peak memory against the data plus the client states.

Cases (issue 14, item 4), each run in its own process so that its peak resident set
(``ru_maxrss``) is its own:

* ``a9a``: the a9a LIBSVM file (``--a9a PATH``; a synthetic CSR of its shape and
  density when the file is missing), logistic regression, n = 10,000 clients;
* ``news20``: :func:`ef21fast.methods.data_sparse.make_news20_like` (19996 x 1355191,
  0.034% non-zeros), logistic regression, n = 100 clients.

Each case runs ``ef21fast.methods.algorithms.run(problem, "ef21", k=1, iters=T)``
(its trace included: f and ||grad f||^2 every round). Memory is the resident set
above the one after the imports (those of the setup included): its peak during the
setup (load and constants), and its peak during the run (the peak is reset after the
setup through /proc/self/clear_refs), against the data (the CSR arrays data, indices and
indptr as the problem holds them, and the labels) plus the client states (n x d); the
run overhead is run peak / (data + states) - 1. A tiny problem goes through the case's
own set-up and a run before the base is taken (a tiny LIBSVM file through the loader,
the split and ``rows_by_length``; a tiny ``make_sparse_classification``): the first
calls' lazy imports, caches and code pages are not counted, and the
heap's free memory is returned to the system (glibc ``malloc_trim``) before the base
and before the run, so that what the loader and the setup freed is not counted as the
run's. With ``--again`` the whole case runs once at full size first and is dropped
before the base: what a first run leaves in the process for good (pages of library
code and of OpenBLAS's buffers touched for the first time, heap that ``malloc_trim``
cannot return) is then in the base, as for the second run of a sweep. The a9a rows are ordered by length inside each client
(:func:`ef21fast.methods.data_sparse.rows_by_length`), so the fused oracle shares the
problem's arrays instead of running on a reordered copy. ``--dtype float32`` runs the
problem in float32 (``LogisticRegression(data, dtype="float32")``): it keeps the float64
data and a float32 copy of its values (and labels), which then count with the data
("copy" in the table), and float32 states.

    python bench/scale.py [--a9a PATH] [--rounds T] [--cases a9a,news20] [--threads N]
                          [--again] [--dtype float64|float32]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rss import current_bytes, peak_bytes, reset_peak, trim  # bench/rss.py

DEFAULT_A9A = Path(__file__).resolve().parents[2] / "shared" / "data" / "a9a.txt"
A9A_SHAPE = (32561, 123, 0.11275)  # rows, features, density of a9a


def _mb(nbytes: int) -> float:
    return nbytes / 2**20


def _write_tiny_libsvm(path: str) -> None:
    """A LIBSVM file of 60 binary rows in 40 features, labels -1 / +1."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.datasets import dump_svmlight_file

    A = sp.random(60, 40, density=0.2, format="csr", random_state=0)
    A.data[:] = 1.0
    dump_svmlight_file(A, np.where(np.arange(60) % 2, 1.0, -1.0), path, zero_based=False)


def _load(case: str, a9a: str, tiny: bool = False):
    """The case's ClientData and where it comes from; ``tiny``: the same steps on a
    tiny problem (``a9a`` then names a tiny LIBSVM file)."""
    from ef21fast.methods import data, data_sparse

    if case == "a9a":
        n = 4 if tiny else 10_000
        if os.path.exists(a9a):
            A, b = data.load_libsvm(a9a)
            cd = data.split_clients(A, b, n, name="a9a")
            del A, b  # each client's rows by length: the fused oracle shares the arrays
            return data_sparse.rows_by_length(cd, overwrite=True), a9a
        m, d, dens = (60, 40, 0.2) if tiny else A9A_SHAPE
        cd = data_sparse.make_sparse_classification(m, d, dens, n, binary=True,
                                                    name="a9a-like")
        return cd, "synthetic, a9a's shape"
    if case == "news20":
        if tiny:
            return data_sparse.make_sparse_classification(60, 400, 0.05, 5), "tiny"
        return data_sparse.make_news20_like(100), "make_news20_like"
    raise SystemExit(f"unknown case {case!r}")


def run_case(case: str, a9a: str, rounds: int, threads: int | None,
             again: bool = False, dtype: str = "float64") -> dict:
    import numpy as np

    import ef21fast
    from ef21fast.methods.algorithms import run
    from ef21fast.methods.problems import LogisticRegression

    for mod in ("scipy.sparse.linalg", "scipy.special", "sklearn.datasets",
                "ef21fast.methods.oracle"):  # what the setup imports: not counted
        importlib.import_module(mod)
    from ef21fast.backends.registry import available_backends, default_backend, load_backend

    for name in available_backends():  # the run resolves the default among them
        load_backend(name)
    default_backend()

    if threads:
        ef21fast.set_num_threads(threads)
    # The same set-up and run on a tiny problem first: the lazy imports, caches and
    # code pages of the first call (the LIBSVM loader, the reordering, the constants,
    # threadpoolctl, the oracles) are not counted either.
    with tempfile.TemporaryDirectory() as tmp:
        tiny_file = os.path.join(tmp, "tiny.svm")
        _write_tiny_libsvm(tiny_file)
        for tiny_case in ("a9a", "news20"):
            tiny, _ = _load(tiny_case, tiny_file, tiny=True)
            run(LogisticRegression(tiny, dtype=dtype), "ef21", k=1, iters=2)
            del tiny
    if again:  # the whole case once before, at full size, then dropped
        first, _ = _load(case, a9a)
        run(LogisticRegression(first, dtype=dtype), "ef21", k=1, iters=2)
        del first
        gc.collect()
    trim()
    base = _mb(current_bytes())
    reset_peak()
    t0 = time.perf_counter()
    cd, source = _load(case, a9a)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    problem = LogisticRegression(cd, dtype=dtype)
    t_const = time.perf_counter() - t1
    A = cd.A
    data_mb = (sum(a.nbytes for a in (A.data, A.indices, A.indptr))
               if hasattr(A, "indptr") else A.nbytes) / 2**20 + cd.b.nbytes / 2**20
    state_mb = problem.n * problem.d * problem.dtype.itemsize / 2**20
    # float32: the copy of the values (CSR: the stored ones; the index arrays are
    # shared) and of the labels that the problem holds beside the float64 data
    copy_mb = 0.0 if problem.dtype == np.float64 else (
        (getattr(A, "nnz", A.size) + A.shape[0]) * problem.dtype.itemsize / 2**20)
    setup_peak = _mb(peak_bytes())
    trim()  # what the setup freed goes back to the system: the run counts its own
    before = _mb(current_bytes())  # the data and the problem, as they stay during the run
    reset = reset_peak()
    tr = run(problem, "ef21", k=1, iters=rounds)
    per_round = np.diff(tr.time_s)
    peak = _mb(peak_bytes())
    return dict(case=case, source=source, m=int(A.shape[0]), d=problem.d, n=problem.n,
                nnz=int(getattr(A, "nnz", A.size)), oracle=problem.oracle,
                load_s=t_load, constants_s=t_const, start_s=float(tr.time_s[0]),
                round_s=float(np.median(per_round)), rounds=len(per_round),
                L=problem.L, data_mb=data_mb, copy_mb=copy_mb, state_mb=state_mb,
                base_mb=base, dtype=str(problem.dtype),
                peak_mb=peak, extra_mb=peak - base, setup_extra_mb=setup_peak - base,
                after_setup_mb=before - base, peak_reset=reset,
                overhead=(peak - base) / (data_mb + copy_mb + state_mb) - 1.0,
                threads=ef21fast.get_num_threads())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a9a", default=str(DEFAULT_A9A), help="the a9a LIBSVM file")
    ap.add_argument("--rounds", type=int, default=20, help="rounds per case (20)")
    ap.add_argument("--cases", default="a9a,news20")
    ap.add_argument("--threads", type=int, default=None, help="kernel threads")
    ap.add_argument("--again", action="store_true",
                    help="measure each case as the second of its kind in its process "
                         "(the first, at full size, dropped before the base is taken)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="the problem's dtype (float32: a copy of the data's values)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.a9a, args.rounds, args.threads,
                                  args.again, args.dtype)))
        return
    print(f"# {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()}, "
          f"{args.dtype}")
    copy = " + copy" if args.dtype != "float64" else ""
    print("| case | m x d (nnz) | n | setup s (load + constants) | start s | s/round "
          f"| data{copy} + states MB | peak MB: setup / after it / run "
          f"| run peak vs data{copy} + states |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", case, "--a9a",
               args.a9a, "--rounds", str(args.rounds)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.again:
            cmd.append("--again")
        cmd += ["--dtype", args.dtype]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"case {case} failed:\n{res.stderr}")
        out = res.stdout
        r = json.loads(out.strip().splitlines()[-1])
        held = f"{r['data_mb']:.1f}" + (f" + {r['copy_mb']:.1f}" if copy else "")
        print(f"| {r['case']} ({r['source']}, {r['oracle']} oracle) | {r['m']} x {r['d']} "
              f"({r['nnz']}) | {r['n']} | {r['load_s'] + r['constants_s']:.2f} "
              f"({r['load_s']:.2f} + {r['constants_s']:.2f}) | {r['start_s']:.3f} | "
              f"{r['round_s']:.4f} | {held} + {r['state_mb']:.1f} | "
              f"{r['setup_extra_mb']:.0f} / {r['after_setup_mb']:.0f} / "
              f"{r['extra_mb']:.0f} | {100 * r['overhead']:+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
