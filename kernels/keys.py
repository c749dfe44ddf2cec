"""Per-element semantics shared by every Numba kernel: ordered keys, values, emission.

**Key.** The selection order (larger ``|x|`` first, NaN above +inf, all NaNs equal,
-0.0 == +0.0) is the integer order of a *key*: the bits of the value with the sign bit
cleared, every NaN mapped to one value just above +inf. Keys are returned as
non-negative ``int64`` for both dtypes: at most ``KEYBITS32 = 31`` significant bits for
float32 and ``KEYBITS64 = 63`` for float64.

**Value.** :func:`value` forms element j of a row in one of the modes of
:mod:`.modes` from the row's operands ``row = (a, b, c)``: ``a`` the input (x or the
gradient), ``b`` the state (or error; a 0-length dummy for topk), ``c`` the row's
scalar (scale or lr), all of the data dtype, so float32 arithmetic stays float32.
:func:`emit` writes a selected element to the output and applies the state update,
:func:`update_state` the update alone.

**Specialisation.** Every loop is written once, for any mode, and ``mode`` reaches it
as a constant: the drivers are called through one jitted entry per mode
(:mod:`.launch`), and Numba compiles a function again for each constant that a caller
passes it, so every function on the way is compiled once per mode, with every test of
the mode folded away by LLVM (a mode read at run time inside a loop costs 1.3x to
several times: the loop no longer vectorises).
The same rule compiles a function again for any other constant argument (``f(x, 0)``
and ``f(x, lo)`` are two compiled versions): callers pass :data:`ZERO`,
:data:`NOT_WRITTEN` and :data:`WRITTEN` (NumPy scalars, not constants to Numba) where
one compiled version should serve all callers, and ``False``/``True`` where a flag is
read in a loop.

**NaN operands.** The operand order of every operation is that of
:mod:`ef21fast.reference`, and it matters for the NaN payload that propagates: when
both operands of ``+`` or ``*`` are NaN, the reference (like the x86 instruction)
returns the first one, quietened. LLVM treats ``+`` and ``*`` as commutative and may
swap the operands, so :func:`add` and :func:`mul` restore the first-operand rule
explicitly (a branch almost never taken). The emission's state update,
one scalar at a time, is :func:`add_one`: on x86 with AVX, one ``vaddss``/``vaddsd``
whose operand order LLVM cannot change.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import config
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic, overload

from .modes import MODE_EF, MODE_EF21, MODE_EF21_SCALED, MODE_TOPK

KEYBITS32 = 31
KEYBITS64 = 63

#: The ``written`` flag of :mod:`.modes`, and a zero (the start of a whole row), as
#: values that are not constants to Numba (see above).
NOT_WRITTEN = np.False_
WRITTEN = np.True_
ZERO = np.int64(0)
_ABS32 = 0x7FFFFFFF
_NAN32 = 0x7F800001  # one above +inf's bits: every NaN
_ABS64 = 0x7FFFFFFFFFFFFFFF
_NAN64 = 0x7FF0000000000001
_QUIET32 = 0x00400000
_QUIET64 = 0x0008000000000000


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


def _has_avx():
    """Whether Numba compiles for x86-64 with AVX (the features it gives LLVM: the
    host's, or ``NUMBA_CPU_FEATURES``)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    feats = config.CPU_FEATURES
    if feats is None:
        feats = llvm_binding.get_host_cpu_features().flatten()
    if "+avx" not in feats.split(","):
        return False
    # (Numba sets up LLVM's code emission, not its parser of inline assembly)
    llvm_binding.initialize_native_asmparser()
    return True


#: x86-64 with AVX: :func:`add_one` is one instruction.
X86_AVX = _has_avx()


@intrinsic
def _vadd(typingctx, x, y):
    """``x + y`` as one AVX ``vadds[sd]`` with x its first source operand: x86 returns
    the first operand's NaN (quietened) when both are NaN, as the reference does."""
    if not (isinstance(x, types.Float) and x == y):
        return None

    def codegen(context, builder, sig, args):
        op = "vaddss" if sig.args[0].bitwidth == 32 else "vaddsd"
        fnty = ir.FunctionType(args[0].type, [args[0].type, args[1].type])
        return builder.asm(fnty, f"{op} $2, $1, $0", "=x,x,x", list(args),
                           side_effect=False)
    return x(x, y), codegen


def add_one(x, y):
    """:func:`add` for one scalar update outside a vector loop (an emission's state
    update). Pure-Python version; jitted callers get the overload: on x86 with AVX one
    instruction whose operand order is fixed (LLVM may commute a ``+``, so :func:`add`
    tests for NaNs after it, six more instructions an entry: 1000 x 112 float32
    ef21_step, one thread, Intel Xeon, the state update without them took 0.89-0.93x
    the time for k = 2 to 16). Not for loops that vectorise: an inline instruction
    keeps them scalar (an emitting scan of 8 rows of 200,000, k = 100,000: 2.6x the
    time)."""
    return add(x, y)


@overload(add_one, jit_options={"nogil": True})
def _add_one_overload(x, y):
    if X86_AVX and isinstance(x, types.Float) and x == y:
        return lambda x, y: _vadd(x, y)
    return lambda x, y: add(x, y)


@njit(cache=True, nogil=True)
def mul(x, y):
    """``x * y``; if both are NaN, the first one (quietened), as the reference returns."""
    r = x * y
    if r != r and x != x:
        r = quiet(x)
    return r


@njit(cache=True, nogil=True)
def value(mode, written, row, at):
    """The value of element ``at`` of ``row = (a, b, c)`` in ``mode``.

    ``at`` indexes ``a`` and ``b``: an int for 1-D rows, ``(i, j)`` for element j of
    row i of 2-D arrays (batch loops over many short rows avoid the reference counting
    of a view per row). ``written``: in ``MODE_EF``, the error update is already in
    ``b`` (see :mod:`.modes`); ignored in the other modes.
    """
    a, b, c = row
    if mode == MODE_TOPK:
        return a[at]
    if mode == MODE_EF21:
        return a[at] - b[at]
    if mode == MODE_EF21_SCALED:
        return mul(c, a[at]) - b[at]
    if written:
        return b[at]
    return add(b[at], mul(c, a[at]))


@njit(cache=True, nogil=True, inline="always")
def emit(mode, written, row, at, j, out, slot, one=False):
    """Write selected element ``at`` (index ``j`` in its row) to ``slot`` of ``out =
    (idx, val)`` and apply the state update of ``mode`` to ``b[at]``; ``one`` (a
    constant): the update by :func:`add_one`, for callers that emit entries one at a
    time (from a bit mask or a list), not in a loop that vectorises.

    Inlined into its callers (by Numba): as a call, passing the arrays cost about 8 ns,
    which was 90% of a batch with k = d = 112.
    """
    v = value(mode, written, row, at)
    idx, val = out
    idx[slot] = j
    val[slot] = v
    b = row[1]
    if mode == MODE_EF21 or mode == MODE_EF21_SCALED:
        b[at] = add_one(b[at], v) if one else add(b[at], v)
    elif mode == MODE_EF:
        b[at] = 0.0


@njit(cache=True, nogil=True)
def update_state(mode, b, out, lo, hi):
    """The state update of ``mode`` (as :func:`emit`) at the indices in slots ``lo ..
    hi-1`` of ``out = (idx_row, val_row)``, whose values are already written."""
    idx_row, val_row = out
    if mode == MODE_EF21 or mode == MODE_EF21_SCALED:
        for o in range(lo, hi):
            j = idx_row[o]
            b[j] = add_one(b[j], val_row[o])
    elif mode == MODE_EF:
        for o in range(lo, hi):
            b[idx_row[o]] = 0.0

