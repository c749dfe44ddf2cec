"""The papers' problems, with per-client oracles batched over all clients.

f(x) = (1/n) sum_i f_i(x), where client i holds rows A_i (m_i, d) and labels b_i:

* :class:`LogisticRegression`:
  ``f_i(x) = (1/m_i) sum_j log(1 + exp(-b_ij a_ij^T x)) + lam sum_k x_k^2 / (1 + x_k^2)``,
  ``L_i = lambda_max(A_i^T A_i) / (4 m_i) + 2 lam``.
* :class:`LinearRegression`:
  ``f_i(x) = (1/m_i) ||A_i x - b_i||^2 + lam sum_k x_k^2 / (1 + x_k^2)``,
  ``L_i = 2 lambda_max(A_i^T A_i) / m_i + 2 lam``.
* :class:`ClonedProblem`: EF21 on the cloned problem (Reloaded, first route).

(docs/maths.rst, "Problems"; the regulariser is the EF21 papers' non-convex one, its
Hessian is bounded by 2 lam in norm.) ``client_grads`` evaluates all n gradients in one
call: one product ``A @ x`` for the margins, then one sparse (n x m) client-averaging
matrix, carrying the per-sample coefficients, times A (a batched matmul when dense
clients are equal-sized). There is no Python loop over clients. On float64 data, dense
or CSR, when the C backend is built, ``client_grads`` of the logistic and linear
problems is one fused C pass over A instead (``oracle="c"``, the default there; equal to
the NumPy/scipy oracle up to rounding, checked in the tests): each row is read once for
its margin and its share of its client's gradient. On CSR data the same pass also gives
the client losses, which ``client_losses``/``loss`` at the same x then reuse.

Oracles never warn: non-finite iterates (a diverging run) give non-finite outputs
silently, and the logistic terms use ``logaddexp`` and ``expit`` so that margins of any
size are exact.
"""

from __future__ import annotations

import math

import numpy as np

from ef21fast.methods.client_range import (Minibatches, _check_batch, check_out, check_range,
                                           draw_minibatches, minibatch_grads)
from ef21fast.methods.data import ClientData
from ef21fast.methods.data_sparse import ownership
from ef21fast.methods.regulariser import _reg_grad, _reg_terms, _reg_value
from ef21fast.methods.spectra import client_lmax, lmax_gram, single_threaded_blas

__all__ = ["Problem", "LogisticRegression", "LinearRegression", "ClonedProblem"]

def _expit(t):
    from scipy.special import expit

    return expit(t)


def _equal(a, b) -> bool:
    """``np.array_equal`` of two arrays of one shape (the same values: NaN unequal,
    -0.0 equal to 0.0): element by element in C through memoryviews, without
    np.array_equal's checks, for short vectors (each range of a chunked round asks
    it), where those checks cost several times the comparison; NumPy's for long ones."""
    if a.size <= 4096:
        return memoryview(a) == memoryview(b)
    return bool((a == b).all())


def _errstate():
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


# --------------------------------------------------------------------------- problems

def _values_as(A, dtype):
    """``A`` with its values in ``dtype``: a dense copy, or a CSR matrix whose values are
    a copy and whose index arrays are ``A``'s own (``astype`` copies those too: on
    news20-like, 36 MB of indices beside 36 MB of float32 values)."""
    if not hasattr(A, "indptr"):
        return A.astype(dtype)
    import scipy.sparse as sp

    B = sp.csr_matrix((A.data.astype(dtype), A.indices, A.indptr), shape=A.shape,
                      copy=False)
    B.has_sorted_indices = A.has_sorted_indices  # (known: not scanned again)
    B.has_canonical_format = A.has_canonical_format
    return B


class Problem:
    """Finite-sum problem ``f(x) = (1/n) sum_i f_i(x)`` on a
    :class:`~ef21fast.methods.data.ClientData` split.

    Subclasses define the per-sample loss through ``_sample_losses`` and
    ``_sample_slopes``. All oracles take
    ``x`` of shape (d,) (converted to ``dtype``) and return arrays of ``dtype``.

    Attributes
    ----------
    data : ClientData
    n, d : int
        Clients and features.
    lam : float
        Regulariser weight.
    L : float
        Smoothness constant of f: ``c * lambda_max(sum_i A_i^T A_i / (n m_i)) + 2 lam``
        (c = 1/4 logistic, 2 linear). With equal m_i this is the papers' formula on the
        whole data (``c lambda_max(A^T A) / m + 2 lam``); with unequal m_i it is the
        exact constant of f as defined (always ``L <= L_AM``); docs/maths.rst,
        "Problems".
    L_i : ndarray, shape (n,), float64
        ``c * lambda_max(A_i^T A_i) / m_i + 2 lam``.
    regulariser : {"all", "owned"}
        ``"owned"``: client i's regulariser sums over the features it owns only
        (docs/maths.rst, "Rare features"); then ``L_i`` has ``2 lam`` only if client i
        owns a feature, and ``L`` has ``2 lam c / n`` in place of ``2 lam``.
    curvature : float
        The ``c`` of the formulas above.
    m_i : ndarray, shape (n,), int64
        Samples per client.
    name : str
    oracle : {"numpy", "c"}
        What computes ``client_grads``: NumPy (scipy.sparse on CSR data), or the
        fused C pass (float64 data, dense or CSR, logistic or linear regression, C
        backend built; :mod:`ef21fast.methods.oracle`).

    Parameters
    ----------
    data : ClientData
    lam : float, default 0.1
    oracle : {None, "numpy", "c"}
        None: ``"c"`` where it applies, else ``"numpy"``. ``"c"`` where it does not
        apply raises ValueError.
    regulariser : {"all", "owned"}, default "all"
        Which features a client's regulariser covers: all of them (the EF21 papers'
        problem), or those the client owns (column of ``A_i`` with a non-zero), so that
        the client gradients keep the data's sparsity.
    dtype : {"float64", "float32"}, default "float64"
        Of the data as the oracles use it, of x inside them and of their results.
        float32 halves the memory of the data and of the methods' (n, d) states;
        L and L_i are computed from the float64 data either way. The fused C oracles
        read float32 data, compute in float64 and round each gradient once.

    Raises
    ------
    TypeError
        If ``data`` is not a ClientData.
    ValueError
        On a bad ``lam``, ``oracle``, ``regulariser`` or ``dtype``.
    """

    #: c in L_i = c * lambda_max(A_i^T A_i) / m_i + 2 lam.
    _curvature = 1.0
    kind = "problem"
    #: The fused C oracle's kind for this loss (None: no fused oracle).
    _c_kind: str | None = None

    def __init__(self, data: ClientData, lam: float = 0.1, oracle: str | None = None,
                 regulariser: str = "all", dtype="float64"):
        import scipy.sparse as sp

        if not isinstance(data, ClientData):
            raise TypeError(f"data must be a ClientData, got {type(data).__name__}")
        lam = float(lam)
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
        if regulariser not in ("all", "owned"):
            raise ValueError(f"regulariser must be 'all' or 'owned', got {regulariser!r}")
        if dtype not in ("float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.regulariser = regulariser
        # (n, d) 0/1 mask of owned features; None: every client has every feature.
        self._own = (ownership(data).toarray().astype(np.float64)
                     if regulariser == "owned" else None)
        self.data = data
        self.lam = lam
        self.n, self.d = data.n, data.d
        self.m_i = data.m_i.astype(np.int64)
        self.name = data.name or self.kind
        self._sparse = data.is_sparse
        A = data.A
        if self._sparse:  # canonical CSR (sorted, no repeated columns): shared, no copy
            A = sp.csr_matrix(A, dtype=np.float64)
            if not A.has_canonical_format:
                A = A.copy()
                A.sum_duplicates()
                A.sort_indices()
        else:
            A = np.ascontiguousarray(A)
        self._A = A
        self._b = np.ascontiguousarray(data.b, dtype=np.float64)
        off = data.offsets
        self._offsets = off
        self._starts = off[:-1]
        owner = np.repeat(np.arange(self.n, dtype=np.int64), self.m_i)
        inv_m_row = 1.0 / self.m_i[owner].astype(np.float64)
        del owner
        self._inv_m = None  # 1/m_i of every row (m,), built on first use
        # Client-averaging matrix W (n x m): W[i, j] = coef_j / m_i for j in client i,
        # built on first use (the NumPy oracle on dense data of unequal clients).
        self._W = None
        # Dense fast path: clients 0..n-2 all of size q (every split of data.py) ->
        # one batched matmul over a (n-1, q, d) view of A.
        self._q = None
        if not self._sparse and self.n > 1 and np.all(self.m_i[:-1] == self.m_i[0]):
            self._q = int(self.m_i[0])
        self._nnz_keys = None  # (row, owner * d + column) per stored value, on first use
        self._z = None  # (x, per-sample slopes at x) of the NumPy oracle's last product
        self._reg = None  # (x, the regulariser's gradient at x), the last x
        self._x_seen = None  # a copy of the last x, shared by the caches above
        c = self._curvature
        # Regulariser part of the constants (docs/maths.rst, "Rare features" for owned).
        reg_i, reg = 2.0 * lam, 2.0 * lam
        if self._own is not None:
            reg_i = 2.0 * lam * (self._own.max(axis=1) if self.d else 0.0)
            reg = 2.0 * lam * (self._own.sum(axis=0).max() if self.d else 0.0) / self.n
        with single_threaded_blas():  # many tiny eigenproblems: threads only hurt
            self.L_i = c * client_lmax(A, off) / self.m_i + reg_i
        self.L = float(c * lmax_gram(A, np.sqrt(inv_m_row / self.n)) + reg)
        del inv_m_row
        if self.dtype != np.float64:  # the constants above come from the float64 data
            self._A, self._b = _values_as(self._A, self.dtype), self._b.astype(self.dtype)
        self._fused = None
        self._ell = None  # (x, per-client loss sums) of the last fused CSR pass
        # [x, loss sums, clients covered, how many] while ranges cover x
        self._ell_part = None
        self.oracle = self._choose_oracle(oracle)

    def _choose_oracle(self, oracle):
        if oracle not in (None, "numpy", "c"):
            raise ValueError(f"oracle must be None, 'numpy' or 'c', got {oracle!r}")
        if oracle == "numpy":
            return "numpy"
        why = None
        if self._c_kind is None:
            why = f"{type(self).__name__} has no fused C oracle"
        else:
            try:
                from ef21fast.methods import oracle as c_backend
            except ImportError as exc:
                why = str(exc)
        if why is not None:
            if oracle == "c":
                raise ValueError(f"oracle='c' is not available: {why}")
            return "numpy"
        self._fused = c_backend.bind(self._A, self._b, np.ascontiguousarray(
            self._offsets, dtype=np.int64), self._c_kind)
        return "c"

    # --- per-sample terms (subclasses) ---------------------------------------------
    def _sample_losses(self, z: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-sample loss for predictions ``z = a^T x`` and labels b."""
        raise NotImplementedError

    def _sample_slopes(self, z: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-sample derivative s such that the sample's loss gradient is ``s * a``."""
        raise NotImplementedError

    @property
    def curvature(self) -> float:
        """The ``c`` of ``L_i = c lambda_max(A_i^T A_i) / m_i + 2 lam``."""
        return self._curvature

    # --- helpers ----------------------------------------------------------------------
    @property
    def _inv_m_row(self) -> np.ndarray:
        """``1/m_i`` of the client of every row, shape (m,), float64."""
        if self._inv_m is None:
            self._inv_m = np.repeat(1.0 / self.m_i.astype(np.float64), self.m_i)
        return self._inv_m

    def _seen(self, x) -> np.ndarray:
        """A copy of ``x``, one for all the caches keyed by the last x (the regulariser's
        gradient, the slopes, the loss sums): a new x replaces it. The copy is
        read-only, so that being passed the copy itself (:meth:`oracle_point`) proves
        x unchanged without comparing it."""
        seen = self._x_seen
        if seen is None or (x is not seen and not _equal(seen, x)):
            self._x_seen = None  # not two copies at once
            self._x_seen = seen = x.copy()
            seen.flags.writeable = False
        return seen

    def oracle_point(self, x) -> np.ndarray:
        """``x`` as the oracles take it, the very array their caches are keyed by.

        Passing the result back to the oracles spares each call the comparison of its
        ``x`` with the last one (and, for a float32 problem, the conversion of a
        float64 ``x``): in a round computed by ranges of clients, on a wide problem,
        that comparison cost as much as a range's gradients (news20-like, 0.8 ms of a
        range's 3 ms). Results are the same as with ``x`` itself.

        Parameters
        ----------
        x : array_like, shape (d,)

        Returns
        -------
        ndarray, shape (d,), dtype ``self.dtype``, read-only
            A copy of ``x`` in the problem's dtype; it stays valid (and unchanged) while
            the problem keeps it, until an oracle is called at another x.

        Raises
        ------
        ValueError
            On x of the wrong shape.
        """
        return self._seen(self._x(x))

    def _reg_grad_at(self, x, seen=None) -> np.ndarray:
        """``_reg_grad(lam, x)``, kept for the last x (the client ranges of a round).
        ``seen``: ``self._seen(x)`` when the caller has it (one comparison of x per
        call: a cache holds the very copy that ``_seen`` returns while x is the same)."""
        seen = self._seen(x) if seen is None else seen
        last = self._reg
        if last is None or last[0] is not seen:
            self._reg = None
            last = self._reg = (seen, _reg_grad(self.lam, x))
        return last[1]

    def _reg_rows(self, x, src=None):
        """The regulariser's gradient of every client (row ``v``: client ``src[v]``):
        one (d,) row for all when every client has every feature, else (V, d)."""
        g = self._reg_grad_at(x)
        if self._own is None:
            return g
        return (self._own if src is None else self._own[src]) * g

    def _x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.shape != (self.d,):
            raise ValueError(f"x must have shape ({self.d},), got {x.shape}")
        return x

    def _weighted_row_sums(self, coef: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, d): row i - lo = sum_{j in client i} coef_j a_j (coef: the rows of
        clients lo:hi, already divided by m_i). Each row is computed as in the call
        over all clients (the same products, summed in the same order)."""
        off, d = self._offsets, self.d
        r0 = int(off[lo])
        if self._sparse:
            A = self._A
            if self._nnz_keys is None:  # only the scipy path needs these 16 bytes per value
                rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr))
                owner = np.repeat(np.arange(self.n, dtype=np.int64), self.m_i)
                self._nnz_keys = (rows, owner[rows] * d + A.indices.astype(np.int64))
            rows, flat = self._nnz_keys
            p0, p1 = int(A.indptr[r0]), int(A.indptr[off[hi]])
            if lo == 0 and hi == self.n:
                return np.bincount(flat, weights=A.data * coef[rows],
                                   minlength=self.n * d).reshape(self.n, d)
            return np.bincount(flat[p0:p1] - lo * d,
                               weights=A.data[p0:p1] * coef[rows[p0:p1] - r0],
                               minlength=(hi - lo) * d).reshape(hi - lo, d)
        if self._q is not None:
            A, n, q = self._A, self.n, self._q
            G = np.empty((hi - lo, d))  # float64, as the call over all clients
            b1 = min(hi, n - 1)  # clients lo:b1 of size q: one batched matmul
            if b1 > lo:
                np.matmul(coef[:(b1 - lo) * q].reshape(b1 - lo, 1, q),
                          A[lo * q:b1 * q].reshape(b1 - lo, q, d), out=G[:b1 - lo, None, :])
            if hi == n:
                k = (n - 1) * q
                G[n - 1 - lo] = coef[k - r0:] @ A[k:]
            return G
        import scipy.sparse as sp

        W = self._W
        if W is None:
            m = self._A.shape[0]
            idx = np.int32 if m < 2**31 else np.int64
            W = self._W = sp.csr_matrix(
                (np.empty(m), np.arange(m, dtype=idx), self._offsets.astype(idx)),
                shape=(self.n, m))
        if lo == 0 and hi == self.n:
            W.data[:] = coef
            return np.asarray(W @ self._A)
        r1 = int(off[hi])
        Wc = sp.csr_matrix((coef.astype(np.float64), np.arange(r1 - r0), off[lo:hi + 1] - r0),
                           shape=(hi - lo, r1 - r0))
        return np.asarray(Wc @ self._A[r0:r1])

    def _slopes(self, x) -> np.ndarray:
        """Per-sample slopes at x of every row, from one product ``A @ x`` (kept for
        the last x, so that the client ranges of a round share it)."""
        last = self._z
        if last is None or not np.array_equal(last[0], x):
            with _errstate():
                self._z = None
                last = self._z = (self._seen(x), self._sample_slopes(self._A @ x, self._b))
        return last[1]

    # --- oracles ----------------------------------------------------------------------
    def client_losses(self, x, lo=0, hi=None) -> np.ndarray:
        """f_i(x) for the clients ``lo:hi`` (all by default).

        Each value has the bits of the call over all clients: it comes from the loss
        sums of the last fused pass at ``x`` where that pass covered the client (the
        pass of a traced round, or of a rank's block of clients), else from one
        product ``A @ x`` over all the data.

        Parameters
        ----------
        x : array_like, shape (d,)
        lo, hi : int, optional
            The clients, ``0 <= lo <= hi <= n``; ``hi=None`` means ``n``.

        Returns
        -------
        ndarray, shape (hi - lo,), float64

        Raises
        ------
        ValueError
            On x of the wrong shape or a bad range.
        """
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        with _errstate():
            ell = self._kept_losses(x, lo, hi)
            if ell is None:
                ell = np.add.reduceat(self._sample_losses(self._A @ x, self._b),
                                      self._starts)[lo:hi]
            reg = (_reg_value(self.lam, x) if self._own is None
                   else (self._own @ _reg_terms(self.lam, x))[lo:hi])
            out = np.divide(ell, self.m_i[lo:hi])
            return np.add(out, reg, out=out)  # the bits of ell / m_i + reg, one (n,) array

    def _kept_losses(self, x, lo, hi):
        """The fused pass's loss sums of clients ``lo:hi`` at ``x``, or None."""
        last = self._ell
        if last is not None and np.array_equal(last[0], x):
            return last[1][lo:hi]
        part = self._ell_part
        if part is not None and part[2][lo:hi].all() and np.array_equal(part[0], x):
            return part[1][lo:hi]
        return None

    def loss(self, x) -> float:
        """f(x) = (1/n) sum_i f_i(x)."""
        return float(np.mean(self.client_losses(x)))

    def grad(self, x) -> np.ndarray:
        """∇f(x), shape (d,), float64 (one product ``A^T (coef)``)."""
        x = self._x(x)
        with _errstate():
            s = self._sample_slopes(self._A @ x, self._b)
            g = self._A.T @ (s * self._inv_m_row) / self.n
            reg = _reg_grad(self.lam, x)
            if self._own is not None:
                reg = self._own.mean(axis=0) * reg
            return np.asarray(g).reshape(self.d) + reg

    def client_grads(self, x, lo=0, hi=None, out=None) -> np.ndarray:
        """The client gradients ∇f_i(x) of clients ``lo:hi`` (all by default) in one
        batched call.

        Row ``i - lo`` of the result is bit for bit row ``i`` of the call over all
        clients, whatever the range and the oracle (each client's gradient is computed
        alone, from the same products in the same order; the NumPy oracle keeps the
        product ``A @ x`` of the last x for the next range).

        Parameters
        ----------
        x : array_like, shape (d,)
        lo, hi : int, optional
            The clients, ``0 <= lo <= hi <= n``; ``hi=None`` means ``n``.
        out : ndarray, shape (hi - lo, d), dtype ``self.dtype``, C-contiguous, optional
            Written with the result and returned (nothing else is written).

        Returns
        -------
        ndarray, shape (hi - lo, d), dtype ``self.dtype``, C-contiguous
            ``out``, or a freshly allocated array.

        Raises
        ------
        ValueError
            On x of the wrong shape, a bad range, or an ``out`` of the wrong type,
            shape, dtype or layout.
        """
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        if out is not None:
            check_out(out, hi - lo, self.d, self.dtype)
        if self._fused is not None:
            seen = self._seen(x)  # x compared once: the caches below are keyed by it
            G, ell = self._fused(seen, self._reg_grad_at(x, seen) if self._own is None
                                 else None, lo, hi, out)
            if ell is not None:  # the losses of the same pass, for loss(x) next
                self._keep_losses(seen, ell, lo, hi)
            if self._own is not None:
                G += self._reg_rows(x, slice(lo, hi))
            return G
        off = self._offsets
        r0, r1 = int(off[lo]), int(off[hi])
        s = self._slopes(x)[r0:r1]
        with _errstate():
            G = self._weighted_row_sums(
                (s * self._inv_m_row[r0:r1]).astype(self.dtype, copy=False), lo, hi)
            G = G.astype(self.dtype, copy=False)
            G += self._reg_rows(x, slice(lo, hi))
        if out is None:
            return G
        out[...] = G
        return out

    def _keep_losses(self, seen, ell, lo, hi) -> None:
        """Keep the fused pass's loss sums of clients ``lo:hi`` at x (``seen``:
        ``self._seen(x)``): with those of the other ranges at the same x until every
        client is covered (a single call over all of them, or a chunked round), then as
        the losses at x. A client's loss sum at x has fixed bits, whichever range
        computes it."""
        part = self._ell_part
        if part is None or part[0] is not seen:
            # a new x: the sums at the last one are dropped with its copy
            self._ell = self._ell_part = None
            part = self._ell_part = [seen, np.empty(self.n), np.zeros(self.n, bool), 0]
        part[1][lo:hi] = ell
        covered = part[2][lo:hi]
        part[3] += (hi - lo) - int(np.count_nonzero(covered))  # the clients new to x
        covered[:] = True
        if part[3] == self.n:  # (not a pass over all n flags per range)
            self._ell, self._ell_part = (part[0], part[1]), None

    def draw_minibatches(self, batch, rng) -> Minibatches:
        """Draw the minibatches of one stochastic round for every client, as
        :meth:`client_stochastic_grads` does (the same numbers from ``rng``).

        Pass the result as the ``rng`` of :meth:`client_stochastic_grads` to compute
        the clients of the round range by range from one draw.

        Parameters
        ----------
        batch : int or array_like of int, shape (n,)
        rng : numpy.random.Generator

        Returns
        -------
        Minibatches
        """
        return self._draw(np.arange(self.n), _check_batch(batch, self.m_i), rng)

    def client_stochastic_grads(self, x, batch, rng, lo=0, hi=None,
                                out=None) -> np.ndarray:
        """Minibatch gradients of clients ``lo:hi`` (all by default), plus the
        regulariser's exact gradient.

        Client i draws ``min(batch_i, m_i)`` of its samples uniformly without
        replacement (one batched draw from ``rng`` for all n clients, no loop over
        clients) and returns the mean of their loss gradients plus ∇ of the
        regulariser. With ``batch >= m_i`` this is ∇f_i(x) up to summation order.

        The draw is always made for all n clients, so that a range takes the same
        numbers from ``rng`` as the call over all clients and its rows are bit for
        bit those rows of that call. To compute a round range by range, draw once
        with :meth:`draw_minibatches` and pass the result as ``rng`` to every range.

        Parameters
        ----------
        x : array_like, shape (d,)
        batch : int or array_like of int, shape (n,)
            Samples per client, >= 1 (capped at m_i).
        rng : numpy.random.Generator or Minibatches
            The generator to draw from, or a draw of :meth:`draw_minibatches` on this
            problem with this ``batch`` (used as it is).
        lo, hi, out
            As :meth:`client_grads`.

        Returns
        -------
        ndarray, shape (hi - lo, d), dtype ``self.dtype``, C-contiguous

        Raises
        ------
        ValueError
            On a batch size < 1 or of the wrong shape, a bad range or ``out``, or a
            Minibatches of another problem or batch.
        TypeError
            If rng is neither a numpy Generator nor a Minibatches.
        """
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        sizes = _check_batch(batch, self.m_i)
        return self._grads_of(x, self._drawn(rng, np.arange(self.n), sizes), lo, hi, out)

    def _drawn(self, rng, src, sizes) -> Minibatches:
        if isinstance(rng, Minibatches):
            if rng._owner is not self or not np.array_equal(rng.sizes, sizes):
                raise ValueError("rng: these Minibatches were drawn for another problem "
                                 "or another batch")
            return rng
        return self._draw(src, sizes, rng)

    def _draw(self, src, sizes, rng) -> Minibatches:
        """The minibatches of V virtual clients; virtual client v samples sizes[v]
        rows of client src[v] without replacement."""
        return draw_minibatches(self, src, sizes, rng)

    def _grads_of(self, x, mb: Minibatches, lo, hi, out) -> np.ndarray:
        """The gradients of virtual clients lo:hi of a draw."""
        return minibatch_grads(self, x, mb, lo, hi, out)

    def __repr__(self):
        return (f"{type(self).__name__}(name={self.name!r}, n={self.n}, d={self.d}, "
                f"lam={self.lam:g}, L={self.L:.6g}, "
                f"L_AM={float(np.mean(self.L_i)):.6g})")


class LogisticRegression(Problem):
    """Logistic regression with the non-convex regulariser (docs/maths.rst, "Problems").

    ``f_i(x) = (1/m_i) sum_j log(1 + exp(-b_ij a_ij^T x)) + lam sum_k x_k^2/(1 + x_k^2)``
    with labels b in {-1, +1};
    ``L_i = lambda_max(A_i^T A_i) / (4 m_i) + 2 lam``. The loss uses
    ``logaddexp(0, -margin)`` and the gradient ``expit``, so margins of any size
    (±1e4 and beyond) give finite, correctly limiting values without warnings.

    Parameters
    ----------
    data : ClientData
    lam : float, default 0.1
    oracle : {None, "numpy", "c"}
        See :class:`Problem`.
    regulariser : {"all", "owned"}, default "all"
        See :class:`Problem`.
    """

    _curvature = 0.25
    kind = "logreg"
    _c_kind = "logreg"

    def _sample_losses(self, z, b):
        return np.logaddexp(0.0, -(b * z))

    def _sample_slopes(self, z, b):
        return -b * _expit(-(b * z))


class LinearRegression(Problem):
    """Non-convex linear regression (docs/maths.rst, "Problems").

    ``f_i(x) = (1/m_i) ||A_i x - b_i||^2 + lam sum_k x_k^2/(1 + x_k^2)``;
    ``L_i = 2 lambda_max(A_i^T A_i) / m_i + 2 lam``.

    Parameters
    ----------
    data : ClientData
    lam : float, default 0.1
    oracle : {None, "numpy", "c"}
        See :class:`Problem`.
    regulariser : {"all", "owned"}, default "all"
        See :class:`Problem`.
    """

    _curvature = 2.0
    kind = "linreg"
    _c_kind = "linreg"

    def _sample_losses(self, z, b):
        r = z - b
        return r * r

    def _sample_slopes(self, z, b):
        return 2.0 * (z - b)



class ClonedProblem(Problem):
    """EF21 on the cloned problem (docs/maths.rst, "Methods").

    Client i of ``base`` is replaced by ``N_i`` clones; with ``N = sum N_i`` clone
    (i, j) holds ``f_ij = (N / (n N_i)) f_i``, so ``f = (1/N) sum_ij f_ij`` is the base
    objective. Clone constants are ``N L_i / (n N_i)``; with the default counts
    ``N_i = ceil(L_i / L_AM)`` (:func:`ef21fast.methods.theory.clone_counts`) each is
    ``<= 2 L_AM``.

    Parameters
    ----------
    base : Problem
    counts : array_like of int, shape (base.n,), optional
        N_i >= 1; default :func:`ef21fast.methods.theory.clone_counts` of ``base.L_i``.

    Attributes
    ----------
    n : int
        N, the number of clones.
    source : ndarray, shape (N,), int64
        The base client of each clone (clones of a client are consecutive).
    scale : ndarray, shape (N,), float64
        ``N / (n N_i)`` of each clone.
    L : float
        ``base.L`` (the objective is the same).
    L_i : ndarray, shape (N,)
        ``N L_i / (n N_i)`` per clone.
    m_i : ndarray, shape (N,), int64
        Samples of each clone's base client.
    """

    kind = "cloned"

    def __init__(self, base: Problem, counts=None):
        if not isinstance(base, Problem) or isinstance(base, ClonedProblem):
            raise TypeError("base must be a (non-cloned) Problem")
        if counts is None:
            from ef21fast.methods.theory import clone_counts

            counts = clone_counts(base.L_i)
        counts = np.asarray(counts)
        if counts.shape != (base.n,) or counts.dtype.kind not in "iu":
            raise ValueError(f"counts must be {base.n} integers, got {counts.dtype} "
                             f"{counts.shape}")
        if np.any(counts < 1):
            raise ValueError("counts must be >= 1")
        counts = counts.astype(np.int64)
        self.base = base
        self.counts = counts
        self.data = base.data
        self.lam = base.lam
        self.regulariser = base.regulariser
        self.dtype = base.dtype
        self.d = base.d
        N = int(counts.sum())
        self.n = N
        self.source = np.repeat(np.arange(base.n, dtype=np.int64), counts)
        per_client = N / (base.n * counts.astype(np.float64))
        self.scale = per_client[self.source]
        self.L = base.L
        self.L_i = (base.L_i * per_client)[self.source]
        self.m_i = base.m_i[self.source]
        self.name = f"{base.name}-cloned"

    def _x(self, x):
        return self.base._x(x)

    def oracle_point(self, x) -> np.ndarray:
        """The base's :meth:`Problem.oracle_point`, which the clones' oracles pass on."""
        return self.base.oracle_point(x)

    def client_losses(self, x, lo=0, hi=None) -> np.ndarray:
        """f_ij(x) for clones ``lo:hi`` (all by default), shape (hi - lo,)."""
        lo, hi = check_range(lo, hi, self.n)
        return self.base.client_losses(x)[self.source[lo:hi]] * self.scale[lo:hi]

    def loss(self, x) -> float:
        """f(x), the base objective."""
        return self.base.loss(x)

    def grad(self, x) -> np.ndarray:
        """∇f(x), the base gradient, shape (d,)."""
        return self.base.grad(x)

    def client_grads(self, x, lo=0, hi=None, out=None) -> np.ndarray:
        """∇f_ij(x) of clones ``lo:hi`` (all by default), shape (hi - lo, d): the
        base's rows of their clients, scaled, repeated. ``lo``, ``hi``, ``out`` and
        the bits of a range as :meth:`Problem.client_grads`."""
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        if out is not None:
            check_out(out, hi - lo, self.d, self.dtype)
        src = self.source[lo:hi]
        b0, b1 = (int(src[0]), int(src[-1]) + 1) if src.size else (0, 0)
        G = self.base.client_grads(x, b0, b1)
        G *= (self.scale[np.cumsum(self.counts) - 1])[b0:b1, None]
        if out is None:
            return np.take(G, src - b0, axis=0)
        return np.take(G, src - b0, axis=0, out=out)

    def draw_minibatches(self, batch, rng) -> Minibatches:
        """The minibatches of every clone for one round (:meth:`Problem.draw_minibatches`)."""
        return self.base._draw(self.source, _check_batch(batch, self.m_i), rng)

    def client_stochastic_grads(self, x, batch, rng, lo=0, hi=None,
                                out=None) -> np.ndarray:
        """Minibatch gradients of clones ``lo:hi`` (each clone draws its own minibatch
        of its base client's samples, for every clone at once), scaled by
        N/(n N_i); shape (hi - lo, d). ``rng``: a Generator or a draw of
        :meth:`draw_minibatches`; the rest as :meth:`Problem.client_stochastic_grads`."""
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        sizes = _check_batch(batch, self.m_i)
        G = self.base._grads_of(x, self.base._drawn(rng, self.source, sizes), lo, hi, out)
        G *= self.scale[lo:hi, None]
        return G

    def __repr__(self):
        return (f"ClonedProblem(base={self.base!r}, N={self.n}, "
                f"L_AM={float(np.mean(self.L_i)):.6g})")
