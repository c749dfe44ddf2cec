"""Backend ``"numba"``: the kernels of :mod:`ef21fast.reference`, compiled with Numba.

Same names, signatures and results (bit for bit) as the reference, for arguments
already validated and normalised by :mod:`ef21fast.api`: native-endian C-contiguous
2-D ``(n, d)`` float32/float64 arrays, ``k`` an ``int`` with ``0 <= k <= d``.

Kernels compile on first use (``cache=True``: later processes load them from disk);
importing this package compiles nothing. No ``fastmath``: every operation is the IEEE
operation of the reference, in the data dtype. Results do not depend on the thread
count. The kernels also run as plain Python under ``NUMBA_DISABLE_JIT=1`` (slowly).

Modules, from the elements up:

* :mod:`.modes`: the value sources of the selection (names and values shared with C);
* :mod:`.keys`: float -> ordered key, the value and emission of an element in each
  mode (and how every loop gets compiled once per mode);
* :mod:`.passes`: the streaming passes over a row or a chunk of it;
* :mod:`.select`: exact selection on keys (radix select, sample threshold);
* :mod:`.lanes`: operations on 16 keys at a time, as LLVM vector code (Numba
  intrinsics), and :mod:`.groups`: the few largest keys of short rows built on them;
* :mod:`.candidates`: selection among the candidate lists, and emission from them;
* :mod:`.rows`: the jitted drivers of whole rows (one thread, rows in parallel);
* :mod:`.split_row`: the jitted driver of one long row split across the threads;
* :mod:`.scatter`: scatter_add;
* :mod:`.plan`: every decision (threads, drivers, tuning constants) and the plan
  tuples;
* :mod:`.launch`: runs a call as planned (outputs, kept buffers, the lock), through
  one jitted entry per driver and mode.
"""

from __future__ import annotations

import numba
import numpy as np

from . import launch, plan
from .modes import MODE_EF, MODE_EF21, MODE_EF21_SCALED, MODE_TOPK

__all__ = ["topk", "ef21_step", "ef_step", "scatter_add", "set_num_threads",
           "get_num_threads", "describe", "MISSING"]


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
    return launch.select(MODE_TOPK, x, None, None, k)


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
    if scale is None:
        return launch.select(MODE_EF21, grad, state, None, k)
    return launch.select(MODE_EF21_SCALED, grad, state, scale, k)


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
    return launch.select(MODE_EF, grad, error, np.full(grad.shape[0], lr, dtype=grad.dtype),
                         k)


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
    return launch.scatter_add(out, idx, val, weights)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (capped at ``numba.config.NUMBA_NUM_THREADS``)."""
    plan.request_threads(n)


def get_num_threads() -> int:
    """Threads the kernels use (in the calling thread; 1 in a child forked after a
    parallel kernel ran, see :mod:`.plan`)."""
    return plan.threads()


def describe() -> dict:
    """Facts for ``ef21fast info``: numba version, threading layer, threads."""
    layer = plan.note_layer()
    return {
        "numba": numba.__version__,
        "threading_layer": layer or "not yet chosen (set on the first parallel call)",
        "threads": get_num_threads(),
        "max_threads": numba.config.NUMBA_NUM_THREADS,
        "jit": "disabled" if numba.config.DISABLE_JIT else "enabled",
    }


#: Kernels this backend lacks, with the reason (none).
MISSING: dict[str, str] = {}
