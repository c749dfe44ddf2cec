"""The parts of ``ef21fast run`` (ef21fast.cli.run): the flags, the summary, the report.

End-to-end runs, files and exit codes are in test_run_reproduce.py and
test_runs_lose_nothing.py; these check the seams between the parts.
"""

from __future__ import annotations

import argparse
import inspect

import pytest

from ef21fast.cli import run as run_cli
from ef21fast.cli._common import UsageError, interrupted_exit_code
from ef21fast.methods import algorithms


def parse(*argv):
    parser = argparse.ArgumentParser()
    run_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["run", *argv, "--out", "unused"])


def test_options_are_the_keywords_of_run():
    args = parse("--method", "ef21-w-pp", "--clients", "6", "--k", "2", "--p", "0.5",
                 "--participation", "fixed", "--gamma", "0.5", "--quiet")
    problem, data, options = run_cli.parse_run_args(args)
    run_params = inspect.signature(algorithms.run).parameters
    assert set(options) == set(run_params) - {"problem", "method", "callback", "on_row"}
    assert options["gamma"] == 0.5 and options["k"] == 2 and options["progress"] is False
    assert problem.n == 6 and data.name


@pytest.mark.parametrize("argv, needle", [
    (("--method", "nope"), "unknown method 'nope'"),
    (("--method", "ef21", "--gamma", "-1"), "bad --gamma"),
    (("--method", "ef21", "--k", "0"), "--k must be at least 1"),
    (("--method", "ef21", "--clients", "4", "--k", "999"), "larger than the dimension"),
    (("--method", "ef21", "--backend", "nope"), "backend must be one of"),
])
def test_bad_flags_raise_usage_errors(argv, needle):
    with pytest.raises(UsageError, match=needle):
        run_cli.parse_run_args(parse(*argv))


def test_summary_before_and_after_the_run():
    args = parse("--method", "ef21", "--clients", "6", "--iters", "3", "--quiet",
                 "--backend", "numpy")
    problem, _, options = run_cli.parse_run_args(args)
    summary = run_cli.start_summary(args, problem, options["gamma_mult"])
    assert summary["status"] == "running" and summary["gamma"] is None
    keys = list(summary)
    trace = algorithms.run(problem, "ef21", **options)
    run_cli.finish_summary(summary, trace)
    assert list(summary)[:len(keys)] == keys  # the keys of the start keep their place
    assert summary["status"] == "completed" and summary["gamma"] == trace.gamma
    assert summary["rounds"] == 3 and summary["final_bits"] == trace.bits[-1]


def test_report_exit_codes(capsys):
    args = parse("--method", "ef21", "--clients", "6", "--iters", "2", "--quiet",
                 "--backend", "numpy")
    problem, data, options = run_cli.parse_run_args(args)
    trace = algorithms.run(problem, "ef21", **options)
    assert run_cli.report("ef21", data, problem, trace, "out") == 0
    out, err = capsys.readouterr()
    assert "completed 2 rounds" in out and err == ""
    trace.status, trace.message = "interrupted", "interrupted after round 1"
    assert run_cli.report("ef21", data, problem, trace, "out") == interrupted_exit_code()
    assert "the completed rounds are in out" in capsys.readouterr().err
