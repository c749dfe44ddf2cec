"""The EF21 papers' non-convex regulariser ``lam sum_k x_k^2 / (1 + x_k^2)``: its value,
terms and gradient, exact for every x (docs/maths.rst, "Problems"), as the problems of
:mod:`ef21fast.methods.problems` use them."""

from __future__ import annotations

import numpy as np

__all__ = ["_reg_value", "_reg_terms", "_reg_grad"]

#: coordinates per block of the blockwise evaluations (their temporaries: a few of this
#: size, not of d)
BLOCK = 1 << 15


def _errstate():
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def _value_terms(xb: np.ndarray) -> np.ndarray:
    """x^2 / (1 + x^2) of the coordinates xb, a new array (exact for every x: x^2 t for
    x^2 <= 1, 1 - t above, t = 1/(1 + x^2))."""
    x2 = xb * xb
    t = np.add(1.0, x2)
    np.divide(1.0, t, out=t)
    large = x2 <= 1.0
    np.logical_not(large, out=large)  # (NaN: 1 - t, as np.where did)
    np.multiply(x2, t, out=x2)
    np.subtract(1.0, t, out=t)
    np.copyto(x2, t, where=large)
    return x2


def _grad_terms(lam: float, xb: np.ndarray, out=None) -> np.ndarray:
    """2 lam (x t) t of the coordinates xb, t = 1/(1 + x^2), into ``out`` (or new)."""
    t = xb * xb
    np.add(1.0, t, out=t)
    np.divide(1.0, t, out=t)
    u = np.multiply(xb, t, out=out)
    np.multiply(2.0 * lam, u, out=u)
    u *= t
    return u


def _reg_value(lam: float, x: np.ndarray) -> float:
    """lam * sum_k x_k^2 / (1 + x_k^2), exact for every x (inf -> lam per coordinate).

    Beyond :data:`BLOCK` coordinates the terms are formed block by block into one (d,)
    array, then summed at once: the bits of one ``np.sum`` over all the terms (its
    pairwise order), with one (d,) temporary instead of the two and a mask of a
    whole-vector evaluation."""
    x = np.asarray(x)
    with _errstate():
        if x.ndim != 1 or x.shape[0] <= BLOCK:
            return lam * float(np.sum(_value_terms(x)))
        terms = np.empty(x.shape, dtype=np.result_type(x.dtype, 1.0))
        for lo in range(0, x.shape[0], BLOCK):
            terms[lo:lo + BLOCK] = _value_terms(x[lo:lo + BLOCK])
        return lam * float(np.sum(terms))


def _reg_terms(lam: float, x: np.ndarray) -> np.ndarray:
    """lam * x_k^2 / (1 + x_k^2) per coordinate, as :func:`_reg_value` sums them."""
    with _errstate():
        terms = _value_terms(np.asarray(x))
        return np.multiply(lam, terms, out=terms)


def _reg_grad(lam: float, x: np.ndarray) -> np.ndarray:
    """2 lam x_k / (1 + x_k^2)^2, evaluated as 2 lam (x t) t with t = 1/(1 + x^2);
    beyond :data:`BLOCK` coordinates block by block into the returned array (no (d,)
    temporary beside it)."""
    x = np.asarray(x)
    with _errstate():
        if x.ndim != 1 or x.shape[0] <= BLOCK:
            return _grad_terms(lam, x)
        out = np.empty(x.shape, dtype=np.result_type(x.dtype, 1.0))
        for lo in range(0, x.shape[0], BLOCK):
            _grad_terms(lam, x[lo:lo + BLOCK], out=out[lo:lo + BLOCK])
        return out
