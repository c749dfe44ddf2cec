"""The fused C oracle of the dense problems (csrc/glm_oracle.c, module
ef21fast._coracle, glue ef21fast.methods.oracle) against the NumPy oracle: same
gradients to rounding, on every tile and vector-tail shape, for any margin, for any
thread count."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit

import ef21fast
from registry_params import expected_backends, require_threads

from ef21fast.methods.data import ClientData
from ef21fast.methods.problems import LinearRegression, LogisticRegression

try:
    from ef21fast.methods import oracle as c_backend
except ImportError as exc:
    if "c" in expected_backends():
        raise  # this run expects the C backend: a missing oracle module is a failure
    pytest.skip(str(exc), allow_module_level=True)

CLASSES = [LogisticRegression, LinearRegression]


def data(sizes, d, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    m = int(off[-1])
    A = rng.standard_normal((m, d)) * rng.lognormal(0, 0.5, (m, 1)) * scale
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    return ClientData(A, b, off, "t")


def pair(cls, cd, lam=0.1):
    c, ref = cls(cd, lam=lam), cls(cd, lam=lam, oracle="numpy")
    assert (c.oracle, ref.oracle) == ("c", "numpy")
    return c, ref


def assert_close(a, b, rtol=1e-12):
    scale = np.maximum(np.abs(b), np.abs(b).max(axis=1, keepdims=True) * 1e-3)
    np.testing.assert_array_less(np.abs(a - b), rtol * scale + 1e-300)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("d", [1, 3, 4, 7, 8, 9, 16, 17, 112, 130])
def test_matches_numpy_oracle_every_shape(cls, d):
    # client sizes around the tile (32) and the 4-row groups, and single rows
    sizes = [1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 36, 64, 70, 1]
    cd = data(sizes, d, seed=d)
    c, ref = pair(cls, cd)
    for xs in (0.1, 3.0):
        x = np.random.default_rng(1).standard_normal(d) * xs
        assert_close(c.client_grads(x), ref.client_grads(x))


@pytest.mark.parametrize("cls", CLASSES)
def test_equal_sizes_and_no_regulariser(cls):
    cd = data([8] * 50 + [12], 112, seed=3)
    c, ref = pair(cls, cd, lam=0.0)
    x = np.random.default_rng(2).standard_normal(112) * 0.3
    assert_close(c.client_grads(x), ref.client_grads(x))


def test_logistic_slope_accuracy_over_the_whole_range():
    """One row per client, a_j = t_j, x = 1, b = -1, lam = 0: G_j = expit(t_j) t_j, so
    G_j / t_j is expit(t_j) as far as the inline exp allows (a few ulp, subnormal
    results included)."""
    t = np.concatenate([np.linspace(-800, 800, 4000), [-746, -745.2, -745.1, -744,
                        -709.5, -708.4, -700, -1e-3, 1e-3, 36.8, 37.0, 710]])
    cd = ClientData(t[:, None].copy(), -np.ones(t.size),
                    np.arange(t.size + 1, dtype=np.int64), "t")
    G = LogisticRegression(cd, lam=0.0).client_grads(np.ones(1))[:, 0] / t
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(t))  # exact to 1 ulp, subnormals included
    want = np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    # scipy's expit agrees where it does not flush to 0 (it does below about -709)
    assert np.allclose(want[t > -700], expit(t[t > -700]), rtol=1e-15, atol=0)
    ulp = np.spacing(np.maximum(want, np.finfo(float).smallest_subnormal))
    assert np.all(np.abs(G - want) <= 4 * ulp), t[np.abs(G - want) > 4 * ulp]
    assert np.all(G[t < -745.2] == 0.0) and np.all(G[t >= 0] >= 0.5)


@pytest.mark.parametrize("margin", [1e4, -1e4, 1e300])
def test_huge_margins_finite_and_limiting(margin):
    cd = data([3, 5], 4, seed=9)
    c, ref = pair(LogisticRegression, cd)
    x = np.full(4, margin)
    with np.errstate(all="raise"):
        a = c.client_grads(x)
    b = ref.client_grads(x)
    assert np.all(np.isfinite(a))
    assert_close(a, b)


def test_nan_propagates():
    cd = data([3, 5], 4, seed=9)
    for cls in CLASSES:
        x = np.array([0.1, np.nan, 0.2, 0.3])
        assert np.all(np.isnan(cls(cd).client_grads(x)))


def test_thread_count_does_not_change_a_bit():
    cd = data([40] * 100 + [17], 96, seed=5)  # m d above the parallel threshold
    prob = LogisticRegression(cd)
    assert cd.A.size >= 2**18
    x = np.random.default_rng(0).standard_normal(96)
    before = ef21fast.get_num_threads("c")
    try:
        out = []
        for nt in (1, 2, 3):
            ef21fast.set_num_threads(nt)
            out.append(prob.client_grads(x))
    finally:
        ef21fast.set_num_threads(before)
    assert all(np.array_equal(o.view(np.uint64), out[0].view(np.uint64)) for o in out)


def test_does_not_modify_inputs_and_returns_fresh_arrays():
    cd = data([3, 4], 5)
    prob = LogisticRegression(cd)
    x = np.arange(5.0) / 7
    saved = cd.A.copy(), cd.b.copy(), x.copy()
    G1, G2 = prob.client_grads(x), prob.client_grads(x)
    assert G1 is not G2 and np.array_equal(G1, G2)
    for a, b in zip(saved, (cd.A, cd.b, x)):
        assert np.array_equal(a, b)


def test_oracle_choice():
    dense = data([3, 4], 5)
    assert LogisticRegression(dense).oracle == "c"
    sparse = ClientData(sp.csr_matrix(dense.A), dense.b, dense.offsets, "s")
    assert LogisticRegression(sparse).oracle == "c"  # the fused CSR pass
    assert LogisticRegression(sparse, oracle="numpy").oracle == "numpy"
    with pytest.raises(ValueError, match="oracle must be"):
        LinearRegression(dense, oracle="fortran")


def test_glm_client_grads_argument_errors():
    A, b = np.ones((4, 3)), np.ones(4)
    off, x = np.array([0, 2, 4], dtype=np.int64), np.ones(3)
    f = c_backend.glm_client_grads
    assert f(A, b, off, x, np.zeros(3), "linreg").shape == (2, 3)
    with pytest.raises(ValueError, match="kind"):
        f(A, b, off, x, np.zeros(3), "svm")
    with pytest.raises(ValueError, match="A must be a C-contiguous 2-D float64"):
        f(A.T, b, off, x, np.zeros(3), "logreg")
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        f(A, b, np.array([0, 3, 2], dtype=np.int64), x, np.zeros(3), "logreg")
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        f(A, b, np.array([0, 2, 5], dtype=np.int64), x, np.zeros(3), "logreg")
    with pytest.raises(ValueError, match="offsets must be a C-contiguous"):
        f(A, b, off.astype(np.int32), x, np.zeros(3), "logreg")
    with pytest.raises(ValueError, match="b must have shape"):
        f(A, b[:3], off, x, np.zeros(3), "logreg")


@pytest.mark.parametrize("kind", ["logreg", "linreg"])
def test_dense_losses_from_the_same_pass(kind):
    """glm_client_grads(losses=True): the client loss sums of the pass, equal to NumPy's
    to rounding (1e-12 relative, as the gradients); G the same bits as without them,
    also through ``out``; empty clients give loss 0."""
    sizes = [3, 0, 1, 33, 70, 5]
    cd = data([s for s in sizes if s], 13, seed=4)
    A, b = cd.A, cd.b
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = np.random.default_rng(5).standard_normal(13) * 2.0
    reg = np.random.default_rng(6).standard_normal(13) * 0.01
    G0 = c_backend.glm_client_grads(A, b, off, x, reg, kind)
    out = np.full_like(G0, np.nan)
    G, ell = c_backend.glm_client_grads(A, b, off, x, reg, kind, losses=True, out=out)
    assert G is out and np.array_equal(G.view(np.uint64), G0.view(np.uint64))
    z = A @ x
    terms = np.logaddexp(0.0, -(b * z)) if kind == "logreg" else (z - b) ** 2
    want = np.array([terms[off[i]:off[i + 1]].sum() for i in range(len(sizes))])
    assert ell[1] == 0.0
    np.testing.assert_allclose(ell, want, rtol=1e-12, atol=0)


def test_fused_oracle_losses_switch():
    """FusedOracle.losses off: no losses (None) and the same gradient bits; the
    problem's loss at that x is then computed apart, equal to rounding."""
    cd = data([5, 9, 40], 11, seed=8)
    for d in (cd, cd.sparse()):
        c, ref = pair(LogisticRegression, d)
        x = np.random.default_rng(9).standard_normal(11)
        G1 = c.client_grads(x)
        f1 = c.loss(x)
        c._fused.losses = False
        x2 = x + 0.5
        G2 = c.client_grads(x2)
        assert c._fused(x2, None)[1] is None
        c._fused.losses = True
        np.testing.assert_allclose(c.loss(x2), ref.loss(x2), rtol=1e-13)
        assert np.array_equal(G2.view(np.uint64), c.client_grads(x2).view(np.uint64))
        np.testing.assert_allclose(f1, ref.loss(x), rtol=1e-13)
        assert np.array_equal(G1.view(np.uint64), c.client_grads(x).view(np.uint64))


@pytest.mark.parametrize("kind", ["logreg", "linreg"])
@pytest.mark.parametrize("d", [1, 7, 8, 9, 112])
def test_dense_float32_pass(kind, d):
    """The float32 pass: the float64 pass's result on the same (float32) values,
    rounded once to float32, bit for bit (G; the losses exactly); within float32
    rounding of the NumPy float32 oracle (1e-5 of the row's largest entry)."""
    sizes = [1, 3, 4, 31, 33, 70]
    cd = data(sizes, d, seed=d + 100)
    A32, b32 = cd.A.astype(np.float32), cd.b.astype(np.float32)
    off = cd.offsets.astype(np.int64)
    x32 = (np.random.default_rng(2).standard_normal(d) * 0.7).astype(np.float32)
    reg32 = (np.random.default_rng(3).standard_normal(d) * 0.01).astype(np.float32)
    G32, L32 = c_backend.glm_client_grads(A32, b32, off, x32, reg32, kind, losses=True)
    G64, L64 = c_backend.glm_client_grads(A32.astype(np.float64), b32.astype(np.float64),
                                          off, x32.astype(np.float64),
                                          reg32.astype(np.float64), kind, losses=True)
    assert G32.dtype == np.float32
    assert np.array_equal(G32.view(np.uint32), G64.astype(np.float32).view(np.uint32))
    assert np.array_equal(L32.view(np.uint64), L64.view(np.uint64))
    cls = LogisticRegression if kind == "logreg" else LinearRegression
    ref = cls(ClientData(A32.astype(np.float64), b32.astype(np.float64), off, "t"),
              dtype="float32", oracle="numpy")
    from ef21fast.methods.problems import _reg_grad

    G = c_backend.glm_client_grads(A32, b32, off, x32, _reg_grad(ref.lam, x32), kind)
    want = ref.client_grads(x32).astype(np.float64)
    # NumPy's float32 path rounds each margin and slope to float32 and sums in float32:
    # within 1e-5 of the row's largest entry (the float32 pass is the closer of the two)
    rowmax = np.abs(want).max(axis=1, keepdims=True)
    assert np.all(np.abs(G.astype(np.float64) - want) < 1e-5 * rowmax)


def test_dense_float32_threads_and_errors():
    cd = data([700] * 6, 70, seed=21)  # 4200 x 70 rows: past the one-thread size
    A32, b32 = cd.A.astype(np.float32), cd.b.astype(np.float32)
    off = cd.offsets.astype(np.int64)
    x32 = np.random.default_rng(4).standard_normal(70).astype(np.float32)
    reg32 = np.zeros(70, np.float32)
    before = ef21fast.get_num_threads("c")
    out = []
    try:
        for nt in (1, 2):
            require_threads("c", nt)
            out.append(c_backend.glm_client_grads(A32, b32, off, x32, reg32, "logreg"))
    finally:
        ef21fast.set_num_threads(before)
    assert np.array_equal(out[0].view(np.uint32), out[1].view(np.uint32))
    with pytest.raises(ValueError, match="x must be a C-contiguous 1-D float32"):
        c_backend.glm_client_grads(A32, b32, off, x32.astype(np.float64), reg32, "logreg")
    with pytest.raises(ValueError, match="out must be a writable C-contiguous float32"):
        c_backend.glm_client_grads(A32, b32, off, x32, reg32, "logreg",
                                   out=np.empty((6, 70)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bind_dense_checks_the_data_once(dtype):
    """bind() on dense data checks A, b and offsets when it binds (bad ones raise there,
    naming the argument); its calls, which then check x, reg and out only, give
    glm_client_grads' rows and losses bit for bit, on any range, and a bad x still
    raises."""
    cd = data([5, 9, 40, 1, 33], 11, seed=15)
    A, b = cd.A.astype(dtype), cd.b.astype(dtype)
    off = cd.offsets.astype(np.int64)
    with pytest.raises(ValueError, match="A must be a C-contiguous"):
        c_backend.bind(np.asfortranarray(A), b, off, "logreg")
    with pytest.raises(ValueError, match="b must have shape"):
        c_backend.bind(A, b[:-1], off, "logreg")
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        c_backend.bind(A, b, off[[0, 3, 2, 4, 5, 5]], "logreg")
    with pytest.raises(ValueError, match="kind"):
        c_backend.bind(A, b, off, "hinge")
    f = c_backend.bind(A, b, off, "logreg")
    x = np.random.default_rng(16).standard_normal(11).astype(dtype)
    reg = (np.random.default_rng(17).standard_normal(11) * 0.01).astype(dtype)
    for lo, hi in ((0, 5), (1, 3), (4, 5), (2, 2)):
        want, ell = c_backend.glm_client_grads(A, b, off[lo:hi + 1], x, reg, "logreg",
                                               losses=True)
        f.losses = True
        G, e = f(x, reg, lo, hi)
        assert G.dtype == dtype and np.array_equal(G, want) and np.array_equal(e, ell)
        f.losses = False
        out = np.full((hi - lo, 11), np.nan, dtype)
        G, e = f(x, None, lo, hi, out=out)
        assert G is out and e is None
        assert np.array_equal(G, c_backend.glm_client_grads(
            A, b, off[lo:hi + 1], x, np.zeros(11, dtype), "logreg"))
    with pytest.raises(ValueError, match="x must be a C-contiguous 1-D"):
        f(x.astype(np.float16), reg)
    with pytest.raises(ValueError, match="out must be a writable"):
        f(x, reg, 0, 2, out=np.empty((2, 11), np.int64))


@pytest.mark.parametrize("sparse", [False, True])
def test_fused_oracle_client_ranges(sparse):
    """FusedOracle(x, reg, lo, hi, out): the rows lo:hi of the full call, bit for bit,
    with their losses; into ``out``; bad ranges raise."""
    cd = data([5, 9, 40, 1, 33], 11, seed=12)
    p = LogisticRegression(cd.sparse() if sparse else cd)
    f = p._fused
    x = np.random.default_rng(13).standard_normal(11)
    reg = np.random.default_rng(14).standard_normal(11) * 0.01
    G, ell = f(x, reg)
    for lo, hi in ((0, 5), (1, 3), (4, 5), (2, 2)):
        out = np.full((hi - lo, 11), np.nan)
        g, e = f(x, reg, lo, hi, out=out)
        assert g is out
        assert np.array_equal(g.view(np.uint64), G[lo:hi].view(np.uint64))
        assert np.array_equal(e, ell[lo:hi])
    for lo, hi in ((-1, 2), (3, 2), (0, 6), (0.5, 2)):
        with pytest.raises(ValueError, match="lo, hi must be integers"):
            f(x, reg, lo, hi)
