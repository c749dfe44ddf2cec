"""Sparse data for the rare-features experiments: who owns which feature, and a
generator whose feature ownership is prescribed.

* :func:`ownership` gives the (n, d) pattern of the features each client owns (column
  of ``A_i`` with a non-zero entry), from which the rare-features statistics ``c`` and
  ``r`` follow (:func:`ef21fast.methods.theory.rare_features`).
* :func:`make_rare_features` builds a seeded linear-regression split in which every
  feature is owned by exactly ``ceil(n * c_frac)`` clients.

The rules, and which of them are this package's choices, are in docs/maths.rst,
"Rare features".
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ef21fast.methods.data import ClientData
from ef21fast.methods.theory import _check_positive

__all__ = ["ownership", "owners_per_feature", "make_rare_features"]


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
