"""Exact top-k selection on keys: the building blocks, chunk by chunk.

A row of length d is cut into contiguous *chunks* (one per parallel task, or one for
a serial row). Each chunk presents its elements, in index order, from one *source*:

``SRC_RANGE``
    every index ``lo .. lo+m-1`` of the row, keys computed from the values;
``SRC_LIST``
    a candidate list: indices ``ibuf[:m]`` (ascending) with their keys ``kbuf[:m]``;
``SRC_DENSE``
    every index ``lo .. lo+m-1`` with its key precomputed in ``kbuf[:m]``.

The union of the sources must contain the k largest keys of the row and every element
whose key is at least the k-th largest (a candidate list holds every key >= some
threshold ``t_lo``; a range holds everything). An MSD radix select on the keys
(per-chunk histograms of ``rbits`` bits at a time, restricted to the prefix chosen so
far) then finds a prefix ``P`` at bit ``shift``: every element with ``key >> shift > P``
is selected, and of those with ``key >> shift == P`` the first ``need_eq`` in index
order. All counts are exact integers, so the result does not depend on the chunking
(hence on the thread count) nor on the sample that produced the candidate lists.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import add, emit, key, mul, value

SRC_RANGE = 0
SRC_LIST = 1
SRC_DENSE = 2


CAND_BLOCK = 16


@njit(cache=True, nogil=True)
def _compact(mode, sa, sb, c, q0, nb, base, t_lo, kbuf, ibuf, cnt, cap, mx):
    """Append the elements ``q0 .. q0+nb-1`` of a chunk (slices ``sa``/``sb``) with
    key >= ``t_lo``: their keys and their row indices ``base + q``. Returns the new
    count and ``max(mx, largest key seen)``.

    Branch-free when the buffers surely have room, else one guarded step at a time.
    Unsigned indices: no negative-index wraparound code in the hot loop.
    """
    u0 = np.uint64(q0)
    if cnt + nb <= cap:
        w = np.uint64(cnt)
        for t in range(nb):
            kk = key(value(mode, sa, sb, c, u0 + np.uint64(t)))
            kbuf[w] = kk
            ibuf[w] = base + t
            w += np.uint64(kk >= t_lo)
            mx = max(mx, kk)
        return np.int64(w), mx
    for t in range(nb):
        kk = key(value(mode, sa, sb, c, u0 + np.uint64(t)))
        mx = max(mx, kk)
        if kk >= t_lo:
            if cnt < cap:
                kbuf[cnt] = kk
                ibuf[cnt] = base + t
            cnt += 1
    return cnt, mx


@njit(cache=True, nogil=True)
def _candidates_topk(sa, base, t_lo, kbuf, ibuf, cap, sparse):
    """:func:`candidates` for mode 0 (the values are ``sa``), written out in full:
    this is the one streaming pass of a large topk."""
    cnt = np.int64(0)
    mx = np.int64(-1)
    m = sa.shape[0]
    for q0 in range(0, m, CAND_BLOCK):
        nb = min(CAND_BLOCK, m - q0)
        u0 = np.uint64(q0)
        if sparse:
            bmx = np.int64(-1)
            for t in range(nb):
                bmx = max(bmx, key(sa[u0 + np.uint64(t)]))
            mx = max(mx, bmx)
            if bmx < t_lo:
                continue
        if cnt + nb <= cap:
            w = np.uint64(cnt)
            if sparse:
                for t in range(nb):
                    kk = key(sa[u0 + np.uint64(t)])
                    kbuf[w] = kk
                    ibuf[w] = base + q0 + t
                    w += np.uint64(kk >= t_lo)
            else:
                for t in range(nb):
                    kk = key(sa[u0 + np.uint64(t)])
                    kbuf[w] = kk
                    ibuf[w] = base + q0 + t
                    w += np.uint64(kk >= t_lo)
                    mx = max(mx, kk)
            cnt = np.int64(w)
        else:
            for t in range(nb):
                kk = key(sa[u0 + np.uint64(t)])
                mx = max(mx, kk)
                if kk >= t_lo:
                    if cnt < cap:
                        kbuf[cnt] = kk
                        ibuf[cnt] = base + q0 + t
                    cnt += 1
    return cnt, mx


@njit(cache=True, nogil=True)
def candidates(mode, a, b, c, lo, hi, t_lo, kbuf, ibuf, cap, sparse):
    """Collect the indices in ``[lo, hi)`` with key >= ``t_lo`` (and their keys).

    ``kbuf``/``ibuf`` have room for ``cap`` entries; the returned count is exact even
    when it exceeds ``cap`` (then the lists are incomplete and the caller must not use
    them), and the largest key of the range (-1 if empty; blocks skipped as sparse
    count too). Works in blocks of ``CAND_BLOCK``, compacted branch-free; when ``sparse``
    (few candidates expected) a vectorised max first skips blocks without any. In
    mode 3 the updated error ``b[j] + c*a[j]`` is first written back to ``b`` on the
    block (the caller then uses mode 4).
    """
    if mode == 0:
        return _candidates_topk(a[lo:hi], lo, t_lo, kbuf, ibuf, cap, sparse)
    cnt = np.int64(0)
    mx = np.int64(-1)
    sa = a[lo:hi]
    sb = b[lo:hi]
    m = hi - lo
    smode = 4 if mode == 3 else mode
    for q0 in range(0, m, CAND_BLOCK):
        nb = min(CAND_BLOCK, m - q0)
        if mode == 3:
            update_error(sa, sb, c, q0, q0 + nb)
        if sparse:
            u0 = np.uint64(q0)
            bmx = np.int64(-1)
            if smode == 0:
                for t in range(nb):
                    bmx = max(bmx, key(sa[u0 + np.uint64(t)]))
            else:
                for t in range(nb):
                    bmx = max(bmx, key(value(smode, sa, sb, c, u0 + np.uint64(t))))
            mx = max(mx, bmx)
            if bmx < t_lo:
                continue
        cnt, mx = _compact(smode, sa, sb, c, q0, nb, lo + q0, t_lo, kbuf, ibuf, cnt, cap,
                           mx)
    return cnt, mx


@njit(cache=True, nogil=True)
def update_error(a, b, c, lo, hi):
    """``b[j] = b[j] + c * a[j]`` on ``[lo, hi)`` (the EF14 error update)."""
    sa = a[lo:hi]
    sb = b[lo:hi]
    for t in range(hi - lo):
        sb[t] = add(sb[t], mul(c, sa[t]))


@njit(cache=True, nogil=True)
def argmax(mode, a, b, c, lo, hi):
    """``(key, index)`` of the largest key in ``[lo, hi)``, first index on ties.

    In mode 3 the error update is written back on the whole range.
    """
    if mode == 3:
        update_error(a, b, c, lo, hi)
        mode = 4
    best = np.int64(-1)
    bj = lo
    if mode == 0:
        sa = a[lo:hi]
        for t in range(hi - lo):
            kk = key(sa[t])
            if kk > best:
                best = kk
                bj = lo + t
    else:
        for j in range(lo, hi):
            kk = key(value(mode, a, b, c, j))
            if kk > best:
                best = kk
                bj = j
    return best, bj


@njit(cache=True, nogil=True)
def emit_all(mode, a, b, c, lo, hi, idx_row, val_row):
    """Emit every element of ``[lo, hi)`` to its own slot (the k = d case)."""
    for j in range(lo, hi):
        emit(mode, a, b, c, j, j, idx_row, val_row)


@njit(cache=True, nogil=True)
def histogram(src, m, mode, a, b, c, lo, kbuf, hi_bit, lo_bit, prefix, hist):
    """Count the keys of one chunk with ``key >> hi_bit == prefix`` by their bits
    ``[lo_bit, hi_bit)`` into ``hist[: 1 << (hi_bit - lo_bit)]`` (zeroed first)."""
    width = hi_bit - lo_bit
    mask = (np.int64(1) << width) - 1
    hist[: np.int64(1) << width] = 0
    if src != SRC_RANGE:
        for t in range(m):
            kk = kbuf[t]
            if (kk >> hi_bit) == prefix:
                hist[(kk >> lo_bit) & mask] += 1
    elif mode == 0:
        sa = a[lo:lo + m]
        for t in range(m):
            kk = key(sa[t])
            if (kk >> hi_bit) == prefix:
                hist[(kk >> lo_bit) & mask] += 1
    else:
        for j in range(lo, lo + m):
            kk = key(value(mode, a, b, c, j))
            if (kk >> hi_bit) == prefix:
                hist[(kk >> lo_bit) & mask] += 1


@njit(cache=True, nogil=True)
def bucket_keys(kbuf, m, shift, prefix, out):
    """Copy the keys of ``kbuf[:m]`` with ``key >> shift == prefix`` to ``out``
    (branch-free; ``out`` must hold them all). Returns their count."""
    w = np.uint64(0)
    if out.shape[0] == 0:
        return np.int64(0)
    last = np.uint64(out.shape[0] - 1)
    for t in range(m):
        kk = kbuf[t]
        out[min(w, last)] = kk
        w += np.uint64((kk >> shift) == prefix)
    return np.int64(w)


@njit(cache=True, nogil=True)
def choose_bucket(hist, nch, nb, need, gt):
    """Find the bucket holding the ``need``-th largest key over all chunks' histograms.

    Adds to ``gt[ch]`` each chunk's count above that bucket. Returns
    ``(bucket, count above it, count in it)``.
    """
    cum = np.int64(0)
    h = np.int64(0)
    bk = nb - 1
    while bk >= 0:
        h = np.int64(0)
        for ch in range(nch):
            h += hist[ch, bk]
        if cum + h >= need:
            break
        cum += h
        bk -= 1
    for ch in range(nch):
        s = np.int64(0)
        for q in range(bk + 1, nb):
            s += hist[ch, q]
        gt[ch] += s
    return bk, cum, h


@njit(cache=True, nogil=True)
def radix_serial(src, m, mode, a, b, c, lo, kbuf, need, keybits, rbits, hist, gt, eq):
    """Radix select on one chunk (``hist`` and ``gt``/``eq`` have one row/entry).

    Returns ``(shift, prefix, need_eq)``; ``gt[0]``/``eq[0]`` receive the counts above
    the prefix and equal to it. Requires ``1 <= need <=`` number of elements.
    """
    hi_bit = keybits
    prefix = np.int64(0)
    gt[0] = 0
    eq[0] = 0
    while True:
        lo_bit = max(hi_bit - rbits, 0)
        width = hi_bit - lo_bit
        nb = np.int64(1) << width
        histogram(src, m, mode, a, b, c, lo, kbuf, hi_bit, lo_bit, prefix, hist[0])
        bk, cum, h = choose_bucket(hist, 1, nb, need, gt)
        need -= cum
        prefix = (prefix << width) | bk
        hi_bit = lo_bit
        if hi_bit == 0 or h == need:
            eq[0] = hist[0, bk]
            return hi_bit, prefix, need


@njit(cache=True, nogil=True)
def emit_chunk(src, m, mode, a, b, c, lo, kbuf, ibuf, shift, prefix, quota, off,
               idx_row, val_row):
    """Emit, in index order, the chunk's elements with ``key >> shift > prefix`` and
    the first ``quota`` with ``key >> shift == prefix``, to slots from ``off``."""
    o = off
    taken = 0
    for t in range(m):
        if src == SRC_LIST:
            j = ibuf[t]
            kk = kbuf[t]
        elif src == SRC_DENSE:
            j = lo + t
            kk = kbuf[t]
        else:
            j = lo + t
            kk = key(value(mode, a, b, c, j))
        p = kk >> shift
        if p > prefix:
            emit(mode, a, b, c, j, o, idx_row, val_row)
            o += 1
        elif p == prefix and taken < quota:
            taken += 1
            emit(mode, a, b, c, j, o, idx_row, val_row)
            o += 1
    return o


@njit(cache=True, nogil=True)
def sample_threshold(mode, a, b, c, nblocks, block, rank, keybits, skeys, hist, gt, eq):
    """A key ``t_lo`` such that about ``rank * d / (nblocks * block)`` keys are >= it.

    Samples ``nblocks`` runs of ``block`` consecutive elements spread evenly over the
    row (cache-line friendly) into ``skeys`` and returns the lower end of the radix
    bucket that holds the ``rank``-th largest sampled key (so at least ``rank`` sampled
    keys are >= ``t_lo``). Reads only (mode 3 computes the updated error on the fly).
    """
    d = a.shape[0]
    s = nblocks * block
    span = d - block
    t = 0
    for q in range(nblocks):
        start = (q * span) // (nblocks - 1)
        for u in range(block):
            skeys[t] = key(value(mode, a, b, c, start + u))
            t += 1
    shift, prefix, _ = radix_serial(SRC_DENSE, s, 0, a, b, c, 0, skeys, rank, keybits,
                                    11, hist, gt, eq)
    return prefix << shift
