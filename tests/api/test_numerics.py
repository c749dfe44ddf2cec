"""Numerical stability of the problems' oracles at extreme margins and large inputs.

pytest runs with warnings as errors, so any overflow/invalid RuntimeWarning fails a
test. The oracles silence NumPy's floating-point flags themselves (``_errstate``) so
that a diverging run stays quiet; to prove that nothing overflows *inside* them at
these inputs, the tests also swap that context for one that raises on overflow,
invalid operations and division by zero (underflow of exp(-1e4) to 0 is expected).
Expected values come from scalar formulas in plain Python ``math``, written stably.
"""

import math

import numpy as np
import pytest

scipy_sparse = pytest.importorskip("scipy.sparse")

from ef21fast.methods import problems  # noqa: E402
from ef21fast.methods.data import ClientData  # noqa: E402

LAM = 0.1
# Rows of the tiny problem, with labels; x = s * (1, 1, -1) gives margins b a^T x of
# +s, -s, -s, -2s, +s: both signs, all huge.
ROWS = np.array([[1.0, 0.0, 0.0],
                 [0.0, 1.0, 0.0],
                 [0.0, 0.0, 1.0],
                 [1.0, 1.0, 0.0],
                 [0.0, 0.0, -1.0]])
LABELS = np.array([1.0, -1.0, 1.0, -1.0, -1.0])
SPLITS = {
    "equal": [0, 2, 4, 5],      # dense: batched-matmul path (clients 0..n-2 equal)
    "unequal": [0, 1, 3, 5],    # dense: the sparse client-averaging matrix path
}


@pytest.fixture
def raise_inside(monkeypatch):
    """Make the oracles' own errstate raise on overflow, invalid and divide."""
    monkeypatch.setattr(problems, "_errstate", lambda: np.errstate(
        over="raise", invalid="raise", divide="raise", under="ignore"))


def _data(split, sparse, A=ROWS, b=LABELS):
    A = scipy_sparse.csr_matrix(A) if sparse else np.ascontiguousarray(A)
    return ClientData(A, np.ascontiguousarray(b), np.array(SPLITS[split]), name="tiny")


def _log1pexp_neg(t):
    """log(1 + exp(-t)), stably."""
    return -t + math.log1p(math.exp(t)) if t < 0 else math.log1p(math.exp(-t))


def _sigmoid_neg(t):
    """1 / (1 + exp(t)), stably."""
    return 1.0 / (1.0 + math.exp(t)) if t <= 0 else math.exp(-t) / (1.0 + math.exp(-t))


def _reg_value(x):
    return LAM * sum(v * v / (1.0 + v * v) for v in map(float, x))


def _reg_grad(x):
    out = []
    for v in map(float, x):
        t = 1.0 / (1.0 + v * v)  # 2 lam v / (1 + v^2)^2 without squaring 1 + v^2
        out.append(2.0 * LAM * (v * t) * t)
    return np.array(out)


def _expected_logistic(x, offsets, A=ROWS, b=LABELS):
    losses, grads = [], []
    for i in range(len(offsets) - 1):
        rows = range(offsets[i], offsets[i + 1])
        m = len(rows)
        t = [b[j] * float(A[j] @ x) for j in rows]
        losses.append(sum(_log1pexp_neg(tj) for tj in t) / m + _reg_value(x))
        g = sum(-b[j] * _sigmoid_neg(tj) * A[j] for j, tj in zip(rows, t)) / m
        grads.append(g + _reg_grad(x))
    return np.array(losses), np.array(grads)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("s", [1e4, -1e4, 1e6, -1e6, 1e150])
def test_logistic_extreme_margins(raise_inside, split, sparse, s):
    """Margins of +-1e4 and beyond: finite, exact limits, no warning, no overflow."""
    p = problems.LogisticRegression(_data(split, sparse), lam=LAM)
    x = s * np.array([1.0, 1.0, -1.0])
    want_f, want_G = _expected_logistic(x, SPLITS[split])
    losses = p.client_losses(x)
    G = p.client_grads(x)
    g = p.grad(x)
    f = p.loss(x)
    for arr in (losses, G, g, np.array(f)):
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(losses, want_f, rtol=1e-13)
    np.testing.assert_allclose(G, want_G, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(g, want_G.mean(axis=0), rtol=1e-13, atol=1e-300)
    assert f == pytest.approx(want_f.mean(), rel=1e-13)
    # minibatches holding every sample are the full gradients
    Gs = p.client_stochastic_grads(x, p.m_i, np.random.default_rng(0))
    np.testing.assert_allclose(Gs, G, rtol=1e-13, atol=1e-300)


def test_logistic_limits_exact(raise_inside):
    """The limits themselves: a sample with margin +1e4 adds 0 to the loss and nothing
    to the gradient; one with margin -1e4 adds exactly 1e4 and slope -b a."""
    A = np.array([[1.0], [1.0]])
    b = np.array([1.0, -1.0])
    x = np.array([1e4])
    for sparse in (False, True):
        M = scipy_sparse.csr_matrix(A) if sparse else A
        one = problems.LogisticRegression(
            ClientData(M, b, np.array([0, 1, 2])), lam=0.0)
        losses = one.client_losses(x)
        G = one.client_grads(x)
        assert losses[0] == 0.0 and losses[1] == 1e4
        assert G[0, 0] == 0.0 and G[1, 0] == 1.0  # slope -b * sigmoid(-t) = -(-1) * 1
        assert one.loss(x) == 5e3


def test_logistic_oracle_quiet_for_nonfinite_iterates():
    """A diverged iterate (inf, nan) gives non-finite outputs without any warning."""
    p = problems.LogisticRegression(_data("equal", False), lam=LAM)
    for x in (np.array([np.inf, 1.0, -1.0]), np.array([np.nan, 0.0, 0.0])):
        p.client_losses(x)
        p.client_grads(x)
        p.grad(x)


def _expected_linear(x, offsets, A, b):
    losses, grads = [], []
    for i in range(len(offsets) - 1):
        rows = range(offsets[i], offsets[i + 1])
        m = len(rows)
        r = [float(A[j] @ x) - b[j] for j in rows]
        losses.append(sum(rj * rj for rj in r) / m + _reg_value(x))
        grads.append(sum(2.0 * rj * A[j] for j, rj in zip(rows, r)) / m + _reg_grad(x))
    return np.array(losses), np.array(grads)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("scale_a, scale_x", [(1.0, 1e4), (1e100, 1e49), (1e-100, 1e150)])
def test_linear_large_inputs(raise_inside, split, sparse, scale_a, scale_x):
    """Least squares with residuals up to ~1e150 (squares ~1e300, still finite):
    finite, accurate, no overflow inside."""
    A = ROWS * scale_a
    b = LABELS * 3.0
    p = problems.LinearRegression(_data(split, sparse, A=A, b=b), lam=LAM)
    assert np.isfinite(p.L) and np.all(np.isfinite(p.L_i))
    x = scale_x * np.array([1.0, 1.0, -1.0])
    want_f, want_G = _expected_linear(x, SPLITS[split], A, b)
    losses, G, g = p.client_losses(x), p.client_grads(x), p.grad(x)
    for arr in (losses, G, g):
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(losses, want_f, rtol=1e-12)
    np.testing.assert_allclose(G, want_G, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(g, want_G.mean(axis=0), rtol=1e-12, atol=1e-300)


def test_linear_overflowing_residual_is_inf_and_quiet():
    """Past the float64 range the loss is +inf, silently (warnings are errors here)."""
    p = problems.LinearRegression(_data("equal", False, A=ROWS * 1e100), lam=LAM)
    x = 1e300 * np.array([1.0, 1.0, -1.0])
    assert np.all(np.isinf(p.client_losses(x)))
    assert np.isinf(p.loss(x))
    p.client_grads(x)
