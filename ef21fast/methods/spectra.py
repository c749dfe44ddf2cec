"""Largest eigenvalues of Gram matrices, for the smoothness constants of the problems.

:func:`lmax_gram` gives ``lambda_max(B^T B)`` of one dense or sparse matrix,
:func:`client_lmax` the same for every client's block of rows at once (docs/maths.rst,
"Problems": the constants ``L_i`` and ``L``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lmax_gram", "client_lmax", "single_threaded_blas", "EIGSH_TOL"]

# Gram matrices of at most this side are formed densely for lambda_max; larger ones use
# ARPACK (scipy.sparse.linalg.eigsh) on the implicit product.
_DENSE_GRAM_MAX = 2048
# Clients of more elements (m_i d) than this go through lmax_gram one by one.
_CLIENT_DENSE_MAX = 1 << 23
# Elements per chunk when client blocks are densified for a batched eigvalsh (1 MB of
# float64: the set-up stays near the size of the data; a client's eigenvalue does not
# depend on the chunk).
_CHUNK_ELEMS = 1 << 17
# Stored values per block of rows summed into a tall Gram matrix (a sparse block costs
# about 3 copies of itself in the product).
_GRAM_BLOCK = 1 << 15
#: Relative tolerance of the ARPACK path of :func:`lmax_gram` (Gram matrices of side
#: above 2048): ``||G v - theta v|| <= EIGSH_TOL * theta``.
EIGSH_TOL = 1e-10


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

def lmax_gram(B, row_weights=None) -> float:
    """lambda_max(B^T B) = sigma_max(B)^2 for a dense or sparse (p, d) matrix B, or of
    ``diag(row_weights) B`` when ``row_weights`` (shape (p,)) is given.

    The smaller Gram matrix (p x p or d x d) is formed and solved densely
    (``np.linalg.eigvalsh``, exact to rounding) when its side is at most 2048, the
    d x d one of a tall B summed over blocks of rows (no copy of B is made);
    beyond, ARPACK (``scipy.sparse.linalg.eigsh``, Lanczos, start vector of ones) works
    on the implicit product, without forming the Gram matrix or a weighted copy of B,
    to the relative tolerance :data:`EIGSH_TOL`: the Ritz value theta it returns has
    ``||G v - theta v|| <= EIGSH_TOL * theta`` for its unit Ritz vector v, so it is
    within ``EIGSH_TOL * theta`` of an eigenvalue of the Gram matrix G
    (docs/maths.rst, "Problems").
    """
    import scipy.sparse as sp

    p, d = B.shape
    if p == 0 or d == 0:
        return 0.0
    k = min(p, d)
    if k <= _DENSE_GRAM_MAX and p > d:
        return max(float(np.linalg.eigvalsh(_tall_gram(B, row_weights))[-1]), 0.0)
    if k <= _DENSE_GRAM_MAX:
        if row_weights is not None:
            B = sp.diags(row_weights) @ B if sp.issparse(B) else B * row_weights[:, None]
        G = B @ B.T
        if sp.issparse(G):
            G = G.toarray()
        return max(float(np.linalg.eigvalsh(G)[-1]), 0.0)
    from scipy.sparse.linalg import LinearOperator, eigsh

    w = (np.ones(p) if row_weights is None
         else np.asarray(row_weights, dtype=np.float64))
    w2 = w * w
    BT = B.T
    if p <= d:  # G = W B B^T W, of side p
        op = LinearOperator((p, p), matvec=lambda v: w * (B @ (BT @ (w * v.ravel()))),
                            dtype=np.float64)
    else:  # G = B^T W^2 B, of side d
        op = LinearOperator((d, d), matvec=lambda v: BT @ (w2 * (B @ v.ravel())),
                            dtype=np.float64)
    val = eigsh(op, k=1, which="LA", v0=np.ones(op.shape[0]), tol=EIGSH_TOL,
                return_eigenvectors=False)
    return max(float(val[0]), 0.0)


def _tall_gram(B, row_weights=None) -> np.ndarray:
    """``B^T W^2 B`` (d x d, float64) of a (p, d) matrix B with p > d, W =
    ``diag(row_weights)`` (identity when None), summed over blocks of rows of about
    :data:`_GRAM_BLOCK` stored values: neither a weighted copy of B nor a transposed
    one is made (the sum's rounding depends on the blocks, not on the data's size)."""
    import scipy.sparse as sp

    p, d = B.shape
    sparse = sp.issparse(B)
    stored = B.nnz if sparse else B.size
    rows = max(1, int(_GRAM_BLOCK * p // max(stored, 1)))
    G = np.zeros((d, d))
    for r0 in range(0, p, rows):
        blk = B[r0:r0 + rows]
        if row_weights is not None:
            w = np.asarray(row_weights[r0:r0 + rows], dtype=np.float64)
            blk = (sp.diags(w) @ blk) if sparse else blk * w[:, None]
        part = blk.T @ blk
        G += part.toarray() if sparse else part
    return G


def client_lmax(A, offsets: np.ndarray) -> np.ndarray:
    """lambda_max(A_i^T A_i) for every client, shape (n,).

    Clients of equal size are densified together (in chunks of about 1 MB) and their
    small Gram matrices (m_i x m_i or d x d, whichever is smaller) go through one
    batched ``np.linalg.eigvalsh``; clients too large for that (on sparse data: larger
    than a chunk) use :func:`lmax_gram`.
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
        # a sparse client larger than a chunk: its own Gram by lmax_gram's sparse
        # blocks (densified alone, it would cost its dense size, and a BLAS product
        # whose work buffers stay resident for the rest of the process: 0.8 MB for
        # a9a's last client of 2564 rows)
        if (k > _DENSE_GRAM_MAX or size * d > _CLIENT_DENSE_MAX
                or (sparse and size * d > _CHUNK_ELEMS)):
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
