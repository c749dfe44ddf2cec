"""The ``ef21fast`` command line: ``info``, ``bench``, ``run``, ``reproduce``.

Each command lives in its own module, which provides ``add_parser(subparsers)``
(registering its arguments and setting ``func``). Errors a user can cause (bad
arguments, missing files, malformed data) print one line and exit with code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules providing subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "ef21fast.experiments_cli",
    "ef21fast.speed",
    "ef21fast.info",
)


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ef21fast",
        description="Fast kernels and the EF21 family of error-feedback methods.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # command not built yet
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"ef21fast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ef21fast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
