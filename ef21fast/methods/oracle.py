"""The fused C oracle of the dense GLM problems (:mod:`ef21fast.methods.problems`).

Not a kernel of the registry: the accelerated client-gradient pass that
:class:`~ef21fast.methods.problems.Problem` uses on dense float64 data, from its own C
module ``ef21fast._coracle`` (``csrc/glm_oracle.c``). It runs on the thread count of
the C backend (:func:`ef21fast.set_num_threads`, and the fork-safety rule of
:mod:`ef21fast.backends.c`), so it needs that backend too.

Importing it raises ImportError, saying why, when either C module is missing (the
reason ``ef21fast._coracle``'s build recorded, in ``ef21fast/_coracle_build_error.txt``,
or the C backend's).
"""

from __future__ import annotations

import os

import numpy as np

#: Where setup.py records why ``ef21fast._coracle`` did not build.
BUILD_ERROR_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "_coracle_build_error.txt")

try:
    from ef21fast._coracle import ffi, lib
except ImportError as exc:  # not built, or the build failed
    _msg = f"the fused GLM oracle is not available: {exc}"
    try:
        with open(BUILD_ERROR_FILE) as _fh:
            _msg += f" ({_fh.read().strip()})"
    except OSError:  # no record: not built at all (e.g. imported from a source tree)
        pass
    raise ImportError(_msg) from exc

from ef21fast.backends import registry as _registry

try:  # through the registry: the count set by ef21fast.set_num_threads applies
    _c_backend = _registry.load_backend("c")
except RuntimeError as exc:
    raise ImportError(f"the fused GLM oracle runs on the C backend's threads, and {exc}") \
        from exc

__all__ = ["GLM_KINDS", "glm_client_grads"]

#: ``kind`` codes of :func:`glm_client_grads` (``enum ef21_glm_kind`` of
#: ``csrc/glm_oracle.h``).
GLM_KINDS = {"logreg": lib.EF21_GLM_LOGREG, "linreg": lib.EF21_GLM_LINREG}

_DOUBLES = ffi.typeof("double[]")
_INT64S = ffi.typeof("int64_t[]")


def _ptr(arr, ctype, writable=False):
    """A cffi pointer to the data of a C-contiguous array (NULL when it is empty)."""
    if not arr.size:
        return ffi.NULL
    return ffi.from_buffer(ctype, arr, writable)


def _check(rc):
    """Raise the exception of the oracle's return code (``enum ef21_glm_status``)."""
    if rc == lib.EF21_GLM_OK:
        return
    if rc == lib.EF21_GLM_EINVAL:
        raise ValueError("ef21fast GLM oracle: an argument out of range (kind, n, d or "
                         "nthreads)")
    raise RuntimeError(f"ef21fast GLM oracle: unknown return code {rc}")


def glm_client_grads(A, b, offsets, x, reg, kind):
    """Every client's gradient of a dense GLM problem in one fused pass (not a kernel
    of the registry: the accelerated oracle of :mod:`ef21fast.methods.problems`).

    Parameters
    ----------
    A : ndarray of float64, shape (m, d), C-contiguous
    b : ndarray of float64, shape (m,), C-contiguous
    offsets : ndarray of int64, shape (n + 1,)
        Client i owns rows ``offsets[i]:offsets[i + 1]`` (non-decreasing, within m).
    x, reg : ndarray of float64, shape (d,), C-contiguous
        The point, and the regulariser's gradient added to every row.
    kind : {"logreg", "linreg"}

    Returns
    -------
    ndarray of float64, shape (n, d)
        Row i: ``sum_j (s_j / m_i) a_j + reg`` over client i's rows, with
        ``s_j = -b_j expit(-b_j a_j.x)`` (logreg) or ``2 (a_j.x - b_j)`` (linreg). Equal
        to the NumPy oracle up to rounding; independent of the thread count (that of the
        C backend, :func:`ef21fast.set_num_threads`).

    Raises
    ------
    ValueError
        On arrays of the wrong dtype, shape or layout, bad offsets, or an unknown kind.
    """
    if kind not in GLM_KINDS:
        raise ValueError(f"kind must be one of {sorted(GLM_KINDS)}, got {kind!r}")
    f64 = np.dtype(np.float64)
    for name, arr, ndim in (("A", A, 2), ("b", b, 1), ("x", x, 1), ("reg", reg, 1)):
        if not (isinstance(arr, np.ndarray) and arr.dtype == f64 and arr.ndim == ndim
                and arr.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous {ndim}-D float64 array")
    m, d = A.shape
    off = np.asarray(offsets)
    if off.dtype != np.int64 or off.ndim != 1 or off.size < 1 or not off.flags.c_contiguous:
        raise ValueError("offsets must be a C-contiguous 1-D int64 array of length n + 1")
    if b.shape != (m,) or x.shape != (d,) or reg.shape != (d,):
        raise ValueError(f"b must have shape ({m},) and x, reg shape ({d},)")
    if off[0] < 0 or off[-1] > m or np.any(np.diff(off) < 0):
        raise ValueError(f"offsets must be non-decreasing within [0, {m}]")
    n = off.size - 1
    G = np.empty((n, d))
    if n == 0 or d == 0:
        return G
    nthreads = _c_backend.parallel_call_threads()
    _check(lib.ef21_glm_client_grads(_ptr(A, _DOUBLES), _ptr(b, _DOUBLES), _ptr(off, _INT64S),
                                     n, d, _ptr(x, _DOUBLES), _ptr(reg, _DOUBLES),
                                     GLM_KINDS[kind], nthreads, _ptr(G, _DOUBLES, True)))
    return G
