"""``ef21fast run`` on a sparse LIBSVM file of the tests' own making, against an
independent EF21: the file read back by scikit-learn's reader (not the package's), the
client gradients, f, the constants L, L_AM, L_QM and the theory step computed here from
the formulas of docs/maths.rst, with dense eigen-decompositions and a per-client loop.

The file has what real LIBSVM files have and the synthetic generator does not: rows of
very different lengths, an empty row, columns that no row of a client touches, binary
and real values, labels other than -1/+1, and a last client with more rows than the
others (the contiguous split). It runs with the fused CSR oracle (the default on data
this sparse), with the rows kept dense (``--layout dense``), and on every complete
backend.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast import cli
from ef21fast.backends import registry

M, D, N, K, LAM, ROUNDS = 203, 150, 6, 2, 0.1, 40
RTOL = 1e-10


def _write_file(path):
    """A sparse binary-labelled file (labels 2 and 4, as in some LIBSVM sets)."""
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(2026)
    A = sp.random(M, D, density=0.04, format="lil", random_state=rng)
    A[7, :] = 0                                   # an empty row
    A[11, :] = rng.standard_normal(D) * 5         # a full, long row
    A[:, D - 1] = 0
    A[M - 1, D - 1] = 1.0                         # the last column present once
    A = A.tocsr()
    binary = rng.random(A.nnz) < 0.5              # half the stored values are 1
    A.data[binary] = 1.0
    A.eliminate_zeros()
    labels = np.where(rng.random(M) < 0.4, 2, 4)
    dump_svmlight_file(A, labels, str(path), zero_based=False)


def _independent(path):
    """Rows, +-1 labels and client slices, read with scikit-learn's reader."""
    from sklearn.datasets import load_svmlight_file

    A, y = load_svmlight_file(str(path), zero_based=False, n_features=D)
    b = np.where(y == y.max(), 1.0, -1.0)   # the larger label is +1 (docs/maths.rst)
    A = A.toarray()
    cut = M // N
    parts = [slice(i * cut, (i + 1) * cut if i < N - 1 else M) for i in range(N)]
    return A, b, parts


def _grad(A, b, x):
    m = len(b)
    s = 0.5 * (1.0 + np.tanh(-b * (A @ x) / 2.0))   # sigmoid(-b a.x), no overflow
    return A.T @ (-b * s) / m + 2.0 * LAM * x / (1.0 + x * x) ** 2


def _f(A, b, parts, x):
    loss = np.mean([np.mean(np.logaddexp(0.0, -b[p] * (A[p] @ x))) for p in parts])
    return loss + LAM * np.sum(x * x / (1.0 + x * x))


def _constants(A, b, parts):
    """L_i = lambda_max(A_i^T A_i) / (4 m_i) + 2 lam; L of f (the clients' mean)."""
    Li = np.array([np.linalg.eigvalsh(A[p].T @ A[p])[-1] / (4 * len(b[p])) + 2 * LAM
                   for p in parts])
    H = sum(A[p].T @ A[p] / len(b[p]) for p in parts) / N
    L = np.linalg.eigvalsh(H)[-1] / 4 + 2 * LAM
    return L, Li.mean(), np.sqrt(np.mean(Li ** 2))


def _ef21(A, b, parts, gamma, x0):
    """EF21 with TopK (ties to the smaller index), from the full gradients."""
    def topk(v):
        keep = np.argsort(-np.abs(v), kind="stable")[:K]
        out = np.zeros_like(v)
        out[keep] = v[keep]
        return out

    x = x0.copy()
    G = [_grad(A[p], b[p], x) for p in parts]
    g = np.mean(G, axis=0)
    gn, fs = [float(np.sum(g * g))], [_f(A, b, parts, x)]
    for _ in range(ROUNDS):
        x = x - gamma * g
        full = [_grad(A[p], b[p], x) for p in parts]
        c = [topk(full[i] - G[i]) for i in range(N)]
        G = [G[i] + c[i] for i in range(N)]
        g = g + np.mean(c, axis=0)
        true = np.mean(full, axis=0)
        gn.append(float(np.sum(true * true)))
        fs.append(_f(A, b, parts, x))
    return x, np.array(gn), np.array(fs)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse-file")
    path = folder / "own.svm"
    _write_file(path)
    x0 = np.random.default_rng(5).standard_normal(D) * 0.3
    np.save(folder / "x0.npy", x0)
    A, b, parts = _independent(path)
    return folder, A, b, parts, x0


def _complete_backends():
    return [b for b in registry.available_backends() if not registry.missing_kernels(b)]


@pytest.mark.parametrize("layout", ["auto", "dense"])
@pytest.mark.parametrize("backend", _complete_backends())
def test_run_on_a_sparse_file_equals_an_independent_ef21(case, capsys, backend, layout):
    folder, A, b, parts, x0 = case
    out = folder / f"out-{backend}-{layout}"
    rc = cli.main(["run", "--problem", "logreg", "--data", str(folder / "own.svm"),
                   "--clients", str(N), "--method", "ef21", "--k", str(K),
                   "--gamma", "theory-am", "--gamma-mult", "32", "--iters", str(ROUNDS),
                   "--x0", str(folder / "x0.npy"), "--layout", layout,
                   "--backend", backend, "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layout"] == ("csr" if layout == "auto" else "dense")
    assert (summary["n"], summary["d"], summary["k"]) == (N, D, K)

    L, l_am, l_qm = _constants(A, b, parts)
    np.testing.assert_allclose([summary["L"], summary["L_AM"], summary["L_QM"]],
                               [L, l_am, l_qm], rtol=1e-9)
    # the theory-am step (docs/maths.rst, "Step sizes"), times the multiplier
    alpha = K / D
    theta = 1.0 - np.sqrt(1.0 - alpha)
    beta = (1.0 - alpha) / theta
    gamma = 32.0 / (L + l_am * np.sqrt(beta / theta))
    assert summary["gamma"] == pytest.approx(gamma, rel=1e-9)

    x, gn, fs = _ef21(A, b, parts, summary["gamma"], x0)
    trace = np.genfromtxt(out / "trace.csv", delimiter=",", names=True)
    assert len(trace) == ROUNDS + 1
    np.testing.assert_allclose(trace["grad_norm_sq"], gn, rtol=RTOL)
    np.testing.assert_allclose(trace["f"], fs, rtol=RTOL)
    np.testing.assert_allclose(np.load(out / "x.npy"), x, rtol=RTOL, atol=1e-14)
    assert gn[-1] < 0.5 * gn[0]   # the run went somewhere: the check compares progress
