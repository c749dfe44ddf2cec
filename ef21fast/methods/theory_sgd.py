"""Theory of EF21-SGD and EF21-W-SGD: the minibatch estimators' constants, the step size
and the neighbourhood.

The formulas and their derivations are in ``docs/maths.rst``, "Stochastic gradients".
In short: client i averages the loss gradients of ``tau_i`` of its ``m_i`` samples drawn
uniformly without replacement and adds the regulariser's exact gradient. This estimator
satisfies the assumption of "EF21 with Bells & Whistles" (arXiv 2110.03294, Assumption 2)

    E ||g_i(x)||^2 <= 2 A_i (f_i(x) - f_i^inf) + B_i ||grad f_i(x)||^2 + C_i

with the constants of :func:`minibatch_abc` (applied to the whole minibatch mean, as
one stochastic gradient; ``B_i = 1``). The step size and the neighbourhood
(:func:`gamma_sgd`, :func:`sgd_neighbourhood`, both in :func:`sgd_step`) are
**derived** for the case ``A_i = 0`` (a variance bounded uniformly in x, which the
logistic problem has, and every problem with full batches): the theorem of Bells &
Whistles for EF21-SGD, and Reloaded's for EF21-W-SGD, could not be read, so their
constants are not the ones used here (docs/maths.rst says what was and was not read,
and why no step is given for ``A_i > 0``). :func:`sgd_step` is what the theory rules of
``ef21-sgd`` and ``ef21-w-sgd`` use by default.

With ``rho > 0`` a free parameter and ``alpha_rho = 1 - (1 + rho)(1 - alpha)``::

    gamma = 1 / (L + L_mean xi(alpha_rho)),
    E ||grad f(x_hat)||^2 <= 2 (f(x_0) - f^inf) / (gamma T)
                             + (beta_2 / theta_rho) * sigma^2,
    theta_rho = 1 - sqrt(1 - alpha_rho),   beta_2 = (1 + rho)(1 - alpha) + 1 + 1/rho,

where ``L_mean`` is ``L_QM`` (EF21-SGD) or ``L_AM`` (EF21-W-SGD, and EF21-SGD at the same
step, whose iterates are the same) and ``sigma^2`` the mean of the clients' variance
bounds ``C_i`` (weighted by ``L_AM / L_i`` for the weighted form). The default
``rho = alpha / (2 (1 - alpha))`` gives ``alpha_rho = alpha / 2``. With every ``C_i``
zero the noise term vanishes and :func:`sgd_step` gives EF21's step
``1 / (L + L_mean xi(alpha))`` (the limit ``rho -> 0``).
"""

from __future__ import annotations

import math

import numpy as np

from ef21fast.methods import theory

__all__ = ["sampling_factor", "minibatch_abc", "default_rho", "sgd_alpha", "gamma_sgd",
           "sgd_neighbourhood", "sgd_step"]


def sampling_factor(m_i, batch) -> np.ndarray:
    """``kappa_i = (m_i - tau_i) / (tau_i (m_i - 1))`` (0 when ``tau_i = m_i``).

    The variance of the mean of ``tau_i`` of ``m_i`` numbers drawn uniformly without
    replacement is ``kappa_i`` times their population variance (docs/maths.rst,
    "Stochastic gradients").

    Parameters
    ----------
    m_i : array_like of int, shape (n,)
        Samples per client, each >= 1.
    batch : int or array_like of int, shape (n,)
        Minibatch sizes ``tau_i``, each >= 1 (capped at ``m_i``, as the methods do).

    Returns
    -------
    ndarray, shape (n,), float64

    Raises
    ------
    ValueError
        If ``m_i`` is not a non-empty 1-D array of positive integers, or ``batch`` is
        not a positive integer or an array of n of them.
    """
    m = np.asarray(m_i)
    if m.ndim != 1 or m.size == 0 or m.dtype.kind not in "iu" or np.any(m < 1):
        raise ValueError(f"m_i must be a non-empty 1-D array of positive integers, "
                         f"got {m_i!r}")
    b = np.asarray(batch)
    if b.dtype.kind not in "iu" or b.ndim > 1 or (b.ndim == 1 and b.shape != m.shape) \
            or np.any(b < 1):
        raise ValueError(f"batch must be a positive integer or {m.size} positive "
                         f"integers, got {batch!r}")
    m = m.astype(np.float64)
    tau = np.minimum(np.broadcast_to(b, m.shape).astype(np.float64), m)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (m - tau) / (tau * (m - 1.0))
    return np.where(tau >= m, 0.0, kappa)


def _row_sq_norms(A) -> np.ndarray:
    import scipy.sparse as sp

    if sp.issparse(A):
        A = sp.csr_matrix(A)
        return np.asarray(A.multiply(A).sum(axis=1)).reshape(-1)
    return np.einsum("ij,ij->i", A, A)


def minibatch_abc(problem, batch):
    """The constants ``(A_i, B_i, C_i)`` of the problem's minibatch estimator.

    Client i's estimator is the mean of ``tau_i`` sample loss gradients drawn without
    replacement plus the regulariser's exact gradient
    (:meth:`ef21fast.methods.problems.Problem.client_stochastic_grads`). With
    ``kappa_i`` of :func:`sampling_factor` (docs/maths.rst, "Stochastic gradients",
    derived there):

    * logistic regression: ``A_i = 0``, ``B_i = 1``,
      ``C_i = kappa_i * (1/m_i) sum_j ||a_ij||^2`` (a sample's loss gradient is
      ``s a_ij`` with ``|s| <= 1``, so the bound holds for every x);
    * linear regression: ``A_i = 2 kappa_i max_j ||a_ij||^2``, ``B_i = 1``,
      ``C_i = 2 A_i f_i(0)``; the assumption needs ``2 A_i f_i^inf``, which is not
      computable, and ``f_i^inf <= f_i(0) = ||b_i||^2 / m_i`` is used in its place.

    Parameters
    ----------
    problem : ef21fast.methods.problems.LogisticRegression or LinearRegression
        Not a cloned problem.
    batch : int or array_like of int, shape (n,)
        Minibatch sizes, each >= 1 (capped at ``m_i``).

    Returns
    -------
    A, B, C : ndarray, shape (n,), float64

    Raises
    ------
    TypeError
        If ``problem`` is not a logistic or linear regression problem.
    ValueError
        On a bad ``batch``.
    """
    from ef21fast.methods.problems import LinearRegression, LogisticRegression

    if not isinstance(problem, (LogisticRegression, LinearRegression)):
        raise TypeError(f"problem must be a LogisticRegression or LinearRegression, "
                        f"got {type(problem).__name__}")
    data = problem.data
    kappa = sampling_factor(data.m_i, batch)
    sq = _row_sq_norms(data.A)
    starts = data.offsets[:-1]
    n = data.n
    B = np.ones(n)
    if isinstance(problem, LogisticRegression):
        C = kappa * np.add.reduceat(sq, starts) / data.m_i
        return np.zeros(n), B, C
    A = 2.0 * kappa * np.maximum.reduceat(sq, starts)
    f0 = np.add.reduceat(data.b * data.b, starts) / data.m_i
    return A, B, 2.0 * A * f0


def _check_rho(rho, alpha: float) -> float:
    if alpha == 1.0:
        return math.inf
    if rho is None:
        return default_rho(alpha)
    r = theory._check_positive("rho", rho)
    if not (1.0 + r) * (1.0 - alpha) < 1.0:
        raise ValueError(f"rho must be below alpha / (1 - alpha) = "
                         f"{alpha / (1.0 - alpha):.4g} for alpha = {alpha:.4g}, "
                         f"got {rho!r}")
    return r


def default_rho(alpha) -> float:
    """``rho = alpha / (2 (1 - alpha))``, for which ``alpha_rho = alpha / 2``; infinity
    at ``alpha = 1`` (no compression error to trade against the noise).

    Raises
    ------
    ValueError
        If alpha is not in (0, 1].
    """
    a = theory._check_alpha(alpha)
    return math.inf if a == 1.0 else a / (2.0 * (1.0 - a))


def sgd_alpha(alpha, rho=None) -> float:
    """``alpha_rho = 1 - (1 + rho)(1 - alpha)``: the contraction left once the noise
    has taken its share (docs/maths.rst, "Stochastic gradients"; derived).

    Parameters
    ----------
    alpha : float
        Contraction parameter in (0, 1].
    rho : float or None
        Young's parameter, ``0 < rho < alpha / (1 - alpha)``; None:
        :func:`default_rho`. Ignored at ``alpha = 1`` (then ``alpha_rho = 1``).

    Returns
    -------
    float in (0, 1]

    Raises
    ------
    ValueError
        On alpha outside (0, 1] or rho outside its range.
    """
    a = theory._check_alpha(alpha)
    r = _check_rho(rho, a)
    return 1.0 if a == 1.0 else 1.0 - (1.0 + r) * (1.0 - a)


def gamma_sgd(L, L_i, alpha, rho=None, weighted=False) -> float:
    """Step size of EF21-SGD: ``1 / (L + L_QM xi(alpha_rho))``, or with ``L_AM`` when
    ``weighted`` (EF21-W-SGD).

    Derived (docs/maths.rst, "Stochastic gradients"): the EF21 argument with the
    estimator's noise split off by Young's inequality with parameter ``rho``; the
    weighted form by the same argument on the functions ``f_i / (n w_i)``, whose
    constants are all ``L_AM``. Not the printed theorem of Bells & Whistles, which could
    not be read.

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_i : array_like, shape (n,)
        Positive smoothness constants of the clients.
    alpha : float
        Contraction parameter in (0, 1].
    rho : float or None
        See :func:`sgd_alpha`.
    weighted : bool
        ``L_AM`` in place of ``L_QM``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid L, L_i, alpha or rho.
    """
    a = sgd_alpha(alpha, rho)
    L = theory._check_positive("L", L)
    mean = theory.l_am(L_i) if weighted else theory.l_qm(L_i)
    return 1.0 / (L + mean * theory.xi(a))


def sgd_neighbourhood(L_i, alpha, C_i, rho=None, weighted=False) -> float:
    """The size ``(beta_2 / theta_rho) sigma^2`` of the neighbourhood EF21-SGD reaches
    at :func:`gamma_sgd` when ``A_i = 0`` (docs/maths.rst, "Stochastic gradients";
    derived).

    ``theta_rho = 1 - sqrt(1 - alpha_rho)``, ``beta_2 = (1 + rho)(1 - alpha) + 1 +
    1/rho`` (1 at ``alpha = 1``); ``sigma^2 = (1/n) sum_i C_i``, or
    ``(1/n) sum_i C_i L_AM / L_i`` when ``weighted``. With it, for ``x_hat`` drawn
    uniformly from the first T iterates,
    ``E ||grad f(x_hat)||^2 <= 2 (f(x_0) - f^inf) / (gamma T) + neighbourhood``.

    Parameters
    ----------
    L_i : array_like, shape (n,)
        Positive smoothness constants of the clients.
    alpha : float
        Contraction parameter in (0, 1].
    C_i : array_like, shape (n,)
        Non-negative variance bounds (the ``C`` of :func:`minibatch_abc` when its
        ``A`` is zero).
    rho : float or None
        See :func:`sgd_alpha`.
    weighted : bool
        The weighted form (EF21-W-SGD).

    Returns
    -------
    float, >= 0

    Raises
    ------
    ValueError
        On invalid inputs or a ``C_i`` of the wrong shape or with negative entries.
    """
    Li = theory._check_Li(L_i)
    a = theory._check_alpha(alpha)
    r = _check_rho(rho, a)
    try:
        C = np.asarray(C_i, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"C_i must be an array of {Li.size} non-negative numbers, "
                         f"got {C_i!r}") from None
    if C.shape != Li.shape or not np.all(np.isfinite(C)) or np.any(C < 0):
        raise ValueError(f"C_i must be {Li.size} non-negative finite numbers, "
                         f"got shape {C.shape}")
    sigma2 = float(np.mean(C * (np.mean(Li) / Li))) if weighted else float(np.mean(C))
    if a == 1.0:
        return sigma2
    a_rho = 1.0 - (1.0 + r) * (1.0 - a)
    beta2 = (1.0 + r) * (1.0 - a) + 1.0 + 1.0 / r
    return beta2 / theory.theta(a_rho) * sigma2


def sgd_step(L, L_i, alpha, A_i, C_i, weighted=False):
    """The theory step of EF21-SGD (EF21-W-SGD when ``weighted``) for an estimator
    with constants ``A_i``, ``C_i`` (:func:`minibatch_abc`), and its neighbourhood.

    Every ``C_i`` zero (no noise, e.g. full batches): the deterministic EF21 step
    ``1/(L + L_QM xi(alpha))`` (``L_AM`` when ``weighted``) with neighbourhood 0,
    the limit ``rho -> 0`` of the derived bound (docs/maths.rst, "Stochastic
    gradients"). Otherwise :func:`gamma_sgd` and :func:`sgd_neighbourhood` with the
    default ``rho``.

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_i : array_like, shape (n,)
        Positive smoothness constants of the clients.
    alpha : float
        Contraction parameter in (0, 1].
    A_i, C_i : array_like, shape (n,)
        Non-negative constants of the estimators (the assumption of
        :func:`minibatch_abc`).
    weighted : bool
        The weighted form (``L_AM``).

    Returns
    -------
    gamma : float
    neighbourhood : float, >= 0
    noiseless : bool
        Whether every ``C_i`` is zero (the deterministic step).

    Raises
    ------
    ValueError
        If some ``A_i > 0`` (the variance grows with f_i: no step is derived), or on
        invalid inputs.
    """
    Li = theory._check_Li(L_i)
    try:
        A = np.asarray(A_i, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"A_i must be an array of {Li.size} non-negative numbers, "
                         f"got {A_i!r}") from None
    if A.shape != Li.shape or not np.all(np.isfinite(A)) or np.any(A < 0):
        raise ValueError(f"A_i must be {Li.size} non-negative finite numbers, "
                         f"got shape {A.shape}")
    if np.any(A > 0):
        raise ValueError("the estimator has A_i > 0 (its variance grows with f_i, no "
                         "uniform bound): no SGD step size is derived for it")
    neighbourhood = sgd_neighbourhood(Li, alpha, C_i, weighted=weighted)
    if not np.any(np.asarray(C_i, dtype=np.float64) > 0):
        fn = theory.gamma_am if weighted else theory.gamma_qm
        return fn(L, Li, alpha), 0.0, True
    return gamma_sgd(L, Li, alpha, weighted=weighted), neighbourhood, False
