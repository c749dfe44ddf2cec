"""Backend ``"numba"``: the kernels of :mod:`ef21fast.reference`, compiled with Numba.

Same names, signatures and results (bit for bit) as the reference, for arguments
already validated and normalised by :mod:`ef21fast.api`: native-endian C-contiguous
2-D ``(n, d)`` float32/float64 arrays, ``k`` an ``int`` with ``0 <= k <= d``.

Kernels compile on first use (``cache=True``: later processes load them from disk);
importing this package compiles nothing. No ``fastmath``: every operation is the IEEE
operation of the reference, in the data dtype. Results do not depend on the thread
count. The kernels also run as plain Python under ``NUMBA_DISABLE_JIT=1`` (slowly).

Modules: :mod:`.keys` (float -> ordered key, per-element semantics of each kernel),
:mod:`.select` (chunk-level selection steps and the radix select), :mod:`.rows` (the
batch-of-rows and the one-large-row drivers), :mod:`.scatter`, :mod:`.steps` (planning
and allocation, tuning constants).
"""

from __future__ import annotations

import os
import threading

import numba
import numpy as np

from . import steps as _steps

__all__ = ["topk", "ef21_step", "ef_step", "scatter_add", "set_num_threads",
           "get_num_threads", "describe", "MISSING"]

# Numba's "workqueue" threading layer aborts the process when two Python threads run
# parallel kernels at the same time. The layer is only known after the first parallel
# launch; until it is known to be another one (omp, tbb), kernel calls are serialised.
_call_lock = threading.Lock()
_layer: str | None = None
_requested_threads: int | None = None


def _layer_now() -> str | None:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet (or the JIT is disabled)
        return None


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


# A child forked after this process ran a parallel kernel must not start a parallel
# region: Numba's "omp" layer (GNU OpenMP) and "tbb" are not fork-safe, and Numba
# terminates such a child. There, every call takes the one-thread drivers, which launch
# no parallel region (ef21fast.set_num_threads(n) in the child lifts this, at that risk).
_parallel_used = False
_serial_only = False


def _after_fork_in_child() -> None:
    global _serial_only
    if _parallel_used and (_layer or _layer_now()) != "workqueue":
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _run(fn, *args):
    """``fn(*args, threads)`` with the thread count this call should use."""
    global _parallel_used
    size = args[0].size  # the (n, d) input, or out for scatter_add
    if fn is _steps.scatter_add:
        size = max(size, args[1].size)
    if size < SERIAL_BELOW or _serial_only:
        want = 1
    else:
        want = get_num_threads()
        if fn is _steps.scatter_add:
            if size < SCATTER_SERIAL_BELOW:
                want = 1
        elif args[0].shape[0] < 2 * want:  # rows split across the threads
            k = args[1] if fn is _steps.topk else args[2]
            if size + SPLIT_K_WEIGHT * k * args[0].shape[0] < SPLIT_SERIAL_BELOW:
                want = 1
    if numba.config.DISABLE_JIT:
        # plain Python on numpy scalars: inf - inf etc. must not warn (the jitted
        # code does not); the lock keeps the behaviour of the jitted path
        with _call_lock, np.errstate(all="ignore"):
            return fn(*args, want)
    if want == 1:
        # the one-thread drivers launch no parallel region: neither Numba's thread
        # count nor the lock matters (and querying the count costs as much as a
        # small call)
        return fn(*args, 1)
    _parallel_used = True
    # numba.set_num_threads is per calling thread: apply the request in this one
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)
    if _layer is not None and _layer != "workqueue":
        return fn(*args, want)
    with _call_lock:
        result = fn(*args, want)
        _note_layer()
        return result


def _note_layer() -> None:
    global _layer
    if _layer is None:
        _layer = _layer_now()


def topk(x, k):
    """The ``k`` entries of largest magnitude of each row.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (n, d), C-contiguous
        Not modified.
    k : int
        ``0 <= k <= d``.

    Returns
    -------
    idx : ndarray of int64, shape (n, k)
        Indices, ascending within each row.
    val : ndarray of x.dtype, shape (n, k)
        ``x[idx]`` per row, bit for bit.
    """
    return _run(_steps.topk, x, k)


def ef21_step(grad, state, k, scale):
    """EF21 / EF21-W step: ``delta = grad - state`` (or ``scale_i * grad - state``);
    ``(idx, val) = topk(delta, k)``; ``state[idx] += val``. No d-sized temporary.

    Parameters
    ----------
    grad : ndarray of float32 or float64, shape (n, d), C-contiguous
        Not modified.
    state : ndarray, same shape and dtype, C-contiguous
        **Updated in place.**
    k : int
        ``0 <= k <= d``.
    scale : None or ndarray of shape (n,) of the data dtype
        Per-row factor, multiplied first (``scale_i * grad``), rounded in the dtype.

    Returns
    -------
    idx, val : ndarrays of shape (n, k)
        Indices (int64, ascending per row) and the values of delta there.
    """
    return _run(_steps.ef21_step, grad, state, k, scale)


def ef_step(grad, error, k, lr):
    """EF14 step: ``error += lr * grad``; ``(idx, val) = topk(error, k)``;
    ``error[idx] = 0``. The error update is fused with the selection's first pass.

    Parameters
    ----------
    grad : ndarray of float32 or float64, shape (n, d), C-contiguous
        Not modified.
    error : ndarray, same shape and dtype, C-contiguous
        **Updated in place.**
    k : int
        ``0 <= k <= d``.
    lr : numpy scalar of the data dtype

    Returns
    -------
    idx, val : ndarrays of shape (n, k)
        Indices (int64, ascending per row) and the error values there before zeroing.
    """
    return _run(_steps.ef_step, grad, error, k, lr)


def scatter_add(out, idx, val, weights):
    """``out[idx[i, j]] += w_i * val[i, j]`` for rows i = 0..n-1 in order.

    Parameters
    ----------
    out : ndarray of float32 or float64, shape (d,), C-contiguous
        **Updated in place.**
    idx : ndarray of int64, shape (n, k), entries in ``[0, d)``
    val : ndarray of out.dtype, shape (n, k)
    weights : None or ndarray of shape (n,) of out.dtype
        Each product ``w_i * val[i, j]`` is rounded in the dtype before the addition.

    Returns
    -------
    out : ndarray
        ``out`` itself.
    """
    return _run(_steps.scatter_add, out, idx, val, weights)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (capped at ``numba.config.NUMBA_NUM_THREADS``)."""
    global _requested_threads, _serial_only
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    _requested_threads = n
    _serial_only = False
    numba.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the kernels use (in the calling thread; 1 in a child forked after a
    parallel kernel ran, see ``_after_fork_in_child``)."""
    if _serial_only:
        return 1
    if _requested_threads is not None:
        return _requested_threads
    return numba.config.NUMBA_NUM_THREADS


def describe() -> dict:
    """Facts for ``ef21fast info``: numba version, threading layer, threads."""
    _note_layer()
    return {
        "numba": numba.__version__,
        "threading_layer": _layer or "not yet chosen (set on the first parallel call)",
        "threads": get_num_threads(),
        "max_threads": numba.config.NUMBA_NUM_THREADS,
        "jit": "disabled" if numba.config.DISABLE_JIT else "enabled",
    }


#: Kernels this backend lacks, with the reason (none).
MISSING: dict[str, str] = {}
