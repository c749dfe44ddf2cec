"""What every method of the EF21 family is: options checked once, a state, one round.

A method object is built for one run on one problem. Its constructor checks the
options (backend, ``k``, bit accounting, participation, step size) and fixes the step
size; the run loop (:func:`ef21fast.methods.algorithms.run`) then calls

* :meth:`Method.start` once, at the starting point ``x_0``: the state from the first
  client gradients, and the gradient estimate of row 0 of the trace;
* :meth:`Method.step` for the step from ``x_t`` to ``x_{t+1}``;
* :meth:`Method.round` at ``x_{t+1}``: the client gradients there, what the clients
  send and the server's update, the gradient estimate and the bits of the round.

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

__all__ = ["Method", "Round", "mean_rows"]


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

    def __repr__(self):
        return (f"{type(self).__name__}(n={self.n}, d={self.d}, k={self.k}, "
                f"gamma={self.gamma:.6g}, backend={self.backend!r})")
