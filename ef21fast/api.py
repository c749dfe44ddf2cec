"""The public kernels: validate once, normalise, dispatch to a backend.

Every function takes ``backend=None`` (see :mod:`ef21fast.backends.registry`). Backends receive
normalised arguments: C-contiguous native arrays, always 2-D (one row per client; a
1-D input is one row and the results are returned 1-D again), ``k`` an ``int``,
per-row factors as length-n arrays of the data dtype, scalars as numpy scalars of it.
"""

from __future__ import annotations

import numpy as np

from ef21fast import _validation as v
from ef21fast.backends.registry import get_kernel

__all__ = ["topk", "ef21_step", "ef_step", "scatter_add"]


def _unrows(one_d: bool, idx: np.ndarray, val: np.ndarray):
    return (idx[0], val[0]) if one_d else (idx, val)


def topk(x, k, *, backend=None):
    """TopK selection: the ``k`` entries of largest magnitude of each row.

    Order: larger ``|x|`` first; NaN ranks above +inf and all NaNs rank equal;
    -0.0 equals +0.0; ties go to the smaller index. The selected set is exactly
    ``np.argsort(-np.abs(x), kind="stable")[:k]`` with NaNs placed first.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (d,) or (n, d)
        Vector, or batch of n vectors (one per row). May be non-contiguous or in
        non-native byte order. Never modified.
    k : int
        Entries kept per row, ``0 <= k <= d``.
    backend : {"c", "numba", "numpy"} or None
        None: ``$EF21FAST_BACKEND`` if set, else the fastest available.

    Returns
    -------
    idx : ndarray of int64, shape (k,) or (n, k)
        Selected indices, ascending within each row.
    val : ndarray of x.dtype (native order), shape (k,) or (n, k)
        ``x[idx]``, bit for bit (sign of zero, NaN payload).

    Raises
    ------
    TypeError
        ``x`` is not float32/float64, or ``k`` is not an integer.
    ValueError
        ``x`` is not 1-D or 2-D, or ``k`` is outside ``[0, d]``.
    """
    x = v.float_array("x", x)
    k = v.check_k(k, x.shape[-1])
    fn = get_kernel("topk", backend)
    idx, val = fn(v.as_rows(v.readable(x)), k)
    return _unrows(x.ndim == 1, idx, val)


def ef21_step(grad, state, k, scale=None, *, backend=None):
    """The EF21 / EF21-W client step, fused: compress the change, update the state.

    ``delta = grad - state`` (``scale * grad - state`` when ``scale`` is given, the
    product rounded in the array dtype first); ``(idx, val) = topk(delta, k)``;
    ``state[idx] += val``. No d-sized temporary is needed by the compiled backends.

    Parameters
    ----------
    grad : ndarray of float32 or float64, shape (d,) or (n, d)
        Gradients, one row per client. Never modified.
    state : ndarray, same shape and dtype as ``grad``
        Client states g_i: writable, C-contiguous, native order. **Updated in place.**
    k : int
        Coordinates sent per client, ``0 <= k <= d``.
    scale : None, real scalar, or array of shape (n,)
        EF21-W factor ``1 / (n w_i)`` per client (cast to the array dtype). A 1-D
        ``grad`` takes a scalar only.
    backend : str or None
        See :func:`topk`.

    Returns
    -------
    idx : ndarray of int64, shape (k,) or (n, k)
        Indices sent, ascending per row.
    val : ndarray, shape (k,) or (n, k)
        ``delta[idx]``, the values sent (what was added to ``state``).

    Raises
    ------
    TypeError
        Unsupported dtype, dtype mismatch, non-integer ``k``, non-real ``scale``.
    ValueError
        Wrong ndim, shape mismatch, ``state`` read-only or non-contiguous, ``k`` out
        of range, ``scale`` of the wrong length.
    """
    grad = v.float_array("grad", grad)
    state = v.writable_state("state", state, grad)
    k = v.check_k(k, grad.shape[-1])
    n = 1 if grad.ndim == 1 else grad.shape[0]
    if grad.ndim == 1 and scale is not None and np.ndim(scale) != 0:
        raise ValueError(f"scale must be a scalar for a 1-D grad, got shape "
                         f"{np.shape(scale)}")
    s = v.row_vector("scale", scale, n, state.dtype)
    if s is not None and np.may_share_memory(s, state):
        s = s.copy()  # the factors are read after rows of state have been updated
    g = v.readable(grad)
    if np.may_share_memory(g, state):
        g = g.copy()  # delta is defined on the values before the update
    fn = get_kernel("ef21_step", backend)
    idx, val = fn(v.as_rows(g), v.as_rows(state), k, s)
    return _unrows(grad.ndim == 1, idx, val)


def ef_step(grad, error, k, lr=1.0, *, backend=None):
    """Classic error feedback (EF14) client step, fused.

    ``error += lr * grad`` (product rounded in the array dtype first);
    ``(idx, val) = topk(error, k)``; ``error[idx] = 0``.

    Parameters
    ----------
    grad : ndarray of float32 or float64, shape (d,) or (n, d)
        Gradients, one row per client. Never modified.
    error : ndarray, same shape and dtype as ``grad``
        Error accumulators: writable, C-contiguous, native order. **Updated in place.**
    k : int
        Coordinates sent per client, ``0 <= k <= d``.
    lr : real scalar
        Step size, cast to the array dtype.
    backend : str or None
        See :func:`topk`.

    Returns
    -------
    idx : ndarray of int64, shape (k,) or (n, k)
        Indices sent, ascending per row.
    val : ndarray, shape (k,) or (n, k)
        The accumulated error at ``idx`` before it was zeroed (the values sent).

    Raises
    ------
    TypeError, ValueError
        As :func:`ef21_step`, for ``error`` and ``lr``.
    """
    grad = v.float_array("grad", grad)
    error = v.writable_state("error", error, grad)
    k = v.check_k(k, grad.shape[-1])
    lr = v.real_scalar("lr", lr, error.dtype)
    g = v.readable(grad)
    if np.may_share_memory(g, error):
        g = g.copy()
    fn = get_kernel("ef_step", backend)
    idx, val = fn(v.as_rows(g), v.as_rows(error), k, lr)
    return _unrows(grad.ndim == 1, idx, val)


def scatter_add(out, idx, val, weights=None, *, backend=None):
    """Server aggregation: ``out[idx[i, j]] += w_i * val[i, j]``, in row order.

    Rows are applied in order 0..n-1 and entries within a row in order, so the
    result is identical across backends and thread counts; repeated indices
    accumulate (as ``np.add.at``).

    Parameters
    ----------
    out : ndarray of float32 or float64, shape (d,)
        Dense accumulator: writable, C-contiguous, native order. **Updated in place.**
    idx : ndarray of integers, shape (k,) or (n, k)
        Indices in ``[0, d)`` (negative indices are rejected, not wrapped).
    val : ndarray of out.dtype, same shape as ``idx``
        Values to add.
    weights : None, real scalar, or array of shape (n,)
        Per-row weights (a 1-D ``idx`` is one row), cast to ``out.dtype``; each
        product is rounded in that dtype before the addition.
    backend : str or None
        See :func:`topk`.

    Returns
    -------
    out : ndarray
        ``out`` itself.

    Raises
    ------
    TypeError
        Unsupported dtype, ``val`` of another dtype than ``out``, non-integer ``idx``.
    ValueError
        ``out`` not 1-D, read-only or non-contiguous; shape mismatch of ``idx``,
        ``val`` or ``weights``.
    IndexError
        An index outside ``[0, d)``.
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array updated in place, "
                        f"got {type(out).__name__}")
    target = v.float_array("out", out)  # a plain view of out (subclasses)
    if target.ndim != 1:
        raise ValueError(f"out must be 1-D, got shape {out.shape}")
    target = v.writable_state("out", target, target)
    val = v.float_array("val", val)
    if val.dtype.newbyteorder("=") != out.dtype:
        raise TypeError(f"val must have the dtype of out ({out.dtype}), got {val.dtype}")
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu" or idx.dtype == np.bool_:
        raise TypeError(f"idx must hold integers, got dtype {idx.dtype}")
    if idx.shape != val.shape:
        raise ValueError(f"idx and val must have the same shape, got {idx.shape} "
                         f"and {val.shape}")
    d = out.shape[0]
    if idx.size:
        lo, hi = idx.min(), idx.max()
        if lo < 0 or hi >= d:
            bad = lo if lo < 0 else hi
            raise IndexError(f"idx must lie in [0, {d}), found {int(bad)}")
    n = 1 if idx.ndim == 1 else idx.shape[0]
    if idx.ndim == 1 and weights is not None and np.ndim(weights) != 0:
        raise ValueError(f"weights must be a scalar for a 1-D idx, got shape "
                         f"{np.shape(weights)}")
    w = v.row_vector("weights", weights, n, out.dtype)
    i64 = np.ascontiguousarray(idx, dtype=np.int64)
    rv = v.readable(val)
    # the kernels read idx, val and weights while they write out: no shared memory
    if np.may_share_memory(i64, target):
        i64 = i64.copy()
    if np.may_share_memory(rv, target):
        rv = rv.copy()
    if w is not None and np.may_share_memory(w, target):
        w = w.copy()
    fn = get_kernel("scatter_add", backend)
    fn(target, v.as_rows(i64), v.as_rows(rv), w)
    return out
