"""``ef21fast run``: one method of the EF21 family on one problem.

Writes ``trace.csv`` (row by row while the run goes on), ``x.npy`` (checkpointed),
``summary.json`` and ``trace.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from ef21fast.cli._common import (
    PROBLEMS,
    SPLITS,
    UsageError,
    build_problem,
    interrupted_exit_code,
    make_outdir,
    parse_gamma,
    positive_float,
    terminate_as_interrupt,
    user_errors,
)

__all__ = ["add_parser", "cmd_run", "parse_run_args", "start_summary", "finish_summary",
           "run_streaming", "write_results", "report"]

RUN_EPILOG = """\
examples:
  ef21fast run --problem logreg --data synthetic --method ef21-w --gamma theory-am --iters 2000 --out res/
  ef21fast run --problem logreg --data mushrooms.txt --clients 100 --split heterogeneous \\
      --method ef21 --k 1 --gamma theory-qm --gamma-mult 4 --iters 5000 --out res/

Step sizes: theory-qm = 1/(L + L_QM xi(alpha)), theory-am = 1/(L + L_AM xi(alpha)),
alpha = k/d (TopK); PP methods use gamma_pp (Bells & Whistles Th. 7); the SGD
methods use the derived stochastic step 1/(L + L_QM xi(alpha/2)) (L_AM for
theory-am) where it is derived (logistic regression; full batches give the formulas
above), else the formulas above as defaults (--no-sgd-theory: always); for EF14 the
formulas are a heuristic.
Bits are counted per client: 32 per sent value (as the EF21 code), plus
ceil(log2 d) index bits per value with --bits values+indices.
"""


#: Seconds between two checkpoints of the iterate (``x.npy``) during ``ef21fast run``.
CHECKPOINT_S = 5.0


def cmd_run(args) -> int:
    """``ef21fast run``: check the flags, run the method while streaming its rows to
    ``--out``, write the results and report; the exit code (0, 2 for a user error
    raised as :class:`UsageError`, 128 + signal when interrupted)."""
    from ef21fast.methods.trace import atomic_write_json

    if getattr(args, "workers", None) is not None:
        from ef21fast.cli import _workers

        return _workers.cmd_run_workers(args, sys.modules[__name__])
    problem, data, options = parse_run_args(args)
    with user_errors():
        make_outdir(args.out)
        summary = start_summary(args, problem, options["gamma_mult"])
        atomic_write_json(os.path.join(args.out, "summary.json"), summary)
        trace = run_streaming(problem, args.method, options, args.out)
    finish_summary(summary, trace)
    with user_errors():
        write_results(args.out, trace, summary, tol=args.tol,
                      title=f"{args.method} on {data.name} (n={problem.n}, "
                            f"d={problem.d}, k={trace.k}, gamma={trace.gamma:.3g})")
    return report(args.method, data, problem, trace, args.out)


# ------------------------------------------------------------------ the flags

def parse_run_args(args):
    """Check the flags of ``ef21fast run`` and build what they name.

    Returns
    -------
    problem : ef21fast.methods.problems.Problem
    data : ef21fast.methods.data.ClientData
        The clients' data (its ``name`` is used in the messages).
    options : dict
        The keyword arguments of :func:`ef21fast.methods.algorithms.run` but
        ``on_row``.

    Raises
    ------
    UsageError
        An unknown method, a bad ``--gamma``, ``--gamma-mult``, ``--iters``,
        ``--tol``, ``--k``, ``--backend`` or ``--x0``, or data that cannot be read.
    """
    from ef21fast.methods import algorithms

    method = args.method
    if method not in algorithms.METHODS:
        raise UsageError(f"unknown method {method!r} (choose from "
                         f"{', '.join(algorithms.METHODS)})")
    gamma = parse_gamma(args.gamma)
    mult = positive_float("--gamma-mult", args.gamma_mult)
    if args.iters < 0:
        raise UsageError(f"--iters must be non-negative, got {args.iters}")
    if args.tol is not None and not args.tol >= 0:
        raise UsageError(f"--tol must be non-negative, got {args.tol}")
    if args.k < 1:
        raise UsageError(f"--k must be at least 1, got {args.k}")
    if args.trace_every < 1:
        raise UsageError(f"--trace-every must be at least 1, got {args.trace_every}")
    if args.trace_every != 1 and getattr(args, "workers", None) is not None:
        raise UsageError("--trace-every applies to single-process runs, not to --workers")
    with user_errors():
        if args.backend is not None:
            from ef21fast.backends.registry import load_backend

            load_backend(args.backend)
        x0 = None if args.x0 is None else _load_x0(args.x0)
        problem, data = build_problem(args.problem, args.data, clients=args.clients,
                                      split=args.split, lam=args.lam, seed=args.seed,
                                      spread=args.spread, dtype=args.dtype,
                                      layout=args.layout)
        if method != "gd" and args.k > problem.d:
            raise UsageError(f"--k {args.k} is larger than the dimension d = {problem.d}")
        if x0 is not None and x0.shape != (problem.d,):
            raise UsageError(f"--x0 has shape {x0.shape}, expected ({problem.d},)")
    options = dict(k=args.k, gamma=gamma, gamma_mult=mult, iters=args.iters, tol=args.tol,
                   x0=x0, seed=args.seed, backend=args.backend, bits=args.bits,
                   p=args.p, batch=args.batch, participation=args.participation,
                   progress=not args.quiet, sgd_theory=args.sgd_theory,
                   adaptive_step=args.adaptive_step, trace_every=args.trace_every)
    return problem, data, options


def _load_x0(path: str) -> np.ndarray:
    """``--x0``: one real array from a ``.npy`` file (its shape is checked later)."""
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    try:
        x0 = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot read --x0 {path} as a .npy array: "
                         f"{' '.join(str(exc).split())}") from None
    if not isinstance(x0, np.ndarray):  # an .npz archive
        x0.close()
        raise UsageError(f"--x0 {path} must be a .npy file holding one array")
    if x0.dtype.kind not in "iuf":
        raise UsageError(f"--x0 {path} must hold real numbers, got dtype {x0.dtype}")
    return x0


# ---------------------------------------------------------------- the summary

def start_summary(args, problem, gamma_mult: float) -> dict:
    """``summary.json`` while the run goes on: the problem's constants and the
    options, ``status="running"`` and what to make of it if the process is gone."""
    from ef21fast.methods import theory
    from ef21fast.methods.trace import versions

    method = args.method
    L_i = np.asarray(problem.L_i, dtype=np.float64)
    alpha = 1.0 if method == "gd" else theory.topk_alpha(args.k, problem.d)
    return {
        "method": method,
        "gamma": None,
        "gamma_rule": None,
        "gamma_mult": gamma_mult,
        "L": float(problem.L),
        "L_AM": theory.l_am(L_i),
        "L_QM": theory.l_qm(L_i),
        "L_QM_over_L_AM": theory.l_qm(L_i) / theory.l_am(L_i),
        "alpha": alpha,
        "n": int(problem.n),
        "d": int(problem.d),
        "k": int(args.k) if method != "gd" else int(problem.d),
        "backend": args.backend,
        "dtype": args.dtype,
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
        "layout": "csr" if problem.data.is_sparse else "dense",
        "trace_every": args.trace_every,
    }


def finish_summary(summary: dict, trace) -> None:
    """Update ``summary`` in place with the outcome of the run (step size, status,
    message, rounds, final values, time, the method's extras)."""
    summary.update({
        "gamma": trace.gamma, "gamma_rule": trace.gamma_rule, "k": trace.k,
        "backend": trace.backend, "status": trace.status, "message": trace.message,
        **{key: val for key, val in trace.to_dict(arrays=False).items()
           if key in ("rounds", "final_bits", "final_grad_norm_sq", "final_f", "time_s",
                      "extra")},
    })


# ------------------------------------------------------------------ the files

def run_streaming(problem, method: str, options: dict, out: str, runner=None):
    """Run the method with every row appended to ``out/trace.csv`` as it is
    computed and the iterate saved to ``out/x.npy`` at most every
    :data:`CHECKPOINT_S` seconds of the run; return the trace. ``runner``: what
    runs it (default :func:`ef21fast.methods.algorithms.run`)."""
    from ef21fast.methods import algorithms
    from ef21fast.methods.trace import TraceLog, atomic_write_bytes

    x_path = os.path.join(out, "x.npy")
    last_checkpoint = [-math.inf]

    with TraceLog(os.path.join(out, "trace.csv")) as log:
        def on_row(t, bits, gn, f, time_s, x):
            log.row(t, bits, gn, f, time_s)
            if time_s - last_checkpoint[0] >= CHECKPOINT_S:
                atomic_write_bytes(x_path, _npy_bytes(x))
                last_checkpoint[0] = time_s

        return (runner or algorithms.run)(problem, method, on_row=on_row, **options)


def write_results(out: str, trace, summary: dict, *, tol, title: str) -> None:
    """The final ``trace.csv``, ``x.npy`` and ``summary.json`` (each written
    atomically or in full) and the plot ``trace.png``."""
    from ef21fast.methods.plots import plot_traces
    from ef21fast.methods.trace import atomic_write_bytes, atomic_write_json

    trace.to_csv(os.path.join(out, "trace.csv"))
    atomic_write_bytes(os.path.join(out, "x.npy"), _npy_bytes(trace.x))
    atomic_write_json(os.path.join(out, "summary.json"), summary)
    plot_traces({trace.method: trace}, os.path.join(out, "trace.png"), tol=tol,
                title=title)


def report(method: str, data, problem, trace, out: str) -> int:
    """Print the outcome (stdout; divergence and interruption also on stderr) and
    return the exit code: 0, or 128 + the signal for an interrupted run."""
    print(f"{method} on {data.name} (n={problem.n}, d={problem.d}): {trace.message}; "
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


def add_parser(subparsers) -> None:
    """Register ``run``."""
    from ef21fast.methods.algorithms import BITS_MODES, METHODS, PARTICIPATION
    from ef21fast.methods.data import LAYOUTS

    p = subparsers.add_parser(
        "run", help="run one method of the EF21 family on one problem",
        description="Run one method on one problem; write trace.csv, x.npy, "
                    "summary.json and trace.png into --out.",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="logreg", metavar="|".join(PROBLEMS),
                   help="logistic regression or linear regression, both with the "
                        "non-convex regulariser (default logreg)")
    p.add_argument("--data", default="synthetic", metavar="PATH|synthetic",
                   help="a LIBSVM file, 'synthetic' (built-in heterogeneous "
                        "generator, the default) or 'news20-like' (synthetic sparse, "
                        "19996 x 1355191, 0.03%% non-zeros; 100 clients by default)")
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
    p.add_argument("--sgd-theory", action=argparse.BooleanOptionalAction, default=None,
                   help="SGD methods: the theory rules use the derived step of the "
                        "stochastic analysis, now the default where it is derived "
                        "(logistic regression, or full batches; docs/maths.rst); "
                        "--sgd-theory: an error elsewhere instead of the deterministic "
                        "formula; --no-sgd-theory: the deterministic formula always")
    p.add_argument("--adaptive-step", action="store_true",
                   help="ef21: the rare-features adaptive step of each round")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                   help="of the data in the oracles and of the (n, d) states and "
                        "kernels (float64; float32 halves their memory)")
    p.add_argument("--layout", default="auto", choices=LAYOUTS,
                   help="a LIBSVM file's rows in the oracle: dense or CSR (default auto: "
                        "dense when at least DENSE_MIN_DENSITY of the matrix is stored, "
                        "see ef21fast.methods.data.choose_layout)")
    p.add_argument("--trace-every", type=int, default=1, metavar="K",
                   help="record the trace row (f, ||grad f||^2) of every K-th round and "
                        "of the last one only (default 1: every round); --tol is "
                        "checked on recorded rows only")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="split the clients over N processes (torch.distributed, gloo): "
                        "started alone, it starts them on this machine; under torchrun "
                        "N must be the job's WORLD_SIZE. Same trace, bit for bit")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="--workers: seconds a process waits for the others before it "
                        "fails (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=terminate_as_interrupt(cmd_run))
