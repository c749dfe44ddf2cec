"""Rare features: L_plus against explicit Hessians, the step sizes against hand values,
the generator's ownership, the owned-features regulariser and the adaptive step
(docs/maths.rst, "Rare features")."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.methods import algorithms, data_sparse, rare_features, theory
from ef21fast.methods.data import ClientData
from ef21fast.methods.ef21 import EF21
from ef21fast.methods.problems import LinearRegression, LogisticRegression


def sparse_data(seed=0, sizes=(3, 4, 2), d=5, density=0.4, kind="linreg"):
    rng = np.random.default_rng(seed)
    m = sum(sizes)
    A = rng.standard_normal((m, d)) * (rng.random((m, d)) < density)
    A[np.arange(m), rng.integers(0, d, m)] += 1.0  # no empty row
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0) if kind == "logreg" \
        else rng.standard_normal(m)
    off = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    return ClientData(A, b, off, "sparse-tiny")


def explicit_l_plus(data, curvature, lam, owned):
    mats = []
    for i in range(data.n):
        Ai, _ = data.client(i)
        Ai = np.asarray(Ai.toarray() if sp.issparse(Ai) else Ai)
        D = np.diag((np.abs(Ai).sum(axis=0) > 0).astype(float)) if owned else np.eye(data.d)
        H = curvature * Ai.T @ Ai / Ai.shape[0] + 2 * lam * D
        mats.append(H @ H)
    return math.sqrt(np.linalg.eigvalsh(np.mean(mats, axis=0))[-1])


# --------------------------------------------------------------------- L_plus

@pytest.mark.parametrize("cls, curvature", [(LinearRegression, 2.0),
                                             (LogisticRegression, 0.25)])
@pytest.mark.parametrize("lam, owned", [(0.0, False), (0.1, False), (0.1, True)])
@pytest.mark.parametrize("sparse", [False, True])
def test_l_plus_equals_explicit_hessians(cls, curvature, lam, owned, sparse):
    data = sparse_data(kind=cls.kind)
    if sparse:
        data = data.sparse()
    prob = cls(data, lam=lam, oracle="numpy", regulariser="owned" if owned else "all")
    assert rare_features.l_plus(prob) == pytest.approx(
        explicit_l_plus(data, curvature, lam, owned), rel=1e-10)


def test_l_plus_large_d_uses_the_iterative_path():
    data = sparse_data(seed=2, sizes=(6, 5, 7, 4), d=300, density=0.02)
    prob = LinearRegression(data, lam=0.1, oracle="numpy", regulariser="owned")
    assert data.d > rare_features._DENSE_MAX
    assert rare_features.l_plus(prob) == pytest.approx(
        explicit_l_plus(data, 2.0, 0.1, True), rel=1e-8)


def test_l_plus_is_at_most_l_qm():
    for seed in range(4):
        prob = LinearRegression(sparse_data(seed=seed), lam=0.1, oracle="numpy")
        assert rare_features.l_plus(prob) <= theory.l_qm(prob.L_i) * (1 + 1e-12)


# ------------------------------------------------------------------- the steps

def test_gamma_rare_hand_values():
    xi = math.sqrt(0.5) / (1 - math.sqrt(0.5))
    assert rare_features.gamma_rare(2.0, 3.0, 1, 4, 0.5) == pytest.approx(
        1 / (2 + 3 * 0.5 * xi), rel=1e-14)
    assert rare_features.gamma_rare(2.0, 3.0, 4, 4, 1.0) == 0.5


def test_gamma_rare_adaptive_hand_values():
    L_i = [1.0, 2.0, 5.0]
    xi = theory.xi(0.1)
    assert rare_features.gamma_rare_adaptive(1.5, L_i, 0.1, 1.0) == pytest.approx(
        theory.gamma_qm(1.5, L_i, 0.1), rel=1e-14)
    assert rare_features.gamma_rare_adaptive(1.5, L_i, 0.1, 0.0) == 1 / 1.5
    # q = 0.04: min(L_QM = sqrt(10), 0.2 * 5 = 1) * 0.2
    assert rare_features.gamma_rare_adaptive(1.5, L_i, 0.1, 0.04) == pytest.approx(
        1 / (1.5 + 1.0 * 0.2 * xi), rel=1e-14)


def test_rare_step_larger_than_standard_when_features_are_rare():
    data = data_sparse.make_rare_features(n=20, d=60, m_per_client=4, c_frac=0.1, seed=1)
    prob = LinearRegression(data, lam=0.0, oracle="numpy", regulariser="owned")
    g, facts = rare_features.rare_step(prob, 1)
    assert facts["c"] == 2 and facts["n"] == 20
    assert g > 1.5 * theory.gamma_qm(prob.L, prob.L_i, 1 / 60)


def test_rare_step_equals_standard_when_every_client_owns_every_feature():
    rng = np.random.default_rng(3)
    block = rng.standard_normal((4, 6))
    n = 5
    data = ClientData(np.tile(block, (n, 1)), rng.standard_normal(4 * n),
                      np.arange(n + 1, dtype=np.int64) * 4, "identical")
    prob = LinearRegression(data, lam=0.1, oracle="numpy")
    g, facts = rare_features.rare_step(prob, 2)
    assert facts["c"] == n
    assert g == pytest.approx(theory.gamma_qm(prob.L, prob.L_i, 2 / 6), rel=1e-12)
    # c = n but different clients: never below the standard step
    prob2 = LinearRegression(sparse_data(density=1.0), lam=0.1, oracle="numpy")
    g2, facts2 = rare_features.rare_step(prob2, 1)
    assert facts2["c"] == prob2.n
    assert g2 >= theory.gamma_qm(prob2.L, prob2.L_i, 1 / prob2.d)


# ------------------------------------------------------------------ generator

@pytest.mark.parametrize("c_frac, c", [(0.05, 5), (0.5, 50), (0.9, 90), (0.07, 7),
                                        (1.0, 100), (0.001, 1)])
def test_generator_hits_its_c_exactly(c_frac, c):
    data = data_sparse.make_rare_features(n=100, d=500, m_per_client=12, c_frac=c_frac,
                                          seed=0)
    assert data_sparse.owners_per_feature(100, c_frac) == c
    own = data_sparse.ownership(data).toarray()
    assert np.all(own.sum(axis=0) == c)  # every feature, not just the largest
    per_client = own.sum(axis=1)
    assert per_client.min() >= (500 * c) // 100 and per_client.max() <= -(-500 * c // 100)
    assert theory.rare_features(data) == (c, per_client.max())


def test_generator_prescribed_constants():
    data = data_sparse.make_rare_features(n=10, d=40, m_per_client=6, c_frac=0.3,
                                          mu=1.0, L=20.0, seed=4)
    prob = LinearRegression(data, lam=0.0, oracle="numpy")
    np.testing.assert_allclose(prob.L_i[:-1], 18.0, rtol=1e-10)
    assert prob.L_i[-1] == pytest.approx(20.0, rel=1e-10)
    again = data_sparse.make_rare_features(n=10, d=40, m_per_client=6, c_frac=0.3, seed=4)
    assert np.array_equal(data.A, again.A) and np.array_equal(data.b, again.b)


# --------------------------------------------------- owned-features regulariser

@pytest.mark.parametrize("cls", [LinearRegression, LogisticRegression])
@pytest.mark.parametrize("oracle", ["numpy", None])
def test_owned_regulariser_oracles(cls, oracle):
    data = sparse_data(kind=cls.kind, d=6)
    prob = cls(data, lam=0.3, oracle=oracle, regulariser="owned")
    own = data_sparse.ownership(data).toarray()
    x = np.linspace(-1.5, 2.0, data.d)
    full = cls(data, lam=0.0, oracle="numpy")  # the loss alone
    reg_g = 0.3 * 2 * x / (1 + x * x) ** 2
    reg_v = 0.3 * x * x / (1 + x * x)
    G = prob.client_grads(x)
    np.testing.assert_allclose(G, full.client_grads(x) + own * reg_g, rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(prob.client_losses(x), full.client_losses(x) + own @ reg_v,
                               rtol=1e-13)
    np.testing.assert_allclose(prob.grad(x), G.mean(axis=0), rtol=1e-12, atol=1e-14)
    c = int(own.sum(axis=0).max())
    assert prob.L == pytest.approx(full.L + 0.6 * c / data.n, rel=1e-13)
    np.testing.assert_allclose(prob.L_i, full.L_i + 0.6 * own.max(axis=1), rtol=1e-13)
    rng = np.random.default_rng(0)
    S = prob.client_stochastic_grads(x, 100, rng)  # full batches: the client gradients
    np.testing.assert_allclose(S, G, rtol=1e-12, atol=1e-14)


def test_owned_regulariser_keeps_the_gradients_sparse():
    data = data_sparse.make_rare_features(n=10, d=30, m_per_client=3, c_frac=0.2, seed=5)
    prob = LinearRegression(data, lam=0.1, regulariser="owned")
    own = data_sparse.ownership(data).toarray()
    G = prob.client_grads(np.random.default_rng(1).standard_normal(30))
    assert np.all(G[~own] == 0)


# ------------------------------------------------------------------ adaptive step

def test_adaptive_step_round_by_round():
    prob = LinearRegression(sparse_data(sizes=(3, 4, 2, 5), d=5), lam=0.1, oracle="numpy")
    m = EF21(prob, k=1, gamma="theory-qm", adaptive_step=True, backend="numpy")
    alpha = 1 / prob.d
    assert m.gamma == pytest.approx(theory.gamma_qm(prob.L, prob.L_i, alpha), rel=1e-14)
    x = np.zeros(prob.d)
    m.start(x, np.random.default_rng(0))
    for _ in range(3):
        x_new = m.step(x)
        np.testing.assert_allclose(x_new, x - m._gamma_t * m.g, rtol=0, atol=0)
        x = x_new
        m.round(x)
        E = m.state - prob.client_grads(x)
        q = float(np.sum(E.mean(axis=0) ** 2) / np.mean(np.sum(E * E, axis=1)))
        lmax, lqm = prob.L_i.max(), theory.l_qm(prob.L_i)
        want = 1 / (prob.L + min(lqm, math.sqrt(q) * lmax) * math.sqrt(q) * theory.xi(alpha))
        assert m._gamma_t == pytest.approx(want, rel=1e-12)
        assert m._gamma_t >= m.gamma * (1 - 1e-12)
    tr = algorithms.run(prob, "ef21", k=1, iters=20, adaptive_step=True, backend="numpy")
    assert tr.extra["gamma_min"] >= tr.gamma * (1 - 1e-12)
    assert tr.extra["gamma_max"] >= tr.extra["gamma_last"] >= tr.extra["gamma_min"]
    assert "rare-features adaptive" in tr.gamma_rule


# -------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, exc, needle", [
    (lambda: rare_features.l_plus(object()), TypeError, "problem"),
    (lambda: rare_features.gamma_rare(1.0, 1.0, 0, 4, 0.5), ValueError, "c must"),
    (lambda: rare_features.gamma_rare(1.0, 1.0, 5, 4, 0.5), ValueError, "c must"),
    (lambda: rare_features.gamma_rare(1.0, 1.0, 1.5, 4, 0.5), ValueError, "c must"),
    (lambda: rare_features.gamma_rare(1.0, -1.0, 1, 4, 0.5), ValueError, "L_plus"),
    (lambda: rare_features.gamma_rare(0.0, 1.0, 1, 4, 0.5), ValueError, "L must"),
    (lambda: rare_features.gamma_rare(1.0, 1.0, 1, 4, 0.0), ValueError, "alpha"),
    (lambda: rare_features.gamma_rare_adaptive(1.0, [1.0], 0.5, 2.0), ValueError, "q must"),
    (lambda: rare_features.gamma_rare_adaptive(1.0, [1.0], 0.5, "x"), ValueError, "q must"),
    (lambda: data_sparse.make_rare_features(c_frac=0.0), ValueError, "c_frac"),
    (lambda: data_sparse.make_rare_features(c_frac=1.5), ValueError, "c_frac"),
    (lambda: data_sparse.make_rare_features(n=100, d=10, c_frac=0.05), ValueError,
     "raise d or c_frac"),
    (lambda: data_sparse.make_rare_features(d=0), ValueError, "d must"),
    (lambda: data_sparse.make_rare_features(mu=19.0), ValueError, "mu must"),
    (lambda: data_sparse.make_rare_features(L=-1.0), ValueError, "L must"),
    (lambda: data_sparse.make_rare_features(noise=-1.0), ValueError, "noise"),
    (lambda: data_sparse.make_rare_features(x_star=float("nan")), ValueError, "x_star"),
    (lambda: data_sparse.ownership(np.zeros((2, 2))), TypeError, "data"),
    (lambda: LinearRegression(sparse_data(), regulariser="some"), ValueError, "regulariser"),
])
def test_bad_input_names_the_argument(call, exc, needle):
    with pytest.raises(exc, match=needle):
        call()


def test_adaptive_step_bad_options():
    prob = LinearRegression(sparse_data(), lam=0.1, oracle="numpy")
    with pytest.raises(ValueError, match="gamma must be a theory rule"):
        algorithms.run(prob, "ef21", gamma=0.1, iters=1, adaptive_step=True,
                       backend="numpy")
    with pytest.raises(ValueError, match="adaptive_step applies to ef21 only"):
        algorithms.run(prob, "ef21-w", iters=1, adaptive_step=True, backend="numpy")
    with pytest.raises(TypeError, match="adaptive_step"):
        algorithms.run(prob, "ef21", iters=1, adaptive_step=1, backend="numpy")
