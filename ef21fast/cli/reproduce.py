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

    if args.figure is not None:
        return _cmd_figures(args)
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
    return _report(reproduce.format_table(result["rows"]), result, args.out, "problem")


def _report(table: str, result: dict, out: str, per: str) -> int:
    """Print a table, its note and where the files are; the exit code (0, or 128 +
    the signal when the runs were interrupted)."""
    print(table)
    print(f"\n{result['note']}")
    print(f"wrote {out}: table.csv, table.md, summary.json, one PNG and one folder "
          f"of CSV traces per {per} ({result['wall_s']:.1f} s)")
    if result["interrupted"]:
        print(f"ef21fast reproduce: interrupted ({result['interrupted']}); the partial "
              f"results are in {out}", file=sys.stderr)
        return interrupted_exit_code()
    return 0


def _cmd_figures(args) -> int:
    """``--figure NAME`` (or ``all``): each figure's table, written under ``--out``
    (``--out/NAME`` for ``all``)."""
    from ef21fast.methods import figures

    names = list(figures.FIGURES) if args.figure == "all" else [args.figure]
    if args.figure != "all" and args.figure not in figures.FIGURES:
        raise UsageError(f"unknown figure {args.figure!r} (choose from "
                         f"{', '.join(figures.FIGURES)}, all)")
    if (args.data or args.clients is not None) and args.figure not in ("libsvm", "all"):
        raise UsageError("--data and --clients apply to the main comparison and to "
                         "--figure libsvm (or all) only")
    if args.clients is not None and args.clients < 1:
        raise UsageError(f"--clients must be at least 1, got {args.clients}")
    for path in args.data:
        if not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    if args.iters is not None and args.iters < 1:
        raise UsageError(f"--iters must be at least 1, got {args.iters}")
    make_outdir(args.out)
    with user_errors():
        if args.backend is not None:
            from ef21fast.backends.registry import load_backend

            load_backend(args.backend)
        for name in names:
            out = os.path.join(args.out, name) if len(names) > 1 else args.out
            if name == "libsvm" and not figures.libsvm_files(args.data):
                if args.figure == "libsvm":
                    raise UsageError("--figure libsvm needs LIBSVM files: pass --data "
                                     "FILE..., or run where ../shared/data holds them")
                print("libsvm: skipped (no --data and no ../shared/data)\n")
                continue
            result = figures.run_figure(name, out, quick=args.quick, quiet=args.quiet,
                                        backend=args.backend, iters=args.iters,
                                        data_files=args.data, clients=args.clients)
            rc = _report(f"{name}:\n{figures.format_rows(result['rows'])}", result,
                         out, "case")
            if rc:
                return rc
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
    r.add_argument("--figure", default=None, metavar="NAME",
                   help="instead of the main comparison, one of the paper-style "
                        "figures: rare-features, sgd-pp, heterogeneity, cloning, libsvm "
                        "(with --data), or all")
    r.add_argument("--quick", action="store_true",
                   help="small problems and a loose tolerance (seconds)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    r.set_defaults(func=terminate_as_interrupt(cmd_reproduce))
