"""Runs that lose nothing: the trace is on disk row by row while a run goes on, a killed
or interrupted run leaves every completed round, and a re-run with the same seed gives
the same trace."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from ef21fast import cli
from ef21fast.methods import algorithms, problems, reproduce
from ef21fast.methods import data as D
from ef21fast.methods.trace import TraceLog

HEADER = ["iter", "bits", "grad_norm_sq", "f", "time_s"]


def read_trace(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == HEADER
    assert all(len(r) == 5 for r in rows[1:]), "a partial line"
    assert [int(r[0]) for r in rows[1:]] == list(range(len(rows) - 1)), "rounds missing"
    for r in rows[1:]:
        [float(v) for v in r[1:]]
    return rows


def small_problem(seed=0):
    cd = D.make_synthetic(n=8, d=12, m_per_client=10, spread=2.0, seed=seed)
    return problems.LogisticRegression(cd, lam=0.1)


def test_trace_log_is_on_disk_row_by_row_and_matches_to_csv(tmp_path):
    path = tmp_path / "t.csv"
    seen = []

    def on_row(t, bits, gn, f, s, x):
        log.row(t, bits, gn, f, s)
        seen.append(len(path.read_text().splitlines()))  # readable mid-run, no buffer

    with TraceLog(path) as log:
        tr = algorithms.run(small_problem(), "ef21", k=2, iters=15, backend="numpy",
                            on_row=on_row)
    assert seen == list(range(2, 18))
    assert log.rows == 16
    assert path.read_text() == tr.to_csv()
    with pytest.raises(ValueError, match="closed"):
        log.row(0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("method", ["ef21-sgd", "ef21-w-pp", "ef14"])
def test_same_seed_same_trace_and_interrupted_prefix(tmp_path, capsys, method):
    """Two runs with one seed agree bit for bit (time aside); a run stopped early is a
    prefix of the full one."""
    outs = [tmp_path / f"o{i}" for i in range(2)]
    for out in outs:
        rc = cli.main(["run", "--data", "synthetic", "--clients", "8", "--method", method,
                       "--k", "2", "--iters", "60", "--seed", "5", "--backend", "numpy",
                       "--quiet", "--out", str(out)])
        assert rc == 0, capsys.readouterr().err
    a, b = (read_trace(o / "trace.csv") for o in outs)
    assert [r[:4] for r in a] == [r[:4] for r in b]
    assert np.array_equal(np.load(outs[0] / "x.npy"), np.load(outs[1] / "x.npy"))

    cd = D.make_synthetic(n=8, d=50, m_per_client=20, spread=2.0, seed=5)
    prob = problems.LogisticRegression(cd, lam=0.1)
    full = algorithms.run(prob, method, k=2, iters=40, seed=5, backend="numpy")
    part = algorithms.run(prob, method, k=2, iters=40, seed=5, backend="numpy",
                          callback=lambda t, x, g: t == 17)
    assert part.status == "interrupted" and part.rounds == 17
    np.testing.assert_array_equal(part.grad_norm_sq, full.grad_norm_sq[:18])
    np.testing.assert_array_equal(part.bits, full.bits[:18])


def _start_run(out: Path, *extra):
    script = Path(sys.executable).with_name("ef21fast")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    return subprocess.Popen(
        [str(script), "run", "--data", "synthetic", "--clients", "20", "--method",
         "ef21-sgd", "--backend", "numpy", "--iters", "100000000", "--quiet",
         "--out", str(out), *extra],
        stderr=subprocess.PIPE, cwd=tempfile.gettempdir())


def _wait_rows(path: Path, rows: int, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > rows:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended early: {proc.stderr.read().decode(errors='replace')}")
        time.sleep(0.05)
    pytest.fail(f"{path} did not reach {rows} rows")


def test_sigkill_leaves_every_completed_round(tmp_path):
    """kill -9 cannot be caught: the streamed CSV and the 'running' summary still tell
    the story, and x.npy holds a checkpointed iterate."""
    out = tmp_path / "o"
    with _start_run(out) as proc:
        _wait_rows(out / "trace.csv", 200, proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    rows = read_trace(out / "trace.csv")
    assert len(rows) > 200
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "running" and "killed" in summary["message"]
    x = np.load(out / "x.npy", allow_pickle=False)
    assert x.shape == (summary["d"],) and np.all(np.isfinite(x))
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"


def test_interrupted_run_then_rerun_reproduces_its_rounds(tmp_path):
    """Ctrl-C then a fresh run with the same seed: the rounds of the interrupted run are
    exactly the first rounds of the new one."""
    out = tmp_path / "o"
    with _start_run(out) as proc:
        _wait_rows(out / "trace.csv", 100, proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    first = read_trace(out / "trace.csv")
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    rc = cli.main(["run", "--data", "synthetic", "--clients", "20", "--method", "ef21-sgd",
                   "--backend", "numpy", "--iters", str(len(first) + 5), "--quiet",
                   "--out", str(tmp_path / "again")])
    assert rc == 0
    again = read_trace(tmp_path / "again" / "trace.csv")
    assert [r[:4] for r in again[:len(first)]] == [r[:4] for r in first]


def test_reproduce_interrupted_stops_and_writes_what_ran(tmp_path, monkeypatch):
    """Ctrl-C in the second method of the first problem: no further run starts; table,
    plot, CSVs and summary are written for what ran, marked interrupted."""
    real_run = algorithms.run
    calls = []

    def run(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            inner = kwargs["on_row"]

            def on_row(t, *rest):
                inner(t, *rest)
                if t == 30:
                    raise KeyboardInterrupt

            kwargs["on_row"] = on_row
        return real_run(*args, **kwargs)

    monkeypatch.setattr(algorithms, "run", run)
    result = reproduce.reproduce(str(tmp_path), quick=True, quiet=True, backend="numpy")
    assert len(calls) == 2
    assert result["interrupted"] and "after round 30" in result["interrupted"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and len(summary["rows"]) == 1
    folder = tmp_path / summary["rows"][0]["problem"]
    assert len(read_trace(folder / "ef21-gam.csv")) == 32
    assert "INTERRUPTED" in (tmp_path / "table.md").read_text()
    assert (tmp_path / f"{summary['rows'][0]['problem']}.png").exists()
    text = reproduce.format_table(result["rows"])
    assert text.splitlines()[-1].split()[-3:] == ["-", "-", "-"]


def test_reproduce_summary_says_running_while_it_runs(tmp_path, monkeypatch):
    seen = []
    real_run = algorithms.run

    def run(*args, **kwargs):
        seen.append(json.loads((tmp_path / "summary.json").read_text())["status"])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(algorithms, "run", run)
    reproduce.reproduce(str(tmp_path), quick=True, quiet=True, backend="numpy", iters=50)
    assert seen and set(seen) == {"running"}
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"
