"""The selection drivers: many rows in parallel (each row serial), all rows on the
calling thread (one thread), and one large row split into parallel chunks. All run
the same pipeline (see :mod:`.select`):

1. k = 0: nothing (EF14 still updates its error); k = d: everything; k = 1: argmax.
2. Candidates: small rows (d <= ``dense_max``) precompute all keys into a workspace.
   Larger rows draw a sample, take its threshold key ``t`` (about ``rank * d / s``
   keys are >= it), and in one streaming pass collect the candidates with key > t
   into bounded buffers and count the keys equal to t (EF14: the same pass writes
   the updated error back). Then: at least k candidates, and no buffer overflowed:
   select among them; fewer than k but enough ties at t (say most of the row is
   zero): the k-th key is t, no select needed; else (or for a chunk whose buffer
   overflowed) the full index range is the source.
3. Exact MSD radix select on the candidates (per-chunk histograms), from the first bit
   where they differ; for k <= ``SMALL_K`` on one thread, an insertion top-k instead.
4. Emission in index order at per-chunk offsets; the state update happens here, only
   at the selected indices (values are recomputed there: same operations, same bits).
   Each chunk's scan stops after its last output.

Workspaces are allocated per call and per block of rows, never per row, and never
d-sized except the per-block key buffer of small (dense) rows; the candidate buffers of
a split row, and of the one-thread driver, are passed in (the caller keeps them
between calls). Batches with k in {0, 1, d} skip the pipeline: plain loops on the 2-D
arrays, no per-row views.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .keys import emit, emit2, key, mul, value, value2
from .select import (SRC_DENSE, SRC_LIST, SRC_RANGE, argmax, bucket_keys, candidates,
                     choose_bucket, emit_all, emit_chunk, histogram, kth_small_k,
                     radix_serial, sample_threshold, update_error)

#: Up to this k, the k-th key of a key buffer is found by insertion (no radix passes).
SMALL_K = 16


@njit(cache=True, nogil=True)
def row_serial(mode, a, b, c, k, keybits, idx_row, val_row, dense, nblocks, block, rank,
               cap, kbuf, ibuf, skeys, hist, gt, eq):
    """Select on one row, serially, with the given per-block workspace."""
    d = a.shape[0]
    sampled = not dense and nblocks > 0 and 1 < k < d
    if mode == 3 and not sampled:
        update_error(a, b, c, 0, d)
        mode = 4
    if k == 0:
        return
    if k == d:
        emit_all(mode, a, b, c, 0, d, idx_row, val_row)
        return
    if k == 1:
        _, j = argmax(mode, a, b, c, 0, d)
        emit(mode, a, b, c, j, 0, idx_row, val_row)
        return
    src = SRC_RANGE
    m = d
    if dense:
        for j in range(d):
            kbuf[j] = key(value(mode, a, b, c, j))
        src = SRC_DENSE
    elif sampled:
        t_s = sample_threshold(mode, a, b, c, nblocks, block, rank, keybits, skeys,
                               hist, gt, eq)
        # mode 3: the pass writes the updated error back (mode 4 from here on)
        cnt, _, ties = candidates(mode, a, b, c, 0, d, t_s + 1, kbuf, ibuf, cap)
        mode = 4 if mode == 3 else mode
        if k <= cnt <= cap:
            src = SRC_LIST
            m = cnt
        elif cnt < k <= cnt + ties:
            # the k-th key is t_s itself: all keys above it, then the first ties
            emit_chunk(SRC_RANGE, d, mode, a, b, c, 0, kbuf, ibuf, 0, t_s, k - cnt, 0,
                       k, idx_row, val_row)
            return
    if src != SRC_RANGE and k <= SMALL_K:
        tk = kth_small_k(kbuf, m, k, skeys)  # skeys: room for SMALL_K
        above = 0
        for t in range(m):
            above += kbuf[t] > tk
        emit_chunk(src, m, mode, a, b, c, 0, kbuf, ibuf, 0, tk, k - above, 0, k,
                   idx_row, val_row)
        return
    rbits = 8 if m <= 1024 else 11
    shift, prefix, need_eq = radix_serial(src, m, mode, a, b, c, 0, kbuf, k, keybits,
                                          rbits, hist, gt, eq)
    emit_chunk(src, m, mode, a, b, c, 0, kbuf, ibuf, shift, prefix, need_eq, 0, k,
               idx_row, val_row)


@njit(cache=True, nogil=True)
def rows_serial(mode, a, b, cvec, k, keybits, idx, val, dense, nblocks, block, rank,
                cap, kbuf, ibuf):
    """Every row of the batch on the calling thread (no thread team), with the
    candidate workspace ``kbuf``/``ibuf`` (room for ``cap + 1``) given."""
    n = a.shape[0]
    d = a.shape[1]
    if k <= 1 or k == d:
        rows_trivial(mode, a, b, cvec, k, idx, val, 0, n)
        return
    s = max(nblocks * block, SMALL_K)  # also the insertion top-k workspace
    skeys = np.empty(s, dtype=np.int64)
    if dense and k <= SMALL_K:
        rows_small_k(mode, a, b, cvec, k, idx, val, 0, n, kbuf, skeys)
        return
    hist = np.empty((1, 2048), dtype=np.int64)
    gt = np.empty(1, dtype=np.int64)
    eq = np.empty(1, dtype=np.int64)
    for i in range(n):
        row_serial(mode, a[i], b[i], cvec[i], k, keybits, idx[i], val[i], dense,
                   nblocks, block, rank, cap, kbuf, ibuf, skeys, hist, gt, eq)


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
def rows_trivial(mode, a, b, cvec, k, idx, val, lo, hi):
    """Rows ``lo .. hi-1`` when k is 0, 1 or d: simple loops on the 2-D arrays (no row
    views, whose reference counting dominates on short rows). The argmax takes the
    largest key in a first pass (one loop per mode, so that it vectorises), then the
    first index that has it."""
    d = a.shape[1]
    for i in range(lo, hi):
        c = cvec[i]
        m = write_back_row(mode, a, b, c, i)
        if k == d:
            for j in range(d):
                emit2(m, a, b, c, i, j, j, idx, val)
        elif k == 1:
            # one plain loop per mode (the mode tested once per row): it vectorises
            best = np.int64(-1)
            if m == 0:
                for j in range(d):
                    best = max(best, key(a[i, j]))
            elif m == 1:
                for j in range(d):
                    best = max(best, key(a[i, j] - b[i, j]))
            elif m == 2:
                for j in range(d):
                    best = max(best, key(mul(c, a[i, j]) - b[i, j]))
            else:
                for j in range(d):
                    best = max(best, key(b[i, j]))
            bj = 0
            if m == 0:
                while key(a[i, bj]) != best:
                    bj += 1
            elif m == 1:
                while key(a[i, bj] - b[i, bj]) != best:
                    bj += 1
            elif m == 2:
                while key(mul(c, a[i, bj]) - b[i, bj]) != best:
                    bj += 1
            else:
                while key(b[i, bj]) != best:
                    bj += 1
            emit2(m, a, b, c, i, bj, 0, idx, val)


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
               rank, cap):
    """Every row of the batch ``a`` (n, d), rows split into ``nblk`` parallel blocks.

    ``b`` is the state (n, d) (a dummy (n, 0) array in mode 0); ``cvec`` the row
    scalars (n,); ``idx``/``val`` the (n, k) outputs. ``dense``: precompute all keys
    (``cap`` must then be >= d); else ``nblocks > 0`` enables sampling with the
    given plan and candidate capacity ``cap``.
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
                         np.empty(d, dtype=np.int64), np.empty(SMALL_K, dtype=np.int64))
        return
    s = max(nblocks * block, SMALL_K)  # also the insertion top-k workspace
    for q in prange(nblk):
        kbuf = np.empty(cap + 1, dtype=np.int64)
        ibuf = np.empty(cap + 1, dtype=np.int64)
        skeys = np.empty(s, dtype=np.int64)
        hist = np.empty((1, 2048), dtype=np.int64)
        gt = np.empty(1, dtype=np.int64)
        eq = np.empty(1, dtype=np.int64)
        for i in range(q * n // nblk, (q + 1) * n // nblk):
            row_serial(mode, a[i], b[i], cvec[i], k, keybits, idx[i], val[i], dense,
                       nblocks, block, rank, cap, kbuf, ibuf, skeys, hist, gt, eq)


@njit(cache=True, nogil=True, parallel=True)
def row_parallel(mode, a, b, c, k, keybits, idx_row, val_row, nch, nblocks, block,
                 rank, kbufs, ibufs, rbits_range):
    """One large row, cut into ``nch`` contiguous chunks processed in parallel.

    ``nblocks > 0`` enables the sample with per-chunk candidate capacity
    ``kbufs.shape[1] - 1`` (``kbufs``/``ibufs``: (nch, capc + 1) workspaces, reused
    across calls by the caller); ``rbits_range`` is the radix width used when chunks
    fall back to full ranges.
    """
    d = a.shape[0]
    bounds = np.empty(nch + 1, dtype=np.int64)
    for ch in range(nch + 1):
        bounds[ch] = ch * d // nch
    if k == 0:
        if mode == 3:
            for ch in prange(nch):
                update_error(a, b, c, bounds[ch], bounds[ch + 1])
        return
    if k == d:
        for ch in prange(nch):
            emit_all(mode, a, b, c, bounds[ch], bounds[ch + 1], idx_row, val_row)
        return
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
        return

    src = np.full(nch, SRC_RANGE, dtype=np.int64)
    ms = np.empty(nch, dtype=np.int64)
    for ch in range(nch):
        ms[ch] = bounds[ch + 1] - bounds[ch]
    gt = np.zeros(nch, dtype=np.int64)
    eq = np.zeros(nch, dtype=np.int64)
    if nblocks > 0:
        skeys = np.empty(nblocks * block, dtype=np.int64)
        shist = np.empty((1, 2048), dtype=np.int64)
        # lists: keys above the sampled threshold; ties: keys equal to it
        t_lo = sample_threshold(mode, a, b, c, nblocks, block, rank, keybits, skeys,
                                shist, gt, eq) + 1
        cap = kbufs.shape[1] - 1
    else:
        t_lo = np.int64(0)
        cap = 0
    cnt = np.zeros(nch, dtype=np.int64)
    mxs = np.full(nch, -1, dtype=np.int64)
    ties = np.zeros(nch, dtype=np.int64)
    if nblocks > 0 or mode == 3:
        for ch in prange(nch):
            cnt[ch], mxs[ch], ties[ch] = candidates(mode, a, b, c, bounds[ch],
                                                    bounds[ch + 1], t_lo, kbufs[ch],
                                                    ibufs[ch], cap)
    smode = 4 if mode == 3 else mode  # mode 3 wrote the updated error back
    hi_bit = keybits
    prefix = np.int64(0)
    all_lists = False
    tie_case = False
    tot = cnt.sum()
    if nblocks > 0 and tot < k <= tot + ties.sum():
        # the k-th key is t_lo - 1 itself: every key above it (counted exactly),
        # then the first ties in index order, found by scans that stop early
        tie_case = True
    elif nblocks > 0 and tot >= k:
        all_lists = True
        for ch in range(nch):
            if cnt[ch] <= cap:
                src[ch] = SRC_LIST
                ms[ch] = cnt[ch]
            else:
                all_lists = False
        # The k-th largest key lies in [t_lo, mx]: every key that can matter shares
        # the bits of t_lo above the highest bit where t_lo and mx differ.
        mx = mxs.max()
        hb = 0
        x = t_lo ^ mx
        while x > 0:
            hb += 1
            x >>= 1
        hi_bit = hb
        prefix = t_lo >> hb
    need = np.int64(k)
    if tie_case:
        for ch in range(nch):
            gt[ch] = cnt[ch]
            eq[ch] = ties[ch]
        need = k - tot
        hi_bit = 0
        prefix = t_lo - 1
    else:
        n_range = 0
        for ch in range(nch):
            if src[ch] == SRC_RANGE:
                n_range += ms[ch]
        rbits = rbits_range if n_range > (1 << 20) else 11
        hist = np.empty((nch, np.int64(1) << rbits), dtype=np.int64)

        # radix select over all chunks; once every chunk is a candidate list, the
        # keys of the chosen bucket are copied out (kb2) and the later digits scan
        # only those
        kb2 = np.empty((nch, 1), dtype=np.int64)
        ms2 = np.zeros(nch, dtype=np.int64)
        use2 = False
        small2 = False
        gt[:] = 0
        eq[:] = 0
        while True:
            lo_bit = max(hi_bit - rbits, 0)
            width = hi_bit - lo_bit
            nb = np.int64(1) << width
            if use2 and small2:  # the bucket's keys are few: no thread team
                for ch in range(nch):
                    histogram(SRC_LIST, ms2[ch], smode, a, b, c, bounds[ch], kb2[ch],
                              hi_bit, lo_bit, prefix, hist[ch])
            elif use2:
                for ch in prange(nch):
                    histogram(SRC_LIST, ms2[ch], smode, a, b, c, bounds[ch], kb2[ch],
                              hi_bit, lo_bit, prefix, hist[ch])
            else:
                for ch in prange(nch):
                    histogram(src[ch], ms[ch], smode, a, b, c, bounds[ch], kbufs[ch],
                              hi_bit, lo_bit, prefix, hist[ch])
            bk, cum, h = choose_bucket(hist, nch, nb, need, gt)
            need -= cum
            prefix = (prefix << width) | bk
            hi_bit = lo_bit
            if hi_bit == 0 or h == need:
                for ch in range(nch):
                    eq[ch] = hist[ch, bk]
                break
            if all_lists and not use2:
                wmax = np.int64(1)
                for ch in range(nch):
                    wmax = max(wmax, hist[ch, bk])
                kb2 = np.empty((nch, wmax + 1), dtype=np.int64)
                use2 = True
                for ch in prange(nch):
                    ms2[ch] = bucket_keys(kbufs[ch], ms[ch], hi_bit, prefix, kb2[ch])
                small2 = ms2.sum() <= 65536

    # output offsets: chunk order = index order
    off = np.empty(nch, dtype=np.int64)
    quota = np.empty(nch, dtype=np.int64)
    rem = need
    o = np.int64(0)
    for ch in range(nch):
        qt = min(eq[ch], rem)
        rem -= qt
        quota[ch] = qt
        off[ch] = o
        o += gt[ch] + qt
    sel = np.empty(2, dtype=np.int64)  # passed to the parallel loop in an array
    sel[0] = hi_bit
    sel[1] = prefix
    for ch in prange(nch):
        emit_chunk(src[ch], ms[ch], smode, a, b, c, bounds[ch], kbufs[ch], ibufs[ch],
                   sel[0], sel[1], quota[ch], off[ch], gt[ch] + quota[ch], idx_row,
                   val_row)
