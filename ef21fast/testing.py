"""Cross-checking tools: the shared adversarial input generator and bit comparisons.

Used by the test suite and the benchmarks, and public so that code which uses
ef21fast as drop-in kernels can cross-check a backend on its own machine::

    from ef21fast.testing import cross_check
    assert cross_check("c") == []

Every generated case is named for what it exercises (or for the bug it caught).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ef21fast import api, reference

_UINT = {4: np.uint32, 8: np.uint64}


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of a float array as unsigned integers (NaN payloads, signed 0)."""
    a = np.ascontiguousarray(a)
    return a.view(_UINT[a.dtype.itemsize])


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` have the same shape, dtype kind/size and bits."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "f":
        if a.dtype.itemsize != b.dtype.itemsize:
            return False
        return bool(np.array_equal(bits(a.astype(a.dtype.newbyteorder("="))),
                                   bits(b.astype(b.dtype.newbyteorder("=")))))
    return bool(np.array_equal(a, b))


def nan_with_payload(dtype, payload: int, negative: bool = False, quiet: bool = True):
    """A NaN of ``dtype`` with the given mantissa payload (non-zero), as a 0-d array."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 4:
        exp, qbit, sign, mask = 0x7F800000, 0x00400000, 0x80000000, 0x003FFFFF
    else:
        exp, qbit, sign = 0x7FF0000000000000, 0x0008000000000000, 0x8000000000000000
        mask = 0x0007FFFFFFFFFFFF
    payload = (payload & mask) or 1
    word = exp | payload | (qbit if quiet else 0) | (sign if negative else 0)
    return np.array(word, dtype=_UINT[dtype.itemsize]).view(dtype)


@dataclass
class Case:
    """One adversarial input: ``x`` (read input), ``k``, and a ``state`` of x's shape.

    ``x`` may be non-contiguous or in non-native byte order; ``state`` is always a
    fresh writable C-contiguous native array (copy it before each use).
    """

    name: str
    x: np.ndarray
    k: int
    state: np.ndarray = field(repr=False)
    scale: object = None

    def __repr__(self) -> str:
        return (f"Case({self.name}, shape={self.x.shape}, dtype={self.x.dtype}, "
                f"k={self.k})")


def _specials(dtype, rng, size):
    """NaNs of several payloads and signs, ±inf, ±0, subnormals, the extremes."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    tiny_sub = np.array(info.smallest_subnormal, dtype=dtype)
    pool = [
        nan_with_payload(dtype, 1), nan_with_payload(dtype, 7, negative=True),
        nan_with_payload(dtype, 12345), nan_with_payload(dtype, 3, quiet=False),
        np.array(np.inf, dtype), np.array(-np.inf, dtype),
        np.array(0.0, dtype), np.array(-0.0, dtype),
        tiny_sub, -tiny_sub, np.array(info.tiny, dtype) * dtype.type(0.5),
        np.array(info.max, dtype), np.array(-info.max, dtype),
        np.array(1.0, dtype), np.array(-1.0, dtype),
    ]
    pool = np.stack([np.asarray(p, dtype=dtype).reshape(()) for p in pool])
    return pool[rng.integers(0, len(pool), size=size)]


def _ks(d: int) -> list[int]:
    return sorted({k for k in (0, 1, 2, 3, d // 7, d // 2, d - 1, d) if 0 <= k <= d})


def cases(dtype=np.float64, seed: int = 0, large: bool = True):
    """Yield the adversarial cases for one dtype.

    Parameters
    ----------
    dtype : float32 or float64
    seed : int
        Seed of the random parts (the structure is fixed).
    large : bool
        Include rows long enough (>= 2**17) to take the compiled backends' parallel
        within-row paths, sorted inputs that defeat sampling included.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)

    def state_like(shape):
        return rng.standard_normal(shape).astype(dtype)

    def emit(name, x, ks=None):
        d = x.shape[-1]
        for k in (ks if ks is not None else _ks(d)):
            yield Case(f"{name}/k={k}", x, k, state_like(x.shape))

    normal = rng.standard_normal(1000).astype(dtype)
    yield from emit("normal_1d", normal)
    yield from emit("ties_small_ints", rng.integers(-2, 3, 500).astype(dtype))
    yield from emit("all_equal_row", np.full(300, 1.5, dtype))
    yield from emit("all_equal_rows_2d", np.full((4, 50), -2.0, dtype))
    yield from emit("plus_minus_same_magnitude",
                    (rng.choice([-3.0, 3.0], 200)).astype(dtype))
    signed_zeros = np.where(rng.random(100) < 0.5, -0.0, 0.0).astype(dtype)
    yield from emit("signed_zeros_only", signed_zeros)
    mix = rng.standard_normal(400).astype(dtype)
    mask = rng.random(400) < 0.3
    mix[mask] = _specials(dtype, rng, int(mask.sum()))
    yield from emit("nan_inf_mix", mix)
    yield from emit("specials_only", _specials(dtype, rng, 256))
    sub = (rng.standard_normal(300) * np.finfo(dtype).smallest_subnormal * 50).astype(dtype)
    yield from emit("subnormals", sub)
    yield from emit("d1", np.array([-0.5], dtype))
    yield from emit("d1_nan", nan_with_payload(dtype, 9).reshape(1))
    yield from emit("d0", np.empty(0, dtype))
    yield from emit("n0_rows", np.empty((0, 10), dtype))
    yield from emit("d0_rows", np.empty((3, 0), dtype))
    base = rng.standard_normal(2000).astype(dtype)
    yield from emit("strided_view", base[::2])
    yield from emit("negative_stride", base[::-3])
    mat = rng.standard_normal((30, 20)).astype(dtype)
    mat[rng.random(mat.shape) < 0.1] = np.nan
    yield from emit("transposed_2d", mat.T)
    yield from emit("big_endian", normal.astype(dtype.newbyteorder(">")))
    batch = rng.standard_normal((1000, 112)).astype(dtype)
    batch[::7] = np.round(batch[::7])  # rows with ties
    # k around the compiled backends' insertion top-k limit (16) and the radix above it
    yield from emit("batched_clients", batch, ks=[0, 1, 2, 5, 16, 17, 112])
    ties = rng.integers(-3, 4, (6, 4000)).astype(dtype)
    yield from emit("batched_ties", ties, ks=[1, 3, 16, 17, 100, 3999])
    ascending_rows = np.tile(np.arange(300, dtype=dtype), (4, 1))  # insertion worst case
    yield from emit("batched_ascending", ascending_rows, ks=[2, 16, 17])
    if large:
        d = 1 << 17
        big = rng.standard_normal(d).astype(dtype)
        big[rng.integers(0, d, 50)] = np.nan
        yield from emit("large_normal_with_nans", big, ks=[1, 10, d // 1000, d // 100,
                                                           d // 10, d - 1])
        asc = np.sort(np.abs(rng.standard_normal(d))).astype(dtype)
        yield from emit("large_sorted_ascending", asc, ks=[1, 100, d // 100, d // 2])
        yield from emit("large_sorted_descending", asc[::-1].copy(), ks=[100, d // 100])
        yield from emit("large_few_values", rng.integers(0, 3, d).astype(dtype),
                        ks=[1, 1000, d // 3, d // 2])
        yield from emit("large_all_equal", np.full(d, 7.0, dtype), ks=[1, 5000])
        yield from emit("large_rows_batch", rng.standard_normal((3, 50_000)).astype(dtype),
                        ks=[1, 500, 5000])


def all_cases(seed: int = 0, large: bool = True):
    """Cases of both dtypes."""
    for dtype in (np.float32, np.float64):
        yield from cases(dtype, seed=seed, large=large)


def run_case(kernel: str, case: Case, backend: str | None, scale=None, weights=None,
             message=None):
    """Run one kernel on a case through the public API; return everything to compare.

    Returns a tuple of arrays: the message (idx, val) and the updated state or out.
    ``message``: for scatter_add, the reference's ``topk(case.x, k)`` if already known.
    """
    x, k = case.x, case.k
    if kernel == "topk":
        return api.topk(x, k, backend=backend)
    if kernel == "ef21_step":
        state = case.state.copy()
        idx, val = api.ef21_step(x, state, k, scale=scale, backend=backend)
        return idx, val, state
    if kernel == "ef_step":
        error = case.state.copy()
        idx, val = api.ef_step(x, error, k, lr=0.5 if scale is None else scale,
                               backend=backend)
        return idx, val, error
    if kernel == "scatter_add":
        idx, val = message if message is not None else reference.topk(np.asarray(x), k)
        out = np.zeros(x.shape[-1], dtype=x.dtype.newbyteorder("="))
        api.scatter_add(out, idx, val.astype(out.dtype), weights=weights, backend=backend)
        return (out,)
    raise ValueError(f"unknown kernel {kernel!r}")


def compare(kernel: str, case: Case, backend: str, ref_cache: dict | None = None,
            **kw) -> str | None:
    """Compare ``backend`` with the numpy reference on one case.

    Returns None if everything matches bit for bit (results, updated arrays, and the
    input left untouched), else a description of the first difference. ``ref_cache``:
    a dict keeping the reference's results between calls on the same cases (the same
    seed), so that checking several backends or forced paths runs the slow reference
    once.
    """
    before = case.x.copy()
    key = (kernel, case.name, case.x.dtype.str, case.x.shape, case.x.strides,
           tuple(sorted((name, repr(v)) for name, v in kw.items())))
    cached = ref_cache.get(key) if ref_cache is not None else None
    if cached is None:
        message = (reference.topk(np.asarray(case.x), case.k)
                   if kernel == "scatter_add" else None)
        cached = (run_case(kernel, case, "numpy", message=message, **kw), message)
        if ref_cache is not None:
            ref_cache[key] = cached
    want, message = cached
    got = run_case(kernel, case, backend, message=message, **kw)
    if not bits_equal(before, case.x) or before.dtype != case.x.dtype:
        return f"{kernel}[{backend}] {case}: modified its read-only input"
    names = {"topk": ("idx", "val"), "scatter_add": ("out",)}.get(
        kernel, ("idx", "val", "state"))
    for name, a, b in zip(names, want, got):
        # NaN payloads included: computed values follow the reference's first-operand
        # rule for two NaN operands (see ef21fast.reference)
        if not bits_equal(a, b) or a.dtype != b.dtype:
            return (f"{kernel}[{backend}] {case}: {name} differs from the reference "
                    f"(want {a!r}, got {b!r})")
    return None


def variants(kernel: str, case: Case) -> list[dict]:
    """The optional-argument variants each kernel is checked with on a case."""
    n = 1 if case.x.ndim == 1 else case.x.shape[0]
    if kernel == "ef21_step":
        per_row = np.linspace(0.5, 3.0, n) if case.x.ndim == 2 else 1.7
        return [{}, {"scale": 0.3}, {"scale": per_row}]
    if kernel == "ef_step":
        return [{}, {"scale": -2.5}]  # passed on as the lr
    if kernel == "scatter_add" and case.x.ndim == 2:
        return [{}, {"weights": np.linspace(0.1, 1.0, n)}]
    return [{}]


def cross_check(backend: str, seed: int = 0, large: bool = True,
                kernels=("topk", "ef21_step", "ef_step", "scatter_add"),
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
#: (see csrc/ef21fast_kernels.c): "radix" (the exact radix select, no sampling),
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


def registry_params(kernels=None, include_numpy=False):
    """pytest params over the registry: one per (kernel, backend) pair.

    A pair that does not work here (backend absent, kernel missing) becomes a skip
    carrying the registry's reason, so it is visible in the report, never silent.
    """
    import pytest

    from ef21fast.dispatch import registry

    params = []
    for kernel, backend, fn, reason in registry():
        if kernels is not None and kernel not in kernels:
            continue
        if backend == "numpy" and not include_numpy:
            continue
        marks = [] if reason is None else [pytest.mark.skip(reason=reason)]
        params.append(pytest.param(kernel, backend, id=f"{kernel}-{backend}", marks=marks))
    return params


def backend_params(include_numpy=False):
    """pytest params over backends; an unavailable one is skipped with its reason."""
    import pytest

    from ef21fast.dispatch import BACKENDS, backend_errors

    errors = backend_errors()
    out = []
    for name in BACKENDS:
        if name == "numpy" and not include_numpy:
            continue
        marks = [pytest.mark.skip(reason=errors[name])] if name in errors else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out
