"""Client ranges of the problems' oracles: argument checks, and the minibatches of one
stochastic round drawn once for all its ranges.

:meth:`ef21fast.methods.problems.Problem.client_grads` and
:meth:`~ef21fast.methods.problems.Problem.client_stochastic_grads` take ``lo``, ``hi``
and ``out`` so that a method can compute the clients of a round in chunks, with a
bounded buffer, and a process the clients of its block only; the rows they return are
bit for bit those rows of the call over all clients.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_range", "check_out", "Minibatches"]


def check_range(lo, hi, n: int) -> tuple[int, int]:
    """``(lo, hi)`` as ints, ``hi=None`` meaning ``n``; ValueError unless
    ``0 <= lo <= hi <= n``."""
    if hi is None:
        hi = n
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    lo, hi = int(lo), int(hi)
    if not 0 <= lo <= hi <= n:
        raise ValueError(f"the client range must satisfy 0 <= lo <= hi <= n = {n}, "
                         f"got lo={lo}, hi={hi}")
    return lo, hi


def check_out(out, rows: int, d: int, dtype) -> None:
    """ValueError unless ``out`` is a writeable C-contiguous ndarray of shape
    ``(rows, d)`` and dtype ``dtype``."""
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != (rows, d) or out.dtype != dtype:
        raise ValueError(f"out must have shape ({rows}, {d}) and dtype {np.dtype(dtype)}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writeable")


class Minibatches:
    """The minibatches of one stochastic round, drawn for every client at once.

    Built by :meth:`ef21fast.methods.problems.Problem.draw_minibatches`; pass it as
    the ``rng`` of ``client_stochastic_grads`` to compute the gradients of a range of
    clients from the same draw as the call over all clients. It keeps the margins of
    the sampled rows at the last ``x`` (computed over all of them as the full call
    does), so that the ranges of one round share one product.

    Attributes
    ----------
    src : ndarray, shape (V,), int64
        Client (of the problem's data) that each of the V virtual clients samples.
    sizes : ndarray, shape (V,), int64
        Samples of each virtual client.
    rows : ndarray, shape (sum(sizes),), int64
        The sampled rows of the data, grouped by virtual client.
    indptr : ndarray, shape (V + 1,), int64
        Virtual client v's rows are ``rows[indptr[v]:indptr[v + 1]]``.
    """

    def __init__(self, owner, src, sizes, rows, indptr):
        self._owner = owner  # the problem that drew them
        self.src, self.sizes, self.rows, self.indptr = src, sizes, rows, indptr
        self._slopes = None  # (x, per-sample slopes of rows at x)

    def slopes(self, x, compute):
        """Per-sample slopes of ``rows`` at ``x``, ``compute(x)`` on a miss."""
        last = self._slopes
        if last is None or not np.array_equal(last[0], x):
            self._slopes = last = (x.copy(), compute(x))
        return last[1]
