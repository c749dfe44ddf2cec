"""Driver for .ci/valgrind: every C kernel on the adversarial cases, under memcheck.

Runs ``ef21fast.testing.cross_check("c", ...)`` (topk; ef21_step without scale, with a
scalar and with a per-row scale; ef_step; scatter_add with and without weights;
float32 and float64; 1-D, 2-D, strided, transposed, big-endian, empty inputs) on every
case of at most ``--max-size`` elements, once per forced internal path of the C
selection (``EF21FAST_C_FORCE``: none, radix, nosmall, rows, within) and per thread
count (1 and 2) as listed in ``PLAN`` ("stream" is left out: it changes only the AVX-512
candidate pass, and valgrind runs no AVX-512 code), plus long rows built to take the paths only rows
longer than ``EF_SMALL`` reach (each outcome of the sample-select), the parallel
scatter_add, and the fused GLM oracles (module ``ef21fast._coracle``, csrc/glm_oracle.c:
dense, every tile remainder, empty clients, the parallel path; CSR, the same cases with
unsorted and repeated columns and int32/int64 indices) against plain NumPy.
Exits 1 on any mismatch with the reference (memcheck errors make valgrind exit 99).

``--canary`` instead loads ``CANARY_SO`` (built by .ci/valgrind) and makes one heap
overflow and one definite leak, to show that this valgrind setup catches both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def canary(path: str) -> None:
    import ctypes

    lib = ctypes.CDLL(path)
    lib.heap_overflow(4)
    lib.leak(64)


def check_import(work: str) -> None:
    import ef21fast._ckernels as ck
    import ef21fast._coracle as co

    import ef21fast
    from ef21fast.backends import c as c_backend
    from ef21fast.methods import oracle

    work = os.path.realpath(work)
    for mod in (ef21fast, ck, co, c_backend, oracle):
        path = os.path.realpath(mod.__file__)
        if not path.startswith(work + os.sep):
            sys.exit(f"valgrind_driver: {mod.__name__} imported from {path}, not {work}")
    print("imported", ck.__file__, "and", co.__file__, flush=True)


def _sampled(d: int):
    """Positions csrc's sample-select reads on a row of length d (select_large in
    csrc/rows.c: nb blocks of EF_BLOCK = 16, read by sample_m in csrc/passes.c)."""
    import numpy as np

    nb = min(max(d // 512, 32), 1024, d // 16)
    nblk = d // 16
    starts = 16 * ((nblk - 1) * np.arange(nb) // (nb - 1))
    return (starts[:, None] + np.arange(16)).reshape(-1)


def long_rows(seed: int):
    """Cases longer than EF_SMALL (16384): sample-select and each of its outcomes."""
    import numpy as np

    from ef21fast.testing import Case

    rng = np.random.default_rng(seed)
    d = 40_000
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(d).astype(dtype)
        x[rng.integers(0, d, 20)] = np.nan
        # sampled blocks far below the rest: the threshold is too low, the collection
        # overflows its capacity -> radix fallback
        low = (1.0 + rng.random(d)).astype(dtype)
        low[_sampled(d)] = 1e-3
        # sampled blocks far above the rest, all distinct: the threshold is too high;
        # k = 3: enough kept (the candidate select); k = 50: too few -> radix fallback
        high = (1.0 + rng.random(d)).astype(dtype)
        high[_sampled(d)] = 1e3 * (1.0 + rng.random(_sampled(d).size))
        few = rng.integers(0, 3, d).astype(dtype)  # the threshold is a tie value
        two = np.vstack([x[: d // 2], (1.0 + rng.random(d // 2)).astype(dtype)])
        two[1, _sampled(d // 2)] = 1e-3
        for name, arr, ks in (("long_normal", x, (2, 50, d // 8, d // 2)),
                              ("long_sample_low", low, (3, 50)),
                              ("long_sample_high", high, (3, 50)),
                              ("long_few_values", few, (7, d // 5)),
                              ("long_2d", two, (3, 2000))):
            for k in ks:
                yield Case(f"{name}/k={k}", arr, k,
                           rng.standard_normal(arr.shape).astype(dtype))


# (EF21FAST_C_FORCE, threads, the adversarial cases?, long rows?, the 140000 row?)
# Each path needs only some of them: "radix" changes nothing on rows <= EF_SMALL (they
# always take the in-memory path unless "nosmall"), nothing runs in parallel on these
# small inputs without "rows"/"within", and the split-row paths need 2 threads.
PLAN = (
    ("", 1, True, True, False),         # in-memory path; sample-select, every outcome
    ("", 2, False, False, True),        # split row, parallel state update (k >= 32768)
    ("radix", 1, False, True, False),   # radix select on every long row
    ("nosmall", 1, True, False, False),  # short rows through the chunked paths
    ("rows", 2, True, True, False),     # row-parallel loop on every batch
    ("within", 2, True, True, False),   # every row of d >= 64 split across 2 threads
)


def big_row(seed: int):
    """d = 140000 > EF_WITHIN_MIN, k = 35000 <= d / 4 and >= 32768."""
    import numpy as np

    from ef21fast.testing import Case

    rng = np.random.default_rng(seed)
    d = 140_000
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(d).astype(dtype)
        yield Case("big_row/k=35000", x, 35_000, rng.standard_normal(d).astype(dtype))


def glm_cases(seed: int):
    """(label, A, b, offsets, x, reg, threads) for the fused GLM oracle: every tile (32
    rows) and 4-row / 4-column remainder, empty clients, offsets[0] > 0, no rows at all,
    and one problem above its parallel threshold (m d >= 2**18) for 2 threads."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(sizes, d, first=0, threads=1, label=""):
        off = (first + np.concatenate([[0], np.cumsum(sizes)])).astype(np.int64)
        m = int(off[-1])
        A = rng.standard_normal((m, d))
        b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
        x = rng.standard_normal(d) * 0.3
        reg = rng.standard_normal(d) * 0.01
        return (label or f"sizes={len(sizes)} d={d}", A, b, off, x, reg, threads)

    sizes = [1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 36, 64, 70, 1]
    for d in (1, 3, 4, 5, 7, 8, 9, 16, 17, 33, 130):
        yield make(sizes, d)
    yield make([3, 0, 5, 0], 9, label="empty clients")
    yield make([4, 6], 5, first=3, label="offsets[0] = 3")
    yield make([0, 0], 6, label="no rows")
    yield make([40] * 70, 96, threads=2, label="m d >= 2**18, 2 threads")


def glm_reference(A, b, off, x, reg, kind):
    """The oracle in plain NumPy (no BLAS): sum_j (s_j / m_i) a_j + reg per client."""
    import numpy as np

    z = (A * x).sum(axis=1)
    s = -b / (1.0 + np.exp(b * z)) if kind == "logreg" else 2.0 * (z - b)
    G = np.empty((off.size - 1, x.size))
    for i in range(off.size - 1):
        lo, hi = off[i], off[i + 1]
        rows = (s[lo:hi, None] / max(hi - lo, 1) * A[lo:hi]).sum(axis=0)
        G[i] = rows + reg
    return G


def run_glm(seed: int) -> int:
    """The fused GLM oracle (csrc/glm_oracle.c) on glm_cases, both kinds."""
    import numpy as np

    import ef21fast
    from ef21fast.methods import oracle as c_backend

    if not hasattr(c_backend, "glm_client_grads"):
        print("fused GLM oracle: not in this version", flush=True)
        return 0
    os.environ["EF21FAST_C_FORCE"] = ""
    bad = runs = 0
    t0 = time.perf_counter()
    for label, A, b, off, x, reg, threads in glm_cases(seed):
        ef21fast.set_num_threads(threads)
        for kind in ("logreg", "linreg"):
            runs += 1
            got = c_backend.glm_client_grads(A, b, off, x, reg, kind)
            want = glm_reference(A, b, off, x, reg, kind)
            if not np.allclose(got, want, rtol=1e-10, atol=1e-12):
                print(f"fused GLM oracle {kind} {label}: differs from NumPy", flush=True)
                bad += 1
    print(f"fused GLM oracle: {runs} runs, {bad} mismatches "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return bad


def csr_of(A, rng, density, index_dtype, shuffle, repeat):
    """(data, indices, indptr) holding A's entries kept with probability ``density``,
    each row's columns in random order (``shuffle``), and with every kept value of a
    row split into two stored values at the same column (``repeat``)."""
    import numpy as np

    m, d = A.shape
    data, indices, indptr = [np.zeros(0)], [np.zeros(0, np.int64)], [0]
    for j in range(m):
        cols = np.flatnonzero(rng.random(d) < density)
        if shuffle:
            cols = rng.permutation(cols)
        vals = A[j, cols]
        if repeat:
            cols, vals = np.repeat(cols, 2), np.repeat(vals * 0.5, 2)
        data.append(vals)
        indices.append(cols)
        indptr.append(indptr[-1] + cols.size)
    return (np.concatenate(data), np.concatenate(indices).astype(index_dtype),
            np.array(indptr, dtype=index_dtype))


def run_glm_csr(seed: int) -> int:
    """The fused CSR oracle (csrc/glm_oracle.c) on the CSR forms of glm_cases (sparse,
    unsorted, repeated columns, int32 and int64; dense for the parallel case), both
    kinds, with and without reg and losses, against glm_reference on the dense A; its
    float32 pass on rows longer than a block of sums against the float64 pass."""
    import numpy as np

    import ef21fast
    from ef21fast.methods import oracle as c_backend

    if not hasattr(c_backend, "glm_csr_client_grads"):
        print("fused CSR oracle: not in this version", flush=True)
        return 0
    rng = np.random.default_rng(seed)
    bad = runs = 0
    t0 = time.perf_counter()
    for v, (label, A, b, off, x, reg, threads) in enumerate(glm_cases(seed)):
        ef21fast.set_num_threads(threads)
        density = 1.0 if threads > 1 else 0.4
        arrays = csr_of(A, rng, density, (np.int32, np.int64)[v % 2], v % 3 != 0,
                        v % 3 == 2)
        dense = np.zeros_like(A)
        rows = np.repeat(np.arange(A.shape[0]), np.diff(arrays[2]))
        np.add.at(dense, (rows, arrays[1].astype(np.int64)), arrays[0])
        for kind in ("logreg", "linreg"):
            for r in (reg, None):
                runs += 1
                res = c_backend.glm_csr_client_grads(*arrays, b, off, x, r, kind,
                                                     losses=r is None)
                got, ell = res if r is None else (res, None)
                want = glm_reference(dense, b, off, x, 0.0 if r is None else r, kind)
                z = dense @ x
                loss = np.logaddexp(0.0, -b * z) if kind == "logreg" else (z - b) ** 2
                want_ell = np.array([loss[off[i]:off[i + 1]].sum()
                                     for i in range(off.size - 1)])
                if not (np.allclose(got, want, rtol=1e-10, atol=1e-12) and
                        (r is not None or np.allclose(ell, want_ell, rtol=1e-10))):
                    print(f"fused CSR oracle {kind} {label}: differs from NumPy", flush=True)
                    bad += 1
    # the float32 pass on rows longer than its block of sums (2^15 columns): sorted rows
    # (summed by blocks) and shuffled ones (over a whole row), one and two threads; the
    # float64 pass on the same values, rounded once, to the bit
    f32, f64 = np.float32, np.float64
    wide = rng.standard_normal((40, (1 << 15) + 100))
    off = np.array([0, 0, 13, 40], dtype=np.int64)
    b = np.where(rng.random(40) < 0.5, -1.0, 1.0).astype(f32)
    x = (rng.standard_normal(wide.shape[1]) * 0.3).astype(f32)
    reg = (rng.standard_normal(wide.shape[1]) * 0.01).astype(f32)
    for shuffle in (False, True):
        data, indices, indptr = csr_of(wide, rng, 0.01, np.int32, shuffle, False)
        data = data.astype(f32)
        for threads in (1, 2):
            ef21fast.set_num_threads(threads)
            runs += 1
            g32, l32 = c_backend.glm_csr_client_grads(data, indices, indptr, b, off, x,
                                                      reg, "logreg", losses=True)
            g64, l64 = c_backend.glm_csr_client_grads(
                data.astype(f64), indices, indptr, b.astype(f64), off, x.astype(f64),
                reg.astype(f64), "logreg", losses=True)
            if not (np.array_equal(g32, g64.astype(f32)) and np.array_equal(l32, l64)):
                print(f"fused CSR oracle float32, d = 2^15 + 100, shuffle={shuffle}, "
                      f"{threads} threads: differs from the float64 pass", flush=True)
                bad += 1
    print(f"fused CSR oracle: {runs} runs, {bad} mismatches "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return bad


def run(work: str, max_size: int, seed: int, dtypes=("float32", "float64")) -> int:
    """Every check above on the cases of ``dtypes`` (the fused oracles, which take both
    value types themselves, where float64 is among them); returns the exit code."""
    import numpy as np

    import ef21fast
    from ef21fast.testing import compare, cross_check, variants

    check_import(work)
    kernels = ("topk", "ef21_step", "ef_step", "scatter_add")
    bad = 0
    total = 0
    ref_cache: dict = {}  # the reference's results, computed once under valgrind
    dtypes = tuple(np.dtype(t) for t in dtypes)
    for force, threads, small, long_, big in PLAN:
        os.environ["EF21FAST_C_FORCE"] = force  # read by the C code at each call
        ef21fast.set_num_threads(threads)
        t0 = time.perf_counter()
        failures = []
        if small:
            failures += cross_check("c", seed=seed, large=False, max_size=max_size,
                                    dtypes=dtypes, ref_cache=ref_cache)
        extra = list(long_rows(seed)) if long_ else []
        extra += list(big_row(seed)) if big else []
        extra = [case for case in extra if case.x.dtype in dtypes]
        n_extra = 0
        for case in extra:
            for kernel in kernels:
                if case.name.startswith("big_row") and kernel not in ("ef21_step", "ef_step"):
                    continue
                for kw in variants(kernel, case):
                    n_extra += 1
                    problem = compare(kernel, case, "c", ref_cache=ref_cache, **kw)
                    if problem is not None:
                        failures.append(problem)
        total += n_extra
        print(f"EF21FAST_C_FORCE={force or '(none)':8s} threads={threads}: "
              f"{f'adversarial cases (max size {max_size}), ' if small else ''}"
              f"{n_extra} long-row runs: {len(failures)} mismatches "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        for f in failures[:10]:
            print("   ", f, flush=True)
        bad += bool(failures)
    # scatter_add's parallel path: n * k >= 2**17 and d >= 16384, 2 threads
    os.environ["EF21FAST_C_FORCE"] = ""
    ef21fast.set_num_threads(2)
    rng = np.random.default_rng(seed)
    for dtype in (np.float32, np.float64):
        d, n, k = 20_000, 64, 2100
        idx = rng.integers(0, d, (n, k))
        val = rng.standard_normal((n, k)).astype(dtype)
        if np.dtype(dtype) not in dtypes:  # (drawn all the same: the same data either way)
            continue
        for w in (None, np.linspace(0.1, 1.0, n)):
            want = ef21fast.scatter_add(np.zeros(d, dtype), idx, val, weights=w,
                                        backend="numpy")
            got = ef21fast.scatter_add(np.zeros(d, dtype), idx, val, weights=w, backend="c")
            if not np.array_equal(want, got):
                print(f"scatter_add parallel {np.dtype(dtype).name} weights={w is not None}: "
                      "differs from the reference", flush=True)
                bad += 1
    print(f"parallel scatter_add (2 threads, {', '.join(t.name for t in dtypes)}, with and "
          f"without weights): {'mismatch' if bad else 'ok'}", flush=True)
    if np.dtype(np.float64) in dtypes:
        bad += run_glm(seed)
        bad += run_glm_csr(seed)
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", help="the build directory the extension must come from")
    ap.add_argument("--max-size", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--canary", metavar="SO")
    ap.add_argument("--dtype", choices=("float32", "float64"), action="append",
                    help="only the cases of this value type (repeatable; default both: "
                         ".ci/valgrind runs one process per type, side by side)")
    args = ap.parse_args()
    if args.canary:
        canary(args.canary)
        return
    sys.exit(run(args.work, args.max_size, args.seed, args.dtype or ("float32", "float64")))


if __name__ == "__main__":
    main()
