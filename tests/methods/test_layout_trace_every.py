"""The rows' layout by density (data.choose_layout / with_layout, run --layout) and the
trace of every K-th round (algorithms.run(trace_every=K), run --trace-every)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.cli import main as cli_main
from ef21fast.methods import algorithms
from ef21fast.methods.data import (
    DENSE_MIN_DENSITY,
    ClientData,
    choose_layout,
    make_synthetic,
    split_clients,
    with_layout,
)
from ef21fast.methods.problems import LinearRegression, LogisticRegression


def sparse_data(density, m=400, d=30, n=8, seed=0):
    rng = np.random.default_rng(seed)
    A = sp.random(m, d, density=density, format="csr", random_state=seed, data_rvs=np.ones)
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    return split_clients(A, b, n, name="t")


@pytest.mark.parametrize("density", [0.05, DENSE_MIN_DENSITY - 0.05,
                                     DENSE_MIN_DENSITY + 0.05, 0.9])
def test_auto_layout_by_density(density):
    cd = sparse_data(density)
    stored = cd.A.nnz / (cd.m * cd.d)
    want = "dense" if stored >= DENSE_MIN_DENSITY else "csr"
    assert choose_layout(cd.A) == want
    out = with_layout(cd)
    assert out.is_sparse == (want == "csr")
    assert choose_layout(cd.A, "dense") == "dense" and choose_layout(cd.A, "csr") == "csr"
    for lay in ("dense", "csr"):
        got = with_layout(cd, lay)
        assert got.is_sparse == (lay == "csr")
        A = got.A.toarray() if got.is_sparse else got.A
        assert np.array_equal(A, cd.A.toarray())
        assert np.array_equal(got.b, cd.b) and np.array_equal(got.offsets, cd.offsets)
    dense = with_layout(cd, "dense")
    assert choose_layout(dense.A) == want  # count_nonzero of a dense array
    assert with_layout(dense, "dense") is dense


def test_layout_errors():
    cd = sparse_data(0.1)
    with pytest.raises(ValueError, match="layout must be one of"):
        choose_layout(cd.A, "coo")
    with pytest.raises(TypeError, match="ClientData"):
        with_layout(cd.A)


def test_layouts_give_the_same_run_to_rounding():
    cd = sparse_data(0.2)
    runs = [algorithms.run(LogisticRegression(with_layout(cd, lay)), "ef21", k=2,
                           gamma=0.5, iters=30) for lay in ("dense", "csr")]
    np.testing.assert_allclose(runs[0].x, runs[1].x, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(runs[0].f, runs[1].f, rtol=1e-12)


def _problem():
    return LogisticRegression(make_synthetic(n=12, d=9, m_per_client=15, seed=3))


@pytest.mark.parametrize("method", ["ef21", "gd", "ef14", "ef21-pp", "ef21-sgd"])
@pytest.mark.parametrize("T,K", [(10, 3), (9, 3), (5, 1), (7, 50), (0, 4)])
def test_trace_every_keeps_the_rows_of_the_full_trace(method, T, K):
    """Rows of rounds 0, K, 2K, ... and T, the same bits as those rows of the full
    trace (the run itself does not change), bits counting every round."""
    full = algorithms.run(_problem(), method, k=2, gamma=0.3, iters=T, seed=1)
    part = algorithms.run(_problem(), method, k=2, gamma=0.3, iters=T, seed=1,
                          trace_every=K)
    rounds = sorted(set(range(0, T + 1, K)) | {T})
    assert part.iter.tolist() == rounds
    for col in ("bits", "grad_norm_sq", "f"):
        assert np.array_equal(getattr(part, col), getattr(full, col)[rounds]), col
    assert np.array_equal(part.x, full.x)
    assert part.status == full.status == "completed"
    assert part.message == full.message


def test_trace_every_tolerance_checked_on_recorded_rows_only():
    full = algorithms.run(_problem(), "ef21", k=3, gamma=1.0, iters=400)
    tol = float(full.grad_norm_sq[37]) * 1.0000001  # first reached at round <= 37
    first = int(np.flatnonzero(full.grad_norm_sq < tol)[0])
    K = 10
    part = algorithms.run(_problem(), "ef21", k=3, gamma=1.0, iters=400, tol=tol,
                          trace_every=K)
    stop = int(np.flatnonzero((full.grad_norm_sq < tol)
                              & (np.arange(full.iter.size) % K == 0))[0])
    assert first <= stop < first + K
    assert part.status == "converged" and part.rounds == stop
    assert f"at round {stop}" in part.message


@pytest.mark.parametrize("K", [7, 1000])
def test_trace_every_divergence_records_the_last_finite_round(K):
    def problem():
        return LinearRegression(make_synthetic(n=12, d=9, m_per_client=15, seed=3,
                                               kind="linreg"))
    full = algorithms.run(problem(), "ef21", k=2, gamma=1e3, iters=2000)
    assert full.status == "diverged" and full.rounds % 7
    part = algorithms.run(problem(), "ef21", k=2, gamma=1e3, iters=2000, trace_every=K)
    assert part.status == "diverged"
    assert part.rounds == full.rounds
    assert np.array_equal(part.x, full.x)
    # f of that row evaluated apart (its pass left the losses out): equal to rounding
    np.testing.assert_allclose(part.f[-1], full.f[-1], rtol=1e-12)
    assert part.bits[-1] == full.bits[-1]
    assert part.grad_norm_sq[-1] == full.grad_norm_sq[-1]
    assert part.message == full.message


def test_trace_every_callbacks_see_recorded_rows():
    seen, rows = [], []
    algorithms.run(_problem(), "ef21", k=1, gamma=0.3, iters=11, trace_every=5,
                   callback=lambda t, x, gn: seen.append(t),
                   on_row=lambda t, *rest: rows.append(t))
    assert rows == [0, 5, 10, 11] and seen == [5, 10, 11]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_trace_every_errors(bad):
    with pytest.raises(ValueError, match="trace_every must be a positive integer"):
        algorithms.run(_problem(), "ef21", iters=3, trace_every=bad)


def test_cli_trace_every_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.svm"
    with open(path, "w") as fh:
        for j in range(60):
            cols = sorted(rng.choice(20, size=8, replace=False) + 1)
            fh.write(f"{1 if j % 2 else -1} " + " ".join(f"{c}:1" for c in cols) + "\n")
    out = tmp_path / "r"
    rc = cli_main(["run", "--data", str(path), "--clients", "4", "--method", "ef21",
                   "--iters", "9", "--trace-every", "4", "--layout", "csr", "--quiet",
                   "--out", str(out)])
    assert rc == 0
    with open(out / "trace.csv") as fh:
        assert [int(r["iter"]) for r in csv.DictReader(fh)] == [0, 4, 8, 9]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trace_every"] == 4 and summary["layout"] == "csr"
    rc = cli_main(["run", "--data", str(path), "--clients", "4", "--method", "ef21",
                   "--iters", "2", "--quiet", "--out", str(tmp_path / "a")])
    assert rc == 0  # 40% stored: auto picks dense
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["layout"] == "dense"


@pytest.mark.parametrize("argv,needle", [
    (["--trace-every", "0"], "--trace-every must be at least 1"),
    (["--layout", "coo"], "invalid choice"),
])
def test_cli_errors(tmp_path, capsys, argv, needle):
    try:
        code = cli_main(["run", "--method", "ef21", "--iters", "1", "--quiet",
                         "--out", str(tmp_path / "o"), *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert needle in capsys.readouterr().err


def test_cli_trace_every_refused_with_workers():
    import argparse

    from ef21fast.cli import run as run_cli
    from ef21fast.cli._common import UsageError

    sub = argparse.ArgumentParser().add_subparsers()
    run_cli.add_parser(sub)
    args = sub.choices["run"].parse_args(["--method", "ef21", "--out", "o",
                                          "--trace-every", "2", "--workers", "2"])
    with pytest.raises(UsageError, match="not to --workers"):
        run_cli.parse_run_args(args)


def test_client_data_unchanged_by_layout():
    cd = sparse_data(0.5)
    before = cd.A.copy()
    with_layout(cd, "dense")
    assert isinstance(cd, ClientData) and (cd.A != before).nnz == 0
