"""The fused C oracles of the GLM problems (:mod:`ef21fast.methods.problems`).

Not kernels of the registry: the accelerated client-gradient passes that
:class:`~ef21fast.methods.problems.Problem` uses on float64 data, dense
(:func:`glm_client_grads`) or CSR (:func:`glm_csr_client_grads`), from their own C
module ``ef21fast._coracle`` (``csrc/glm_oracle.c``). It runs on the thread count of
the C backend (:func:`ef21fast.set_num_threads`, and the fork-safety rule of
:mod:`ef21fast.backends.c`), so it needs that backend too.

Importing it raises ImportError, saying why, when either C module is missing (the
reason ``ef21fast._coracle``'s build recorded, in ``ef21fast/_coracle_build_error.txt``,
or the C backend's).
"""

from __future__ import annotations

import numpy as np

from ef21fast.backends import registry as _registry
from ef21fast.backends.checkout import compiled

ffi, lib = compiled("_coracle", "the fused GLM oracle")

try:  # through the registry: the count set by ef21fast.set_num_threads applies
    _c_backend = _registry.load_backend("c")
except RuntimeError as exc:
    raise ImportError(f"the fused GLM oracle runs on the C backend's threads, and {exc}") \
        from exc

__all__ = ["GLM_KINDS", "glm_client_grads", "glm_csr_client_grads", "bind"]

#: ``kind`` codes of :func:`glm_client_grads` (``enum ef21_glm_kind`` of
#: ``csrc/glm_oracle.h``).
GLM_KINDS = {"logreg": lib.EF21_GLM_LOGREG, "linreg": lib.EF21_GLM_LINREG}

_DOUBLES = ffi.typeof("double[]")
_INT64S = ffi.typeof("int64_t[]")
#: The index types of :func:`glm_csr_client_grads`: (code, cffi array type).
_INDEX_TYPES = {np.dtype(np.int32): (lib.EF21_GLM_INDEX_I32, ffi.typeof("int32_t[]")),
                np.dtype(np.int64): (lib.EF21_GLM_INDEX_I64, ffi.typeof("int64_t[]"))}


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
    if rc == lib.EF21_GLM_EINDEX:
        raise IndexError("ef21fast GLM oracle: indices or indptr out of range")
    raise RuntimeError(f"ef21fast GLM oracle: unknown return code {rc}")


def glm_client_grads(A, b, offsets, x, reg, kind, out=None):
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
    out : ndarray of float64, shape (n, d), C-contiguous, optional
        Written with the result and returned.

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
    G = _out(out, n, d)
    if n == 0 or d == 0:
        return G
    nthreads = _c_backend.parallel_call_threads()
    _check(lib.ef21_glm_client_grads(_ptr(A, _DOUBLES), _ptr(b, _DOUBLES), _ptr(off, _INT64S),
                                     n, d, _ptr(x, _DOUBLES), _ptr(reg, _DOUBLES),
                                     GLM_KINDS[kind], nthreads, _ptr(G, _DOUBLES, True)))
    return G


def _out(out, n, d):
    """``out`` checked as the (n, d) float64 result, or a new array."""
    if out is None:
        return np.empty((n, d))
    if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (n, d)
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous float64 array of shape "
                         f"({n}, {d})")
    return out


def _check_vector(name, arr, size=None):
    if not (isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.ndim == 1
            and arr.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous 1-D float64 array")
    if size is not None and arr.size != size:
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")


def _check_offsets(offsets, m):
    off = offsets
    if not (isinstance(off, np.ndarray) and off.dtype == np.int64 and off.ndim == 1
            and off.size >= 1 and off.flags.c_contiguous):
        raise ValueError("offsets must be a C-contiguous 1-D int64 array of length n + 1")
    if off[0] < 0 or off[-1] > m or np.any(off[1:] < off[:-1]):
        raise ValueError(f"offsets must be non-decreasing within [0, {m}]")


def glm_csr_client_grads(data, indices, indptr, b, offsets, x, reg, kind, losses=False,
                         out=None):
    """Every client's gradient of a GLM problem on CSR data in one fused pass (not a
    kernel of the registry: the accelerated oracle of
    :mod:`ef21fast.methods.problems` on sparse data).

    Parameters
    ----------
    data : ndarray of float64, shape (nnz,), C-contiguous
    indices : ndarray of int32 or int64, shape (nnz,), C-contiguous
        Column of each stored value, in ``[0, d)``; unsorted and repeated columns are
        allowed (repeats add up, as in scipy.sparse).
    indptr : ndarray, same dtype as ``indices``, shape (m + 1,), C-contiguous
        Row j holds the values ``indptr[j]:indptr[j + 1]`` (non-decreasing, within
        ``[0, nnz]``): the three arrays of a ``scipy.sparse.csr_matrix`` of shape (m, d).
    b : ndarray of float64, shape (m,), C-contiguous
    offsets : ndarray of int64, shape (n + 1,)
        Client i owns rows ``offsets[i]:offsets[i + 1]`` (non-decreasing, within m;
        an empty client's row of the result is ``reg`` and its loss 0).
    x : ndarray of float64, shape (d,), C-contiguous
    reg : ndarray of float64, shape (d,), C-contiguous, or None
        The regulariser's gradient added to every row (None: nothing).
    kind : {"logreg", "linreg"}
    losses : bool, default False
        Also return each client's sum of sample losses, from the same pass.
    out : ndarray of float64, shape (n, d), C-contiguous, optional
        Written with ``G`` and returned as ``G``.

    Returns
    -------
    G : ndarray of float64, shape (n, d)
        Row i: ``sum_j (s_j / m_i) a_j + reg`` over client i's rows, as
        :func:`glm_client_grads`. Equal to the scipy.sparse oracle up to rounding;
        independent of the thread count (each client is summed by one thread in
        stored order).
    ell : ndarray of float64, shape (n,)
        Only with ``losses=True``: ``sum_j log(1 + exp(-b_j a_j.x))`` (logreg, in the
        form that cannot overflow) or ``sum_j (a_j.x - b_j)^2`` (linreg) per client.

    Raises
    ------
    ValueError
        On arrays of the wrong dtype, shape or layout, bad offsets, or an unknown kind;
        the message names the argument.
    IndexError
        On a column index outside ``[0, d)``, or an ``indptr`` that decreases or leaves
        ``[0, nnz]`` (checked as the pass reads them; the message says which).
    """
    if kind not in GLM_KINDS:
        raise ValueError(f"kind must be one of {sorted(GLM_KINDS)}, got {kind!r}")
    _check_vector("data", data)
    _check_vector("x", x)
    _check_vector("b", b)
    nnz, d, m = data.size, x.size, b.size
    if reg is not None:
        _check_vector("reg", reg, d)
    for name, arr, size in (("indices", indices, nnz), ("indptr", indptr, m + 1)):
        if not (isinstance(arr, np.ndarray) and arr.dtype in _INDEX_TYPES
                and arr.ndim == 1 and arr.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous 1-D int32 or int64 array")
        if arr.size != size:
            raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
    if indptr.dtype != indices.dtype:
        raise ValueError(f"indptr must have the dtype of indices ({indices.dtype}), "
                         f"got {indptr.dtype}")
    _check_offsets(offsets, m)
    n = offsets.size - 1
    G = _out(out, n, d)
    ell = np.zeros(n)
    if n and d:
        code, itype = _INDEX_TYPES[indices.dtype]
        rc = lib.ef21_glm_csr_client_grads(
            _ptr(data, _DOUBLES), _ptr(indices, itype), _ptr(indptr, itype), code, nnz,
            _ptr(b, _DOUBLES), _ptr(offsets, _INT64S), n, d, _ptr(x, _DOUBLES),
            ffi.NULL if reg is None else _ptr(reg, _DOUBLES), GLM_KINDS[kind],
            _c_backend.parallel_call_threads(), _ptr(G, _DOUBLES, True),
            _ptr(ell, _DOUBLES, True) if losses else ffi.NULL)
        if rc == lib.EF21_GLM_EINDEX:
            p = indptr.astype(np.int64)
            if p.size and (p.min() < 0 or p.max() > nnz or np.any(p[1:] < p[:-1])):
                raise IndexError(f"indptr must be non-decreasing within [0, {nnz}]")
            raise IndexError(f"indices must be column indices in [0, {d})")
        _check(rc)
    elif n and reg is not None:
        G[:] = reg
    elif n:
        G[:] = 0.0
    return (G, ell) if losses else G


def bind(A, b, offsets, kind):
    """The fused oracle of one problem's data, as ``f(x, reg, lo, hi, out) -> (G, ell)``.

    Parameters
    ----------
    A : ndarray of float64, shape (m, d), C-contiguous, or scipy.sparse CSR matrix
    b : ndarray of float64, shape (m,)
    offsets : ndarray of int64, shape (n + 1,)
    kind : {"logreg", "linreg"}

    Returns
    -------
    callable
        ``f(x, reg, lo=0, hi=n, out=None)`` with x of shape (d,), reg of shape (d,) or
        None, clients ``lo:hi`` and ``out`` as :func:`glm_client_grads` returns
        ``(G, ell)`` of those clients: :func:`glm_client_grads` (dense A; ``ell`` is
        None) or :func:`glm_csr_client_grads` with ``losses=True`` (CSR A; ``ell`` the
        per-client loss sums of the same pass). The range is passed as the rows of
        its clients (a view of the dense rows; the CSR ``indptr`` sliced, the values
        not copied): each client is computed alone, so the rows are bit for bit those
        of the call over all clients.

    Notes
    -----
    On CSR data (offsets from 0 to m), ``f`` runs on a copy of A and b whose rows are
    reordered inside each client by their number of stored values (stably): each row
    ends its loops after a count the branch predictor has usually just seen, where rows
    of varying length in file order mispredict about once per row and loop (w8a-like
    data: 1.4x faster). A client's gradient and loss are sums over its rows, so only
    their rounding changes, and the order is fixed: the result still does not depend
    on the thread count. No copy is made when the rows are in that order already.
    """
    n = offsets.size - 1
    if isinstance(A, np.ndarray):
        zeros = np.zeros(A.shape[1])

        def dense(x, reg, lo=0, hi=n, out=None):
            r0, r1 = offsets[lo], offsets[hi]
            return glm_client_grads(A[r0:r1], b[r0:r1], offsets[lo:hi + 1] - r0, x,
                                    zeros if reg is None else reg, kind, out=out), None
        return dense
    lengths = np.diff(A.indptr)
    if offsets[0] == 0 and offsets[-1] == A.shape[0]:
        owner = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
        order = np.lexsort((lengths, owner))
        if np.any(order != np.arange(order.size)):
            A, b = A[order], np.ascontiguousarray(b[order])
    data, indices, indptr = A.data, A.indices, A.indptr

    def csr(x, reg, lo=0, hi=n, out=None):
        r0, r1 = offsets[lo], offsets[hi]
        return glm_csr_client_grads(data, indices, indptr[r0:r1 + 1], b[r0:r1],
                                    offsets[lo:hi + 1] - r0, x, reg, kind, losses=True,
                                    out=out)
    return csr
