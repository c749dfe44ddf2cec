"""Exact top-k selection on keys: the building blocks, chunk by chunk.

A row of length d is cut into contiguous *chunks* (one per parallel task, or one for
a serial row). Two ways to select, both exact (all counts are exact integers, so the
result depends neither on the chunking, hence the thread count, nor on the sample):

**Candidate lists** (the usual case for 1 < k <= about d/2). A sample gives three
threshold keys ``t <= t_lo <= t_hi`` (:func:`sample_threshold`): probably at least k
keys are > t, not many more, and the k-th largest lies in the narrow window ``(t_lo,
t_hi]``. One streaming pass per chunk (:func:`collect`) keeps the value bits
(:func:`.keys.vbits`: int32 for float32, int64 for float64) and the offset from the
chunk start of every element with key > t. If they are at least k, the k-th largest
key ``tk`` is selected among the candidates in the window (:func:`keep_range`,
:func:`select_rank`; those above it are only counted), or, in the rare case that the
window misses it, among those above or below it. Emission (:func:`emit_list`) copies
the indices and values from the lists.

**Full range** (no sample, or fewer than k candidates). Each chunk presents its
elements, in index order, from one *source*:

``SRC_RANGE``
    every index ``lo .. lo+m-1`` of the row, keys computed from the values;
``SRC_DENSE``
    every index ``lo .. lo+m-1`` with its key precomputed in ``kbuf[:m]``.

An MSD radix select on the keys (per-chunk histograms of ``rbits`` bits at a time,
restricted to the prefix chosen so far) finds a prefix ``P`` at bit ``shift``: every
element with ``key >> shift > P`` is selected, and of those with ``key >> shift == P``
the first ``need_eq`` in index order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import add, canon, ctz, emit, key, mul, value, vbits

SRC_RANGE = 0
SRC_DENSE = 2

#: Elements per bit mask word of the passes that visit only the set bits ...
WORD = 64
#: ... and words per tile of the candidate pass (masks computed ahead of the visits).
TILE_WORDS = 8
#: Buckets of a round of :func:`select_rank`: at most this many ...
BUCKETS_MAX = 2048
#: ... and at least this many.
BUCKETS_MIN = 64
#: The greatest int64: no key is above it (a NumPy scalar: not a literal to Numba, so
#: calls passing it do not compile a version of their own).
KEY_MAX = np.int64(2**63 - 1)


@njit(cache=True, nogil=True, inline="always")  # a call per tile would cost as much
def tile_masks(mode, sa, sb, c, q0, nw, t, masks):
    """``masks[w]`` (w < nw): bit u set when element ``q0 + WORD * w + u`` of the chunk
    (``sa``/``sb``) has key > t (t of the key's integer type: 32-bit compares for
    float32). Mode 3 writes the updated error back to ``sb`` first.

    One plain loop per mode (the mode is tested once per word): each vectorises.
    """
    u0 = np.uint64(q0)
    if mode == 3:  # its own loop: it vectorises
        for u in range(WORD * nw):
            j = u0 + np.uint64(u)
            sb[j] = add(sb[j], mul(c, sa[j]))
    for w in range(nw):
        msk = np.uint64(0)
        uw = u0 + np.uint64(WORD * w)
        if mode == 0:
            for u in range(WORD):
                kk = canon(vbits(sa[uw + np.uint64(u)]))
                msk |= np.uint64(kk > t) << np.uint64(u)
        elif mode == 1:
            for u in range(WORD):
                j = uw + np.uint64(u)
                msk |= np.uint64(canon(vbits(sa[j] - sb[j])) > t) << np.uint64(u)
        elif mode == 2:
            for u in range(WORD):
                j = uw + np.uint64(u)
                kk = canon(vbits(mul(c, sa[j]) - sb[j]))
                msk |= np.uint64(kk > t) << np.uint64(u)
        else:
            for u in range(WORD):
                kk = canon(vbits(sb[uw + np.uint64(u)]))
                msk |= np.uint64(kk > t) << np.uint64(u)
        masks[w] = msk


@njit(cache=True, nogil=True)
def collect(mode, a, b, c, lo, hi, t, kbuf, obuf, cap):
    """The candidates of ``[lo, hi)``: the elements with key > t, in index order, their
    value bits to ``kbuf`` and their offsets ``j - lo`` to ``obuf`` (room for ``cap``).

    Returns their count, exact even when it exceeds ``cap`` (the lists are then
    incomplete and must not be used). In mode 3 the updated error is written back on
    the whole range (the caller then uses mode 4).

    Per tile of ``TILE_WORDS`` words of ``WORD`` elements: bit masks of the candidates
    (vectorised), then only their set bits are visited, so the cost beyond the
    streaming pass is per candidate, not per element. (Masks a tile ahead: the scalar
    loops do not wait on each mask's latency.)
    """
    sa = a[lo:hi]
    sb = b[lo:hi]
    m = hi - lo
    smode = 4 if mode == 3 else mode
    tk = kbuf.dtype.type(t)  # the keys' integer type
    masks = np.empty(TILE_WORDS, dtype=np.uint64)
    cnt = np.uint64(0)  # unsigned indices: no test for negative ones
    ucap = np.uint64(cap)
    tile = WORD * TILE_WORDS
    nwords = m // WORD
    for q0 in range(0, nwords * WORD, tile):
        nw = min(TILE_WORDS, nwords - q0 // WORD)
        tile_masks(mode, sa, sb, c, q0, nw, tk, masks)
        for w in range(nw):
            msk = masks[w]
            uw = np.uint64(q0 + WORD * w)
            if cnt + np.uint64(WORD) <= ucap:  # room for the whole word
                while msk:
                    j = uw + ctz(msk)
                    kbuf[cnt] = vbits(value(smode, sa, sb, c, j))
                    obuf[cnt] = j
                    cnt += np.uint64(1)
                    msk &= msk - np.uint64(1)
            else:
                while msk:
                    if cnt < ucap:
                        j = uw + ctz(msk)
                        kbuf[cnt] = vbits(value(smode, sa, sb, c, j))
                        obuf[cnt] = j
                    cnt += np.uint64(1)
                    msk &= msk - np.uint64(1)
    for j in range(nwords * WORD, m):
        if mode == 3:
            sb[j] = add(sb[j], mul(c, sa[j]))
        vb = vbits(value(smode, sa, sb, c, j))
        if canon(vb) > t:
            if cnt < ucap:
                kbuf[cnt] = vb
                obuf[cnt] = j
            cnt += np.uint64(1)
    return np.int64(cnt)


@njit(cache=True, nogil=True)
def count_equal(mode, a, b, c, lo, hi, t):
    """How many keys of ``[lo, hi)`` equal t (mode != 3). Only needed when the
    candidates are fewer than k (then the ties at t may decide), so not counted by
    :func:`collect`."""
    sa = a[lo:hi]
    sb = b[lo:hi]
    e = np.int64(0)
    if mode == 0:
        for j in range(hi - lo):
            e += key(sa[j]) == t
    elif mode == 1:
        for j in range(hi - lo):
            e += key(sa[j] - sb[j]) == t
    elif mode == 2:
        for j in range(hi - lo):
            e += key(mul(c, sa[j]) - sb[j]) == t
    else:
        for j in range(hi - lo):
            e += key(sb[j]) == t
    return e


@njit(cache=True, nogil=True)
def range_hist(a, n, lo, shift, nb, hist, sub):
    """``hist[:nb]`` = counts of the bucket ``(a[i] - lo) >> shift`` (each below nb) of
    the keys ``a[:n]``; ``sub``: a (4, >= nb) int32 scratch (n < 2**33)."""
    sub[:, :nb] = 0
    s0 = sub[0]
    s1 = sub[1]
    s2 = sub[2]
    s3 = sub[3]
    # keys crowd a few buckets: four interleaved sub-histograms keep consecutive
    # increments of one bucket from waiting on each other
    n4 = n - n % 4
    for i in range(0, n4, 4):
        s0[np.uint64((a[i] - lo) >> shift)] += 1
        s1[np.uint64((a[i + 1] - lo) >> shift)] += 1
        s2[np.uint64((a[i + 2] - lo) >> shift)] += 1
        s3[np.uint64((a[i + 3] - lo) >> shift)] += 1
    for i in range(n4, n):
        s0[np.uint64((a[i] - lo) >> shift)] += 1
    for q in range(nb):
        hist[q] = s0[q] + s1[q] + s2[q] + s3[q]


@njit(cache=True, nogil=True)
def keep_range(src, n, lo_k, hi_k, dst):
    """Copy, in order, the keys ``canon(src[i])`` (i < n) in ``[lo_k, hi_k]`` to ``dst``
    (room for all of them; ``dst`` may be ``src``: it is written behind the reads).
    Returns their count and the count of keys > hi_k.

    The range holds few of the keys: per word of ``WORD`` of them, a bit mask of those
    in it (vectorised), then only its set bits are visited.
    """
    w = np.uint64(0)
    above = np.int64(0)
    nfull = n - n % WORD
    for i0 in range(0, nfull, WORD):
        u0 = np.uint64(i0)
        msk = np.uint64(0)
        for u in range(WORD):
            kk = canon(src[u0 + np.uint64(u)])
            msk |= np.uint64((kk >= lo_k) & (kk <= hi_k)) << np.uint64(u)
            above += kk > hi_k
        while msk:
            dst[w] = canon(src[u0 + ctz(msk)])
            w += np.uint64(1)
            msk &= msk - np.uint64(1)
    for i in range(nfull, n):
        kk = canon(src[i])
        above += kk > hi_k
        if lo_k <= kk <= hi_k:
            dst[w] = kk
            w += np.uint64(1)
    return np.int64(w), above


@njit(cache=True, nogil=True)
def split_range(lo, hi, n):
    """``(shift, nb)``: the buckets ``(key - lo) >> shift`` split ``[lo, hi]`` into
    ``nb`` equal parts (the last one possibly cut short); ``nb`` is at most the power
    of two between ``BUCKETS_MIN`` and ``BUCKETS_MAX`` nearest above n / 4 (about 4
    of n keys per bucket: no large histogram to clear for a few keys)."""
    most = BUCKETS_MIN
    while most < BUCKETS_MAX and 4 * most < n:
        most *= 2
    shift = 0
    while (hi - lo) >> shift >= most:
        shift += 1
    return shift, ((hi - lo) >> shift) + 1


@njit(cache=True, nogil=True)
def bucket_bounds(lo, hi, shift, bk):
    """The least and greatest key in ``[lo, hi]`` of the bucket ``(key - lo) >> shift ==
    bk`` (computed without overflow: float64 keys reach 2**63 - 2**52)."""
    below = bk << shift  # <= hi - lo
    return lo + below, lo + below + min((np.int64(1) << shift) - 1, hi - lo - below)


@njit(cache=True, nogil=True)
def top_bucket(hist, nb, rank):
    """The bucket (of ``hist[:nb]``, from the top) that holds the rank-th largest, and
    the count in the buckets above it."""
    cum = np.int64(0)
    bk = nb - 1
    while bk > 0 and cum + hist[bk] < rank:
        cum += hist[bk]
        bk -= 1
    return bk, cum


@njit(cache=True, nogil=True)
def select_rank(a, n, rank, rank_lo, rank_hi, tol, lo, hi, hist, sub):
    """Select on the keys ``a[:n]``, all in ``[lo, hi]`` (``1 <= rank <= n``). Returns
    ``(t, above, equal, win_lo, win_hi)``:

    * with ``tol < 0``, t is the rank-th largest key, and ``above``/``equal`` count
      the keys > t and == t;
    * else it stops as soon as the bucket holding the rank-th largest has at most
      ``tol`` keys, with t just below it: at least rank keys are > t and at most about
      rank + tol (on spread-out keys, after one histogram); or t is the rank-th
      largest exactly. ``above``/``equal`` are then meaningless;
    * ``[win_lo, win_hi]``: from the first round's bucket holding the rank_lo-th
      largest to the one holding the rank_hi-th (``rank_hi <= rank_lo``): at least
      rank_lo keys are >= win_lo, fewer than rank_hi are > win_hi.

    Each round splits the range into equal buckets (:func:`range_hist`) and keeps
    the one that holds the rank-th largest. ``hist``: room for ``BUCKETS_MAX``, ``sub``
    as in :func:`range_hist`. Permutes and compacts ``a``.
    """
    above = np.int64(0)
    win_lo = lo
    win_hi = hi
    first = True
    while True:
        shift, nb = split_range(lo, hi, n)
        range_hist(a, n, lo, shift, nb, hist, sub)
        if first:
            win_lo = bucket_bounds(lo, hi, shift, top_bucket(hist, nb, rank_lo)[0])[0]
            win_hi = bucket_bounds(lo, hi, shift, top_bucket(hist, nb, rank_hi)[0])[1]
            first = False
        bk, cum = top_bucket(hist, nb, rank)
        edge, top = bucket_bounds(lo, hi, shift, bk)
        if shift == 0:  # the bucket is one key: the exact rank-th largest
            return edge, above + cum, hist[bk], win_lo, win_hi
        if hist[bk] <= tol and edge > 0:  # keys > t: the bucket and all above it
            return edge - 1, above, hist[bk], win_lo, win_hi
        if hist[bk] != n:
            n = keep_range(a, n, edge, top, a)[0]
        above += cum
        rank -= cum
        lo = edge
        hi = top


@njit(cache=True, nogil=True)
def count_above_equal(a, n, tk):
    """How many of the keys ``a[:n]`` are > tk and == tk."""
    g = np.int64(0)
    e = np.int64(0)
    for i in range(n):
        g += a[i] > tk
        e += a[i] == tk
    return g, e


@njit(cache=True, nogil=True)
def list_kth(kbuf, m, t, t_lo, t_hi, k, mid, hist, sub):
    """``(tk, above, equal)`` for one candidate list ``kbuf[:m]`` (keys > t,
    ``1 <= k <= m``): its k-th largest key and how many keys are > tk and == tk.

    It is selected among the keys in the window ``(t_lo, t_hi]`` (copied to ``mid``,
    room for m; those above it are only counted), or, in the rare case that the
    window misses it, among those above or below it (:func:`window_of`). ``hist``,
    ``sub`` as in :func:`select_rank`.
    """
    n, above = keep_range(kbuf, m, t_lo + 1, t_hi, mid)
    lo_k, hi_k = window_of(t, t_lo, t_hi, k, n, above)
    if lo_k != t_lo + 1 or hi_k != t_hi:  # not the window: recount
        n, above = keep_range(kbuf, m, lo_k, hi_k, mid)
    rank = k - above
    tk, g, e, _, _ = select_rank(mid, n, rank, rank, rank, np.int64(-1), lo_k, hi_k,
                                 hist, sub)
    return tk, above + g, e


@njit(cache=True, nogil=True)
def window_of(t, t_lo, t_hi, k, n, above):
    """``[lo_k, hi_k]``: the keys among which the k-th largest candidate (all > t) is
    selected, given the counts of candidates in ``(t_lo, t_hi]`` (n) and above it:
    that window, or, when the sample misjudged, all those above or below it."""
    if above >= k:
        return t_hi + 1, KEY_MAX
    if above + n < k:
        return t + 1, t_lo
    return t_lo + 1, t_hi


@njit(cache=True, nogil=True)
def emit_list(mode, b, lo, kbuf, obuf, m, tk, quota, ties, off, n_out, idx_row,
              val_row):
    """Emit, in index order, the candidates ``kbuf/obuf[:m]`` of the chunk starting at
    ``lo`` with key > tk and the first ``quota`` of their ``ties`` with key == tk
    (``n_out`` in all, the exact count: the slots from ``off`` are written, no others;
    values from the stored bits); then the state update at them.

    Branch-free: every candidate up to the last selected one is written to the next
    free slot, which advances only when it is selected (bit masks of the selected
    ones, a word of ``WORD`` at a time, are vectorised). Unsigned indices: no test
    for negative ones.
    """
    cut = m  # ties are taken before position cut, not from it on
    if quota == 0:
        cut = 0
    elif quota < ties:
        seen = 0
        for i in range(m):
            if canon(kbuf[i]) == tk:
                seen += 1
                if seen > quota:
                    cut = i
                    break
    last = m - 1
    while last >= 0 and canon(kbuf[last]) < tk + (last >= cut):
        last -= 1
    vrow = val_row.view(kbuf.dtype)
    w = np.uint64(off)
    end = last + 1
    nfull = end - end % WORD
    for i0 in range(0, nfull, WORD):
        w = emit_word(lo, kbuf, obuf, i0, WORD, tk, cut, w, idx_row, vrow)
    emit_word(lo, kbuf, obuf, nfull, end - nfull, tk, cut, w, idx_row, vrow)
    update_state(mode, b, idx_row, val_row, off, off + n_out)


@njit(cache=True, nogil=True, inline="always")  # a constant nw: the loops unroll
def emit_word(lo, kbuf, obuf, i0, nw, tk, cut, w, idx_row, vrow):
    """:func:`emit_list` for candidates ``i0 .. i0+nw-1`` (``nw <= WORD``), from slot
    w; returns the next free slot. ``vrow``: the value row seen as ``kbuf``'s type."""
    u0 = np.uint64(i0)
    ucut = np.uint64(cut)
    msk = np.uint64(0)
    for u in range(nw):
        i = u0 + np.uint64(u)
        msk |= np.uint64(canon(kbuf[i]) >= tk + (i >= ucut)) << np.uint64(u)
    for u in range(nw):
        i = u0 + np.uint64(u)
        idx_row[w] = lo + obuf[i]
        vrow[w] = kbuf[i]
        w += (msk >> np.uint64(u)) & np.uint64(1)
    return w


@njit(cache=True, nogil=True)
def update_state(mode, b, idx_row, val_row, lo, hi):
    """The state update of the emitted slots ``lo .. hi-1`` (as :func:`.keys.emit`)."""
    if mode == 1 or mode == 2:
        for o in range(lo, hi):
            j = idx_row[o]
            b[j] = add(b[j], val_row[o])
    elif mode >= 3:
        for o in range(lo, hi):
            b[idx_row[o]] = 0.0


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
    if src == SRC_DENSE:
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
    if src == SRC_DENSE and m > 0:
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
def emit_chunk(src, m, mode, a, b, c, lo, kbuf, shift, prefix, quota, off, n_out,
               idx_row, val_row):
    """Emit, in index order, the chunk's elements with ``key >> shift > prefix`` and
    the first ``quota`` with ``key >> shift == prefix``, to slots from ``off``; they
    are ``n_out`` in all (the scan stops after the last)."""
    o = off
    end = off + n_out
    taken = 0
    for t in range(m):
        if o >= end:
            break
        if src == SRC_DENSE:
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
def sample_threshold(mode, a, b, c, nblocks, block, rank, rank_lo, rank_hi, skeys, hist,
                     sub):
    """``(t, t_lo, t_hi)``: keys ``t <= t_lo <= t_hi`` such that about ``rank * d / s``
    keys are > t, at least about ``rank_lo * d / s`` are > t_lo and fewer than about
    ``rank_hi * d / s`` are > t_hi (``s = nblocks * block`` sampled keys).

    Samples ``nblocks`` runs of ``block`` consecutive elements spread evenly over the
    row (cache-line friendly) into ``skeys``; t and the window ``(t_lo, t_hi]`` come
    from :func:`select_rank` on them (at least ``rank`` sampled keys are > t, unless t
    is the rank-th exactly, and not many more; at least ``rank_lo`` are > t_lo, fewer
    than ``rank_hi`` are > t_hi). Reads only (mode 3 computes the updated error on the
    fly). ``hist``: room for ``BUCKETS_MAX``, ``sub`` as in :func:`range_hist`.
    """
    d = a.shape[0]
    s = nblocks * block
    # run q starts at q * (d - block) // (nblocks - 1), stepped without a division
    step, rem = divmod(d - block, nblocks - 1)
    start = np.uint64(0)
    frac = 0
    for q in range(nblocks):
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
        start += np.uint64(step)
        frac += rem
        if frac >= nblocks - 1:
            start += np.uint64(1)
            frac -= nblocks - 1
    lo = np.int64(skeys[0])
    hi = np.int64(skeys[0])
    for q in range(s):
        lo = min(lo, skeys[q])
        hi = max(hi, skeys[q])
    tol = rank // 32 + 4
    t, _, _, win_lo, win_hi = select_rank(skeys, s, rank, rank_lo, rank_hi, tol, lo, hi,
                                          hist, sub)
    t_lo = max(t, win_lo - 1)
    return t, t_lo, max(t_lo, win_hi)
