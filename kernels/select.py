"""Exact selection on keys: the k-th largest key of an array, the threshold of the
sample-select, and the exact radix select of a whole row.

All counts are exact integers, so every result is the unique answer, whatever the
chunking (hence the thread count) or the sample:

* :func:`select_rank`: rounds of equal-width buckets over the range of the keys
  (:func:`range_hist`), each keeping the bucket that holds the wanted rank
  (:func:`keep_range` compacts its keys); it may stop early with a threshold instead.
* :func:`sample_threshold`: the threshold keys of the sample-select from the keys of
  a sample (:func:`.passes.sample_keys`).
* :func:`radix_select`: an MSD radix select over the keys of a whole row (per-chunk
  histograms of ``rbits`` bits at a time, restricted to the prefix chosen so far,
  :func:`choose_bucket` picking the digit), which finds a prefix ``P`` at bit
  ``shift``: every element with ``key >> shift > P`` is selected, and of those with
  ``key >> shift == P`` the first ``need_eq`` in index order.
* :func:`select_few`: the selection itself for small k (2 to 16), by the group maxima
  and a rank among few candidates; :func:`kth_small_k`, an insertion top-k, where
  too many keys tie for it.
* :func:`plan_chunks`: the output offsets and tie quotas of the chunks of a row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import ZERO, canon, ctz
from .masks import gt_mask
from .passes import WORD, histogram_keys, histogram_range

#: Buckets of a round of :func:`select_rank`: at most this many ...
BUCKETS_MAX = 2048
#: ... and at least this many.
BUCKETS_MIN = 64
#: The greatest int64: no key is above it (a NumPy scalar: not a literal to Numba, so
#: calls passing it do not compile a version of their own).
KEY_MAX = np.int64(2**63 - 1)


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
def select_rank(a, n, ranks, tol, bounds, scratch):
    """Select on the keys ``a[:n]``, all in ``bounds = (lo, hi)``, for ``ranks = (rank,
    rank_lo, rank_hi)`` (``1 <= rank <= n``). Returns ``(t, above, equal, win_lo,
    win_hi)``:

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
    the one that holds the rank-th largest. ``scratch = (hist, sub)``: ``hist`` with
    room for ``BUCKETS_MAX``, ``sub`` as in :func:`range_hist`. Permutes and compacts
    ``a``.
    """
    rank, rank_lo, rank_hi = ranks
    lo, hi = bounds
    hist, sub = scratch
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


#: :func:`select_few`: at most this many candidates (else the caller selects another
#: way) ...
FEW_MAX = 64
#: ... for k at least this: below, the insertion top-k costs less (1000 x 112 float32
#: ef21_step, 2026-12-05, insertion / select_few, us: 2 threads k = 4 73-83 / 114-118,
#: k = 5 76-126 / 121-124, k = 6 183-194 / 126-129, k = 8 225-244 / 130-132; one
#: thread k = 2 122 / 212, k = 4 272 / 244, k = 5 350 / 253, k = 8 503 / 267).
FEW_MIN_K = 5


@njit(cache=True, nogil=True)
def select_few(keys, d, k, t, scratch, sel):
    """The k (``2 <= k``, in practice ``FEW_MIN_K <= k <= SMALL_K``) largest of the keys
    ``keys[:d]``, ties to the smaller index, without an insertion top-k (whose
    mispredicted insertions made k = 8 cost 12x k = 1 on rows of 112). Writes their
    indices, ascending, to ``sel[:k]`` and returns k, or returns 0 (``sel`` garbage)
    when more than ``FEW_MAX`` keys reach t (many ties: the caller selects another
    way).

    ``t``: a key that at least k of the row's keys reach (:func:`.groups.threshold`:
    on most rows few others do), so at most the row's k-th largest key: every selected
    entry has a key >= t. Those candidates are ranked among themselves (key
    descending, then index): every entry ranked above a candidate is one too, so its
    rank is its rank in the row, and the candidates of rank < k are the selection, in
    index order. ``keys``: room for ``MASK_BITS * ceil(d / MASK_BITS)``, padded with
    -1 (read a word of keys at a time); ``scratch = (ck, co)``: room for ``FEW_MAX +
    WORD`` keys and as many indices; ``sel``: room for ``FEW_MAX + WORD`` indices.
    """
    ck, co = scratch
    t = max(t, 0)  # (keys are >= 0; below, the padding's -1 would count)
    # the candidates, in index order: a bit mask per word of keys (one vector
    # compare, :func:`.masks.gt_mask`), then its set bits only
    c = 0
    for j0 in range(0, d, WORD):
        msk = gt_mask(keys, j0, t - 1)  # (keys are integers: >= t)
        while msk:
            j = j0 + ctz(msk)
            ck[c] = keys[j]
            co[c] = j
            c += 1
            msk &= msk - np.uint64(1)
        if c > FEW_MAX:
            return 0
    o = 0
    for i in range(c):
        kv = ck[i]
        r = 0
        for p in range(c):
            r += (ck[p] > kv) | ((ck[p] == kv) & (p < i))
        sel[o] = co[i]
        o += r < k
    return o


@njit(cache=True, nogil=True)
def sample_threshold(skeys, sample, scratch):
    """``(t, t_lo, t_hi)``: keys ``t <= t_lo <= t_hi`` such that about ``rank * d / s``
    keys of the row are > t, at least about ``rank_lo * d / s`` are > t_lo and fewer
    than about ``rank_hi * d / s`` are > t_hi, from the keys of its sample
    (:func:`.passes.sample_keys`, in ``skeys``; ``sample = (nblocks, block, rank,
    rank_lo, rank_hi)``, ``s = nblocks * block`` sampled keys).

    By :func:`select_rank` on the sample's keys: at least ``rank`` of them are > t,
    unless t is the rank-th exactly, and not many more; at least ``rank_lo`` are >
    t_lo, fewer than ``rank_hi`` are > t_hi. ``scratch`` as in :func:`select_rank`.
    """
    nblocks, block, rank, rank_lo, rank_hi = sample
    s = nblocks * block
    lo = np.int64(skeys[0])
    hi = np.int64(skeys[0])
    for q in range(s):
        lo = min(lo, skeys[q])
        hi = max(hi, skeys[q])
    tol = rank // 32 + 4
    t, _, _, win_lo, win_hi = select_rank(skeys, s, (rank, rank_lo, rank_hi), tol,
                                          (lo, hi), scratch)
    t_lo = max(t, win_lo - 1)
    return t, t_lo, max(t_lo, win_hi)


@njit(cache=True, nogil=True)
def radix_select(mode, row, keys, need, widths, scratch):
    """Radix select of the ``need``-th largest key of one row (``1 <= need <= d``).
    Returns ``(shift, prefix, need_eq)`` (see the module docstring).

    ``row`` None: the keys are ``keys``, precomputed (the leading bits they all share
    are skipped first); else the keys of the whole ``row`` (``keys`` unused), computed
    from its written values at each round (Numba compiles the two cases apart, and
    drops the branches of the other).
    ``widths = (keybits, rbits)``: the keys' significant bits and the digit width;
    ``scratch = (hist, gt)``: a (1, >= 2**rbits) and a (1,) int64 array.
    """
    keybits, rbits = widths
    hist, gt = scratch
    hi_bit = keybits
    prefix = np.int64(0)
    gt[0] = 0
    if row is None:
        d = keys.shape[0]
        andv = np.int64(-1)
        orv = np.int64(0)
        for t in range(d):
            andv &= keys[t]
            orv |= keys[t]
        diff = andv ^ orv
        top = 0
        while diff:
            diff >>= 1
            top += 1
        hi_bit = min(top, keybits)
        prefix = andv >> hi_bit
        if hi_bit == 0:
            return 0, prefix, need
    else:
        d = row[0].shape[0]
    while True:
        lo_bit = max(hi_bit - rbits, 0)
        width = hi_bit - lo_bit
        nb = np.int64(1) << width
        digit = (hi_bit, lo_bit, prefix)
        if row is None:
            histogram_keys(keys, d, digit, hist[0])
        else:
            histogram_range(mode, row, (ZERO, d), digit, hist[0])
        bk, cum, h = choose_bucket(hist, 1, nb, need, gt)
        need -= cum
        prefix = (prefix << width) | bk
        hi_bit = lo_bit
        if hi_bit == 0 or h == need:
            return hi_bit, prefix, need


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
