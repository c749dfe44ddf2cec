"""Argument checking for the public kernels, done once, before any backend runs.

The backends (``reference``, ``kernels``, the C library) trust what they get: every
check lives here so that all backends raise the same exception for the same input.
Each helper returns the argument in the normalised form the backends expect:
native byte order, C-contiguous, 2-D (a 1-D vector becomes one row).
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_DTYPE_NAMES = "float32 or float64"


def float_array(name: str, a) -> np.ndarray:
    """Return ``a`` as a 1-D or 2-D float32/float64 array (no copy when possible).

    Raises
    ------
    TypeError
        If ``a`` is not an array of a supported dtype.
    ValueError
        If it is not 1-D or 2-D.
    """
    if not isinstance(a, np.ndarray):
        if isinstance(a, (list, tuple, np.generic)):
            a = np.asarray(a)
        else:
            raise TypeError(f"{name} must be a numpy array (or a CPU torch.Tensor) of "
                            f"{_DTYPE_NAMES}, got {type(a).__name__}")
    a = plain(name, a)
    if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8) or a.dtype.fields:
        raise TypeError(f"{name} must have dtype {_DTYPE_NAMES}, got {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one vector) or 2-D (n rows), "
                         f"got {a.ndim}-D with shape {a.shape}")
    return a


def plain(name: str, a: np.ndarray) -> np.ndarray:
    """``a`` as a base-class ndarray view of the same memory (np.matrix, np.memmap and
    other subclasses: the kernels see plain arrays, updates still land in ``a``).

    Raises
    ------
    TypeError
        For a masked array: no kernel can honour a mask, and dropping it silently
        would select masked-out entries.
    """
    if type(a) is np.ndarray:
        return a
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name} must not be a masked array (the kernels cannot honour "
                        f"a mask): pass np.ma.filled({name}, value) or {name}.data")
    return np.asarray(a)


def native_dtype(dtype: np.dtype) -> np.dtype:
    """The native-order dtype of ``dtype``'s type, as NumPy's own instance.

    ``dtype.newbyteorder("=")`` compares equal but is another instance, and some NumPy
    loops take a slow path for it (``np.add.at`` into such an array: 20x slower).
    """
    return np.dtype(dtype.type)


def readable(a: np.ndarray) -> np.ndarray:
    """A native-order, C-contiguous version of a read-only input (copy if needed)."""
    if not a.dtype.isnative:
        a = a.astype(native_dtype(a.dtype))
    return np.ascontiguousarray(a)


def as_rows(a: np.ndarray) -> np.ndarray:
    """View a 1-D array as one row."""
    return a.reshape(1, -1) if a.ndim == 1 else a


def writable_state(name: str, a, like: np.ndarray) -> np.ndarray:
    """Check a state array that is updated in place against the read input ``like``.

    Raises
    ------
    TypeError
        If ``a`` is not an ndarray, or its dtype differs from ``like``'s or is not
        in native byte order.
    ValueError
        If its shape differs, or it is read-only or not C-contiguous.
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (or a CPU torch.Tensor) updated "
                        f"in place, got {type(a).__name__}")
    a = float_array(name, a)
    if a.dtype.newbyteorder("=") != like.dtype.newbyteorder("="):
        raise TypeError(f"{name} must have the same dtype as the input "
                        f"({like.dtype.newbyteorder('=')}), got {a.dtype}")
    if not a.dtype.isnative:
        raise TypeError(f"{name} is updated in place and must be in native byte "
                        f"order, got {a.dtype.str}")
    if a.shape != like.shape:
        raise ValueError(f"{name} must have the same shape as the input {like.shape}, "
                         f"got {a.shape}")
    if not a.flags.writeable:
        raise ValueError(f"{name} is updated in place and must be writable")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} is updated in place and must be C-contiguous")
    return a


def check_k(k, d: int) -> int:
    """Return ``k`` as an int after checking ``0 <= k <= d``.

    Raises
    ------
    TypeError
        If ``k`` is not an integer (bool and float are rejected, even 3.0).
    ValueError
        If ``k`` is outside ``[0, d]``.
    """
    if type(k) is not int:  # plain int first: the ABC checks cost more than a small call
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (numbers.Integral,
                                                                np.integer)):
            raise TypeError(f"k must be an integer, got {type(k).__name__} {k!r}")
        k = operator.index(k)
    if k < 0 or k > d:
        raise ValueError(f"k must satisfy 0 <= k <= d = {d}, got k = {k}")
    return k


def real_scalar(name: str, v, dtype: np.dtype):
    """``v`` as a scalar of ``dtype`` (a real number; bool and complex rejected)."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating,
                                                              np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    return _cast(name, v, dtype)


def _cast(name: str, v, dtype: np.dtype):
    """``v`` (a real scalar or array) cast to ``dtype``; a finite value beyond the
    dtype's range is an error, not a silent inf. NaNs (signalling ones too) stay NaN."""
    try:
        with np.errstate(over="raise", invalid="ignore"):
            if isinstance(v, np.ndarray):
                return np.ascontiguousarray(v, dtype=dtype)
            return dtype.type(v)
    except (OverflowError, FloatingPointError):
        raise ValueError(f"{name} has a value beyond the range of {dtype} "
                         f"(largest {np.finfo(dtype).max:.6g})") from None


def row_vector(name: str, v, n: int, dtype: np.dtype) -> np.ndarray | None:
    """A per-row factor: None, a real scalar (broadcast), or a length-``n`` vector.

    Returns ``None`` or a C-contiguous 1-D array of ``dtype`` of length ``n``.

    Raises
    ------
    TypeError
        If the values are not real numbers.
    ValueError
        If a vector has the wrong shape.
    """
    if v is None:
        return None
    if np.ndim(v) == 0:
        return np.full(n, real_scalar(name, v, dtype), dtype=dtype)
    v = np.asarray(v)
    if v.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {v.dtype}")
    if v.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},) (one per row), "
                         f"got shape {v.shape}")
    return _cast(name, v, dtype)
