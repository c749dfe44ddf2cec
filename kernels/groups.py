"""The few (``2 <= k <= 16``) largest keys of a short row (at most ``GROUPS_MAX_D``
keys), from the groups j mod 16 of its keys, with the vector operations of
:mod:`.lanes`.

With ``m1``/``m2`` the largest and second largest key of each group:

* a threshold ``tv`` that at least k keys reach: for ``k <= 12`` the k-th largest of
  the ``m1`` (k groups hold a key ``>= tv`` each), above it the ``ceil(k/2)``-th
  largest of the ``m2`` (that many groups hold two each), which brings fewer keys above
  it for large k (random rows of 112, k = 16: about 25 instead of 40);
* if fewer than k keys exceed ``tv``, the row's k-th largest key T is ``tv`` itself
  (random rows of 112: most rows for k <= 4); else T is the k-th largest of the keys
  above ``tv`` (at least k of them; at most ``CAND_MAX``, else the caller selects
  another way);
* the selection, in index order, from the row's bit masks (two words of 64 keys,
  :mod:`.masks`): the keys ``>= T`` when exactly k of them (no key but the k-th ties
  with T), else the keys above T, then the first ``k - (their count)`` keys equal to
  T: :func:`selection_mask` returns that mask, :func:`select_groups` its indices.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import ctz
from .lanes import LANES, group_top2, kth_lanes, kth_of
from .masks import MASK_BITS, compress_gt, eq_mask, gt_mask, popcount

#: Rows up to this long (a row's bit masks fit in two words).
GROUPS_MAX_D = 128
#: At most this many keys above the threshold are ranked (:func:`.lanes.kth_of`).
CAND_MAX = 64
#: For k up to this, the threshold is the k-th largest of the groups' maxima.
TOP1_K = 12
#: For k up to this, the keys that reach the threshold are counted first: on most rows
#: (random rows of 112: k = 2 95%, k = 4 70%) exactly k do, and they are the selection
#: (1000 x 112 float32 ef21_step, one thread, Intel Xeon, A/B in one process,
#: 2026-12-05: k = 2 0.88x, 3 0.91x, 4 0.96x the time; for k = 6 to 12 no change).
GE_FIRST_K = 4


@njit(cache=True, nogil=True)
def bits_gt(keys, d, t):
    """``(lo, hi)``: bit j of the 128-bit mask set iff ``keys[j] > t`` (``j < d <=
    128``, ``keys`` padded as :func:`select_groups` states)."""
    lo = gt_mask(keys, 0, t)
    hi = gt_mask(keys, MASK_BITS, t) if d > MASK_BITS else np.uint64(0)
    return lo, hi


@njit(cache=True, nogil=True)
def bits_eq(keys, d, t):
    """As :func:`bits_gt`, for ``keys[j] == t``."""
    lo = eq_mask(keys, 0, t)
    hi = eq_mask(keys, MASK_BITS, t) if d > MASK_BITS else np.uint64(0)
    return lo, hi


@njit(cache=True, nogil=True)
def count(lo, hi):
    """The set bits of the 128-bit mask ``(lo, hi)``, as an int64."""
    return np.int64(popcount(lo)) + np.int64(popcount(hi))


@njit(cache=True, nogil=True)
def pop_lowest(lo, hi):
    """``(j, lo, hi)``: the position j of the lowest set bit of the non-zero 128-bit
    mask ``(lo, hi)``, and the mask without it; no branch on the bits (the exits of a
    loop per word or per 16 bits were mispredicted on most rows)."""
    in_lo = lo != np.uint64(0)
    j = np.int64(ctz(lo)) if in_lo else 64 + np.int64(ctz(hi))
    hi = hi if in_lo else hi & (hi - np.uint64(1))
    return j, lo & (lo - np.uint64(1)), hi


@njit(cache=True, nogil=True)
def take_bits(lo, hi, n, out):
    """The positions of the n lowest set bits of the 128-bit mask ``(lo, hi)`` (it has
    at least n), ascending, to ``out[:n]``."""
    for o in range(n):
        out[o], lo, hi = pop_lowest(lo, hi)


@njit(cache=True, nogil=True)
def select_groups(keys, d, k, m, ck, sel):
    """The k largest of the keys ``keys[:d]`` (``2 <= k <= 16``, ``k < d <=
    GROUPS_MAX_D``), ties to the smaller index: their indices, ascending, to
    ``sel[:k]``; returns k, or 0 (``sel`` garbage) when more than ``CAND_MAX`` keys
    exceed the threshold.

    ``keys``: room for ``64 * ceil(d / 64)``, ``keys[d:]`` set to -1 (below every key);
    ``m``: room for 32 keys, ``ck`` for ``CAND_MAX + MASK_BITS``; ``sel``: room for k
    indices.
    """
    ok, lo, hi = selection_mask(keys, d, k, m, ck)
    if ok:
        take_bits(lo, hi, k, sel)
        return k
    return 0


@njit(cache=True, nogil=True, inline="always")
def threshold(keys, d, k, m):
    """The threshold tv of the module docstring, for the keys ``keys[:d]`` (``2 <= k
    <= 16``, ``k < d``; any d, padded to a multiple of 16 with -1): at least k keys
    reach it when it is a key (-1 when the row has too few groups of two keys: then
    every key does). ``m`` (room for 32) gets the groups' two largest keys.

    Inlined into its callers by Numba: as a call, :func:`selection_mask` took 1.11x
    and 1.02x the time for k = 4 and 8 (1000 x 112 float32 ef21_step, one thread, A/B
    in one process, ``bench/ab_kernels.py``)."""
    group_top2(keys, (d + LANES - 1) // LANES, m)
    if k <= TOP1_K:
        return kth_lanes(m, 0, k)
    return kth_lanes(m, LANES, (k + 1) // 2)


@njit(cache=True, nogil=True)
def selection_mask(keys, d, k, m, ck):
    """:func:`select_groups` as ``(ok, lo, hi)``: the selection as a 128-bit mask of
    exactly k bits when ``ok``, else nothing (more than ``CAND_MAX`` keys above the
    threshold); ``m`` is written (the groups' two largest keys). Callers take its bits
    as they emit them: against a list of indices in between, 1000 x 112 float32
    ef21_step, 2 threads, A/B in one process, 0.85-0.96x the time for k = 2 to 16."""
    return selection_above(keys, d, k, ck, threshold(keys, d, k, m))


@njit(cache=True, nogil=True, inline="always")
def selection_above(keys, d, k, ck, tv):
    """:func:`selection_mask` from its threshold ``tv`` (:func:`threshold` of the same
    keys): the stages after it, for callers that run each stage on several rows in
    turn (:func:`.rows.rows_dense`)."""
    if k <= GE_FIRST_K:
        lo, hi = bits_gt(keys, d, tv - 1)  # (keys are integers: >= tv)
        if count(lo, hi) == k:
            return True, lo, hi
    # the keys above tv packed by vector compresses, counted as they are (against a
    # mask of them first, its count deciding: A/B as GE_FIRST_K, k = 8 and 16; against
    # taking the mask's bits one by one: k = 8 0.97x, 16 0.87x the time)
    t = tv
    gt = compress_gt(keys, 0, tv, ck, 0)
    if d > MASK_BITS:
        gt = compress_gt(keys, MASK_BITS, tv, ck, gt)
    if gt >= k:  # T is above tv: the k-th largest of the keys above it
        if gt > CAND_MAX:
            return False, np.uint64(0), np.uint64(0)
        t = kth_of(ck, gt, k)
    return selection_at(keys, d, k, t, gt >= k)


@njit(cache=True, nogil=True, inline="always")
def selection_at(keys, d, k, t, first):
    """The selection of the row whose k-th largest key is t, as :func:`selection_mask`
    returns it: the keys above t, then the first ties. ``first``: try the keys >= t
    first (exactly k when no key but the k-th ties with t: most rows; against
    compacting the candidates in place, 1000 x 112 float32 ef21_step, 2 threads, us:
    k = 8 64 -> 57, 16 95 -> 78-80)."""
    if first:
        # keys are integers: those >= t are those > t - 1
        lo, hi = bits_gt(keys, d, t - 1)
        if count(lo, hi) == k:
            return True, lo, hi
    lo, hi = bits_gt(keys, d, t)
    # T = t: the keys above it, then the first ties
    quota = k - count(lo, hi)
    elo, ehi = bits_eq(keys, d, t)
    if count(elo, ehi) > quota:  # keep the first quota ties: drop the others
        rlo, rhi = elo, ehi
        for _ in range(quota):
            _, rlo, rhi = pop_lowest(rlo, rhi)
        elo ^= rlo
        ehi ^= rhi
    return True, lo | elo, hi | ehi
