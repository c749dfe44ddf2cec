"""The public kernels: validate once, normalise, dispatch to a backend.

Every function takes ``backend=None`` (see :mod:`ef21fast.backends.registry`) and, for
its array arguments, CPU ``torch.Tensor`` as well as numpy arrays
(:mod:`ef21fast._tensors`: tensors become numpy views, results come back as tensors,
nothing is copied). Backends receive
normalised arguments: C-contiguous native arrays, always 2-D (one row per client; a
1-D input is one row and the results are returned 1-D again), ``k`` an ``int``,
per-row factors as length-n arrays of the data dtype, scalars as numpy scalars of it.
"""

from __future__ import annotations

import numpy as np

from ef21fast import _tensors
from ef21fast import _validation as v
from ef21fast._spec import KERNELS
from ef21fast.backends.registry import get_kernel

__all__ = ["topk", "ef21_step", "ef_step", "scatter_add"]


def _documented(fn):
    """Make ``fn`` a public kernel: it takes tensors too, and gets the docstring of its
    entry in the kernel table."""
    kernel = KERNELS[fn.__name__]
    public = _tensors.accepting(kernel, fn)
    public.__doc__ = kernel.docstring()
    return public


def _unrows(one_d: bool, idx: np.ndarray, val: np.ndarray):
    return (idx[0], val[0]) if one_d else (idx, val)


@_documented
def topk(x, k, *, backend=None):
    x = v.float_array("x", x)
    k = v.check_k(k, x.shape[-1])
    fn = get_kernel("topk", backend)
    idx, val = fn(v.as_rows(v.readable(x)), k)
    return _unrows(x.ndim == 1, idx, val)


@_documented
def ef21_step(grad, state, k, scale=None, *, backend=None):
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


@_documented
def ef_step(grad, error, k, lr=1.0, *, backend=None):
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


@_documented
def scatter_add(out, idx, val, weights=None, *, backend=None):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array (or a CPU torch.Tensor) updated in "
                        f"place, got {type(out).__name__}")
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
