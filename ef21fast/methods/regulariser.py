"""The EF21 papers' non-convex regulariser ``lam sum_k x_k^2 / (1 + x_k^2)``: its value,
terms and gradient, exact for every x (docs/maths.rst, "Problems"), as the problems of
:mod:`ef21fast.methods.problems` use them."""

from __future__ import annotations

import numpy as np

__all__ = ["_reg_value", "_reg_terms", "_reg_grad"]


def _errstate():
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")


def _reg_value(lam: float, x: np.ndarray) -> float:
    """lam * sum_k x_k^2 / (1 + x_k^2), exact for every x (inf -> lam per coordinate)."""
    with _errstate():  # in place: at most two (d,) temporaries (d of a million and more)
        x2 = x * x
        t = np.add(1.0, x2)
        np.divide(1.0, t, out=t)
        large = x2 <= 1.0
        np.logical_not(large, out=large)  # (NaN: 1 - t, as np.where did)
        np.multiply(x2, t, out=x2)
        np.subtract(1.0, t, out=t)
        np.copyto(x2, t, where=large)
        return lam * float(np.sum(x2))


def _reg_terms(lam: float, x: np.ndarray) -> np.ndarray:
    """lam * x_k^2 / (1 + x_k^2) per coordinate, as :func:`_reg_value` sums them."""
    with _errstate():
        x2 = x * x
        t = 1.0 / (1.0 + x2)
        return lam * np.where(x2 <= 1.0, x2 * t, 1.0 - t)


def _reg_grad(lam: float, x: np.ndarray) -> np.ndarray:
    """2 lam x_k / (1 + x_k^2)^2, evaluated as 2 lam (x t) t with t = 1/(1 + x^2)."""
    with _errstate():  # in place, as _reg_value
        t = x * x
        np.add(1.0, t, out=t)
        np.divide(1.0, t, out=t)
        u = x * t
        np.multiply(2.0 * lam, u, out=u)
        u *= t
        return u
