"""``ef21fast reproduce --figure NAME --quick`` end to end, and its bad input; the
``--sgd-theory`` and ``--adaptive-step`` flags of ``ef21fast run``."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from ef21fast import cli
from ef21fast.methods import figures

PNG = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name, cases, runs", [
    ("rare-features", ["rare-c1-n20", "rare-c10-n20", "rare-c18-n20"],
     ["EF21 gQM", "EF21 gRF", "EF21 adaptive"]),
    ("sgd-pp", ["synthetic-logreg"],
     ["EF21-SGD gQM", "EF21-W-SGD gAM", "EF21-PP gQM", "EF21-W-PP gAM"]),
    ("heterogeneity", ["linreg-spread1.005", "linreg-spread1.5", "linreg-spread5"],
     ["EF21 gQM", "EF21 gAM", "EF21-W gAM"]),
    ("cloning", ["synthetic-logreg"],
     ["EF21 gQM", "EF21 gAM", "EF21-W gAM", "EF21 cloned gQM"]),
])
def test_figure_quick_end_to_end(tmp_path, capsys, name, cases, runs):
    out = tmp_path / name
    t0 = time.perf_counter()
    rc, stdout, err = run_cli(capsys, "reproduce", "--figure", name, "--quick", "--quiet",
                              "--out", out)
    assert rc == 0, err
    assert time.perf_counter() - t0 < 30
    assert name in stdout and "bits to tol" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["quick"] is True
    assert [(r["case"], r["run"]) for r in summary["rows"]] == \
        [(c, r) for c in cases for r in runs]
    md = (out / "table.md").read_text()
    assert md.startswith("| case | facts | run |") and "Set-up:" in md
    with open(out / "table.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) == 1 + len(cases) * len(runs)
    for c in cases:
        assert (out / f"{c}.png").read_bytes().startswith(PNG)
        for r in runs:
            with open(out / c / (figures._slug(r) + ".csv"), newline="") as fh:
                rows = list(csv.reader(fh))
            assert rows[0][:3] == ["iter", "bits", "grad_norm_sq"] and len(rows) > 2


def test_heterogeneity_saving_grows_with_l_var(tmp_path):
    res = figures.run_figure("heterogeneity", tmp_path, quick=True, quiet=True)
    by = {}
    for r in res["rows"]:
        by.setdefault(r["case"], {})[r["run"]] = r
    pts = sorted((runs["EF21 gQM"]["facts"]["L_var"],
                  runs["EF21 gQM"]["bits"] / runs["EF21 gAM"]["bits"])
                 for runs in by.values())
    savings = [s for _, s in pts]
    assert savings == sorted(savings) and savings[-1] > 2 * savings[0]
    assert (tmp_path / "saving.png").read_bytes().startswith(PNG)


def test_rare_features_figure_shows_the_larger_step(tmp_path):
    res = figures.run_figure("rare-features", tmp_path, quick=True, quiet=True, iters=50)
    by = {(r["case"], r["run"]): r for r in res["rows"]}
    assert by[("rare-c1-n20", "EF21 gRF")]["gamma"] > \
        3 * by[("rare-c1-n20", "EF21 gQM")]["gamma"]


@pytest.mark.parametrize("argv, needle", [
    (("--figure", "nope"), "unknown figure 'nope'"),
    (("--figure", "sgd-pp", "--clients", "5"), "--data and --clients apply"),
    (("--figure", "sgd-pp", "--iters", "0"), "--iters must be at least 1"),
    (("--figure", "sgd-pp", "--backend", "nope"), "backend must be one of"),
])
def test_figure_bad_input(tmp_path, capsys, argv, needle):
    rc, _, err = run_cli(capsys, "reproduce", *argv, "--quick", "--quiet", "--out",
                         tmp_path / "o")
    assert rc == 2 and needle in err and "Traceback" not in err


def test_run_figure_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="figure must be one of"):
        figures.run_figure("nope", tmp_path)
    with pytest.raises(ValueError, match="iters"):
        figures.run_figure("sgd-pp", tmp_path, iters=0)


def test_run_flags_sgd_theory_and_adaptive_step(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "run", "--method", "ef21-sgd", "--clients", "6",
                         "--iters", "3", "--sgd-theory", "--gamma", "theory-qm",
                         "--backend", "numpy", "--quiet", "--out", tmp_path / "a")
    assert rc == 0, err
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "SGD (derived)" in s["gamma_rule"] and s["extra"]["sgd_neighbourhood"] > 0
    rc, _, err = run_cli(capsys, "run", "--method", "ef21", "--clients", "6", "--iters",
                         "3", "--adaptive-step", "--backend", "numpy", "--quiet", "--out",
                         tmp_path / "b")
    assert rc == 0, err
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert "rare-features adaptive" in s["gamma_rule"] and "gamma_last" in s["extra"]
    rc, _, err = run_cli(capsys, "run", "--method", "ef21-w", "--clients", "6", "--iters",
                         "3", "--adaptive-step", "--quiet", "--out", tmp_path / "c")
    assert rc == 2 and "adaptive_step applies to ef21 only" in err
    rc, _, err = run_cli(capsys, "run", "--method", "ef21-sgd", "--problem", "linreg",
                         "--clients", "6", "--iters", "3", "--sgd-theory", "--quiet",
                         "--out", tmp_path / "d")
    assert rc == 2 and "A_i > 0" in err
    # without the flag: the derived step on logreg, the deterministic default on linreg
    for problem, flag, needle in (("logreg", [], "SGD (derived)"),
                                  ("linreg", [], "as default"),
                                  ("logreg", ["--no-sgd-theory"], "sgd_theory off")):
        out = tmp_path / f"e-{problem}-{len(flag)}"
        rc, _, err = run_cli(capsys, "run", "--method", "ef21-sgd", "--problem", problem,
                             "--clients", "6", "--iters", "3", "--backend", "numpy",
                             "--quiet", "--out", out, *flag)
        assert rc == 0, err
        assert needle in json.loads((out / "summary.json").read_text())["gamma_rule"]


def _libsvm_file(path, m=120, d=8, seed=0):
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d)) * (rng.random((m, d)) < 0.6) * np.arange(1, d + 1)
    y = (rng.random(m) < 0.5).astype(float)
    dump_svmlight_file(X, y, str(path), zero_based=False)
    return path


def test_libsvm_figure_quick(tmp_path, capsys):
    f = _libsvm_file(tmp_path / "tiny.txt")
    out = tmp_path / "lib"
    rc, stdout, err = run_cli(capsys, "reproduce", "--figure", "libsvm", "--data", f,
                              "--quick", "--quiet", "--out", out)
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    cases = {r["case"] for r in summary["rows"]}
    assert cases == {"tiny-contiguous", "tiny-heterogeneous"}
    assert all(r["facts"]["n"] == 24 and "L_var" in r["facts"] for r in summary["rows"])
    assert (out / "tiny-heterogeneous.png").read_bytes().startswith(PNG)


def test_libsvm_figure_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    rc, _, err = run_cli(capsys, "reproduce", "--figure", "libsvm", "--quick", "--out",
                         tmp_path / "o")
    assert rc == 2 and "needs LIBSVM files" in err
    rc, _, err = run_cli(capsys, "reproduce", "--figure", "libsvm", "--data",
                         tmp_path / "missing.txt", "--out", tmp_path / "o")
    assert rc == 2 and "no such file" in err
    f = _libsvm_file(tmp_path / "t.txt", m=20)
    rc, _, err = run_cli(capsys, "reproduce", "--figure", "libsvm", "--data", f,
                         "--clients", "50", "--quick", "--quiet", "--out", tmp_path / "o")
    assert rc == 2 and "more than the 20 rows" in err
    with pytest.raises(ValueError, match="needs LIBSVM files"):
        figures.run_figure("libsvm", tmp_path / "p")
