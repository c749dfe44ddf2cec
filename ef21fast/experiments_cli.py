"""``ef21fast run`` (one method on one problem) and ``ef21fast reproduce`` (the paper's
comparison). User errors become :class:`ef21fast.cli.UsageError`: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import platform
import signal
import sys
import threading

import numpy as np

from ef21fast.cli import UsageError

__all__ = ["add_parser", "cmd_run", "cmd_reproduce", "build_problem", "user_errors"]

PROBLEMS = ("logreg", "linreg")
SPLITS = ("contiguous", "label-sorted", "heterogeneous")

RUN_EPILOG = """\
examples:
  ef21fast run --problem logreg --data synthetic --method ef21-w --gamma theory-am --iters 2000 --out res/
  ef21fast run --problem logreg --data mushrooms.txt --clients 100 --split heterogeneous \\
      --method ef21 --k 1 --gamma theory-qm --gamma-mult 4 --iters 5000 --out res/

Step sizes: theory-qm = 1/(L + L_QM xi(alpha)), theory-am = 1/(L + L_AM xi(alpha)),
alpha = k/d (TopK); PP methods use gamma_pp (Bells & Whistles Th. 7); for the SGD
methods and EF14 the same two formulas are defaults, not theorems for them.
Bits are counted per client: 32 per sent value (as the EF21 code), plus
ceil(log2 d) index bits per value with --bits values+indices.
"""


#: Modules of the ``experiments`` extra (not needed by the kernels themselves).
OPTIONAL_MODULES = ("scipy", "sklearn", "matplotlib", "tqdm", "threadpoolctl")


#: Seconds between two checkpoints of the iterate (``x.npy``) during ``ef21fast run``.
CHECKPOINT_S = 5.0

#: The signal that stopped the current command (set by :func:`terminate_as_interrupt`).
_stop_signal: list[int] = []


def terminate_as_interrupt(func):
    """Make SIGTERM (``kill``) stop a command like Ctrl-C: the run stops at the end of
    the current round and the rounds done so far are written, marked interrupted.
    The signal is remembered for :func:`interrupted_exit_code`."""

    @functools.wraps(func)
    def wrapper(args):
        if threading.current_thread() is not threading.main_thread():
            return func(args)

        def handler(signum, frame):
            _stop_signal.append(signum)
            raise KeyboardInterrupt

        _stop_signal.clear()
        previous = {sig: signal.signal(sig, handler)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return func(args)
        finally:
            for sig, prev in previous.items():
                signal.signal(sig, prev)

    return wrapper


def interrupted_exit_code() -> int:
    """The shell's convention for a command stopped by a signal: 128 + its number
    (130 for Ctrl-C, 143 for ``kill``); 130 when the signal is unknown."""
    return 128 + (_stop_signal[0] if _stop_signal else signal.SIGINT)


@contextlib.contextmanager
def user_errors():
    """Turn the errors a user can cause into :class:`UsageError` (one line)."""
    try:
        yield
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL_MODULES:
            raise UsageError(f"this command needs the optional dependency {exc.name!r}: "
                             f"pip install 'ef21fast[experiments]'") from None
        raise
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {exc.filename or exc}") from None
    except IsADirectoryError as exc:
        raise UsageError(f"is a directory, not a file: {exc.filename or exc}") from None
    except PermissionError as exc:
        raise UsageError(f"permission denied: {exc.filename or exc}") from None
    except (ValueError, RuntimeError) as exc:  # DataError is a ValueError
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(msg) from None


def parse_gamma(text: str):
    """``--gamma``: a positive finite number, ``theory-qm`` or ``theory-am``."""
    if text in ("theory-qm", "theory-am"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not (math.isfinite(value) and value > 0):
        raise UsageError(f"bad --gamma {text!r}: expected a positive number, "
                         f"theory-qm or theory-am")
    return value


def _positive_float(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    return value


def default_spread(n: int) -> float:
    """Default L_QM / L_AM of ``--data synthetic``: 4, or less when n is too small
    for it (the generator reaches about 0.84 sqrt(n) at most)."""
    return max(1.0, min(4.0, round(0.7 * math.sqrt(n), 2)))


def build_problem(kind: str, data_spec: str, *, clients=None, split="contiguous",
                  lam=0.1, seed=0, default_clients=20, spread=None):
    """The problem a command runs on, and its :class:`~ef21fast.data.ClientData`.

    ``data_spec`` is ``"synthetic"`` (the seeded heterogeneous generator of
    :func:`ef21fast.data.make_synthetic` with ``L_QM / L_AM = spread``, default
    :func:`default_spread`; ``split`` does not apply) or the path of a LIBSVM file,
    split into ``clients`` clients (default ``default_clients``).
    """
    from ef21fast import data as D
    from ef21fast import problems as P

    if kind not in PROBLEMS:
        raise UsageError(f"unknown problem {kind!r} (choose from {', '.join(PROBLEMS)})")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if clients is not None and clients < 1:
        raise UsageError(f"--clients must be at least 1, got {clients}")
    if data_spec == "synthetic":
        n = 200 if clients is None else clients
        if spread is None:
            spread = default_spread(n)
        cd = D.make_synthetic(n=n, kind=kind, seed=seed, spread=spread, lam=lam)
    else:
        if os.path.isdir(data_spec):
            raise UsageError(f"--data must be a LIBSVM file, got the directory {data_spec}")
        if not os.path.exists(data_spec):
            raise UsageError(f"no such file: {data_spec}")
        A, b = D.load_libsvm(data_spec)
        name = os.path.splitext(os.path.basename(data_spec))[0]
        n = default_clients if clients is None else clients
        if n > A.shape[0]:
            raise UsageError(f"--clients {n} is more than the {A.shape[0]} rows of "
                             f"{data_spec}")
        cd = D.split_clients(A, b, n, how=split, seed=seed, name=name)
    cls = P.LogisticRegression if kind == "logreg" else P.LinearRegression
    return cls(cd, lam=lam), cd


def versions() -> dict:
    """Versions of the software that produced a result."""
    import numpy
    import scipy

    from ef21fast._version import __version__

    return {"ef21fast": __version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def _make_outdir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out {path} exists and is not a directory")
    with user_errors():
        os.makedirs(path, exist_ok=True)


# ----------------------------------------------------------------------------- run

def cmd_run(args) -> int:
    from ef21fast import algorithms, theory
    from ef21fast.trace import TraceLog, atomic_write_bytes, atomic_write_json

    method = args.method
    if method not in algorithms.METHODS:
        raise UsageError(f"unknown method {method!r} (choose from "
                         f"{', '.join(algorithms.METHODS)})")
    gamma = parse_gamma(args.gamma)
    mult = _positive_float("--gamma-mult", args.gamma_mult)
    if args.iters < 0:
        raise UsageError(f"--iters must be non-negative, got {args.iters}")
    if args.tol is not None and not args.tol >= 0:
        raise UsageError(f"--tol must be non-negative, got {args.tol}")
    if args.k < 1:
        raise UsageError(f"--k must be at least 1, got {args.k}")
    with user_errors():
        if args.backend is not None:
            from ef21fast.dispatch import load_backend

            load_backend(args.backend)
        x0 = None
        if args.x0 is not None:
            if not os.path.isfile(args.x0):
                raise UsageError(f"no such file: {args.x0}")
            try:
                x0 = np.load(args.x0, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise UsageError(f"cannot read --x0 {args.x0} as a .npy array: "
                                 f"{' '.join(str(exc).split())}") from None
            if not isinstance(x0, np.ndarray):  # an .npz archive
                x0.close()
                raise UsageError(f"--x0 {args.x0} must be a .npy file holding one array")
            if x0.dtype.kind not in "iuf":
                raise UsageError(f"--x0 {args.x0} must hold real numbers, "
                                 f"got dtype {x0.dtype}")
        problem, cd = build_problem(args.problem, args.data, clients=args.clients,
                                    split=args.split, lam=args.lam, seed=args.seed,
                                    spread=args.spread)
        if method != "gd" and args.k > problem.d:
            raise UsageError(f"--k {args.k} is larger than the dimension d = {problem.d}")
        if x0 is not None and x0.shape != (problem.d,):
            raise UsageError(f"--x0 has shape {x0.shape}, expected ({problem.d},)")
        out = args.out
        _make_outdir(out)
        L_i = np.asarray(problem.L_i, dtype=np.float64)
        alpha = 1.0 if method == "gd" else theory.topk_alpha(args.k, problem.d)
        summary = {
            "method": method,
            "gamma": None,
            "gamma_rule": None,
            "gamma_mult": mult,
            "L": float(problem.L),
            "L_AM": theory.l_am(L_i),
            "L_QM": theory.l_qm(L_i),
            "L_QM_over_L_AM": theory.l_qm(L_i) / theory.l_am(L_i),
            "alpha": alpha,
            "n": int(problem.n),
            "d": int(problem.d),
            "k": int(args.k) if method != "gd" else int(problem.d),
            "backend": args.backend,
            "versions": versions(),
            "status": "running",
            "message": (f"started by process {os.getpid()}; if that process is gone, "
                        f"the run was killed: trace.csv holds every completed round "
                        f"and x.npy the iterate of the last checkpoint"),
            "problem": args.problem,
            "data": args.data,
            "split": None if args.data == "synthetic" else args.split,
            "lam": args.lam,
            "seed": args.seed,
            "tol": args.tol,
            "iters": args.iters,
            "bits_mode": args.bits,
        }
        atomic_write_json(os.path.join(out, "summary.json"), summary)
        x_path = os.path.join(out, "x.npy")
        last_checkpoint = [-math.inf]

        with TraceLog(os.path.join(out, "trace.csv")) as log:
            def on_row(t, bits, gn, f, time_s, x):
                log.row(t, bits, gn, f, time_s)
                if time_s - last_checkpoint[0] >= CHECKPOINT_S:
                    atomic_write_bytes(x_path, _npy_bytes(x))
                    last_checkpoint[0] = time_s

            trace = algorithms.run(
                problem, method, k=args.k, gamma=gamma, gamma_mult=mult,
                iters=args.iters, tol=args.tol, x0=x0, seed=args.seed,
                backend=args.backend, bits=args.bits, p=args.p, batch=args.batch,
                participation=args.participation, progress=not args.quiet,
                on_row=on_row)
    summary.update({
        "gamma": trace.gamma, "gamma_rule": trace.gamma_rule, "k": trace.k,
        "backend": trace.backend, "status": trace.status, "message": trace.message,
        **{key: val for key, val in trace.to_dict(arrays=False).items()
           if key in ("rounds", "final_bits", "final_grad_norm_sq", "final_f", "time_s",
                      "extra")},
    })
    with user_errors():
        trace.to_csv(os.path.join(out, "trace.csv"))
        atomic_write_bytes(x_path, _npy_bytes(trace.x))
        atomic_write_json(os.path.join(out, "summary.json"), summary)
        from ef21fast.plots import plot_traces

        plot_traces({method: trace}, os.path.join(out, "trace.png"), tol=args.tol,
                    title=f"{method} on {cd.name} (n={problem.n}, d={problem.d}, "
                          f"k={trace.k}, gamma={trace.gamma:.3g})")
    print(f"{method} on {cd.name} (n={problem.n}, d={problem.d}): {trace.message}; "
          f"{trace.bits[-1]:.6g} bits per client; wrote {out}")
    if trace.status == "diverged":
        print(f"ef21fast run: {trace.message}", file=sys.stderr)
    if trace.status == "interrupted":
        print(f"ef21fast run: {trace.message}; the completed rounds are in {out}",
              file=sys.stderr)
        return interrupted_exit_code()
    return 0


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


# ----------------------------------------------------------------------- reproduce

def cmd_reproduce(args) -> int:
    from ef21fast import reproduce

    if args.clients is not None and args.clients < 1:
        raise UsageError(f"--clients must be at least 1, got {args.clients}")
    for path in args.data:
        if not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    _make_outdir(args.out)
    with user_errors():
        if args.backend is not None:
            from ef21fast.dispatch import load_backend

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


# -------------------------------------------------------------------------- parser

def add_parser(subparsers) -> None:
    """Register ``run`` and ``reproduce``."""
    from ef21fast.algorithms import BITS_MODES, METHODS, PARTICIPATION

    p = subparsers.add_parser(
        "run", help="run one method of the EF21 family on one problem",
        description="Run one method on one problem; write trace.csv, x.npy, "
                    "summary.json and trace.png into --out.",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="logreg", metavar="|".join(PROBLEMS),
                   help="logistic regression or linear regression, both with the "
                        "non-convex regulariser (default logreg)")
    p.add_argument("--data", default="synthetic", metavar="PATH|synthetic",
                   help="a LIBSVM file, or 'synthetic' (built-in heterogeneous "
                        "generator, the default)")
    p.add_argument("--clients", type=int, default=None, metavar="N",
                   help="number of clients (default 20 for files, 200 for synthetic)")
    p.add_argument("--split", default="contiguous", metavar="|".join(SPLITS),
                   help="how a file's rows are split among clients (default "
                        "contiguous, as the EF21 code); ignored for synthetic")
    p.add_argument("--spread", type=float, default=None, metavar="S",
                   help="synthetic only: target L_QM/L_AM of the clients (default "
                        "4, less for few clients)")
    p.add_argument("--lam", type=float, default=0.1, help="regulariser weight (0.1)")
    p.add_argument("--method", required=True, metavar="NAME",
                   help="one of: " + ", ".join(METHODS))
    p.add_argument("--k", type=int, default=1, help="TopK: values sent per round (1)")
    p.add_argument("--gamma", default="theory-am", metavar="NUMBER|theory-qm|theory-am",
                   help="step size, or a theory rule (default theory-am)")
    p.add_argument("--gamma-mult", type=float, default=1.0, metavar="M",
                   help="multiplier of the step size (default 1)")
    p.add_argument("--iters", type=int, default=1000, metavar="T",
                   help="maximum number of rounds (1000)")
    p.add_argument("--tol", type=float, default=None, metavar="EPS",
                   help="stop when ||grad f||^2 < EPS")
    p.add_argument("--x0", default=None, metavar="FILE.npy", help="starting point")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--backend", default=None, metavar="B",
                   help="kernel backend: c, numba or numpy (default: fastest)")
    p.add_argument("--bits", default="values", choices=BITS_MODES,
                   help="bit accounting (default values: 32 bits per value)")
    p.add_argument("--p", type=float, default=None,
                   help="PP methods: participation probability (default 0.5)")
    p.add_argument("--participation", default="independent", choices=PARTICIPATION,
                   help="PP methods: independent per client, or a fixed-size "
                        "uniform subset of round(p n) clients")
    p.add_argument("--batch", type=int, default=None,
                   help="SGD methods: minibatch per client (default 10%% of its rows)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=terminate_as_interrupt(cmd_run))

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
