"""Largest eigenvalues of Gram matrices, for the smoothness constants of the problems.

:func:`lmax_gram` gives ``lambda_max(B^T B)`` of one dense or sparse matrix,
:func:`client_lmax` the same for every client's block of rows at once (docs/maths.rst,
"Problems": the constants ``L_i`` and ``L``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lmax_gram", "client_lmax", "single_threaded_blas"]

# Gram matrices of at most this side are formed densely for lambda_max; larger ones use
# ARPACK (scipy.sparse.linalg.eigsh) on the implicit product.
_DENSE_GRAM_MAX = 2048
# Elements per chunk when client blocks are densified for a batched eigvalsh.
_CHUNK_ELEMS = 1 << 23


def single_threaded_blas():
    """Limit BLAS/LAPACK to one thread (threadpoolctl, shipped with scikit-learn) for
    batches of tiny dense problems, where threads only add synchronisation; a no-op
    without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ------------------------------------------------------------------ lambda_max helpers

def lmax_gram(B) -> float:
    """lambda_max(B^T B) = sigma_max(B)^2 for a dense or sparse (p, d) matrix B."""
    import scipy.sparse as sp

    p, d = B.shape
    if p == 0 or d == 0:
        return 0.0
    k = min(p, d)
    if k <= _DENSE_GRAM_MAX:
        if sp.issparse(B):
            G = (B @ B.T) if p <= d else (B.T @ B)
            G = G.toarray()
        else:
            G = (B @ B.T) if p <= d else (B.T @ B)
        return max(float(np.linalg.eigvalsh(G)[-1]), 0.0)
    from scipy.sparse.linalg import LinearOperator, eigsh

    if p <= d:
        op = LinearOperator((p, p), matvec=lambda v: B @ (B.T @ v), dtype=np.float64)
    else:
        op = LinearOperator((d, d), matvec=lambda v: B.T @ (B @ v), dtype=np.float64)
    val = eigsh(op, k=1, which="LA", v0=np.ones(op.shape[0]), return_eigenvectors=False)
    return max(float(val[0]), 0.0)


def client_lmax(A, offsets: np.ndarray) -> np.ndarray:
    """lambda_max(A_i^T A_i) for every client, shape (n,).

    Clients of equal size are densified together (in chunks) and their small Gram
    matrices (m_i x m_i or d x d, whichever is smaller) go through one batched
    ``np.linalg.eigvalsh``; clients too large for that use :func:`lmax_gram`.
    """
    import scipy.sparse as sp

    sparse = sp.issparse(A)
    d = A.shape[1]
    m_i = np.diff(offsets)
    out = np.empty(m_i.size)
    for size in np.unique(m_i):
        size = int(size)
        clients = np.flatnonzero(m_i == size)
        k = min(size, d)
        if k > _DENSE_GRAM_MAX or size * d > _CHUNK_ELEMS:
            for i in clients:
                out[i] = lmax_gram(A[offsets[i]:offsets[i + 1]])
            continue
        per_chunk = max(1, _CHUNK_ELEMS // max(size * d + k * k, 1))
        for c0 in range(0, clients.size, per_chunk):
            cl = clients[c0:c0 + per_chunk]
            rows = (offsets[cl][:, None] + np.arange(size)).ravel()
            blk = A[rows]
            blk = (blk.toarray() if sparse else blk).reshape(cl.size, size, d)
            if size <= d:
                G = blk @ blk.transpose(0, 2, 1)
            else:
                G = blk.transpose(0, 2, 1) @ blk
            out[cl] = np.linalg.eigvalsh(G)[:, -1]
    return np.maximum(out, 0.0)
