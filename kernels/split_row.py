"""One long row split into ``nch`` contiguous chunks processed in parallel.

The driver :func:`row_split` runs the pipeline of :mod:`.rows` on the whole row, and
each of its per-chunk steps (a pass over every chunk) through :func:`each_chunk`, the
one parallel loop: a single compiled parallel region for every step (each parallel loop
that Numba compiles costs about a second of the first call's compile time). The chunks
share a table of per-chunk counts, ``tab`` (int64, rows named below, a column per
chunk): the counts are exact, and the chunks are in index order, so the result does
not depend on the chunking (hence the thread count). :func:`row_split` is only called
from its entries (:mod:`.launch`), into which it is inlined (see :mod:`.rows`).

Every store into the arrays of a tuple argument happens in a called function: Numba
(0.68) drops stores, in a parallel loop, into arrays unpacked from a tuple argument when
nothing reads them afterwards.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .candidates import emit_list, lists_kth
from .keys import bits_empty, update_state
from .modes import MODE_EF
from .passes import (argmax, collect, count_equal, emit_all, emit_chunk, emit_one,
                     histogram_range, sample_keys, update_error)
from .select import BUCKETS_MAX, choose_bucket, keep_range, plan_chunks, sample_threshold

# Rows of the per-chunk table.
BOUNDS = 0  # chunk ch is [tab[BOUNDS, ch], tab[BOUNDS, ch + 1])
COUNT = 1  # candidates (key > t)
MID = 2  # candidates in the sample's window (t_lo, t_hi] ...
ABOVE = 3  # ... and above it
GT = 4  # keys above the k-th largest
EQ = 5  # keys equal to it
OFF = 6  # the chunk's first output slot
QUOTA = 7  # how many of its ties it emits
BEST_KEY = 8  # k = 1: the chunk's largest key ...
BEST_AT = 9  # ... and its index
TABLE_ROWS = 10

# The steps of each_chunk (NumPy integers: not literals to Numba, so every call
# shares one compiled version).
UPDATE_ERROR = np.int64(0)
EMIT_ALL = np.int64(1)
ARGMAX = np.int64(2)
COLLECT = np.int64(3)
EMIT_LISTS = np.int64(4)
COUNT_EQUAL = np.int64(5)
HISTOGRAM = np.int64(6)
EMIT_RANGE = np.int64(7)


@njit(cache=True, nogil=True, parallel=True)
def each_chunk(step, mode, written, row, bufs, out, tab, params):
    """Run ``step`` on every chunk of the row, in parallel.

    ``bufs = (kbuf, obuf, mbuf, hist)``: the candidate buffers (``capc`` per chunk)
    and the (nch, 2**rbits) digit histograms; ``params``: four int64, what the step
    reads:

    =============  ===========================  ========================================
    step           params                       per chunk
    =============  ===========================  ========================================
    UPDATE_ERROR   -                            the EF error update, written back
    EMIT_ALL       -                            every element emitted (k = d)
    ARGMAX         -                            BEST_KEY, BEST_AT (and the write-back)
    COLLECT        t, t_lo, t_hi, capc          the candidates; COUNT, MID, ABOVE
    EMIT_LISTS     tk, capc                     GT + QUOTA candidates emitted from OFF
    COUNT_EQUAL    t                            EQ = keys equal to t
    HISTOGRAM      hi_bit, lo_bit, prefix       ``hist[ch]``: one digit's counts
    EMIT_RANGE     shift, prefix                GT + QUOTA elements emitted from OFF
    =============  ===========================  ========================================
    """
    kbuf, obuf, mbuf, hist = bufs
    p0, p1, p2, p3 = params
    for ch in prange(tab.shape[1] - 1):
        span = (tab[BOUNDS, ch], tab[BOUNDS, ch + 1])
        if step == UPDATE_ERROR:
            update_error(row, span)
        elif step == EMIT_ALL:
            emit_all(mode, row, span, out)
        elif step == ARGMAX:
            tab[BEST_KEY, ch], tab[BEST_AT, ch] = argmax(mode, row, span)
        elif step == COLLECT:
            st = ch * p3
            cnt = collect(mode, written, row, span, p0,
                          (kbuf[st:st + p3], obuf[st:st + p3]), p3)
            tab[COUNT, ch] = cnt
            if cnt <= p3:
                tab[MID, ch], tab[ABOVE, ch] = keep_range(kbuf[st:], cnt, p1 + 1, p2,
                                                          mbuf[st:])
        elif step == EMIT_LISTS:
            st = ch * p1
            end = st + tab[COUNT, ch]
            slots = (tab[OFF, ch], tab[GT, ch] + tab[QUOTA, ch])
            emit_list((kbuf[st:end], obuf[st:end]), span[0],
                      (p0, tab[QUOTA, ch], tab[EQ, ch]), out, slots)
            update_state(mode, row[1], out, slots[0], slots[0] + slots[1])
        elif step == COUNT_EQUAL:
            tab[EQ, ch] = count_equal(mode, row, span, p0)
        elif step == HISTOGRAM:
            histogram_range(mode, row, span, (p0, p1, p2), hist[ch])
        else:  # EMIT_RANGE
            emit_chunk(mode, row, span, (p0, p1, tab[QUOTA, ch]), out,
                       (tab[OFF, ch], tab[GT, ch] + tab[QUOTA, ch]))


@njit(cache=True, nogil=True, inline="always")
def row_split(mode, row, plan, lists, out):
    """Select on one long row, split into ``nch`` chunks processed in parallel
    (``plan``: a :data:`.plan.SPLIT_PLAN`; ``row``, ``out``: one row, as in
    :mod:`.rows`).

    ``nblocks > 0`` enables the sample, with per-chunk candidate capacity ``capc``
    (``lists = (kbuf, obuf, mbuf)``: workspaces with room for ``nch * capc``, kept
    across calls by the caller); ``rbits`` is the digit width of the full-range
    select; ``written``: the EF error is already written back.

    Returns 0 when done, else (a chunk held more than ``capc`` candidates: nothing
    was emitted, but ``MODE_EF`` wrote the updated error back) the capacity per chunk
    with which a call with ``written`` succeeds.
    """
    k, keybits, rbits, nch, capc, written = plan[:6]
    nblocks = plan[6]
    kbuf, obuf, mbuf = lists
    a = row[0]
    d = a.shape[0]
    tab = np.zeros((TABLE_ROWS, nch + 1), dtype=np.int64)
    for ch in range(nch + 1):
        tab[BOUNDS, ch] = ch * d // nch
    bufs = (kbuf, obuf, mbuf, np.empty((nch, 0), dtype=np.int64))
    zero = np.int64(0)
    none = (zero, zero, zero, zero)
    # k = 0, 1, d: never run again, so the EF error is not written yet
    if k == 0:
        if mode == MODE_EF and not written:
            each_chunk(UPDATE_ERROR, mode, written, row, bufs, out, tab, none)
        return 0
    if k == d:
        each_chunk(EMIT_ALL, mode, written, row, bufs, out, tab, none)
        return 0
    if k == 1:
        each_chunk(ARGMAX, mode, written, row, bufs, out, tab, none)
        top = 0
        for ch in range(1, nch):
            if tab[BEST_KEY, ch] > tab[BEST_KEY, top]:
                top = ch
        emit_one(mode, row, tab[BEST_AT, top], out)
        return 0

    # MODE_EF: the first pass over the row writes the error back (written from then
    # on). The full-range emitting scans take the keys with key >> shift > prefix, then
    # the first ties; exact: known without a radix select
    gt = tab[GT, :nch]
    eq = tab[EQ, :nch]
    shift = zero
    prefix = zero
    exact = False
    if nblocks > 0:
        skeys = bits_empty(nblocks * plan[7], a)
        scratch = (np.empty(BUCKETS_MAX, dtype=np.int64),
                   np.empty((4, BUCKETS_MAX), dtype=np.int32))
        if written:
            sample_keys(mode, True, row, nblocks, plan[7], skeys)
        else:
            sample_keys(mode, False, row, nblocks, plan[7], skeys)
        thresholds = sample_threshold(skeys, plan[6:], scratch)
        t, t_lo, t_hi = thresholds
        each_chunk(COLLECT, mode, written, row, bufs, out, tab,
                   (np.int64(t), np.int64(t_lo), np.int64(t_hi), np.int64(capc)))
        cnt = tab[COUNT, :nch]
        tot = cnt.sum()
        if tot >= k:
            most = 0
            for ch in range(nch):
                most = max(most, cnt[ch])
            if most > capc:  # a chunk holds more than its share: call again
                return most
            tk = lists_kth((kbuf, mbuf), capc, (cnt, tab[MID, :nch], tab[ABOVE, :nch]),
                           thresholds, k, (gt, eq))
            plan_chunks(gt, eq, k, tab[OFF, :nch], tab[QUOTA, :nch])
            each_chunk(EMIT_LISTS, mode, written, row, bufs, out, tab,
                       (np.int64(tk), np.int64(capc), zero, zero))
            return 0
        each_chunk(COUNT_EQUAL, mode, written, row, bufs, out, tab,
                   (np.int64(t), zero, zero, zero))
        if k <= tot + eq.sum():
            # the k-th key is t itself: every key above it (counted exactly), then the
            # first ties in index order, found by scans that stop early
            for ch in range(nch):
                gt[ch] = cnt[ch]
            prefix = np.int64(t)
            exact = True
        else:
            eq[:] = 0
    elif mode == MODE_EF and not written:
        each_chunk(UPDATE_ERROR, mode, written, row, bufs, out, tab, none)
    if not exact:  # exact radix select over the full range of every chunk
        bufs = (kbuf, obuf, mbuf, np.empty((nch, np.int64(1) << rbits), dtype=np.int64))
        hist = bufs[3]
        hi_bit = np.int64(keybits)
        prefix = zero
        need = np.int64(k)
        gt[:] = 0
        while True:
            lo_bit = max(hi_bit - rbits, 0)
            width = hi_bit - lo_bit
            nb = np.int64(1) << width
            each_chunk(HISTOGRAM, mode, written, row, bufs, out, tab,
                       (hi_bit, np.int64(lo_bit), prefix, zero))
            bk, cum, h = choose_bucket(hist, nch, nb, need, gt)
            need -= cum
            prefix = (prefix << width) | bk
            hi_bit = np.int64(lo_bit)
            if hi_bit == 0 or h == need:
                for ch in range(nch):
                    eq[ch] = hist[ch, bk]
                break
        shift = hi_bit
    plan_chunks(gt, eq, k, tab[OFF, :nch], tab[QUOTA, :nch])
    each_chunk(EMIT_RANGE, mode, written, row, bufs, out, tab, (shift, prefix, zero, zero))
    return 0
