"""EF21 on the cloned problem: :class:`ClonedProblem` (docs/maths.rst, "Methods"),
exported by :mod:`ef21fast.methods.problems`."""

from __future__ import annotations

import numpy as np

from ef21fast.methods.client_range import Minibatches, check_out, check_range
from ef21fast.methods.problems import Problem, _check_batch

__all__ = ["ClonedProblem"]


class ClonedProblem(Problem):
    """EF21 on the cloned problem (docs/maths.rst, "Methods").

    Client i of ``base`` is replaced by ``N_i`` clones; with ``N = sum N_i`` clone
    (i, j) holds ``f_ij = (N / (n N_i)) f_i``, so ``f = (1/N) sum_ij f_ij`` is the base
    objective. Clone constants are ``N L_i / (n N_i)``; with the default counts
    ``N_i = ceil(L_i / L_AM)`` (:func:`ef21fast.methods.theory.clone_counts`) each is
    ``<= 2 L_AM``.

    Parameters
    ----------
    base : Problem
    counts : array_like of int, shape (base.n,), optional
        N_i >= 1; default :func:`ef21fast.methods.theory.clone_counts` of ``base.L_i``.

    Attributes
    ----------
    n : int
        N, the number of clones.
    source : ndarray, shape (N,), int64
        The base client of each clone (clones of a client are consecutive).
    scale : ndarray, shape (N,), float64
        ``N / (n N_i)`` of each clone.
    L : float
        ``base.L`` (the objective is the same).
    L_i : ndarray, shape (N,)
        ``N L_i / (n N_i)`` per clone.
    m_i : ndarray, shape (N,), int64
        Samples of each clone's base client.
    """

    kind = "cloned"

    def __init__(self, base: Problem, counts=None):
        if not isinstance(base, Problem) or isinstance(base, ClonedProblem):
            raise TypeError("base must be a (non-cloned) Problem")
        if counts is None:
            from ef21fast.methods.theory import clone_counts

            counts = clone_counts(base.L_i)
        counts = np.asarray(counts)
        if counts.shape != (base.n,) or counts.dtype.kind not in "iu":
            raise ValueError(f"counts must be {base.n} integers, got {counts.dtype} "
                             f"{counts.shape}")
        if np.any(counts < 1):
            raise ValueError("counts must be >= 1")
        counts = counts.astype(np.int64)
        self.base = base
        self.counts = counts
        self.data = base.data
        self.lam = base.lam
        self.regulariser = base.regulariser
        self.dtype = base.dtype
        self.d = base.d
        N = int(counts.sum())
        self.n = N
        self.source = np.repeat(np.arange(base.n, dtype=np.int64), counts)
        per_client = N / (base.n * counts.astype(np.float64))
        self.scale = per_client[self.source]
        self.L = base.L
        self.L_i = (base.L_i * per_client)[self.source]
        self.m_i = base.m_i[self.source]
        self.name = f"{base.name}-cloned"

    def _x(self, x):
        return self.base._x(x)

    def client_losses(self, x) -> np.ndarray:
        """f_ij(x) for every clone, shape (N,)."""
        return self.base.client_losses(x)[self.source] * self.scale

    def loss(self, x) -> float:
        """f(x), the base objective."""
        return self.base.loss(x)

    def grad(self, x) -> np.ndarray:
        """∇f(x), the base gradient, shape (d,)."""
        return self.base.grad(x)

    def client_grads(self, x, lo=0, hi=None, out=None) -> np.ndarray:
        """∇f_ij(x) of clones ``lo:hi`` (all by default), shape (hi - lo, d): the
        base's rows of their clients, scaled, repeated. ``lo``, ``hi``, ``out`` and
        the bits of a range as :meth:`Problem.client_grads`."""
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        if out is not None:
            check_out(out, hi - lo, self.d, self.dtype)
        src = self.source[lo:hi]
        b0, b1 = (int(src[0]), int(src[-1]) + 1) if src.size else (0, 0)
        G = self.base.client_grads(x, b0, b1)
        G *= (self.scale[np.cumsum(self.counts) - 1])[b0:b1, None]
        if out is None:
            return np.take(G, src - b0, axis=0)
        return np.take(G, src - b0, axis=0, out=out)

    def draw_minibatches(self, batch, rng) -> Minibatches:
        """The minibatches of every clone for one round (:meth:`Problem.draw_minibatches`)."""
        return self.base._draw(self.source, _check_batch(batch, self.m_i), rng)

    def client_stochastic_grads(self, x, batch, rng, lo=0, hi=None,
                                out=None) -> np.ndarray:
        """Minibatch gradients of clones ``lo:hi`` (each clone draws its own minibatch
        of its base client's samples, for every clone at once), scaled by
        N/(n N_i); shape (hi - lo, d). ``rng``: a Generator or a draw of
        :meth:`draw_minibatches`; the rest as :meth:`Problem.client_stochastic_grads`."""
        x = self._x(x)
        lo, hi = check_range(lo, hi, self.n)
        sizes = _check_batch(batch, self.m_i)
        G = self.base._grads_of(x, self.base._drawn(rng, self.source, sizes), lo, hi, out)
        G *= self.scale[lo:hi, None]
        return G

    def __repr__(self):
        return (f"ClonedProblem(base={self.base!r}, N={self.n}, "
                f"L_AM={float(np.mean(self.L_i)):.6g})")
