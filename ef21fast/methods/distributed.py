"""A method of the EF21 family with its clients split over processes (torch.distributed).

:func:`run` is :func:`ef21fast.methods.algorithms.run` on ``W`` processes (ranks) of
one gloo process group: rank ``r`` holds the state of a contiguous block of clients
(``g_i`` of EF21 and its forms, ``e_i`` of EF14) and compresses their messages; one
all-gather per round exchanges the messages, fixed-size per client (indices as int32
where ``d`` allows, values in the states' dtype), and every rank applies them in client
order, as the single-process server does. So every rank ends with the trace and the
last iterate of the single-process run, bit for bit (docs/maths.rst, "The methods
across processes"). Called on every rank of the job; ``ef21fast run --workers N``
starts the ranks (or joins a ``torchrun`` job).

What is split: the per-client state (``g_i`` of EF21 and its forms, ``e_i`` of EF14),
the client gradients of every round (a rank evaluates its block's only, through
:meth:`~ef21fast.methods.problems.Problem.client_grads` with ``lo, hi``), the
compression, and what crosses the network (``k`` values per client instead of ``d``).
Sums over all clients keep the single-process order: the trace's mean gradient and
EF21-W's initial ``g`` are running sums passed from rank to rank in client order
(``_Exchange.chain``), and the trace's ``f`` is the mean of the clients' losses,
each rank contributing its block's (``_Exchange.values``). So a rank holds its block's
states and gradients (two arrays of ``(block, d)``), the data, and ``d``-vectors. What
every rank still does in full: the loss and the full gradient where the single
process computes them from all the data (the SGD methods' trace; a problem without a
fused oracle), the random draws (minibatches, participants, from the same seeded
generator) and the server's ``d``-vector. ``d < 2`` and ``ef21-clone`` keep every
client's gradients on every rank (NumPy's sum of the rows of a ``(n, 1)`` array is
not the row-by-row sum that the chain reproduces; a clone's losses are its base
client's).
Importing this module imports torch.
"""

from __future__ import annotations

import datetime
import numbers
import os

import numpy as np
import torch
import torch.distributed as dist

from ef21fast import api
from ef21fast.methods.algorithms import method_class, run_method
from ef21fast.methods.baselines import EF14
from ef21fast.methods.ef21 import EF21, EF21PP, EF21SGD
from ef21fast.methods.method import Round, mean_rows, weighted_row_sum
from ef21fast.methods.problems import ClonedProblem
from ef21fast.methods.trace import Trace

__all__ = ["DEFAULT_TIMEOUT_S", "run", "blocks", "check_workers"]

#: Seconds a rank waits for the others (rendezvous, each round's exchange) before
#: it fails.
DEFAULT_TIMEOUT_S = 60.0


def blocks(n: int, workers: int) -> np.ndarray:
    """Where the contiguous blocks of clients start: ``workers + 1`` offsets, block
    ``r`` is clients ``off[r]:off[r+1]`` (sizes differ by at most one, larger first).

    Returns
    -------
    ndarray, shape (workers + 1,), int64
    """
    q, extra = divmod(int(n), int(workers))
    sizes = np.full(int(workers), q, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate(([0], np.cumsum(sizes)))


def check_workers(workers, n: int, method: str, adaptive_step: bool = False) -> int:
    """Check ``workers`` (the number of processes) for ``method`` on ``n`` clients.

    Raises
    ------
    ValueError
        ``workers`` not an integer in ``1..n``; ``gd`` (no client state to split:
        its clients send dense gradients) or ``adaptive_step`` (the step needs every
        client's state on one process), which do not run distributed.
    """
    if (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
            or not 1 <= workers <= n):
        raise ValueError(f"workers must be an integer from 1 to the number of clients "
                         f"n = {n}, got {workers!r}")
    if method == "gd":
        raise ValueError("gd cannot run with workers: it keeps no client state to "
                         "split and sends dense gradients; run it in one process")
    if adaptive_step:
        raise ValueError("adaptive_step cannot run with workers: its step needs every "
                         "client's state in one process")
    return int(workers)


class _Exchange:
    """One all-gather of fixed-size messages per round over the process group."""

    def __init__(self, off: np.ndarray, k: int, d: int, rank: int, group, timeout,
                 vtype=np.float64):
        self.off, self.k, self.rank, self.group, self.timeout = off, k, rank, group, timeout
        self.rows = int(np.max(np.diff(off)))
        self.itype = np.int32 if d <= np.iinfo(np.int32).max else np.int64
        self.vtype = np.dtype(vtype)  # the states' dtype: values cross unchanged
        self.ibytes = self.rows * k * np.dtype(self.itype).itemsize
        size = self.ibytes + self.rows * k * self.vtype.itemsize
        self.buf = torch.zeros(size, dtype=torch.uint8)
        self.out = [torch.empty_like(self.buf) for _ in range(len(off) - 1)]
        self.round = 0

    def _call(self, collective, *args):
        try:
            collective(*args, group=self.group)
        except RuntimeError as exc:
            raise RuntimeError(
                f"ef21fast workers: the exchange of round {self.round} failed on rank "
                f"{self.rank} (another rank died, or did not answer within the timeout "
                f"of {self.timeout:g} s): {' '.join(str(exc).split())[:300]}") from None

    def chain(self, rows: np.ndarray, n=None) -> np.ndarray:
        """The float64 sum of all clients' rows, this rank holding its block's
        ``rows``, added one by one in client order (as ``mean_rows`` and
        ``weighted_row_sum`` add them): a running sum passed from rank to rank (one
        broadcast each), divided by ``n`` on the last rank if given; shape (d,),
        float64, the same bits on every rank."""
        acc = torch.empty(rows.shape[1], dtype=torch.float64)
        a = acc.numpy()
        for r in range(len(self.off) - 1):
            if r == self.rank:
                first = 0
                if r == 0:
                    a[:] = rows[0]
                    first = 1
                for row in rows[first:]:
                    a += row
                if r == len(self.off) - 2 and n is not None:
                    a /= n
            self._call(dist.broadcast, acc, r)
        return a.copy()

    def values(self, mine: np.ndarray) -> np.ndarray:
        """Every client's value (float64), this rank holding its block's ``mine``:
        one all-gather; shape (n,), in client order."""
        rows = self.rows
        buf = torch.zeros(rows, dtype=torch.float64)
        buf.numpy()[:mine.size] = mine
        out = [torch.empty_like(buf) for _ in range(len(self.off) - 1)]
        self._call(dist.all_gather, out, buf)
        return np.concatenate([o.numpy()[:c] for o, c in zip(out, np.diff(self.off))])

    def gather(self, idx, val, counts) -> tuple[np.ndarray, np.ndarray]:
        """Send this rank's ``(m, k)`` message rows; return every rank's rows
        (``counts[r]`` of rank ``r``), in rank order: int64 indices, values of the
        states' dtype."""
        b = self.buf.numpy()
        m = idx.shape[0]
        b[:self.ibytes].view(self.itype).reshape(self.rows, self.k)[:m] = idx
        b[self.ibytes:].view(self.vtype).reshape(self.rows, self.k)[:m] = val
        self._call(dist.all_gather, self.out, self.buf)
        idxs, vals = [], []
        for o, c in zip(self.out, counts):
            o = o.numpy()
            idxs.append(o[:self.ibytes].view(self.itype).reshape(self.rows, self.k)[:c])
            vals.append(o[self.ibytes:].view(self.vtype).reshape(self.rows, self.k)[:c])
        return np.concatenate(idxs).astype(np.int64), np.concatenate(vals)


class _RankProblem:
    """The problem as the loop of ``run_method`` sees it on a rank whose block
    oracle is on: ``loss(x)`` is the mean of every client's loss, each rank
    contributing its block's; anything else is the problem's."""

    def __init__(self, problem, lo, hi, exchange):
        self._pb, self._lo, self._hi, self._ex = problem, lo, hi, exchange

    def loss(self, x) -> float:
        mine = self._pb.client_losses(x, self._lo, self._hi)
        return float(np.mean(self._ex.values(mine)))

    def __getattr__(self, name):
        return getattr(self._pb, name)


class _Block:
    """The method object ``m`` with its client state restricted to clients
    ``lo:hi``; the loop of :func:`~ef21fast.methods.algorithms.run_method` drives it
    as it drives ``m``. Unknown attributes are ``m``'s."""

    def __init__(self, m, off, rank, exchange):
        self._m, self._off, self._ex = m, off, exchange
        self._lo, self._hi = int(off[rank]), int(off[rank + 1])
        self._ef14 = isinstance(m, EF14)
        # The block's own gradients where the chained sums give the single process's
        # bits: rows of d >= 2 (see the module's docstring), a problem with ranges.
        self._split = (len(off) > 2 and m.d >= 2 and m._ranged()
                       and not isinstance(m.problem, ClonedProblem))
        # The clients whose gradients this rank evaluates: its block, or all.
        self._glo, self._ghi = (self._lo, self._hi) if self._split else (0, m.n)
        self.problem = (_RankProblem(m.problem, self._lo, self._hi, exchange)
                        if self._split else m.problem)
        m.extra["block_oracle"] = self._split

    def __getattr__(self, name):
        return getattr(self._m, name)

    def _grads(self, x, draw=None):
        """The gradients at ``x`` of the clients this rank evaluates (minibatch ones
        from ``draw``); and this rank's own rows of them."""
        pb, m = self._m.problem, self._m
        rng = (self._glo, self._ghi) if m._ranged() else ()
        if draw is None:
            G = pb.client_grads(x, *rng)
        else:
            G = pb.client_stochastic_grads(x, m.batch, draw, *rng)
        return G, G[self._lo - self._glo:self._hi - self._glo]

    def _chain(self, G, n=None, weights=None):
        """``mean_rows`` (``n`` given) or ``weighted_row_sum`` (``weights``) over all
        clients of what :meth:`_grads` returned."""
        if not self._split:
            return mean_rows(G) if weights is None else weighted_row_sum(weights, G)
        if weights is not None:
            G = G * weights[self._lo:self._hi, None]
        return self._ex.chain(G, n)

    def _counts(self, clients=None):
        if clients is None:
            return np.diff(self._off)
        return np.diff(np.searchsorted(clients, self._off))

    # EF14 ---------------------------------------------------------------------
    def _round_ef14(self, x):
        m = self._m
        G, mine = self._grads(x)
        self._message = api.ef_step(mine, self.errors, m.k, lr=m.gamma,
                                    backend=m.backend)
        return Round(self._chain(G, m.n), m.bits_per_round)

    def _step_ef14(self, x):
        m = self._m
        idx, val = self._ex.gather(*self._message, self._counts())
        x_new = x.copy()
        api.scatter_add(x_new, idx, val.astype(x_new.dtype, copy=False),
                        weights=-1.0 / m.n, backend=m.backend)
        return x_new

    # EF21 and its forms ---------------------------------------------------------
    def start(self, x0, rng=None):
        m = self._m
        dtype = np.dtype(getattr(m.problem, "dtype", np.float64))
        if self._ef14:
            self.errors = np.zeros((self._hi - self._lo, m.d), dtype=dtype)
            return self._round_ef14(x0).grad
        m._rng = rng
        G, mine = self._grads(x0)
        grad = self._chain(G, m.n)
        # EF21.start: g_i = the (scaled) gradients, g their (weighted) mean.
        if m.weighted:
            np.multiply(G, m.scale[self._glo:self._ghi, None], out=G)
            g = self._chain(mine if self._split else G, weights=m.weights)
        else:
            g = grad
        m.g = g.astype(G.dtype)
        self.state = mine.copy()
        return grad

    def step(self, x):
        self._ex.round += 1  # the loop's round t: step to x_t, then round at x_t
        return self._step_ef14(x) if self._ef14 else self._m.step(x)

    def round(self, x):
        m = self._m
        if self._ef14:
            return self._round_ef14(x)
        if isinstance(m, EF21SGD):
            draw = (m.problem.draw_minibatches(m.batch, m._rng) if m._ranged()
                    else m._rng)
            self._exchange(self._grads(x, draw)[1])
            return Round(np.asarray(m.problem.grad(x), dtype=np.float64),
                         m.bits_per_round)
        G, mine = self._grads(x)
        grad = self._chain(G, m.n)
        if isinstance(m, EF21PP):
            S = m.participants()
            if S.size:
                self._exchange(mine, S)
            return Round(grad, m.bits_per_round * S.size / m.n)
        self._exchange(mine)
        return Round(grad, m.bits_per_round)

    def _exchange(self, mine, clients=None):
        """EF21's exchange with the clients of this block compressing (``mine``:
        their gradients) and every message applied on every rank, in client
        order."""
        m, lo, hi = self._m, self._lo, self._hi
        own = (np.arange(lo, hi) if clients is None
               else clients[(clients >= lo) & (clients < hi)])
        rows = self.state[own - lo]
        idx, val = api.ef21_step(mine[own - lo], rows, m.k,
                                 None if m.scale is None else m.scale[own],
                                 backend=m.backend)
        self.state[own - lo] = rows
        idx, val = self._ex.gather(idx, val, self._counts(clients))
        w = m._server_weights
        if clients is not None and m.weighted:
            w = w[clients]
        api.scatter_add(m.g, idx, val, weights=w, backend=m.backend)


def _join(timeout: float):
    """The default process group: the one already initialised, else one joined by
    env:// (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, as set by
    ``torchrun``). Returns whether it was created here."""
    if dist.is_initialized():
        return False
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if v not in os.environ]
    if missing:
        raise RuntimeError(f"no torch.distributed process group: initialise one, or "
                           f"start under torchrun (missing {', '.join(missing)})")
    try:
        dist.init_process_group("gloo", init_method="env://",
                                timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:  # DistStoreError is a RuntimeError
        raise RuntimeError(
            f"ef21fast workers: rank {os.environ['RANK']} could not join the job at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within "
            f"{timeout:g} s: {' '.join(str(exc).split())[:300]}") from None
    return True


def run(problem, method: str, *, k: int = 1, gamma="theory-am", gamma_mult: float = 1.0,
        iters: int = 1000, tol: float | None = None, x0=None, seed: int | None = 0,
        backend: str | None = None, bits: str = "values", p=None, batch=None,
        participation: str = "independent", progress: bool = False, callback=None,
        on_row=None, sgd_theory=None, adaptive_step: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S) -> Trace:
    """:func:`ef21fast.methods.algorithms.run` with the clients split over the ranks
    of a gloo process group; called on every rank.

    The process group is the default one if initialised, else it is created here from
    the environment (env://, as ``torchrun`` sets it) and destroyed at the end. Rank
    ``r`` of ``W`` holds clients ``blocks(n, W)[r]:blocks(n, W)[r+1]``.

    Parameters
    ----------
    problem, method, k, gamma, gamma_mult, iters, tol, x0, backend, bits, p, batch, \
participation, sgd_theory
        As :func:`ef21fast.methods.algorithms.run`; the same on every rank.
    seed : int or None
        As :func:`~ef21fast.methods.algorithms.run`; None: rank 0 draws a fresh seed
        for all ranks (the trace records it).
    progress : bool
        A progress bar (pass True on one rank only).
    callback : callable or None
        Called on every rank; it must return the same on every rank.
    on_row : callable or None
        As :func:`~ef21fast.methods.algorithms.run` (e.g. on rank 0 only).
    adaptive_step : bool
        Must be False (the adaptive step needs all client states in one process).
    timeout : float
        Seconds a rank waits for the others (joining, each round's exchange) before
        it raises.

    Returns
    -------
    Trace
        On every rank, equal bit for bit (but ``time_s``) to the single-process
        run's; ``extra["workers"]`` is ``W``.

    Raises
    ------
    ValueError, TypeError
        As :func:`~ef21fast.methods.algorithms.run`; ``gd``, ``adaptive_step``, or
        more ranks than clients (:func:`check_workers`); a bad ``timeout``.
    RuntimeError
        No process group and no env:// variables; a rank that does not join, dies
        or stalls (raised on the others within ``timeout`` seconds).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not (
            0 < timeout < float("inf")):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    cls = method_class(method)
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
        raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
    if tol is not None:
        tol = float(tol)
        if not tol >= 0:
            raise ValueError(f"tol must be non-negative, got {tol!r}")
    if method == "gd" or adaptive_step:
        check_workers(1, 1, method, adaptive_step)
    m = cls(problem, k=k, gamma=gamma, gamma_mult=gamma_mult, bits=bits, backend=backend,
            p=p, batch=batch, participation=participation, sgd_theory=sgd_theory)
    assert isinstance(m, (EF21, EF14))
    created = _join(float(timeout))
    try:
        world, rank = dist.get_world_size(), dist.get_rank()
        check_workers(world, m.n, method)
        off = blocks(m.n, world)
        block = _Block(m, off, rank, _Exchange(off, m.k, m.d, rank, None, float(timeout),
                                               getattr(m.problem, "dtype", np.float64)))
        m.extra["workers"] = world
        if seed is None:  # one fresh seed for all ranks: they must draw the same
            drawn = torch.tensor([np.random.SeedSequence().entropy % 2**63])
            dist.broadcast(drawn, src=0)
            seed = int(drawn.item())
        return run_method(block, method, T=int(iters), tol=tol, x0=x0, seed=seed,
                          bits=bits, progress=progress, callback=callback, on_row=on_row)
    finally:
        if created:
            dist.destroy_process_group()
