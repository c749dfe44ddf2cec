"""The selection drivers of whole rows: all rows on the calling thread, or many rows
in parallel (each row on one thread). One long row split across the threads is
:mod:`.split_row`.

Every row goes through the same pipeline (see :mod:`.select`, :mod:`.passes`,
:mod:`.candidates`):

1. k = 0: nothing (EF14 still updates its error); k = d: everything; k = 1: argmax.
2. Short (dense) rows precompute all keys into a workspace, then an exact radix select
   (for small k, :func:`.select.select_few` or an insertion top-k) and one emitting
   scan.
3. Longer rows draw a sample and take its threshold keys (about ``rank * d / s`` keys
   are > t). One streaming pass collects the candidates (key > t: value bits and
   offsets) into bounded buffers (EF14: the same pass writes the updated error back).
   At least k candidates: if a buffer overflowed (the sample was off), they are
   collected again with room for all; the k-th largest key is selected among the
   candidates in the sample's window and they are emitted from the lists. Fewer than
   k, but enough keys equal to t (say most of the row is zero): the k-th key is t,
   one emitting scan of the row. Else (or without a sample): an exact radix select on
   the full range.
4. Emission in index order at per-chunk offsets; the state update happens only at the
   selected indices.

The arguments come as small tuples (laid out in :mod:`.plan`): ``rows = (a, b, cvec)``
the (n, d) input, the (n, d) state (an (n, 0) dummy for topk) and the (n,) row
scalars; ``row = (a, b, c)`` one row of them; ``out = (idx, val)`` the outputs (2-D,
or one row of them); ``plan`` a :data:`.plan.ROW_PLAN` tuple; ``span = (lo, hi)`` a
range of rows (or of a row's elements).

Workspaces are allocated per call and per block of rows, never per row, and never
d-sized except the per-block key buffer of dense rows; the candidate buffers of the
one-thread driver are passed in (kept between calls by :mod:`.launch`). Batches with
k in {0, 1, d}, and dense rows, are plain loops on the 2-D arrays in one call per block
of rows: no per-row views or calls (their reference counting dominates on short rows);
the dense rows' driver works on views that Numba does not count (:mod:`.borrow`), since
a row's tuple of arrays and the calls that take its buffers still counted.

:func:`rows_serial` and :func:`rows_batch` are only called from their entries
(:mod:`.launch`), into which they are inlined: LLVM then optimises the functions they
call once, not once more for the entry (which doubled the compile time).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .borrow import borrowed, keep_alive
from .candidates import emit_list, list_kth
from .groups import (CAND_MAX, GROUPS_MAX_D, pop_lowest, selection_above, selection_at,
                     threshold)
from .keys import (NOT_WRITTEN, WRITTEN, ZERO, bits_empty, ctz, emit, update_state,
                   value)
from .lanes import LANES, UNSETTLED, kth_levels
from .masks import MASK_BITS, eq_mask, row_keys
from .modes import MODE_EF, MODE_TOPK
from .passes import WORD, collect, count_equal, emit_chunk, sample_keys, update_error
from .select import (BUCKETS_MAX, FEW_MAX, FEW_MIN_K, kth_small_k, radix_select,
                     sample_threshold, select_few)


@njit(cache=True, nogil=True)
def row_serial(mode, row, plan, ws, out):
    """Select on one row that is not dense, serially (``2 <= k < d``), with the
    per-block workspace ``ws = (kbuf, obuf, mbuf, skeys, hist, sub, gt)``: the value
    bits, the offsets and the keys of the candidates (room for ``cap``), the sample
    keys, a (1, ``BUCKETS_MAX``) and a (4, ``BUCKETS_MAX``) histogram, a (1,) count."""
    k, keybits, rbits, _, _, cap = plan[:6]
    kbuf, obuf, mbuf, skeys, hist, sub, gt = ws
    a, b, _ = row
    d = a.shape[0]
    sampled = plan[6] > 0
    t = 0
    cnt = 0
    if sampled:
        sample_keys(mode, False, row, plan[6], plan[7], skeys)
        thresholds = sample_threshold(skeys, plan[6:], (hist[0], sub))
        t = thresholds[0]
        # MODE_EF: this pass writes the updated error back (written from here on)
        cnt = collect(mode, NOT_WRITTEN, row, (ZERO, d), t, (kbuf, obuf), cap)
        if cnt >= k:
            if cnt > cap:  # more than the sample promised: collect again, all of them
                kbuf = bits_empty(cnt, a)
                obuf = np.empty(cnt, dtype=obuf.dtype)
                mbuf = bits_empty(cnt, a)
                collect(mode, WRITTEN, row, (ZERO, d), t, (kbuf, obuf), cnt)
            tk, above, ties = list_kth(kbuf, cnt, thresholds, k, mbuf, (hist[0], sub))
            emit_list((kbuf[:cnt], obuf[:cnt]), ZERO, (tk, k - above, ties), out,
                      (ZERO, np.int64(k)))
            update_state(mode, b, out, ZERO, np.int64(k))
            return
    elif mode == MODE_EF:
        update_error(row, (ZERO, d))
    # one emitting scan of the row (a single call: one compiled version): the keys
    # with key >> shift > prefix, then the first need_eq with key >> shift == prefix
    if sampled and k <= cnt + count_equal(mode, row, (ZERO, d), t):
        # the k-th key is t itself: all keys above it, then the first ties
        shift, prefix, need_eq = ZERO, np.int64(t), np.int64(k - cnt)
    else:
        shift, prefix, need_eq = radix_select(mode, row, kbuf[:0], k, (keybits, rbits),
                                              (hist, gt))
    emit_chunk(mode, row, (ZERO, d), (shift, prefix, need_eq), out, (ZERO, np.int64(k)))


@njit(cache=True, nogil=True)
def row_workspace(lists, skeys):
    """The workspace of :func:`row_serial` around candidate buffers ``lists = (kbuf,
    obuf, mbuf)`` and sample keys ``skeys``."""
    kbuf, obuf, mbuf = lists
    return (kbuf, obuf, mbuf, skeys, np.empty((1, BUCKETS_MAX), dtype=np.int64),
            np.empty((4, BUCKETS_MAX), dtype=np.int32), np.empty(1, dtype=np.int64))


@njit(cache=True, nogil=True, inline="always")
def rows_serial(mode, rows, plan, lists, out):
    """Every row of the batch on the calling thread (no thread team), as
    :func:`row_serial`, with the candidate buffers ``lists = (kbuf, obuf, mbuf)``
    (room for ``cap``) given."""
    a, b, cvec = rows
    idx, val = out
    ws = row_workspace(lists, bits_empty(plan[6] * plan[7], a))
    for i in range(a.shape[0]):
        row_serial(mode, (a[i], b[i], cvec[i]), plan, ws, (idx[i], val[i]))


@njit(cache=True, nogil=True, parallel=True, inline="always")
def rows_batch(mode, rows, plan, nblk, oproto, out):
    """Every row of the batch, the rows split into ``nblk`` parallel blocks, each row
    as :func:`rows_trivial`, :func:`rows_dense` or :func:`row_serial` (``plan``: a
    :data:`.plan.ROW_PLAN`). ``oproto``: an empty array of the offsets' dtype.

    One parallel loop for the three (each parallel loop Numba compiles costs about a
    second of the first call)."""
    a, b, cvec = rows
    idx, val = out
    n, d = a.shape
    k, _, _, dense, _, cap = plan[:6]
    trivial = k <= 1 or k == d
    for q in prange(nblk):
        lo = q * n // nblk
        hi = (q + 1) * n // nblk
        if trivial:
            rows_trivial(mode, rows, k, out, (lo, hi))
        elif dense:
            rows_dense(mode, rows, plan, out, (lo, hi))
        else:
            lists = (bits_empty(cap, a), np.empty(cap, dtype=oproto.dtype),
                     bits_empty(cap, a))
            ws = row_workspace(lists, bits_empty(plan[6] * plan[7], a))
            for i in range(lo, hi):
                row_serial(mode, (a[i], b[i], cvec[i]), plan, ws, (idx[i], val[i]))


@njit(cache=True, nogil=True)
def write_back_row(row, i):
    """Write the updated error ``b[i] + c * a[i]`` back to row i of ``b`` (EF14;
    ``row = (a, b, c)`` of 2-D arrays)."""
    for j in range(row[0].shape[1]):
        row[1][i, j] = value(MODE_EF, False, row, (i, j))


@njit(cache=True, nogil=True)
def first_equal(kbuf, d, best):
    """The first ``j < d`` with ``kbuf[j] == best`` (there must be one; ``kbuf`` padded
    to a multiple of ``MASK_BITS`` keys with -1): the bit masks of 64 keys
    (:func:`.masks.eq_mask`, one vector compare) until one holds it. Rows of 112, k = 1,
    one thread: 43 -> 33 us per 1000 rows against blocks of 16 keys tested by a loop,
    then a scan of the block."""
    for q in range(-(-d // MASK_BITS)):
        w = eq_mask(kbuf, q * MASK_BITS, best)
        if w:
            return q * MASK_BITS + np.int64(ctz(w))
    return d  # (not reached)


@njit(cache=True, nogil=True)
def rows_trivial(mode, rows, k, out, span):
    """Rows ``span = (lo, hi)`` when k is 0, 1 or d: plain loops on the 2-D arrays.

    k = 1: :func:`.masks.row_keys` stores the row's keys (16 at a time) and returns the
    largest, then :func:`first_equal` finds the first index that has it. Against the
    element loop that did both (1000 x 112 float32 ef21_step, one thread, Intel Xeon,
    ``bench/ab_kernels.py``, 2026-12-06): 0.75x the time. That loop kept the maximum in
    64-bit lanes (canon's keys come out of Numba's arithmetic as int64), four keys a
    vector, and stored the keys 8 at a time, which first_equal's 64-key loads could not
    take from the store buffer.
    """
    a, b, cvec = rows
    lo, hi = span
    d = a.shape[1]
    if mode == MODE_EF:
        for i in range(lo, hi):
            write_back_row((a, b, cvec[i]), i)
    if k == 1:
        kbuf = bits_empty(-(-d // MASK_BITS) * MASK_BITS, a)
        kbuf[d:] = -1
        for i in range(lo, hi):
            row = (a, b, cvec[i])
            j = first_equal(kbuf, d, row_keys(mode, (a, b, cvec), i, kbuf))
            emit(mode, True, row, (i, j), j, out, (i, 0))
    elif k == d:
        for i in range(lo, hi):
            row = (a, b, cvec[i])
            for j in range(d):
                emit(mode, True, row, (i, j), j, out, (i, j))


#: Up to this k, :func:`rows_dense` takes the groups' threshold (:mod:`.groups`) without
#: trying their levels first (:func:`.lanes.kth_levels`). Levels against the threshold
#: alone, 1000 x 112 float32 ef21_step, one thread, Intel Xeon, A/B in one process
#: (``bench/ab_kernels.py``, 2026-12-06): k = 2 1.23x the time (its threshold is the
#: second largest of the groups' maxima, two reductions), 3 0.93-0.99x, 4 0.96-1.02x,
#: 5 0.85x, 8 0.86x, 12 0.89x, 16 0.89x.
LEVELS_MIN_K = 2

#: Rows per stage of :func:`rows_dense`'s selection by the groups (1000 x 112 float32
#: ef21_step, one thread, Intel Xeon, A/B in one process, 2026-12-06: against one row
#: at a time, 4 rows 0.81x, 0.84x, 0.83x, 0.95x the time for k = 2, 4, 8, 16; 8 rows
#: within the noise of 4).
STAGE_ROWS = 4


@njit(cache=True, nogil=True)
def rows_dense(mode, rows, plan, out, span):
    """Rows ``span = (lo, hi)`` of a batch of dense rows (``2 <= k < d``, ``plan``: a
    :data:`.plan.ROW_PLAN`): the row's keys into a buffer, then for ``small`` k the
    selection of :func:`.groups.selection_mask` (rows up to ``GROUPS_MAX_D``; 1000 x 112
    float32 ef21_step, 2 threads, us: k = 2 80 -> 43, 4 113 -> 51, 8 147 -> 70, 16
    230 -> 102 against the paths below) or, on longer rows, of
    :func:`.select.select_few` (from ``FEW_MIN_K`` on, with the groups' threshold
    :func:`.groups.threshold`), or the k-th key by an insertion top-k (below it, or
    when too many keys tie for either), else the k-th key by a radix select, then one
    emitting scan; loops on the 2-D arrays, one call for all the rows (a call per row
    costs as much as a pass over a short row).

    For ``k > LEVELS_MIN_K`` the groups' selection first takes the row's k-th key from
    the groups' levels (:func:`.lanes.kth_levels`), then the mask of the keys above
    it and the first ties (:func:`.groups.selection_at`); the rows the levels do not
    settle, and smaller k, go through the threshold and the ranking of the keys above
    it (in loops of their own: the levels' vector code in the same loop made the
    threshold's rows 1.13-1.23x slower on two threads). The groups' selection runs in
    stages over ``STAGE_ROWS`` rows at a time: their keys and thresholds, then their
    masks, then their emission. Each row's stages wait on each other; in turn over
    several rows, the core has independent work at every stage (as C's x512_pair does
    with two rows)."""
    # views without reference counts (.borrow): the rows are the caller's, the
    # buffers are kept alive to the end
    a, b, cvec = rows
    a, b, cvec = borrowed(a), borrowed(b), borrowed(cvec)
    idx, val = out
    out = (borrowed(idx), borrowed(val))
    k, keybits, rbits, _, small, _ = plan[:6]
    lo, hi = span
    d = a.shape[1]
    # (the groups read the keys 16 and 64 at a time: padded with keys below all)
    by_groups = small and d <= GROUPS_MAX_D
    few_k = small and k >= FEW_MIN_K and not by_groups
    dp = -(-d // MASK_BITS) * MASK_BITS  # (a row's keys in the buffers, padded)
    nst = STAGE_ROWS if by_groups else 1
    # (every buffer in owners, which keep_alive names at the end: one left out of it
    # is freed after its last use by name, under its view)
    owners = (bits_empty(dp, a),
              bits_empty(2 * LANES if by_groups or few_k else 0, a),
              bits_empty(CAND_MAX + MASK_BITS if by_groups else 0, a),
              bits_empty(nst * dp if by_groups else 0, a))
    keys, gm, gck = borrowed(owners[0]), borrowed(owners[1]), borrowed(owners[2])
    skeys = borrowed(owners[3])
    keys[d:] = -1
    skeys[:] = -1  # (row_keys writes the first d keys of each row: the rest stays -1)
    best = bits_empty(k if small else 0, a)
    nb = 0 if small else BUCKETS_MAX
    scratch = (np.empty((1, nb), dtype=np.int64), np.empty(1, dtype=np.int64))
    nf = FEW_MAX + WORD if few_k else 0
    few = (bits_empty(nf, a), np.empty(nf, np.int64))
    sel = np.empty(max(nf, CAND_MAX if by_groups else 0), dtype=np.int64)
    levels = k > LEVELS_MIN_K
    nvec = -(-d // LANES)
    # the stages' results per row: the k-th key from the levels (or UNSETTLED) or the
    # threshold, mask found, the mask's two words
    tvs = bits_empty(nst, a)
    oks = np.zeros(nst, np.bool_)
    wlos = np.zeros(nst, np.uint64)
    whis = np.zeros(nst, np.uint64)
    for i0 in range(lo, hi, nst):
        nrows = min(nst, hi - i0)
        if by_groups:
            for r in range(nrows):
                i = i0 + r
                if mode == MODE_EF:
                    write_back_row((a, b, cvec[i]), i)
                kr = skeys[r * dp:(r + 1) * dp]
                row_keys(mode, (a, b, cvec), i, kr)
                if levels:
                    tvs[r] = kth_levels(kr, nvec, k)
                else:
                    tvs[r] = threshold(kr, d, k, gm)
            if levels:
                for r in range(nrows):
                    kr = skeys[r * dp:(r + 1) * dp]
                    if tvs[r] != UNSETTLED:
                        oks[r], wlos[r], whis[r] = selection_at(kr, d, k, tvs[r], True)
                    else:
                        oks[r], wlos[r], whis[r] = selection_above(
                            kr, d, k, gck, threshold(kr, d, k, gm))
            else:
                for r in range(nrows):
                    kr = skeys[r * dp:(r + 1) * dp]
                    oks[r], wlos[r], whis[r] = selection_above(kr, d, k, gck, tvs[r])
        for r in range(nrows):
            i = i0 + r
            row = (a, b, cvec[i])
            if by_groups:
                if oks[r]:
                    wlo, whi = wlos[r], whis[r]
                    for o in range(k):
                        j, wlo, whi = pop_lowest(wlo, whi)
                        emit(mode, True, row, (i, j), j, out, (i, o), True)
                    continue
                keys[:] = skeys[r * dp:(r + 1) * dp]  # (the paths below read keys)
            else:
                if mode == MODE_EF:
                    write_back_row(row, i)
                row_keys(mode, (a, b, cvec), i, keys)
            if few_k:
                if select_few(keys, d, k, threshold(keys, d, k, gm), few, sel):
                    for o in range(k):
                        j = sel[o]
                        emit(mode, True, row, (i, j), j, out, (i, o), True)
                    continue
            # every key with key >> shift > prefix, then the first quota with ==
            if small:
                tk = kth_small_k(keys, d, k, best)
                above = 0
                for j in range(d):
                    above += keys[j] > tk
                shift, prefix, quota = 0, tk, k - above
            else:
                # on given keys: the mode is not read
                shift, prefix, quota = radix_select(MODE_TOPK, None, keys[:d], k,
                                                    (keybits, rbits), scratch)
            o = 0
            for j in range(d):
                if o >= k:
                    break
                p = keys[j] >> shift
                if p > prefix or (p == prefix and quota > 0):
                    if p == prefix:
                        quota -= 1
                    emit(mode, True, row, (i, j), j, out, (i, o))
                    o += 1
    keep_alive(owners)
