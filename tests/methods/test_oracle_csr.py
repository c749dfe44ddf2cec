"""The fused CSR oracle (csrc/glm_oracle.c, ef21fast.methods.oracle.glm_csr_client_grads)
against scipy.sparse: same gradients and losses to rounding (relative 1e-12 of the row's
scale, as test_oracle.py) on empty rows and clients, one-row clients, unsorted and
repeated column indices, int32 and int64 indices, huge margins; bit-identical for 1 and
2 threads; bad input raises naming the argument."""

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

KINDS = ["logreg", "linreg"]
RTOL = 1e-12


def csr(m, d, density, seed, index_dtype=np.int32, shuffle=False, repeat=0.0,
        scale=1.0):
    """(data, indices, indptr) of a random m x d CSR matrix; ``shuffle``: columns of
    each row in random order; ``repeat``: that fraction of values repeated at a column
    already in their row."""
    rng = np.random.default_rng(seed)
    A = sp.random(m, d, density=density, format="csr", random_state=seed)
    A.data = rng.standard_normal(A.nnz) * scale
    data, indices, indptr = A.data.copy(), A.indices.copy(), A.indptr.copy()
    if repeat:
        rows = np.repeat(np.arange(m), np.diff(indptr))
        extra = np.flatnonzero(rng.random(A.nnz) < repeat)
        rows = np.concatenate([rows, rows[extra]])
        indices = np.concatenate([indices, indices[extra]])
        data = np.concatenate([data, rng.standard_normal(extra.size) * scale])
        order = np.argsort(rows, kind="stable")
        data, indices, rows = data[order], indices[order], rows[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))])
    if shuffle:
        for j in range(m):
            lo, hi = indptr[j], indptr[j + 1]
            perm = lo + rng.permutation(hi - lo)
            data[lo:hi], indices[lo:hi] = data[perm], indices[perm]
    return (np.ascontiguousarray(data), indices.astype(index_dtype),
            indptr.astype(index_dtype))


def reference(data, indices, indptr, b, off, x, reg, kind):
    """Per client with scipy.sparse (repeated columns add up in its products)."""
    d = x.size
    A = sp.csr_matrix((data, indices.astype(np.int64), indptr.astype(np.int64)),
                      shape=(indptr.size - 1, d))
    z = A @ x
    if kind == "logreg":
        s, ell = -b * expit(-(b * z)), np.logaddexp(0.0, -(b * z))
    else:
        s, ell = 2.0 * (z - b), (z - b) ** 2
    n = off.size - 1
    G, L = np.zeros((n, d)), np.zeros(n)
    for i in range(n):
        lo, hi = off[i], off[i + 1]
        if hi > lo:
            G[i] = (s[lo:hi] / (hi - lo)) @ A[lo:hi]
            L[i] = ell[lo:hi].sum()
        if reg is not None:
            G[i] += reg
    return G, L


def assert_close(a, b, rtol=RTOL):
    scale = np.maximum(np.abs(b), np.abs(b).max(axis=-1, keepdims=True) * 1e-3)
    np.testing.assert_array_less(np.abs(a - b), rtol * scale + 1e-300)


def check(arrays, b, off, x, reg, kind):
    got_G, got_L = c_backend.glm_csr_client_grads(*arrays, b, off, x, reg, kind,
                                                  losses=True)
    want_G, want_L = reference(*arrays, b, off, x, reg, kind)
    assert_close(got_G, want_G)
    assert_close(got_L, want_L)
    G_only = c_backend.glm_csr_client_grads(*arrays, b, off, x, reg, kind)
    assert np.array_equal(G_only.view(np.uint64), got_G.view(np.uint64))
    return got_G, got_L


def labels(m, seed):
    return np.where(np.random.default_rng(seed).random(m) < 0.5, -1.0, 1.0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("layout", ["sorted", "unsorted", "repeated"])
def test_matches_scipy(kind, index_dtype, layout):
    m, d = 300, 37
    arrays = csr(m, d, 0.1, seed=1, index_dtype=index_dtype,
                 shuffle=layout != "sorted", repeat=0.3 if layout == "repeated" else 0.0)
    data, indices, indptr = arrays
    if layout != "sorted":  # the layout really is what the test says
        rows = np.repeat(np.arange(m), np.diff(indptr))
        key = rows * d + indices
        assert np.any(np.diff(key) < 0)
        assert (np.unique(key).size < key.size) == (layout == "repeated")
    # empty rows (density 0.1 of 37 columns leaves some), one-row and empty clients
    assert np.any(np.diff(indptr) == 0)
    off = np.array([0, 1, 1, 2, 40, 40, 41, 200, 299, 300, 300], dtype=np.int64)
    b = labels(m, 2)
    x = np.random.default_rng(3).standard_normal(d)
    reg = np.random.default_rng(4).standard_normal(d) * 0.01
    for r in (reg, None):
        G, L = check(arrays, b, off, x, r, kind)
        empty = np.flatnonzero(np.diff(off) == 0)
        assert np.all(G[empty] == (0.0 if r is None else r)) and np.all(L[empty] == 0)


def test_all_rows_empty_and_no_clients():
    d = 5
    arrays = (np.zeros(0), np.zeros(0, np.int32), np.zeros(4, np.int32))
    b, x, reg = labels(3, 0), np.ones(d), np.arange(d, dtype=float)
    off = np.array([0, 2, 3], dtype=np.int64)
    for kind in KINDS:
        G, L = check(arrays, b, off, x, reg, kind)
        want_L = [2 * np.log(2), np.log(2)] if kind == "logreg" else [2.0, 1.0]
        assert np.array_equal(G, np.vstack([reg, reg])) and np.allclose(L, want_L)
    G, L = c_backend.glm_csr_client_grads(*arrays, b, np.zeros(1, np.int64), x, reg,
                                          "logreg", losses=True)
    assert G.shape == (0, d) and L.shape == (0,)


@pytest.mark.parametrize("margin", [1e3, -1e3, 800.0, -800.0, 1e300])
def test_huge_margins(margin):
    m, d = 60, 8
    arrays = csr(m, d, 0.5, seed=5)
    data, indices, indptr = arrays
    b = labels(m, 6)
    x = np.full(d, margin / max(np.abs(data).max(), 1e-300))
    off = np.array([0, 7, 30, 60], dtype=np.int64)
    with np.errstate(all="raise"):
        G, L = c_backend.glm_csr_client_grads(*arrays, b, off, x, None, "logreg",
                                              losses=True)
    assert np.all(np.isfinite(G)) and np.all(np.isfinite(L))
    want_G, want_L = reference(*arrays, b, off, x, None, "logreg")
    assert_close(G, want_G)
    assert_close(L, want_L)


def test_logistic_slope_and_loss_accuracy_over_the_whole_range():
    """One row per client, a_j = t_j, x = 1, b = -1: G_j / t_j is expit(t_j) and the
    loss log(1 + exp(t_j)), as far as the inline exp and log1p allow (a few ulp)."""
    t = np.concatenate([np.linspace(-800, 800, 4001), [-746, -745.1, -709.5, -37.0,
                        -1e-3, -1e-300, 1e-300, 1e-3, 0.34657, 0.3466, 36.8, 710]])
    m = t.size
    arrays = (t.copy(), np.zeros(m, np.int32), np.arange(m + 1, dtype=np.int32))
    G, L = c_backend.glm_csr_client_grads(*arrays, -np.ones(m), np.arange(m + 1),
                                          np.ones(1), None, "logreg", losses=True)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(t))
    sig = np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    tiny = np.finfo(float).smallest_subnormal
    ok = t != 0
    assert np.all(np.abs(G[ok, 0] / t[ok] - sig[ok])
                  <= 4 * np.spacing(np.maximum(sig[ok], tiny)))
    want = np.logaddexp(0.0, t)
    assert np.all(np.abs(L - want) <= 4 * np.spacing(np.maximum(want, tiny))), \
        t[np.abs(L - want) > 4 * np.spacing(np.maximum(want, tiny))]


def test_nan_propagates():
    arrays = csr(20, 4, 1.0, seed=7)
    off = np.array([0, 10, 20], dtype=np.int64)
    x = np.array([0.1, np.nan, 0.2, 0.3])
    for kind in KINDS:
        G, L = c_backend.glm_csr_client_grads(*arrays, labels(20, 1), off, x, None, kind,
                                              losses=True)
        assert np.all(np.isnan(G)) and np.all(np.isnan(L))


def test_thread_count_does_not_change_a_bit():
    m, d = 12000, 120
    arrays = csr(m, d, 0.2, seed=8)  # nnz + n d above the parallel threshold
    assert arrays[0].size + 101 * d >= 2**18
    off = np.concatenate([np.arange(0, m, 120), [m - 3, m]]).astype(np.int64)
    b, x = labels(m, 9), np.random.default_rng(10).standard_normal(d) * 0.3
    before = ef21fast.get_num_threads("c")
    try:
        out = []
        for nt in (1, 2):
            require_threads("c", nt)
            for kind in KINDS:
                out.append(c_backend.glm_csr_client_grads(*arrays, b, off, x, None, kind,
                                                          losses=True))
    finally:
        ef21fast.set_num_threads(before)
    for one, two in zip(out[:2], out[2:]):
        for a, c in zip(one, two):
            assert np.array_equal(a.view(np.uint64), c.view(np.uint64))


@pytest.mark.parametrize("cls", [LogisticRegression, LinearRegression])
@pytest.mark.parametrize("regulariser", ["all", "owned"])
def test_problem_uses_the_csr_pass(cls, regulariser):
    data, indices, indptr = csr(400, 30, 0.1, seed=11)
    A = sp.csr_matrix((data, indices, indptr), shape=(400, 30))
    cd = ClientData(A, labels(400, 12), np.array([0, 1, 50, 51, 300, 400]), "s")
    c, ref = cls(cd, regulariser=regulariser), cls(cd, oracle="numpy",
                                                   regulariser=regulariser)
    assert (c.oracle, ref.oracle) == ("c", "numpy")
    rng = np.random.default_rng(13)
    x1, x2 = rng.standard_normal(30), rng.standard_normal(30)
    assert_close(c.client_grads(x1), ref.client_grads(x1))
    assert_close(c.client_losses(x1), ref.client_losses(x1))  # from the same pass
    assert abs(c.loss(x1) - ref.loss(x1)) <= RTOL * abs(ref.loss(x1))
    assert_close(c.client_losses(x2), ref.client_losses(x2))  # not the stale one
    x1[0] += 1.0  # the caller's array changed in place: recomputed too
    assert_close(c.client_losses(x1), ref.client_losses(x1))


def test_does_not_modify_inputs():
    arrays = csr(50, 6, 0.4, seed=14, shuffle=True, repeat=0.2)
    b, off = labels(50, 1), np.array([0, 20, 50], dtype=np.int64)
    x, reg = np.arange(6.0) / 7, np.ones(6)
    saved = [a.copy() for a in (*arrays, b, off, x, reg)]
    c_backend.glm_csr_client_grads(*arrays, b, off, x, reg, "logreg", losses=True)
    for a, s in zip((*arrays, b, off, x, reg), saved):
        assert np.array_equal(a, s)


def test_argument_errors():
    data, indices, indptr = csr(4, 3, 1.0, seed=0)
    b, off, x = np.ones(4), np.array([0, 2, 4], dtype=np.int64), np.ones(3)
    f = c_backend.glm_csr_client_grads
    assert f(data, indices, indptr, b, off, x, None, "linreg").shape == (2, 3)

    def bad(exc, match, **kw):
        args = dict(data=data, indices=indices, indptr=indptr, b=b, offsets=off, x=x,
                    reg=None, kind="logreg")
        args.update(kw)
        with pytest.raises(exc, match=match):
            f(**args)

    bad(ValueError, "kind", kind="svm")
    bad(ValueError, "data must be a C-contiguous 1-D float64", data=data.astype(np.float32))
    bad(ValueError, "data must be a C-contiguous", data=np.repeat(data, 2)[::2])
    bad(ValueError, "x must be a C-contiguous 1-D float64", x=np.ones((3, 1)))
    bad(ValueError, "b must be a C-contiguous 1-D float64", b=list(b))
    bad(ValueError, r"reg must have shape \(3,\)", reg=np.ones(4))
    bad(ValueError, "indices must be a C-contiguous 1-D int32 or int64",
        indices=indices.astype(np.float64))
    bad(ValueError, "indices must be a C-contiguous 1-D int32 or int64",
        indices=indices.astype(np.uint32))
    bad(ValueError, r"indices must have shape \(12,\)", indices=indices[:-1])
    bad(ValueError, r"indptr must have shape \(5,\)", indptr=indptr[:-1])
    bad(ValueError, "indptr must have the dtype of indices", indptr=indptr.astype(np.int64))
    bad(ValueError, "offsets must be a C-contiguous 1-D int64", offsets=off.astype(np.int32))
    bad(ValueError, "offsets must be non-decreasing", offsets=np.array([0, 3, 2], np.int64))
    bad(ValueError, "offsets must be non-decreasing", offsets=np.array([0, 2, 5], np.int64))
    bad(ValueError, "offsets must be non-decreasing", offsets=np.array([-1, 2, 4], np.int64))
    for col in (-1, 3, 2**31 - 1):
        wrong = indices.copy()
        wrong[5] = col
        bad(IndexError, r"indices must be column indices in \[0, 3\)", indices=wrong)
    for ptr in ([0, 3, 2, 9, 12], [0, 3, 6, 9, 13], [-1, 3, 6, 9, 12]):
        bad(IndexError, r"indptr must be non-decreasing within \[0, 12\]",
            indptr=np.array(ptr, dtype=np.int32))


def test_without_the_c_module_the_scipy_path_runs(monkeypatch):
    import sys

    import ef21fast.methods as methods

    data, indices, indptr = csr(40, 6, 0.3, seed=15)
    cd = ClientData(sp.csr_matrix((data, indices, indptr), shape=(40, 6)), labels(40, 1),
                    np.array([0, 10, 40]), "s")
    monkeypatch.setitem(sys.modules, "ef21fast.methods.oracle", None)
    monkeypatch.delattr(methods, "oracle", raising=False)
    prob = LogisticRegression(cd)
    assert prob.oracle == "numpy"
    x = np.linspace(-1, 1, 6)
    assert prob.client_grads(x).shape == (2, 6) and np.isfinite(prob.loss(x))
    with pytest.raises(ValueError, match="oracle='c' is not available"):
        LogisticRegression(cd, oracle="c")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_binary_pattern_without_data_is_bit_identical(kind, index_dtype):
    """data=None (every stored value 1, not read) gives the bits of an array of ones,
    with and without the losses, into a fresh array or into ``out``."""
    _, indices, indptr = csr(200, 29, 0.2, seed=5, index_dtype=index_dtype, shuffle=True)
    ones = np.ones(indices.size)
    off = np.array([0, 0, 1, 50, 51, 200], dtype=np.int64)
    b, x = labels(200, 6), np.random.default_rng(7).standard_normal(29)
    reg = np.random.default_rng(8).standard_normal(29) * 0.01
    want_G, want_L = c_backend.glm_csr_client_grads(ones, indices, indptr, b, off, x,
                                                    reg, kind, losses=True)
    ref_G, ref_L = reference(ones, indices, indptr, b, off, x, reg, kind)
    assert_close(want_G, ref_G)
    assert_close(want_L, ref_L)
    out = np.full((5, 29), np.nan)
    got_G, got_L = c_backend.glm_csr_client_grads(None, indices, indptr, b, off, x, reg,
                                                  kind, losses=True, out=out)
    assert got_G is out
    assert np.array_equal(got_G.view(np.uint64), want_G.view(np.uint64))
    assert np.array_equal(got_L.view(np.uint64), want_L.view(np.uint64))
    G_only = c_backend.glm_csr_client_grads(None, indices, indptr, b, off, x, reg, kind)
    assert np.array_equal(G_only.view(np.uint64), want_G.view(np.uint64))


def test_out_argument_errors():
    data, indices, indptr = csr(20, 5, 0.3, seed=9)
    off = np.array([0, 10, 20], dtype=np.int64)
    b, x = labels(20, 1), np.zeros(5)
    for bad in (np.empty((2, 4)), np.empty((2, 5), dtype=np.float32),
                np.empty((5, 2)).T, np.empty((2, 5))[:, ::1][::-1]):
        with pytest.raises(ValueError, match="out must be"):
            c_backend.glm_csr_client_grads(data, indices, indptr, b, off, x, None,
                                           "logreg", out=bad)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("binary", [False, True])
def test_float32_pass(kind, index_dtype, binary):
    """The float32 pass works in float64 and rounds each gradient once: the same bits as
    the float64 pass on the same (float32) values, rounded to float32; the same losses;
    within float32 rounding of the NumPy float32 oracle (2e-6 relative of the row's
    scale: a few float32 ulp, the NumPy path rounding each product and margin); the same
    bits for 1 and 2 threads."""
    data, indices, indptr = csr(400, 23, 0.15, seed=11, index_dtype=index_dtype,
                                shuffle=True)
    data32 = None if binary else data.astype(np.float32)
    off = np.array([0, 0, 1, 90, 91, 400], dtype=np.int64)
    b32 = labels(400, 12).astype(np.float32)
    x32 = (np.random.default_rng(13).standard_normal(23) * 0.5).astype(np.float32)
    reg32 = (np.random.default_rng(14).standard_normal(23) * 0.01).astype(np.float32)
    G32, L32 = c_backend.glm_csr_client_grads(data32, indices, indptr, b32, off, x32,
                                              reg32, kind, losses=True)
    assert G32.dtype == np.float32 and L32.dtype == np.float64
    data64 = np.ones(indices.size) if binary else data32.astype(np.float64)
    G64, L64 = c_backend.glm_csr_client_grads(
        data64, indices, indptr, b32.astype(np.float64), off, x32.astype(np.float64),
        reg32.astype(np.float64), kind, losses=True)
    assert np.array_equal(G32.view(np.uint32), G64.astype(np.float32).view(np.uint32))
    assert np.array_equal(L32.view(np.uint64), L64.view(np.uint64))
    ref_G, _ = reference(data64, indices, indptr, b32.astype(np.float64), off,
                         x32.astype(np.float64), reg32.astype(np.float64), kind)
    assert_close(G32.astype(np.float64), ref_G, rtol=2e-6)


def wide_rows(rows, m, d, seed):
    """(data, indices, indptr) of m rows of up to 60 columns in [0, d): ``sorted``,
    ``repeats`` (a fifth of a row's columns stored twice: next to each other in even
    rows, appended at the row's end in odd ones), ``shuffled``, or
    ``shuffled-in-block`` (each block of 2^15 columns in order, reversed inside)."""
    rng = np.random.default_rng(seed)
    parts, indptr = [], [0]
    for j in range(m):
        cols = np.unique(rng.integers(0, d, rng.integers(0, 60)))
        if rows == "repeats":
            extra = cols[rng.random(cols.size) < 0.2]
            cols = np.concatenate([cols, extra])
            cols = cols if j % 2 else np.sort(cols, kind="stable")
        elif rows == "shuffled":
            cols = rng.permutation(cols)
        elif rows == "shuffled-in-block":
            cols = cols[np.lexsort((-cols, cols >> 15))]
        parts.append(cols)
        indptr.append(indptr[-1] + cols.size)
    indices = np.concatenate(parts).astype(np.int64)
    return rng.standard_normal(indices.size), indices, np.array(indptr, dtype=np.int64)


@pytest.mark.parametrize("rows", ["sorted", "repeats", "shuffled", "shuffled-in-block"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("binary", [False, True])
def test_float32_pass_on_rows_longer_than_a_block(rows, index_dtype, binary):
    """Rows longer than the float32 pass's block of sums (2^15 columns): a client summed
    block by block (sorted rows, repeats next to each other, disorder inside a block)
    or over a whole row (a row's columns back to an earlier block: the repeats appended
    at a row's end, shuffled rows) keeps the bits of the float64 pass rounded once,
    for 1 and 2 threads, with and without the regulariser's row."""
    d = 3 * (1 << 15) + 123
    data, indices, indptr = wide_rows(rows, 300, d, seed=21)
    indices, indptr = indices.astype(index_dtype), indptr.astype(index_dtype)
    data32 = None if binary else data.astype(np.float32)
    off = np.array([0, 0, 1, 120, 121, 300], dtype=np.int64)
    b32 = labels(300, 22).astype(np.float32)
    x32 = (np.random.default_rng(23).standard_normal(d) * 0.5).astype(np.float32)
    reg32 = (np.random.default_rng(24).standard_normal(d) * 0.01).astype(np.float32)
    data64 = np.ones(indices.size) if binary else data32.astype(np.float64)
    before = ef21fast.get_num_threads("c")
    try:
        for reg in (reg32, None):
            G64, L64 = c_backend.glm_csr_client_grads(
                data64, indices, indptr, b32.astype(np.float64), off,
                x32.astype(np.float64), None if reg is None else reg.astype(np.float64),
                "logreg", losses=True)
            for nt in (1, 2):
                require_threads("c", nt)
                G32, L32 = c_backend.glm_csr_client_grads(data32, indices, indptr, b32, off,
                                                          x32, reg, "logreg", losses=True)
                assert np.array_equal(G32.view(np.uint32),
                                      G64.astype(np.float32).view(np.uint32))
                assert np.array_equal(L32.view(np.uint64), L64.view(np.uint64))
    finally:
        ef21fast.set_num_threads(before)


def test_float32_pass_thread_count_does_not_change_a_bit():
    # large enough for the pass to use its threads (nnz + n d >= 2^18)
    data, indices, indptr = csr(20000, 50, 0.3, seed=15)
    off = np.linspace(0, 20000, 41).astype(np.int64)
    b32 = labels(20000, 16).astype(np.float32)
    x32 = (np.random.default_rng(17).standard_normal(50) * 0.3).astype(np.float32)
    before = ef21fast.get_num_threads("c")
    out = []
    try:
        for nt in (1, 2):
            require_threads("c", nt)
            out.append(c_backend.glm_csr_client_grads(data.astype(np.float32), indices,
                                                      indptr, b32, off, x32, None,
                                                      "logreg", losses=True))
    finally:
        ef21fast.set_num_threads(before)
    assert np.array_equal(out[0][0].view(np.uint32), out[1][0].view(np.uint32))
    assert np.array_equal(out[0][1].view(np.uint64), out[1][1].view(np.uint64))


def test_float32_problem_oracle_matches_numpy_float32():
    """The float32 pass against the problem's NumPy float32 oracle (what a float32
    problem runs today), 2e-6 relative of the row's scale."""
    A = sp.random(300, 17, density=0.2, format="csr", random_state=3, data_rvs=np.ones)
    b = labels(300, 4)
    off = np.array([0, 50, 51, 300], dtype=np.int64)
    p = LogisticRegression(ClientData(A, b, off, "f32"), dtype="float32", oracle="numpy")
    x = (np.random.default_rng(5).standard_normal(17)).astype(np.float32)
    from ef21fast.methods.problems import _reg_grad

    want = p.client_grads(x)
    got = c_backend.glm_csr_client_grads(None, p._A.indices, p._A.indptr, p._b,
                                         off, x, _reg_grad(p.lam, x), "logreg")
    assert got.dtype == want.dtype == np.float32
    assert_close(got.astype(np.float64), want.astype(np.float64), rtol=2e-6)


def test_float32_argument_errors():
    data, indices, indptr = csr(20, 5, 0.3, seed=9)
    off = np.array([0, 10, 20], dtype=np.int64)
    b, x = labels(20, 1).astype(np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="data must be a C-contiguous 1-D float32"):
        c_backend.glm_csr_client_grads(data, indices, indptr, b, off, x, None, "logreg")
    with pytest.raises(ValueError, match="b must be a C-contiguous 1-D float32"):
        c_backend.glm_csr_client_grads(None, indices, indptr, b.astype(np.float64), off,
                                       x, None, "logreg")
    with pytest.raises(ValueError, match="out must be a writable C-contiguous float32"):
        c_backend.glm_csr_client_grads(None, indices, indptr, b, off, x, None, "logreg",
                                       out=np.empty((2, 5)))


def test_bind_float32_csr():
    """bind() on float32 CSR data and labels (what a float32 problem holds) gives the
    float32 pass, the same bits as the function on the reordered rows' sums."""
    A = sp.random(200, 9, density=0.3, format="csr", random_state=6).astype(np.float32)
    b = labels(200, 7).astype(np.float32)
    off = np.array([0, 70, 200], dtype=np.int64)
    f = c_backend.bind(A, b, off, "logreg")
    x = np.random.default_rng(8).standard_normal(9).astype(np.float32)
    G, ell = f(x, None)
    assert G.dtype == np.float32 and f.layout == "csr"
    want, want_ell = c_backend.glm_csr_client_grads(A.data, A.indices, A.indptr, b, off,
                                                    x, None, "logreg", losses=True)
    assert_close(G.astype(np.float64), want.astype(np.float64), rtol=1e-6)
    np.testing.assert_allclose(ell, want_ell, rtol=1e-12)
