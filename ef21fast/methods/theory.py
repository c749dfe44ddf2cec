"""Theory constants of the EF21 family: compressor constants, smoothness means, step sizes.

Every formula is stated, with its source, in ``docs/maths.rst`` (papers: "EF21",
Richtárik, Sokolov, Fatkhullin, NeurIPS 2021, arXiv 2106.05203; "EF21 with Bells &
Whistles", Fatkhullin et al., arXiv 2110.03294; "Error Feedback Reloaded", Richtárik,
Gasanov, Burlachenko, ICLR 2024, arXiv 2402.10774; "Error Feedback Shines when Features
are Rare", Richtárik, Gasanov, Burlachenko, arXiv 2305.15264). Each docstring names its
formula and the section of that page; formulas that follow from the Reloaded paper's
principle rather than a printed theorem say "derived".

All functions validate their inputs and raise ``ValueError`` on anything outside the
domain of the formula (alpha outside (0, 1], non-positive or non-finite smoothness
constants, participation probabilities outside (0, 1], ...). Results are Python floats
(or int64 arrays for :func:`clone_counts`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "topk_alpha",
    "randk_alpha",
    "identity_alpha",
    "theta",
    "beta",
    "xi",
    "l_am",
    "l_qm",
    "l_var",
    "gamma_qm",
    "gamma_am",
    "gamma_pp",
    "clone_counts",
    "rare_features",
]


# --------------------------------------------------------------------------- checks

def _check_kd(k, d) -> tuple[int, int]:
    for name, v in (("k", k), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    k, d = int(k), int(d)
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    if not 1 <= k <= d:
        raise ValueError(f"k must satisfy 1 <= k <= d = {d} (k = 0 sends nothing and "
                         f"is not contractive), got {k}")
    return k, d


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}") from None
    if not (0.0 < a <= 1.0):  # also rejects NaN
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return a


def _check_positive(name: str, v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return x


def _check_Li(L_i) -> np.ndarray:
    try:
        a = np.asarray(L_i, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"L_i must be a 1-D array of positive numbers, got {L_i!r}") from None
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"L_i must be a non-empty 1-D array, got shape {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise ValueError("L_i must be positive and finite")
    return a


# ----------------------------------------------------------------- compressor constants

def topk_alpha(k, d) -> float:
    """Contraction parameter of TopK: ``alpha = k / d``.

    Source: docs/maths.rst, "Compressors" (TopK is contractive with alpha = k/d).

    Parameters
    ----------
    k, d : int
        Kept entries and dimension, ``1 <= k <= d``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If k or d is not an integer or ``1 <= k <= d`` fails.
    """
    k, d = _check_kd(k, d)
    return k / d


def randk_alpha(k, d) -> float:
    """Contraction parameter of unscaled RandK: ``alpha = k / d``.

    Source: docs/maths.rst, "Compressors" (RandK without scaling is contractive in
    expectation with alpha = k/d).

    Parameters
    ----------
    k, d : int
        Kept entries and dimension, ``1 <= k <= d``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If k or d is not an integer or ``1 <= k <= d`` fails.
    """
    k, d = _check_kd(k, d)
    return k / d


def identity_alpha() -> float:
    """Contraction parameter of the identity (no compression): ``alpha = 1``.

    Source: docs/maths.rst, "Compressors".

    Returns
    -------
    float
        Always 1.0.
    """
    return 1.0


def theta(alpha) -> float:
    """``theta = 1 - sqrt(1 - alpha)``; 1 at alpha = 1.

    Source: docs/maths.rst, "Compressors" (EF21, arXiv 2106.05203, with its free
    parameter s chosen to minimise beta / theta).

    Parameters
    ----------
    alpha : float
        Contraction parameter in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If alpha is not in (0, 1].
    """
    a = _check_alpha(alpha)
    return 1.0 - math.sqrt(1.0 - a)


def beta(alpha) -> float:
    """``beta = (1 - alpha) / (1 - sqrt(1 - alpha))``; 0 at alpha = 1.

    Source: docs/maths.rst, "Compressors" (EF21, arXiv 2106.05203).

    Parameters
    ----------
    alpha : float
        Contraction parameter in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If alpha is not in (0, 1].
    """
    a = _check_alpha(alpha)
    return (1.0 - a) / (1.0 - math.sqrt(1.0 - a))


def xi(alpha) -> float:
    """``xi(alpha) = sqrt(beta / theta)``; 0 at alpha = 1.

    Equal to ``sqrt(1 - alpha) / (1 - sqrt(1 - alpha))``. Source: docs/maths.rst,
    "Compressors" (the step sizes of EF21 and Reloaded are ``1 / (L + L_mean xi)``).

    Parameters
    ----------
    alpha : float
        Contraction parameter in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If alpha is not in (0, 1].
    """
    return math.sqrt(beta(alpha) / theta(alpha))


# ------------------------------------------------------------------ smoothness means

def l_am(L_i) -> float:
    """Arithmetic mean ``L_AM = (1/n) sum_i L_i``.

    Source: docs/maths.rst, "Problem and smoothness constants".

    Parameters
    ----------
    L_i : array_like, shape (n,)
        Positive, finite smoothness constants.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If L_i is empty, not 1-D, or has a non-positive or non-finite entry.
    """
    return float(np.mean(_check_Li(L_i)))


def l_qm(L_i) -> float:
    """Quadratic mean ``L_QM = sqrt((1/n) sum_i L_i^2)``.

    Source: docs/maths.rst, "Problem and smoothness constants". Computed as
    ``max(L_i) * sqrt(mean((L_i / max L_i)^2))`` so that it cannot overflow.

    Parameters
    ----------
    L_i : array_like, shape (n,)
        Positive, finite smoothness constants.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`l_am`.
    """
    a = _check_Li(L_i)
    top = float(a.max())
    return top * math.sqrt(float(np.mean((a / top) ** 2)))


def l_var(L_i) -> float:
    """``L_var = L_QM^2 - L_AM^2 = (1/n) sum_i (L_i - L_AM)^2 >= 0``.

    Source: docs/maths.rst, "Problem and smoothness constants". Evaluated as the mean
    squared deviation, which equals the difference of squares exactly in real arithmetic
    and is never negative in floating point.

    Parameters
    ----------
    L_i : array_like, shape (n,)
        Positive, finite smoothness constants.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`l_am`.
    """
    a = _check_Li(L_i)
    return float(np.mean((a - a.mean()) ** 2))


# ----------------------------------------------------------------------- step sizes

def gamma_qm(L, L_i, alpha) -> float:
    """EF21 step size of the original analysis: ``gamma = 1 / (L + L_QM xi(alpha))``.

    Source: docs/maths.rst, "Step sizes" (EF21, arXiv 2106.05203, Theorem 1).

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_i : array_like, shape (n,)
        Smoothness constants of the f_i, positive.
    alpha : float
        Contraction parameter in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid L, L_i or alpha.
    """
    L = _check_positive("L", L)
    return 1.0 / (L + l_qm(L_i) * xi(alpha))


def gamma_am(L, L_i, alpha) -> float:
    """EF21-W (and improved EF21) step size: ``gamma = 1 / (L + L_AM xi(alpha))``.

    Source: docs/maths.rst, "Step sizes" (Reloaded, arXiv 2402.10774: the theorems for
    EF21-W and for the improved analysis of EF21). Always ``gamma_am >= gamma_qm``, with
    equality only when all L_i are equal (or alpha = 1).

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_i : array_like, shape (n,)
        Smoothness constants of the f_i, positive.
    alpha : float
        Contraction parameter in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid L, L_i or alpha.
    """
    L = _check_positive("L", L)
    return 1.0 / (L + l_am(L_i) * xi(alpha))


def gamma_pp(L, L_i, alpha, p, s=1e-3, rho=1e-3, weighted=False) -> float:
    """Step size of EF21-PP (partial participation), or EF21-W-PP if ``weighted``.

    Formula (docs/maths.rst, "Step sizes"; Bells & Whistles, arXiv 2110.03294,
    Theorem 7)::

        theta' = 1 - (1 + s)(1 - alpha),     beta' = (1 + 1/s)(1 - alpha),
        theta_p = rho p_min + theta' p_max - rho - (p_max - p_min),
        B = (beta' p_max + (1 + 1/rho)(1 - p_min)) * M2,
        gamma = 1 / (L + sqrt(B / theta_p)),

    with ``M2 = (1/n) sum L_i^2 = L_QM^2``. For a scalar p (every client participates with
    the same probability) p_min = p_max = p and this is the theorem's formula; for a
    vector p the conservative ends are taken (beta' with p_max, 1 - p with p_min).
    ``weighted=True`` (EF21-W-PP) replaces M2 by ``L_AM^2``: derived from the Reloaded
    principle (every weighted constant L_i / (n w_i) equals L_AM), not a printed theorem.
    The defaults s = rho = 1e-3 are those of the FL_PyTorch simulator code
    (docs/maths.rst, "Sources").

    Parameters
    ----------
    L : float
        Smoothness constant of f, positive.
    L_i : array_like, shape (n,)
        Positive smoothness constants of the clients.
    alpha : float
        Contraction parameter in (0, 1].
    p : float or array_like, shape (n,)
        Participation probabilities in (0, 1].
    s, rho : float
        Positive free parameters of the analysis.
    weighted : bool
        EF21-W-PP (derived) instead of EF21-PP.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On invalid inputs, a p of the wrong length, or when theta_p <= 0 (participation
        too low, or alpha too small for the chosen s, for the theorem to apply).
    """
    L = _check_positive("L", L)
    Li = _check_Li(L_i)
    a = _check_alpha(alpha)
    s = _check_positive("s", s)
    rho = _check_positive("rho", rho)
    try:
        parr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"p must be a probability or an array of them, got {p!r}") from None
    if parr.ndim > 1 or parr.size == 0:
        raise ValueError(f"p must be a scalar or a 1-D array, got shape {parr.shape}")
    if parr.ndim == 1 and parr.size != Li.size:
        raise ValueError(f"p has {parr.size} entries but there are {Li.size} clients")
    if not np.all((parr > 0) & (parr <= 1)):
        raise ValueError("participation probabilities p must be in (0, 1]")
    p_min, p_max = float(parr.min()), float(parr.max())
    theta_prime = 1.0 - (1.0 + s) * (1.0 - a)
    beta_prime = (1.0 + 1.0 / s) * (1.0 - a)
    theta_p = rho * p_min + theta_prime * p_max - rho - (p_max - p_min)
    if not theta_p > 0:
        raise ValueError(
            f"theta_p = {theta_p:.3g} <= 0: Theorem 7 of Bells & Whistles gives no step "
            f"size for alpha = {a:.3g}, p in [{p_min:.3g}, {p_max:.3g}], s = {s:g}, "
            f"rho = {rho:g} (raise p or alpha, or lower s and rho)")
    m2 = l_am(Li) ** 2 if weighted else l_qm(Li) ** 2
    B = (beta_prime * p_max + (1.0 + 1.0 / rho) * (1.0 - p_min)) * m2
    return 1.0 / (L + math.sqrt(B / theta_p))


# -------------------------------------------------------------------------- cloning

def clone_counts(L_i) -> np.ndarray:
    """Number of clones of each client: ``N_i = ceil(L_i / L_AM)``.

    Source: docs/maths.rst, "Methods", EF21 on the cloned problem (Reloaded, arXiv
    2402.10774, the first route). Then ``N = sum N_i <= 2n`` and every clone constant
    ``N L_i / (n N_i) <= 2 L_AM``. A ratio within a relative 1e-12 of an integer is taken
    as that integer, so equal L_i (whose mean may round a hair below them) give N_i = 1.

    Parameters
    ----------
    L_i : array_like, shape (n,)
        Positive smoothness constants.

    Returns
    -------
    ndarray, shape (n,), int64
        N_i >= 1.

    Raises
    ------
    ValueError
        As :func:`l_am`.
    """
    a = _check_Li(L_i)
    ratio = a / np.mean(a)
    near = np.round(ratio)
    ratio = np.where(np.abs(ratio - near) <= 1e-12 * np.maximum(near, 1.0), near, ratio)
    return np.maximum(np.ceil(ratio), 1.0).astype(np.int64)


# -------------------------------------------------------------------- rare features

def rare_features(data) -> tuple[int, int]:
    """Rare-features statistics ``(c, r)`` of a split.

    Source: docs/maths.rst, "Rare features" ("Error Feedback Shines when Features are
    Rare", arXiv 2305.15264): feature j is owned by client i if column j of A_i has a
    non-zero entry; ``c`` is the largest number of clients owning any one feature, ``r``
    the largest number of features owned by one client. (Explicitly stored zeros of a
    sparse matrix do not count.)

    Parameters
    ----------
    data : ef21fast.methods.data.ClientData
        The split (A dense (m, d) or CSR, offsets (n+1,)).

    Returns
    -------
    (c, r) : tuple of int
        ``0 <= c <= n``, ``0 <= r <= d``.
    """
    import scipy.sparse as sp

    A, offsets = data.A, np.asarray(data.offsets, dtype=np.int64)
    n = offsets.size - 1
    d = A.shape[1]
    if d == 0:
        return 0, 0
    if sp.issparse(A):
        A = sp.csr_matrix(A)
        rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr))
        client = np.searchsorted(offsets, rows, side="right") - 1
        keep = A.data != 0
        flat = client[keep] * d + A.indices[keep].astype(np.int64)
        pairs = np.unique(flat)  # one entry per (client, feature) ownership
        if pairs.size == 0:
            return 0, 0
        c = np.bincount(pairs % d, minlength=d).max()
        r = np.bincount(pairs // d, minlength=n).max()
        return int(c), int(r)
    else:
        own = np.logical_or.reduceat(np.asarray(A) != 0, offsets[:-1], axis=0)
    return int(own.sum(axis=0).max()), int(own.sum(axis=1).max())
