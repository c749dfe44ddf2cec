"""Python-side drivers: plan the selection, allocate outputs, call the jitted code.

The tuning constants below are module attributes, read at every call, so tests can
lower them to push small inputs through the large-input paths (sampling, parallel
chunks, overflow fallbacks).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .keys import MODE_EF, MODE_EF21, MODE_EF21_SCALED, MODE_EF_RAW, MODE_TOPK, keybits
from .rows import (
    SMALL_K,
    row_parallel,
    rows_batch,
    rows_serial,
    rows_small_k,
    rows_trivial,
)
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
#: Below this many message entries, or on a shorter output, scatter_add runs serially
#: (as in the C backend): each thread scans every message for its part of the output,
#: so small batches gain nothing from a team, and waking it costs.
SCATTER_PARALLEL_MIN = 1 << 17
SCATTER_PARALLEL_MIN_D = 1 << 14


def sample_plan(d: int, k: int) -> tuple[int, int, int, int, int]:
    """``(nblocks, rank, rank_lo, rank_hi, expected)`` of the sample for a row of
    length d, or ``(0, 0, 0, 0, d)`` when sampling does not pay.

    With s sampled keys, the k-th largest key of the row has expected rank
    ``r = k s / d`` among them; the candidate threshold is the sampled key of rank
    ``r + 4 sqrt(r) + 8``, so that at least k keys are > it with high probability,
    and about ``expected = rank * d / s`` of them are. The k-th largest is then
    selected among the candidates between the sampled keys of ranks ``rank_lo = r +
    2 sqrt(r) + 4`` and ``rank_hi = r - 2 sqrt(r) - 4`` (at least 1): it lies there
    in most cases (else the selection looks above or below), and they are few.
    """
    nb = min(SAMPLE_MAX_BLOCKS, d // max(SAMPLE_SPACING, 1))
    if nb < 4 or d < SAMPLE_BLOCK:
        return 0, 0, 0, 0, d
    s = nb * SAMPLE_BLOCK
    r = k * s / d
    rank = math.ceil(r + 4.0 * math.sqrt(r) + 8.0)
    if 2 * rank > s:
        return 0, 0, 0, 0, d
    window = 2.0 * math.sqrt(r) + 4.0
    rank_lo = min(rank, math.ceil(r + window))
    return nb, rank, rank_lo, max(1, math.floor(r - window)), rank * d // s + 1


#: Candidate workspaces kept between calls (page faults on fresh buffers cost more
#: than a large selection's streaming pass): at most this many, reused by size.
WS_KEEP = 2
_ws_lock = threading.Lock()
_ws_free: list = []  # [(kbuf, obuf, mbuf)], most recently returned last


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
    most ``chunk`` elements, keys) with room for ``size`` entries: a kept triple if
    one fits (not much larger), else new. Each caller owns what it takes until
    :func:`_ws_give` (thread-safe)."""
    kdt, odt = _bits_dtype(dtype), _offsets_dtype(chunk)
    with _ws_lock:
        for q in range(len(_ws_free) - 1, -1, -1):
            kb, ob, mb = _ws_free[q]
            if (kb.dtype == kdt and ob.dtype == odt
                    and size <= kb.shape[0] <= 2 * size + 65536):
                del _ws_free[q]
                return kb, ob, mb
    return (np.empty(size, dtype=kdt), np.empty(size, dtype=odt),
            np.empty(size, dtype=kdt))


def _ws_give(ws) -> None:
    with _ws_lock:
        _ws_free.append(ws)
        del _ws_free[:-WS_KEEP]


def _row_plan(d: int, k: int) -> tuple[bool, tuple[int, int, int, int], int]:
    """``(dense, (nblocks, rank, rank_lo, rank_hi), cap)`` for rows processed whole by
    one thread: short rows keep all their keys (``cap = d``), longer ones sample (see
    :func:`sample_plan`) and keep up to ``cap`` candidates."""
    if d <= DENSE_MAX_D:
        return True, (0, 0, 0, 0), d
    *plan, expected = sample_plan(d, k)
    cap = expected + expected // 2 + 64 if plan[0] else 0
    return False, tuple(plan), cap


def select(mode: int, a: np.ndarray, b: np.ndarray | None, cvec: np.ndarray, k: int,
           threads: int):
    """Run the selection of ``mode`` on every row with ``threads`` threads (1: no
    parallel region at all); returns ``(idx, val)``."""
    n, d = a.shape
    dtype = a.dtype
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=dtype)
    if n == 0 or (k == 0 and mode != MODE_EF_RAW):
        return idx, val
    if b is None:
        b = np.empty((n, 0), dtype=dtype)
    kb = keybits(dtype)
    if threads == 1:
        # one thread: the serial pipeline, no parallel region at all (none is launched:
        # that is what makes a forked child of a parallel parent safe), kept buffers;
        # the driver for the case at hand is chosen here, so that a first call compiles
        # only that one
        dense, (nblocks, rank, rank_lo, rank_hi), cap = _row_plan(d, k)
        if k <= 1 or k == d:
            rows_trivial(mode, a, b, cvec, k, idx, val, 0, n)
            return idx, val
        ws = _ws_take(cap, dtype, d)
        try:
            if dense and k <= SMALL_K:
                rows_small_k(mode, a, b, cvec, k, idx, val, 0, n, ws[0],
                             np.empty(SMALL_K, dtype=ws[0].dtype))
            else:
                rows_serial(mode, a, b, cvec, k, kb, idx, val, dense, nblocks,
                            SAMPLE_BLOCK, rank, rank_lo, rank_hi, cap, *ws)
        finally:
            _ws_give(ws)
    elif d >= PARALLEL_ROW_MIN_D and n < 2 * threads:
        nch = max(1, min(CHUNKS_PER_THREAD * threads, d // max(CHUNK_MIN, 1)))
        nblocks, rank, rank_lo, rank_hi, expected = sample_plan(d, k)
        capc = (expected + expected // 2) // nch + 64 if nblocks else 0
        # 16-bit histograms when the full-range fallback runs and they stay small
        rbits_range = 16 if nch * (8 << 16) <= d * dtype.itemsize // 16 else 11
        chunk = -(-d // nch)
        ws = _ws_take(nch * capc, dtype, chunk)
        try:
            for i in range(n):
                need = row_parallel(mode, a[i], b[i], cvec[i], k, kb, idx[i], val[i],
                                    nch, nblocks, SAMPLE_BLOCK, rank, rank_lo, rank_hi,
                                    *ws, capc, rbits_range)
                if need:  # a chunk held more candidates than planned: room for all
                    again = MODE_EF if mode == MODE_EF_RAW else mode  # error written
                    big = _ws_take(nch * need, dtype, chunk)
                    try:
                        row_parallel(again, a[i], b[i], cvec[i], k, kb, idx[i], val[i],
                                     nch, nblocks, SAMPLE_BLOCK, rank, rank_lo, rank_hi,
                                     *big, need, rbits_range)
                    finally:
                        _ws_give(big)
        finally:
            _ws_give(ws)
    else:
        nblk = max(1, min(n, CHUNKS_PER_THREAD * threads))
        dense, (nblocks, rank, rank_lo, rank_hi), cap = _row_plan(d, k)
        rows_batch(mode, a, b, cvec, k, kb, idx, val, nblk, dense, nblocks,
                   SAMPLE_BLOCK, rank, rank_lo, rank_hi, cap,
                   np.empty(0, dtype=_offsets_dtype(d)))
    return idx, val


def topk(x, k, threads):
    """See :func:`ef21fast.kernels.topk`."""
    return select(MODE_TOPK, x, None, np.zeros(x.shape[0], dtype=x.dtype), k, threads)


def ef21_step(grad, state, k, scale, threads):
    """See :func:`ef21fast.kernels.ef21_step`."""
    if scale is None:
        return select(MODE_EF21, grad, state, np.zeros(grad.shape[0], dtype=grad.dtype),
                      k, threads)
    return select(MODE_EF21_SCALED, grad, state, scale, k, threads)


def ef_step(grad, error, k, lr, threads):
    """See :func:`ef21fast.kernels.ef_step`."""
    return select(MODE_EF_RAW, grad, error, np.full(grad.shape[0], lr, dtype=grad.dtype),
                  k, threads)


def scatter_add(out, idx, val, weights, threads):
    """See :func:`ef21fast.kernels.scatter_add`."""
    weighted = weights is not None
    w = weights if weighted else np.empty(0, dtype=out.dtype)
    nparts = min(threads, out.shape[0])
    if (nparts > 1 and idx.size >= SCATTER_PARALLEL_MIN
            and out.shape[0] >= SCATTER_PARALLEL_MIN_D):
        scatter_parallel(out, idx, val, w, weighted, nparts)
    else:
        scatter_range(out, idx, val, w, weighted, 0, out.shape[0])
    return out
