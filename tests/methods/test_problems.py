"""ef21fast.methods.problems: oracles against finite differences, per-client loops, eigvalsh."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.methods import theory
from ef21fast.methods.data import ClientData, load_libsvm, make_synthetic, split_clients
from ef21fast.methods.problems import ClonedProblem, LinearRegression, LogisticRegression

DATA_DIR = Path(os.environ.get("EF21FAST_DATA_DIR",
                               Path(__file__).resolve().parents[3] / "shared" / "data"))

CLASSES = [LogisticRegression, LinearRegression]
LAM = 0.1


def make_data(sparse=False, seed=0, offsets=(0, 3, 4, 9, 17, 20), d=6, density=0.5):
    """Small split with unequal client sizes (and a one-row client)."""
    rng = np.random.default_rng(seed)
    off = np.asarray(offsets, dtype=np.int64)
    m = int(off[-1])
    A = rng.standard_normal((m, d)) * (rng.random((m, d)) < density)
    A *= rng.lognormal(0, 0.7, (m, 1))
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    if sparse:
        A = sp.csr_matrix(A)
    return ClientData(A, b, off, "small")


# ---------------------------------------------------------------- plain reference

def ref_client_loss(cls, Ai, bi, x, lam):
    Ai = Ai.toarray() if sp.issparse(Ai) else Ai
    z = Ai @ x
    reg = lam * np.sum(x**2 / (1 + x**2))
    if cls is LogisticRegression:
        return np.mean(np.log1p(np.exp(-bi * z))) + reg
    return np.mean((z - bi) ** 2) + reg


def ref_client_grad(cls, Ai, bi, x, lam):
    Ai = Ai.toarray() if sp.issparse(Ai) else Ai
    z = Ai @ x
    reg = 2 * lam * x / (1 + x**2) ** 2
    if cls is LogisticRegression:
        s = -bi / (1 + np.exp(bi * z))
    else:
        s = 2 * (z - bi)
    return Ai.T @ s / len(bi) + reg


def ref_client_L(cls, Ai, lam):
    Ai = Ai.toarray() if sp.issparse(Ai) else Ai
    lmax = np.linalg.eigvalsh(Ai.T @ Ai)[-1]
    c = 0.25 if cls is LogisticRegression else 2.0
    return c * lmax / Ai.shape[0] + 2 * lam


def x_point(d, seed=3, scale=0.5):
    return np.random.default_rng(seed).standard_normal(d) * scale


# -------------------------------------------------------------------- gradients

@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
def test_client_oracles_vs_per_client_loop(cls, sparse):
    data = make_data(sparse)
    prob = cls(data, lam=LAM)
    x = x_point(data.d)
    G = prob.client_grads(x)
    assert G.shape == (data.n, data.d) and G.dtype == np.float64
    losses = prob.client_losses(x)
    assert losses.shape == (data.n,)
    for i in range(data.n):
        Ai, bi = data.client(i)
        np.testing.assert_allclose(G[i], ref_client_grad(cls, Ai, bi, x, LAM),
                                   rtol=1e-12, atol=1e-14)
        assert losses[i] == pytest.approx(ref_client_loss(cls, Ai, bi, x, LAM), rel=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_vs_central_differences(cls, sparse):
    data = make_data(sparse)
    prob = cls(data, lam=LAM)
    x = x_point(data.d)
    h = 1e-6
    E = np.eye(data.d)
    fd = np.array([(prob.loss(x + h * e) - prob.loss(x - h * e)) / (2 * h) for e in E])
    np.testing.assert_allclose(prob.grad(x), fd, rtol=1e-6, atol=1e-8)
    fd_i = np.array([(prob.client_losses(x + h * e) - prob.client_losses(x - h * e))
                     / (2 * h) for e in E]).T
    np.testing.assert_allclose(prob.client_grads(x), fd_i, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls", CLASSES)
def test_regulariser_gradient_vs_central_differences_far_from_zero(cls):
    data = make_data(False)
    prob = cls(data, lam=LAM)
    x = np.array([-30.0, -2.0, -1.0, 0.0, 1.0, 7.5])
    h = 1e-6
    fd = np.array([(prob.loss(x + h * e) - prob.loss(x - h * e)) / (2 * h)
                   for e in np.eye(data.d)])
    np.testing.assert_allclose(prob.grad(x), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls", CLASSES)
def test_dense_equals_sparse(cls):
    pd_, ps = cls(make_data(False), lam=LAM), cls(make_data(True), lam=LAM)
    x = x_point(pd_.d)
    np.testing.assert_allclose(pd_.client_grads(x), ps.client_grads(x), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(pd_.grad(x), ps.grad(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(pd_.client_losses(x), ps.client_losses(x), rtol=1e-13)
    assert pd_.loss(x) == pytest.approx(ps.loss(x), rel=1e-13)
    np.testing.assert_allclose(pd_.L_i, ps.L_i, rtol=1e-12)
    assert pd_.L == pytest.approx(ps.L, rel=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
def test_mean_of_client_oracles_is_global(cls, sparse):
    prob = cls(make_data(sparse), lam=LAM)
    x = x_point(prob.d)
    np.testing.assert_allclose(prob.client_grads(x).mean(axis=0), prob.grad(x),
                               rtol=1e-12, atol=1e-14)
    assert prob.client_losses(x).mean() == pytest.approx(prob.loss(x), rel=1e-14)


@pytest.mark.parametrize("cls", CLASSES)
def test_equal_sized_clients_fast_path(cls):
    # n - 1 clients of equal size (the batched-matmul path) vs the general path
    rng = np.random.default_rng(4)
    A = rng.standard_normal((23, 5))
    b = np.where(rng.random(23) < 0.5, -1.0, 1.0)
    data = split_clients(A, b, 4)  # sizes 5, 5, 5, 8
    prob = cls(data, lam=LAM)
    assert prob._q == 5
    x = x_point(5)
    for i in range(4):
        Ai, bi = data.client(i)
        np.testing.assert_allclose(prob.client_grads(x)[i],
                                   ref_client_grad(cls, Ai, bi, x, LAM), rtol=1e-12)
    one = cls(split_clients(A, b, 1), lam=LAM)
    np.testing.assert_allclose(one.client_grads(x)[0],
                               ref_client_grad(cls, A, b, x, LAM), rtol=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_fortran_ordered_input(cls):
    data = make_data(False)
    fdata = ClientData(np.asfortranarray(data.A), data.b, data.offsets)
    x = x_point(data.d)
    np.testing.assert_allclose(cls(fdata).client_grads(x), cls(data).client_grads(x),
                               rtol=1e-14)


def test_oracles_do_not_modify_inputs():
    data = make_data(True)
    A0 = data.A.copy()
    prob = LogisticRegression(data)
    x = x_point(data.d)
    x0 = x.copy()
    prob.client_grads(x)
    prob.client_stochastic_grads(x, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x0)
    assert (data.A != A0).nnz == 0


def test_x_shape_checked():
    prob = LogisticRegression(make_data(False))
    for bad in (np.zeros(prob.d + 1), np.zeros((1, prob.d))):
        with pytest.raises(ValueError):
            prob.client_grads(bad)
        with pytest.raises(ValueError):
            prob.grad(bad)


def test_invalid_lam_and_data():
    with pytest.raises(ValueError):
        LogisticRegression(make_data(), lam=-1.0)
    with pytest.raises(ValueError):
        LogisticRegression(make_data(), lam=float("nan"))
    with pytest.raises(TypeError):
        LogisticRegression(np.zeros((3, 3)))


# ------------------------------------------------------------------ constants

@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
def test_L_i_vs_eigvalsh(cls, sparse):
    data = make_data(sparse)
    prob = cls(data, lam=LAM)
    assert prob.L_i.shape == (data.n,)
    for i in range(data.n):
        Ai, _ = data.client(i)
        assert prob.L_i[i] == pytest.approx(ref_client_L(cls, Ai, LAM), rel=1e-12)
    assert prob.m_i.tolist() == np.diff(data.offsets).tolist()
    assert prob.m_i.dtype == np.int64


@pytest.mark.parametrize("cls", CLASSES)
def test_L_whole_data_equal_sizes(cls):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((40, 7))
    b = np.where(rng.random(40) < 0.5, -1.0, 1.0)
    prob = cls(split_clients(A, b, 8), lam=LAM)  # equal m_i = 5
    c = 0.25 if cls is LogisticRegression else 2.0
    expect = c * np.linalg.eigvalsh(A.T @ A)[-1] / 40 + 2 * LAM
    assert prob.L == pytest.approx(expect, rel=1e-12)
    assert prob.L <= theory.l_am(prob.L_i) * (1 + 1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_L_unequal_sizes_is_smoothness_of_f(cls):
    data = make_data(False)
    prob = cls(data, lam=LAM)
    W = sum(Ai.T @ Ai / len(bi) for Ai, bi in (data.client(i) for i in range(data.n)))
    c = 0.25 if cls is LogisticRegression else 2.0
    assert prob.L == pytest.approx(c * np.linalg.eigvalsh(W / data.n)[-1] + 2 * LAM,
                                   rel=1e-12)
    assert prob.L <= theory.l_am(prob.L_i) * (1 + 1e-12)


def test_L_i_large_feature_count_paths():
    # d > the dense-Gram limit: lambda_max from the small side / ARPACK
    rng = np.random.default_rng(6)
    m, d = 60, 3000
    A = sp.random(m, d, density=0.01, random_state=7, format="csr")
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    data = split_clients(A, b, 3)
    prob = LogisticRegression(data)
    for i in range(3):
        Ai = data.client(i)[0].toarray()
        expect = np.linalg.svd(Ai, compute_uv=False)[0] ** 2 / (4 * Ai.shape[0]) + 0.2
        assert prob.L_i[i] == pytest.approx(expect, rel=1e-10)
    W = A.toarray()
    W = W * np.sqrt(1.0 / (3 * data.m_i[np.repeat(np.arange(3), data.m_i)]))[:, None]
    assert prob.L == pytest.approx(np.linalg.svd(W, compute_uv=False)[0] ** 2 / 4 + 0.2,
                                   rel=1e-9)


# ------------------------------------------------------------------- stability

def test_logistic_stable_for_huge_margins():
    # margins +1e4 (client 0) and -1e4 (client 1); x = 1 -> reg = 0.05, reg' = 0.05
    A = np.array([[1e4], [-1e4]])
    b = np.array([1.0, 1.0])
    for data in (ClientData(A, b, np.array([0, 1, 2])),
                 ClientData(sp.csr_matrix(A), b, np.array([0, 1, 2]))):
        prob = LogisticRegression(data, lam=0.1)
        x = np.array([1.0])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            losses = prob.client_losses(x)
            G = prob.client_grads(x)
            g = prob.grad(x)
            S = prob.client_stochastic_grads(x, 1, np.random.default_rng(0))
        for v in (losses, G, g, S):
            assert np.all(np.isfinite(v))
        np.testing.assert_allclose(losses, [0.05, 1e4 + 0.05], rtol=1e-15)
        np.testing.assert_allclose(G[:, 0], [0.05, 1e4 + 0.05], rtol=1e-15)
        np.testing.assert_allclose(S, G, rtol=1e-15)
        assert g[0] == pytest.approx((0.05 + 1e4 + 0.05) / 2, rel=1e-15)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("xval", [1e200, -1e300, np.inf, np.nan])
def test_diverged_iterates_do_not_warn(cls, xval):
    prob = cls(make_data(False))
    x = np.full(prob.d, xval)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prob.loss(x)
        prob.grad(x)
        prob.client_grads(x)
        prob.client_stochastic_grads(x, 2, np.random.default_rng(0))


def test_regulariser_limits():
    from ef21fast.methods.problems import _reg_grad, _reg_value

    x = np.array([0.0, 1.0, 1e200, -np.inf, 1e-200])
    assert _reg_value(1.0, x) == pytest.approx(0 + 0.5 + 1 + 1 + 0, rel=1e-15)
    # an infinite coordinate has no gradient: NaN marks the diverged iterate
    np.testing.assert_allclose(_reg_grad(1.0, x), [0, 0.5, 0, np.nan, 2e-200], rtol=1e-15)


# ------------------------------------------------------------ stochastic oracle

@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
def test_stochastic_full_batch_equals_client_grads(cls, sparse):
    prob = cls(make_data(sparse), lam=LAM)
    x = x_point(prob.d)
    G = prob.client_grads(x)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(prob.client_stochastic_grads(x, prob.m_i, rng), G,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(prob.client_stochastic_grads(x, 10**9, rng), G,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
def test_stochastic_is_seeded(sparse):
    prob = LogisticRegression(make_data(sparse))
    x = x_point(prob.d)
    a = prob.client_stochastic_grads(x, 2, np.random.default_rng(42))
    b = prob.client_stochastic_grads(x, 2, np.random.default_rng(42))
    c = prob.client_stochastic_grads(x, 2, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cls", CLASSES)
def test_stochastic_batch_one_is_a_sample_of_the_client(cls):
    data = make_data(False)
    prob = cls(data, lam=LAM)
    x = x_point(prob.d)
    rng = np.random.default_rng(1)
    seen = [set() for _ in range(data.n)]
    for _ in range(60):
        S = prob.client_stochastic_grads(x, 1, rng)
        for i in range(data.n):
            Ai, bi = data.client(i)
            per_sample = np.array([ref_client_grad(cls, Ai[j:j + 1], bi[j:j + 1], x, LAM)
                                   for j in range(len(bi))])
            dist = np.abs(per_sample - S[i]).max(axis=1)
            j = int(np.argmin(dist))
            assert dist[j] < 1e-12
            seen[i].add(j)
    # every sample of every client gets drawn (60 draws, at most 8 samples per client)
    assert [len(s) for s in seen] == data.m_i.tolist()


def test_stochastic_mean_is_unbiased():
    prob = LinearRegression(make_data(False))
    x = x_point(prob.d)
    rng = np.random.default_rng(2)
    batch = np.array([2, 1, 3, 4, 2])
    S = np.mean([prob.client_stochastic_grads(x, batch, rng) for _ in range(4000)], axis=0)
    G = prob.client_grads(x)
    assert np.abs(S - G).max() < 0.1 * np.abs(G).max()


def test_stochastic_invalid_arguments():
    prob = LogisticRegression(make_data(False))
    x = x_point(prob.d)
    rng = np.random.default_rng(0)
    for batch in (0, -1, [1, 2], np.ones((5, 1), dtype=int), 1.5):
        with pytest.raises(ValueError):
            prob.client_stochastic_grads(x, batch, rng)
    with pytest.raises(TypeError):
        prob.client_stochastic_grads(x, 1, 0)


# ----------------------------------------------------------------------- clones

@pytest.mark.parametrize("cls", CLASSES)
def test_cloned_problem(cls):
    base = cls(make_synthetic(n=30, d=8, m_per_client=5, spread=3.0,
                              kind="logreg" if cls is LogisticRegression else "linreg"))
    cl = ClonedProblem(base)
    Ni = theory.clone_counts(base.L_i)
    N = int(Ni.sum())
    assert cl.n == N and N <= 2 * base.n and N > base.n
    np.testing.assert_array_equal(cl.counts, Ni)
    assert cl.L == base.L and cl.d == base.d and cl.lam == base.lam
    am = theory.l_am(base.L_i)
    np.testing.assert_allclose(cl.L_i, np.repeat(N * base.L_i / (base.n * Ni), Ni))
    assert np.all(cl.L_i <= 2 * am * (1 + 1e-12))
    # the clones' quadratic mean is within a small factor of L_AM, unlike L_QM
    assert theory.l_qm(cl.L_i) <= 2 * am
    assert theory.l_qm(base.L_i) > 2.5 * am

    x = x_point(base.d)
    G = cl.client_grads(x)
    assert G.shape == (N, base.d)
    np.testing.assert_allclose(G.mean(axis=0), base.grad(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(G, np.repeat(base.client_grads(x) * (N / (base.n * Ni))[:, None],
                                            Ni, axis=0), rtol=1e-15)
    assert cl.loss(x) == base.loss(x)
    assert cl.client_losses(x).mean() == pytest.approx(base.loss(x), rel=1e-13)
    np.testing.assert_array_equal(cl.grad(x), base.grad(x))

    rng = np.random.default_rng(0)
    S = cl.client_stochastic_grads(x, cl.m_i, rng)
    np.testing.assert_allclose(S, G, rtol=0, atol=1e-12)
    S1 = cl.client_stochastic_grads(x, 1, np.random.default_rng(5))
    S2 = cl.client_stochastic_grads(x, 1, np.random.default_rng(5))
    np.testing.assert_array_equal(S1, S2)
    assert S1.shape == (N, base.d)


def test_cloned_problem_explicit_counts_and_errors():
    base = LogisticRegression(make_data(False))
    cl = ClonedProblem(base, counts=[1, 2, 1, 1, 3])
    assert cl.n == 8
    assert cl.source.tolist() == [0, 1, 1, 2, 3, 4, 4, 4]
    x = x_point(base.d)
    np.testing.assert_allclose(cl.client_grads(x).mean(axis=0), base.grad(x), rtol=1e-12)
    for bad in ([1, 2, 1], [1, 0, 1, 1, 1], [1.0] * 5):
        with pytest.raises(ValueError):
            ClonedProblem(base, counts=bad)
    with pytest.raises(TypeError):
        ClonedProblem(cl)


# ---------------------------------------------------------------- real data

def real(name):
    path = DATA_DIR / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"development data {path} not available")
    return load_libsvm(path)


def test_mushrooms_n1000_dense_sparse_and_loop():
    A, b = real("mushrooms")
    ds = split_clients(A, b, 1000)
    dd = ds.dense()
    ps, pd_ = LogisticRegression(ds), LogisticRegression(dd)
    x = x_point(ds.d, scale=0.1)
    G = pd_.client_grads(x)
    np.testing.assert_allclose(ps.client_grads(x), G, rtol=1e-12, atol=1e-15)
    for i in (0, 1, 500, 998, 999):
        Ai, bi = dd.client(i)
        np.testing.assert_allclose(G[i], ref_client_grad(LogisticRegression, Ai, bi, x, 0.1),
                                   rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pd_.L_i, ps.L_i, rtol=1e-12)
