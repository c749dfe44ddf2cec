"""ef21fast.methods.theory against hand-computed values (the formulas of docs/maths.rst)
and properties."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ef21fast.methods import theory
from ef21fast.methods.data import ClientData, feature_ownership

L4 = [1.0, 1.0, 1.0, 100.0]


# ------------------------------------------------------------------ compressors

def test_alpha_of_compressors():
    assert theory.topk_alpha(1, 112) == 1 / 112
    assert theory.randk_alpha(3, 12) == 0.25
    assert theory.topk_alpha(7, 7) == 1.0
    assert theory.identity_alpha() == 1.0


@pytest.mark.parametrize("k, d", [(0, 5), (6, 5), (1, 0), (1.5, 5), (1, 5.0), (True, 5),
                                  (-1, 5), ("1", 5)])
def test_alpha_of_compressors_invalid(k, d):
    with pytest.raises(ValueError):
        theory.topk_alpha(k, d)
    with pytest.raises(ValueError):
        theory.randk_alpha(k, d)


@pytest.mark.parametrize("alpha, th, be, x", [
    (0.75, 0.5, 0.5, 1.0),   # sqrt(1 - 0.75) = 0.5
    (0.36, 0.2, 3.2, 4.0),   # sqrt(0.64) = 0.8; beta = 0.64 / 0.2; xi = sqrt(16)
    (1.0, 1.0, 0.0, 0.0),    # the alpha = 1 edge case
])
def test_theta_beta_xi_hand_values(alpha, th, be, x):
    assert theory.theta(alpha) == pytest.approx(th, rel=1e-14)
    assert theory.beta(alpha) == pytest.approx(be, rel=1e-14, abs=0)
    assert theory.xi(alpha) == pytest.approx(x, rel=1e-14, abs=0)


def test_alpha_one_is_exact():
    assert (theory.theta(1), theory.beta(1), theory.xi(1)) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("alpha", [0, 0.0, -0.1, 1.0000001, 2, float("nan"), float("inf"),
                                   "a", None])
def test_alpha_out_of_range(alpha):
    for fn in (theory.theta, theory.beta, theory.xi):
        with pytest.raises(ValueError):
            fn(alpha)
    with pytest.raises(ValueError):
        theory.gamma_am(1.0, L4, alpha)


@given(st.floats(1e-9, 1.0))
def test_xi_identity(alpha):
    # xi^2 = beta / theta and theta in (0, 1]
    th, be, x = theory.theta(alpha), theory.beta(alpha), theory.xi(alpha)
    assert 0 < th <= 1 and be >= 0
    assert x * x == pytest.approx(be / th, rel=1e-9, abs=1e-300)


# ------------------------------------------------------------------- smoothness

def test_means_hand_values():
    assert theory.l_am(L4) == 25.75
    assert theory.l_qm(L4) == pytest.approx(math.sqrt(2500.75), rel=1e-15)
    assert theory.l_var(L4) == pytest.approx(2500.75 - 25.75**2, rel=1e-14)
    assert theory.l_var(L4) == pytest.approx(1837.6875, rel=1e-14)


def test_means_equal_constants():
    L = [0.3] * 7
    assert theory.l_am(L) == pytest.approx(0.3, rel=1e-15)
    assert theory.l_qm(L) == pytest.approx(0.3, rel=1e-15)
    assert theory.l_var(L) == pytest.approx(0.0, abs=1e-30)


def test_qm_does_not_overflow():
    assert theory.l_qm([1e300, 1e300]) == pytest.approx(1e300)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [0.0, 1.0], [1.0, float("nan")],
                                 [1.0, float("inf")], [[1.0, 2.0]], "abc", 3.0])
def test_means_invalid(bad):
    for fn in (theory.l_am, theory.l_qm, theory.l_var, theory.clone_counts):
        with pytest.raises(ValueError):
            fn(bad)


@given(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=40))
def test_mean_inequalities(L):
    am, qm, var = theory.l_am(L), theory.l_qm(L), theory.l_var(L)
    assert am <= qm * (1 + 1e-12)
    assert var >= 0
    assert qm * qm - am * am == pytest.approx(var, rel=1e-6, abs=1e-9 * qm * qm)


# ------------------------------------------------------------------- step sizes

def test_gamma_hand_values():
    # alpha = 0.36 -> xi = 4
    assert theory.gamma_am(1.0, L4, 0.36) == pytest.approx(1 / 104, rel=1e-14)
    assert theory.gamma_qm(1.0, L4, 0.36) == pytest.approx(
        1 / (1 + 4 * math.sqrt(2500.75)), rel=1e-14)


def test_gamma_alpha_one_is_gd_step():
    assert theory.gamma_am(2.0, L4, 1.0) == 0.5
    assert theory.gamma_qm(2.0, L4, 1.0) == 0.5


@pytest.mark.parametrize("L", [0, -1.0, float("nan"), float("inf"), "x"])
def test_gamma_invalid_L(L):
    with pytest.raises(ValueError):
        theory.gamma_qm(L, L4, 0.5)
    with pytest.raises(ValueError):
        theory.gamma_am(L, L4, 0.5)
    with pytest.raises(ValueError):
        theory.gamma_pp(L, L4, 0.5, 1.0)


@settings(max_examples=200)
@given(L=st.floats(1e-3, 1e3),
       L_i=st.lists(st.floats(1e-3, 1e3), min_size=2, max_size=50),
       alpha=st.floats(1e-4, 0.99))
def test_gamma_am_beats_gamma_qm_when_constants_differ(L, L_i, alpha):
    assume(max(L_i) >= 1.01 * min(L_i))
    assert theory.gamma_am(L, L_i, alpha) > theory.gamma_qm(L, L_i, alpha)


@given(L=st.floats(1e-3, 1e3), c=st.floats(1e-3, 1e3), n=st.integers(1, 30),
       alpha=st.floats(1e-4, 1.0))
def test_gamma_am_equals_qm_for_equal_constants(L, c, n, alpha):
    assert theory.gamma_am(L, [c] * n, alpha) == pytest.approx(
        theory.gamma_qm(L, [c] * n, alpha), rel=1e-12)


# ---------------------------------------------------------- partial participation

def test_gamma_pp_full_participation_hand_values():
    # alpha = 0.75, s = rho = 1: theta' = 0.5, beta' = 0.5, theta_p = 0.5, B = 0.5 M2
    g = theory.gamma_pp(1.0, L4, 0.75, 1.0, s=1.0, rho=1.0)
    assert g == pytest.approx(1 / (1 + math.sqrt(2500.75)), rel=1e-14)
    gw = theory.gamma_pp(1.0, L4, 0.75, 1.0, s=1.0, rho=1.0, weighted=True)
    assert gw == pytest.approx(1 / (1 + 25.75), rel=1e-14)


def test_gamma_pp_partial_hand_values():
    # p = 0.9: theta_p = 0.9 + 0.45 - 1 = 0.35, B = (0.45 + 2 * 0.1) M2 = 0.65 M2
    g = theory.gamma_pp(1.0, L4, 0.75, 0.9, s=1.0, rho=1.0)
    assert g == pytest.approx(1 / (1 + math.sqrt(0.65 / 0.35 * 2500.75)), rel=1e-14)
    # vector p: p_min = 0.9, p_max = 1: theta_p = 0.9 + 0.5 - 1 - 0.1 = 0.3,
    # B = (0.5 * 1 + 2 * 0.1) M2 = 0.7 M2
    g = theory.gamma_pp(1.0, L4, 0.75, [0.9, 1.0, 1.0, 1.0], s=1.0, rho=1.0)
    assert g == pytest.approx(1 / (1 + math.sqrt(0.7 / 0.3 * 2500.75)), rel=1e-14)
    # a constant vector is the scalar
    assert theory.gamma_pp(1.0, L4, 0.75, [0.9] * 4, s=1.0, rho=1.0) == pytest.approx(
        theory.gamma_pp(1.0, L4, 0.75, 0.9, s=1.0, rho=1.0), rel=1e-15)


def test_gamma_pp_identity_full_participation_is_gd():
    assert theory.gamma_pp(4.0, L4, 1.0, 1.0) == 0.25


def test_gamma_pp_default_parameters_match_formula():
    alpha, p, s, rho, L = 1 / 112, 0.5, 1e-3, 1e-3, 3.0
    tp = 1 - (1 + s) * (1 - alpha)
    bp = (1 + 1 / s) * (1 - alpha)
    theta_p = rho * p + tp * p - rho
    B = (bp * p + (1 + 1 / rho) * (1 - p)) * 2500.75
    assert theory.gamma_pp(L, L4, alpha, p) == pytest.approx(
        1 / (L + math.sqrt(B / theta_p)), rel=1e-12)


def test_gamma_pp_weighted_is_larger_and_below_full():
    for p in (0.5, 0.9, 1.0):
        g = theory.gamma_pp(1.0, L4, 0.5, p)
        gw = theory.gamma_pp(1.0, L4, 0.5, p, weighted=True)
        assert gw > g
    assert theory.gamma_pp(1.0, L4, 0.5, 0.5) < theory.gamma_pp(1.0, L4, 0.5, 0.9)


@pytest.mark.parametrize("p", [0.0, -0.5, 1.5, float("nan"), [0.5, 0.5], [[0.5] * 4], []])
def test_gamma_pp_invalid_p(p):
    with pytest.raises(ValueError):
        theory.gamma_pp(1.0, L4, 0.5, p)


def test_gamma_pp_theta_p_not_positive():
    # Top1 in d = 112 with 10% participation: theta_p < 0
    with pytest.raises(ValueError, match="theta_p"):
        theory.gamma_pp(1.0, L4, 1 / 112, 0.1)


@pytest.mark.parametrize("kw", [{"s": 0}, {"rho": -1}, {"s": float("nan")}])
def test_gamma_pp_invalid_parameters(kw):
    with pytest.raises(ValueError):
        theory.gamma_pp(1.0, L4, 0.5, 1.0, **kw)


# ----------------------------------------------------------------------- clones

def test_clone_counts_hand_values():
    N = theory.clone_counts(L4)  # L_AM = 25.75; 100 / 25.75 = 3.88
    assert N.dtype == np.int64
    assert N.tolist() == [1, 1, 1, 4]


@pytest.mark.parametrize("c", [0.1, 1 / 3, 2.7, 1e-7, 123456.789])
@pytest.mark.parametrize("n", [1, 3, 7, 1000])
def test_clone_counts_equal_constants_are_one(c, n):
    assert theory.clone_counts([c] * n).tolist() == [1] * n


@given(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=60))
def test_clone_counts_bounds(L):
    L = np.asarray(L)
    n = L.size
    Ni = theory.clone_counts(L)
    N = int(Ni.sum())
    am = theory.l_am(L)
    assert np.all(Ni >= 1)
    assert N <= 2 * n
    clone_L = N * L / (n * Ni)
    assert np.all(clone_L <= 2 * am * (1 + 1e-12))


# ---------------------------------------------------------------- rare features

def _own_example(sparse):
    import scipy.sparse as sp

    A = np.array([[1.0, 0, 0], [0, 1.0, 0],    # client 0 owns features 0, 1
                  [0, 2.0, 0], [0, 0, 0],      # client 1 owns feature 1
                  [0, 0, 0]])                  # client 2 owns nothing
    if sparse:
        A = sp.csr_matrix(A)
    return ClientData(A, np.ones(5), np.array([0, 2, 4, 5]))


@pytest.mark.parametrize("sparse", [False, True])
def test_rare_features_hand_example(sparse):
    data = _own_example(sparse)
    assert theory.rare_features(data) == (2, 2)
    assert feature_ownership(data) == (2, 2)


def test_rare_features_ignores_explicit_zeros():
    import scipy.sparse as sp

    A = sp.csr_matrix((np.array([1.0, 0.0, 3.0]), np.array([0, 1, 1]),
                       np.array([0, 2, 3])), shape=(2, 2))
    data = ClientData(A, np.ones(2), np.array([0, 1, 2]))
    # client 0 owns feature 0 only (its entry in column 1 is a stored zero)
    assert theory.rare_features(data) == (1, 1)


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 5))
@settings(max_examples=50)
def test_rare_features_dense_equals_sparse_and_bruteforce(seed, n, d):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    m = n + int(rng.integers(0, 10))
    A = rng.standard_normal((m, d)) * (rng.random((m, d)) < 0.3)
    off = np.concatenate(([0], np.sort(rng.choice(np.arange(1, m), n - 1,
                                                  replace=False)), [m]))
    dense = ClientData(A, np.ones(m), off)
    csr = ClientData(sp.csr_matrix(A), np.ones(m), off)
    own = np.array([[np.any(A[off[i]:off[i + 1], j] != 0) for j in range(d)]
                    for i in range(n)])
    expect = (int(own.sum(0).max()), int(own.sum(1).max()))
    assert theory.rare_features(dense) == expect
    assert theory.rare_features(csr) == expect


@pytest.mark.parametrize("p", [0.5, 0.8, [0.6, 0.9, 0.75, 1.0]])
def test_gamma_pp_covers_the_pp_recursion_of_every_client(p):
    """gamma_pp against the partial-participation recursion, client by client
    (docs/maths.rst, "Step sizes"): a client taking part contracts its error by
    (1+s)(1-alpha) and adds (1+1/s)(1-alpha) L_i^2 |dx|^2; one that does not adds
    (1+rho) and (1+1/rho) L_i^2. The step 1/(L + sqrt(B/theta)) of the worst
    contraction and the mean growth must be at least as large as gamma_pp's."""
    L_i = np.array([1.0, 2.0, 0.5, 3.0])
    alpha, s, rho, L = 0.6, 0.1, 0.05, 1.5
    pv = np.broadcast_to(np.asarray(p, dtype=float), L_i.shape)
    keep = pv * (1 + s) * (1 - alpha) + (1 - pv) * (1 + rho)
    grow = pv * (1 + 1 / s) * (1 - alpha) + (1 - pv) * (1 + 1 / rho)
    theta = 1 - keep.max()
    B = float(np.max(grow)) * float(np.mean(L_i ** 2))
    exact = 1 / (L + math.sqrt(B / theta))
    g = theory.gamma_pp(L, L_i, alpha, p, s=s, rho=rho)
    assert 0 < g <= exact * (1 + 1e-14)
    if np.ndim(p) == 0:  # a scalar p: the recursion's step exactly
        assert g == pytest.approx(exact, rel=1e-13)
