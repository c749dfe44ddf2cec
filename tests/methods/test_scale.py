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
    monkeypatch.setattr(M, "CHUNK_ONE_BELOW", 0)
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
    assert M.chunk_rows(100, 10, 8) == 100  # under CHUNK_ONE_BELOW: all
    # just above it: CHUNK_MAX_FRACTION of the states (under the CHUNK_MIN_BYTES floor)
    n = M.CHUNK_ONE_BELOW // (8 * 100) + 1
    assert M.chunk_rows(n, 100, 8) == int(M.CHUNK_MAX_FRACTION * n * 800) // 800 < n
    # a9a at n = 10,000 (9.4 MiB of states): a fortieth of them, not 1 MiB
    rows = M.chunk_rows(10_000, 123, 8)
    assert rows * 123 * 8 <= M.CHUNK_MAX_FRACTION * 10_000 * 123 * 8 < M.CHUNK_MIN_BYTES
    assert rows == int(M.CHUNK_MAX_FRACTION * 10_000 * 984) // 984
    # states where CHUNK_MIN_BYTES lies between 1% and CHUNK_MAX_FRACTION of them: the floor
    n = int(1.5 * M.CHUNK_MIN_BYTES / M.CHUNK_MAX_FRACTION) // 800
    assert M.CHUNK_FRACTION * n * 800 < M.CHUNK_MIN_BYTES < M.CHUNK_MAX_FRACTION * n * 800
    assert M.chunk_rows(n, 100, 8) == M.CHUNK_MIN_BYTES // 800
    assert M.chunk_rows(3, 10**7, 8) == 1
    assert M.chunk_rows(100, 1355191, 8) == 1  # news20-like: one client per chunk
    for n, d in ((700, 1000), (5000, 300), (10**5, 30), (40, 10**5)):  # the buffer's bound
        S = n * d * 8
        if S > M.CHUNK_ONE_BELOW:
            assert 1 <= M.chunk_rows(n, d, 8) * d * 8 <= max(
                M.CHUNK_FRACTION * S, min(M.CHUNK_MIN_BYTES, M.CHUNK_MAX_FRACTION * S), d * 8)


def test_ranges_keep_the_loss_sums_of_one_x():
    """The fused pass's loss sums, kept range by range (overlapping ranges included),
    are those of one call over all clients once every client is covered, and a new x
    (the caller's array changed in place included) starts them afresh."""
    cd = make_sparse_classification(300, 40, 0.2, 9, seed=5)
    if LogisticRegression(cd).oracle != "c":
        pytest.skip("no fused C oracle")
    rng = np.random.default_rng(6)
    x = rng.standard_normal(40)
    ref = LogisticRegression(cd)
    G_all, f_all = ref.client_grads(x), ref.client_losses(x)
    p = LogisticRegression(cd)
    for lo, hi in ((0, 3), (2, 5), (1, 2), (4, 8)):
        np.testing.assert_array_equal(p.client_grads(x, lo, hi), G_all[lo:hi])
        assert p._ell is None  # client 8 not covered yet
    p.client_grads(x.copy(), 8, 9)  # an equal x: the same sums
    assert p._ell is not None
    np.testing.assert_array_equal(p.client_losses(x), f_all)
    q = LogisticRegression(cd)
    y = x.copy()
    q.client_grads(y, 0, 5)
    y[3] += 0.5  # changed in place between two ranges
    q.client_grads(y, 5, 9)
    assert q._ell is None
    np.testing.assert_array_equal(q.client_losses(y), LogisticRegression(cd).client_losses(y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows,d", [(1, 7), (3, 5), (50, 2), (9, 3000)])
def test_running_sum_in_place_is_the_reduce(rows, d, dtype):
    # the rows added one call each, in place, give the bits of np.add.reduce over the
    # rows after a spare row holding the running sum (and of mean_rows over all)
    rng = np.random.default_rng(rows * d)
    chunks = [(rng.standard_normal((rows, d)) * 10.0 ** rng.integers(-4, 4, (rows, 1)))
              .astype(dtype) for _ in range(4)]
    acc_spare = acc_place = None
    for G in chunks:
        X = np.zeros((1 + rows, d), dtype)
        X[1:] = G
        acc_spare = M._add_rows(acc_spare, X, 1)
        acc_place = M._add_rows(acc_place, G.copy(), 0)
    assert acc_place.dtype == np.float64
    np.testing.assert_array_equal(acc_place, acc_spare)
    np.testing.assert_array_equal(acc_place / (4 * rows),
                                  M.mean_rows(np.concatenate(chunks)))


def test_descent_step_bits():
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal(1000), rng.standard_normal(1000)
    for gamma in (0.37, np.float64(1e-3)):
        np.testing.assert_array_equal(M.descent_step(x, gamma, g), x - gamma * g)
        g32 = g.astype(np.float32)
        out = M.descent_step(x, gamma, g32)
        assert out.dtype == (x - gamma * g32).dtype
        np.testing.assert_array_equal(out, x - gamma * g32)
    x0 = x.copy()
    M.descent_step(x, 0.5, g)
    np.testing.assert_array_equal(x, x0)  # x not modified


# ---------------------------------------------------------- run memory (the bound)


def _warm_up():
    """Build and run a tiny problem: the lazy imports of the first run (backends,
    kernels) are not the run's memory."""
    from ef21fast.methods.algorithms import run

    cd = make_sparse_classification(60, 40, 0.2, 5, seed=9)
    run(LogisticRegression(cd), "ef21", k=1, iters=2)


@pytest.mark.parametrize("case", ["a9a-like", "wide"])
def test_run_memory_within_data_and_states_plus_10_percent(monkeypatch, case):
    """What run() allocates (tracemalloc: deterministic) is the client states plus at
    most 10% of the data and the states, on a sparse problem of a9a's shape at
    n = 10,000 and on a wide one (d = 20,000, n = 100) standing in for news20-like,
    whose chunk is one client (CHUNK_MIN_BYTES lowered so that it is here too)."""
    from ef21fast.methods.algorithms import run

    if case == "a9a-like":
        cd = make_sparse_classification(32561, 123, 0.11, 10_000, binary=True, seed=1)
    else:
        monkeypatch.setattr(M, "CHUNK_MIN_BYTES", 0)
        cd = make_sparse_classification(3000, 20_000, 0.003, 100, seed=1)
    p = LogisticRegression(cd)
    A = p._A
    data = A.data.nbytes + A.indices.nbytes + A.indptr.nbytes + p._b.nbytes
    states = p.n * p.d * 8
    if case == "wide":
        assert M.chunk_rows(p.n, p.d, 8) == 1
    _warm_up()
    tracemalloc.start()
    try:
        for name in ("ef21", "ef21-w", "gd"):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            tr = run(p, name, k=1, iters=4)
            extra = tracemalloc.get_traced_memory()[1] - before - states
            assert tr.status == "completed"
            assert extra <= 0.10 * (data + states), (name, extra, data, states)
    finally:
        tracemalloc.stop()


def test_rows_by_length_same_clients_and_bits():
    from ef21fast.methods.algorithms import run
    from ef21fast.methods.data import split_clients
    from ef21fast.methods.data_sparse import rows_by_length

    rng = np.random.default_rng(4)
    m, d = 400, 60
    A = sp.random(m, d, density=0.1, random_state=5, format="csr")
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    cd = split_clients(A, b, 9)
    cd2 = rows_by_length(cd)
    assert cd2 is not cd and np.array_equal(cd2.offsets, cd.offsets)
    lengths = np.diff(cd2.A.indptr)
    for i in range(cd.n):
        r0, r1 = cd.offsets[i], cd.offsets[i + 1]
        assert np.all(np.diff(lengths[r0:r1]) >= 0)
        rows = lambda X, y: sorted(tuple(X[j].toarray().ravel()) + (y[j],)
                                   for j in range(r0, r1))
        assert rows(cd.A, cd.b) == rows(cd2.A, cd2.b)  # the same samples
    assert rows_by_length(cd2) is cd2
    p, p2 = LogisticRegression(cd), LogisticRegression(cd2)
    assert p.oracle == p2.oracle
    # L and the L_i are sums over the rows: equal up to rounding
    assert p2.L == pytest.approx(p.L, rel=1e-12)
    np.testing.assert_allclose(p2.L_i, p.L_i, rtol=1e-12)
    if p.oracle == "c":  # the fused oracle reads both in the same order: the same bits
        assert np.shares_memory(p2._A.indices, cd2.A.indices)
        for name in ("ef21", "gd", "ef21-pp"):  # at a given step size
            t1, t2 = (run(q, name, k=2, iters=6, gamma=0.5 / p.L) for q in (p, p2))
            np.testing.assert_array_equal(t1.f, t2.f)
            np.testing.assert_array_equal(t1.x, t2.x)


@pytest.mark.parametrize("itype", [np.int32, np.int64])
@pytest.mark.parametrize("block", [1, 7, 1 << 16])
def test_rows_by_length_in_place_is_the_copy(monkeypatch, itype, block):
    """overwrite=True: the same arrays as the copy, bit for bit, written over the
    input's (blocks of clients of one value, of several, and all at once; empty rows
    and empty clients)."""
    from ef21fast.methods import data_sparse

    monkeypatch.setattr(data_sparse, "_REORDER_BLOCK", block)
    rng = np.random.default_rng(block)
    m, d = 300, 40
    A = sp.random(m, d, density=0.15, random_state=6, format="csr")
    A = sp.csr_matrix(A.multiply(rng.random((m, 1)) < 0.8))  # some empty rows
    A.indices, A.indptr = A.indices.astype(itype), A.indptr.astype(itype)
    b = rng.standard_normal(m)
    offsets = np.array([0, 1, 2, 60, 61, 200, 300])  # one-row clients among others
    cd = ClientData(A, b, offsets)
    copy = data_sparse.rows_by_length(cd)
    kept = [a.copy() for a in (A.data, A.indices, A.indptr, b)]
    same = data_sparse.rows_by_length(cd, overwrite=True)
    assert same.A is A and same.b is b and np.array_equal(same.offsets, offsets)
    for got, want, was in zip((A.data, A.indices, A.indptr, b),
                              (copy.A.data, copy.A.indices, copy.A.indptr, copy.b), kept):
        assert got.dtype == was.dtype  # the caller's index type is kept
        np.testing.assert_array_equal(got, want)
    assert not all(np.array_equal(a, k) for a, k in zip((A.data, b), kept[::3]))
    assert data_sparse.rows_by_length(same, overwrite=True) is same  # nothing moves


def test_rows_by_length_in_place_needs_writable_arrays():
    from ef21fast.methods.data_sparse import rows_by_length

    A = sp.csr_matrix(np.array([[1.0, 2.0], [3.0, 0.0]]))
    b = np.array([1.0, -1.0])
    b.flags.writeable = False
    with pytest.raises(ValueError, match="b is read-only"):
        rows_by_length(ClientData(A, b, np.array([0, 2])), overwrite=True)
    np.testing.assert_array_equal(A.toarray(), [[1.0, 2.0], [3.0, 0.0]])


def test_problem_setup_makes_no_copy_of_the_data_or_states():
    """The constants (lambda_max of the Gram matrices, blocks of rows) and the fused
    oracle's checked pass (one (1, d) result) allocate far less than the data or the
    n x d states: the set-up's peak stays near the data's size."""
    cd = make_sparse_classification(40000, 120, 0.1, 5000, binary=True, seed=3)
    A = cd.A
    data = A.data.nbytes + A.indices.nbytes + A.indptr.nbytes
    states = cd.n * cd.d * 8
    LogisticRegression(make_sparse_classification(300, 120, 0.1, 30, seed=1))  # warm
    tracemalloc.start()
    try:
        LogisticRegression(cd)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 0.5 * min(data, states), (peak, data, states)


def test_cli_problem_holds_one_copy_of_the_rows(tmp_path):
    """``ef21fast run --data FILE``: the rows by length inside each client, so that
    the fused oracle runs on the data itself (no reordered copy of it)."""
    from sklearn.datasets import dump_svmlight_file

    from ef21fast.cli._common import build_problem
    from ef21fast.methods.data_sparse import rows_by_length

    rng = np.random.default_rng(8)
    A = sp.random(90, 25, density=0.3, format="csr", random_state=9)
    path = tmp_path / "f.svm"
    dump_svmlight_file(A, np.where(rng.random(90) < 0.5, -1.0, 1.0), str(path),
                       zero_based=False)
    problem, cd = build_problem("logreg", str(path), clients=6, layout="csr")
    assert cd.is_sparse and rows_by_length(cd) is cd  # already in the oracle's order
    assert np.shares_memory(problem._A.indices, cd.A.indices)
    for i in range(cd.n):
        lengths = np.diff(cd.A.indptr)[cd.offsets[i]:cd.offsets[i + 1]]
        assert np.all(lengths[1:] >= lengths[:-1])


# ------------------------------------------------------------- lambda_max (ARPACK)


@pytest.mark.parametrize("shape", [(60, 45), (45, 60), (80, 80)])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block", [5, 1 << 15])  # a tall Gram: summed over row blocks
def test_arpack_lmax_within_tolerance_of_eigvalsh(monkeypatch, shape, sparse, weighted,
                                                  block):
    monkeypatch.setattr(spectra, "_GRAM_BLOCK", block)
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


@pytest.mark.parametrize("chunk", [1 << 17, 64])
def test_client_lmax_every_route_is_exact(monkeypatch, chunk):
    """Batched dense chunks and, for sparse clients larger than a chunk, lmax_gram's
    sparse blocks (tall and wide clients): each L_i equal to its own eigvalsh."""
    monkeypatch.setattr(spectra, "_CHUNK_ELEMS", chunk)
    monkeypatch.setattr(spectra, "_GRAM_BLOCK", 16)
    A = sp.random(200, 12, density=0.4, random_state=2, format="csr")
    offsets = np.array([0, 1, 4, 7, 10, 30, 170, 200])  # 1, 3, 3, 3, 20, 140, 30 rows
    got = spectra.client_lmax(A, offsets)
    for i in range(offsets.size - 1):
        blk = A[offsets[i]:offsets[i + 1]].toarray()
        want = np.linalg.eigvalsh(blk.T @ blk)[-1]
        assert got[i] == pytest.approx(max(want, 0.0), rel=1e-12, abs=1e-300), i
    wide = sp.random(40, 300, density=0.05, random_state=3, format="csr")
    got = spectra.client_lmax(wide, np.array([0, 5, 40]))
    for i, (r0, r1) in enumerate([(0, 5), (5, 40)]):
        blk = wide[r0:r1].toarray()
        assert got[i] == pytest.approx(np.linalg.eigvalsh(blk @ blk.T)[-1], rel=1e-12)


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
