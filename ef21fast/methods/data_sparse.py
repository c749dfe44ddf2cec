"""Sparse data for the rare-features experiments: who owns which feature, and a
generator whose feature ownership is prescribed.

* :func:`ownership` gives the (n, d) pattern of the features each client owns (column
  of ``A_i`` with a non-zero entry), from which the rare-features statistics ``c`` and
  ``r`` follow (:func:`ef21fast.methods.theory.rare_features`).
* :func:`make_rare_features` builds a seeded linear-regression split in which every
  feature is owned by exactly ``ceil(n * c_frac)`` clients.
* :func:`make_sparse_classification` builds a seeded sparse binary-classification split
  of any shape and density in CSR form (text-like: heavy-tailed feature frequencies,
  unit rows), and :func:`make_news20_like` one of the shape of LIBSVM's news20.binary
  (19996 x 1355191, 0.03% non-zeros), for runs at scale.

The rules, and which of them are this package's choices, are in docs/maths.rst,
"Rare features".
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ef21fast.methods.data import ClientData
from ef21fast.methods.theory import _check_positive

__all__ = ["rows_by_length", "ownership", "owners_per_feature", "make_rare_features",
           "make_sparse_classification", "make_news20_like", "NEWS20_SHAPE"]

#: (rows, features, density) of LIBSVM's news20.binary.
NEWS20_SHAPE = (19996, 1355191, 0.00034)


def ownership(data: ClientData):
    """The features each client owns: ``own[i, j]`` is True when column j of ``A_i``
    has a non-zero entry (explicitly stored zeros of a sparse matrix do not count).

    Parameters
    ----------
    data : ClientData
        The split.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, d), bool

    Raises
    ------
    TypeError
        If ``data`` is not a ClientData.
    """
    import scipy.sparse as sp

    if not isinstance(data, ClientData):
        raise TypeError(f"data must be a ClientData, got {type(data).__name__}")
    n, d = data.n, data.d
    A = sp.csr_matrix(data.A) if data.is_sparse else sp.csr_matrix(np.asarray(data.A) != 0)
    rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr))
    keep = A.data != 0
    client = np.searchsorted(data.offsets, rows[keep], side="right") - 1
    own = sp.csr_matrix((np.ones(client.size, dtype=bool),
                         (client, A.indices[keep].astype(np.int64))), shape=(n, d))
    own.sum_duplicates()
    own.data[:] = True
    return own


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def owners_per_feature(n: int, c_frac: float) -> int:
    """``ceil(n * c_frac)``, the owners of each feature of :func:`make_rare_features`
    (a product within 1e-9 of an integer counts as that integer, so that ``100 * 0.07``
    gives 7).

    Raises
    ------
    ValueError
        If n is not a positive integer or ``c_frac`` is not in (0, 1].
    """
    n = _positive_int("n", n)
    try:
        f = float(c_frac)
    except (TypeError, ValueError):
        raise ValueError(f"c_frac must be a number in (0, 1], got {c_frac!r}") from None
    if not 0.0 < f <= 1.0:
        raise ValueError(f"c_frac must be in (0, 1], got {c_frac!r}")
    t = n * f
    return max(1, min(n, round(t) if abs(t - round(t)) <= 1e-9 else math.ceil(t)))


def make_rare_features(n=100, d=500, m_per_client=12, c_frac=0.05, *, mu=1.0, L=20.0,
                       noise=2.0, x_star=0.5, seed=0, name=None):
    """A seeded linear-regression split with prescribed feature ownership.

    * Every feature is owned by exactly ``c = ceil(n c_frac)`` clients
      (:func:`owners_per_feature`): feature by feature, the ``c`` clients that own
      fewest features so far, ties broken at random, so that every client owns
      ``floor(d c / n)`` or ``ceil(d c / n)`` features. Then the statistic ``c`` of
      the split (:func:`ef21fast.methods.theory.rare_features`) is exactly this ``c``.
    * Client i's rows are zero outside its features; on them they are
      ``U_i diag(s_i) V_i^T`` with random orthonormal ``U_i`` (m x k) and ``V_i``
      (r_i x k), ``k = min(m, r_i)``, and singular values chosen so that the
      eigenvalues ``2 s^2 / m`` of the client's loss Hessian (linear regression, 1/m
      normalisation) are evenly spaced from ``mu`` to ``0.9 L``, and to ``L`` for the
      last client (the steeper one).
    * Targets ``b_i = A_i x* + u`` with ``x* = x_star * 1`` and ``u`` uniform in
      ``[-noise, noise]``.

    This generator is the package's own rendering of the rare-features experiments'
    description (docs/maths.rst, "Rare features"); it is meant for
    :class:`ef21fast.methods.problems.LinearRegression`, with
    ``regulariser="owned"`` to keep the clients' gradients sparse.

    Parameters
    ----------
    n, d, m_per_client : int
        Clients, features and rows per client, all >= 1, with ``d c >= n`` so that
        every client owns a feature.
    c_frac : float
        Fraction of the clients that own each feature, in (0, 1].
    mu, L : float
        Smallest and largest prescribed Hessian eigenvalue, ``0 < mu <= 0.9 L``.
    noise : float
        Half-width of the uniform noise of the targets, >= 0.
    x_star : float
        Every coordinate of the planted solution.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    name : str, optional

    Returns
    -------
    ClientData
        Dense A of shape (n * m_per_client, d), float64.

    Raises
    ------
    ValueError
        On a non-positive size, ``c_frac`` outside (0, 1], ``d c < n``, ``mu`` or
        ``L`` not positive or ``mu > 0.9 L``, a negative or non-finite ``noise``, a
        non-finite ``x_star``.
    """
    n = _positive_int("n", n)
    d = _positive_int("d", d)
    m = _positive_int("m_per_client", m_per_client)
    c = owners_per_feature(n, c_frac)
    mu = _check_positive("mu", mu)
    L = _check_positive("L", L)
    if mu > 0.9 * L:
        raise ValueError(f"mu must be at most 0.9 L = {0.9 * L:g}, got mu = {mu:g}")
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}")
    x_star = float(x_star)
    if not math.isfinite(x_star):
        raise ValueError(f"x_star must be finite, got {x_star!r}")
    if d * c < n:
        raise ValueError(f"d * ceil(n * c_frac) = {d} * {c} < n = {n}: some client would "
                         f"own no feature; raise d or c_frac")

    rng = np.random.default_rng(seed)
    own = np.zeros((n, d), dtype=bool)
    load = np.zeros(n)
    for j in range(d):
        pick = np.argpartition(load + 0.5 * rng.random(n), c - 1)[:c]
        own[pick, j] = True
        load[pick] += 1.0
    A = np.zeros((n, m, d))
    for i in range(n):
        cols = np.flatnonzero(own[i])
        k = min(m, cols.size)
        top = L if i == n - 1 else 0.9 * L
        eig = np.linspace(mu, top, k) if k > 1 else np.array([top])
        U = np.linalg.qr(rng.standard_normal((m, k)))[0]
        V = np.linalg.qr(rng.standard_normal((cols.size, k)))[0]
        A[i][:, cols] = (U * np.sqrt(m * eig / 2.0)) @ V.T
    A = A.reshape(n * m, d)
    b = A @ np.full(d, x_star) + rng.uniform(-noise, noise, n * m)
    if name is None:
        name = f"rare-features-n{n}-d{d}-c{c}"
    off = np.arange(n + 1, dtype=np.int64) * m
    return ClientData(np.ascontiguousarray(A), b, off, name)


def make_sparse_classification(m, d, density, n, *, seed=0, skew=2.0, binary=False,
                               name=None):
    """A seeded sparse binary-classification split, in canonical CSR form.

    * Row j has about ``density * d`` stored values (at least 1; the count is drawn
      from a geometric law of that mean), at columns drawn as ``floor(d u^skew)`` with
      ``u`` uniform on [0, 1), so that low column indices are frequent and most are
      rare, as the words of a text corpus (``skew = 1``: uniform columns); a column
      drawn twice in a row is stored once.
    * Values: 1 (``binary``), or positive and scaled to unit rows (tf-idf-like).
    * Labels ``sign(a_j . x* + 0.1 u_j)`` (+1 at 0) for a planted sparse ``x*`` with
      normal entries on 1% of the features and ``u_j`` standard normal.
    * Clients: ``n`` contiguous blocks of ``m // n`` rows, the last one the rest
      (:func:`ef21fast.methods.data.split_clients`); inside each client the rows are
      ordered by their number of stored values, the order the fused CSR oracle reads
      them in (so it needs no reordered copy of the data).

    The arrays are built in one vectorised pass (no loop over rows): about 40 bytes
    per stored value at the peak of the build, 12 (float64 values, int32 indices) in
    the result.

    Parameters
    ----------
    m, d : int
        Rows and features, >= 1 (``d < 2**31``).
    density : float
        Expected fraction of stored values per row, in (0, 1].
    n : int
        Clients, ``1 <= n <= m``.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    skew : float, default 2.0
        Exponent of the column law, >= 1.
    binary : bool, default False
    name : str, optional

    Returns
    -------
    ClientData
        A of type ``scipy.sparse.csr_matrix`` (float64, int32 indices, sorted, without
        repeated columns), b of ±1.

    Raises
    ------
    ValueError
        On a size that is not a positive integer, ``n > m``, ``d >= 2**31``, a density
        outside (0, 1] or ``skew < 1``.
    """
    import scipy.sparse as sp

    from ef21fast.methods.data import split_clients

    m, d, n = _positive_int("m", m), _positive_int("d", d), _positive_int("n", n)
    if n > m:
        raise ValueError(f"n must be at most m = {m}, got {n}")
    if d >= 2**31:
        raise ValueError(f"d must be below 2**31, got {d}")
    density, skew = float(density), float(skew)
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    if not (math.isfinite(skew) and skew >= 1.0):
        raise ValueError(f"skew must be >= 1, got {skew!r}")
    rng = np.random.default_rng(seed)
    mean = max(density * d, 1.0)
    lengths = np.minimum(rng.geometric(min(1.0, 1.0 / mean), size=m), d)
    keys = np.repeat(np.arange(m, dtype=np.int64) * d, lengths)
    keys += np.floor(d * rng.random(keys.size) ** skew).astype(np.int64)
    keys.sort()  # by row, then column
    if keys.size:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # a repeat once
    rows = keys // d
    indices = (keys - rows * d).astype(np.int32)
    del keys
    counts = np.bincount(rows, minlength=m)
    del rows
    if binary:
        data = np.ones(indices.size)
    else:
        data = rng.random(indices.size) + 0.1
        norms = np.sqrt(np.add.reduceat(data * data, np.concatenate(([0], np.cumsum(
            counts)[:-1])))) if indices.size else np.ones(m)
        data /= np.repeat(norms, counts)
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    if indptr[-1] < 2**31:
        indptr = indptr.astype(np.int32)
    A = sp.csr_matrix((data, indices, indptr), shape=(m, d))
    A.has_sorted_indices = True
    x_star = np.zeros(d)
    hot = rng.choice(d, size=max(1, d // 100), replace=False)
    x_star[hot] = rng.standard_normal(hot.size)
    b = np.where(A @ x_star + 0.1 * rng.standard_normal(m) >= 0, 1.0, -1.0)
    # Rows by length inside each client (stably), for the fused oracle.
    q = m // n
    owner = np.minimum(np.arange(m) // q, n - 1)
    order = np.lexsort((counts, owner))
    if np.any(order != np.arange(m)):
        A, b = A[order], b[order]
        A.has_sorted_indices = True
    if name is None:
        name = f"sparse-m{m}-d{d}-density{density:g}"
    return split_clients(A, b, n, name=name)


def rows_by_length(data: ClientData, overwrite: bool = False) -> ClientData:
    """The same clients with the rows of each client stably ordered by their number of
    stored values: the order the fused CSR oracle reads them in
    (:func:`ef21fast.methods.oracle.bind`), so that a problem on the result shares its
    arrays where it would otherwise run on a reordered copy.

    Each client keeps its samples, so the objective and every ``f_i`` are the same,
    and the fused oracle's gradients and losses have the same bits as on ``data``.
    What reads the rows in stored order sees the new order: ``L`` and the ``L_i`` (sums
    over the rows: equal up to rounding, and so the theory step sizes), the NumPy
    oracle's sums (rounding only), the SGD constants (rounding only), and the rows a
    minibatch draw picks from the same random numbers. A run at a given step size with
    the fused oracle (deterministic methods) is the same, bit for bit.

    Parameters
    ----------
    data : ClientData
        CSR data (dense data are returned as they are, as is data already in that
        order).
    overwrite : bool, default False
        Reorder ``data.A`` (its ``data``, ``indices`` and ``indptr``) and ``data.b`` in
        place, a block of clients at a time, instead of building reordered copies: the
        peak memory stays near the data's size (the copies double it for a moment). The
        caller must own those arrays: anything else that holds them sees the new order.

    Returns
    -------
    ClientData
        A new one on reordered copies of A and b (on A and b themselves with
        ``overwrite``; the same offsets and name), or ``data`` itself when nothing
        moves.

    Raises
    ------
    ValueError
        With ``overwrite``, if an array of A or b is read-only.
    """
    A = data.A
    if not hasattr(A, "indptr"):
        return data
    lengths = np.diff(A.indptr)
    owner = np.repeat(np.arange(data.n), data.m_i)
    order = np.lexsort((lengths, owner))
    del owner
    if np.all(order == np.arange(order.size)):
        return data
    if not overwrite:
        B = A[order]
        B.has_sorted_indices = A.has_sorted_indices
        return ClientData(B, np.ascontiguousarray(data.b[order]), data.offsets,
                          data.name)
    b = data.b
    for name, arr in (("A.data", A.data), ("A.indices", A.indices),
                      ("A.indptr", A.indptr), ("b", b)):
        if not arr.flags.writeable:
            raise ValueError(f"overwrite=True needs writable arrays, {name} is read-only")
    _reorder_rows_in_place(A, b, order, lengths, data.offsets)
    return ClientData(A, b, data.offsets, data.name)


# Stored values moved per block of clients by rows_by_length(overwrite=True).
_REORDER_BLOCK = 1 << 16


def _reorder_rows_in_place(A, b, order, lengths, offsets) -> None:
    """Rows ``order`` of CSR ``A`` (and of ``b``) in place, where ``order`` permutes
    rows only inside each client (``offsets``) and ``lengths`` is ``diff(A.indptr)``
    before the move: clients own contiguous rows and values, so each block of clients
    is gathered from its own range and written back over it."""
    indptr = A.indptr
    starts = indptr[:-1][order].astype(np.int64)
    new_len = lengths[order].astype(np.int64)
    first = int(indptr[0])
    vals_end = np.asarray(indptr[offsets[1:]], dtype=np.int64) - first
    c0, n = 0, offsets.size - 1
    while c0 < n:
        # clients c0..c1-1: at least one, at most about _REORDER_BLOCK values
        c1 = max(c0 + 1, int(np.searchsorted(
            vals_end, (vals_end[c0 - 1] if c0 else 0) + _REORDER_BLOCK, side="right")))
        c1 = min(c1, n)
        r0, r1 = int(offsets[c0]), int(offsets[c1])
        if r1 > r0:
            ln = new_len[r0:r1]
            tot = int(ln.sum())
            # value positions of the new rows, in order: each row's start, then +0, +1...
            pos = np.repeat(starts[r0:r1] - np.cumsum(ln) + ln, ln) + np.arange(tot)
            v0 = int(indptr[r0])
            A.data[v0:v0 + tot] = A.data[pos]
            A.indices[v0:v0 + tot] = A.indices[pos]
            b[r0:r1] = b[order[r0:r1]]
        c0 = c1
    np.cumsum(new_len, out=new_len)
    indptr[1:] = new_len + first


def make_news20_like(n=100, *, seed=0, name="news20-like"):
    """A synthetic split of the shape of LIBSVM's news20.binary, :data:`NEWS20_SHAPE`
    (19996 rows, 1355191 features, 0.034% stored values: about 9.2 million, 110 MB
    as CSR): :func:`make_sparse_classification` with tf-idf-like unit rows.

    Parameters
    ----------
    n : int, default 100
        Clients.
    seed : int
    name : str

    Returns
    -------
    ClientData
    """
    m, d, density = NEWS20_SHAPE
    return make_sparse_classification(m, d, density, n, seed=seed, name=name)
