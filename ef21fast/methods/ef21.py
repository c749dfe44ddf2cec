"""EF21 and its forms: weighted, stochastic gradients, partial participation, cloned.

Every form keeps the same state, updated the same way: client i holds ``g_i``, the
server holds their weighted sum ``g``; a round is a batched ``ef21_step`` over the
client gradients of each chunk of clients (or over the rows of the clients that take
part), computed into one buffer of
:func:`~ef21fast.methods.method.chunk_rows` clients, and a ``scatter_add`` of the
messages into ``g``, in client order (the same bits as one call over all clients). The forms differ only in
the weights (:class:`EF21W`), in which gradients the clients see
(:class:`EF21SGD`), in who takes part (:class:`EF21PP`) and in the problem
(:class:`EF21Clone`). The maths is in ``docs/maths.rst`` ("Methods", "Step sizes",
"Bit accounting").
"""

from __future__ import annotations

import numpy as np

from ef21fast import api
from ef21fast.methods import rare_features, theory, theory_sgd
from ef21fast.methods.method import (Method, Round, descent_step, mean_rows,
                                     weighted_row_sum)
from ef21fast.methods.options import batch_sizes, participation_probs
from ef21fast.methods.problems import ClonedProblem

__all__ = ["EF21", "EF21W", "EF21SGD", "EF21WSGD", "EF21PP", "EF21WPP", "EF21Clone"]


class EF21(Method):
    """EF21 with TopK (``"ef21"``).

    The state starts at the client gradients at ``x_0``: ``g_i = grad f_i(x_0)`` and
    ``g = (1/n) sum_i g_i``. Each round::

        x_{t+1} = x_t - gamma * g
        c_i = TopK(grad f_i(x_{t+1}) - g_i)          (sent by client i)
        g_i <- g_i + c_i
        g   <- g + (1/n) sum_i c_i                    (server)

    so ``g`` stays the mean of the ``g_i``. The theory rules give
    ``1/(L + L_QM xi(alpha))`` (``theory-qm``) and ``1/(L + L_AM xi(alpha))``
    (``theory-am``), ``alpha = k/d``
    (:meth:`~ef21fast.methods.method.Method.theory_step`). A client sends ``k``
    values per round; the gradients at ``x_0`` are not counted.

    With ``adaptive_step=True`` (off by default) the step of each round is the
    rare-features adaptive one (docs/maths.rst, "Rare features")::

        gamma_t = gamma_mult / (L + min(L_QM, sqrt(q_t) max_i L_i) sqrt(q_t) xi(alpha)),
        q_t = ||mean_i e_i||^2 / mean_i ||e_i||^2,   e_i = g_i - grad f_i(x_t),

    with ``q = 1`` before the first round and whenever every ``e_i`` is zero; ``gamma``
    must then be a theory rule (it is replaced), the trace's ``gamma`` is the first
    step, and ``extra`` records ``gamma_min``, ``gamma_max`` and ``gamma_last``.

    Parameters
    ----------
    problem : Problem
    options
        The keyword options of :class:`~ef21fast.methods.method.Method`.

    Attributes
    ----------
    weights : ndarray, shape (n,), or None
        The server's weights ``w_i`` (None: ``1/n`` each).
    scale : ndarray, shape (n,), or None
        ``1/(n w_i)``, by which client i multiplies its gradient (None: 1).
    state : ndarray, shape (n, d), float64
        The clients' ``g_i`` (after :meth:`start`).
    g : ndarray, shape (d,), float64
        The server's ``g`` (after :meth:`start`).
    """

    name = "ef21"
    #: Whether the server weighs client i by ``w_i = L_i / sum_j L_j`` (EF21-W).
    weighted = False
    adaptive_ok = True

    def __init__(self, problem, **options):
        super().__init__(problem, **options)
        if self.adaptive_step:
            self._init_adaptive(options.get("gamma", "theory-am"),
                                options.get("gamma_mult", 1.0))
        if self.weighted:
            # As the state is computed: a zero L_i gives an infinite scale, no warning.
            with np.errstate(all="ignore"):
                L_i = np.asarray(self.problem.L_i, dtype=np.float64)
                self.weights = L_i / L_i.sum()
                self.scale = 1.0 / (self.n * self.weights)
            self._server_weights = self.weights
        else:
            self.weights = self.scale = None
            self._server_weights = 1.0 / self.n

    def _init_adaptive(self, gamma, gamma_mult) -> None:
        if not isinstance(gamma, str):
            raise ValueError(f"adaptive_step computes its own step size: gamma must be "
                             f"a theory rule, got {gamma!r}")
        self._adaptive = (float(self.problem.L),
                          np.asarray(self.problem.L_i, dtype=np.float64),
                          theory.topk_alpha(self.k, self.d), float(gamma_mult))
        self.gamma = self._adaptive_gamma(1.0)
        mult = "" if gamma_mult == 1 else f"{gamma_mult:g} x "
        self.gamma_rule = (f"{mult}rare-features adaptive (1/(L + min(L_QM, sqrt(q_t) "
                           f"max L_i) sqrt(q_t) xi)), q_0 = 1")
        self.extra.update(gamma_min=self.gamma, gamma_max=self.gamma,
                          gamma_last=self.gamma)

    def _adaptive_gamma(self, q: float) -> float:
        L, L_i, alpha, mult = self._adaptive
        return mult * rare_features.gamma_rare_adaptive(L, L_i, alpha, q)

    def _adapt(self, G) -> None:
        """The next step from the errors ``e_i = g_i - G_i`` of this round."""
        E = self.state - G
        den = float(np.einsum("ij,ij->", E, E)) / self.n
        e = E.mean(axis=0)
        q = float(e @ e) / den if den > 0 else 1.0
        self._gamma_t = g = self._adaptive_gamma(min(q, 1.0))
        ex = self.extra
        ex.update(gamma_min=min(ex["gamma_min"], g), gamma_max=max(ex["gamma_max"], g),
                  gamma_last=g)

    def start(self, x0, rng=None):
        self._rng = rng
        if self.adaptive_step:
            self._gamma_t = self.gamma
        if not self._ranged():
            return self._start_all(x0)
        # The gradients are written straight into the states, range by range.
        dtype = np.dtype(self.problem.dtype)
        self.state = S = np.empty((self.n, self.d), dtype=dtype)
        grad = self._chunk_grads_into(x0, S)
        if self.weighted:
            # g_i = grad f_i(x0) / (n w_i), rounded as ef21_step does.
            np.multiply(S, self.scale[:, None], out=S)
            g = weighted_row_sum(self.weights, S)
        else:
            g = grad  # the mean of the states, which are the gradients
        self.g = g.astype(dtype)  # the states' dtype (float32 problems), a new array
        return grad

    def _start_all(self, x0):
        """:meth:`start` from one call over all clients (a problem without ranges)."""
        G = self.problem.client_grads(x0)
        grad = mean_rows(G)
        self.state = np.array(G * self.scale[:, None] if self.weighted else G,
                              dtype=G.dtype, order="C", copy=True)
        g = (weighted_row_sum(self.weights, self.state) if self.weighted
             else mean_rows(self.state))
        self.g = g.astype(G.dtype, copy=False)
        return grad

    def step(self, x):
        if self.adaptive_step:
            return descent_step(x, self._gamma_t, self.g)
        return descent_step(x, self.gamma, self.g)

    def round(self, x):
        if self.adaptive_step:  # its q_t needs every e_i at once
            G = self.problem.client_grads(x)
            grad = mean_rows(G)
            self._exchange(G)
            self._adapt(G)
            return Round(grad, self.bits_per_round)
        for lo, hi, G in self._chunks(x):
            self._exchange_range(G, lo, hi)
        return Round(self._chunk_mean, self.bits_per_round)

    def _exchange_range(self, G, lo, hi, clients=None) -> None:
        """:meth:`_exchange` for the clients of ``lo:hi``, ``G`` holding their rows;
        ``clients``: the indices of those that take part (None: all of them)."""
        if clients is None and self._own_rows(G, lo, hi):
            # The method's own arrays, in the layout the kernels take: the calls of
            # ``api`` without their checks (a tenth of a small problem's round).
            step, scatter, scale, weights = self._kernels()
            idx, val = step(G, self.state[lo:hi], self.k,
                            None if scale is None else scale[lo:hi])
            scatter(self.g, idx, val, weights[lo:hi])
            return
        if clients is None:
            idx, val = api.ef21_step(G, self.state[lo:hi], self.k,
                                     None if self.scale is None else self.scale[lo:hi],
                                     backend=self.backend)
            api.scatter_add(self.g, idx, val,
                            weights=(self._server_weights[lo:hi] if self.weighted
                                     else self._server_weights),
                            backend=self.backend)
            return
        rows = self.state[clients]
        idx, val = api.ef21_step(G[clients - lo], rows, self.k,
                                 None if self.scale is None else self.scale[clients],
                                 backend=self.backend)
        self.state[clients] = rows
        api.scatter_add(self.g, idx, val,
                        weights=(self._server_weights[clients] if self.weighted
                                 else self._server_weights),
                        backend=self.backend)

    def _own_rows(self, G, lo, hi) -> bool:
        """Whether ``G`` is a C-contiguous ``(hi - lo, d)`` array of the states' dtype
        that shares no memory with the states (the rows of :meth:`_chunks`' buffer)."""
        S = self.state
        return (type(G) is np.ndarray and G.dtype == S.dtype and G.shape == (hi - lo, self.d)
                and G.flags.c_contiguous and not np.may_share_memory(G, S)
                and not np.may_share_memory(G, self.g))

    def _kernels(self):
        """``ef21_step`` and ``scatter_add`` of the method's backend, with the factors
        the API would pass them: ``scale`` and the server's weights as vectors of the
        states' dtype (per client), resolved once for the states' dtype."""
        fast = self.__dict__.get("_fast")
        if fast is None or fast[0] != self.state.dtype:
            from ef21fast import _validation as v
            from ef21fast.backends.registry import get_kernel

            dt = self.state.dtype
            fast = self._fast = (
                dt, get_kernel("ef21_step", self.backend),
                get_kernel("scatter_add", self.backend),
                v.row_vector("scale", self.scale, self.n, dt),
                v.row_vector("weights", self._server_weights, self.n, dt))
        return fast[1:]

    def _exchange(self, G, clients=None) -> None:
        """The clients compress ``G - g_i`` (``G`` scaled when weighted) and update
        their ``g_i``; the server adds the weighted messages to ``g``. ``clients``:
        indices of the clients that take part, ``G`` holding every client's row
        (None: all of them)."""
        self._exchange_range(G, 0, self.n, clients)


class EF21W(EF21):
    """Weighted EF21, EF21-W (``"ef21-w"``).

    With ``w_i = L_i / sum_j L_j``, client i works on ``grad f_i / (n w_i)``, whose
    smoothness constant is ``L_AM`` for every client::

        g_i = grad f_i(x_0) / (n w_i),   g = sum_i w_i g_i
        x_{t+1} = x_t - gamma * g
        c_i = TopK(grad f_i(x_{t+1}) / (n w_i) - g_i)
        g_i <- g_i + c_i,   g <- g + sum_i w_i c_i

    TopK is positively homogeneous, so the iterates are those of :class:`EF21` at the
    same ``gamma``, up to rounding; ``theory-am`` is EF21-W's own step size.
    """

    name = "ef21-w"
    weighted = True
    adaptive_ok = False


class EF21SGD(EF21):
    """EF21 with stochastic gradients, EF21-SGD (``"ef21-sgd"``).

    As :class:`EF21`, with ``grad f_i(x_{t+1})`` replaced in each round by a
    minibatch estimate: ``batch[i]`` of client i's samples, drawn without
    replacement from the run's generator. The state starts at the full gradients at
    ``x_0``, so the estimator starts without error. The trace's ``||grad f||^2`` uses
    the full gradient ``problem.grad``. The theory rules give the step of the
    stochastic analysis (docs/maths.rst, "Stochastic gradients";
    :func:`ef21fast.methods.theory_sgd.sgd_step`): ``1/(L + L_QM xi(alpha/2))``
    (``theory-qm``) or ``1/(L + L_AM xi(alpha/2))`` (``theory-am``), **derived**,
    for an estimator whose variance is bounded uniformly (``A_i = 0`` in
    :func:`ef21fast.methods.theory_sgd.minibatch_abc`: logistic regression), the
    deterministic formula when the variance is zero (full batches); ``extra``
    records the neighbourhood it reaches (``sgd_neighbourhood``). Where no such step
    is derived (``A_i > 0``: linear regression with minibatches; a problem without
    the constants) the rules give the deterministic EF21 formulas, as a default, and
    the rule says so. ``sgd_theory=True`` refuses those problems instead;
    ``sgd_theory=False`` gives the deterministic formulas everywhere (the behaviour
    before the stochastic step became the default).

    Parameters
    ----------
    problem : Problem
    options
        The keyword options of :class:`~ef21fast.methods.method.Method`;
        ``batch``: an int or ``(n,)`` ints (default 10% of each client's samples,
        at least 1; capped at ``m_i``).

    Attributes
    ----------
    batch : ndarray, shape (n,), int64
        The minibatch size of each client.
    """

    name = "ef21-sgd"
    stochastic = True
    adaptive_ok = False

    def __init__(self, problem, *, batch=None, **options):
        super().__init__(problem, batch=batch, **options)
        self.batch = batch_sizes(self.problem.m_i, batch)
        b = self.batch
        self.extra["batch"] = int(b[0]) if np.all(b == b[0]) else b
        gamma = options.get("gamma", "theory-am")
        if isinstance(gamma, str) and self.sgd_theory is not False:
            step = self._sgd_step(self.problem, gamma == "theory-am", self.k, self.batch,
                                  self.sgd_theory)
            if step is not None:
                self.extra["sgd_neighbourhood"] = step[1]

    @staticmethod
    def _sgd_step(problem, am, k, batch, strict):
        """``sgd_step`` on the problem's minibatch estimator, or None where no step
        is derived (an error instead when ``strict``)."""
        try:
            A, _, C = theory_sgd.minibatch_abc(problem, batch_sizes(problem.m_i, batch))
        except TypeError:
            if strict:
                raise ValueError(f"sgd_theory: no estimator constants for a "
                                 f"{problem.kind} problem; pass a numeric gamma") from None
            return None
        if np.any(A > 0):
            if strict:
                raise ValueError(f"sgd_theory: the minibatch estimator of {problem.kind} "
                                 f"has A_i > 0 (no uniform variance bound), for which no "
                                 f"step size is derived; pass a numeric gamma")
            return None
        return theory_sgd.sgd_step(float(problem.L), problem.L_i,
                                   theory.topk_alpha(k, problem.d), A, C, weighted=am)

    @classmethod
    def theory_step(cls, problem, am, *, k, p=None, participation="independent",
                    batch=None, sgd_theory=None):
        """The step of the stochastic analysis
        (:func:`ef21fast.methods.theory_sgd.sgd_step`) where it is derived, else
        (or with ``sgd_theory=False``) the deterministic EF21 formulas."""
        mean = "L_AM" if am else "L_QM"
        if sgd_theory is not False:
            step = cls._sgd_step(problem, am, k, batch, sgd_theory)
            if step is not None:
                if step[2]:
                    return step[0], f"1/(L + {mean} xi), SGD with zero variance"
                return step[0], f"1/(L + {mean} xi(alpha/2)), SGD (derived)"
            note = ", deterministic formula as default: no SGD step for this estimator"
        else:
            note = ", deterministic formula (sgd_theory off)"
        g, how = super().theory_step(problem, am, k=k, p=p, participation=participation)
        return g, how + note

    def round(self, x):
        draw = (self.problem.draw_minibatches(self.batch, self._rng) if self._ranged()
                else self._rng)
        for lo, hi, G in self._chunks(x, draw):
            self._exchange_range(G, lo, hi)
        return Round(np.asarray(self.problem.grad(x), dtype=np.float64),
                     self.bits_per_round)


class EF21WSGD(EF21SGD):
    """Weighted EF21 with stochastic gradients (``"ef21-w-sgd"``): the weights of
    :class:`EF21W`, the minibatches of :class:`EF21SGD`."""

    name = "ef21-w-sgd"
    weighted = True


class EF21PP(EF21):
    """EF21 with partial participation, EF21-PP (``"ef21-pp"``).

    In each round only a set ``S`` of clients computes, compresses and sends; the
    others keep their ``g_i``, and the server adds the messages it received::

        x_{t+1} = x_t - gamma * g
        for i in S:  c_i = TopK(grad f_i(x_{t+1}) - g_i);  g_i <- g_i + c_i
        g <- g + (1/n) sum_{i in S} c_i

    ``participation="independent"``: client i is in ``S`` with probability ``p_i``
    (``rng.random(n) < p``); ``"fixed"``: ``S`` is a uniform subset of
    ``max(1, round(p n))`` clients (``rng.choice(n, size, replace=False)``, sorted),
    as in the EF21 authors' scripts. The bits of a round are averaged over all
    clients: ``k`` values times ``|S| / n``. The theory rules give ``gamma_pp``
    (:func:`ef21fast.methods.theory.gamma_pp`) with ``(1/n) sum L_i^2``
    (``theory-qm``) or ``L_AM^2`` (``theory-am``, derived).

    Parameters
    ----------
    problem : Problem
    options
        The keyword options of :class:`~ef21fast.methods.method.Method`; ``p``
        (default 0.5) and ``participation`` as
        :func:`ef21fast.methods.options.participation_probs`.

    Attributes
    ----------
    probs : ndarray, shape (n,), float64
        Each client's probability of taking part.
    size : int or None
        The size of ``S`` with ``participation="fixed"``.
    """

    name = "ef21-pp"
    adaptive_ok = False

    def _set_participation(self, p, participation):
        self.probs, self.size = participation_probs(p, self.n, participation)
        probs = self.probs
        self.extra.update(participation=participation,
                          p=float(probs[0]) if np.all(probs == probs[0]) else probs)
        if self.size is not None:
            self.extra["subset_size"] = self.size

    @classmethod
    def theory_step(cls, problem, am, *, k, p=None, participation="independent"):
        """``gamma_pp`` (Bells & Whistles, Theorem 7) with the participation
        probabilities; ``am`` replaces ``(1/n) sum L_i^2`` by ``L_AM^2``."""
        L, L_i = float(problem.L), np.asarray(problem.L_i, dtype=np.float64)
        alpha = theory.topk_alpha(k, problem.d)
        probs, _ = participation_probs(p, problem.n, participation)
        pv = float(probs[0]) if np.all(probs == probs[0]) else probs
        g = theory.gamma_pp(L, L_i, alpha, pv, weighted=am)
        return g, ("gamma_pp, L_AM^2 (derived)" if am else "gamma_pp, (1/n) sum L_i^2")

    def round(self, x):
        S = self.participants()  # (the gradients take nothing from the generator)
        for lo, hi, G in self._chunks(x):
            mine = S[np.searchsorted(S, lo):np.searchsorted(S, hi)]
            if mine.size:
                self._exchange_range(G, lo, hi, mine)
        return Round(self._chunk_mean, self.bits_per_round * S.size / self.n)

    def participants(self) -> np.ndarray:
        """Draw the clients of a round from the run's generator: sorted int64
        indices."""
        if self.size is None:
            return np.flatnonzero(self._rng.random(self.n) < self.probs)
        return np.sort(self._rng.choice(self.n, size=self.size, replace=False))


class EF21WPP(EF21PP):
    """Weighted EF21 with partial participation (``"ef21-w-pp"``): the weights of
    :class:`EF21W`, the participation of :class:`EF21PP` (the server adds
    ``w_i c_i`` for the clients in ``S``)."""

    name = "ef21-w-pp"
    weighted = True


class EF21Clone(EF21):
    """EF21 on the cloned problem (``"ef21-clone"``).

    Client i is replaced by ``N_i = ceil(L_i / L_AM)`` clones
    (:func:`ef21fast.methods.theory.clone_counts`,
    :class:`ef21fast.methods.problems.ClonedProblem`), each with smoothness constant
    at most ``2 L_AM``; :class:`EF21` then runs on the ``N = sum_i N_i`` clones, so
    ``n`` becomes ``N``, the step size uses the clones' constants, and the bits are
    counted per clone. ``extra`` records ``clones`` (N) and ``base_clients`` (n).
    """

    name = "ef21-clone"
    adaptive_ok = False

    def _prepare_problem(self, problem):
        cloned = ClonedProblem(problem, theory.clone_counts(problem.L_i))
        self.extra.update(clones=int(cloned.n), base_clients=int(problem.n))
        return cloned
