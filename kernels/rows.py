"""The selection drivers: many rows in parallel (each row serial), all rows on the
calling thread (one thread), and one large row split into parallel chunks. All run
the same pipeline (see :mod:`.select`):

1. k = 0: nothing (EF14 still updates its error); k = d: everything; k = 1: argmax.
2. Small rows (d <= ``dense_max``) precompute all keys into a workspace, then an exact
   radix select (for k <= ``SMALL_K``, an insertion top-k) and one emitting scan.
3. Larger rows draw a sample and take its threshold keys (about ``rank * d / s``
   keys are > t). One streaming pass collects the candidates (key > t: value bits and
   offsets) into bounded buffers (EF14: the same pass writes the updated error back).
   At least k candidates: if a buffer overflowed (the sample was off), they are
   collected again with room for all; the k-th largest key is selected among the
   candidates in the sample's window and they are emitted from the lists. Fewer than
   k, but enough keys equal to t (say most of the row is zero): the k-th key is t,
   one emitting scan of the row. Else (or without a sample): an exact radix select on
   the full range.
4. Emission in index order at per-chunk offsets; the state update happens only at the
   selected indices.

Workspaces are allocated per call and per block of rows, never per row, and never
d-sized except the per-block key buffer of small (dense) rows; the candidate buffers of
a split row, and of the one-thread driver, are passed in (the caller keeps them
between calls). Batches with k in {0, 1, d} skip the pipeline: plain loops on the 2-D
arrays, no per-row views.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .keys import bits_empty, canon, emit, emit2, key, mul, value, value2, vbits
from .select import (BUCKETS_MAX, SRC_DENSE, SRC_RANGE, argmax, choose_bucket, collect,
                     count_above_equal, count_equal, emit_all, emit_chunk, emit_list,
                     histogram, keep_range, kth_small_k, list_kth, radix_serial,
                     sample_threshold, select_rank, update_error, window_of)

#: Up to this k, the k-th key of a key buffer is found by insertion (no radix passes).
SMALL_K = 16


@njit(cache=True, nogil=True)
def row_serial(mode, a, b, c, k, keybits, idx_row, val_row, dense, nblocks, block, rank,
               rank_lo, rank_hi, cap, kbuf, obuf, mbuf, skeys, hist, sub, gt, eq):
    """Select on one row, serially (``2 <= k < d``; dense rows: ``k > SMALL_K``, see
    :func:`rows_small_k`), with the given per-block workspace: ``kbuf`` (value bits
    or keys), ``obuf`` (offsets) and ``mbuf`` (keys) with room for ``cap``, ``skeys``
    for the sample, ``hist`` (1, 2048), ``sub`` (4, 2048), ``gt``/``eq`` (1)."""
    d = a.shape[0]
    sampled = not dense and nblocks > 0
    if mode == 3 and not sampled:
        update_error(a, b, c, 0, d)
        mode = 4
    src = SRC_RANGE
    t = 0
    cnt = 0
    if dense:
        for j in range(d):
            kbuf[j] = key(value(mode, a, b, c, j))
        src = SRC_DENSE
    elif sampled:
        t, t_lo, t_hi = sample_threshold(mode, a, b, c, nblocks, block, rank, rank_lo,
                                         rank_hi, skeys, hist[0], sub)
        # mode 3: the pass writes the updated error back (mode 4 from here on)
        cnt = collect(mode, a, b, c, 0, d, t, kbuf, obuf, cap)
        mode = 4 if mode == 3 else mode
        if cnt >= k:
            if cnt > cap:  # more than the sample promised: collect again, all of them
                kbuf = bits_empty(cnt, a)
                obuf = np.empty(cnt, dtype=obuf.dtype)
                mbuf = bits_empty(cnt, a)
                collect(mode, a, b, c, 0, d, t, kbuf, obuf, cnt)
            tk, above, ties = list_kth(kbuf, cnt, t, t_lo, t_hi, k, mbuf, hist[0], sub)
            emit_list(mode, b, 0, kbuf, obuf, cnt, tk, k - above, ties, 0, k, idx_row,
                      val_row)
            return
    # one emitting scan of the row (a single call: one compiled version): the keys
    # with key >> shift > prefix, then the first need_eq with key >> shift == prefix
    if sampled and k <= cnt + count_equal(mode, a, b, c, 0, d, t):
        # the k-th key is t itself: all keys above it, then the first ties
        shift, prefix, need_eq = 0, t, k - cnt
    else:
        rbits = 8 if d <= 1024 else 11
        shift, prefix, need_eq = radix_serial(src, d, mode, a, b, c, 0, kbuf, k,
                                              keybits, rbits, hist, gt, eq)
    emit_chunk(src, d, mode, a, b, c, 0, kbuf, shift, prefix, need_eq, 0, k, idx_row,
               val_row)


@njit(cache=True, nogil=True)
def rows_serial(mode, a, b, cvec, k, keybits, idx, val, dense, nblocks, block, rank,
                rank_lo, rank_hi, cap, kbuf, obuf, mbuf):
    """Every row of the batch on the calling thread (no thread team), as
    :func:`row_serial`, with the candidate workspace ``kbuf``/``obuf``/``mbuf`` (room
    for ``cap``) given."""
    skeys = bits_empty(nblocks * block, a)
    hist = np.empty((1, BUCKETS_MAX), dtype=np.int64)
    sub = np.empty((4, BUCKETS_MAX), dtype=np.int32)
    gt = np.empty(1, dtype=np.int64)
    eq = np.empty(1, dtype=np.int64)
    for i in range(a.shape[0]):
        row_serial(mode, a[i], b[i], cvec[i], k, keybits, idx[i], val[i], dense,
                   nblocks, block, rank, rank_lo, rank_hi, cap, kbuf, obuf, mbuf, skeys,
                   hist, sub, gt, eq)


@njit(cache=True, nogil=True)
def write_back_row(mode, a, b, c, i):
    """In mode 3 (EF14), write the updated error ``b[i] + c * a[i]`` back to row i of
    ``b`` and return mode 4 (read the error as it is); other modes are returned as
    they are."""
    if mode != 3:
        return mode
    for j in range(a.shape[1]):
        b[i, j] = value2(3, a, b, c, i, j)
    return 4


@njit(cache=True, nogil=True)
def first_equal(kbuf, d, best):
    """The first ``j < d`` with ``kbuf[j] == best`` (there must be one): blocks of 16
    tested with a branch-free OR of the comparisons (vectorised), then a scan of the
    first block that holds it. A plain scan costs about 2 cycles per key."""
    nb = d // 16
    j = nb * 16
    for q in range(nb):
        hit = np.int32(0)
        for u in range(16):
            hit |= np.int32(kbuf[q * 16 + u] == best)
        if hit:
            j = q * 16
            break
    while kbuf[j] != best:
        j += 1
    return j


@njit(cache=True, nogil=True)
def rows_argmax(mode, a, b, cvec, idx, val, lo, hi):
    """Rows ``lo .. hi-1`` with k = 1: a first pass stores the row's keys
    (:func:`.keys.canon` of the value bits) and takes the largest, then
    :func:`first_equal` finds the first index that has it. One plain loop per mode,
    written out here in the row loop: as a separate function, Numba's code for them
    does not vectorise as well (about 2.5x slower on rows of 112)."""
    d = a.shape[1]
    kbuf = bits_empty(d, a)
    m = mode
    if mode == 3:
        for i in range(lo, hi):
            m = write_back_row(mode, a, b, cvec[i], i)
    for i in range(lo, hi):
        c = cvec[i]
        # each loop starts from the first key, an integer of the keys' own type
        if m == 0:
            best = canon(vbits(a[i, 0]))
            for j in range(d):
                kk = canon(vbits(a[i, j]))
                kbuf[j] = kk
                best = max(best, kk)
        elif m == 1:
            best = canon(vbits(a[i, 0] - b[i, 0]))
            for j in range(d):
                kk = canon(vbits(a[i, j] - b[i, j]))
                kbuf[j] = kk
                best = max(best, kk)
        elif m == 2:
            best = canon(vbits(mul(c, a[i, 0]) - b[i, 0]))
            for j in range(d):
                kk = canon(vbits(mul(c, a[i, j]) - b[i, j]))
                kbuf[j] = kk
                best = max(best, kk)
        else:
            best = canon(vbits(b[i, 0]))
            for j in range(d):
                kk = canon(vbits(b[i, j]))
                kbuf[j] = kk
                best = max(best, kk)
        emit2(m, a, b, c, i, first_equal(kbuf, d, best), 0, idx, val)


@njit(cache=True, nogil=True)
def rows_trivial(mode, a, b, cvec, k, idx, val, lo, hi):
    """Rows ``lo .. hi-1`` when k is 0, 1 or d: simple loops on the 2-D arrays (no row
    views, whose reference counting dominates on short rows); k = 1 is
    :func:`rows_argmax`."""
    if k == 1:
        rows_argmax(mode, a, b, cvec, idx, val, lo, hi)
        return
    d = a.shape[1]
    for i in range(lo, hi):
        c = cvec[i]
        m = write_back_row(mode, a, b, c, i)
        if k == d:
            for j in range(d):
                emit2(m, a, b, c, i, j, j, idx, val)


@njit(cache=True, nogil=True)
def rows_small_k(mode, a, b, cvec, k, idx, val, lo, hi, kbuf, best):
    """Rows ``lo .. hi-1`` of a batch of short rows with ``2 <= k <= SMALL_K``: keys
    into ``kbuf`` (room for d), the k-th key by insertion, then one emitting scan;
    loops on the 2-D arrays (no per-row views, as :func:`rows_trivial`)."""
    d = a.shape[1]
    for i in range(lo, hi):
        c = cvec[i]
        m = write_back_row(mode, a, b, c, i)
        for j in range(d):
            kbuf[j] = key(value2(m, a, b, c, i, j))
        tk = kth_small_k(kbuf, d, k, best)
        above = 0
        for j in range(d):
            above += kbuf[j] > tk
        quota = k - above
        o = 0
        for j in range(d):
            if o >= k:
                break
            kk = kbuf[j]
            if kk > tk or (kk == tk and quota > 0):
                if kk == tk:
                    quota -= 1
                emit2(m, a, b, c, i, j, o, idx, val)
                o += 1


@njit(cache=True, nogil=True, parallel=True)
def rows_batch(mode, a, b, cvec, k, keybits, idx, val, nblk, dense, nblocks, block,
               rank, rank_lo, rank_hi, cap, oproto):
    """Every row of the batch ``a`` (n, d), rows split into ``nblk`` parallel blocks.

    ``b`` is the state (n, d) (a dummy (n, 0) array in mode 0); ``cvec`` the row
    scalars (n,); ``idx``/``val`` the (n, k) outputs. ``dense``: precompute all keys
    (``cap`` must then be >= d); else ``nblocks > 0`` enables sampling with the
    given plan and candidate capacity ``cap``. ``oproto``: an empty array of the
    offsets' dtype.
    """
    n = a.shape[0]
    d = a.shape[1]
    if k <= 1 or k == d:
        for q in prange(nblk):
            rows_trivial(mode, a, b, cvec, k, idx, val, q * n // nblk, (q + 1) * n // nblk)
        return
    if dense and k <= SMALL_K:
        for q in prange(nblk):
            rows_small_k(mode, a, b, cvec, k, idx, val, q * n // nblk, (q + 1) * n // nblk,
                         bits_empty(d, a), bits_empty(SMALL_K, a))
        return
    for q in prange(nblk):
        kbuf = bits_empty(cap, a)
        obuf = np.empty(cap, dtype=oproto.dtype)
        mbuf = bits_empty(cap, a)
        skeys = bits_empty(nblocks * block, a)
        hist = np.empty((1, BUCKETS_MAX), dtype=np.int64)
        sub = np.empty((4, BUCKETS_MAX), dtype=np.int32)
        gt = np.empty(1, dtype=np.int64)
        eq = np.empty(1, dtype=np.int64)
        for i in range(q * n // nblk, (q + 1) * n // nblk):
            row_serial(mode, a[i], b[i], cvec[i], k, keybits, idx[i], val[i], dense,
                       nblocks, block, rank, rank_lo, rank_hi, cap, kbuf, obuf, mbuf,
                       skeys, hist, sub, gt, eq)


@njit(cache=True, nogil=True, parallel=True)
def row_parallel(mode, a, b, c, k, keybits, idx_row, val_row, nch, nblocks, block,
                 rank, rank_lo, rank_hi, kbuf, obuf, mbuf, capc, rbits_range):
    """One large row, cut into ``nch`` contiguous chunks processed in parallel.

    ``nblocks > 0`` enables the sample, with per-chunk candidate capacity ``capc``
    (``kbuf``/``obuf``/``mbuf``: workspaces with room for ``nch * capc``, reused
    across calls by the caller); ``rbits_range`` is the radix width of the full-range
    select.

    Returns 0 when done, else (a chunk held more than ``capc`` candidates: nothing
    was emitted, but mode 3 wrote the updated error back) the capacity per chunk with
    which a call in mode 4 succeeds.
    """
    d = a.shape[0]
    bounds = np.empty(nch + 1, dtype=np.int64)
    for ch in range(nch + 1):
        bounds[ch] = ch * d // nch
    if k == 0:
        if mode == 3:
            for ch in prange(nch):
                update_error(a, b, c, bounds[ch], bounds[ch + 1])
        return 0
    if k == d:
        for ch in prange(nch):
            emit_all(mode, a, b, c, bounds[ch], bounds[ch + 1], idx_row, val_row)
        return 0
    if k == 1:
        bestk = np.empty(nch, dtype=np.int64)
        bestj = np.empty(nch, dtype=np.int64)
        for ch in prange(nch):
            bk, bj = argmax(mode, a, b, c, bounds[ch], bounds[ch + 1])
            bestk[ch] = bk
            bestj[ch] = bj
        top = 0
        for ch in range(1, nch):
            if bestk[ch] > bestk[top]:
                top = ch
        emit(4 if mode == 3 else mode, a, b, c, bestj[top], 0, idx_row, val_row)
        return 0

    smode = 4 if mode == 3 else mode  # mode 3: the first pass writes the error back
    # the full-range emitting scans take the keys with key >> sel[0] > sel[1], then
    # ties (an array: passed to the parallel loop); exact: known without a radix select
    sel = np.zeros(2, dtype=np.int64)
    exact = False
    gt = np.zeros(nch, dtype=np.int64)
    eq = np.zeros(nch, dtype=np.int64)
    off = np.empty(nch, dtype=np.int64)
    quota = np.empty(nch, dtype=np.int64)
    if nblocks > 0:
        skeys = bits_empty(nblocks * block, a)
        hist1 = np.empty(BUCKETS_MAX, dtype=np.int64)
        sub1 = np.empty((4, BUCKETS_MAX), dtype=np.int32)
        t, t_lo, t_hi = sample_threshold(mode, a, b, c, nblocks, block, rank, rank_lo,
                                         rank_hi, skeys, hist1, sub1)
        cnt = np.zeros(nch, dtype=np.int64)
        nmid = np.zeros(nch, dtype=np.int64)  # per chunk: keys in (t_lo, t_hi] ...
        nabove = np.zeros(nch, dtype=np.int64)  # ... and above (see lists_kth)
        for ch in prange(nch):
            st = ch * capc
            cnt[ch] = collect(mode, a, b, c, bounds[ch], bounds[ch + 1], t,
                              kbuf[st:st + capc], obuf[st:st + capc], capc)
            if cnt[ch] <= capc:
                nmid[ch], nabove[ch] = keep_range(kbuf[st:], cnt[ch], t_lo + 1, t_hi,
                                                  mbuf[st:])
        tot = cnt.sum()
        if tot >= k:
            most = 0
            for ch in range(nch):
                most = max(most, cnt[ch])
            if most > capc:  # a chunk holds more than its share: call again
                return most
            tk = lists_kth(kbuf, mbuf, capc, cnt, nmid, nabove, t, t_lo, t_hi, k, gt,
                           eq)
            plan_chunks(gt, eq, k, off, quota)
            for ch in prange(nch):
                st = ch * capc
                emit_list(smode, b, bounds[ch], kbuf[st:], obuf[st:], cnt[ch], tk,
                          quota[ch], eq[ch], off[ch], gt[ch] + quota[ch], idx_row,
                          val_row)
            return 0
        for ch in prange(nch):
            eq[ch] = count_equal(smode, a, b, c, bounds[ch], bounds[ch + 1], t)
        if k <= tot + eq.sum():
            # the k-th key is t itself: every key above it (counted exactly), then the
            # first ties in index order, found by scans that stop early
            gt[:] = cnt
            sel[1] = t
            exact = True
        else:
            eq[:] = 0
    elif mode == 3:
        for ch in prange(nch):
            update_error(a, b, c, bounds[ch], bounds[ch + 1])
    if not exact:  # exact radix select over the full range of every chunk
        rbits = rbits_range if d > (1 << 20) else 11
        hist = np.empty((nch, np.int64(1) << rbits), dtype=np.int64)
        hi_bit = keybits
        prefix = np.int64(0)
        need = np.int64(k)
        gt[:] = 0
        while True:
            lo_bit = max(hi_bit - rbits, 0)
            width = hi_bit - lo_bit
            nb = np.int64(1) << width
            for ch in prange(nch):
                histogram(SRC_RANGE, bounds[ch + 1] - bounds[ch], smode, a, b, c,
                          bounds[ch], kbuf, hi_bit, lo_bit, prefix, hist[ch])
            bk, cum, h = choose_bucket(hist, nch, nb, need, gt)
            need -= cum
            prefix = (prefix << width) | bk
            hi_bit = lo_bit
            if hi_bit == 0 or h == need:
                for ch in range(nch):
                    eq[ch] = hist[ch, bk]
                break
        sel[0] = hi_bit
        sel[1] = prefix
    plan_chunks(gt, eq, k, off, quota)
    for ch in prange(nch):
        emit_chunk(SRC_RANGE, bounds[ch + 1] - bounds[ch], smode, a, b, c, bounds[ch],
                   kbuf, sel[0], sel[1], quota[ch], off[ch], gt[ch] + quota[ch],
                   idx_row, val_row)
    return 0


@njit(cache=True, nogil=True)
def plan_chunks(gt, eq, k, off, quota):
    """Output offsets and tie quotas per chunk (chunk order = index order): chunk ch
    emits its ``gt[ch]`` keys above the k-th and ``quota[ch]`` of its ``eq[ch]`` ties,
    the first ties in index order, from slot ``off[ch]``."""
    rem = k - gt.sum()
    o = np.int64(0)
    for ch in range(gt.shape[0]):
        qt = min(eq[ch], rem)
        rem -= qt
        quota[ch] = qt
        off[ch] = o
        o += gt[ch] + qt


@njit(cache=True, nogil=True)
def lists_kth(kbuf, mbuf, capc, cnt, nmid, nabove, t, t_lo, t_hi, k, gt, eq):
    """The k-th largest key tk of all chunks' candidate lists (chunk ch's ``cnt[ch]``
    are ``kbuf[ch * capc:]``, k <= their total) and, per chunk, the count of keys > tk
    and == tk (``gt``, ``eq``).

    As :func:`.select.list_kth`: ``mbuf[ch * capc:]`` holds chunk ch's ``nmid[ch]``
    keys in the window ``(t_lo, t_hi]``, and ``nabove[ch]`` of its keys are above; the
    k-th is selected among the window's keys (those of another window if the sample
    misjudged: recomputed).
    """
    nch = cnt.shape[0]
    lo_k, hi_k = window_of(t, t_lo, t_hi, k, nmid.sum(), nabove.sum())
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
    tk = select_rank(keys, nk, rank, rank, rank, np.int64(-1), lo_k, hi_k,
                     np.empty(BUCKETS_MAX, dtype=np.int64),
                     np.empty((4, BUCKETS_MAX), dtype=np.int32))[0]
    for ch in range(nch):
        g, e = count_above_equal(mbuf[ch * capc:], nmid[ch], tk)
        gt[ch] = nabove[ch] + g
        eq[ch] = e
    return tk


