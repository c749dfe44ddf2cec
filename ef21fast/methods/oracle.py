"""The fused C oracle of the dense GLM problems (:mod:`ef21fast.methods.problems`).

Not a kernel of the registry: the accelerated client-gradient pass that
:class:`~ef21fast.methods.problems.Problem` uses on dense float64 data.
"""

from __future__ import annotations

import numpy as np

from ef21fast.backends import c as _c

__all__ = ["GLM_KINDS", "glm_client_grads"]

#: ``kind`` codes of :func:`glm_client_grads`.
GLM_KINDS = {"logreg": 0, "linreg": 1}


def glm_client_grads(A, b, offsets, x, reg, kind):
    """Every client's gradient of a dense GLM problem in one fused pass (not a kernel
    of the registry: the accelerated oracle of :mod:`ef21fast.problems`).

    Parameters
    ----------
    A : ndarray of float64, shape (m, d), C-contiguous
    b : ndarray of float64, shape (m,), C-contiguous
    offsets : ndarray of int64, shape (n + 1,)
        Client i owns rows ``offsets[i]:offsets[i + 1]`` (non-decreasing, within m).
    x, reg : ndarray of float64, shape (d,), C-contiguous
        The point, and the regulariser's gradient added to every row.
    kind : {"logreg", "linreg"}

    Returns
    -------
    ndarray of float64, shape (n, d)
        Row i: ``sum_j (s_j / m_i) a_j + reg`` over client i's rows, with
        ``s_j = -b_j expit(-b_j a_j.x)`` (logreg) or ``2 (a_j.x - b_j)`` (linreg). Equal
        to the NumPy oracle up to rounding; independent of the thread count.

    Raises
    ------
    ValueError
        On arrays of the wrong dtype, shape or layout, bad offsets, or an unknown kind.
    """
    if kind not in GLM_KINDS:
        raise ValueError(f"kind must be one of {sorted(GLM_KINDS)}, got {kind!r}")
    f64 = np.dtype(np.float64)
    for name, arr, ndim in (("A", A, 2), ("b", b, 1), ("x", x, 1), ("reg", reg, 1)):
        if not (isinstance(arr, np.ndarray) and arr.dtype == f64 and arr.ndim == ndim
                and arr.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous {ndim}-D float64 array")
    m, d = A.shape
    off = np.asarray(offsets)
    if off.dtype != np.int64 or off.ndim != 1 or off.size < 1 or not off.flags.c_contiguous:
        raise ValueError("offsets must be a C-contiguous 1-D int64 array of length n + 1")
    if b.shape != (m,) or x.shape != (d,) or reg.shape != (d,):
        raise ValueError(f"b must have shape ({m},) and x, reg shape ({d},)")
    if off[0] < 0 or off[-1] > m or np.any(np.diff(off) < 0):
        raise ValueError(f"offsets must be non-decreasing within [0, {m}]")
    n = off.size - 1
    G = np.empty((n, d))
    if n == 0 or d == 0:
        return G
    _c._note_team()
    _c._check(_c.lib.ef21_glm_client_grads(_c._ptr(A), _c._ptr(b), _c._ptr(off), n, d, _c._ptr(x),
                                     _c._ptr(reg), GLM_KINDS[kind], _c._ptr(G, True)))
    return G
