"""NumPy reference of every kernel: the oracle of the tests and the ``"numpy"`` backend.

Written for clarity, not speed: each function is the contract of the kernel of the
same name in ``ef21fast.kernels`` (Numba) and ``csrc/`` (C). The compiled backends must
return the same bits on every valid input.

The functions accept 1-D arrays (one vector) and 2-D arrays (a batch of ``n`` rows,
one per client). They assume their arguments were validated by the public functions
in :mod:`ef21fast.api` (dtype float32/float64, shapes consistent, ``0 <= k <= d``,
writable state arrays); called directly they still behave correctly on such inputs.

Selection order (shared by all kernels): larger ``|x|`` first; NaN ranks above +inf
and all NaNs rank equal; -0.0 and +0.0 are equal; ties go to the smaller index. The
selected indices are returned sorted ascending.

Arithmetic is IEEE in the array dtype, in the operand order written here, and when both
operands of ``+`` or ``*`` are NaN the first one comes out, quietened (what the x86
instruction returns for its first source). NumPy alone does not promise that: its SIMD
loops may swap the operands of these commutative operations (on an AVX-512 machine,
``a + b`` of two NaN arrays gives ``a``'s payload in the first 16 elements and ``b``'s
after them), so :func:`_add` and :func:`_mul` apply the rule explicitly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["topk", "ef21_step", "ef_step", "scatter_add"]

_QUIET = {np.dtype(np.float32): (np.uint32, np.uint32(1 << 22)),
          np.dtype(np.float64): (np.uint64, np.uint64(1 << 51))}


def _first_nan(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``r`` with each element where ``a`` (broadcast to r) is NaN replaced by that NaN,
    quietened (its quiet bit set, sign and payload kept)."""
    a = np.broadcast_to(np.asarray(a, dtype=r.dtype), r.shape)
    nan = np.isnan(a)
    if not nan.any():
        return r
    uint, bit = _QUIET[r.dtype]
    out = np.array(r, copy=True)
    out[nan] = (a[nan].view(uint) | bit).view(r.dtype)
    return out


def _add(a, b) -> np.ndarray:
    """``a + b`` (IEEE, errors ignored); where both are NaN, ``a``'s NaN, quietened."""
    with np.errstate(all="ignore"):
        return _first_nan(a, np.asarray(np.add(a, b)))


def _mul(a, b) -> np.ndarray:
    """``a * b`` (IEEE, errors ignored); where both are NaN, ``a``'s NaN, quietened."""
    with np.errstate(all="ignore"):
        return _first_nan(a, np.asarray(np.multiply(a, b)))


def _topk_row(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest-magnitude entries of a 1-D ``row``, ascending."""
    with np.errstate(all="ignore"):
        mag = np.abs(row)
        nan = np.isnan(mag)
    neg_mag = np.where(nan, 0, -mag)
    # lexsort is stable and sorts by the last key first: NaN first, then larger
    # magnitude first, then (stability) smaller index first.
    order = np.lexsort((neg_mag, ~nan))
    return np.sort(order[:k]).astype(np.int64)


def topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Select the ``k`` entries of largest magnitude of each row.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (d,) or (n, d)
        Input vector or batch of vectors. Not modified.
    k : int
        Number of entries to keep per row, ``0 <= k <= d``.

    Returns
    -------
    idx : ndarray of int64, shape (k,) or (n, k)
        Selected indices, ascending within each row.
    val : ndarray of x.dtype, shape (k,) or (n, k)
        ``x[idx]`` (per row), copied bit for bit.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        idx = _topk_row(x, k)
        return idx, x[idx]
    n = x.shape[0]
    idx = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        idx[i] = _topk_row(x[i], k)
    val = np.take_along_axis(x, idx, axis=1)
    return idx, val


def _row_scale(scale, shape, dtype):
    """``scale`` cast to ``dtype`` and shaped to broadcast against rows."""
    s = np.asarray(scale, dtype=dtype)
    if len(shape) == 2 and s.ndim == 1:
        return s[:, None]
    return s


def ef21_step(grad, state, k, scale=None):
    """One EF21 / EF21-W client step for one vector or a batch of clients.

    ``delta = grad - state`` (or ``scale * grad - state``, the product taken first, in
    the array dtype); ``(idx, val) = topk(delta, k)``; ``state[idx] += val``.

    Parameters
    ----------
    grad : ndarray, shape (d,) or (n, d)
        The client gradients (read only).
    state : ndarray, same shape and dtype as ``grad``
        The client states g_i. **Updated in place.**
    k : int
        Number of coordinates sent per client.
    scale : None, float, or ndarray of shape (n,)
        Per-client factor ``1 / (n w_i)`` of EF21-W; ``None`` for plain EF21.

    Returns
    -------
    idx, val : ndarrays, shape (k,) or (n, k)
        The message: indices (int64, ascending) and values of ``delta`` there.
    """
    g = np.asarray(grad)
    with np.errstate(all="ignore"):  # IEEE results (inf - inf = NaN), no warnings
        if scale is not None:
            g = _mul(_row_scale(scale, state.shape, state.dtype), g)
        delta = (g - state).astype(state.dtype, copy=False)
        idx, val = topk(delta, k)
        if state.ndim == 1:
            state[idx] = _add(state[idx], val)
        else:
            rows = np.arange(state.shape[0])[:, None]
            state[rows, idx] = _add(state[rows, idx], val)
    return idx, val


def ef_step(grad, error, k, lr=1.0):
    """One classic error-feedback (EF14) client step.

    ``error += lr * grad``; ``(idx, val) = topk(error, k)``; ``error[idx] = 0``.

    Parameters
    ----------
    grad : ndarray, shape (d,) or (n, d)
        The client gradients (read only).
    error : ndarray, same shape and dtype as ``grad``
        The error accumulators e_i. **Updated in place.**
    k : int
        Number of coordinates sent per client.
    lr : float
        Step size multiplying the gradient, cast to the array dtype first.

    Returns
    -------
    idx, val : ndarrays, shape (k,) or (n, k)
        The message: indices (int64, ascending) and the values of the accumulated
        error there (before it is zeroed).
    """
    lr = error.dtype.type(lr)
    with np.errstate(all="ignore"):
        error[...] = _add(error, _mul(lr, np.asarray(grad)).astype(error.dtype, copy=False))
    idx, val = topk(error, k)
    if error.ndim == 1:
        error[idx] = 0
    else:
        rows = np.arange(error.shape[0])[:, None]
        error[rows, idx] = 0
    return idx, val


def scatter_add(out, idx, val, weights=None):
    """Add sparse messages into a dense vector: ``out[idx[i]] += w_i * val[i]``.

    Messages are applied in order: row 0 first, and within a row in the order of its
    entries (repeated indices accumulate, as with ``np.add.at``).

    Parameters
    ----------
    out : ndarray, shape (d,)
        The dense accumulator. **Updated in place.**
    idx : ndarray of int, shape (k,) or (n, k)
        Indices into ``out``, each in ``[0, d)``.
    val : ndarray of out.dtype, same shape as ``idx``
        Message values.
    weights : None, float, or ndarray of shape (n,)
        Per-row weights w_i, cast to ``out.dtype``; each product ``w_i * val[i, j]`` is
        rounded in that dtype before it is added. ``None`` adds the values unweighted.

    Returns
    -------
    out : ndarray
        The same array, updated.
    """
    idx = np.asarray(idx)
    val = np.asarray(val)
    with np.errstate(all="ignore"):
        if weights is not None:
            w = np.asarray(weights, dtype=out.dtype)
            if idx.ndim == 2 and w.ndim == 1:
                w = w[:, None]
            val = _mul(w, val).astype(out.dtype, copy=False)
        flat_idx, flat_val = idx.reshape(-1), val.reshape(-1)
        if np.isnan(flat_val).any():
            # an entry may meet a NaN already in out: one add at a time, in order
            for p, v in zip(flat_idx.tolist(), flat_val):
                out[p] = _add(out[p], v)
        else:
            np.add.at(out, flat_idx, flat_val)
    return out
