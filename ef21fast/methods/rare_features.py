"""Step sizes of EF21 when features are rare.

Formulas and sources: docs/maths.rst, "Rare features" (Richtárik, Gasanov,
Burlachenko, "Error Feedback Shines when Features are Rare", arXiv 2305.15264, its main
theorem, numbered Theorem 2 by a published review and not verified against the paper's
text; the step sizes are those of the authors' experiment code)::

    gamma    = 1 / (L + L_plus sqrt(c / n) xi(alpha)),
    L_plus   = sqrt(lambda_max((1/n) sum_i M_i^2)),
    gamma_t  = 1 / (L + min(L_QM, sqrt(q_t) max_i L_i) sqrt(q_t) xi(alpha)),

with ``M_i`` the Hessian of f_i for a quadratic problem and, in general, the bound
matrix ``c_loss A_i^T A_i / m_i + 2 lam D_i`` of :func:`l_plus`. The Reloaded paper
(arXiv 2402.10774) improves this bound further; that improvement is not implemented,
because its theorem could not be read.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ef21fast.methods import theory
from ef21fast.methods.data_sparse import ownership

__all__ = ["l_plus", "gamma_rare", "gamma_rare_adaptive", "rare_step"]

# Up to this dimension the matrix (1/n) sum_i M_i^2 is formed (d products) and
# eigvalsh'ed; above it, ARPACK runs on the products.
_DENSE_MAX = 256


def l_plus(problem) -> float:
    """``L_plus = sqrt(lambda_max((1/n) sum_i M_i^2))`` of a logistic or linear problem.

    ``M_i = c A_i^T A_i / m_i + 2 lam D_i`` with ``c = problem.curvature`` (2 linear,
    1/4 logistic) and ``D_i`` the identity, or with ``regulariser="owned"`` the 0/1
    diagonal of the features client i owns. For linear regression with ``lam = 0``,
    ``M_i`` is the Hessian of ``f_i``; otherwise it is the bound matrix of the
    problem's ``L_i`` (docs/maths.rst, "Rare features": a choice, not a theorem, for
    non-quadratic problems). Computed from the products ``M_i (M_i v)``, never from a
    d x d matrix per client.

    Parameters
    ----------
    problem : ef21fast.methods.problems.LogisticRegression or LinearRegression

    Returns
    -------
    float, >= 0

    Raises
    ------
    TypeError
        If ``problem`` has no data split (a cloned problem, or another object).
    """
    import scipy.sparse as sp

    from ef21fast.methods.data import ClientData

    data = getattr(problem, "data", None)
    if not isinstance(data, ClientData) or getattr(problem, "kind", "") == "cloned" \
            or not hasattr(problem, "curvature"):
        raise TypeError(f"problem must be a LogisticRegression or LinearRegression, "
                        f"got {type(problem).__name__}")
    n, d = data.n, data.d
    if d == 0:
        return 0.0
    A = sp.csr_matrix(data.A) if data.is_sparse else np.asarray(data.A)
    m_i = data.m_i.astype(np.float64)
    owner = np.repeat(np.arange(n), data.m_i)
    coef = float(problem.curvature) / m_i[owner]
    reg = 2.0 * float(problem.lam)
    D = (ownership(data).toarray().astype(np.float64)
         if getattr(problem, "regulariser", "all") == "owned" else None)
    W = sp.csr_matrix((np.empty(owner.size), np.arange(owner.size),
                       data.offsets), shape=(n, owner.size))

    def per_client(V):
        """Row i: M_i applied to row i of V (n, d); V may be one row for all."""
        z = A @ V if V.ndim == 1 else _row_dots(A, V[owner])
        W.data[:] = coef * z
        out = W @ A
        out = out.toarray() if sp.issparse(out) else np.asarray(out)
        if reg:
            out = out + reg * (V if D is None else D * V)
        return out

    def matvec(v):
        v = np.asarray(v, dtype=np.float64).reshape(d)
        return per_client(per_client(v)).sum(axis=0) / n

    if d <= _DENSE_MAX:
        Mbar = np.column_stack([matvec(e) for e in np.eye(d)])
        top = float(np.linalg.eigvalsh(0.5 * (Mbar + Mbar.T))[-1])
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
        top = float(eigsh(op, k=1, which="LA", v0=np.ones(d),
                          return_eigenvectors=False)[0])
    return math.sqrt(max(top, 0.0))


def _row_dots(A, R) -> np.ndarray:
    """``sum_k A[j, k] R[j, k]`` for every row j (A dense or CSR, R dense)."""
    import scipy.sparse as sp

    if sp.issparse(A):
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        return np.bincount(rows, weights=A.data * R[rows, A.indices],
                           minlength=A.shape[0])
    return np.einsum("jk,jk->j", A, R)


def _check_c(c, n) -> tuple[int, int]:
    for name, v in (("n", n), ("c", c)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if not 1 <= n:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 1 <= c <= n:
        raise ValueError(f"c must satisfy 1 <= c <= n = {n}, got {c}")
    return int(c), int(n)


def gamma_rare(L, L_plus, c, n, alpha) -> float:
    """Rare-features step size ``1 / (L + L_plus sqrt(c / n) xi(alpha))``.

    Source: docs/maths.rst, "Rare features" (arXiv 2305.15264, its main theorem,
    Theorem 2 by a published review, number not verified; the step of the authors'
    code). It is at least ``gamma_qm`` whenever
    ``L_plus <= L_QM`` (always true of :func:`l_plus`), larger when ``c < n``.

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_plus : float
        :func:`l_plus`, >= 0.
    c, n : int
        Largest number of clients owning one feature, and clients: ``1 <= c <= n``.
    alpha : float
        Contraction parameter in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid L, L_plus, c, n or alpha.
    """
    L = theory._check_positive("L", L)
    try:
        lp = float(L_plus)
    except (TypeError, ValueError):
        raise ValueError(f"L_plus must be a finite number >= 0, got {L_plus!r}") from None
    if not (math.isfinite(lp) and lp >= 0):
        raise ValueError(f"L_plus must be a finite number >= 0, got {L_plus!r}")
    c, n = _check_c(c, n)
    return 1.0 / (L + lp * math.sqrt(c / n) * theory.xi(alpha))


def gamma_rare_adaptive(L, L_i, alpha, q) -> float:
    """Adaptive rare-features step of one round:
    ``1 / (L + min(L_QM, sqrt(q) max_i L_i) sqrt(q) xi(alpha))``.

    ``q = ||mean_i e_i||^2 / mean_i ||e_i||^2`` with ``e_i = g_i - grad f_i`` of the
    previous round (1 before the first). Source: docs/maths.rst, "Rare features" (the
    authors' experiment code; not a printed theorem). At ``q = 1`` this is
    :func:`ef21fast.methods.theory.gamma_qm`.

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_i : array_like, shape (n,)
        Positive smoothness constants of the clients.
    alpha : float
        Contraction parameter in (0, 1].
    q : float
        In [0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid L, L_i, alpha, or q outside [0, 1].
    """
    L = theory._check_positive("L", L)
    Li = theory._check_Li(L_i)
    try:
        qv = float(q)
    except (TypeError, ValueError):
        raise ValueError(f"q must be a number in [0, 1], got {q!r}") from None
    if not 0.0 <= qv <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    root = math.sqrt(qv)
    return 1.0 / (L + min(theory.l_qm(Li), root * float(Li.max())) * root
                  * theory.xi(alpha))


def rare_step(problem, k) -> tuple[float, dict]:
    """The rare-features step of a problem for TopK with ``k``, and its ingredients.

    Parameters
    ----------
    problem : ef21fast.methods.problems.LogisticRegression or LinearRegression
    k : int
        TopK parameter, ``1 <= k <= d``.

    Returns
    -------
    gamma : float
        :func:`gamma_rare` with ``c`` of the split, :func:`l_plus`, ``alpha = k/d``.
    facts : dict
        ``c``, ``r``, ``n``, ``L_plus``, ``L_QM``, ``alpha``.

    Raises
    ------
    TypeError, ValueError
        As :func:`l_plus` and :func:`gamma_rare`.
    """
    lp = l_plus(problem)
    c, r = theory.rare_features(problem.data)
    alpha = theory.topk_alpha(k, problem.d)
    g = gamma_rare(problem.L, lp, c, problem.n, alpha)
    return g, {"c": c, "r": r, "n": int(problem.n), "L_plus": lp,
               "L_QM": theory.l_qm(problem.L_i), "alpha": alpha}
