"""The streaming passes over a span ``[lo, hi)`` of one row.

A *row* is ``(a, b, c)`` (see :mod:`.keys`), a *span* ``(lo, hi)``: the whole row, or
one chunk of a row split across threads. Each pass is one loop written once; ``mode``
is a constant wherever they are called from (see :mod:`.launch`), so Numba compiles
one copy of each per mode, with every test of the mode folded away.

* :func:`collect`: the candidates of the sample-select (key > t), value bits and
  offsets into bounded lists; in ``MODE_EF`` it writes the updated error back.
* :func:`count_equal`: how many keys equal t.
* :func:`sample_keys`: the keys of evenly spread runs of the row.
* :func:`histogram_keys`, :func:`histogram_range`: the counts of one radix digit of
  the keys with a given prefix (precomputed keys, or those of a span).
* :func:`emit_chunk`: the emitting scan of the full-range selection.
* :func:`argmax`, :func:`emit_one`, :func:`emit_all`: the k = 1 and k = d cases.

``written`` (see :mod:`.modes`) is a flag of the passes that run both before and after
the EF error is written back; the others say which state they run in. The parallel
driver (:mod:`.split_row`) calls them on the chunks of a row: they, not it, store into
the arrays they are given (see there).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import add, canon, ctz, emit, key, mul, value, vbits
from .masks import MASK_BITS, compress_values, popcount, values_gt_mask
from .modes import MODE_EF, MODE_TOPK

#: Elements per bit mask word of the passes that visit only the set bits (and per
#: vector compare of the candidate pass).
WORD = MASK_BITS
#: Words of the candidate pass with at most this many candidates store them one by
#: one, a fixed number of stores (no branch on the count); fuller words are
#: compressed (a compress per 512 bits costs more than these few stores on the sparse
#: words of a small k: 2026-12-05, loaded 2-core machine, one run each, the pass of
#: topk d = 1e5, k = 1000: float64 10.8 -> 8.8 us, float32 6.4 -> 7.0 us, noise).
FEW_HITS = 4
TOP_BIT = np.uint64(1 << 63)
#: Candidate lists of room ``cap`` for a span ``SPARSE_RATIO * cap`` long or longer:
#: about one word in ten or fewer holds a candidate, and the pass skips the empty
#: words by a branch. Fuller words are compressed in float32 and visited bit by bit
#: in float64. (With fixed stores on every word and compresses in float64 too, topk
#: d = 1e7 float64 took 1.34 ms at k = 1e4 and 2.8-3.0 ms at k = 1e6, against 1.2
#: and 2.5 ms with the bit visits of before; 2026-12-05, loaded machine.)
SPARSE_RATIO = 400


@njit(cache=True, nogil=True)
def update_error(row, span):
    """``b[j] = b[j] + c * a[j]`` on the span (the EF14 error update, written back)."""
    a, b, c = row
    lo, hi = span
    sa = a[lo:hi]
    sb = b[lo:hi]
    for t in range(hi - lo):
        sb[t] = add(sb[t], mul(c, sa[t]))


@njit(cache=True, nogil=True)
def collect(mode, written, row, span, t, lists, cap):
    """The candidates of the span: the elements with key > t, in index order, their
    value bits to ``lists[0]`` and their offsets ``j - lo`` to ``lists[1]`` (room for
    ``cap``).

    Returns their count, exact even when it exceeds ``cap`` (the lists are then
    incomplete and must not be used). ``MODE_EF`` not yet written: the updated error
    is written back on the whole span (it is written from then on).

    Per word of ``WORD`` elements, while the lists have room for all of it: their
    values and keys in vector registers, one compare with t (:func:`.masks.
    values_gt_mask`), then the word's candidates stored by ``FEW_HITS`` fixed stores
    or, in a fuller word, left-packed into the lists (:func:`.masks.compress_values`;
    float64: visited bit by bit): no branch per candidate, whose mispredictions cost
    as much as the rest of the pass (on sparse spans, empty words are skipped). Words
    that may not fit (the sample was off) go element by element.
    """
    a, b, c = row
    lo, hi = span
    kbuf, obuf = lists
    seg = (a[lo:hi], b[lo:hi], c)
    sa, sb, _ = seg
    m = hi - lo
    tk = kbuf.dtype.type(t)  # the keys' integer type
    cnt = np.uint64(0)  # unsigned indices: no test for negative ones
    ucap = np.uint64(cap)
    nwords = m // WORD
    # most words without a candidate (a small k on a long row): skip them by a branch,
    # then predictable
    sparse = cap * SPARSE_RATIO < m
    for q in range(nwords):
        uw = np.uint64(q * WORD)
        if cnt + np.uint64(WORD) <= ucap:  # room for the whole word
            if mode == MODE_EF and written:  # the values are in sb
                msk = values_gt_mask(MODE_TOPK, (sb, sb, c), uw, tk)
            else:  # (MODE_EF: written back from here on)
                msk = values_gt_mask(mode, seg, uw, tk)
            if sparse and msk == 0:
                continue
            h = popcount(msk)
            if h <= FEW_HITS:
                # a fixed number of stores from the lowest set bits (past the last
                # one: the word's last element, stored beyond the count)
                for _ in range(FEW_HITS):
                    j = uw + ctz(msk | TOP_BIT)
                    kbuf[cnt] = vbits(value(mode, True, seg, j))
                    obuf[cnt] = j
                    cnt += np.uint64(1)
                    msk &= msk - np.uint64(1)
                cnt -= np.uint64(FEW_HITS) - h
            elif kbuf.itemsize == 8:  # float64: eight compresses a word cost more
                while msk:
                    j = uw + ctz(msk)
                    kbuf[cnt] = vbits(value(mode, True, seg, j))
                    obuf[cnt] = j
                    cnt += np.uint64(1)
                    msk &= msk - np.uint64(1)
            elif mode == MODE_EF:
                cnt = compress_values(MODE_TOPK, (sb, sb, c), uw, tk, lists, cnt)
            else:
                cnt = compress_values(mode, seg, uw, tk, lists, cnt)
            continue
        if mode == MODE_EF and not written:  # the error update, written back
            for u in range(WORD):
                j = uw + np.uint64(u)
                sb[j] = add(sb[j], mul(c, sa[j]))
        for u in range(WORD):
            j = uw + np.uint64(u)
            if canon(vbits(value(mode, True, seg, j))) > tk:
                if cnt < ucap:
                    kbuf[cnt] = vbits(value(mode, True, seg, j))
                    obuf[cnt] = j
                cnt += np.uint64(1)
    for j in range(nwords * WORD, m):
        if mode == MODE_EF and not written:
            sb[j] = add(sb[j], mul(c, sa[j]))
        vj = vbits(value(mode, True, seg, j))
        if canon(vj) > t:
            if cnt < ucap:
                kbuf[cnt] = vj
                obuf[cnt] = j
            cnt += np.uint64(1)
    return np.int64(cnt)


@njit(cache=True, nogil=True)
def count_equal(mode, row, span, t):
    """How many keys of the span equal t, on written values. Only needed when the
    candidates are fewer than k (then the ties at t may decide), so not counted by
    :func:`collect`."""
    a, b, c = row
    lo, hi = span
    seg = (a[lo:hi], b[lo:hi], c)
    e = np.int64(0)
    for j in range(hi - lo):
        e += key(value(mode, True, seg, j)) == t
    return e


@njit(cache=True, nogil=True)
def sample_keys(mode, written, row, nblocks, block, skeys):
    """The keys of ``nblocks`` runs of ``block`` consecutive elements spread evenly over
    the row (cache-line friendly), into ``skeys[:nblocks * block]`` (``nblocks >= 2``).
    Reads only (``MODE_EF`` not yet written: the updated error on the fly).

    Callers pass ``written`` as a constant (it is read in the loop).
    """
    d = row[0].shape[0]
    # run q starts at q * (d - block) // (nblocks - 1), stepped without a division
    step, rem = divmod(d - block, nblocks - 1)
    start = np.uint64(0)
    frac = 0
    for q in range(nblocks):
        o = np.uint64(q * block)
        for u in range(block):
            skeys[o + np.uint64(u)] = key(value(mode, written, row, start + np.uint64(u)))
        start += np.uint64(step)
        frac += rem
        if frac >= nblocks - 1:
            start += np.uint64(1)
            frac -= nblocks - 1


@njit(cache=True, nogil=True)
def histogram_keys(keys, m, digit, hist):
    """Count the keys ``keys[:m]`` with ``key >> hi_bit == prefix`` by their bits
    ``[lo_bit, hi_bit)`` into ``hist[: 1 << (hi_bit - lo_bit)]`` (zeroed first);
    ``digit = (hi_bit, lo_bit, prefix)``."""
    hi_bit, lo_bit, prefix = digit
    width = hi_bit - lo_bit
    mask = (np.int64(1) << width) - 1
    hist[: np.int64(1) << width] = 0
    for t in range(m):
        kk = keys[t]
        if (kk >> hi_bit) == prefix:
            hist[(kk >> lo_bit) & mask] += 1


@njit(cache=True, nogil=True)
def histogram_range(mode, row, span, digit, hist):
    """:func:`histogram_keys` of the keys of the span, on written values."""
    a, b, c = row
    lo, hi = span
    hi_bit, lo_bit, prefix = digit
    seg = (a[lo:hi], b[lo:hi], c)
    width = hi_bit - lo_bit
    mask = (np.int64(1) << width) - 1
    hist[: np.int64(1) << width] = 0
    for t in range(hi - lo):
        kk = key(value(mode, True, seg, t))
        if (kk >> hi_bit) == prefix:
            hist[(kk >> lo_bit) & mask] += 1


@njit(cache=True, nogil=True)
def emit_chunk(mode, row, span, sel, out, slots):
    """Emit, in index order, the span's elements with ``key >> shift > prefix`` and the
    first ``quota`` with ``key >> shift == prefix`` (``sel = (shift, prefix, quota)``),
    to the slots from ``off`` of ``out = (idx_row, val_row)``; they are ``n_out`` in
    all (``slots = (off, n_out)``; the scan stops after the last). On written values.
    Returns the next free slot.
    """
    lo, hi = span
    shift, prefix, quota = sel
    off, n_out = slots
    o = off
    end = off + n_out
    taken = 0
    for t in range(hi - lo):
        if o >= end:
            break
        j = lo + t
        p = key(value(mode, True, row, j)) >> shift
        if p > prefix:
            emit(mode, True, row, j, j, out, o)
            o += 1
        elif p == prefix and taken < quota:
            taken += 1
            emit(mode, True, row, j, j, out, o)
            o += 1
    return o


@njit(cache=True, nogil=True)
def argmax(mode, row, span):
    """``(key, index)`` of the largest key in the span, first index on ties. Runs
    before any write-back (``MODE_EF``: it writes the updated error back on the
    span)."""
    a, b, c = row
    lo, hi = span
    if mode == MODE_EF:
        update_error(row, span)
    seg = (a[lo:hi], b[lo:hi], c)
    best = np.int64(-1)
    bj = lo
    for t in range(hi - lo):
        kk = key(value(mode, True, seg, t))
        if kk > best:
            best = kk
            bj = lo + t
    return best, bj


@njit(cache=True, nogil=True)
def emit_one(mode, row, j, out):
    """:func:`.keys.emit` of element j of a 1-D row to slot 0, on written values (after
    :func:`argmax`). A call, for the parallel drivers: there, Numba (0.68) drops stores
    into arrays unpacked from a tuple argument when nothing reads them afterwards."""
    emit(mode, True, row, j, j, out, 0)


@njit(cache=True, nogil=True)
def emit_all(mode, row, span, out):
    """Emit every element of the span to its own slot (the k = d case), before any
    write-back."""
    lo, hi = span
    for j in range(lo, hi):
        emit(mode, False, row, j, j, out, j)
