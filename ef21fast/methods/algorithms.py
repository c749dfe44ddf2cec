"""Run a method of the EF21 family: the registry of methods and the round loop.

:func:`run` builds the method object named by :data:`METHODS` (one class each:
:mod:`ef21fast.methods.baselines` for ``gd`` and ``ef14``, :mod:`ef21fast.methods.ef21`
for the EF21 forms), then loops over the rounds and records a
:class:`~ef21fast.methods.trace.Trace`. Every round makes one batched kernel call for
all clients and one on the server; there is no Python loop over clients. The
updates, step sizes and bit accounting are in the classes' docstrings and, with
their sources, in ``docs/maths.rst`` ("Methods", "Step sizes", "Bit accounting").

========================  =======================================================
name                      class
========================  =======================================================
``gd``                    :class:`~ef21fast.methods.baselines.GD`
``ef14``                  :class:`~ef21fast.methods.baselines.EF14`
``ef21``                  :class:`~ef21fast.methods.ef21.EF21`
``ef21-w``                :class:`~ef21fast.methods.ef21.EF21W`
``ef21-sgd``              :class:`~ef21fast.methods.ef21.EF21SGD`
``ef21-w-sgd``            :class:`~ef21fast.methods.ef21.EF21WSGD`
``ef21-pp``               :class:`~ef21fast.methods.ef21.EF21PP`
``ef21-w-pp``             :class:`~ef21fast.methods.ef21.EF21WPP`
``ef21-clone``            :class:`~ef21fast.methods.ef21.EF21Clone`
========================  =======================================================

Row ``t`` of the trace holds ``x_t`` and the bits of rounds ``1..t``, where round
``t``'s messages are those computed from the gradients at ``x_t`` (EF21 forms, as
the EF21 code counts them) or at ``x_{t-1}`` (GD, EF14: the messages that produced
``x_t``). ``||grad f(x_t)||^2`` is taken from the gradient the round computes anyway
(:attr:`Round.grad <ef21fast.methods.method.Round.grad>`), and ``f(x_t)`` from the
client losses of the same pass where the problem's fused oracle gives them.

``trace_every=K`` records the rows of rounds ``0, K, 2K, ...`` and of the last round
only (``f`` is then evaluated on those rounds only, and the fused oracle leaves the
losses out of the other passes); the bits column still counts every round, and the
tolerance, the callback and ``on_row`` see the recorded rows only. The default, 1,
records every round.
"""

from __future__ import annotations

import numbers
import time

import numpy as np

from ef21fast.methods.baselines import EF14, GD
from ef21fast.methods.ef21 import (
    EF21,
    EF21PP,
    EF21SGD,
    EF21W,
    EF21WPP,
    EF21WSGD,
    EF21Clone,
)
from ef21fast.methods.method import Method, Round
from ef21fast.methods.options import (
    BITS_MODES,
    GAMMA_RULES,
    PARTICIPATION,
    bits_per_value,
    choose_gamma,
    start_point,
)
from ef21fast.methods.trace import Trace

__all__ = ["METHODS", "METHOD_CLASSES", "GAMMA_RULES", "BITS_MODES", "PARTICIPATION",
           "DIVERGED_MESSAGE", "Method", "Round", "method_class", "run", "run_method",
           "step_size", "check_trace_every",
           "bits_per_value"]

#: Method name -> class, in the order of :data:`METHODS`.
METHOD_CLASSES: dict[str, type[Method]] = {
    cls.name: cls for cls in (GD, EF14, EF21, EF21W, EF21SGD, EF21WSGD, EF21PP, EF21WPP,
                              EF21Clone)
}

#: The method names :func:`run` accepts.
METHODS = tuple(METHOD_CLASSES)

DIVERGED_MESSAGE = "diverged: step too large?"

#: Rows of the trace allocated at first; the buffers double when full (a huge
#: ``iters`` must not allocate up front).
_FIRST_ROWS = 4096


def method_class(method: str) -> type[Method]:
    """The class of the method named ``method``.

    Raises
    ------
    ValueError
        If ``method`` is not one of :data:`METHODS`.
    """
    cls = METHOD_CLASSES.get(method) if isinstance(method, str) else None
    if cls is None:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return cls


def step_size(problem, method: str, gamma="theory-am", gamma_mult: float = 1.0, *,
              k: int = 1, p=None, participation: str = "independent", batch=None,
              sgd_theory=None):
    """The step size :func:`run` uses, and a description of how it was chosen.

    Parameters
    ----------
    problem : Problem
        Has ``L``, ``L_i``, ``n``, ``d``. For ``ef21-clone`` pass the cloned problem.
    method : str
        One of :data:`METHODS`.
    gamma : float or {"theory-qm", "theory-am"}
        A positive number (used as is, times ``gamma_mult``) or a theory rule (the
        method's :meth:`~ef21fast.methods.method.Method.theory_step`).
    gamma_mult : float
        Positive multiplier.
    k : int
        TopK parameter (``alpha = k/d``); not used by ``gd``.
    p, participation
        Participation of the PP methods.
    batch, sgd_theory
        The SGD methods' minibatches, and whether their theory rules use the
        stochastic analysis (:mod:`ef21fast.methods.theory_sgd`): None (default)
        where it is derived, True always (an error where it is not), False never.

    Returns
    -------
    gamma : float
    rule : str
        e.g. ``"2 x theory-am (1/(L + L_AM xi))"`` or ``"0.1 (given)"``.

    Raises
    ------
    ValueError
        Unknown method or rule, non-positive gamma or multiplier.
    """
    cls = method_class(method)
    if sgd_theory and not cls.stochastic:
        raise ValueError(f"sgd_theory applies to the SGD methods only, not to {method}")
    extra = {"batch": batch, "sgd_theory": sgd_theory} if cls.stochastic else {}
    return choose_gamma(gamma, gamma_mult,
                        lambda am: cls.theory_step(problem, am, k=k, p=p,
                                                   participation=participation,
                                                   **extra))


class _Rows:
    """The trace's columns, grown by doubling up to ``max_rows`` rows."""

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        cap = min(max_rows, _FIRST_ROWS)
        self.iter = np.zeros(cap, dtype=np.int64)
        self.bits, self.grad_norm_sq, self.f, self.time_s = (np.zeros(cap)
                                                             for _ in range(4))
        self.count = 0

    def add(self, t: int, bits: float, gn: float, fx: float, time_s: float) -> None:
        """Record round ``t`` as the next row; ``bits``: cumulative up to round t."""
        r, cap = self.count, self.bits.size
        if r >= cap:
            cap = min(self.max_rows, 2 * cap)
            self.iter = np.concatenate([self.iter, np.zeros(cap - self.iter.size,
                                                            dtype=np.int64)])
            self.bits, self.grad_norm_sq, self.f, self.time_s = (
                np.concatenate([a, np.zeros(cap - a.size)])
                for a in (self.bits, self.grad_norm_sq, self.f, self.time_s))
        self.iter[r], self.bits[r] = t, bits
        self.grad_norm_sq[r], self.f[r], self.time_s[r] = gn, fx, time_s
        self.count = r + 1

    @property
    def last_round(self) -> int:
        return int(self.iter[self.count - 1])


def run(problem, method: str, *, k: int = 1, gamma="theory-am", gamma_mult: float = 1.0,
        iters: int = 1000, tol: float | None = None, x0=None, seed: int | None = 0,
        backend: str | None = None, bits: str = "values", p=None, batch=None,
        participation: str = "independent", progress: bool = False,
        callback=None, on_row=None, sgd_theory=None,
        adaptive_step: bool = False, trace_every: int = 1) -> Trace:
    """Run one method of the EF21 family and record its trace.

    Parameters
    ----------
    problem : ef21fast.methods.problems.Problem
        The objective: ``client_grads``, ``loss``, ``L``, ``L_i`` (and
        ``client_stochastic_grads``, ``grad``, ``m_i`` for the SGD methods).
    method : str
        One of :data:`METHODS` (the updates: the docstrings of
        :data:`METHOD_CLASSES`).
    k : int
        TopK: coordinates sent per client per round, ``1 <= k <= d`` (ignored by GD).
    gamma : float or {"theory-qm", "theory-am"}
        Step size, or the theory rule of the method (:func:`step_size`); times
        ``gamma_mult``.
    iters : int
        Maximum number of rounds T (the trace has at most T + 1 rows).
    tol : float or None
        Stop (status ``"converged"``) at the first row with ``||grad f||^2 < tol``.
    x0 : array_like of shape (d,) or None
        Starting point (float64 copy); zeros by default.
    seed : int or None
        Seeds ``numpy.random.default_rng``, used for minibatches and participation.
        Deterministic methods ignore it; every run is reproducible.
    backend : str or None
        Kernel backend (``None``: the default backend, resolved once).
    bits : {"values", "values+indices"}
        Bit accounting: 32 bits per sent value, plus ``ceil(log2 d)`` index bits
        per value of a sparse message with ``"values+indices"``
        (:func:`bits_per_value`). The gradients at ``x0`` are not counted.
    p : float or array of shape (n,)
        Participation probability for the PP methods (default 0.5); with
        ``participation="fixed"`` the fraction of clients drawn each round.
    batch : int or array of shape (n,)
        Minibatch size per client for the SGD methods (default: 10% of each
        client's samples, at least 1; capped at ``m_i``).
    participation : {"independent", "fixed"}
        How the PP methods draw participants.
    progress : bool
        Show a tqdm progress bar on stderr.
    callback : callable or None
        ``callback(t, x, grad_norm_sq)`` after each recorded row; returning True
        stops the run (status ``"interrupted"``).
    on_row : callable or None
        ``on_row(t, bits, grad_norm_sq, f, time_s, x)`` as soon as row ``t`` is
        recorded, row 0 included (for example :class:`ef21fast.methods.trace.TraceLog`
        streaming the rows to disk); ``x`` is the iterate, not to be modified.
    sgd_theory : bool or None
        SGD methods: whether the theory rules use the stochastic analysis
        (:mod:`ef21fast.methods.theory_sgd`): None (default) where it is derived
        (else the deterministic formulas), True always (an error where it is not),
        False never (the deterministic formulas).
    adaptive_step : bool
        ``ef21``: the rare-features adaptive step of each round (default off).
    trace_every : int
        Record the trace row (``f``, ``||grad f||^2``, bits, time) of every
        ``trace_every``-th round and of the last one (default 1: every round). The
        tolerance stop, ``callback`` and ``on_row`` act on recorded rows only, so a
        run with ``tol`` may go on up to ``trace_every - 1`` rounds past the first
        round below it; the bits still count every round. On the other rounds a
        divergence is seen in the iterate and ``||grad f||^2`` only (``f`` is not
        evaluated there); the last finite round is then recorded.

    Returns
    -------
    Trace
        Rows for the recorded rounds (``iter``: ``0, K, 2K, ...`` and the last, all
        of ``0..T'`` with ``trace_every=1``); on divergence the rows before the
        first non-finite iterate, with ``status="diverged"`` and the message
        ``"diverged: step too large?"``. Ctrl-C ends the run with status
        ``"interrupted"`` and the rows so far.

    Raises
    ------
    ValueError, TypeError
        Unknown method, bad ``k``, ``gamma``, ``iters``, ``tol``, ``x0``, ``p``,
        ``batch``, ``bits`` or ``trace_every``; also when the gradient or loss at ``x0`` is not
        finite.
    RuntimeError
        A backend that does not work on this machine.
    """
    cls = method_class(method)
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
        raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
    T = int(iters)
    trace_every = check_trace_every(trace_every)
    if tol is not None:
        tol = float(tol)
        if not tol >= 0:
            raise ValueError(f"tol must be non-negative, got {tol!r}")
    m = cls(problem, k=k, gamma=gamma, gamma_mult=gamma_mult, bits=bits, backend=backend,
            p=p, batch=batch, participation=participation, sgd_theory=sgd_theory,
            adaptive_step=adaptive_step)
    return run_method(m, method, T=T, tol=tol, x0=x0, seed=seed, bits=bits,
                      progress=progress, callback=callback, on_row=on_row,
                      trace_every=trace_every)


def wants_losses(problem, on: bool) -> None:
    """Ask the fused oracle of ``problem`` (or of its base, for a cloned problem) for
    the client losses of its next passes, or not (its ``losses`` attribute,
    :class:`ef21fast.methods.oracle.FusedOracle`): ``f(x_t)`` reuses them on recorded
    rounds, the other rounds need none. Problems without one are left as they are."""
    fused = getattr(getattr(problem, "base", problem), "_fused", None)
    if fused is not None and hasattr(fused, "losses"):
        fused.losses = bool(on)


def check_trace_every(trace_every) -> int:
    """``trace_every`` checked: a positive integer.

    Raises
    ------
    ValueError
        If it is not an integer >= 1.
    """
    if (isinstance(trace_every, bool) or not isinstance(trace_every, numbers.Integral)
            or trace_every < 1):
        raise ValueError(f"trace_every must be a positive integer, got {trace_every!r}")
    return int(trace_every)


def run_method(m, method: str, *, T: int, tol, x0, seed, bits: str, progress: bool,
               callback, on_row, trace_every: int = 1) -> Trace:
    """The round loop of :func:`run` on a built method object ``m`` (``T``, ``tol``,
    ``trace_every`` already checked); also drives the block methods of
    :mod:`ef21fast.methods.distributed`."""
    x = start_point(x0, m.d)
    rng = np.random.default_rng(seed)
    K = trace_every

    rows = _Rows(T // K + 2)
    status, message = "completed", ""
    x_rec = x
    bar = None
    if progress:
        from tqdm import tqdm

        # With a tolerance the cap is rarely reached: no misleading percentage / ETA.
        bar = tqdm(total=T if tol is None else None, desc=method, unit="round",
                   leave=False, mininterval=0.5)

    start = time.perf_counter()
    wants_losses(m.problem, True)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        grad = m.start(x, rng)
        gn, fx = float(grad @ grad), float(m.problem.loss(x))
        if not (np.isfinite(gn) and np.isfinite(fx)):
            raise ValueError("the gradient or loss at x0 is not finite")
        rows.add(0, 0.0, gn, fx, time.perf_counter() - start)
        if tol is not None and gn < tol:
            status = "converged"
        bits_sum = 0.0
        try:
            if on_row is not None:
                on_row(0, 0.0, gn, fx, rows.time_s[0], x)
            t = 0
            while status == "completed" and t < T:
                t += 1
                traced = t % K == 0 or t == T
                if K > 1:
                    wants_losses(m.problem, traced)
                x_new = m.step(x)
                if not np.all(np.isfinite(x_new)):
                    status, message = "diverged", DIVERGED_MESSAGE
                    t -= 1
                    break
                # Only ||grad f||^2 of the previous round is kept for a roll-back, not
                # its gradient: one (d,) vector less during the round.
                x_prev, gn_prev = x, gn
                grad = None
                x = x_new
                del x_new
                grad, sent = m.round(x)
                bits_sum += sent
                gn = float(grad @ grad)
                if not traced:  # f not evaluated: the iterate and ||grad f||^2 checked
                    if np.isfinite(gn):
                        x_prev = None
                        if bar is not None:
                            bar.update(1)
                        continue
                    # a non-finite gradient: the previous round is the last finite one
                    status, message = "diverged", DIVERGED_MESSAGE
                    x, gn = x_prev, gn_prev
                    bits_sum -= sent
                    t -= 1
                    break
                fx = float(m.problem.loss(x))
                if not (np.isfinite(gn) and np.isfinite(fx)):
                    status, message = "diverged", DIVERGED_MESSAGE
                    x, gn = x_prev, gn_prev
                    bits_sum -= sent
                    t -= 1
                    break
                x_prev = None
                rows.add(t, bits_sum, gn, fx, time.perf_counter() - start)
                x_rec = x
                if on_row is not None:
                    on_row(t, bits_sum, gn, fx, rows.time_s[rows.count - 1], x)
                if bar is not None:
                    bar.update(1)
                if tol is not None and gn < tol:
                    status = "converged"
                elif callback is not None and callback(t, x, gn):
                    status = "interrupted"
                    message = f"stopped by the callback at round {t}"
            if status == "diverged" and K > 1 and t > rows.last_round:
                # the last finite round was not recorded: record it (its f costs one
                # more evaluation), so that the trace ends where the run stayed finite
                fx = float(m.problem.loss(x))
                rows.add(t, bits_sum, gn, fx, time.perf_counter() - start)
                x_rec = x
                if on_row is not None:
                    on_row(t, bits_sum, gn, fx, rows.time_s[rows.count - 1], x)
        except KeyboardInterrupt:
            status = "interrupted"
            message = f"interrupted after round {rows.last_round}"
        finally:
            wants_losses(m.problem, True)
            if bar is not None:
                bar.close()

    n = rows.count
    last = n - 1
    if status == "diverged":
        message = (f"{DIVERGED_MESSAGE} (gamma = {m.gamma:.4g}: a non-finite value "
                   f"appeared at round {rows.last_round + 1}; trace kept up to round "
                   f"{rows.last_round})")
    elif status == "converged":
        message = (f"converged: ||grad f||^2 = {rows.grad_norm_sq[last]:.3e} < "
                   f"tol = {tol:.3e} at round {rows.last_round}")
    elif status == "completed":
        message = (f"completed {rows.last_round} rounds: ||grad f||^2 = "
                   f"{rows.grad_norm_sq[last]:.3e}")
    return Trace(
        iter=rows.iter[:n].copy(), bits=rows.bits[:n].copy(),
        grad_norm_sq=rows.grad_norm_sq[:n].copy(), f=rows.f[:n].copy(),
        time_s=rows.time_s[:n].copy(), x=np.array(x_rec, copy=True),
        status=status, message=message, method=method, gamma=m.gamma,
        gamma_rule=m.gamma_rule, k=m.k, n=m.n, d=m.d, backend=m.backend,
        bits_mode=bits, seed=seed, extra=m.extra,
    )
