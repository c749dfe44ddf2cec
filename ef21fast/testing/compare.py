"""Cross-checks of a backend against the reference, on the adversarial cases.

Used by the test suite and the benchmarks, and public so that code which uses
ef21fast as drop-in kernels can cross-check a backend on its own machine::

    from ef21fast.testing import cross_check
    assert cross_check("c") == []

Every generated case is named for what it exercises (or for the bug it caught).
"""

from __future__ import annotations

import numpy as np

from ef21fast import api, reference
from ef21fast._spec import KERNEL_NAMES, KERNELS
from ef21fast.testing.bits import bits_equal
from ef21fast.testing.cases import Case, cases

__all__ = ["C_FORCED_PATHS", "compare", "cross_check", "cross_check_forced", "run_case",
           "variants"]


def run_case(kernel: str, case: Case, backend: str | None, message=None, **factor):
    """Run one kernel on a case through the public API; return everything to compare.

    Parameters
    ----------
    kernel : str
        A name of the kernel table (:data:`ef21fast._spec.KERNELS`).
    case : Case
        The input: ``case.x`` is the data, ``case.state`` the initial updated array.
    backend : str or None
    message : (idx, val) or None
        For a kernel that takes a sparse message (``scatter_add``): the message, by
        default the reference's ``topk(case.x, case.k)``.
    **factor
        The optional factor argument (one of :func:`variants`).

    Returns
    -------
    tuple of ndarray
        The returned arrays, then the updated argument (``spec.result_names``).
    """
    spec = KERNELS[kernel]
    if message is None and spec.param("idx") is not None:
        message = reference.topk(np.asarray(case.x), case.k)
    args, kwargs = spec.arguments(case.x, case.k, case.state, message, factor)
    returned = getattr(api, kernel)(*args, backend=backend, **kwargs)
    return spec.results(args, returned)


def compare(kernel: str, case: Case, backend: str, ref_cache: dict | None = None,
            **factor) -> str | None:
    """Compare ``backend`` with the numpy reference on one case.

    Returns None if everything matches bit for bit (results, updated arrays, NaN
    payloads included, and the input left untouched), else a description of the first
    difference. ``ref_cache``: a dict keeping the reference's results between calls on
    the same cases (the same seed), so that checking several backends or forced paths
    runs the slow reference once. ``factor``: the kernel's optional factor argument
    (``scale``, ``lr`` or ``weights``), as given by :func:`variants`.
    """
    spec = KERNELS[kernel]
    before = case.x.copy()
    key = (kernel, case.name, case.x.dtype.str, case.x.shape, case.x.strides,
           tuple(sorted((name, repr(v)) for name, v in factor.items())))
    cached = ref_cache.get(key) if ref_cache is not None else None
    if cached is None:
        message = (reference.topk(np.asarray(case.x), case.k)
                   if spec.param("idx") is not None else None)
        cached = (run_case(kernel, case, "numpy", message=message, **factor), message)
        if ref_cache is not None:
            ref_cache[key] = cached
    want, message = cached
    got = run_case(kernel, case, backend, message=message, **factor)
    if not bits_equal(before, case.x) or before.dtype != case.x.dtype:
        return f"{kernel}[{backend}] {case}: modified its read-only input"
    for name, a, b in zip(spec.result_names, want, got):
        # NaN payloads included: computed values follow the reference's first-operand
        # rule for two NaN operands (see ef21fast.reference)
        if not bits_equal(a, b) or a.dtype != b.dtype:
            return (f"{kernel}[{backend}] {case}: {name} differs from the reference "
                    f"(want {a!r}, got {b!r})")
    return None


def variants(kernel: str, case: Case) -> list[dict]:
    """The optional-argument variants ``kernel`` is checked with on ``case`` (from the
    kernel table's ``factor_values``)."""
    n = 1 if case.x.ndim == 1 else case.x.shape[0]
    return KERNELS[kernel].factor_variants(n, case.x.ndim == 2)


def cross_check(backend: str, seed: int = 0, large: bool = True, kernels=KERNEL_NAMES,
                dtypes=(np.float32, np.float64), max_size: int | None = None,
                ref_cache: dict | None = None) -> list[str]:
    """Run every kernel of ``backend`` on every adversarial case against the reference.

    ``max_size`` skips cases with more elements (for slow modes such as Numba with
    ``NUMBA_DISABLE_JIT=1``). ``ref_cache``: see :func:`compare` (one dict per seed).
    Returns the list of mismatch descriptions (empty when the backend is exact).
    """
    failures = []
    for dtype in dtypes:
        for case in cases(dtype, seed=seed, large=large):
            if max_size is not None and case.x.size > max_size:
                continue
            for kernel in kernels:
                for kw in variants(kernel, case):
                    problem = compare(kernel, case, backend, ref_cache=ref_cache, **kw)
                    if problem is not None:
                        failures.append(problem)
    return failures


#: The words of ``EF21FAST_C_FORCE``, each forcing one internal path of the C selection
#: (see csrc/internal.h): "radix" (the exact radix select, no sampling),
#: "nosmall" (short rows through the chunked paths), "rows" (parallel over rows only),
#: "within" (rows of d >= 64 split across threads), "stream" (the candidate pass for
#: rows streamed from memory). No word may change a result.
C_FORCED_PATHS = ("radix", "nosmall", "rows", "within", "stream")


def cross_check_forced(forces=("",) + C_FORCED_PATHS, threads=(1, 2), seed: int = 0,
                       log=print) -> int:
    """:func:`cross_check` of the C backend under each ``EF21FAST_C_FORCE`` word (``""``:
    none) with each thread count; ``log`` gets one line per run and its first
    mismatches. Returns the number of runs with a mismatch. The environment variable and
    the thread count are restored afterwards. The reference runs once per case (its
    results are kept for all the runs)."""
    import os
    import time

    import ef21fast

    saved_force = os.environ.get("EF21FAST_C_FORCE")
    saved_threads = ef21fast.get_num_threads("c")
    bad = 0
    ref_cache: dict = {}
    try:
        for force in forces:
            for n in threads:
                os.environ["EF21FAST_C_FORCE"] = force  # read by the C code at each call
                ef21fast.set_num_threads(n)
                t0 = time.perf_counter()
                failures = cross_check("c", seed=seed, ref_cache=ref_cache)
                log(f"EF21FAST_C_FORCE={force or '(none)':8s} threads={n}: "
                    f"{len(failures)} mismatches ({time.perf_counter() - t0:.1f} s)")
                for f in failures[:10]:
                    log(f"    {f}")
                bad += bool(failures)
    finally:
        if saved_force is None:
            os.environ.pop("EF21FAST_C_FORCE", None)
        else:
            os.environ["EF21FAST_C_FORCE"] = saved_force
        ef21fast.set_num_threads(saved_threads)
    return bad
