"""The methods EF21 is compared with: gradient descent and classic error feedback.

Both are :class:`~ef21fast.methods.method.Method` objects, run by
:func:`ef21fast.methods.algorithms.run`; the maths is in ``docs/maths.rst``
("Methods", "Step sizes", "Bit accounting").
"""

from __future__ import annotations

import numpy as np

from ef21fast import api
from ef21fast.methods import theory
from ef21fast.methods.method import Method, Round, descent_step

__all__ = ["GD", "EF14"]


class GD(Method):
    """Distributed gradient descent, without compression (``"gd"``).

    Each round every client sends its full gradient and the server steps along their
    mean::

        x_{t+1} = x_t - gamma * (1/n) sum_i grad f_i(x_t)

    A client sends ``d`` values of 32 bits per round, under either bit accounting (a
    dense vector needs no indices). ``k`` is not used (the trace reports ``k = d``).
    Both theory rules give ``gamma = 1/L`` (alpha = 1, so xi(alpha) = 0).

    Parameters
    ----------
    problem : Problem
    options
        The keyword options of :class:`~ef21fast.methods.method.Method`.
    """

    name = "gd"
    compresses = False

    def _bits_per_round(self, bits_per_value: int) -> float:
        return 32.0 * self.d

    @classmethod
    def theory_step(cls, problem, am, *, k=None, p=None, participation="independent"):
        """``1/L`` under both rules (``k``, ``p``, ``participation`` are not used)."""
        L, L_i = float(problem.L), np.asarray(problem.L_i, dtype=np.float64)
        return theory.gamma_am(L, L_i, 1.0), "1/L"

    def start(self, x0, rng=None):
        return self.round(x0).grad

    def step(self, x):
        return descent_step(x, self.gamma, self._grad)

    def round(self, x):
        self._grad = None  # the step is made: not held through the round
        for _ in self._chunks(x):
            pass
        self._grad = self._chunk_mean
        return Round(self._grad, self.bits_per_round)


class EF14(Method):
    """Classic error feedback with TopK (``"ef14"``).

    Client i keeps an error ``e_i``, zero at the start. In each round it adds its
    scaled gradient to the error, sends the TopK of the result and keeps the rest::

        e_i <- e_i + gamma * grad f_i(x_t)
        c_i  = TopK(e_i);   e_i <- e_i - c_i
        x_{t+1} = x_t - (1/n) sum_i c_i

    The clients' part is a batched ``ef_step`` on the gradients of each chunk of
    clients, made in the round that computes them (so ``errors`` after
    :meth:`round` at ``x_t`` already holds the errors of the step from ``x_t``), the
    server's the ``scatter_add`` of their messages, in client order, into a copy of
    ``x_t`` in :meth:`step`. No theory step size is known
    for EF14 in this setting: the theory rules give the EF21 formulas
    (:meth:`~ef21fast.methods.method.Method.theory_step`), a heuristic so that
    EF14 runs at the same ``gamma``.

    Parameters
    ----------
    problem : Problem
    options
        The keyword options of :class:`~ef21fast.methods.method.Method`.

    Attributes
    ----------
    errors : ndarray, shape (n, d), the problem's dtype
        The clients' errors ``e_i`` (after :meth:`start`), updated by each round.
    """

    name = "ef14"
    step_note = ", EF21 formula as heuristic"

    def start(self, x0, rng=None):
        self.errors = np.zeros((self.n, self.d), dtype=getattr(self.problem, "dtype",
                                                               np.float64))
        return self.round(x0).grad

    def step(self, x):
        x_new = x.copy()
        for idx, val in self._messages:
            api.scatter_add(x_new, idx, val.astype(x_new.dtype, copy=False),
                            weights=-1.0 / self.n, backend=self.backend)
        return x_new

    def round(self, x):
        self._messages = []
        for lo, hi, G in self._chunks(x):
            if G.dtype != self.errors.dtype:  # a problem without a dtype attribute
                self.errors = self.errors.astype(G.dtype)
            self._messages.append(api.ef_step(G, self.errors[lo:hi], self.k, lr=self.gamma,
                                              backend=self.backend))
        return Round(self._chunk_mean, self.bits_per_round)
