"""Run a kernel call as :mod:`.plan` decides: allocate the outputs, take kept candidate
buffers, and call the jitted driver on the planned number of threads.

**One entry per mode.** Each jitted driver is called through a small jitted *entry* of
its own per mode, which passes the mode to it as a constant: Numba compiles a function
again for each constant that a caller passes it, so the driver, and every function it
calls with the mode, is compiled once per mode, every test of the mode folded away.
An entry compiles on its first call: a kernel compiles only its own modes, and a path
only when it is taken (the driver for the case at hand is chosen here, in Python).

The one-thread path calls drivers that launch no parallel region (what makes a forked
child of a parallel parent safe).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit

from . import plan
from .modes import MODE_EF, MODE_EF21, MODE_EF21_SCALED, MODE_TOPK
from .rows import rows_batch, rows_dense, rows_serial, rows_trivial
from .scatter import scatter_parallel, scatter_range
from .split_row import row_split

# Parallel calls from several Python threads take turns (see
# plan.serialise_parallel_calls).
_call_lock = threading.Lock()

#: Candidate workspaces kept between calls (page faults on fresh buffers cost more
#: than a large selection's streaming pass): at most this many per calling thread,
#: reused by size.
WS_KEEP = 2
_ws_local = threading.local()  # .kept: [(kbuf, obuf, mbuf)], most recently returned last

_INT32 = np.dtype(np.int32)
_INT64 = np.dtype(np.int64)


def _bits_dtype(dtype: np.dtype) -> np.dtype:
    """The integer dtype of the value bits (and keys) of float ``dtype``."""
    return _INT32 if dtype.itemsize == 4 else _INT64


def _offsets_dtype(chunk: int) -> np.dtype:
    """The dtype of candidate offsets within chunks of at most ``chunk`` elements:
    int32 (half the bytes) unless that could overflow."""
    return _INT32 if chunk < 2**31 else _INT64


def _ws_take(size: int, dtype, chunk: int):
    """Candidate buffers (value bits of float ``dtype``, offsets within chunks of at
    most ``chunk`` elements, keys) with room for ``size`` entries: one kept by this
    thread if it fits (not much larger), else new. The caller owns what it takes
    until :func:`_ws_give`."""
    kdt, odt = _bits_dtype(dtype), _offsets_dtype(chunk)
    kept = _ws_kept()
    for q in range(len(kept) - 1, -1, -1):
        kb, ob, mb = kept[q]
        if (kb.itemsize == kdt.itemsize and ob.itemsize == odt.itemsize
                and size <= kb.shape[0] <= 2 * size + 65536):
            del kept[q]
            return kb, ob, mb
    return (np.empty(size, dtype=kdt), np.empty(size, dtype=odt),
            np.empty(size, dtype=kdt))


def _ws_give(ws) -> None:
    kept = _ws_kept()
    kept.append(ws)
    del kept[:-WS_KEEP]


def _ws_kept() -> list:
    """This thread's kept workspaces (per thread: no lock to take, 0.5 us a call)."""
    try:
        return _ws_local.kept
    except AttributeError:
        _ws_local.kept = []
        return _ws_local.kept


# The operands a mode ignores (topk's state, EF21's scales), kept between calls: two
# allocations cost about 0.35 us, a tenth of a small call. The kernels never write them.
_unused: dict = {}


def _unused_operands(n: int, dtype: np.dtype):
    """An (n, 0) state and (n,) zero scales of ``dtype``, for the operands that the
    mode ignores (shared between calls and threads: never written)."""
    key = (n, dtype)
    got = _unused.get(key)
    if got is None:
        # (writeable: a read-only array is another type to Numba, another compile)
        got = (np.empty((n, 0), dtype=dtype), np.zeros(n, dtype=dtype))
        if len(_unused) >= 8:
            _unused.clear()
        _unused[key] = got
    return got


_MODE_NAMES = {MODE_TOPK: "topk", MODE_EF21: "ef21", MODE_EF21_SCALED: "ef21_scaled",
               MODE_EF: "ef"}

# Per driver, what its entry for a mode runs (the driver named as a global of this
# module: an entry captures only the mode, an int, so its disk cache key is stable).
# The entries take the arrays one by one and pack the driver's tuples themselves: a
# tuple of arrays costs about 0.15 us more to type at a call from Python.
_ENTRY_CODE = {
    "rows_trivial": lambda mode: lambda a, b, cvec, k, idx, val, lo, hi:
        rows_trivial(mode, (a, b, cvec), k, (idx, val), (lo, hi)),
    "rows_dense": lambda mode: lambda a, b, cvec, row_plan, idx, val, lo, hi:
        rows_dense(mode, (a, b, cvec), row_plan, (idx, val), (lo, hi)),
    "rows_serial": lambda mode: lambda a, b, cvec, row_plan, kb, ob, mb, idx, val:
        rows_serial(mode, (a, b, cvec), row_plan, (kb, ob, mb), (idx, val)),
    "rows_batch": lambda mode: lambda a, b, cvec, row_plan, nblk, oproto, idx, val:
        rows_batch(mode, (a, b, cvec), row_plan, nblk, oproto, (idx, val)),
    "row_split": lambda mode: lambda a, b, c, split_plan, kb, ob, mb, idx, val:
        row_split(mode, (a, b, c), split_plan, (kb, ob, mb), (idx, val)),
}
_entries: dict = {}
_entries_lock = threading.Lock()


def entry(driver: str, mode: int):
    """The jitted entry of ``driver`` (a name of :data:`_ENTRY_CODE`) for ``mode``: it
    takes the driver's arguments but the mode, the arrays of its tuples one by one.
    (rows_batch is inlined into its entry, which is then the parallel function.)"""
    fn = _entries.get((driver, mode))
    if fn is None:  # the first call of this driver in this mode
        with _entries_lock:
            fn = _entries.get((driver, mode))
            if fn is None:
                code = _ENTRY_CODE[driver](mode)
                code.__name__ = code.__qualname__ = f"{driver}_{_MODE_NAMES[mode]}"
                fn = njit(cache=True, nogil=True, parallel=driver == "rows_batch")(code)
                _entries[(driver, mode)] = fn
    return fn


def _run(nthreads: int, fn, *args):
    """``fn(*args)``, where ``fn`` runs its parallel regions on ``nthreads`` threads
    (1: it launches none)."""
    if numba.config.DISABLE_JIT:
        # plain Python on numpy scalars: inf - inf etc. must not warn (the jitted
        # code does not); the lock keeps the behaviour of the jitted path
        with _call_lock, np.errstate(all="ignore"):
            return fn(*args)
    if nthreads == 1:
        # neither Numba's thread count nor the lock matters (and querying the count
        # costs as much as a small call)
        return fn(*args)
    plan.note_parallel()
    # numba.set_num_threads is per calling thread: apply the request in this one
    if numba.get_num_threads() != nthreads:
        numba.set_num_threads(nthreads)
    if not plan.serialise_parallel_calls():
        return fn(*args)
    with _call_lock:
        result = fn(*args)
        plan.note_layer()
        return result


def select(mode: int, a: np.ndarray, b: np.ndarray | None, cvec: np.ndarray, k: int):
    """The selection of ``mode`` (see :mod:`.modes`) on every row of ``a``; returns
    ``(idx, val)``.

    Parameters
    ----------
    mode : int
        ``MODE_TOPK``, ``MODE_EF21``, ``MODE_EF21_SCALED`` or ``MODE_EF``.
    a : ndarray of float32 or float64, shape (n, d), C-contiguous
        The input (x or the gradient). Not modified.
    b : None or ndarray, same shape and dtype, C-contiguous
        The state (or error), **updated in place**; None for topk.
    cvec : None or ndarray of shape (n,), of the data dtype
        The row scalars (scale or lr); None for topk and EF21, which ignore them.
    k : int
        ``0 <= k <= d``.
    """
    n, d = a.shape
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=a.dtype)
    if n == 0 or (k == 0 and mode != MODE_EF):
        return idx, val
    if b is None or cvec is None:
        b0, c0 = _unused_operands(n, a.dtype)
        b = b0 if b is None else b
        cvec = c0 if cvec is None else cvec
    rows = (a, b, cvec)
    out = (idx, val)
    nthreads = plan.select_threads(n, d, k)
    path = plan.select_path(n, d, nthreads)
    if path == "serial":
        if numba.config.DISABLE_JIT:
            _run(1, _select_serial, mode, rows, k, out)
        else:  # (as _run does, without its cost on the smallest calls)
            _select_serial(mode, rows, k, out)
    elif path == "split":
        _run(nthreads, _select_split, mode, rows, k, out, nthreads)
    else:
        _run(nthreads, entry("rows_batch", mode), a, b, cvec,
             plan.row_plan(d, k, a.itemsize), plan.batch_blocks(n, nthreads),
             np.empty(0, dtype=_offsets_dtype(d)), idx, val)
    return idx, val


def _select_serial(mode, rows, k, out):
    """Every row on the calling thread, with kept candidate buffers."""
    a, b, cvec = rows
    idx, val = out
    n, d = a.shape
    if k <= 1 or k == d:
        entry("rows_trivial", mode)(a, b, cvec, k, idx, val, 0, n)
        return
    row_plan = plan.row_plan(d, k, a.itemsize)
    _, _, _, dense, _, cap = row_plan[:6]
    if dense:  # a buffer of d keys: no need to keep it
        entry("rows_dense", mode)(a, b, cvec, row_plan, idx, val, 0, n)
        return
    ws = _ws_take(cap, a.dtype, d)
    try:
        entry("rows_serial", mode)(a, b, cvec, row_plan, *ws, idx, val)
    finally:
        _ws_give(ws)


def _select_split(mode, rows, k, out, nthreads):
    """Each row in turn, split into parallel chunks; a row whose chunk held more
    candidates than planned runs again with room for all."""
    a, b, cvec = rows
    idx, val = out
    n, d = a.shape
    split = plan.split_plan(d, k, a.itemsize, nthreads)
    nch, capc = split[3], split[4]
    chunk = -(-d // nch)
    run_row = entry("row_split", mode)
    ws = _ws_take(nch * capc, a.dtype, chunk)
    try:
        for i in range(n):
            need = run_row(a[i], b[i], cvec[i], split, *ws, idx[i], val[i])
            if need:
                big = _ws_take(nch * need, a.dtype, chunk)
                try:
                    run_row(a[i], b[i], cvec[i], plan.split_retry_plan(split, need), *big,
                            idx[i], val[i])
                finally:
                    _ws_give(big)
    finally:
        _ws_give(ws)


def scatter_add(out, idx, val, weights):
    """``out[idx[i, j]] += w_i * val[i, j]`` for rows i in order; returns ``out``."""
    w = weights if weights is not None else np.empty(0, dtype=out.dtype)
    d = out.shape[0]
    nthreads = plan.scatter_threads(d, idx.size)
    if nthreads == 1:
        _run(1, scatter_range, out, (idx, val, w), (0, d))
    else:
        _run(nthreads, scatter_parallel, out, (idx, val, w), nthreads)
    return out
