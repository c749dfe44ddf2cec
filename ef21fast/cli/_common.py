"""What the subcommands share: user errors, signals, and building a problem from flags.

User errors become :class:`UsageError`: one line on stderr, exit code 2, never a
traceback. SIGTERM stops a command like Ctrl-C (:func:`terminate_as_interrupt`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import threading

__all__ = ["PROBLEMS", "SPLITS", "UsageError", "build_problem", "default_spread",
           "interrupted_exit_code", "make_outdir", "parse_gamma", "positive_float",
           "terminate_as_interrupt", "user_errors"]


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit code 2."""


PROBLEMS = ("logreg", "linreg")
SPLITS = ("contiguous", "label-sorted", "heterogeneous")

#: Modules of the ``experiments`` extra (not needed by the kernels themselves).
OPTIONAL_MODULES = ("scipy", "sklearn", "matplotlib", "tqdm", "threadpoolctl")


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


def positive_float(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    return value


def default_spread(n: int) -> float:
    """Default L_QM / L_AM of ``--data synthetic``: 4, or less when n is too small
    for it (the generator reaches about 0.84 sqrt(n) at most)."""
    return max(1.0, min(4.0, round(0.7 * math.sqrt(n), 2)))


def build_problem(kind: str, data_spec: str, *, clients=None, split="contiguous",
                  lam=0.1, seed=0, default_clients=20, spread=None, dtype="float64",
                  layout="auto"):
    """The problem a command runs on, and its :class:`~ef21fast.methods.data.ClientData`.

    ``data_spec`` is ``"synthetic"`` (the seeded heterogeneous generator of
    :func:`ef21fast.methods.data.make_synthetic` with ``L_QM / L_AM = spread``, default
    :func:`default_spread`; ``split`` does not apply), ``"news20-like"`` (the synthetic
    sparse problem of news20.binary's shape,
    :func:`ef21fast.methods.data_sparse.make_news20_like`, default 100 clients) or the
    path of a LIBSVM file,
    split into ``clients`` clients (default ``default_clients``). ``dtype``: that of
    the problem's oracles and of the methods' states (``"float64"`` or ``"float32"``).
    ``layout``: the rows dense or CSR (:func:`ef21fast.methods.data.with_layout`; a
    LIBSVM file loads as CSR, and ``"auto"`` makes it dense when dense enough). CSR
    rows are ordered by length inside each client
    (:func:`ef21fast.methods.data_sparse.rows_by_length`): the fused oracle runs on
    the data itself, not on a reordered copy.
    """
    from ef21fast.methods import data as D
    from ef21fast.methods import problems as P
    from ef21fast.methods.data_sparse import rows_by_length

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
    elif data_spec == "news20-like":  # issue 14's scale case (data_sparse.make_news20_like)
        from ef21fast.methods.data_sparse import make_news20_like

        cd = make_news20_like(100 if clients is None else clients, seed=seed)
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
        del A, b  # a split that reorders the rows made a copy: drop the file's order
    if layout not in D.LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (choose from {', '.join(D.LAYOUTS)})")
    cd = D.with_layout(cd, layout)
    # CSR rows by length inside each client, the order the fused oracle reads them in:
    # it then shares the arrays instead of holding a reordered copy of the data. The
    # arrays are this function's own (loaded, split or generated here): moved in place.
    cd = rows_by_length(cd, overwrite=True)
    cls = P.LogisticRegression if kind == "logreg" else P.LinearRegression
    return cls(cd, lam=lam, dtype=dtype), cd


def make_outdir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out {path} exists and is not a directory")
    with user_errors():
        os.makedirs(path, exist_ok=True)
