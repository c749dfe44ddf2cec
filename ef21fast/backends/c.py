"""The ``"c"`` backend: the kernels of ``csrc/`` (module ``ef21fast._ckernels``, cffi,
OpenMP when available).

Arguments arrive normalised by :mod:`ef21fast.api`: native-order, C-contiguous, 2-D
``(n, d)`` arrays of float32 or float64, ``k`` a Python int with ``0 <= k <= d``,
per-row factors as length-n arrays of the data dtype, ``lr`` a numpy scalar of it.
Results are bit-for-bit those of :mod:`ef21fast.reference`, whatever the thread count.

This module also owns the thread count of all the C code, and its fork-safety rule:
the fused GLM oracle (:mod:`ef21fast.methods.oracle`, module ``ef21fast._coracle``)
takes its count from :func:`parallel_call_threads`.

Importing it raises ImportError, with the reason the build recorded
(``ef21fast/_ckernels_build_error.txt``), when the module was not built.
"""

from __future__ import annotations

import os

import numpy as np

from ef21fast.backends.checkout import compiled

ffi, lib = compiled("_ckernels", "the C backend")

__all__ = ["topk", "ef21_step", "ef_step", "scatter_add",
           "set_num_threads", "get_num_threads", "describe", "parallel_call_threads"]

# cffi array types looked up once (a type given by its string is parsed, or looked up
# in cffi's cache, on every call).
_CTYPE = {np.dtype(np.float32): ffi.typeof("float[]"), np.dtype(np.float64): ffi.typeof("double[]"),
          np.dtype(np.int64): ffi.typeof("int64_t[]")}
_SFX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _ptr(arr, writable=False):
    """A cffi pointer to the data of a C-contiguous array (NULL when it is empty)."""
    if arr is None or not arr.size:
        return ffi.NULL
    return ffi.from_buffer(_CTYPE[arr.dtype], arr, writable)


# The kernels' return codes (csrc/ef21fast.h: enum ef21_status), read once: an
# attribute of lib costs more than a global on every call.
_OK, _ENOMEM, _EINVAL = lib.EF21_OK, lib.EF21_ENOMEM, lib.EF21_EINVAL


def _check(rc):
    """Raise the exception of a kernel's return code, if it is not EF21_OK."""
    if rc == _OK:
        return
    if rc == _ENOMEM:
        raise MemoryError("ef21fast C backend: out of memory for a workspace")
    if rc == _EINVAL:
        raise ValueError("ef21fast C backend: a size out of range (n, d or k < 0, or k > d)")
    raise RuntimeError(f"ef21fast C backend: unknown return code {rc}")


# GNU OpenMP (libgomp) is not fork-safe: a child forked after the parent ran a parallel
# region with a thread team deadlocks in its own next parallel region. So once a kernel
# has run here with more than one thread, a forked child runs the kernels on one thread
# (results do not depend on it). ef21fast.set_num_threads(n) in the child overrides
# this, at the risk of that deadlock; 'spawn' and 'forkserver' children are unaffected.
_team_used = False


def _after_fork_in_child():
    if _team_used:
        lib.ef21_set_num_threads(1)


if lib.ef21_has_openmp() and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_FNS = {(name, dt): getattr(lib, f"ef21_{name}_{sfx}")
        for name in ("topk", "ef21_step", "ef_step", "scatter_add") for dt, sfx in _SFX.items()}


def _note_team() -> None:
    """Before any C call that may run in parallel: remember that a team may exist."""
    global _team_used
    if not _team_used and lib.ef21_get_num_threads() > 1:
        _team_used = True  # conservatively: this call may start a thread team


def parallel_call_threads() -> int:
    """The thread count for a call into other C code that may run a parallel region.

    For the fused GLM oracle (:mod:`ef21fast.methods.oracle`): the kernels' count
    (:func:`get_num_threads`), recorded for the fork-safety rule above like a kernel
    call, so that a child forked after it runs the oracle on one thread too.

    Returns
    -------
    int
        At least 1 (1 without OpenMP, and in a child forked after a team ran here).
    """
    _note_team()
    return int(lib.ef21_get_num_threads())


def _fn(name, dtype):
    _note_team()
    return _FNS[name, dtype]


def topk(x, k):
    """idx (int64, (n, k)) and val (x.dtype, (n, k)) of the k largest ``|x|`` per row."""
    n, d = x.shape
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=x.dtype)
    if n == 0 or k == 0 or d == 0:
        return idx, val
    _check(_fn("topk", x.dtype)(_ptr(x), n, d, k, _ptr(idx, True), _ptr(val, True)))
    return idx, val


def ef21_step(grad, state, k, scale):
    """EF21 / EF21-W step; ``state`` is updated in place. Returns (idx, val)."""
    n, d = grad.shape
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=state.dtype)
    if n == 0 or k == 0 or d == 0:
        return idx, val
    _check(_fn("ef21_step", state.dtype)(_ptr(grad), _ptr(state, True), _ptr(scale), n, d, k,
                                         _ptr(idx, True), _ptr(val, True)))
    return idx, val


def ef_step(grad, error, k, lr):
    """EF14 step; ``error`` is updated in place (even when k == 0). Returns (idx, val)."""
    n, d = grad.shape
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=error.dtype)
    if n == 0 or d == 0:
        return idx, val
    _check(_fn("ef_step", error.dtype)(_ptr(grad), _ptr(error, True), float(lr), n, d, k,
                                       _ptr(idx, True), _ptr(val, True)))
    return idx, val


def scatter_add(out, idx, val, weights):
    """out[idx[i, j]] += w_i * val[i, j], rows in order; ``out`` updated and returned."""
    n, k = idx.shape
    d = out.shape[0]
    if n == 0 or k == 0 or d == 0:
        return out
    _check(_fn("scatter_add", out.dtype)(_ptr(out, True), d, _ptr(idx), _ptr(val),
                                         _ptr(weights), n, k))
    return out


def set_num_threads(n):
    """Threads used by the C kernels (results do not depend on it)."""
    lib.ef21_set_num_threads(int(n))


def get_num_threads():
    """Threads the C kernels use (1 without OpenMP)."""
    return int(lib.ef21_get_num_threads())


def describe():
    """Facts for ``ef21fast info``."""
    omp = bool(lib.ef21_has_openmp())
    flags = "-O3 -ffp-contract=off -fno-fast-math -std=c99" + (" -fopenmp" if omp else "")
    extra = []
    if os.environ.get("EF21FAST_NATIVE"):
        extra.append("-march=native")
    if os.environ.get("EF21FAST_CFLAGS"):
        extra.append(os.environ["EF21FAST_CFLAGS"])
    if extra:
        flags += " (at build time, if set then: " + " ".join(extra) + ")"
    return {"openmp": omp, "threads": get_num_threads(), "compiler flags": flags}
