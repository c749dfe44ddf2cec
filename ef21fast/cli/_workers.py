"""``ef21fast run --workers N``: the run with its clients split over N processes.

Started alone, the command starts N copies of itself on this machine (ranks
``0..N-1``, gloo on 127.0.0.1 at a free port, the env:// variables that ``torchrun``
sets) and waits for them; started with ``RANK`` in the environment (by ``torchrun``
or by the above) it is one rank of the job. Rank 0 writes ``--out`` as the
single-process run does; the others write nothing. The maths of the split:
:mod:`ef21fast.methods.distributed`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from ef21fast.cli._common import (
    UsageError,
    _stop_signal,
    interrupted_exit_code,
    make_outdir,
    user_errors,
)

__all__ = ["cmd_run_workers", "spawn"]

#: Seconds, beyond ``--timeout``, that the starting process gives the ranks to end
#: by themselves once one has failed or been stopped, before it kills them.
GRACE_S = 10.0

#: Set in the environment of the ranks that :func:`spawn` starts.
_SPAWNED = "EF21FAST_WORKERS_SPAWNED"


def _check(args) -> None:
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if not 0 < args.timeout < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, "
                         f"got {args.timeout}")
    try:
        import torch.distributed as dist
    except ImportError:
        raise UsageError('--workers needs torch: pip install "ef21fast[torch]"') from None
    if not dist.is_available():
        raise UsageError("--workers needs torch.distributed, which this torch build "
                         "lacks")


def cmd_run_workers(args, run_module) -> int:
    """``ef21fast run --workers N``: start the ranks, or be one of them.
    ``run_module``: :mod:`ef21fast.cli.run` (passed in, not imported: it imports
    this module)."""
    _check(args)
    if "RANK" not in os.environ:
        return spawn(args.argv, args.workers, args.timeout)
    return _rank(args, run_module)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, workers: int, timeout: float) -> int:
    """Run ``ef21fast <argv>`` as ``workers`` local ranks and wait for them.

    Each rank gets ``OMP_NUM_THREADS`` = cores // ``workers`` unless the environment
    sets it. A rank that fails makes the others fail within ``timeout`` seconds; any
    still running ``timeout + GRACE_S`` seconds after the first failure (or after this
    process is interrupted) is killed. Returns rank 0's exit code if it is not 0,
    else the first non-zero one, else 0.
    """
    env = dict(os.environ)
    # The ranks share this machine's cores (torchrun sets 1); the user's value wins.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    env.update({_SPAWNED: "1"}, WORLD_SIZE=str(workers), LOCAL_WORLD_SIZE=str(workers),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    procs = []
    try:
        for r in range(workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ef21fast"] + list(argv),
                env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                stdout=None if r == 0 else subprocess.DEVNULL,
                # Ctrl-C reaches this process only; it passes the signal on once
                start_new_session=True))
        deadline = None
        while True:
            try:
                codes = [p.poll() for p in procs]
                if all(c is not None for c in codes):
                    break
                if deadline is None and any(c for c in codes):
                    deadline = time.monotonic() + timeout + GRACE_S
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the ranks stop as a run does
                if deadline is None:
                    sig = _stop_signal[-1] if _stop_signal else signal.SIGINT
                    for p in procs:
                        if p.poll() is None:
                            p.send_signal(sig)
                    deadline = time.monotonic() + timeout + GRACE_S
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    codes = [p.returncode for p in procs]
    if codes[0]:
        return codes[0]
    return next((c for c in codes if c), 0)


def _rank(args, R) -> int:
    from ef21fast.methods import distributed

    rank, world = int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", "0"))
    try:
        if args.workers != world:
            raise UsageError(f"--workers {args.workers} does not match the job's "
                             f"WORLD_SIZE={world}")
        problem, data, options = R.parse_run_args(args)
        with user_errors():
            distributed.check_workers(
                world, problem.n if args.method != "ef21-clone" else world,
                args.method, args.adaptive_step)
    except UsageError:
        if rank != 0 and os.environ.get(_SPAWNED) == "1":
            return 2  # the same error on every rank: rank 0 prints it
        raise
    options = dict(options, timeout=args.timeout,
                   progress=options["progress"] and rank == 0)
    del options["trace_every"]  # parse_run_args refused any but 1 with --workers
    with user_errors():
        if rank != 0:
            trace = distributed.run(problem, args.method, **options)
            return interrupted_exit_code() if trace.status == "interrupted" else 0
        from ef21fast.methods.trace import atomic_write_json

        make_outdir(args.out)
        summary = R.start_summary(args, problem, options["gamma_mult"])
        summary["workers"] = world
        atomic_write_json(os.path.join(args.out, "summary.json"), summary)
        trace = R.run_streaming(problem, args.method, options, args.out,
                                runner=distributed.run)
    R.finish_summary(summary, trace)
    with user_errors():
        R.write_results(args.out, trace, summary, tol=args.tol,
                        title=f"{args.method} on {data.name} (n={problem.n}, "
                              f"d={problem.d}, k={trace.k}, gamma={trace.gamma:.3g}, "
                              f"{world} workers)")
    return R.report(args.method, data, problem, trace, args.out)
