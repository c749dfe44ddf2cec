"""Per-element semantics shared by every Numba kernel: ordered keys, values, emission.

**Key.** The selection order (larger ``|x|`` first, NaN above +inf, all NaNs equal,
-0.0 == +0.0) is the integer order of a *key*: the bits of the value with the sign bit
cleared, every NaN mapped to one value just above +inf. Keys are returned as
non-negative ``int64`` for both dtypes: at most ``KEYBITS32 = 31`` significant bits for
float32 and ``KEYBITS64 = 63`` for float64.

**Mode.** One set of selection routines serves ``topk``, ``ef21_step`` and ``ef_step``;
an integer *mode* says how the value of element ``j`` of a row is formed from the two
row arrays ``a``, ``b`` and the row scalar ``c`` (all of the data dtype, so float32
arithmetic stays float32):

====  ============================  ==========================================
mode  value(j)                      emitted element (selected j) also does
====  ============================  ==========================================
0     ``a[j]``                      (topk: nothing)
1     ``a[j] - b[j]``               ``b[j] = b[j] + value`` (EF21)
2     ``c * a[j] - b[j]``           ``b[j] = b[j] + value`` (EF21-W, c = scale)
3     ``b[j] + c * a[j]``           ``b[j] = 0`` (EF14 before the error update)
4     ``b[j]``                      ``b[j] = 0`` (EF14 after the update)
====  ============================  ==========================================

The operand order of every operation is that of :mod:`ef21fast.reference`, and it
matters for the NaN payload that propagates: when both operands of ``+`` or ``*`` are
NaN, the reference (like the x86 instruction) returns the first one, quietened. LLVM
treats ``+`` and ``*`` as commutative and may swap the operands, so :func:`add` and
:func:`mul` restore the first-operand rule explicitly (a branch almost never taken).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import overload

KEYBITS32 = 31
KEYBITS64 = 63
_ABS32 = 0x7FFFFFFF
_NAN32 = 0x7F800001  # one above +inf's bits: every NaN
_ABS64 = 0x7FFFFFFFFFFFFFFF
_NAN64 = 0x7FF0000000000001
_QUIET32 = 0x00400000
_QUIET64 = 0x0008000000000000

MODE_TOPK = 0
MODE_EF21 = 1
MODE_EF21_SCALED = 2
MODE_EF_RAW = 3
MODE_EF = 4


def keybits(dtype) -> int:
    """Significant bits of the keys of ``dtype`` (31 for float32, 63 for float64)."""
    return KEYBITS32 if np.dtype(dtype).itemsize == 4 else KEYBITS64


def key(v):
    """The ordered key of one float32/float64 scalar (pure-Python version).

    Jitted callers get the overload below (a bit cast, a mask and a min).
    """
    if v.dtype.itemsize == 4:
        return min(int(v.view(np.int32)) & _ABS32, _NAN32)
    return min(int(v.view(np.int64)) & _ABS64, _NAN64)


@overload(key, jit_options={"nogil": True})
def _key_overload(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        def impl(v):
            return min(np.int64(np.float32(v).view(np.int32)) & _ABS32, _NAN32)
        return impl
    if isinstance(v, types.Float) and v.bitwidth == 64:
        def impl(v):
            return min(np.float64(v).view(np.int64) & _ABS64, _NAN64)
        return impl
    return None


def vbits(v):
    """The bits of one float32/float64 scalar as a signed integer of its width (int32 or
    int64): what the candidate lists store (the value itself, and its key by
    :func:`canon`). Pure-Python version; jitted callers get the overload."""
    return v.view(np.int32 if v.dtype.itemsize == 4 else np.int64)


@overload(vbits, jit_options={"nogil": True})
def _vbits_overload(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        def impl(v):
            return np.float32(v).view(np.int32)
        return impl
    if isinstance(v, types.Float) and v.bitwidth == 64:
        def impl(v):
            return np.float64(v).view(np.int64)
        return impl
    return None


def canon(bits):
    """The key of the value with these :func:`vbits`, in the same integer width; a key
    is its own canon (so a buffer may hold either). Pure-Python version; jitted callers
    get the overload (32-bit arithmetic for float32: twice the vector lanes)."""
    if bits.dtype.itemsize == 4:
        return min(bits & np.int32(_ABS32), np.int32(_NAN32))
    return min(bits & np.int64(_ABS64), np.int64(_NAN64))


@overload(canon, jit_options={"nogil": True})
def _canon_overload(bits):
    if isinstance(bits, types.Integer) and bits.bitwidth == 32:
        def impl(bits):
            return min(np.int32(bits) & np.int32(_ABS32), np.int32(_NAN32))
        return impl
    if isinstance(bits, types.Integer) and bits.bitwidth == 64:
        def impl(bits):
            return min(np.int64(bits) & np.int64(_ABS64), np.int64(_NAN64))
        return impl
    return None


def bits_empty(n, x):
    """An uninitialised int array of length n for the :func:`vbits` of ``x``'s dtype."""
    return np.empty(n, dtype=np.int32 if x.dtype.itemsize == 4 else np.int64)


@overload(bits_empty, jit_options={"nogil": True})
def _bits_empty_overload(n, x):
    if x.dtype.bitwidth == 32:
        def impl(n, x):
            return np.empty(n, dtype=np.int32)
        return impl
    def impl(n, x):
        return np.empty(n, dtype=np.int64)
    return impl


def ctz(x):
    """Trailing zero bits of a non-zero uint64 (the lowest set bit's position).
    Pure-Python version; jitted callers get the overload (one instruction)."""
    x = int(x)
    return (x & -x).bit_length() - 1


@overload(ctz, jit_options={"nogil": True})
def _ctz_overload(x):
    if isinstance(x, types.Integer):
        def impl(x):
            return trailing_zeros(x)
        return impl
    return None


def quiet(x):
    """NaN ``x`` with its quiet bit set: what x86 returns for a NaN first operand.

    Integer operations on the bits, which the compiler cannot rewrite (LLVM may return
    any NaN for ``x + x``). Pure-Python version; jitted callers get the overload.
    """
    if x.dtype.itemsize == 4:
        return (x.view(np.int32) | np.int32(_QUIET32)).view(np.float32)
    return (x.view(np.int64) | np.int64(_QUIET64)).view(np.float64)


@overload(quiet, jit_options={"nogil": True})
def _quiet_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def impl(x):
            bits = np.float32(x).view(np.int32) | np.int32(_QUIET32)
            return np.int32(bits).view(np.float32)
        return impl
    if isinstance(x, types.Float) and x.bitwidth == 64:
        def impl(x):
            bits = np.float64(x).view(np.int64) | np.int64(_QUIET64)
            return np.int64(bits).view(np.float64)
        return impl
    return None


@njit(cache=True, nogil=True)
def add(x, y):
    """``x + y``; if both are NaN, the first one (quietened), as the reference returns."""
    r = x + y
    if r != r and x != x:
        r = quiet(x)
    return r


@njit(cache=True, nogil=True)
def mul(x, y):
    """``x * y``; if both are NaN, the first one (quietened), as the reference returns."""
    r = x * y
    if r != r and x != x:
        r = quiet(x)
    return r


@njit(cache=True, nogil=True)
def value(mode, a, b, c, j):
    """The value of element ``j`` of a row in ``mode`` (see the module docstring)."""
    if mode == 0:
        return a[j]
    if mode == 1:
        return a[j] - b[j]
    if mode == 2:
        return mul(c, a[j]) - b[j]
    if mode == 3:
        return add(b[j], mul(c, a[j]))
    return b[j]


@njit(cache=True, nogil=True)
def emit(mode, a, b, c, j, o, idx_row, val_row):
    """Write selected element ``j`` to output slot ``o`` and apply the state update."""
    v = value(mode, a, b, c, j)
    idx_row[o] = j
    val_row[o] = v
    if mode == 1 or mode == 2:
        b[j] = add(b[j], v)
    elif mode >= 3:
        b[j] = 0.0


@njit(cache=True, nogil=True)
def value2(mode, a, b, c, i, j):
    """:func:`value` of element ``(i, j)`` of 2-D ``a``/``b`` (no row views: batch loops
    over many short rows avoid the reference counting of a view per row)."""
    if mode == 0:
        return a[i, j]
    if mode == 1:
        return a[i, j] - b[i, j]
    if mode == 2:
        return mul(c, a[i, j]) - b[i, j]
    if mode == 3:
        return add(b[i, j], mul(c, a[i, j]))
    return b[i, j]


@njit(cache=True, nogil=True, inline="always")
def emit2(mode, a, b, c, i, j, o, idx, val):
    """:func:`emit` on row ``i`` of 2-D arrays, to slot ``(i, o)`` of ``idx``/``val``.

    Inlined into its callers (by Numba): as a call, passing the four arrays cost
    about 8 ns, which was 90% of a batch with k = d = 112."""
    v = value2(mode, a, b, c, i, j)
    idx[i, o] = j
    val[i, o] = v
    if mode == 1 or mode == 2:
        b[i, j] = add(b[i, j], v)
    elif mode >= 3:
        b[i, j] = 0.0
