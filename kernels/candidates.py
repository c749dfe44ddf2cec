"""Selection among the candidate lists of the sample-select, and emission from them.

The candidate pass (:func:`.passes.collect`) kept, per chunk of a row, the value bits
(:func:`.keys.vbits`: int32 for float32, int64 for float64) and the offsets of every
element with key > t; when they are at least k, the k-th largest key ``tk`` is selected
among the candidates in the sample's narrow window ``(t_lo, t_hi]`` (those above it are
only counted), or, in the rare case that the window misses it, among those above or
below it; then the selected candidates are emitted from the lists, in index order,
each chunk at its own output offset. The three threshold keys travel as
``thresholds = (t, t_lo, t_hi)`` (see :func:`.select.sample_threshold`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import canon
from .passes import WORD
from .select import BUCKETS_MAX, KEY_MAX, count_above_equal, keep_range, select_rank


@njit(cache=True, nogil=True)
def window_of(thresholds, k, n, above):
    """``(lo_k, hi_k)``: the keys among which the k-th largest candidate (all > t) is
    selected, given the counts of candidates in ``(t_lo, t_hi]`` (n) and above it:
    that window, or, when the sample misjudged, all those above or below it."""
    t, t_lo, t_hi = thresholds
    if above >= k:
        return t_hi + 1, KEY_MAX
    if above + n < k:
        return t + 1, t_lo
    return t_lo + 1, t_hi


@njit(cache=True, nogil=True)
def list_kth(kbuf, m, thresholds, k, mid, scratch):
    """``(tk, above, equal)`` for one candidate list ``kbuf[:m]`` (keys > t,
    ``1 <= k <= m``): its k-th largest key and how many keys are > tk and == tk.

    The keys in the window are copied to ``mid`` (room for m); ``scratch`` as in
    :func:`.select.select_rank`.
    """
    _, t_lo, t_hi = thresholds
    n, above = keep_range(kbuf, m, t_lo + 1, t_hi, mid)
    lo_k, hi_k = window_of(thresholds, k, n, above)
    if lo_k != t_lo + 1 or hi_k != t_hi:  # not the window: recount
        n, above = keep_range(kbuf, m, lo_k, hi_k, mid)
    rank = k - above
    tk, g, e, _, _ = select_rank(mid, n, (rank, rank, rank), np.int64(-1), (lo_k, hi_k),
                                 scratch)
    return tk, above + g, e


@njit(cache=True, nogil=True)
def lists_kth(lists, capc, counts, thresholds, k, result):
    """The k-th largest key tk of all chunks' candidate lists, and per chunk the count
    of keys > tk and == tk (into ``result = (gt, eq)``).

    As :func:`list_kth`, over the chunks: ``lists = (kbuf, mbuf)``, chunk ch's list of
    ``cnt[ch]`` keys at ``kbuf[ch * capc:]``, and ``mbuf[ch * capc:]`` its ``nmid[ch]``
    keys in the window, ``nabove[ch]`` of its keys being above (``counts = (cnt, nmid,
    nabove)``, k <= their total). When the sample misjudged, the window is
    recomputed.
    """
    kbuf, mbuf = lists
    cnt, nmid, nabove = counts
    gt, eq = result
    nch = cnt.shape[0]
    lo_k, hi_k = window_of(thresholds, k, nmid.sum(), nabove.sum())
    _, t_lo, t_hi = thresholds
    if lo_k != t_lo + 1 or hi_k != t_hi:  # not the window: recount
        for ch in range(nch):
            nmid[ch], nabove[ch] = keep_range(kbuf[ch * capc:], cnt[ch], lo_k, hi_k,
                                              mbuf[ch * capc:])
    # the window's keys, chunk after chunk, in one array
    nk = nmid.sum()
    keys = np.empty(nk, dtype=mbuf.dtype)
    o = 0
    for ch in range(nch):
        for i in range(ch * capc, ch * capc + nmid[ch]):
            keys[o] = mbuf[i]
            o += 1
    rank = k - nabove.sum()
    scratch = (np.empty(BUCKETS_MAX, dtype=np.int64),
               np.empty((4, BUCKETS_MAX), dtype=np.int32))
    tk = select_rank(keys, nk, (rank, rank, rank), np.int64(-1), (lo_k, hi_k),
                     scratch)[0]
    for ch in range(nch):
        g, e = count_above_equal(mbuf[ch * capc:], nmid[ch], tk)
        gt[ch] = nabove[ch] + g
        eq[ch] = e
    return tk


@njit(cache=True, nogil=True)
def emit_list(lists, lo, sel, out, slots):
    """Emit, in index order, the candidates ``lists = (kbuf, obuf)`` of the chunk
    starting at ``lo`` with key > tk and the first ``quota`` of their ``ties`` with key
    == tk (``sel = (tk, quota, ties)``); they are ``n_out`` in all, the exact count: the
    slots from ``off`` of ``out = (idx_row, val_row)`` are written, no others
    (``slots = (off, n_out)``; values from the stored bits). The state update at them
    is the caller's (:func:`.keys.update_state`).

    Branch-free: every candidate up to the last selected one is written to the next
    free slot, which advances only when it is selected (bit masks of the selected
    ones, a word of ``WORD`` at a time, are vectorised). Unsigned indices: no test
    for negative ones.
    """
    kbuf, obuf = lists
    tk, quota, ties = sel
    off, n_out = slots
    idx_row, val_row = out
    m = kbuf.shape[0]
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
    outv = (idx_row, val_row.view(kbuf.dtype))
    w = np.uint64(off)
    end = last + 1
    nfull = end - end % WORD
    for i0 in range(0, nfull, WORD):
        w = emit_word(lists, lo, i0, WORD, (tk, cut), w, outv)
    emit_word(lists, lo, nfull, end - nfull, (tk, cut), w, outv)


@njit(cache=True, nogil=True, inline="always")  # a constant nw: the loops unroll
def emit_word(lists, lo, i0, nw, sel, w, outv):
    """:func:`emit_list` for candidates ``i0 .. i0+nw-1`` (``nw <= WORD``), from slot
    w, ``sel = (tk, cut)``; returns the next free slot. ``outv``: the index row and the
    value row seen as ``kbuf``'s integer type."""
    kbuf, obuf = lists
    tk, cut = sel
    idx_row, vrow = outv
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
