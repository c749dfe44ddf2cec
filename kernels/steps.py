"""Python-side drivers: plan the selection, allocate outputs, call the jitted code.

The tuning constants below are module attributes, read at every call, so tests can
lower them to push small inputs through the large-input paths (sampling, parallel
chunks, overflow fallbacks).
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np

from .keys import MODE_EF21, MODE_EF21_SCALED, MODE_EF_RAW, MODE_TOPK, keybits
from .rows import row_parallel, rows_batch, rows_serial
from .scatter import scatter_parallel, scatter_range

#: Rows at least this long are split into parallel chunks (when rows are few).
PARALLEL_ROW_MIN_D = 32768
#: Smallest chunk of a row processed by one parallel task.
CHUNK_MIN = 16384
#: Parallel tasks per thread (finer chunks bound the cost of overflow fallbacks).
CHUNKS_PER_THREAD = 4
#: Rows up to this long precompute all keys (a d-sized per-block workspace).
DENSE_MAX_D = 4096
#: Sample: runs of this many consecutive elements ...
SAMPLE_BLOCK = 16
#: ... at most this many runs ...
SAMPLE_MAX_BLOCKS = 1024
#: ... and at most one run per this many elements (at least 4 runs, else no sample).
SAMPLE_SPACING = 256
#: Below this many message entries, scatter_add runs serially.
SCATTER_PARALLEL_MIN = 1 << 15


def sample_plan(d: int, k: int) -> tuple[int, int, int]:
    """``(nblocks, rank, expected)`` of the sample for a row of length d, or
    ``(0, 0, d)`` when sampling does not pay.

    With s sampled keys, the k-th largest key of the row has expected rank
    ``r = k s / d`` among them; the threshold is the sampled key of rank
    ``r + 4 sqrt(r) + 8``, so that at least k keys are >= it with high probability,
    and about ``expected = rank * d / s`` of them are.
    """
    nb = min(SAMPLE_MAX_BLOCKS, d // max(SAMPLE_SPACING, 1))
    if nb < 4 or d < SAMPLE_BLOCK:
        return 0, 0, d
    s = nb * SAMPLE_BLOCK
    r = k * s / d
    rank = int(math.ceil(r + 4.0 * math.sqrt(r) + 8.0))
    if 2 * rank > s:
        return 0, 0, d
    return nb, rank, rank * d // s + 1


#: Candidate workspaces kept between calls (page faults on fresh buffers cost more
#: than a large selection's streaming pass): at most this many, reused by size.
WS_KEEP = 2
_ws_lock = threading.Lock()
_ws_free: list = []  # [(kbufs, ibufs)], most recently returned last


def _ws_take(nch: int, cap: int):
    """Flat candidate buffers with room for (nch, cap + 1): a kept pair if one fits
    (not much larger), else new. Each caller owns what it takes until
    :func:`_ws_give` (thread-safe)."""
    size = nch * (cap + 1)
    with _ws_lock:
        for q in range(len(_ws_free) - 1, -1, -1):
            kb, ib = _ws_free[q]
            if size <= kb.shape[0] <= 2 * size + 65536:
                del _ws_free[q]
                return kb, ib
    return np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)


def _ws_give(ws) -> None:
    with _ws_lock:
        _ws_free.append(ws)
        del _ws_free[:-WS_KEEP]


def _row_plan(d: int, k: int) -> tuple[bool, int, int, int]:
    """``(dense, nblocks, rank, cap)`` for rows processed whole by one thread: short
    rows keep all their keys (``cap = d``), longer ones sample (see
    :func:`sample_plan`) and keep up to ``cap`` candidates."""
    if d <= DENSE_MAX_D:
        return True, 0, 0, d
    nblocks, rank, expected = sample_plan(d, k)
    return False, nblocks, rank, expected + expected // 2 + 64 if nblocks else 0


def select(mode: int, a: np.ndarray, b: np.ndarray | None, cvec: np.ndarray, k: int):
    """Run the selection of ``mode`` on every row; returns ``(idx, val)``."""
    n, d = a.shape
    dtype = a.dtype
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=dtype)
    if n == 0 or (k == 0 and mode != MODE_EF_RAW):
        return idx, val
    if b is None:
        b = np.empty((n, 0), dtype=dtype)
    kb = keybits(dtype)
    threads = numba.get_num_threads()
    if threads == 1:
        # one thread: the serial pipeline, no parallel region at all (none is launched:
        # that is what makes a forked child of a parallel parent safe), kept buffers
        dense, nblocks, rank, cap = _row_plan(d, k)
        ws = _ws_take(1, cap)
        try:
            rows_serial(mode, a, b, cvec, k, kb, idx, val, dense, nblocks, SAMPLE_BLOCK,
                        rank, cap, ws[0], ws[1])
        finally:
            _ws_give(ws)
    elif d >= PARALLEL_ROW_MIN_D and n < 2 * threads:
        nch = max(1, min(CHUNKS_PER_THREAD * threads, d // max(CHUNK_MIN, 1)))
        nblocks, rank, expected = sample_plan(d, k)
        capc = (expected + expected // 2) // nch + 64 if nblocks else 0
        # 16-bit histograms when the full-range fallback runs and they stay small
        rbits_range = 16 if nch * (8 << 16) <= d * dtype.itemsize // 16 else 11
        ws = _ws_take(nch, capc)
        try:
            size = nch * (capc + 1)  # C-contiguous (nch, capc + 1) views
            kbufs = ws[0][:size].reshape(nch, capc + 1)
            ibufs = ws[1][:size].reshape(nch, capc + 1)
            for i in range(n):
                row_parallel(mode, a[i], b[i], cvec[i], k, kb, idx[i], val[i], nch,
                             nblocks, SAMPLE_BLOCK, rank, kbufs, ibufs,
                             rbits_range)
        finally:
            _ws_give(ws)
    else:
        nblk = max(1, min(n, CHUNKS_PER_THREAD * threads))
        dense, nblocks, rank, cap = _row_plan(d, k)
        rows_batch(mode, a, b, cvec, k, kb, idx, val, nblk, dense, nblocks,
                   SAMPLE_BLOCK, rank, cap)
    return idx, val


def topk(x, k):
    """See :func:`ef21fast.kernels.topk`."""
    return select(MODE_TOPK, x, None, np.zeros(x.shape[0], dtype=x.dtype), k)


def ef21_step(grad, state, k, scale):
    """See :func:`ef21fast.kernels.ef21_step`."""
    if scale is None:
        return select(MODE_EF21, grad, state, np.zeros(grad.shape[0], dtype=grad.dtype),
                      k)
    return select(MODE_EF21_SCALED, grad, state, scale, k)


def ef_step(grad, error, k, lr):
    """See :func:`ef21fast.kernels.ef_step`."""
    return select(MODE_EF_RAW, grad, error, np.full(grad.shape[0], lr, dtype=grad.dtype),
                  k)


def scatter_add(out, idx, val, weights):
    """See :func:`ef21fast.kernels.scatter_add`."""
    weighted = weights is not None
    w = weights if weighted else np.empty(0, dtype=out.dtype)
    threads = numba.get_num_threads()
    nparts = min(threads, out.shape[0])
    if nparts > 1 and idx.size >= SCATTER_PARALLEL_MIN:
        scatter_parallel(out, idx, val, w, weighted, nparts)
    else:
        scatter_range(out, idx, val, w, weighted, 0, out.shape[0])
    return out
