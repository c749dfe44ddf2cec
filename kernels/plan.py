"""Every decision of the Numba backend: how many threads a call uses, which driver runs
it, and the plan tuples that the jitted drivers read.

The thresholds are module attributes, read at every call (never frozen into jitted
code), so tests can lower them to push small inputs through the large-input paths
(sampling, parallel chunks, overflow fallbacks). Each one states the measurement that
set it; results never depend on them (only the speed does).

**Threads.** A call runs on one thread (a one-thread driver, which launches no
parallel region at all) when it is small, or in a child forked after this process
ran a parallel kernel; else on :func:`threads` threads, split over rows or within
rows as :func:`select_path` says.

**Plans.** Flat tuples (Numba passes them by value, and the parallel loops can capture
flat tuples only); the last five fields of both are the sample plan ``(nblocks, block,
rank, rank_lo, rank_hi)`` of :func:`sample_plan` (``nblocks = 0``: no sample).

:data:`ROW_PLAN`
    ``(k, keybits, rbits, dense, small, cap, *sample)`` for rows processed whole by one
    thread: ``keybits`` the keys' significant bits, ``rbits`` the radix digit width,
    ``dense`` all keys precomputed, ``small`` the small-k insertion select, ``cap`` the
    candidate capacity (dense: d).
:data:`SPLIT_PLAN`
    ``(k, keybits, rbits, nch, capc, written, *sample)`` for one row split into
    ``nch`` parallel chunks with ``capc`` candidates of room each; ``written``: the EF
    error is already written back (see :mod:`.modes`).
"""

from __future__ import annotations

import functools
import math
import os

import numba

from .keys import KEYBITS32, KEYBITS64

# --- when a call uses threads ---------------------------------------------------------

#: Calls on fewer elements than this run on one thread: waking a thread team costs
#: more than the work. Measured on the 2-core machine (2026-12-04, ef21_step float32,
#: k = 1): 300 x 112 takes 11 us serial and 16 us on 2 threads, 1000 x 112 28 and 20 us.
SERIAL_BELOW = 1 << 16
#: ... and below this when the rows would be split across the threads (fewer than two
#: rows per thread: the sample and the merge of the chunks cost more), counting
#: ``d + SPLIT_K_WEIGHT * k`` per row (the candidates cost more than the scan). topk on
#: the 2-core machine (2026-12-04), float32, serial / split on 2 threads: d = 1e5, k =
#: 1e3: 33 / 40 us; k = 1e4: 60 / 54 us; d = 2e5, k = 2e3: 54 / 53 us; k = 2e4: 114 /
#: 80 us; d = 7e4, k = 7e3: 43 / 45 us.
SPLIT_SERIAL_BELOW = 5 << 15
SPLIT_K_WEIGHT = 8
#: scatter_add on fewer entries than this (of out, or of the messages) runs serially.
SCATTER_SERIAL_BELOW = 1 << 18
#: Below this many message entries, or on a shorter output, scatter_add runs serially
#: (as in the C backend): each thread scans every message for its part of the output,
#: so small batches gain nothing from a team, and waking it costs.
SCATTER_PARALLEL_MIN = 1 << 17
SCATTER_PARALLEL_MIN_D = 1 << 14

# --- how the rows are shared out ----------------------------------------------------

#: Rows at least this long are split into parallel chunks (when rows are few).
PARALLEL_ROW_MIN_D = 32768
#: Smallest chunk of a row processed by one parallel task.
CHUNK_MIN = 16384
#: Parallel tasks per thread (finer chunks bound the cost of overflow fallbacks).
CHUNKS_PER_THREAD = 4

# --- how a row is selected ----------------------------------------------------------

#: Rows up to this long precompute all keys (a d-sized per-block workspace).
DENSE_MAX_D = 4096
#: Up to this k, the k-th key of a dense row is found by insertion (no radix passes).
SMALL_K = 16
#: Rows up to this long take 8-bit radix digits (fewer buckets to clear), longer ones
#: 11-bit digits.
SHORT_DIGITS_MAX_D = 1024
#: A split row longer than this takes 16-bit digits in its full-range select when the
#: per-chunk histograms stay small beside the row (see :func:`split_plan`).
WIDE_DIGITS_MIN_D = 1 << 20
#: Sample: runs of this many consecutive elements ...
SAMPLE_BLOCK = 16
#: ... at most this many runs ...
SAMPLE_MAX_BLOCKS = 1024
#: ... and at most one run per this many elements (at least 4 runs, else no sample).
SAMPLE_SPACING = 512
#: Room for candidates: 1.5 times the expected count, plus this many (per chunk).
CANDIDATE_SLACK = 64

#: Field names of the plan tuples (documentation, and the tests' check of the layout).
ROW_PLAN = ("k", "keybits", "rbits", "dense", "small", "cap",
            "nblocks", "block", "rank", "rank_lo", "rank_hi")
SPLIT_PLAN = ("k", "keybits", "rbits", "nch", "capc", "written",
              "nblocks", "block", "rank", "rank_lo", "rank_hi")


# --- the thread count, and the fork rule ----------------------------------------------

_requested_threads: int | None = None
# A child forked after this process ran a parallel kernel must not start a parallel
# region: Numba's "omp" layer (GNU OpenMP) and "tbb" are not fork-safe, and Numba
# terminates such a child. There, every call takes the one-thread drivers, which launch
# no parallel region (ef21fast.set_num_threads(n) in the child lifts this, at that risk).
_parallel_used = False
_serial_only = False
# Numba's threading layer, known after the first parallel launch.
_layer: str | None = None


def layer_now() -> str | None:
    """Numba's threading layer, or None before the first parallel region (or with the
    JIT disabled)."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def note_layer() -> str | None:
    """Remember the threading layer once it is known; returns it."""
    global _layer
    if _layer is None:
        _layer = layer_now()
    return _layer


def note_parallel() -> None:
    """Record that a parallel region is about to run (see the fork rule)."""
    global _parallel_used
    _parallel_used = True


def serialise_parallel_calls() -> bool:
    """Whether parallel calls from Python threads must be serialised: Numba's
    "workqueue" layer aborts the process when two threads run parallel kernels at the
    same time, and the layer is only known after the first parallel launch; until it is
    known to be another one (omp, tbb), they are."""
    return _layer is None or _layer == "workqueue"


def _after_fork_in_child() -> None:
    global _serial_only
    if _parallel_used and (_layer or layer_now()) != "workqueue":
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def request_threads(n: int) -> None:
    """Use ``n`` threads (capped at ``numba.config.NUMBA_NUM_THREADS``); lifts the
    one-thread rule of a forked child."""
    global _requested_threads, _serial_only
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    _requested_threads = n
    _serial_only = False
    numba.set_num_threads(n)


def threads() -> int:
    """Threads the kernels use (1 in a child forked after a parallel kernel ran)."""
    if _serial_only:
        return 1
    if _requested_threads is not None:
        return _requested_threads
    return numba.config.NUMBA_NUM_THREADS


# --- the decisions of a call ----------------------------------------------------------

def keybits(itemsize: int) -> int:
    """Significant bits of the keys of a float of ``itemsize`` bytes."""
    return KEYBITS32 if itemsize == 4 else KEYBITS64


def select_threads(n: int, d: int, k: int) -> int:
    """Threads for a selection (topk, ef21_step, ef_step) on an (n, d) batch."""
    size = n * d
    if size < SERIAL_BELOW or _serial_only:
        return 1
    want = threads()
    if n < 2 * want and size + SPLIT_K_WEIGHT * k * n < SPLIT_SERIAL_BELOW:
        return 1  # the rows would be split across the threads, and are too short
    return want


def select_path(n: int, d: int, nthreads: int) -> str:
    """How a selection runs: ``"serial"`` (every row on the calling thread),
    ``"split"`` (each row split into parallel chunks: few long rows) or ``"batch"``
    (the rows shared out among the threads)."""
    if nthreads == 1:
        return "serial"
    if d >= PARALLEL_ROW_MIN_D and n < 2 * nthreads:
        return "split"
    return "batch"


def batch_blocks(n: int, nthreads: int) -> int:
    """Parallel blocks of rows of a ``"batch"`` selection."""
    return max(1, min(n, CHUNKS_PER_THREAD * nthreads))


def scatter_threads(d: int, entries: int) -> int:
    """Threads for scatter_add of ``entries`` message entries into ``out`` of length d
    (each then owns a part of ``out``)."""
    size = max(d, entries)
    if _serial_only or size < SERIAL_BELOW or size < SCATTER_SERIAL_BELOW:
        return 1
    if entries < SCATTER_PARALLEL_MIN or d < SCATTER_PARALLEL_MIN_D:
        return 1
    return max(1, min(threads(), d))


def sample_plan(d: int, k: int) -> tuple[int, int, int, int, int]:
    """``(nblocks, rank, rank_lo, rank_hi, expected)`` of the sample for a row of
    length d, or ``(0, 0, 0, 0, d)`` when sampling does not pay.

    With s sampled keys, the k-th largest key of the row has expected rank
    ``r = k s / d`` among them; the candidate threshold is the sampled key of rank
    ``r + 4 sqrt(r) + 8``, so that at least k keys are > it with high probability,
    and about ``expected = rank * d / s`` of them are. The k-th largest is then
    selected among the candidates between the sampled keys of ranks ``rank_lo = r +
    2 sqrt(r) + 4`` and ``rank_hi = r - 2 sqrt(r) - 4`` (at least 1): it lies there
    in most cases (else the selection looks above or below), and they are few.
    """
    nb = min(SAMPLE_MAX_BLOCKS, d // max(SAMPLE_SPACING, 1))
    if nb < 4 or d < SAMPLE_BLOCK:
        return 0, 0, 0, 0, d
    s = nb * SAMPLE_BLOCK
    r = k * s / d
    rank = math.ceil(r + 4.0 * math.sqrt(r) + 8.0)
    if 2 * rank > s:
        return 0, 0, 0, 0, d
    window = 2.0 * math.sqrt(r) + 4.0
    rank_lo = min(rank, math.ceil(r + window))
    return nb, rank, rank_lo, max(1, math.floor(r - window)), rank * d // s + 1


def row_plan(d: int, k: int, itemsize: int) -> tuple:
    """The :data:`ROW_PLAN` of rows of length d processed whole by one thread: short
    rows keep all their keys (``cap = d``), longer ones sample (see
    :func:`sample_plan`) and keep up to ``cap`` candidates. (Memoised with the
    thresholds it reads: it costs 0.6 us in Python, and calls repeat their shapes.)"""
    return _row_plan(d, k, itemsize, (DENSE_MAX_D, SMALL_K, SHORT_DIGITS_MAX_D,
                                      SAMPLE_BLOCK, SAMPLE_MAX_BLOCKS, SAMPLE_SPACING,
                                      CANDIDATE_SLACK))


@functools.lru_cache(maxsize=64)
def _row_plan(d: int, k: int, itemsize: int, _thresholds: tuple) -> tuple:
    """:func:`row_plan`, for the thresholds of this module now (``_thresholds``: the
    cache key)."""
    kb = keybits(itemsize)
    rbits = 8 if d <= SHORT_DIGITS_MAX_D else 11
    if d <= DENSE_MAX_D:
        return (k, kb, rbits, True, k <= SMALL_K, d, 0, SAMPLE_BLOCK, 0, 0, 0)
    nblocks, rank, rank_lo, rank_hi, expected = sample_plan(d, k)
    cap = expected + expected // 2 + CANDIDATE_SLACK if nblocks else 0
    return (k, kb, rbits, False, False, cap, nblocks, SAMPLE_BLOCK, rank, rank_lo,
            rank_hi)


def split_plan(d: int, k: int, itemsize: int, nthreads: int) -> tuple:
    """The :data:`SPLIT_PLAN` of a row of length d split across ``nthreads``. (Memoised
    with the thresholds it reads, as :func:`row_plan`: 1.2 us a call in Python, a
    twentieth of a split row's fixed cost.)"""
    return _split_plan(d, k, itemsize, nthreads,
                       (CHUNKS_PER_THREAD, CHUNK_MIN, WIDE_DIGITS_MIN_D, SAMPLE_BLOCK,
                        SAMPLE_MAX_BLOCKS, SAMPLE_SPACING, CANDIDATE_SLACK))


@functools.lru_cache(maxsize=64)
def _split_plan(d: int, k: int, itemsize: int, nthreads: int, _thresholds: tuple) -> tuple:
    """:func:`split_plan`, for the thresholds of this module now (``_thresholds``: the
    cache key)."""
    nch = max(1, min(CHUNKS_PER_THREAD * nthreads, d // max(CHUNK_MIN, 1)))
    nblocks, rank, rank_lo, rank_hi, expected = sample_plan(d, k)
    capc = (expected + expected // 2) // nch + CANDIDATE_SLACK if nblocks else 0
    # 16-bit histograms when the full-range select runs on a long row and they stay
    # small beside it
    wide = d > WIDE_DIGITS_MIN_D and nch * (8 << 16) <= d * itemsize // 16
    return (k, keybits(itemsize), 16 if wide else 11, nch, capc, False, nblocks,
            SAMPLE_BLOCK, rank, rank_lo, rank_hi)


def split_retry_plan(plan: tuple, capc: int) -> tuple:
    """``plan`` with ``capc`` candidates of room per chunk and the EF error written
    back (what a split row whose chunk overflowed is run again with)."""
    return plan[:4] + (capc, True) + plan[6:]
