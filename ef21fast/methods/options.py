"""The options of a method run, each checked in one place.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
argument; :func:`ef21fast.methods.algorithms.run` and the method classes
(:mod:`ef21fast.methods.method`) call them when a method object is built, so a bad
option fails before any gradient is computed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["GAMMA_RULES", "BITS_MODES", "PARTICIPATION", "bits_per_value", "check_k",
           "check_positive", "choose_gamma", "participation_probs", "batch_sizes",
           "start_point"]

#: The theory rules accepted for ``gamma`` (docs/maths.rst, "Step sizes").
GAMMA_RULES = ("theory-qm", "theory-am")
#: The bit accountings accepted for ``bits`` (docs/maths.rst, "Bit accounting").
BITS_MODES = ("values", "values+indices")
#: How the partial-participation methods draw the clients of a round.
PARTICIPATION = ("independent", "fixed")


def bits_per_value(bits: str, d: int) -> int:
    """Bits charged per value of a sparse message.

    Parameters
    ----------
    bits : {"values", "values+indices"}
        ``"values"``: 32 bits per value (as the EF21 authors' code counts);
        ``"values+indices"``: 32 plus ``ceil(log2 d)`` bits for the index (none when
        ``d == 1``).
    d : int
        Dimension of the model.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``bits`` is not one of ``BITS_MODES``.
    """
    if bits not in BITS_MODES:
        raise ValueError(f"bits must be one of {BITS_MODES}, got {bits!r}")
    extra = math.ceil(math.log2(d)) if (bits == "values+indices" and d > 1) else 0
    return 32 + extra


def check_k(k, d: int) -> int:
    """``k`` as an int in ``[1, d]``.

    Raises
    ------
    TypeError
        If ``k`` is not an integer (``bool`` included).
    ValueError
        If it lies outside ``[1, d]``.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {k!r}")
    k = int(k)
    if not 1 <= k <= d:
        raise ValueError(f"k must be in [1, d] = [1, {d}], got {k}")
    return k


def check_positive(name: str, value) -> float:
    """``value`` as a positive finite float.

    Raises
    ------
    TypeError
        If it is not a real number (``bool`` included).
    ValueError
        If it is not positive and finite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


def choose_gamma(gamma, gamma_mult, theory_step) -> tuple[float, str]:
    """The step size of a run and how it was chosen.

    Parameters
    ----------
    gamma : float or {"theory-qm", "theory-am"}
        A positive number, used as given, or a theory rule.
    gamma_mult : float
        Positive multiplier applied to either.
    theory_step : callable
        ``theory_step(am) -> (gamma, how)``: the method's theory step size with
        ``L_AM`` (``am=True``) or ``L_QM``, and a short description of the formula.
        Called only for a rule.

    Returns
    -------
    gamma : float
        The step size times ``gamma_mult``.
    rule : str
        e.g. ``"2 x theory-am (1/(L + L_AM xi))"`` or ``"0.1 (given)"``.

    Raises
    ------
    TypeError, ValueError
        A ``gamma_mult`` or numeric ``gamma`` that is not positive and finite, or an
        unknown rule; and whatever ``theory_step`` raises.
    """
    mult = check_positive("gamma_mult", gamma_mult)
    if not isinstance(gamma, str):
        g = check_positive("gamma", gamma)
        return g * mult, (f"{g!r} (given)" if mult == 1 else f"{mult:g} x {g!r} (given)")
    if gamma not in GAMMA_RULES:
        raise ValueError(f"gamma must be a positive number or one of {GAMMA_RULES}, "
                         f"got {gamma!r}")
    g, how = theory_step(gamma == "theory-am")
    g = float(g)
    prefix = "" if mult == 1 else f"{mult:g} x "
    return g * mult, f"{prefix}{gamma} ({how})"


def participation_probs(p, n: int, participation: str):
    """The participation of the partial-participation methods.

    Parameters
    ----------
    p : float, array_like of shape (n,), or None
        Probability that client i takes part in a round (default 0.5); with
        ``participation="fixed"`` a scalar: the fraction of clients drawn.
    n : int
        Number of clients.
    participation : {"independent", "fixed"}

    Returns
    -------
    probs : ndarray, shape (n,), float64
        Each client's probability of taking part (``size / n`` for ``"fixed"``).
    size : int or None
        ``max(1, round(p n))``, the number of clients of a round for ``"fixed"``;
        None for ``"independent"``.

    Raises
    ------
    ValueError
        Unknown ``participation``; a ``p`` of the wrong shape or outside ``(0, 1]``;
        an array ``p`` with ``"fixed"``.
    """
    if participation not in PARTICIPATION:
        raise ValueError(f"participation must be one of {PARTICIPATION}, "
                         f"got {participation!r}")
    p = 0.5 if p is None else p
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"p must be a scalar or have shape ({n},), got {arr.shape}")
    if not np.all((arr > 0) & (arr <= 1)):
        raise ValueError("participation probabilities p must lie in (0, 1]")
    if participation == "fixed":
        if np.ndim(p) != 0:
            raise ValueError("participation='fixed' takes a scalar p (the fraction)")
        size = max(1, int(round(float(p) * n)))
        return np.full(n, size / n), size
    return arr, None


def batch_sizes(m_i, batch) -> np.ndarray:
    """Minibatch size of every client for the SGD methods.

    Parameters
    ----------
    m_i : array_like of int, shape (n,)
        Samples of each client.
    batch : int, array_like of int of shape (n,), or None
        Requested sizes; None: 10% of each client's samples, at least 1.

    Returns
    -------
    ndarray, shape (n,), int64
        The sizes, capped at ``m_i``.

    Raises
    ------
    ValueError
        If ``batch`` holds a non-integer or a value below 1.
    """
    m_i = np.asarray(m_i, dtype=np.int64)
    if batch is None:
        return np.maximum(1, m_i // 10)
    b = np.asarray(batch)
    if b.dtype.kind not in "iu" or np.any(b < 1):
        raise ValueError("batch must be a positive integer or (n,) positive integers")
    return np.minimum(np.broadcast_to(b, m_i.shape).astype(np.int64), m_i)


def start_point(x0, d: int) -> np.ndarray:
    """The starting point: a float64 copy of ``x0``, zeros when it is None.

    Raises
    ------
    ValueError
        If ``x0`` does not have shape ``(d,)`` or is not finite.
    """
    if x0 is None:
        return np.zeros(d)
    x = np.array(x0, dtype=np.float64, copy=True)
    if x.shape != (d,):
        raise ValueError(f"x0 must have shape ({d},), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 must be finite")
    return x
