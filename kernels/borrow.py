"""Array views that Numba does not reference-count, for the per-row loops of short rows.

Numba counts the references to every array it holds: building a tuple of arrays (a
row's ``(a, b, c)``) or passing one to a function that is not inlined takes a reference,
an atomic increment of the array's count, and gives it back, an atomic decrement. On
rows of 112 keys that is eight atomic operations per row, and with two threads on one
batch the two cores take turns owning the count's cache line: 1000 x 112 float32
``ef21_step``, k = 8, one thread, Intel Xeon (Emerald Rapids), Numba 0.68, 2026-12-05:
about 30% of the time in the increments and decrements.

:func:`borrowed` returns a view of the same memory without an owner (a null
meminfo: Numba's increments and decrements of it do nothing). The caller must keep the
array it came from alive while the view is used: an argument of the caller is (its own
caller holds it); an array that the caller allocated is not once it is no longer used
by name, so such a caller names it again after its last use of the view, through
:func:`keep_alive`.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


# --- plain Python versions (the contract; they run with NUMBA_DISABLE_JIT=1) -----------

def borrowed(arr):
    """A view of array ``arr`` (same data, shape and strides) that holds no reference
    to it; see the module docstring for who keeps ``arr`` alive."""
    return arr


def keep_alive(owners):
    """Nothing, but a use of ``owners`` (a tuple of arrays): Numba keeps them until
    this point of the caller."""


# --- the intrinsics, which jitted callers get through the overloads -----------------

@intrinsic
def _borrowed(typingctx, arr):
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, args[0])
        view = context.make_array(arr)(context, builder)
        for field in ("data", "shape", "strides", "itemsize", "nitems"):
            setattr(view, field, getattr(src, field))
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return arr(arr), codegen


@intrinsic
def _keep_alive(typingctx, owners):
    if not isinstance(owners, types.BaseTuple):
        return None

    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.none(owners), codegen


@overload(borrowed, jit_options={"nogil": True})
def _borrowed_overload(arr):
    return lambda arr: _borrowed(arr)


@overload(keep_alive, jit_options={"nogil": True})
def _keep_alive_overload(owners):
    return lambda owners: _keep_alive(owners)
