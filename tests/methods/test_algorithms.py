"""The methods of ef21fast.methods.algorithms against plain NumPy loops written from the
maths (docs/maths.rst, "Methods" and "Problems").

Each reference below is a per-client Python loop with its own TopK
(``np.argsort(-|v|, kind="stable")[:k]``: larger magnitude first, ties to the smaller
index, as the kernels) and its own per-client gradients computed from the formulas of
docs/maths.rst on the client's rows. ``run`` must give the same iterates to ~1e-10 relative.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.backends import registry
from ef21fast.methods import algorithms, theory
from ef21fast.methods.data import make_synthetic, split_clients
from ef21fast.methods.problems import LinearRegression, LogisticRegression
from ef21fast.methods.trace import Trace

ROUNDS = 50
RTOL = 1e-10


def complete_backends():
    out = []
    for name in registry.available_backends():
        if not registry.missing_kernels(name):
            out.append(name)
    return out


# ------------------------------------------------------------ reference (docs/maths.rst)

def topk_ref(v: np.ndarray, k: int) -> np.ndarray:
    """C(v): keep the k largest |v_j| (ties: smaller index), zero elsewhere."""
    keep = np.argsort(-np.abs(v), kind="stable")[:k]
    out = np.zeros_like(v)
    out[keep] = v[keep]
    return out


def client_rows(problem, i):
    o = problem.data.offsets
    A = problem.data.A[o[i]:o[i + 1]]
    A = A.toarray() if sp.issparse(A) else np.asarray(A)
    return A, np.asarray(problem.data.b[o[i]:o[i + 1]])


def grad_ref(problem, i, x):
    """grad f_i(x) from the formulas of docs/maths.rst ("Problems"), on client i's rows."""
    A, b = client_rows(problem, i)
    m = len(b)
    if isinstance(problem, LogisticRegression):
        margin = b * (A @ x)
        g = A.T @ (-b / (1.0 + np.exp(margin))) / m
    else:
        g = 2.0 * A.T @ (A @ x - b) / m
    return g + 2.0 * problem.lam * x / (1.0 + x * x) ** 2


def all_grads_ref(problem, x):
    return np.array([grad_ref(problem, i, x) for i in range(problem.n)])


def ref_gd(problem, gamma, x0, T):
    x, xs = x0.copy(), []
    for _ in range(T):
        x = x - gamma * all_grads_ref(problem, x).mean(axis=0)
        xs.append(x)
    return xs


def ref_ef14(problem, gamma, k, x0, T):
    n, d = problem.n, problem.d
    x, e, xs = x0.copy(), np.zeros((n, d)), []
    for _ in range(T):
        c = np.zeros((n, d))
        for i in range(n):
            e[i] = e[i] + gamma * grad_ref(problem, i, x)
            c[i] = topk_ref(e[i], k)
            e[i] = e[i] - c[i]
        x = x - c.sum(axis=0) / n
        xs.append(x)
    return xs


def ref_ef21(problem, gamma, k, x0, T, weighted=False, grads=None, participants=None):
    """EF21 / EF21-W; ``grads(t, x)`` gives the (n, d) gradients used by the clients
    in round t (default: exact), ``participants(t)`` the clients that take part."""
    n = problem.n
    x = x0.copy()
    if weighted:
        L_i = np.asarray(problem.L_i)
        w = L_i / L_i.sum()
    else:
        w = np.full(n, 1.0 / n)
    G0 = all_grads_ref(problem, x)
    g_i = np.array([G0[i] / (n * w[i]) for i in range(n)]) if weighted else G0.copy()
    g = sum(w[i] * g_i[i] for i in range(n))
    xs = []
    for t in range(1, T + 1):
        x = x - gamma * g
        G = grads(t, x) if grads is not None else all_grads_ref(problem, x)
        members = range(n) if participants is None else participants(t)
        for i in members:
            target = G[i] / (n * w[i]) if weighted else G[i]
            c = topk_ref(target - g_i[i], k)
            g_i[i] = g_i[i] + c
            g = g + w[i] * c
        xs.append(x)
    return xs


def collect(problem, method, **kw):
    """run(); return the trace and the list of iterates x_1..x_T (via the callback)."""
    xs = []
    tr = algorithms.run(problem, method, callback=lambda t, x, gn: xs.append(x.copy()),
                        **kw)
    return tr, xs


def assert_iterates_close(xs, ref):
    assert len(xs) == len(ref) == ROUNDS
    X, R = np.array(xs), np.array(ref)
    scale = np.max(np.abs(R))
    assert scale > 0
    np.testing.assert_allclose(X, R, rtol=RTOL, atol=RTOL * scale)


# ---------------------------------------------------------------------------- problems

def synthetic(kind="logreg", n=8, d=6, spread=2.0, seed=3, m=5):
    cd = make_synthetic(n=n, d=d, m_per_client=m, spread=spread, seed=seed, kind=kind)
    cls = LogisticRegression if kind == "logreg" else LinearRegression
    return cls(cd, lam=0.1)


def sparse_problem(seed=5):
    rng = np.random.default_rng(seed)
    A = sp.random(60, 9, density=0.3, random_state=seed, format="csr") * 3.0
    b = np.where(rng.random(60) < 0.5, -1.0, 1.0)
    cd = split_clients(sp.csr_matrix(A), b, 7, how="heterogeneous")
    return LogisticRegression(cd, lam=0.1)


@pytest.fixture(params=["logreg", "linreg"])
def problem(request):
    return synthetic(request.param)


X0_SEED = 11


def x0_for(problem):
    return np.random.default_rng(X0_SEED).standard_normal(problem.d) * 0.5


# ------------------------------------------------------------------ against references

def test_gd_matches_reference(problem):
    x0 = x0_for(problem)
    tr, xs = collect(problem, "gd", gamma="theory-am", iters=ROUNDS, x0=x0,
                     backend="numpy")
    assert tr.gamma == pytest.approx(1.0 / problem.L, rel=1e-12)
    assert_iterates_close(xs, ref_gd(problem, tr.gamma, x0, ROUNDS))


@pytest.mark.parametrize("k", [1, 2])
def test_ef14_matches_reference(problem, k):
    x0 = x0_for(problem)
    tr, xs = collect(problem, "ef14", k=k, gamma="theory-am", gamma_mult=2.0,
                     iters=ROUNDS, x0=x0, backend="numpy")
    assert_iterates_close(xs, ref_ef14(problem, tr.gamma, k, x0, ROUNDS))


@pytest.mark.parametrize("method", ["ef21", "ef21-w"])
@pytest.mark.parametrize("k", [1, 3])
def test_ef21_matches_reference(problem, method, k):
    x0 = x0_for(problem)
    tr, xs = collect(problem, method, k=k, gamma="theory-qm", gamma_mult=4.0,
                     iters=ROUNDS, x0=x0, backend="numpy")
    ref = ref_ef21(problem, tr.gamma, k, x0, ROUNDS, weighted=method == "ef21-w")
    assert_iterates_close(xs, ref)


@pytest.mark.parametrize("method", ["ef21", "ef21-w", "ef14"])
def test_sparse_data_matches_reference(method):
    problem = sparse_problem()
    x0 = x0_for(problem)
    tr, xs = collect(problem, method, k=2, gamma="theory-am", gamma_mult=3.0,
                     iters=ROUNDS, x0=x0, backend="numpy")
    if method == "ef14":
        ref = ref_ef14(problem, tr.gamma, 2, x0, ROUNDS)
    else:
        ref = ref_ef21(problem, tr.gamma, 2, x0, ROUNDS, weighted=method == "ef21-w")
    assert_iterates_close(xs, ref)


@pytest.mark.parametrize("method", ["ef21-sgd", "ef21-w-sgd"])
def test_sgd_matches_reference(problem, method):
    x0 = x0_for(problem)
    seed, batch = 7, 2
    tr, xs = collect(problem, method, k=1, gamma=0.05, iters=ROUNDS, x0=x0, seed=seed,
                     batch=batch, backend="numpy")
    # The same minibatches: the problem's estimator fed by an identically seeded rng
    # (run() draws from its rng only there).
    rng = np.random.default_rng(seed)
    ref = ref_ef21(problem, 0.05, 1, x0, ROUNDS, weighted=method == "ef21-w-sgd",
                   grads=lambda t, x: problem.client_stochastic_grads(x, batch, rng))
    assert_iterates_close(xs, ref)
    assert tr.extra["batch"] == batch


@pytest.mark.parametrize("method", ["ef21-pp", "ef21-w-pp"])
@pytest.mark.parametrize("participation", ["independent", "fixed"])
def test_pp_matches_reference(problem, method, participation):
    x0 = x0_for(problem)
    seed, p, n = 4, 0.4, problem.n
    tr, xs = collect(problem, method, k=1, gamma=0.05, iters=ROUNDS, x0=x0, seed=seed,
                     p=p, participation=participation, backend="numpy")
    rng = np.random.default_rng(seed)
    sizes = []

    def participants(t):
        if participation == "independent":
            S = np.flatnonzero(rng.random(n) < p)
        else:
            S = np.sort(rng.choice(n, size=round(p * n), replace=False))
        sizes.append(S.size)
        return S

    ref = ref_ef21(problem, 0.05, 1, x0, ROUNDS, weighted=method == "ef21-w-pp",
                   participants=participants)
    assert_iterates_close(xs, ref)
    # bits: average over all clients of what the participants sent
    np.testing.assert_allclose(np.diff(tr.bits), 32.0 * np.array(sizes) / n, rtol=1e-12)


def test_pp_per_client_probabilities(problem):
    p = np.linspace(0.3, 1.0, problem.n)
    tr = algorithms.run(problem, "ef21-pp", p=p, gamma=0.05, iters=20, backend="numpy")
    assert tr.status == "completed"
    with pytest.raises(ValueError, match="p must"):
        algorithms.run(problem, "ef21-pp", p=p[:-1], gamma=0.05, iters=2)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        algorithms.run(problem, "ef21-pp", p=1.5, gamma=0.05, iters=2)


def test_clone_matches_reference(problem):
    x0 = x0_for(problem)
    tr, xs = collect(problem, "ef21-clone", k=1, gamma="theory-am", gamma_mult=4.0,
                     iters=ROUNDS, x0=x0, backend="numpy")
    L_i = np.asarray(problem.L_i)
    counts = np.ceil(L_i / L_i.mean()).astype(int)
    N, n = counts.sum(), problem.n
    assert tr.n == N and tr.extra["clones"] == N and N <= 2 * n
    owner = np.repeat(np.arange(n), counts)
    factor = N / (n * counts[owner])
    # clone constants N L_i / (n N_i) are all <= 2 L_AM
    assert np.all(L_i[owner] * factor <= 2 * L_i.mean() * (1 + 1e-12))

    class Clones:  # the cloned problem, by hand
        pass

    cl = Clones()
    cl.n, cl.d, cl.L_i = N, problem.d, L_i[owner] * factor

    def clone_grads(t, x):
        G = all_grads_ref(problem, x)
        return G[owner] * factor[:, None]

    # EF21 on the clones: the initial states are the clones' gradients at x0.
    ref = _ref_ef21_on(clone_grads, N, tr.gamma, 1, x0, ROUNDS)
    assert_iterates_close(xs, ref)
    assert tr.gamma == pytest.approx(4.0 * theory.gamma_am(problem.L, cl.L_i, 1 / 6))


def _ref_ef21_on(grads, n, gamma, k, x0, T):
    x = x0.copy()
    g_i = grads(0, x).copy()
    g = g_i.mean(axis=0)
    xs = []
    for t in range(1, T + 1):
        x = x - gamma * g
        G = grads(t, x)
        for i in range(n):
            c = topk_ref(G[i] - g_i[i], k)
            g_i[i] += c
            g = g + c / n
        xs.append(x)
    return xs


@pytest.mark.parametrize("backend", complete_backends())
def test_backends_give_the_same_iterates(backend):
    problem = synthetic("logreg", n=30, d=12, spread=3.0)
    ref = algorithms.run(problem, "ef21-w", k=2, iters=40, backend="numpy")
    tr = algorithms.run(problem, "ef21-w", k=2, iters=40, backend=backend)
    assert tr.backend == backend
    np.testing.assert_array_equal(tr.x, ref.x)
    np.testing.assert_array_equal(tr.grad_norm_sq, ref.grad_norm_sq)


# ---------------------------------------------------------------- paper's statements

@pytest.mark.parametrize("k", [1, 2])
def test_ef21w_equals_ef21_at_the_same_gamma(problem, k):
    """TopK is positively homogeneous: EF21-W and EF21 give the same iterates."""
    a = algorithms.run(problem, "ef21", k=k, gamma=0.03, iters=200, backend="numpy")
    b = algorithms.run(problem, "ef21-w", k=k, gamma=0.03, iters=200, backend="numpy")
    np.testing.assert_allclose(b.x, a.x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.grad_norm_sq, a.grad_norm_sq, rtol=1e-8)
    np.testing.assert_array_equal(a.bits, b.bits)


@pytest.mark.parametrize("kind", ["logreg", "linreg"])
def test_gamma_am_beats_gamma_qm_on_heterogeneous_clients(kind):
    problem = synthetic(kind, n=30, d=10, spread=3.0, m=10)
    L_i = problem.L_i
    assert theory.l_qm(L_i) / theory.l_am(L_i) > 2.5
    g0 = problem.grad(np.zeros(problem.d))
    tol = 1e-3 * float(g0 @ g0)
    qm = algorithms.run(problem, "ef21", gamma="theory-qm", iters=20000, tol=tol,
                        backend="numpy")
    am = algorithms.run(problem, "ef21", gamma="theory-am", iters=20000, tol=tol,
                        backend="numpy")
    assert am.gamma > qm.gamma
    assert qm.status == am.status == "converged"
    assert am.bits_to_reach(tol) < qm.bits_to_reach(tol) / 2


def test_step_size_rules(problem):
    L, L_i, d = problem.L, problem.L_i, problem.d
    a = theory.topk_alpha(2, d)
    g, rule = algorithms.step_size(problem, "ef21", "theory-qm", 3.0, k=2)
    assert g == pytest.approx(3.0 * theory.gamma_qm(L, L_i, a), rel=1e-14)
    assert "theory-qm" in rule and "3 x" in rule
    g, _ = algorithms.step_size(problem, "ef21-w", "theory-am", k=2)
    assert g == pytest.approx(theory.gamma_am(L, L_i, a), rel=1e-14)
    g, rule = algorithms.step_size(problem, "ef21-sgd", "theory-am", k=2)
    if problem.kind == "logreg":  # the derived stochastic step, alpha/2 in xi
        xi = math.sqrt(1 - a / 2) / (1 - math.sqrt(1 - a / 2))
        assert g == pytest.approx(1 / (L + np.mean(L_i) * xi)) and "derived" in rule
    else:  # A_i > 0: the deterministic formula stays the default
        assert g == pytest.approx(theory.gamma_am(L, L_i, a)) and "default" in rule
    g, rule = algorithms.step_size(problem, "ef21-sgd", "theory-am", k=2,
                                   sgd_theory=False)
    assert g == pytest.approx(theory.gamma_am(L, L_i, a)) and "off" in rule
    g, _ = algorithms.step_size(problem, "ef21-pp", "theory-qm", k=d, p=0.9)
    assert g == pytest.approx(theory.gamma_pp(L, L_i, 1.0, 0.9))
    g, _ = algorithms.step_size(problem, "ef21-w-pp", "theory-am", k=d, p=0.9)
    assert g == pytest.approx(theory.gamma_pp(L, L_i, 1.0, 0.9, weighted=True))
    g, _ = algorithms.step_size(problem, "gd", "theory-qm")
    assert g == pytest.approx(1.0 / L)
    assert algorithms.step_size(problem, "ef21", 0.25, 2.0)[0] == 0.5


# -------------------------------------------------------------------------- the trace

def test_trace_rows_and_bits(problem):
    x0 = x0_for(problem)
    T, k, d = 30, 2, problem.d
    tr = algorithms.run(problem, "ef21", k=k, iters=T, x0=x0, backend="numpy")
    assert isinstance(tr, Trace) and len(tr) == T + 1 and tr.rounds == T
    np.testing.assert_array_equal(tr.iter, np.arange(T + 1))
    for arr in (tr.bits, tr.grad_norm_sq, tr.f, tr.time_s):
        assert arr.shape == (T + 1,) and arr.dtype == np.float64
    assert tr.bits[0] == 0 and np.all(np.diff(tr.bits) == 32 * k)
    g0 = problem.grad(x0)
    assert tr.grad_norm_sq[0] == pytest.approx(float(g0 @ g0), rel=1e-12)
    assert tr.f[0] == pytest.approx(problem.loss(x0), rel=1e-12)
    assert np.all(np.diff(tr.time_s) >= 0) and tr.time_s[0] >= 0
    gT = problem.grad(tr.x)
    assert tr.grad_norm_sq[-1] == pytest.approx(float(gT @ gT), rel=1e-10)
    assert tr.status == "completed" and tr.x.shape == (d,)
    assert tr.backend == "numpy" and tr.method == "ef21" and tr.k == k

    idx = algorithms.run(problem, "ef21", k=k, iters=3, bits="values+indices",
                         backend="numpy")
    assert np.all(np.diff(idx.bits) == k * (32 + math.ceil(math.log2(d))))
    gd = algorithms.run(problem, "gd", iters=3, backend="numpy")
    assert np.all(np.diff(gd.bits) == 32 * d)
    ef14 = algorithms.run(problem, "ef14", k=1, iters=3, backend="numpy")
    assert np.all(np.diff(ef14.bits) == 32)


def test_zero_iterations_and_x0_row(problem):
    x0 = x0_for(problem)
    tr = algorithms.run(problem, "ef21", iters=0, x0=x0, backend="numpy")
    assert len(tr) == 1 and tr.status == "completed"
    np.testing.assert_array_equal(tr.x, x0)
    assert tr.x is not x0


def test_tolerance_stops_the_run(problem):
    full = algorithms.run(problem, "ef21-w", iters=300, backend="numpy")
    tol = float(full.grad_norm_sq[150])
    tr = algorithms.run(problem, "ef21-w", iters=300, tol=tol, backend="numpy")
    assert tr.status == "converged" and "converged" in tr.message
    assert tr.grad_norm_sq[-1] < tol
    assert np.all(tr.grad_norm_sq[:-1] >= tol)
    np.testing.assert_array_equal(tr.grad_norm_sq, full.grad_norm_sq[:len(tr)])


def test_divergence_keeps_the_trace():
    problem = synthetic("linreg")
    tr = algorithms.run(problem, "ef21", gamma=1e3, iters=5000, backend="numpy")
    assert tr.status == "diverged"
    assert tr.message.startswith("diverged: step too large?")
    assert 1 <= tr.rounds < 5000
    for arr in (tr.bits, tr.grad_norm_sq, tr.f, tr.x):
        assert np.all(np.isfinite(arr))
    assert len(tr) == tr.rounds + 1
    gd = algorithms.run(problem, "gd", gamma="theory-am", gamma_mult=1e4, iters=5000,
                        backend="numpy")
    assert gd.status == "diverged" and np.all(np.isfinite(gd.x))


def test_callback_can_stop(problem):
    tr = algorithms.run(problem, "ef21", iters=100, backend="numpy",
                        callback=lambda t, x, gn: t >= 7)
    assert tr.status == "interrupted" and tr.rounds == 7


def test_seeding_is_reproducible(problem):
    kw = dict(k=1, gamma=0.05, iters=40, backend="numpy")
    for method, extra in (("ef21-sgd", dict(batch=2)), ("ef21-pp", dict(p=0.5))):
        a = algorithms.run(problem, method, seed=1, **kw, **extra)
        b = algorithms.run(problem, method, seed=1, **kw, **extra)
        c = algorithms.run(problem, method, seed=2, **kw, **extra)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.grad_norm_sq, b.grad_norm_sq)
        assert not np.array_equal(a.x, c.x)
    # deterministic methods ignore the seed
    a = algorithms.run(problem, "ef21", seed=1, **kw)
    b = algorithms.run(problem, "ef21", seed=99, **kw)
    np.testing.assert_array_equal(a.x, b.x)


def test_csv_and_dict(problem, tmp_path):
    tr = algorithms.run(problem, "ef21", iters=5, backend="numpy")
    path = tmp_path / "t.csv"
    text = tr.to_csv(path)
    assert path.read_text() == text
    lines = text.splitlines()
    assert lines[0] == "iter,bits,grad_norm_sq,f,time_s" and len(lines) == 7
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(data[:, 2], tr.grad_norm_sq)  # full precision
    d = json.loads(json.dumps(tr.to_dict()))
    assert d["status"] == "completed" and len(d["bits"]) == 6 and d["rounds"] == 5
    s = tr.to_dict(arrays=False)
    assert "bits" not in s and s["final_bits"] == tr.bits[-1]


# ----------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kw, exc, match", [
    (dict(method="nope"), ValueError, "method must be one of"),
    (dict(k=0), ValueError, "k must be in"),
    (dict(k=7), ValueError, "k must be in"),
    (dict(k=1.5), TypeError, "k must be an integer"),
    (dict(gamma=-1.0), ValueError, "gamma must be positive"),
    (dict(gamma="theory-xx"), ValueError, "gamma must be a positive number or one of"),
    (dict(gamma_mult=0.0), ValueError, "gamma_mult"),
    (dict(iters=-1), ValueError, "iters"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(x0=np.zeros(3)), ValueError, "x0 must have shape"),
    (dict(x0=np.full(6, np.nan)), ValueError, "x0 must be finite"),
    (dict(bits="all"), ValueError, "bits must be one of"),
    (dict(backend="nope"), ValueError, "backend"),
])
def test_bad_arguments(kw, exc, match):
    problem = synthetic()
    kw = {"method": "ef21", **kw}
    method = kw.pop("method")
    with pytest.raises(exc, match=match):
        algorithms.run(problem, method, iters=kw.pop("iters", 3), **kw)


def test_row_buffers_grow_and_huge_iters_allocate_nothing():
    problem = synthetic(n=4, d=3, spread=1.2)
    tr = algorithms.run(problem, "gd", iters=4500, backend="numpy")
    assert len(tr) == 4501 and np.all(np.diff(tr.bits) == 32 * 3)
    assert np.all(np.diff(tr.time_s) >= 0) and np.all(tr.grad_norm_sq > 0)
    tr = algorithms.run(problem, "ef21", iters=10**12, tol=1e9, backend="numpy")
    assert tr.status == "converged" and len(tr) == 1
