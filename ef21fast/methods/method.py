"""What every method of the EF21 family is: options checked once, a state, one round.

A method object is built for one run on one problem. Its constructor checks the
options (backend, ``k``, bit accounting, participation, step size) and fixes the step
size; the run loop (:func:`ef21fast.methods.algorithms.run`) then calls

* :meth:`Method.start` once, at the starting point ``x_0``: the state from the first
  client gradients, and the gradient estimate of row 0 of the trace;
* :meth:`Method.step` for the step from ``x_t`` to ``x_{t+1}``;
* :meth:`Method.round` at ``x_{t+1}``: the client gradients there, what the clients
  send and the server's update, the gradient estimate and the bits of the round.

A round computes the client gradients in chunks of clients
(``problem.client_grads(x, lo, hi, out=buffer)``, :func:`chunk_rows` clients at a time),
so that it holds one bounded buffer besides the ``(n, d)`` states, with the same bits
as one call over all clients.

The updates are stated in the class docstrings (:mod:`ef21fast.methods.baselines`,
:mod:`ef21fast.methods.ef21`); the maths, with its sources, is in ``docs/maths.rst``
("Methods", "Step sizes", "Bit accounting").
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np

from ef21fast.backends.registry import default_backend, load_backend
from ef21fast.methods import theory
from ef21fast.methods.options import bits_per_value, check_k, choose_gamma

__all__ = ["Method", "Round", "mean_rows", "weighted_row_sum", "chunk_rows", "CHUNK_FRACTION",
           "CHUNK_MIN_BYTES", "CHUNK_MAX_FRACTION", "CHUNK_ONE_BELOW", "descent_step"]

#: Client states of at most this many bytes are one chunk: the whole round at once
#: (a small problem, whose round is dominated by the per-call costs) ...
CHUNK_ONE_BELOW = 4 << 20
#: ... above it a round computes its client gradients in chunks of clients, in a
#: buffer of this fraction of the bytes of the (n, d) client states ...
CHUNK_FRACTION = 0.01
#: ... or, where that is smaller, of this many bytes (fewer, longer calls: a chunk
#: costs some 20 us of calls besides its work) ...
CHUNK_MIN_BYTES = 1 << 20
#: ... but at most this fraction of the states (states under 40 MiB), so that the
#: buffer takes at most a quarter of the tenth of the data and states that a run may
#: hold beyond them (and at least one client): the rest of that tenth goes to what a
#: process's first run touches for good (a9a at n = 10,000, one chunk of 5%: +9.8% to
#: +10.4% in a fresh process, bench/scale.py; 2.5%: +8.3% to +8.9%, for 1.09x the time a
#: round).
CHUNK_MAX_FRACTION = 0.025
#: Rows of at least this many bytes are added to the round's running sum one call per
#: row, in place (no spare row in the buffer, no second running sum).
_ROW_IN_PLACE_BYTES = 1 << 16


class Round(NamedTuple):
    """What one round gives the trace.

    Attributes
    ----------
    grad : ndarray, shape (d,), float64
        The gradient of ``f`` at the new iterate (the mean of the client gradients
        the round computed, or ``problem.grad`` for the SGD methods).
    bits : float
        Bits sent per client in this round (averaged over all clients when only
        some take part).
    """

    grad: np.ndarray
    bits: float


def mean_rows(G) -> np.ndarray:
    """``(1/n) sum_i G[i]``, float64, shape ``(d,)``."""
    return np.asarray(G, dtype=np.float64).mean(axis=0)


def chunk_rows(n: int, d: int, itemsize: int) -> int:
    """Clients per chunk of a round, between 1 and n: all n when the states
    (``S = n d itemsize`` bytes) are at most :data:`CHUNK_ONE_BELOW` or ``d < 2`` (NumPy
    adds the rows of an ``(r, d)`` array one by one, the order the chunks keep, only
    for ``d >= 2``); else ``max(CHUNK_FRACTION S, min(CHUNK_MIN_BYTES,
    CHUNK_MAX_FRACTION S)) // (d itemsize)``."""
    if d < 2 or n < 1 or n * d * itemsize <= CHUNK_ONE_BELOW:
        return max(n, 1)
    row = d * itemsize
    states = n * row
    budget = max(int(CHUNK_FRACTION * states),
                 min(CHUNK_MIN_BYTES, int(CHUNK_MAX_FRACTION * states)))
    return max(1, min(n, budget // row))


def _spare_row(rows: int, d: int, itemsize: int) -> int:
    """1 when a chunk of ``rows`` rows of length d is summed through a spare row 0
    (:func:`_add_rows`), 0 when its rows are added in place one by one."""
    return 0 if rows == 1 or d * itemsize >= _ROW_IN_PLACE_BYTES else 1


def descent_step(x, gamma, g) -> np.ndarray:
    """``x - gamma * g``, a new array with the bits of that expression, from one
    temporary instead of two (``gamma * g`` is computed, then ``x`` minus it is
    written over it when the result has its dtype and shape)."""
    t = np.multiply(g, gamma)
    if t.shape == np.shape(x) and t.dtype == np.result_type(x, t):
        return np.subtract(x, t, out=t)
    return x - t


def weighted_row_sum(w, S) -> np.ndarray:
    """``sum_i w_i S[i]`` in float64, the rows added one by one in order (as
    :func:`mean_rows` adds them; never a BLAS product, whose order of additions may
    depend on its threads), chunk by chunk: no (n, d) float64 temporary.

    Parameters
    ----------
    w : ndarray, shape (n,), float64
    S : ndarray, shape (n, d), C-contiguous

    Returns
    -------
    ndarray, shape (d,), float64
    """
    n, d = S.shape
    if n == 0:
        return np.zeros(d)
    rows = chunk_rows(n, d, 8)
    spare = _spare_row(rows, d, 8)
    X = np.empty((spare + min(rows, n), d))
    acc = None
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        np.multiply(S[lo:hi], w[lo:hi, None], out=X[spare:spare + hi - lo])
        acc = _add_rows(acc, X[:spare + hi - lo], spare)
    return acc


def _add_rows(acc, X, spare=1) -> np.ndarray:
    """The float64 running sum of a chunk's rows, added one by one in order after
    ``acc`` (None: nothing yet), as ``mean_rows`` adds the rows of all clients.

    ``X``: (spare + c, d), the chunk's c rows, after a spare row 0 when ``spare`` is
    1 (overwritten: the rows are then summed by one ``np.add.reduce``, into a new
    array); with ``spare`` 0 each row is added to ``acc`` in place (one call per row,
    for long rows), ``acc`` then being updated and returned. Both add the same
    numbers in the same order: the same bits."""
    if not spare:
        start = 0
        if acc is None:
            acc, start = np.array(X[0], dtype=np.float64), 1
        for j in range(start, X.shape[0]):
            np.add(acc, X[j], out=acc)
        return acc
    if X.dtype != np.float64:
        X = X.astype(np.float64)
    if acc is None:
        return np.add.reduce(X[1:], axis=0)
    X[0] = acc
    return np.add.reduce(X, axis=0)


class Method:
    """Base class of the methods: the options every method takes, checked once.

    Parameters
    ----------
    problem : ef21fast.methods.problems.Problem
        The objective, with ``n`` clients in dimension ``d``, ``L``, ``L_i``,
        ``client_grads`` and ``loss`` (plus ``client_stochastic_grads``, ``grad`` and
        ``m_i`` for the SGD methods).
    k : int
        TopK: values each client sends per round, ``1 <= k <= d``. Ignored by
        methods that send dense vectors (:attr:`compresses` false).
    gamma : float or {"theory-qm", "theory-am"}
        Step size, or the theory rule of the method (:meth:`theory_step`).
    gamma_mult : float
        Positive multiplier of the step size.
    bits : {"values", "values+indices"}
        Bit accounting (docs/maths.rst, "Bit accounting").
    backend : str or None
        Kernel backend; None: the default backend, resolved here once.
    p, participation
        Participation of the partial-participation methods (ignored by the others);
        see :func:`ef21fast.methods.options.participation_probs`.
    batch
        Minibatch sizes of the SGD methods (ignored by the others); see
        :func:`ef21fast.methods.options.batch_sizes`.
    sgd_theory : bool or None
        SGD methods only (:attr:`stochastic`). None (default): the theory rules give
        the step size of the stochastic analysis (:mod:`ef21fast.methods.theory_sgd`)
        where it is derived, else the deterministic formulas; True: that step, and an
        error where it is not derived; False: the deterministic formulas.
    adaptive_step : bool
        ``ef21`` only (:attr:`adaptive_ok`): the rare-features adaptive step of each
        round (:class:`ef21fast.methods.ef21.EF21`). Default off.

    Attributes
    ----------
    problem : Problem
        The problem the method runs on (for ``ef21-clone``, the cloned problem).
    n, d : int
        Clients (workers) and dimension of ``problem``.
    k : int
        Values sent per client per round (``d`` for dense methods).
    gamma : float
        The step size.
    gamma_rule : str
        How it was chosen, e.g. ``"theory-am (1/(L + L_AM xi))"``.
    bits_per_round : float
        Bits a client sends in a round in which it takes part.
    backend : str
        The resolved kernel backend.
    extra : dict
        Method-specific facts for the trace (clones, participation, batch sizes).

    Raises
    ------
    ValueError, TypeError
        A bad option, with a message naming it; RuntimeError for a backend that does
        not work here.

    Notes
    -----
    The options are checked in this order: backend, ``sgd_theory`` and
    ``adaptive_step``, the problem (cloning), ``k``, ``bits``, the participation, the
    step size, then the batch sizes.
    """

    #: The method's name in :data:`ef21fast.methods.algorithms.METHODS`.
    name: ClassVar[str] = ""
    #: Whether the clients send TopK-compressed messages (``k`` values).
    compresses: ClassVar[bool] = True
    #: Appended to the description of a theory step size.
    step_note: ClassVar[str] = ""
    #: Whether the clients use stochastic gradients (the ``sgd_theory`` option).
    stochastic: ClassVar[bool] = False
    #: Whether the method takes the ``adaptive_step`` option.
    adaptive_ok: ClassVar[bool] = False

    def __init__(self, problem, *, k=1, gamma="theory-am", gamma_mult=1.0,
                 bits="values", backend=None, p=None, batch=None,
                 participation="independent", sgd_theory=None, adaptive_step=False):
        self.backend = default_backend() if backend is None else backend
        load_backend(self.backend)  # unknown / unavailable backend: fail before any work
        for name, flag, ok, who in (("sgd_theory", sgd_theory, self.stochastic,
                                     "the SGD methods (ef21-sgd, ef21-w-sgd)"),
                                    ("adaptive_step", adaptive_step, self.adaptive_ok,
                                     "ef21")):
            if not (isinstance(flag, bool) or (flag is None and name == "sgd_theory")):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
            if flag and not ok:
                raise ValueError(f"{name} applies to {who} only, not to {self.name}")
        self.sgd_theory, self.adaptive_step = sgd_theory, adaptive_step
        self.extra: dict = {}
        self.problem = problem = self._prepare_problem(problem)
        self.n, self.d = int(problem.n), int(problem.d)
        self.k = check_k(k, self.d) if self.compresses else self.d
        self.bits_mode = bits
        self.bits_per_round = self._bits_per_round(bits_per_value(bits, self.d))
        self._set_participation(p, participation)
        self.gamma, self.gamma_rule = choose_gamma(
            gamma, gamma_mult,
            lambda am: self.theory_step(problem, am, k=self.k, p=p,
                                        participation=participation,
                                        **({"batch": batch, "sgd_theory": sgd_theory}
                                           if self.stochastic else {})))

    # ------------------------------------------------------------ per-method hooks

    def _prepare_problem(self, problem):
        """The problem the method runs on (the given one; cloned by EF21-clone)."""
        return problem

    def _bits_per_round(self, bits_per_value: int) -> float:
        """Bits of one client's message: ``k`` values of ``bits_per_value`` bits."""
        return float(self.k * bits_per_value)

    def _set_participation(self, p, participation) -> None:
        """Every client takes part in every round: ``p`` and ``participation`` are
        not used."""

    @classmethod
    def theory_step(cls, problem, am: bool, *, k, p=None,
                    participation="independent") -> tuple[float, str]:
        """The theory step size of the method on ``problem``.

        EF21 and its weighted form (and EF14, as a heuristic):
        ``1/(L + L_AM xi(alpha))`` with ``am``, else ``1/(L + L_QM xi(alpha))``, with
        ``alpha = k/d`` of TopK (docs/maths.rst, "Step sizes"); the SGD and PP forms
        override it.

        Parameters
        ----------
        problem : Problem
            Has ``L``, ``L_i``, ``n``, ``d``.
        am : bool
            The ``theory-am`` rule (else ``theory-qm``).
        k : int
            TopK parameter.
        p, participation
            Used by the partial-participation methods only.

        Returns
        -------
        gamma : float
        how : str
            The formula, for the trace's ``gamma_rule``.
        """
        L, L_i = float(problem.L), np.asarray(problem.L_i, dtype=np.float64)
        alpha = theory.topk_alpha(k, problem.d)
        fn = theory.gamma_am if am else theory.gamma_qm
        how = "1/(L + L_AM xi)" if am else "1/(L + L_QM xi)"
        return fn(L, L_i, alpha), how + cls.step_note

    # ----------------------------------------------------------------- the rounds

    def start(self, x0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Set the state from the client gradients at ``x0``.

        Parameters
        ----------
        x0 : ndarray, shape (d,), float64
            The starting point (not modified).
        rng : numpy.random.Generator
            The run's generator, kept for the minibatches and participants of the
            later rounds (deterministic methods do not use it).

        Returns
        -------
        ndarray, shape (d,), float64
            The mean of the client gradients at ``x0``.
        """
        raise NotImplementedError

    def step(self, x: np.ndarray) -> np.ndarray:
        """The next iterate, a new array (``x`` is not modified)."""
        raise NotImplementedError

    def round(self, x: np.ndarray) -> Round:
        """The clients' and the server's work at the new iterate ``x``.

        Returns
        -------
        Round
            The gradient of ``f`` at ``x`` and the bits sent per client.
        """
        raise NotImplementedError

    # ------------------------------------------------------ the clients, in chunks

    def _ranged(self) -> bool:
        """Whether the problem computes ranges of clients (``lo``, ``hi``, ``out``:
        :class:`~ef21fast.methods.problems.Problem`); else a round takes all clients
        at once."""
        from ef21fast.methods.problems import Problem

        return isinstance(self.problem, Problem)

    def _chunks(self, x, draw=None):
        """Yield ``(lo, hi, G)`` over consecutive ranges of clients in order, ``G``
        the ``(hi - lo, d)`` gradients of clients ``lo:hi`` at ``x`` (minibatch ones
        from ``draw``, a :class:`~ef21fast.methods.client_range.Minibatches`), a view
        of one buffer of :func:`chunk_rows` clients that the next chunk overwrites.
        Afterwards ``self._chunk_mean`` is ``mean_rows`` of all the gradients, to the
        bit (without ``draw``)."""
        p, n, d = self.problem, self.n, self.d
        self._chunk_mean = None  # the last round's mean is not held through this one
        if not self._ranged():
            G = (p.client_grads(x) if draw is None
                 else p.client_stochastic_grads(x, self.batch, draw))
            yield 0, n, G
            self._chunk_mean = None if draw is not None else mean_rows(G)
            return
        dtype = np.dtype(p.dtype)
        rows = chunk_rows(n, d, dtype.itemsize)
        spare = _spare_row(rows, d, dtype.itemsize)
        buf = getattr(self, "_buf", None)
        if buf is None or buf.shape != (rows + spare, d) or buf.dtype != dtype:
            self._buf = None  # not two buffers at once
            self._buf = buf = np.empty((rows + spare, d), dtype=dtype)
        acc = None
        x = p.oracle_point(x)  # (the ranges' oracles then take x without comparing it)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            G = buf[spare:spare + hi - lo]
            if draw is None:
                p.client_grads(x, lo, hi, out=G)
            else:
                p.client_stochastic_grads(x, self.batch, draw, lo, hi, out=G)
            yield lo, hi, G
            if draw is None:  # after the consumer: it may not have read G yet
                acc = _add_rows(acc, buf[:spare + hi - lo], spare)
        if acc is not None:
            acc /= n  # in place: the bits of acc / n
        self._chunk_mean = acc

    def _chunk_grads_into(self, x, out) -> np.ndarray:
        """Write the client gradients at ``x`` into ``out`` ((n, d), C-contiguous,
        the problem's dtype) range by range; return their ``mean_rows``."""
        p, n = self.problem, self.n
        if not self._ranged():
            G = p.client_grads(x)
            out[...] = G
            return mean_rows(G)
        rows = chunk_rows(n, self.d, out.dtype.itemsize)
        spare = _spare_row(rows, self.d, 8)
        X = np.empty((spare + rows, self.d)) if spare else None
        acc = None
        x = p.oracle_point(x)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            p.client_grads(x, lo, hi, out=out[lo:hi])
            if spare:
                X[1:1 + hi - lo] = out[lo:hi]
                acc = _add_rows(acc, X[:1 + hi - lo])
            else:
                acc = _add_rows(acc, out[lo:hi], 0)
        acc /= n
        return acc

    def __repr__(self):
        return (f"{type(self).__name__}(n={self.n}, d={self.d}, k={self.k}, "
                f"gamma={self.gamma:.6g}, backend={self.backend!r})")
