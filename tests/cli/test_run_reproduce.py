"""``ef21fast run`` and ``ef21fast reproduce`` end to end, and their handling of bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ef21fast import cli

PNG = b"\x89PNG\r\n\x1a\n"


def write_libsvm(path: Path, m=60, d=6, seed=0, labels=(0, 1)) -> Path:
    """A tiny LIBSVM file: m rows, d features (1-based), labels from ``labels``."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(m):
        y = labels[int(rng.random() < 0.5)]
        feats = sorted(rng.choice(d, size=int(rng.integers(1, d + 1)), replace=False))
        body = " ".join(f"{j + 1}:{rng.standard_normal() * (1 + j):.6g}" for j in feats)
        lines.append(f"{y} {body}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_usage_error(rc, err, *needles):
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ef21fast ") and ": error: " in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------------- run

def test_run_synthetic_end_to_end(tmp_path, capsys):
    out = tmp_path / "res"
    rc, stdout, err = run_cli(
        capsys, "run", "--problem", "logreg", "--data", "synthetic", "--clients", "10",
        "--method", "ef21-w", "--k", "2", "--gamma", "theory-am", "--gamma-mult", "2",
        "--iters", "40", "--seed", "3", "--backend", "numpy", "--quiet", "--out", out)
    assert rc == 0, err
    assert "ef21-w" in stdout and str(out) in stdout
    with open(out / "trace.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["iter", "bits", "grad_norm_sq", "f", "time_s"]
    assert len(rows) == 42 and rows[1][0] == "0" and float(rows[1][1]) == 0.0
    assert float(rows[-1][1]) == 40 * 2 * 32
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "gamma", "L", "L_AM", "L_QM", "alpha", "n", "d", "k", "backend",
                "versions", "status"):
        assert key in summary, key
    assert summary["method"] == "ef21-w" and summary["status"] == "completed"
    assert summary["n"] == 10 and summary["k"] == 2 and summary["backend"] == "numpy"
    assert summary["L_QM_over_L_AM"] == pytest.approx(2.21, rel=1e-9)
    assert summary["alpha"] == pytest.approx(2 / summary["d"])
    assert "2 x theory-am" in summary["gamma_rule"]
    x = np.load(out / "x.npy", allow_pickle=False)
    assert x.shape == (summary["d"],) and np.all(np.isfinite(x))
    assert (out / "trace.png").read_bytes()[:8] == PNG
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_run_libsvm_with_x0_and_tol(tmp_path, capsys):
    data = write_libsvm(tmp_path / "tiny.txt")
    x0 = tmp_path / "x0.npy"
    np.save(x0, np.full(6, 0.3))
    out = tmp_path / "o"
    rc, stdout, err = run_cli(
        capsys, "run", "--problem", "linreg", "--data", data, "--clients", "5",
        "--split", "heterogeneous", "--method", "ef21", "--gamma", "0.01", "--iters", "500",
        "--tol", "1e9", "--x0", x0, "--backend", "numpy", "--quiet", "--out", out)
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "converged" and summary["rounds"] == 0
    assert summary["gamma"] == 0.01 and summary["split"] == "heterogeneous"
    np.testing.assert_array_equal(np.load(out / "x.npy"), np.full(6, 0.3))


@pytest.mark.parametrize("method", ["gd", "ef14", "ef21-sgd", "ef21-w-pp", "ef21-clone"])
def test_run_every_kind_of_method(tmp_path, capsys, method):
    rc, stdout, err = run_cli(
        capsys, "run", "--data", "synthetic", "--clients", "8", "--method", method,
        "--iters", "10", "--p", "0.5", "--participation", "fixed", "--batch", "3",
        "--backend", "numpy", "--quiet", "--out", tmp_path)
    assert rc == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["method"] == method and summary["rounds"] == 10


def test_run_diverged_writes_the_trace(tmp_path, capsys):
    rc, stdout, err = run_cli(
        capsys, "run", "--problem", "linreg", "--data", "synthetic", "--clients", "8",
        "--method", "ef21", "--gamma", "1000", "--iters", "3000", "--backend", "numpy",
        "--quiet", "--out", tmp_path)
    assert rc == 0
    assert "diverged: step too large?" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert np.all(np.isfinite(np.load(tmp_path / "x.npy")))
    assert (tmp_path / "trace.png").exists()


def test_run_progress_bar_goes_to_stderr(tmp_path, capsys):
    rc, stdout, err = run_cli(
        capsys, "run", "--data", "synthetic", "--clients", "5", "--method", "ef21",
        "--iters", "5", "--backend", "numpy", "--out", tmp_path)
    assert rc == 0 and "ef21" in stdout


# ---------------------------------------------------------------------------- reproduce

def test_reproduce_quick_synthetic_and_libsvm(tmp_path, capsys):
    data = write_libsvm(tmp_path / "tiny.txt", m=80, d=5, labels=(-1, 1))
    out = tmp_path / "results"
    rc, stdout, err = run_cli(capsys, "reproduce", "--quick", "--out", out, "--data", data,
                              "--clients", "8", "--backend", "numpy", "--quiet")
    assert rc == 0, err
    assert err == ""  # --quiet: no bars, no log lines
    for col in ("problem", "L_QM", "L_AM", "L_QM/L_AM", "bits EF21 gQM", "bits EF21 gAM",
                "bits EF21-W gAM", "bits EF14 gAM", "speed-up"):
        assert col in stdout
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["problem"]: r for r in summary["rows"]}
    assert set(rows) == {"synthetic-logreg", "synthetic-linreg", "tiny-logreg"}
    for name in ("synthetic-logreg", "synthetic-linreg"):
        r = rows[name]
        assert r["ratio"] > 2
        assert r["status"]["EF21 gQM"] == r["status"]["EF21 gAM"] == "converged"
        assert r["bits"]["EF21 gAM"] < r["bits"]["EF21 gQM"]
        assert r["bits"]["EF21-W gAM"] == r["bits"]["EF21 gAM"]
        assert r["speedup"] > 1.5
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
        for slug in ("ef21-gqm", "ef21-gam", "ef21-w-gam", "ef14-gam"):
            assert (out / name / f"{slug}.csv").exists()
    assert rows["tiny-logreg"]["n"] == 8
    table = (out / "table.csv").read_text().splitlines()
    assert table[0].startswith("problem,n,d,L,L_QM,L_AM,ratio,tol") and len(table) == 4
    assert (out / "table.md").read_text().startswith("| problem |")


def test_reproduce_shows_progress_unless_quiet(tmp_path, capsys):
    rc, stdout, err = run_cli(capsys, "reproduce", "--quick", "--iters", "50", "--out",
                              tmp_path, "--backend", "numpy")
    assert rc == 0
    assert "[synthetic-logreg]" in err and "EF21 gAM" in err


# ---------------------------------------------------------------------------- bad input

BASE = ["run", "--data", "synthetic", "--clients", "5", "--method", "ef21", "--iters",
        "3", "--backend", "numpy", "--quiet"]


def test_missing_file(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "run", "--data", tmp_path / "nope.txt", "--method",
                         "ef21", "--out", tmp_path / "o")
    assert_usage_error(rc, err, "no such file", "nope.txt")
    rc, _, err = run_cli(capsys, "reproduce", "--quick", "--data", tmp_path / "nope.txt",
                         "--out", tmp_path / "o")
    assert_usage_error(rc, err, "no such file")


def test_malformed_libsvm_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1:0.5 2:1.0\n-1 1:0.25 two:3\n1 2:1.5\n")
    rc, _, err = run_cli(capsys, "run", "--data", bad, "--method", "ef21", "--clients",
                         "2", "--out", tmp_path / "o")
    assert_usage_error(rc, err, "bad.txt")
    assert "line 2" in err
    rc, _, err = run_cli(capsys, "reproduce", "--quick", "--data", bad, "--quiet",
                         "--out", tmp_path / "o2")
    assert_usage_error(rc, err, "bad.txt")


def test_k_larger_than_d(tmp_path, capsys):
    data = write_libsvm(tmp_path / "tiny.txt")
    rc, _, err = run_cli(capsys, "run", "--data", data, "--clients", "3", "--method",
                         "ef21", "--k", "7", "--out", tmp_path / "o")
    assert_usage_error(rc, err, "--k 7", "d = 6")


def test_more_clients_than_rows(tmp_path, capsys):
    data = write_libsvm(tmp_path / "tiny.txt", m=12)
    rc, _, err = run_cli(capsys, "run", "--data", data, "--clients", "50", "--method",
                         "ef21", "--out", tmp_path / "o")
    assert_usage_error(rc, err, "50", "12 rows")
    rc, _, err = run_cli(capsys, "reproduce", "--quick", "--data", data, "--clients",
                         "50", "--quiet", "--out", tmp_path / "o2")
    assert_usage_error(rc, err, "50")


@pytest.mark.parametrize("args, needles", [
    (["--method", "ef99"], ["unknown method 'ef99'", "ef21-w"]),
    (["--gamma", "fast"], ["bad --gamma 'fast'"]),
    (["--gamma", "-0.1"], ["bad --gamma"]),
    (["--gamma", "nan"], ["bad --gamma"]),
    (["--gamma-mult", "0"], ["--gamma-mult"]),
    (["--problem", "svm"], ["unknown problem 'svm'"]),
    (["--split", "random"], ["unknown split"]),
    (["--k", "0"], ["--k must be at least 1"]),
    (["--backend", "cuda"], ["backend"]),
    (["--clients", "0"], ["--clients"]),
    (["--spread", "50"], ["spread"]),
    (["--x0", "missing.npy"], ["no such file", "missing.npy"]),
])
def test_bad_run_arguments(tmp_path, capsys, args, needles):
    rc, _, err = run_cli(capsys, *BASE, *args, "--out", tmp_path / "o")
    assert_usage_error(rc, err, *needles)
    assert not (tmp_path / "o").exists()


def test_bad_x0(tmp_path, capsys):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(3))
    rc, _, err = run_cli(capsys, *BASE, "--x0", wrong, "--out", tmp_path / "o")
    assert_usage_error(rc, err, "--x0 has shape (3,)")
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    rc, _, err = run_cli(capsys, *BASE, "--x0", pickled, "--out", tmp_path / "o")
    assert_usage_error(rc, err, "--x0")
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros(6))
    rc, _, err = run_cli(capsys, *BASE, "--x0", npz, "--out", tmp_path / "o")
    assert_usage_error(rc, err, "--x0", "one array")
    garbage = tmp_path / "garbage.npy"
    garbage.write_text("not an array")
    rc, _, err = run_cli(capsys, *BASE, "--x0", garbage, "--out", tmp_path / "o")
    assert_usage_error(rc, err, "--x0")


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = run_cli(capsys, *BASE, "--out", f)
    assert_usage_error(rc, err, "not a directory")


# ------------------------------------------------------------------- the console script

def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("ef21fast")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    env = {**os.environ, "EF21FAST_BACKEND": "numpy"}
    ok = subprocess.run(
        [str(script), "run", "--data", "synthetic", "--clients", "6", "--method", "ef21",
         "--iters", "5", "--quiet", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "trace.csv").exists()
    bad = subprocess.run(
        [str(script), "run", "--data", "synthetic", "--method", "ef21", "--gamma", "x",
         "--out", str(tmp_path / "o2")],
        capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("ef21fast run: error: bad --gamma 'x': expected a "
                                  "positive number, theory-qm or theory-am")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_killed_run_keeps_completed_rounds(tmp_path, sig):
    """Ctrl-C or kill mid-run: a valid trace of every completed round, marked interrupted."""
    import signal
    import tempfile
    import time

    script = Path(sys.executable).with_name("ef21fast")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    out = tmp_path / "o"
    with subprocess.Popen(
            [str(script), "run", "--data", "synthetic", "--clients", "20", "--method",
             "ef21", "--backend", "numpy", "--iters", "100000000", "--out", str(out)],
            stderr=subprocess.PIPE, cwd=tempfile.gettempdir()) as proc:
        seen = b""
        deadline = time.monotonic() + 120
        while b"round" not in seen and time.monotonic() < deadline:  # loop has started
            chunk = proc.stderr.read1(4096)
            if not chunk:
                break
            seen += chunk
        assert b"round" in seen, seen.decode(errors="replace")
        time.sleep(0.5)
        proc.send_signal(getattr(signal, sig))
        err = proc.stderr.read().decode(errors="replace")
        # the shell's convention: 128 + the signal's number (130 Ctrl-C, 143 kill)
        assert proc.wait(timeout=120) == 128 + getattr(signal, sig), err
        assert "Traceback" not in err and "the completed rounds are in" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    rows = (out / "trace.csv").read_text().strip().splitlines()
    assert rows[0] == "iter,bits,grad_norm_sq,f,time_s" and len(rows) > 2
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(len(rows) - 1))
