"""At scale: the rounds' extra memory is bounded by their chunk buffer (tracemalloc,
deterministic), the ARPACK path of lambda_max within its stated tolerance of a dense
eigvalsh, and the sparse text-like generator (shape, canonical CSR, rows by length)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.methods import method as M
from ef21fast.methods import spectra
from ef21fast.methods.algorithms import method_class
from ef21fast.methods.data import ClientData
from ef21fast.methods.data_sparse import make_news20_like, make_sparse_classification
from ef21fast.methods.problems import LogisticRegression

# ----------------------------------------------------------------- round memory


def big_problem(sparse, oracle):
    rng = np.random.default_rng(0)
    n, q, d = 400, 3, 1500
    A = rng.standard_normal((n * q, d)) * (rng.random((n * q, d)) < 0.05)
    b = np.where(rng.random(n * q) < 0.5, -1.0, 1.0)
    off = np.arange(n + 1, dtype=np.int64) * q
    return LogisticRegression(ClientData(sp.csr_matrix(A) if sparse else A, b, off),
                              oracle=oracle)


ORACLE_CASES = [(False, "numpy"), (True, "numpy"), (False, None), (True, None)]


@pytest.mark.parametrize("sparse,oracle", ORACLE_CASES)
@pytest.mark.parametrize("name", ["ef21", "ef21-w", "ef14", "gd", "ef21-pp", "ef21-sgd"])
def test_round_extra_memory_is_the_chunk_buffer(monkeypatch, name, sparse, oracle):
    monkeypatch.setattr(M, "CHUNK_MIN_BYTES", 1 << 16)  # chunks of 5 clients
    monkeypatch.setattr(M, "CHUNK_FRACTION", 0.0)
    p = big_problem(sparse, oracle)
    opts = {"p": 0.5} if name == "ef21-pp" else {"batch": 1} if name == "ef21-sgd" else {}
    m = method_class(name)(p, k=2, gamma=1e-3, backend="numpy", **opts)
    n, d = p.n, p.d
    state = n * d * 8
    rows = M.chunk_rows(n, d, 8)
    assert rows <= 5  # the round is many chunks
    x = np.zeros(d)
    m.start(x, np.random.default_rng(0))
    x = m.step(x)
    m.round(x)  # the buffer and the oracle's caches exist from here on
    tracemalloc.start()
    try:
        for _ in range(2):
            x = m.step(x)
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            m.round(x)
            extra = tracemalloc.get_traced_memory()[1] - before
            # a few chunk-sized temporaries (the oracle's own, the float64 sums) and
            # a few (d,) vectors; the whole round's gradients would be n x d
            bound = 8 * (rows + 1) * d * 8 + 24 * d * 8 + (1 << 18)
            if name == "ef21-sgd" and not sparse:  # the n sampled rows, gathered once
                bound += n * d * 8  # (as the call over all clients gathers them)
            assert extra <= bound, (extra, bound, state)
            if name != "ef21-sgd" or sparse:
                assert extra < state / 4
    finally:
        tracemalloc.stop()


def test_chunk_rows():
    assert M.chunk_rows(10, 1, 8) == 10  # d = 1: one chunk
    assert M.chunk_rows(10**6, 100, 8) == int(M.CHUNK_FRACTION * 10**6)
    assert M.chunk_rows(100, 10, 8) == 100  # under CHUNK_MIN_BYTES: all
    assert M.chunk_rows(3, 10**7, 8) == 1


# ------------------------------------------------------------- lambda_max (ARPACK)


@pytest.mark.parametrize("shape", [(60, 45), (45, 60), (80, 80)])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_arpack_lmax_within_tolerance_of_eigvalsh(monkeypatch, shape, sparse, weighted):
    rng = np.random.default_rng(sum(shape))
    B = rng.standard_normal(shape) * (rng.random(shape) < 0.3)
    w = rng.random(shape[0]) + 0.1 if weighted else None
    Bw = B * w[:, None] if weighted else B
    exact = np.linalg.eigvalsh(Bw.T @ Bw)[-1]
    dense = spectra.lmax_gram(sp.csr_matrix(B) if sparse else B, w)
    assert dense == pytest.approx(exact, rel=1e-12)
    monkeypatch.setattr(spectra, "_DENSE_GRAM_MAX", 8)  # force the ARPACK path
    arpack = spectra.lmax_gram(sp.csr_matrix(B) if sparse else B, w)
    assert abs(arpack - exact) <= 10 * spectra.EIGSH_TOL * exact


def test_problem_constants_on_the_arpack_path(monkeypatch):
    rng = np.random.default_rng(3)
    m, d = 90, 70
    A = sp.random(m, d, density=0.2, random_state=4, format="csr")
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    off = np.array([0, 20, 50, 90])
    exact = LogisticRegression(ClientData(A, b, off))
    monkeypatch.setattr(spectra, "_DENSE_GRAM_MAX", 10)
    approx = LogisticRegression(ClientData(A, b, off))
    assert approx.L == pytest.approx(exact.L, rel=10 * spectra.EIGSH_TOL)
    np.testing.assert_allclose(approx.L_i, exact.L_i, rtol=10 * spectra.EIGSH_TOL)


# ------------------------------------------------------------------- generator


def test_sparse_generator():
    cd = make_sparse_classification(500, 3000, 0.01, 7, seed=2)
    A = cd.A
    assert sp.isspmatrix_csr(A) and A.shape == (500, 3000) and A.has_canonical_format
    assert A.indices.dtype == np.int32 and A.dtype == np.float64
    assert 0.5 * 0.01 < A.nnz / (500 * 3000) < 1.5 * 0.01
    np.testing.assert_allclose(np.sqrt(A.multiply(A).sum(axis=1)).ravel(), 1.0)
    assert set(np.unique(cd.b)) <= {-1.0, 1.0} and cd.n == 7
    lengths = np.diff(A.indptr)
    for i in range(cd.n):
        seg = lengths[cd.offsets[i]:cd.offsets[i + 1]]
        assert np.all(seg[1:] >= seg[:-1])  # by length inside each client
    again = make_sparse_classification(500, 3000, 0.01, 7, seed=2)
    assert (again.A != A).nnz == 0 and np.array_equal(again.b, cd.b)
    binary = make_sparse_classification(200, 50, 0.2, 4, binary=True)
    assert np.all(binary.A.data == 1.0)
    p = LogisticRegression(cd)  # canonical CSR: the problem shares the arrays
    assert np.shares_memory(p._A.data, A.data)


@pytest.mark.parametrize("bad,match", [
    (dict(m=0), "m must"), (dict(n=600), "n must be at most"),
    (dict(density=0.0), "density"), (dict(density=1.5), "density"),
    (dict(skew=0.5), "skew"), (dict(d=2**31), "below 2"),
])
def test_sparse_generator_bad_arguments(bad, match):
    args = dict(m=500, d=3000, density=0.01, n=7)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        make_sparse_classification(**args)


def test_news20_like_shape():
    assert callable(make_news20_like)  # the full shape is run by bench/scale.py
