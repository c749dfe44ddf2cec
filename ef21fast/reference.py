"""NumPy reference of every kernel: the oracle of the tests and the ``"numpy"`` backend.

Written for clarity, not speed: each function defines the semantics of the kernel of
the same name in ``ef21fast.kernels`` (Numba) and ``csrc/`` (C), whose contract
(shapes, dtypes, updates, errors) the public functions of :mod:`ef21fast.api` state
once, from the kernel table :mod:`ef21fast._spec`. The compiled backends must return
the same bits on every valid input.

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
after them), so ``_add`` and ``_mul`` apply the rule explicitly.
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
    """TopK of each row: ``(idx, val)``, the ``k`` largest ``|x|`` in the selection order.

    The reference of :func:`ef21fast.topk`, whose docstring (from the kernel table,
    :mod:`ef21fast._spec`) states the contract: shapes, dtypes, what is raised.
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
    """EF21 / EF21-W step: ``delta = grad - state`` (``scale * grad - state``);
    ``(idx, val) = topk(delta, k)``; ``state[idx] += val``; returns ``(idx, val)``.

    The reference of :func:`ef21fast.ef21_step` (contract there). ``state`` is updated
    in place; ``scale`` is None, a scalar, or one value per row.
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
    """EF14 step: ``error += lr * grad``; ``(idx, val) = topk(error, k)``;
    ``error[idx] = 0``; returns ``(idx, val)``.

    The reference of :func:`ef21fast.ef_step` (contract there). ``error`` is updated in
    place; ``lr`` is cast to the array dtype first.
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
    """Server aggregation: ``out[idx[i, j]] += w_i * val[i, j]``, rows in order, then
    the entries of a row in order (repeated indices accumulate, as ``np.add.at``).

    The reference of :func:`ef21fast.scatter_add` (contract there). ``out`` is updated
    in place and returned; each product is rounded in ``out``'s dtype before the add.
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
