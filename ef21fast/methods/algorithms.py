"""The EF21 family of methods, written on the batched kernels.

One function, :func:`run`, runs any of :data:`METHODS` on a problem from
:mod:`ef21fast.methods.problems` and returns a :class:`~ef21fast.methods.trace.Trace`. Every round
makes one batched call for all clients (``ef21_step`` or ``ef_step`` on the
``(n, d)`` matrix of client gradients, then one ``scatter_add`` on the server); there
is no Python loop over clients. The maths follows ``PAPER.md``:

``gd``
    ``x <- x - gamma * grad f(x)``; each client sends its d-dimensional gradient.
``ef14``
    Classic error feedback: ``e_i <- e_i + gamma grad f_i(x)``; ``c_i = C(e_i)``;
    ``e_i <- e_i - c_i``; ``x <- x - (1/n) sum c_i``; ``e_i = 0`` at the start.
``ef21``
    ``g_i = grad f_i(x0)``, ``g = (1/n) sum g_i``; each round ``x <- x - gamma g``,
    ``c_i = C(grad f_i(x) - g_i)``, ``g_i <- g_i + c_i``, ``g <- g + (1/n) sum c_i``.
``ef21-w``
    Weights ``w_i = L_i / sum_j L_j``; ``g_i = grad f_i(x0) / (n w_i)``,
    ``g = sum w_i g_i``; ``c_i = C(grad f_i(x) / (n w_i) - g_i)``,
    ``g <- g + sum w_i c_i``. With TopK (positively homogeneous) it gives the same
    iterates as ``ef21`` at the same gamma, up to rounding.
``ef21-sgd``, ``ef21-w-sgd``
    As ``ef21`` / ``ef21-w`` with ``grad f_i`` replaced by a minibatch estimate
    (``batch`` samples per client, without replacement). The states start at the
    full gradients ``grad f_i(x0)`` (so the initial estimator error is zero).
``ef21-pp``, ``ef21-w-pp``
    Partial participation: in each round only the participating clients compute,
    compress and send; the others keep ``g_i``; the server adds the messages it
    received. ``participation="independent"``: client i takes part with probability
    ``p_i`` (``rng.random(n) < p``); ``participation="fixed"``: a uniform subset of
    ``max(1, round(p n))`` clients (``rng.choice(n, size, replace=False)``), as in
    the EF21 authors' scripts.
``ef21-clone``
    EF21 on :class:`ef21fast.methods.problems.ClonedProblem` with ``N_i = ceil(L_i / L_AM)``
    clones of client i (the paper's first route to L_AM); ``n`` becomes ``N``.

Step sizes (``gamma="theory-qm"`` / ``"theory-am"``, times ``gamma_mult``):

* ``ef21``, ``ef21-w``, ``ef21-clone``: ``gamma_QM = 1/(L + L_QM xi(alpha))`` and
  ``gamma_AM = 1/(L + L_AM xi(alpha))`` (:mod:`ef21fast.methods.theory`), with the L_i of the
  problem that is run (the clones' for ``ef21-clone``).
* ``ef21-sgd``, ``ef21-w-sgd``: the same two formulas are used as *defaults*; they
  are not the Bells & Whistles SGD step sizes, which need the constants of the
  stochastic-gradient assumption (A_i, B_i, C_i) that a problem does not provide.
* ``ef21-pp``, ``ef21-w-pp``: :func:`ef21fast.methods.theory.gamma_pp` (Bells & Whistles,
  Th. 7) with the participation probabilities; ``theory-qm`` uses
  ``(1/n) sum L_i^2``, ``theory-am`` replaces it by ``L_AM^2`` (``weighted=True``,
  derived, not a printed theorem).
* ``gd``: both rules give ``1/L`` (alpha = 1, xi = 0).
* ``ef14``: PAPER.md gives no theory step for EF14 in this setting; the EF21
  formulas are used as a heuristic so that EF14 can be compared at the same gamma.

Bit accounting (the papers' x-axis, "bits sent from a client to the server"):
``bits="values"`` counts 32 bits per sent value, as the EF21 authors' code (k*32 per
round for TopK, d*32 for GD); ``bits="values+indices"`` adds ``ceil(log2 d)`` bits per
sent value of a sparse message (GD sends a dense vector: no indices). The initial
full gradients of EF21 are not counted (as in the papers). With partial
participation the bits are averaged over all clients. ``ef21-clone`` counts bits
per worker, i.e. per clone.

Row ``t`` of the trace holds ``x_t`` and the bits of rounds ``1..t``, where round
``t``'s messages are those computed from the gradients at ``x_t`` (EF21 family, as the
EF21 code counts them) or at ``x_{t-1}`` (GD, EF14: the messages that produced
``x_t``). ``||grad f(x_t)||^2`` is taken from the mean of the client gradients the
round computes anyway (from ``problem.grad`` for the SGD methods).
"""

from __future__ import annotations

import math
import numbers
import time

import numpy as np

from ef21fast import api
from ef21fast.methods.trace import Trace

__all__ = ["METHODS", "run", "step_size", "bits_per_value"]

#: The method names :func:`run` accepts.
METHODS = ("gd", "ef14", "ef21", "ef21-w", "ef21-sgd", "ef21-w-sgd", "ef21-pp",
           "ef21-w-pp", "ef21-clone")

GAMMA_RULES = ("theory-qm", "theory-am")
BITS_MODES = ("values", "values+indices")
PARTICIPATION = ("independent", "fixed")

_WEIGHTED = {"ef21-w", "ef21-w-sgd", "ef21-w-pp"}
_SGD = {"ef21-sgd", "ef21-w-sgd"}
_PP = {"ef21-pp", "ef21-w-pp"}

DIVERGED_MESSAGE = "diverged: step too large?"


def bits_per_value(bits: str, d: int) -> int:
    """Bits charged per value of a sparse message: 32, plus ``ceil(log2 d)`` for
    ``bits="values+indices"``."""
    if bits not in BITS_MODES:
        raise ValueError(f"bits must be one of {BITS_MODES}, got {bits!r}")
    extra = math.ceil(math.log2(d)) if (bits == "values+indices" and d > 1) else 0
    return 32 + extra


def _check_k(k, d: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {k!r}")
    k = int(k)
    if not 1 <= k <= d:
        raise ValueError(f"k must be in [1, d] = [1, {d}], got {k}")
    return k


def _participation_p(p, n: int, participation: str):
    """The per-client participation probabilities (array (n,)) and the fixed
    subset size (or None)."""
    if participation not in PARTICIPATION:
        raise ValueError(f"participation must be one of {PARTICIPATION}, "
                         f"got {participation!r}")
    p = 0.5 if p is None else p
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"p must be a scalar or have shape ({n},), got {arr.shape}")
    if not np.all((arr > 0) & (arr <= 1)):
        raise ValueError("participation probabilities p must lie in (0, 1]")
    if participation == "fixed":
        if np.ndim(p) != 0:
            raise ValueError("participation='fixed' takes a scalar p (the fraction)")
        size = max(1, int(round(float(p) * n)))
        return np.full(n, size / n), size
    return arr, None


def step_size(problem, method: str, gamma="theory-am", gamma_mult: float = 1.0, *,
              k: int = 1, p=None, participation: str = "independent"):
    """The step size :func:`run` uses, and a description of how it was chosen.

    Parameters
    ----------
    problem : Problem
        Has ``L``, ``L_i``, ``n``, ``d``. For ``ef21-clone`` pass the cloned problem.
    method : str
        One of :data:`METHODS`.
    gamma : float or {"theory-qm", "theory-am"}
        A positive number (used as is, times ``gamma_mult``) or a theory rule.
    gamma_mult : float
        Positive multiplier.

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
    from ef21fast.methods import theory

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    mult = _positive("gamma_mult", gamma_mult)
    if not isinstance(gamma, str):
        g = _positive("gamma", gamma)
        return g * mult, (f"{g!r} (given)" if mult == 1 else f"{mult:g} x {g!r} (given)")
    if gamma not in GAMMA_RULES:
        raise ValueError(f"gamma must be a positive number or one of {GAMMA_RULES}, "
                         f"got {gamma!r}")
    L, L_i = float(problem.L), np.asarray(problem.L_i, dtype=np.float64)
    am = gamma == "theory-am"
    if method == "gd":
        g, how = theory.gamma_am(L, L_i, 1.0), "1/L"
    else:
        alpha = theory.topk_alpha(k, problem.d)
        if method in _PP:
            probs, _ = _participation_p(p, problem.n, participation)
            pv = float(probs[0]) if np.all(probs == probs[0]) else probs
            g = theory.gamma_pp(L, L_i, alpha, pv, weighted=am)
            how = "gamma_pp, L_AM^2 (derived)" if am else "gamma_pp, (1/n) sum L_i^2"
        else:
            fn = theory.gamma_am if am else theory.gamma_qm
            g = fn(L, L_i, alpha)
            how = "1/(L + L_AM xi)" if am else "1/(L + L_QM xi)"
            if method in _SGD:
                how += ", deterministic formula as default"
            elif method == "ef14":
                how += ", EF21 formula as heuristic"
    g = float(g)
    prefix = "" if mult == 1 else f"{mult:g} x "
    return g * mult, f"{prefix}{gamma} ({how})"


def _positive(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


def _batch_sizes(problem, batch):
    m_i = np.asarray(problem.m_i, dtype=np.int64)
    if batch is None:
        return np.maximum(1, m_i // 10)
    b = np.asarray(batch)
    if b.dtype.kind not in "iu" or np.any(b < 1):
        raise ValueError("batch must be a positive integer or (n,) positive integers")
    return np.minimum(np.broadcast_to(b, m_i.shape).astype(np.int64), m_i)


def run(problem, method: str, *, k: int = 1, gamma="theory-am", gamma_mult: float = 1.0,
        iters: int = 1000, tol: float | None = None, x0=None, seed: int | None = 0,
        backend: str | None = None, bits: str = "values", p=None, batch=None,
        participation: str = "independent", progress: bool = False,
        callback=None, on_row=None) -> Trace:
    """Run one method of the EF21 family and record its trace.

    Parameters
    ----------
    problem : ef21fast.methods.problems.Problem
        The objective: ``client_grads``, ``loss``, ``L``, ``L_i`` (and
        ``client_stochastic_grads``, ``grad``, ``m_i`` for the SGD methods).
    method : str
        One of :data:`METHODS` (see the module docstring for the updates).
    k : int
        TopK: coordinates sent per client per round, ``1 <= k <= d`` (ignored by GD).
    gamma : float or {"theory-qm", "theory-am"}
        Step size, or the theory rule (see the module docstring); times ``gamma_mult``.
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
        Bit accounting (see the module docstring).
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

    Returns
    -------
    Trace
        Rows ``0..T'`` for the iterates computed; on divergence the rows before the
        first non-finite iterate, with ``status="diverged"`` and the message
        ``"diverged: step too large?"``. Ctrl-C ends the run with status
        ``"interrupted"`` and the rows so far.

    Raises
    ------
    ValueError, TypeError
        Unknown method, bad ``k``, ``gamma``, ``iters``, ``tol``, ``x0``, ``p``,
        ``batch`` or ``bits``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
        raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
    iters = int(iters)
    if tol is not None:
        tol = float(tol)
        if not tol >= 0:
            raise ValueError(f"tol must be non-negative, got {tol!r}")
    from ef21fast.backends.registry import default_backend, load_backend

    backend = default_backend() if backend is None else backend
    load_backend(backend)  # unknown / unavailable backend: fail before any work

    extra: dict = {}
    base_n = problem.n
    if method == "ef21-clone":
        from ef21fast.methods import problems as _problems
        from ef21fast.methods import theory

        counts = theory.clone_counts(problem.L_i)
        problem = _problems.ClonedProblem(problem, counts)
        extra.update(clones=int(problem.n), base_clients=int(base_n))
    n, d = int(problem.n), int(problem.d)
    if method != "gd":
        k = _check_k(k, d)
    bpv = bits_per_value(bits, d)
    probs = size = None
    if method in _PP:
        probs, size = _participation_p(p, n, participation)
        extra.update(participation=participation,
                     p=float(probs[0]) if np.all(probs == probs[0]) else probs)
        if size is not None:
            extra["subset_size"] = size
    gamma_value, rule = step_size(problem, method, gamma, gamma_mult, k=k, p=p,
                                  participation=participation)
    if x0 is None:
        x = np.zeros(d)
    else:
        x = np.array(x0, dtype=np.float64, copy=True)
        if x.shape != (d,):
            raise ValueError(f"x0 must have shape ({d},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x0 must be finite")
    bsizes = None
    if method in _SGD:
        bsizes = _batch_sizes(problem, batch)
        extra["batch"] = int(bsizes[0]) if np.all(bsizes == bsizes[0]) else bsizes
    rng = np.random.default_rng(seed)

    T = iters
    # Row buffers, grown by doubling (a huge --iters must not allocate up front).
    cap = min(T + 1, 4096)
    bits_arr, gns, fs, ts = (np.zeros(cap) for _ in range(4))
    rows = 0
    status, message = "completed", ""
    x_rec = x

    bar = None
    if progress:
        from tqdm import tqdm

        # With a tolerance the cap is rarely reached: no misleading percentage / ETA.
        bar = tqdm(total=T if tol is None else None, desc=method, unit="round",
                   leave=False, mininterval=0.5)

    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        G = problem.client_grads(x)
        gf = _mean_rows(G)
        gn, fx = float(gf @ gf), float(problem.loss(x))
        # Method state.
        if method == "gd":
            per_round = 32.0 * d
        else:
            per_round = float(k * bpv)
        weighted = method in _WEIGHTED
        if weighted:
            L_i = np.asarray(problem.L_i, dtype=np.float64)
            w = L_i / L_i.sum()
            scale = 1.0 / (n * w)
            server_w = w
        else:
            scale = None
            server_w = 1.0 / n
        if method == "ef14":
            err = np.zeros((n, d))
        elif method != "gd":
            # g_i = grad f_i(x0) (times 1/(n w_i) for EF21-W, rounded as ef21_step does).
            state = np.array(G * scale[:, None] if weighted else G, dtype=np.float64,
                             order="C", copy=True)
            if weighted:
                g = w @ state
            else:
                g = _mean_rows(state)

        if not (np.isfinite(gn) and np.isfinite(fx)):
            raise ValueError("the gradient or loss at x0 is not finite")
        gns[0], fs[0], ts[0] = gn, fx, time.perf_counter() - start
        rows = 1
        if tol is not None and gn < tol:
            status = "converged"
        try:
            if on_row is not None:
                on_row(0, 0.0, gn, fx, ts[0], x)
            t = 0
            while status == "completed" and t < T:
                t += 1
                # ---- the step to x_t
                if method == "gd":
                    x_new = x - gamma_value * gf
                elif method == "ef14":
                    idx, val = api.ef_step(G, err, k, lr=gamma_value, backend=backend)
                    x_new = x.copy()
                    api.scatter_add(x_new, idx, val, weights=-1.0 / n, backend=backend)
                else:
                    x_new = x - gamma_value * g
                if not np.all(np.isfinite(x_new)):
                    status, message = "diverged", DIVERGED_MESSAGE
                    break
                x = x_new
                # ---- gradients at x_t, and the EF21 client/server step
                sent = per_round
                if method in _SGD:
                    Gs = problem.client_stochastic_grads(x, bsizes, rng)
                    idx, val = api.ef21_step(Gs, state, k, scale, backend=backend)
                    api.scatter_add(g, idx, val, weights=server_w, backend=backend)
                    gf = np.asarray(problem.grad(x), dtype=np.float64)
                else:
                    G = problem.client_grads(x)
                    gf = _mean_rows(G)
                    if method in _PP:
                        if size is None:
                            S = np.flatnonzero(rng.random(n) < probs)
                        else:
                            S = np.sort(rng.choice(n, size=size, replace=False))
                        if S.size:
                            sub = state[S]
                            idx, val = api.ef21_step(
                                G[S], sub, k, None if scale is None else scale[S],
                                backend=backend)
                            state[S] = sub
                            api.scatter_add(
                                g, idx, val,
                                weights=server_w[S] if weighted else server_w,
                                backend=backend)
                        sent = per_round * S.size / n
                    elif method not in ("gd", "ef14"):
                        idx, val = api.ef21_step(G, state, k, scale, backend=backend)
                        api.scatter_add(g, idx, val, weights=server_w, backend=backend)
                gn, fx = float(gf @ gf), float(problem.loss(x))
                if not (np.isfinite(gn) and np.isfinite(fx)):
                    status, message = "diverged", DIVERGED_MESSAGE
                    break
                if t >= cap:
                    cap = min(T + 1, 2 * cap)
                    bits_arr, gns, fs, ts = (np.concatenate([a, np.zeros(cap - a.size)])
                                             for a in (bits_arr, gns, fs, ts))
                bits_arr[t] = bits_arr[t - 1] + sent
                gns[t], fs[t], ts[t] = gn, fx, time.perf_counter() - start
                rows = t + 1
                x_rec = x
                if on_row is not None:
                    on_row(t, bits_arr[t], gn, fx, ts[t], x)
                if bar is not None:
                    bar.update(1)
                if tol is not None and gn < tol:
                    status = "converged"
                elif callback is not None and callback(t, x, gn):
                    status, message = "interrupted", f"stopped by the callback at round {t}"
        except KeyboardInterrupt:
            status, message = "interrupted", f"interrupted after round {rows - 1}"
        finally:
            if bar is not None:
                bar.close()

    last = rows - 1
    if status == "diverged":
        message = (f"{DIVERGED_MESSAGE} (gamma = {gamma_value:.4g}: a non-finite value "
                   f"appeared at round {last + 1}; trace kept up to round {last})")
    elif status == "converged":
        message = f"converged: ||grad f||^2 = {gns[last]:.3e} < tol = {tol:.3e} at round {last}"
    elif status == "completed":
        message = f"completed {last} rounds: ||grad f||^2 = {gns[last]:.3e}"
    return Trace(
        iter=np.arange(rows, dtype=np.int64), bits=bits_arr[:rows].copy(), grad_norm_sq=gns[:rows].copy(),
        f=fs[:rows].copy(), time_s=ts[:rows].copy(), x=np.array(x_rec, copy=True),
        status=status, message=message, method=method, gamma=gamma_value,
        gamma_rule=rule, k=int(k) if method != "gd" else d, n=n, d=d, backend=backend,
        bits_mode=bits, seed=seed, extra=extra,
    )


def _mean_rows(G) -> np.ndarray:
    """(1/n) sum of the rows of G, float64."""
    return np.asarray(G, dtype=np.float64).mean(axis=0)
