"""The ``ef21fast`` command line: ``run``, ``reproduce``, ``bench``, ``info``.

One module per subcommand (``run``, ``reproduce``, ``bench``, ``info``),
each providing ``add_parser(subparsers)`` (registering its arguments and setting
``func``); ``_common`` holds what they share. Errors a user can cause (bad
arguments, missing files, malformed data) print one line and exit with code 2, never a
traceback. The subcommand modules import nothing heavy at module level, so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from ef21fast.cli import bench, info, reproduce, run
from ef21fast.cli._common import UsageError

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

#: The subcommand modules, in the order ``--help`` lists them.
COMMANDS = (run, reproduce, bench, info)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ef21fast`` with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="ef21fast",
        description="Fast kernels and the EF21 family of error-feedback methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for ``run --workers``, which starts the command again per process
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"ef21fast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ef21fast {args.command}: interrupted", file=sys.stderr)
        return 130
