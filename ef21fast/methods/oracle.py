"""The fused C oracles of the GLM problems (:mod:`ef21fast.methods.problems`).

Not kernels of the registry: the accelerated client-gradient passes that
:class:`~ef21fast.methods.problems.Problem` uses on float64 data, dense
(:func:`glm_client_grads`) or CSR (:func:`glm_csr_client_grads`), and their float32
forms (float64 arithmetic, each gradient rounded once to float32), from their own C
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

__all__ = ["GLM_KINDS", "glm_client_grads", "glm_csr_client_grads", "bind", "FusedOracle"]

#: ``kind`` codes of :func:`glm_client_grads` (``enum ef21_glm_kind`` of
#: ``csrc/glm_oracle.h``).
GLM_KINDS = {"logreg": lib.EF21_GLM_LOGREG, "linreg": lib.EF21_GLM_LINREG}

_DOUBLES = ffi.typeof("double[]")
_FLOATS = ffi.typeof("float[]")
#: The value types of :func:`glm_csr_client_grads`: dtype -> (cffi array type, C entry).
_VALUE_TYPES = {np.dtype(np.float64): (_DOUBLES, lib.ef21_glm_csr_client_grads),
                np.dtype(np.float32): (_FLOATS, lib.ef21_glm_csr_client_grads_f32)}
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
    if rc == lib.EF21_GLM_ENOMEM:
        raise MemoryError("ef21fast GLM oracle: no memory for the float32 pass's scratch "
                          "(threads x d float64, or x 2^15 beyond d = 2^15)")
    raise RuntimeError(f"ef21fast GLM oracle: unknown return code {rc}")


def glm_client_grads(A, b, offsets, x, reg, kind, losses=False, out=None):
    """Every client's gradient of a dense GLM problem in one fused pass (not a kernel
    of the registry: the accelerated oracle of :mod:`ef21fast.methods.problems`).

    Parameters
    ----------
    A : ndarray of float64 or float32, shape (m, d), C-contiguous
        Its dtype is that of the problem: b, x, reg and out must have it too.
    b : ndarray of A's dtype, shape (m,), C-contiguous
    offsets : ndarray of int64, shape (n + 1,)
        Client i owns rows ``offsets[i]:offsets[i + 1]`` (non-decreasing, within m).
    x, reg : ndarray of A's dtype, shape (d,), C-contiguous
        The point, and the regulariser's gradient added to every row.
    kind : {"logreg", "linreg"}
    losses : bool, default False
        Also return each client's sum of sample losses, from the same pass.
    out : ndarray of A's dtype, shape (n, d), C-contiguous, or None
        Where to write G (overwritten); None: a new array.

    Returns
    -------
    G : ndarray of A's dtype, shape (n, d)
        Row i: ``sum_j (s_j / m_i) a_j + reg`` over client i's rows, with
        ``s_j = -b_j expit(-b_j a_j.x)`` (logreg) or ``2 (a_j.x - b_j)`` (linreg). Equal
        to the NumPy oracle up to rounding; independent of the thread count (that of the
        C backend, :func:`ef21fast.set_num_threads`); the same bits with or without
        ``losses``. float32: the values converted to float64 and summed as the float64
        pass does, each gradient rounded once to float32 (the float64 result on the
        same values, rounded).
    ell : ndarray of float64, shape (n,)
        Only with ``losses=True``: as :func:`glm_csr_client_grads`.

    Raises
    ------
    ValueError
        On arrays of the wrong dtype, shape or layout, bad offsets, or an unknown kind.
    """
    if kind not in GLM_KINDS:
        raise ValueError(f"kind must be one of {sorted(GLM_KINDS)}, got {kind!r}")
    vdt = getattr(A, "dtype", None)
    if vdt not in _VALUE_TYPES:
        vdt = np.dtype(np.float64)  # the message names the expected dtype
    for name, arr, ndim in (("A", A, 2), ("b", b, 1), ("x", x, 1), ("reg", reg, 1)):
        if not (isinstance(arr, np.ndarray) and arr.dtype == vdt and arr.ndim == ndim
                and arr.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous {ndim}-D {vdt} array")
    m, d = A.shape
    off = np.asarray(offsets)
    if off.dtype != np.int64 or off.ndim != 1 or off.size < 1 or not off.flags.c_contiguous:
        raise ValueError("offsets must be a C-contiguous 1-D int64 array of length n + 1")
    if b.shape != (m,) or x.shape != (d,) or reg.shape != (d,):
        raise ValueError(f"b must have shape ({m},) and x, reg shape ({d},)")
    if off[0] < 0 or off[-1] > m or np.any(np.diff(off) < 0):
        raise ValueError(f"offsets must be non-decreasing within [0, {m}]")
    n = off.size - 1
    G = _out(out, n, d, vdt)
    ell = np.zeros(n)
    if n and d:
        vtype = _VALUE_TYPES[vdt][0]
        entry = (lib.ef21_glm_client_grads_losses if vdt == np.float64
                 else lib.ef21_glm_client_grads_f32)
        _check(entry(
            _ptr(A, vtype), _ptr(b, vtype), _ptr(off, _INT64S), n, d,
            _ptr(x, vtype), _ptr(reg, vtype), GLM_KINDS[kind],
            _c_backend.parallel_call_threads(), _ptr(G, vtype, True),
            _ptr(ell, _DOUBLES, True) if losses else ffi.NULL))
    elif n and losses:  # d == 0: every margin is 0
        bb = b[off[0]:off[-1]]
        terms = np.full(bb.size, np.log(2.0)) if kind == "logreg" else bb * bb
        ell = np.bincount(np.repeat(np.arange(n), np.diff(off)), weights=terms,
                          minlength=n)
    return (G, ell) if losses else G


def _check_vector(name, arr, size=None, dtype=np.float64):
    if not (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.ndim == 1
            and arr.flags.c_contiguous):
        raise ValueError(f"{name} must be a C-contiguous 1-D {np.dtype(dtype)} array")
    if size is not None and arr.size != size:
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")


def _out(out, n, d, dtype=np.float64):
    """``out`` checked as the (n, d) result of ``dtype``, or a new array."""
    if out is None:
        return np.empty((n, d), dtype=dtype)
    if not (isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (n, d)
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must be a writable C-contiguous {np.dtype(dtype)} array of "
                         f"shape ({n}, {d})")
    return out


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
    data : ndarray of float64 or float32, shape (nnz,), C-contiguous, or None
        The stored values; None: every stored value is 1 (a binary pattern, as in most
        LIBSVM files: the values are not read, and the result is that of an array of
        ones, bit for bit).
    indices : ndarray of int32 or int64, shape (nnz,), C-contiguous
        Column of each stored value, in ``[0, d)``; unsorted and repeated columns are
        allowed (repeats add up, as in scipy.sparse).
    indptr : ndarray, same dtype as ``indices``, shape (m + 1,), C-contiguous
        Row j holds the values ``indptr[j]:indptr[j + 1]`` (non-decreasing, within
        ``[0, nnz]``): the three arrays of a ``scipy.sparse.csr_matrix`` of shape (m, d).
    b : ndarray of float64 or float32, shape (m,), C-contiguous
    offsets : ndarray of int64, shape (n + 1,)
        Client i owns rows ``offsets[i]:offsets[i + 1]`` (non-decreasing, within m;
        an empty client's row of the result is ``reg`` and its loss 0).
    x : ndarray of float64 or float32, shape (d,), C-contiguous
        Its dtype is that of the problem: data, b, reg and out must have it too.
    reg : ndarray of x's dtype, shape (d,), C-contiguous, or None
        The regulariser's gradient added to every row (None: nothing).
    kind : {"logreg", "linreg"}
    losses : bool, default False
        Also return each client's sum of sample losses, from the same pass.
    out : ndarray of x's dtype, shape (n, d), C-contiguous, or None
        Where to write G (overwritten); None: a new array.

    Returns
    -------
    G : ndarray of x's dtype, shape (n, d)
        Row i: ``sum_j (s_j / m_i) a_j + reg`` over client i's rows, as
        :func:`glm_client_grads`. Equal to the scipy.sparse oracle up to rounding;
        independent of the thread count (each client is summed by one thread in
        stored order). float32: the products, margins, slopes and sums in float64,
        each gradient rounded once to float32 (within a float32 rounding of the exact
        gradient, closer than the NumPy float32 path).
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
    MemoryError
        float32, when the scratch of the float64 sums cannot be allocated (a row of d
        per thread; beyond d = 2^15 a block of 2^15 columns, the clients' rows summed
        block by block when their columns are sorted, as LIBSVM files and scipy keep
        them).
    """
    if kind not in GLM_KINDS:
        raise ValueError(f"kind must be one of {sorted(GLM_KINDS)}, got {kind!r}")
    vdt = getattr(x, "dtype", None)
    if vdt not in _VALUE_TYPES:
        vdt = np.dtype(np.float64)  # the message names the expected dtype
    _check_vector("x", x, dtype=vdt)
    if data is not None:
        _check_vector("data", data, dtype=vdt)
    _check_vector("b", b, dtype=vdt)
    d, m = x.size, b.size
    nnz = data.size if data is not None else getattr(indices, "size", 0)
    if reg is not None:
        _check_vector("reg", reg, d, dtype=vdt)
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
    G = _out(out, n, d, vdt)
    ell = np.zeros(n)
    if n and d:
        code, itype = _INDEX_TYPES[indices.dtype]
        vtype, entry = _VALUE_TYPES[vdt]
        rc = entry(
            ffi.NULL if data is None else _ptr(data, vtype), _ptr(indices, itype),
            _ptr(indptr, itype), code, nnz,
            _ptr(b, vtype), _ptr(offsets, _INT64S), n, d, _ptr(x, vtype),
            ffi.NULL if reg is None else _ptr(reg, vtype), GLM_KINDS[kind],
            _c_backend.parallel_call_threads(), _ptr(G, vtype, True),
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


class FusedOracle:
    """The fused oracle of one problem's data (:func:`bind`): ``f(x, reg) -> (G, ell)``.

    Attributes
    ----------
    losses : bool
        Whether a call also returns the per-client loss sums of its pass (default True;
        False: ``ell`` is None, and the pass leaves out the loss terms, about a third of
        a logistic CSR pass). :func:`ef21fast.methods.algorithms.run` turns it off for
        the rounds whose trace row is not recorded (``trace_every``).
    layout : {"dense", "csr"}
    n : int
        Clients.
    """

    def __init__(self, call, layout, n):
        self._call, self.layout, self.losses, self.n = call, layout, True, n

    def __call__(self, x, reg, lo=0, hi=None, out=None):
        """``(G, ell)`` of clients ``lo:hi`` (default all) at x (shape (d,)) with reg
        (shape (d,) or None) added to every row; ``ell`` is None when :attr:`losses` is
        False. ``out``: where to write G, shape (hi - lo, d), the problem's dtype,
        C-contiguous (None: a new array). A client's row does not depend on which
        clients are asked with it (each is summed alone, in a fixed order).

        Raises
        ------
        ValueError
            If not ``0 <= lo <= hi <= n``, or on a bad ``out``.
        """
        hi = self.n if hi is None else hi
        if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer))
                and 0 <= lo <= hi <= self.n):
            raise ValueError(f"lo, hi must be integers with 0 <= lo <= hi <= {self.n}, "
                             f"got {lo!r}, {hi!r}")
        return self._call(x, reg, self.losses, int(lo), int(hi), out)


def bind(A, b, offsets, kind):
    """The fused oracle of one problem's data, as ``f(x, reg) -> (G, ell)``.

    Parameters
    ----------
    A : ndarray of float64 or float32, shape (m, d), C-contiguous, or scipy.sparse CSR
        matrix of float64 or float32 (float32: the float32 passes)
    b : ndarray of A's dtype, shape (m,)
    offsets : ndarray of int64, shape (n + 1,)
    kind : {"logreg", "linreg"}

    Returns
    -------
    FusedOracle
        ``f(x, reg)`` with x of shape (d,) and reg of shape (d,) or None returns
        ``(G, ell)``: :func:`glm_client_grads` (dense A) or :func:`glm_csr_client_grads`
        (CSR A), ``ell`` the per-client loss sums of the same pass (None when
        ``f.losses`` is False).

    Notes
    -----
    On CSR data (offsets from 0 to m), ``f`` runs on a copy of A and b whose rows are
    reordered inside each client by their number of stored values (stably): each row
    ends its loops after a count the branch predictor has usually just seen, where rows
    of varying length in file order mispredict about once per row and loop (w8a-like
    data: 1.4x faster). A client's gradient and loss are sums over its rows, so only
    their rounding changes, and the order is fixed: the result still does not depend
    on the thread count.
    """
    if isinstance(A, np.ndarray):
        return FusedOracle(_bind_dense(A, b, offsets, kind), "dense", offsets.size - 1)
    lengths = np.diff(A.indptr)
    if offsets[0] == 0 and offsets[-1] == A.shape[0]:
        owner = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
        order = np.lexsort((lengths, owner))
        if np.any(order != np.arange(order.size)):
            A, b = A[order], np.ascontiguousarray(b[order])
    # A binary pattern (most LIBSVM files): the values need not be read.
    data = None if np.all(A.data == 1.0) else A.data
    indices, indptr = A.indices, A.indptr
    n, d = offsets.size - 1, A.shape[1]
    # One checked pass now (bad arrays raise here); the calls then skip the checks of
    # the fixed arrays, a tenth of a small problem's pass. All the rows the clients own
    # as one client: the same reads, and a (1, d) result instead of an (n, d) one.
    glm_csr_client_grads(data, indices, indptr, b,
                         np.array([offsets[0], offsets[-1]], dtype=np.int64),
                         np.zeros(d, b.dtype), None, kind)
    code, itype = _INDEX_TYPES[indices.dtype]
    vdt = b.dtype
    vtype, entry = _VALUE_TYPES[vdt]
    fixed = (ffi.NULL if data is None else _ptr(data, vtype), _ptr(indices, itype),
             _ptr(indptr, itype), code, indices.size, _ptr(b, vtype))
    kcode = GLM_KINDS[kind]

    def csr(x, reg, losses, lo, hi, out):
        k = hi - lo
        if not (k and d and _is_vector(x, d, vdt)
                and (reg is None or _is_vector(reg, d, vdt))):
            res = glm_csr_client_grads(data, indices, indptr, b, offsets[lo:hi + 1], x,
                                       reg, kind, losses=losses, out=out)
            return res if losses else (res, None)
        G, ell = _out(out, k, d, vdt), np.zeros(k) if losses else None
        _check(entry(
            *fixed, _ptr(offsets[lo:hi + 1], _INT64S), k, d, _ptr(x, vtype),
            ffi.NULL if reg is None else _ptr(reg, vtype), kcode,
            _c_backend.parallel_call_threads(), _ptr(G, vtype, True),
            ffi.NULL if ell is None else _ptr(ell, _DOUBLES, True)))
        return G, ell
    return FusedOracle(csr, "csr", n)


def _bind_dense(A, b, offsets, kind):
    """The call of :class:`FusedOracle` on dense A: A, b and offsets checked once here
    (a checked pass on the first client: bad arrays raise now), so that a call checks
    only x, reg and out (the checks of the fixed arrays, the offsets' order among them,
    were a tenth of a small problem's pass)."""
    m, d = A.shape
    zeros = np.zeros(d, A.dtype)
    glm_client_grads(A, b, offsets[:min(2, offsets.size)], zeros, zeros, kind)
    _check_offsets(offsets, m)
    vdt = A.dtype
    vtype = _VALUE_TYPES[vdt][0]
    entry = (lib.ef21_glm_client_grads_losses if vdt == np.float64
             else lib.ef21_glm_client_grads_f32)
    fixed = (_ptr(A, vtype), _ptr(b, vtype))
    kcode = GLM_KINDS[kind]

    def dense(x, reg, losses, lo, hi, out):
        reg = zeros if reg is None else reg
        k = hi - lo
        if not (k and d and _is_vector(x, d, vdt) and _is_vector(reg, d, vdt)):
            res = glm_client_grads(A, b, offsets[lo:hi + 1], x, reg, kind,
                                   losses=losses, out=out)
            return res if losses else (res, None)
        G, ell = _out(out, k, d, vdt), np.zeros(k) if losses else None
        _check(entry(
            *fixed, _ptr(offsets[lo:hi + 1], _INT64S), k, d, _ptr(x, vtype),
            _ptr(reg, vtype), kcode, _c_backend.parallel_call_threads(),
            _ptr(G, vtype, True), ffi.NULL if ell is None else _ptr(ell, _DOUBLES, True)))
        return G, ell
    return dense


def _is_vector(arr, d, dtype):
    return (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.shape == (d,)
            and arr.flags.c_contiguous)

