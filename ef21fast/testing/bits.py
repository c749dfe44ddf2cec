"""Bit-level comparison of float arrays (NaN payloads and signed zeros included)."""

from __future__ import annotations

import numpy as np

__all__ = ["bits", "bits_equal", "nan_with_payload"]

_UINT = {4: np.uint32, 8: np.uint64}


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of a float array as unsigned integers (NaN payloads, signed 0)."""
    a = np.ascontiguousarray(a)
    return a.view(_UINT[a.dtype.itemsize])


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` have the same shape, dtype kind/size and bits."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "f":
        if a.dtype.itemsize != b.dtype.itemsize:
            return False
        return bool(np.array_equal(bits(a.astype(a.dtype.newbyteorder("="))),
                                   bits(b.astype(b.dtype.newbyteorder("=")))))
    return bool(np.array_equal(a, b))


def nan_with_payload(dtype, payload: int, negative: bool = False, quiet: bool = True):
    """A NaN of ``dtype`` with the given mantissa payload (non-zero), as a 0-d array."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 4:
        exp, qbit, sign, mask = 0x7F800000, 0x00400000, 0x80000000, 0x003FFFFF
    else:
        exp, qbit, sign = 0x7FF0000000000000, 0x0008000000000000, 0x8000000000000000
        mask = 0x0007FFFFFFFFFFFF
    payload = (payload & mask) or 1
    word = exp | payload | (qbit if quiet else 0) | (sign if negative else 0)
    return np.array(word, dtype=_UINT[dtype.itemsize]).view(dtype)
