"""``ef21fast reproduce``: the paper's comparison, EF21 with gamma_QM vs gamma_AM, EF21-W
and EF14, with plots, CSV traces and the table (:mod:`ef21fast.methods.reproduce`)."""

from __future__ import annotations

import os
import sys

from ef21fast.cli._common import (
    UsageError,
    interrupted_exit_code,
    make_outdir,
    terminate_as_interrupt,
    user_errors,
)

__all__ = ["add_parser", "cmd_reproduce"]


def cmd_reproduce(args) -> int:
    from ef21fast.methods import reproduce

    if args.clients is not None and args.clients < 1:
        raise UsageError(f"--clients must be at least 1, got {args.clients}")
    for path in args.data:
        if not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    make_outdir(args.out)
    with user_errors():
        if args.backend is not None:
            from ef21fast.backends.registry import load_backend

            load_backend(args.backend)
        result = reproduce.reproduce(
            args.out, data_files=args.data, clients=args.clients, quick=args.quick,
            quiet=args.quiet, backend=args.backend, iters=args.iters)
    print(reproduce.format_table(result["rows"]))
    print(f"\n{result['note']}")
    print(f"wrote {args.out}: table.csv, table.md, summary.json, one PNG and one folder "
          f"of CSV traces per problem ({result['wall_s']:.1f} s)")
    if result["interrupted"]:
        print(f"ef21fast reproduce: interrupted ({result['interrupted']}); the partial "
              f"results are in {args.out}", file=sys.stderr)
        return interrupted_exit_code()
    return 0


def add_parser(subparsers) -> None:
    """Register ``reproduce``."""
    r = subparsers.add_parser(
        "reproduce", help="the paper's comparison: EF21 with gamma_QM vs gamma_AM, "
                          "EF21-W, EF14",
        description="Run EF21 (gamma_QM), EF21 (gamma_AM), EF21-W (gamma_AM) and EF14, "
                    "all with Top1, on built-in heterogeneous synthetic problems and on "
                    "any LIBSVM files given; print the bits each needs to reach the "
                    "tolerance and save plots and CSVs.")
    r.add_argument("--out", default="ef21fast-results", metavar="DIR",
                   help="output folder (default ./ef21fast-results)")
    r.add_argument("--data", nargs="+", default=[], metavar="FILE",
                   help="LIBSVM files to add (split heterogeneously among --clients)")
    r.add_argument("--clients", type=int, default=None, metavar="N",
                   help="clients for the LIBSVM files (default min(100, rows // 10))")
    r.add_argument("--iters", type=int, default=None, metavar="T",
                   help="cap on rounds per run (default 200000, 20000 with --quick; "
                        "EF14 gets at most twice the rounds of the slowest EF21 run)")
    r.add_argument("--backend", default=None, metavar="B", help="kernel backend")
    r.add_argument("--quick", action="store_true",
                   help="small problems and a loose tolerance (seconds)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    r.set_defaults(func=terminate_as_interrupt(cmd_reproduce))
