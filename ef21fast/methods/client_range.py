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

__all__ = ["check_range", "check_out", "Minibatches", "draw_minibatches", "minibatch_grads"]


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


def _check_batch(batch, m_i: np.ndarray) -> np.ndarray:
    n = m_i.size
    arr = np.asarray(batch)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f"
                                             and np.all(arr == np.floor(arr))):
        raise ValueError(f"batch must be an integer or an array of {n} integers")
    if arr.ndim == 0:
        arr = np.full(n, int(arr))
    elif arr.shape != (n,):
        raise ValueError(f"batch must be an integer or have shape ({n},), "
                         f"got shape {arr.shape}")
    arr = arr.astype(np.int64)
    if np.any(arr < 1):
        raise ValueError("batch sizes must be >= 1")
    return np.minimum(arr, m_i)


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


def _errstate():
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def draw_minibatches(problem, src, sizes, rng) -> Minibatches:
    """The minibatches of V virtual clients of ``problem`` (a
    :class:`~ef21fast.methods.problems.Problem`): virtual client v samples
    ``sizes[v]`` rows of client ``src[v]`` without replacement, all in one batched draw
    of ``sum(m_i[src])`` uniform numbers from ``rng`` (no loop over clients)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    V = src.size
    m_src = problem.m_i[src]
    seg_start = np.concatenate(([0], np.cumsum(m_src)))
    total = int(seg_start[-1])
    seg = np.repeat(np.arange(V), m_src)
    # A uniformly random order inside each segment: sort by seg + u/2, u ~ U[0, 1)
    # (u/2 < 1/2 keeps the segments apart after rounding; ties have probability
    # ~2^-40 and are broken by position).
    order = np.argsort(seg + 0.5 * rng.random(total), kind="stable")
    rank = np.arange(total) - seg_start[seg]
    chosen = order[rank < sizes[seg]]  # positions, grouped by virtual client
    vc = seg[chosen]
    rows = problem._offsets[src[vc]] + (chosen - seg_start[vc])
    return Minibatches(problem, src, sizes, rows, np.concatenate(([0], np.cumsum(sizes))))


def minibatch_grads(problem, x, mb: Minibatches, lo, hi, out) -> np.ndarray:
    """The minibatch gradients of virtual clients ``lo:hi`` of the draw ``mb`` at x,
    plus the regulariser's gradient; ``out`` as ``Problem.client_grads``. The margins
    of all the draw's rows come from one product (kept in ``mb`` for the next range),
    and each row's weighted sum runs over its own samples in order, so a range's rows
    are those of the call over all virtual clients, bit for bit."""
    import scipy.sparse as sp

    if out is not None:
        check_out(out, hi - lo, problem.d, problem.dtype)
    A, rows, indptr = problem._A, mb.rows, mb.indptr

    def slopes(x):  # over all the sampled rows, as one product
        with _errstate():
            if rows.size * 2 < A.shape[0]:
                z = A[rows] @ x
            else:
                z = (A @ x)[rows]
            return problem._sample_slopes(z, problem._b[rows])

    s = mb.slopes(x, slopes)
    p0, p1 = int(indptr[lo]), int(indptr[hi])
    sizes = mb.sizes[lo:hi]
    with _errstate():
        vc = np.repeat(np.arange(hi - lo), sizes)
        W = sp.csr_matrix((s[p0:p1] / sizes[vc], rows[p0:p1], indptr[lo:hi + 1] - p0),
                          shape=(hi - lo, A.shape[0]))
        G = W @ A
        G = G.toarray() if sp.issparse(G) else np.asarray(G)
        G += problem._reg_rows(x, mb.src[lo:hi])
    if out is None:
        return np.ascontiguousarray(G, dtype=problem.dtype)
    out[...] = G
    return out
