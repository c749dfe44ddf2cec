"""The command line's entry point: every subcommand registered, none dropped."""

import subprocess
import sys

import pytest

from ef21fast import cli

SUBCOMMANDS = ("run", "reproduce", "bench", "info")


def _subcommands(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return tuple(action.choices)
    raise AssertionError("no subcommands")


def test_every_subcommand_is_registered_in_order():
    assert _subcommands(cli.build_parser()) == SUBCOMMANDS
    assert tuple(m.__name__.rpartition(".")[2] for m in cli.COMMANDS) == SUBCOMMANDS


@pytest.mark.parametrize("entry", [["-m", "ef21fast"], ["-m", "ef21fast.cli"]])
def test_python_dash_m_runs_the_command_line(entry):
    proc = subprocess.run([sys.executable, *entry, "--help"], capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert name in proc.stdout


def test_help_imports_nothing_heavy():
    code = ("import sys; from ef21fast import cli; cli.build_parser(); "
            "print(sorted(m for m in ('numba', 'scipy', 'matplotlib', 'sklearn', 'tqdm') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr
