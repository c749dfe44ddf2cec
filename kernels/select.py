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


#: Elements per tile of the candidate pass (its keys and flags stay in L1).
CAND_TILE = 256


@njit(cache=True, nogil=True)
def candidates(mode, a, b, c, lo, hi, t_lo, kbuf, ibuf, cap):
    """Collect the indices in ``[lo, hi)`` with key >= ``t_lo`` (and their keys), and
    count the keys equal to ``t_lo - 1`` (the sampled threshold: its ties decide the
    answer when the candidates are fewer than k).

    ``kbuf``/``ibuf`` have room for ``cap`` entries. Returns ``(count, max, ties)``:
    the count is exact even when it exceeds ``cap`` (then the lists are incomplete
    and the caller must not use them); ``max`` is the largest key of the range (-1
    if empty).

    Tiles of ``CAND_TILE`` elements: one plain loop per mode (the mode is tested once
    per tile, so the loop vectorises) computes the keys into a tile buffer, a flag
    per key >= ``t_lo``, the tile's largest key and its ties; then only the groups
    of 8 flags (read as one 64-bit word) that hold a candidate are compacted,
    branch-free. In mode 3 the updated error ``b[j] + c*a[j]`` is written back to
    ``b`` on the whole range (the caller then uses mode 4).
    """
    sa = a[lo:hi]
    sb = b[lo:hi]
    m = hi - lo
    smode = 4 if mode == 3 else mode
    te = t_lo - 1
    cnt = np.int64(0)
    mx = np.int64(-1)
    eqc = np.int64(0)
    fl = np.zeros(CAND_TILE, dtype=np.uint8)
    fw = fl.view(np.uint64)
    kt = np.empty(CAND_TILE, dtype=np.int64)
    nfull = m - m % CAND_TILE
    for q0 in range(0, nfull, CAND_TILE):
        u0 = np.uint64(q0)
        bmx = np.int64(-1)
        e = np.int64(0)
        if mode == 0:
            for t in range(CAND_TILE):
                kk = key(sa[u0 + np.uint64(t)])
                kt[t] = kk
                fl[t] = kk >= t_lo
                bmx = max(bmx, kk)
                e += np.int64(kk == te)
        elif mode == 1:
            for t in range(CAND_TILE):
                j = u0 + np.uint64(t)
                kk = key(sa[j] - sb[j])
                kt[t] = kk
                fl[t] = kk >= t_lo
                bmx = max(bmx, kk)
                e += np.int64(kk == te)
        elif mode == 2:
            for t in range(CAND_TILE):
                j = u0 + np.uint64(t)
                kk = key(mul(c, sa[j]) - sb[j])
                kt[t] = kk
                fl[t] = kk >= t_lo
                bmx = max(bmx, kk)
                e += np.int64(kk == te)
        else:
            if mode == 3:  # write the updated error back (its own loop vectorises)
                for t in range(CAND_TILE):
                    j = u0 + np.uint64(t)
                    sb[j] = add(sb[j], mul(c, sa[j]))
            for t in range(CAND_TILE):
                kk = key(sb[u0 + np.uint64(t)])
                kt[t] = kk
                fl[t] = kk >= t_lo
                bmx = max(bmx, kk)
                e += np.int64(kk == te)
        mx = max(mx, bmx)
        eqc += e
        if bmx < t_lo:
            continue
        for g in range(CAND_TILE // 8):
            if fw[g] == 0:
                continue
            g8 = np.uint64(8 * g)
            base = lo + q0 + 8 * g
            if cnt + 8 <= cap:
                w = np.uint64(cnt)
                for t in range(8):
                    kk = kt[g8 + np.uint64(t)]
                    kbuf[w] = kk
                    ibuf[w] = base + t
                    w += np.uint64(kk >= t_lo)
                cnt = np.int64(w)
            else:
                for t in range(8):
                    kk = kt[g8 + np.uint64(t)]
                    if kk >= t_lo:
                        if cnt < cap:
                            kbuf[cnt] = kk
                            ibuf[cnt] = base + t
                        cnt += 1
    for q in range(nfull, m):
        if mode == 3:
            sb[q] = add(sb[q], mul(c, sa[q]))
        kk = key(value(smode, sa, sb, c, q))
        mx = max(mx, kk)
        eqc += np.int64(kk == te)
        if kk >= t_lo:
            if cnt < cap:
                kbuf[cnt] = kk
                ibuf[cnt] = lo + q
            cnt += 1
    return cnt, mx, eqc


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
    if src != SRC_RANGE and m > 0:
        # skip the leading bits all the keys share (most of them, on a short row)
        andv = np.int64(-1)
        orv = np.int64(0)
        for t in range(m):
            andv &= kbuf[t]
            orv |= kbuf[t]
        diff = andv ^ orv
        top = 0
        while diff:
            diff >>= 1
            top += 1
        hi_bit = min(top, keybits)
        prefix = andv >> hi_bit
        if hi_bit == 0:
            eq[0] = m
            return 0, prefix, need
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
def kth_small_k(kbuf, m, k, best):
    """The k-th largest of ``kbuf[:m]`` for a small k (``1 <= k <= m``,
    ``best.shape[0] >= k``): the k largest so far, kept sorted; an entry is inserted
    only if it beats the smallest of them (no histogram to clear on short rows)."""
    n = 0
    for t in range(m):
        v = kbuf[t]
        if n == k:
            if v <= best[k - 1]:
                continue
            j = k - 1
        else:
            j = n
            n += 1
        while j > 0 and best[j - 1] < v:
            best[j] = best[j - 1]
            j -= 1
        best[j] = v
    return best[k - 1]


@njit(cache=True, nogil=True)
def emit_chunk(src, m, mode, a, b, c, lo, kbuf, ibuf, shift, prefix, quota, off,
               n_out, idx_row, val_row):
    """Emit, in index order, the chunk's elements with ``key >> shift > prefix`` and
    the first ``quota`` with ``key >> shift == prefix``, to slots from ``off``; they
    are ``n_out`` in all (the scan stops after the last)."""
    o = off
    end = off + n_out
    taken = 0
    for t in range(m):
        if o >= end:
            break
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
    lo_k = np.int64(1) << 62
    hi_k = np.int64(-1)
    for q in range(nblocks):
        start = np.uint64((q * span) // (nblocks - 1))
        o = np.uint64(q * block)
        # one test of the mode per run: the loops vectorise
        if mode == 0:
            for u in range(block):
                skeys[o + np.uint64(u)] = key(a[start + np.uint64(u)])
        elif mode == 1:
            for u in range(block):
                j = start + np.uint64(u)
                skeys[o + np.uint64(u)] = key(a[j] - b[j])
        elif mode == 2:
            for u in range(block):
                j = start + np.uint64(u)
                skeys[o + np.uint64(u)] = key(mul(c, a[j]) - b[j])
        elif mode == 3:
            for u in range(block):
                j = start + np.uint64(u)
                skeys[o + np.uint64(u)] = key(add(b[j], mul(c, a[j])))
        else:
            for u in range(block):
                skeys[o + np.uint64(u)] = key(b[start + np.uint64(u)])
    for t in range(s):
        lo_k = min(lo_k, skeys[t])
        hi_k = max(hi_k, skeys[t])
    if lo_k == hi_k:  # one value (say all zero): it is the threshold
        return lo_k
    shift, prefix, _ = radix_serial(SRC_DENSE, s, 0, a, b, c, 0, skeys, rank, keybits,
                                    11, hist, gt, eq)
    return prefix << shift
