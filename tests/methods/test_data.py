"""ef21fast.methods.data: LIBSVM reading, splits, the synthetic generator."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.methods import theory
from ef21fast.methods.data import (
    ClientData,
    DataError,
    load_libsvm,
    make_synthetic,
    split_clients,
)
from ef21fast.methods.problems import LinearRegression, LogisticRegression

DATA_DIR = Path(os.environ.get("EF21FAST_DATA_DIR",
                               Path(__file__).resolve().parents[3] / "shared" / "data"))


def dataset(name):
    path = DATA_DIR / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"development data {path} not available")
    return path


def write(tmp_path, content: bytes, name="f.svm"):
    p = tmp_path / name
    p.write_bytes(content)
    return p


def ratio(L):
    return theory.l_qm(L) / theory.l_am(L)


# ------------------------------------------------------------------------ loading

def test_load_basic(tmp_path):
    p = write(tmp_path, b"2 1:0.5 3:1\n# comment line\n\n1 2:-1 # trailing\n2 3:4e0\n")
    A, b = load_libsvm(p)
    assert isinstance(A, sp.csr_matrix) and A.dtype == np.float64
    assert A.shape == (3, 3)
    np.testing.assert_array_equal(A.toarray(), [[0.5, 0, 1], [0, -1, 0], [0, 0, 4]])
    np.testing.assert_array_equal(b, [1.0, -1.0, 1.0])  # larger label -> +1
    assert b.dtype == np.float64


@pytest.mark.parametrize("labels, expect", [
    ((0, 1, 1), (-1, 1, 1)),
    ((-1, 1, -1), (-1, 1, -1)),
    ((1, 2, 2), (-1, 1, 1)),
    ((5, -3, 5), (1, -1, 1)),
    ((1, 1, 1), (1, 1, 1)),
    ((0, 0, 0), (-1, -1, -1)),
])
def test_label_mapping(tmp_path, labels, expect):
    p = write(tmp_path, "".join(f"{y} 1:1\n" for y in labels).encode())
    _, b = load_libsvm(p)
    np.testing.assert_array_equal(b, expect)


def test_more_than_two_labels(tmp_path):
    p = write(tmp_path, b"1 1:1\n2 1:1\n3 1:1\n")
    with pytest.raises(DataError, match="3 distinct labels"):
        load_libsvm(p)


def test_gzip(tmp_path):
    import gzip

    p = tmp_path / "f.svm.gz"
    p.write_bytes(gzip.compress(b"1 1:1\n-1 2:1\n"))
    A, b = load_libsvm(p)
    assert A.shape == (2, 2)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_libsvm(tmp_path / "nope.txt")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("content, line, what", [
    (b"1 1:1\n-1 0:1 2:3\n", 2, "index 0"),                   # LIBSVM is 1-based
    (b"1 1:1\n1 1:1\n-1 a:b\n", 3, "not an integer"),
    (b"1 1:1\n1 99999999999:1\n", 2, "max_features"),          # overflows sklearn
    (b"1 1:1\n1 1:1\n1 1:1\n1 1000000000:1\n", 4, "max_features"),  # accepted by sklearn
    (b"1 1:1\n1 1:nan\n", 2, "not finite"),
    (b"1 1:1\n1 3:1 2:1\n", 2, "increasing"),
    (b"1 1:1\n1 2:1 2:1\n", 2, "increasing"),
    (b"1 1:1\nx 1:1\n", 2, "label"),
    (b"inf 1:1\n", 1, "label"),
    (b"1 1:1\n1 5\n", 2, "index:value"),
    (b"1 -3:1\n", 1, "index -3"),
])
def test_malformed_lines_name_the_line(tmp_path, content, line, what):
    p = write(tmp_path, content)
    with pytest.raises(DataError, match=f"line {line}:.*{what}") as exc:
        load_libsvm(p)
    assert str(p) in str(exc.value)


def test_max_features_is_configurable(tmp_path):
    p = write(tmp_path, b"1 1:1\n-1 50:1\n")
    A, _ = load_libsvm(p)
    assert A.shape == (2, 50)
    with pytest.raises(DataError, match="line 2"):
        load_libsvm(p, max_features=10)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# only a comment\n   \n"])
def test_empty_file(tmp_path, content):
    with pytest.raises(DataError, match="empty"):
        load_libsvm(write(tmp_path, content))


def test_binary_garbage(tmp_path):
    p = write(tmp_path, np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="line 1"):
        load_libsvm(p)


def test_binary_garbage_after_good_lines(tmp_path):
    p = write(tmp_path, b"1 1:1\n-1 2:1\n" + bytes(range(11, 256)) + b"\n")
    with pytest.raises(DataError, match="line 3"):
        load_libsvm(p)


@pytest.mark.parametrize("name, shape", [("mushrooms", (8124, 112)), ("a9a", (32561, 123)),
                                         ("phishing", (11055, 68)), ("w8a", (49749, 300))])
def test_real_datasets(name, shape):
    A, b = load_libsvm(dataset(name))
    assert A.shape == shape
    assert set(np.unique(b)) == {-1.0, 1.0}
    assert np.all(np.isfinite(A.data))


# ------------------------------------------------------------------------- splits

def small(m=10, d=3, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, d))
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    return A, b


def test_contiguous_split_as_ef21_code():
    A, b = small(10)
    data = split_clients(A, b, 3)
    assert data.offsets.tolist() == [0, 3, 6, 10]  # m // n each, remainder to the last
    assert data.offsets.dtype == np.int64
    np.testing.assert_array_equal(data.A, A)  # no shuffling
    np.testing.assert_array_equal(data.b, b)
    assert (data.n, data.m, data.d) == (3, 10, 3)
    assert data.m_i.tolist() == [3, 3, 4]
    Ai, bi = data.client(2)
    np.testing.assert_array_equal(Ai, A[6:])
    np.testing.assert_array_equal(bi, b[6:])


@pytest.mark.parametrize("m, n", [(10, 1), (10, 10), (7, 2), (1000, 999), (8124, 1000)])
def test_contiguous_split_sizes(m, n):
    A, b = small(m, 2)
    data = split_clients(A, b, n)
    q = m // n
    assert np.all(data.m_i[:-1] == q)
    assert data.m_i[-1] == m - (n - 1) * q


@pytest.mark.parametrize("n", [0, -1, 11, 2.0, "3", True])
def test_split_invalid_n(n):
    A, b = small(10)
    with pytest.raises(ValueError):
        split_clients(A, b, n)


def test_split_n_greater_than_m_message():
    A, b = small(10)
    with pytest.raises(ValueError, match="n must be <= m"):
        split_clients(A, b, 11)


def test_split_invalid_how_and_shapes():
    A, b = small(10)
    with pytest.raises(ValueError, match="unknown split"):
        split_clients(A, b, 2, how="shuffled")
    with pytest.raises(ValueError):
        split_clients(A, b[:-1], 2)


def test_label_sorted_split_is_stable():
    A, b = small(40)
    data = split_clients(A, b, 4, how="label-sorted")
    assert np.all(np.diff(data.b) >= 0)
    perm = np.argsort(b, kind="stable")
    np.testing.assert_array_equal(data.A, A[perm])


def test_heterogeneous_split_sorts_by_norm_and_spreads_L():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((400, 5)) * rng.lognormal(0, 1, (400, 1))
    b = np.where(rng.random(400) < 0.5, -1.0, 1.0)
    het = split_clients(A, b, 20, how="heterogeneous")
    norms = np.einsum("ij,ij->i", het.A, het.A)
    assert np.all(np.diff(norms) >= 0)
    r_het = ratio(LogisticRegression(het).L_i)
    r_con = ratio(LogisticRegression(split_clients(A, b, 20)).L_i)
    assert r_het > r_con


def test_random_split_is_seeded_permutation():
    A, b = small(30)
    d1 = split_clients(A, b, 3, how="random", seed=5)
    d2 = split_clients(A, b, 3, how="random", seed=5)
    d3 = split_clients(A, b, 3, how="random", seed=6)
    np.testing.assert_array_equal(d1.A, d2.A)
    assert not np.array_equal(d1.A, d3.A)
    np.testing.assert_array_equal(np.sort(d1.A, axis=0), np.sort(A, axis=0))


@pytest.mark.parametrize("how", ["contiguous", "label-sorted", "heterogeneous", "random"])
def test_split_dense_and_sparse_agree(how):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((50, 6)) * (rng.random((50, 6)) < 0.4)
    b = np.where(rng.random(50) < 0.5, -1.0, 1.0)
    dd = split_clients(A, b, 7, how=how, seed=0)
    ds = split_clients(sp.csr_matrix(A), b, 7, how=how, seed=0)
    assert isinstance(dd.A, np.ndarray) and ds.is_sparse
    np.testing.assert_array_equal(ds.A.toarray(), dd.A)
    np.testing.assert_array_equal(ds.b, dd.b)
    np.testing.assert_array_equal(ds.offsets, dd.offsets)
    np.testing.assert_array_equal(ds.dense().A, dd.A)
    np.testing.assert_array_equal(dd.sparse().A.toarray(), dd.A)


def test_split_does_not_modify_inputs():
    A, b = small(20)
    A0, b0 = A.copy(), b.copy()
    split_clients(A, b, 3, how="heterogeneous")
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("offsets", [[0, 5, 5, 10], [1, 10], [0, 9], [0, 11], [0],
                                     [0.0, 10.0]])
def test_clientdata_rejects_bad_offsets(offsets):
    A, b = small(10)
    with pytest.raises(ValueError):
        ClientData(A, b, np.array(offsets))


def test_clientdata_rejects_bad_arrays():
    A, b = small(10)
    with pytest.raises(ValueError):
        ClientData(A.astype(np.float32), b, np.array([0, 10]))
    with pytest.raises(ValueError):
        ClientData(A, b[:5], np.array([0, 10]))
    with pytest.raises(ValueError):
        ClientData(A.tolist(), b, np.array([0, 10]))
    with pytest.raises(ValueError):
        ClientData(sp.coo_matrix(A), b, np.array([0, 10]))


def test_mushrooms_contiguous_ratio():
    A, b = load_libsvm(dataset("mushrooms"))
    prob = LogisticRegression(split_clients(A, b, 20))
    # docs/maths.rst, "Problems": L_QM / L_AM = 1.006 (mushrooms, n = 20, contiguous)
    assert ratio(prob.L_i) == pytest.approx(1.006, abs=5e-4)


# ---------------------------------------------------------------------- synthetic

@pytest.mark.parametrize("kind, cls", [("logreg", LogisticRegression),
                                       ("linreg", LinearRegression)])
def test_synthetic_spread_sets_ratio(kind, cls):
    ratios = []
    for spread in (1.0, 1.5, 2.0, 4.0, 8.0, 11.0):
        data = make_synthetic(spread=spread, kind=kind, d=20, m_per_client=10)
        r = ratio(cls(data).L_i)
        assert r == pytest.approx(spread, rel=1e-8)
        ratios.append(r)
    assert ratios[0] == pytest.approx(1.0, abs=1e-12)
    assert ratios[-1] >= 10
    assert np.all(np.diff(ratios) > 0)


def test_synthetic_ratio_monotone_fine_grid():
    from ef21fast.methods.data import _synthetic_Li

    rs = [ratio(_synthetic_Li(200, s, 0.1, 1.0)) for s in np.linspace(1, 11.5, 40)]
    assert np.all(np.diff(rs) > 0)


def test_synthetic_defaults_and_reproducibility():
    d1 = make_synthetic(spread=3.0, seed=7)
    d2 = make_synthetic(spread=3.0, seed=7)
    d3 = make_synthetic(spread=3.0, seed=8)
    assert (d1.n, d1.m, d1.d) == (200, 4000, 50)
    assert isinstance(d1.A, np.ndarray) and d1.A.dtype == np.float64
    np.testing.assert_array_equal(d1.A, d2.A)
    np.testing.assert_array_equal(d1.b, d2.b)
    assert not np.array_equal(d1.A, d3.A)
    assert set(np.unique(d1.b)) == {-1.0, 1.0}
    assert np.all(np.isfinite(d1.A))


def test_synthetic_lam_enters_L_i():
    data = make_synthetic(n=50, spread=2.0, lam=0.0, kind="linreg")
    L = LinearRegression(data, lam=0.0).L_i
    assert ratio(L) == pytest.approx(2.0, rel=1e-8)
    assert np.all(L > 0)


@pytest.mark.parametrize("kw", [{"spread": 0.5}, {"spread": float("nan")},
                                {"spread": 20.0},           # above ~sqrt(200)
                                {"n": 0}, {"d": 0}, {"m_per_client": 1.5},
                                {"kind": "svm"}, {"lam": -1.0}])
def test_synthetic_invalid(kw):
    with pytest.raises(ValueError):
        make_synthetic(**kw)
