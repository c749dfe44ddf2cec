"""ef21fast.methods.theory_sgd against hand computations and exhaustive enumeration of
the minibatches (docs/maths.rst, "Stochastic gradients"), and the ``sgd_theory``
option of the SGD methods."""

import itertools
import math

import numpy as np
import pytest

from ef21fast.methods import algorithms, theory, theory_sgd
from ef21fast.methods.data import ClientData
from ef21fast.methods.problems import LinearRegression, LogisticRegression


def tiny_data(kind="logreg", seed=0, sizes=(4, 5, 3), d=3):
    rng = np.random.default_rng(seed)
    m = sum(sizes)
    A = rng.standard_normal((m, d)) * rng.uniform(0.5, 2.0, (m, 1))
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0) if kind == "logreg" \
        else rng.standard_normal(m)
    off = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    return ClientData(A, b, off, "tiny")


def sample_grads(kind, Ai, bi, x):
    """Loss gradient of every sample of one client, by the per-sample formula."""
    z = Ai @ x
    if kind == "logreg":
        s = -bi / (1.0 + np.exp(bi * z))
    else:
        s = 2.0 * (z - bi)
    return s[:, None] * Ai


def exact_variance(V, tau):
    """E ||mean of a tau-subset - mean||^2 over all subsets (enumerated)."""
    mean = V.mean(axis=0)
    subsets = list(itertools.combinations(range(len(V)), tau))
    return sum(float(np.sum((V[list(s)].mean(axis=0) - mean) ** 2))
               for s in subsets) / len(subsets)


# ---------------------------------------------------------------- sampling factor

def test_sampling_factor_hand_values():
    np.testing.assert_allclose(theory_sgd.sampling_factor([5, 5, 1, 4], [2, 5, 1, 9]),
                               [3 / 8, 0.0, 0.0, 0.0], rtol=1e-15)


@pytest.mark.parametrize("m, tau", [(5, 1), (5, 2), (6, 3), (4, 3)])
def test_sampling_factor_is_the_exact_variance_ratio(m, tau):
    V = np.random.default_rng(m * 10 + tau).standard_normal((m, 3))
    pop = float(np.mean(np.sum((V - V.mean(axis=0)) ** 2, axis=1)))
    kappa = theory_sgd.sampling_factor([m], tau)[0]
    assert exact_variance(V, tau) == pytest.approx(kappa * pop, rel=1e-12)


# ------------------------------------------------------------------ A, B, C

def test_minibatch_abc_logreg_hand_and_bound():
    data = tiny_data("logreg")
    prob = LogisticRegression(data, lam=0.1, oracle="numpy")
    A, B, C = theory_sgd.minibatch_abc(prob, 2)
    assert np.all(A == 0) and np.all(B == 1)
    for i in range(data.n):
        Ai, bi = data.client(i)
        m = Ai.shape[0]
        kappa = (m - 2) / (2 * (m - 1))
        assert C[i] == pytest.approx(kappa * np.sum(Ai * Ai) / m, rel=1e-13)
        for seed in range(3):  # the bound holds wherever x is
            x = np.random.default_rng(seed).standard_normal(data.d) * 3
            assert exact_variance(sample_grads("logreg", Ai, bi, x), 2) <= C[i] * (1 + 1e-12)


def test_minibatch_abc_linreg_hand_and_bound():
    data = tiny_data("linreg")
    prob = LinearRegression(data, lam=0.1, oracle="numpy")
    A, B, C = theory_sgd.minibatch_abc(prob, 2)
    assert np.all(B == 1)
    for i in range(data.n):
        Ai, bi = data.client(i)
        m = Ai.shape[0]
        kappa = (m - 2) / (2 * (m - 1))
        a_max = max(float(r @ r) for r in Ai)
        assert A[i] == pytest.approx(2 * kappa * a_max, rel=1e-13)
        assert C[i] == pytest.approx(2 * A[i] * float(bi @ bi) / m, rel=1e-13)
        for seed in range(3):  # variance <= 2 A_i f_i(x), the bound before f_i^inf
            x = np.random.default_rng(seed).standard_normal(data.d)
            fi = float(np.mean((Ai @ x - bi) ** 2)) + 0.1 * float(np.sum(x * x / (1 + x * x)))
            assert exact_variance(sample_grads("linreg", Ai, bi, x), 2) <= 2 * A[i] * fi


# ------------------------------------------------------------- step, neighbourhood

def test_gamma_sgd_hand_values():
    xi = math.sqrt(0.75) / (1 - math.sqrt(0.75))  # xi(alpha_rho), alpha_rho = 0.25
    assert theory_sgd.sgd_alpha(0.5) == pytest.approx(0.25, rel=1e-15)
    assert theory_sgd.gamma_sgd(1.0, [1.0, 3.0], 0.5) == pytest.approx(
        1 / (1 + math.sqrt(5) * xi), rel=1e-13)
    assert theory_sgd.gamma_sgd(1.0, [1.0, 3.0], 0.5, weighted=True) == pytest.approx(
        1 / (1 + 2 * xi), rel=1e-13)
    assert theory_sgd.gamma_sgd(2.0, [1.0, 3.0], 1.0) == 0.5


@pytest.mark.parametrize("alpha, rho", [(0.5, None), (0.1, 0.05), (0.02, 0.001)])
def test_gamma_sgd_is_the_best_s_of_the_recursion(alpha, rho):
    r = theory_sgd.default_rho(alpha) if rho is None else rho
    s = np.exp(np.linspace(-12, 6, 400001))
    theta = 1 - (1 + r) * (1 + s) * (1 - alpha)
    beta1 = (1 + r) * (1 + 1 / s) * (1 - alpha)
    best = np.sqrt(np.min(np.where(theta > 0, beta1 / theta, np.inf)))
    L_i = [2.0, 5.0, 1.0]
    L_qm = math.sqrt(np.mean(np.square(L_i)))
    assert theory_sgd.gamma_sgd(1.5, L_i, alpha, rho) == pytest.approx(
        1 / (1.5 + L_qm * best), rel=1e-6)


def test_sgd_neighbourhood_hand_values():
    C = [0.5, 1.5]
    # alpha = 0.5, rho = 0.5: beta2 = 1.5 * 0.5 + 1 + 2, theta = 1 - sqrt(0.75)
    assert theory_sgd.sgd_neighbourhood([1.0, 3.0], 0.5, C) == pytest.approx(
        3.75 / (1 - math.sqrt(0.75)) * 1.0, rel=1e-13)
    weighted = np.mean(np.array(C) * 2.0 / np.array([1.0, 3.0]))
    assert theory_sgd.sgd_neighbourhood([1.0, 3.0], 0.5, C, weighted=True) == \
        pytest.approx(3.75 / (1 - math.sqrt(0.75)) * weighted, rel=1e-13)
    assert theory_sgd.sgd_neighbourhood([1.0, 3.0], 1.0, C) == 1.0
    assert theory_sgd.sgd_neighbourhood([1.0, 3.0], 0.5, [0.0, 0.0]) == 0.0


@pytest.mark.parametrize("call, needle", [
    (lambda: theory_sgd.sampling_factor([0, 2], 1), "m_i"),
    (lambda: theory_sgd.sampling_factor([3.0], 1), "m_i"),
    (lambda: theory_sgd.sampling_factor([3, 4], 0), "batch"),
    (lambda: theory_sgd.sampling_factor([3, 4], [1, 2, 3]), "batch"),
    (lambda: theory_sgd.sampling_factor([3, 4], 1.5), "batch"),
    (lambda: theory_sgd.minibatch_abc(object(), 1), "problem"),
    (lambda: theory_sgd.gamma_sgd(1.0, [1.0], 0.5, rho=1.0), "rho"),
    (lambda: theory_sgd.gamma_sgd(1.0, [1.0], 0.5, rho=-1.0), "rho"),
    (lambda: theory_sgd.gamma_sgd(0.0, [1.0], 0.5), "L"),
    (lambda: theory_sgd.gamma_sgd(1.0, [1.0], 0.0), "alpha"),
    (lambda: theory_sgd.sgd_neighbourhood([1.0], 0.5, [-1.0]), "C_i"),
    (lambda: theory_sgd.sgd_neighbourhood([1.0, 2.0], 0.5, [1.0]), "C_i"),
    (lambda: theory_sgd.default_rho(2.0), "alpha"),
])
def test_bad_input_names_the_argument(call, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        call()


# ------------------------------------------------------------ the methods' option

def test_sgd_theory_sets_the_derived_step_and_neighbourhood():
    prob = LogisticRegression(tiny_data("logreg"), lam=0.1, oracle="numpy")
    alpha = theory.topk_alpha(1, prob.d)
    for method, rule, weighted in (("ef21-sgd", "theory-qm", False),
                                   ("ef21-sgd", "theory-am", True),
                                   ("ef21-w-sgd", "theory-am", True)):
        tr = algorithms.run(prob, method, gamma=rule, iters=2, batch=2, sgd_theory=True,
                            backend="numpy")
        assert tr.gamma == theory_sgd.gamma_sgd(prob.L, prob.L_i, alpha, weighted=weighted)
        assert "SGD (derived)" in tr.gamma_rule
        _, _, C = theory_sgd.minibatch_abc(prob, 2)
        assert tr.extra["sgd_neighbourhood"] == theory_sgd.sgd_neighbourhood(
            prob.L_i, alpha, C, weighted=weighted)
        g, _ = algorithms.step_size(prob, method, rule, batch=2, sgd_theory=True)
        assert g == tr.gamma
        # the default (sgd_theory=None) is the same step where it is derived
        default = algorithms.run(prob, method, gamma=rule, iters=2, batch=2,
                                 backend="numpy")
        assert default.gamma == tr.gamma and default.gamma_rule == tr.gamma_rule
        assert default.extra["sgd_neighbourhood"] == tr.extra["sgd_neighbourhood"]
    # sgd_theory=False: the deterministic formula, as before the default changed
    tr = algorithms.run(prob, "ef21-sgd", gamma="theory-qm", iters=1, backend="numpy",
                        sgd_theory=False)
    assert tr.gamma == theory.gamma_qm(prob.L, prob.L_i, alpha)
    assert "sgd_theory off" in tr.gamma_rule
    assert "sgd_neighbourhood" not in tr.extra


def hand_xi(a):
    return math.sqrt(1 - a) / (1 - math.sqrt(1 - a))


@pytest.mark.parametrize("method, rule", [("ef21-sgd", "theory-qm"),
                                          ("ef21-w-sgd", "theory-am")])
def test_default_sgd_step_and_neighbourhood_by_hand(method, rule):
    """The default theory step of the SGD methods on a logistic problem, computed here
    from the data: L_i of the problem, kappa_i and the row norms by hand."""
    data = tiny_data("logreg", seed=3, sizes=(6, 4, 5), d=4)
    prob = LogisticRegression(data, lam=0.1, oracle="numpy")
    k, tau = 1, 3
    alpha = k / data.d
    L_i = np.asarray(prob.L_i)
    mean = math.sqrt(np.mean(L_i ** 2)) if rule == "theory-qm" else float(np.mean(L_i))
    gamma = 1.0 / (prob.L + mean * hand_xi(alpha / 2))
    rho = alpha / (2 * (1 - alpha))
    beta2 = (1 + rho) * (1 - alpha) + 1 + 1 / rho
    theta_rho = 1 - math.sqrt(1 - alpha / 2)
    C = []
    for i in range(data.n):
        Ai, _ = data.client(i)
        m = Ai.shape[0]
        C.append((m - tau) / (tau * (m - 1)) * float(np.sum(Ai * Ai)) / m)
    C = np.array(C)
    sigma2 = float(np.mean(C)) if rule == "theory-qm" else float(
        np.mean(C * np.mean(L_i) / L_i))
    tr = algorithms.run(prob, method, gamma=rule, k=k, batch=tau, iters=1,
                        backend="numpy")
    assert tr.gamma == pytest.approx(gamma, rel=1e-12)
    assert "SGD (derived)" in tr.gamma_rule
    assert tr.extra["sgd_neighbourhood"] == pytest.approx(beta2 / theta_rho * sigma2,
                                                          rel=1e-12)
    assert 0 < tr.gamma < theory.gamma_qm(prob.L, prob.L_i, alpha) if rule == "theory-qm" \
        else 0 < tr.gamma < theory.gamma_am(prob.L, prob.L_i, alpha)
    assert math.isfinite(tr.gamma)


@pytest.mark.parametrize("kind", ["logreg", "linreg"])
@pytest.mark.parametrize("method, rule", [("ef21-sgd", "theory-qm"),
                                          ("ef21-sgd", "theory-am"),
                                          ("ef21-w-sgd", "theory-am")])
def test_full_batch_gives_the_deterministic_step(kind, method, rule):
    cls = LogisticRegression if kind == "logreg" else LinearRegression
    data = tiny_data(kind)
    prob = cls(data, lam=0.1, oracle="numpy")
    alpha = 1 / data.d
    L_i = np.asarray(prob.L_i)
    mean = math.sqrt(np.mean(L_i ** 2)) if rule == "theory-qm" else float(np.mean(L_i))
    tr = algorithms.run(prob, method, gamma=rule, batch=max(data.m_i), iters=1,
                        backend="numpy")
    assert tr.gamma == pytest.approx(1 / (prob.L + mean * hand_xi(alpha)), rel=1e-12)
    assert "zero variance" in tr.gamma_rule
    assert tr.extra["sgd_neighbourhood"] == 0.0


def test_default_keeps_the_deterministic_formula_where_no_step_is_derived():
    lin = LinearRegression(tiny_data("linreg"), lam=0.1, oracle="numpy")
    alpha = 1 / lin.d
    tr = algorithms.run(lin, "ef21-sgd", gamma="theory-qm", batch=2, iters=1,
                        backend="numpy")
    assert tr.gamma == theory.gamma_qm(lin.L, lin.L_i, alpha)
    assert "no SGD step" in tr.gamma_rule
    assert "sgd_neighbourhood" not in tr.extra


def test_sgd_step_hand_values_and_refusals():
    # alpha = 0.5, L_QM = sqrt(5): the derived step; zero C: the EF21 step
    g, nb, noiseless = theory_sgd.sgd_step(1.0, [1.0, 3.0], 0.5, [0, 0], [0.5, 1.5])
    assert g == pytest.approx(1 / (1 + math.sqrt(5) * hand_xi(0.25)), rel=1e-13)
    assert nb == pytest.approx(3.75 / (1 - math.sqrt(0.75)), rel=1e-13)
    assert not noiseless
    g, nb, noiseless = theory_sgd.sgd_step(1.0, [1.0, 3.0], 0.5, [0, 0], [0, 0],
                                           weighted=True)
    assert g == pytest.approx(1 / (1 + 2 * hand_xi(0.5)), rel=1e-13)
    assert nb == 0.0 and noiseless
    with pytest.raises(ValueError, match="A_i > 0"):
        theory_sgd.sgd_step(1.0, [1.0, 3.0], 0.5, [0.0, 0.1], [1.0, 1.0])
    with pytest.raises(ValueError, match="A_i"):
        theory_sgd.sgd_step(1.0, [1.0, 3.0], 0.5, [-1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="A_i"):
        theory_sgd.sgd_step(1.0, [1.0, 3.0], 0.5, [0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="C_i"):
        theory_sgd.sgd_step(1.0, [1.0, 3.0], 0.5, [0.0, 0.0], [1.0, -1.0])


def test_sgd_theory_bound_holds_on_a_run():
    prob = LogisticRegression(tiny_data("logreg", sizes=(8, 9, 7), d=4), lam=0.1,
                              oracle="numpy")
    T = 400
    tr = algorithms.run(prob, "ef21-sgd", gamma="theory-qm", iters=T, batch=3,
                        sgd_theory=True, backend="numpy", seed=1)
    # f^inf >= 0 (loss and regulariser are non-negative)
    bound = 2 * tr.f[0] / (tr.gamma * T) + tr.extra["sgd_neighbourhood"]
    assert np.mean(tr.grad_norm_sq[:T]) <= bound


def test_sgd_theory_refusals():
    lin = LinearRegression(tiny_data("linreg"), lam=0.1, oracle="numpy")
    log = LogisticRegression(tiny_data("logreg"), lam=0.1, oracle="numpy")
    with pytest.raises(ValueError, match="A_i > 0"):
        algorithms.run(lin, "ef21-sgd", iters=1, sgd_theory=True, backend="numpy")
    with pytest.raises(ValueError, match="sgd_theory"):
        algorithms.run(log, "ef21", iters=1, sgd_theory=True, backend="numpy")
    with pytest.raises(ValueError, match="sgd_theory"):
        algorithms.step_size(log, "ef21-pp", sgd_theory=True)
    with pytest.raises(TypeError, match="sgd_theory"):
        algorithms.run(log, "ef21-sgd", iters=1, sgd_theory="yes", backend="numpy")
    with pytest.raises(ValueError, match="A_i > 0"):
        algorithms.step_size(lin, "ef21-w-sgd", "theory-am", batch=2, sgd_theory=True)
    # a numeric gamma is used as given, whatever the estimator
    tr = algorithms.run(lin, "ef21-sgd", gamma=0.01, iters=1, sgd_theory=True,
                        backend="numpy")
    assert tr.gamma == 0.01
