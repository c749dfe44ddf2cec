"""Server aggregation ``out[idx[i, j]] += w_i * val[i, j]``, rows in order.

The order of the additions into each ``out[q]`` is fixed (row 0 first, entries of a
row in order), so the result is the same for every thread count: the parallel version
partitions the *output* index range, and each task scans all messages in order and
applies those that fall in its part. The messages come as ``msgs = (idx, val, w)``:
(n, k) indices and values and the (n,) row weights, or an empty ``w`` for none.
"""

from __future__ import annotations

from numba import njit, prange

from .keys import add, mul


@njit(cache=True, nogil=True)
def scatter_range(out, msgs, span):
    """Apply, in order, the entries whose index lies in ``span = (lo, hi)``."""
    idx, val, w = msgs
    lo, hi = span
    n = idx.shape[0]
    k = idx.shape[1]
    full = lo == 0 and hi == out.shape[0]
    if w.shape[0] > 0:
        for i in range(n):
            wi = w[i]
            for j in range(k):
                q = idx[i, j]
                if full or (q >= lo and q < hi):
                    out[q] = add(out[q], mul(wi, val[i, j]))
    else:
        for i in range(n):
            for j in range(k):
                q = idx[i, j]
                if full or (q >= lo and q < hi):
                    out[q] = add(out[q], val[i, j])


@njit(cache=True, nogil=True, parallel=True)
def scatter_parallel(out, msgs, nparts):
    """:func:`scatter_range` over ``nparts`` contiguous parts of ``out``, in parallel."""
    d = out.shape[0]
    for p in prange(nparts):
        scatter_range(out, msgs, (p * d // nparts, (p + 1) * d // nparts))
