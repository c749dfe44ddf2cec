"""The views without reference counts of the Numba kernels (``kernels/borrow.py``):
the same memory, no owner, and the batch drivers that use them allocate and free in
balance."""

import numpy as np
import pytest

import ef21fast
from ef21fast import reference
from ef21fast.backends.registry import backend_errors

NUMBA_MISSING = backend_errors().get("numba")
pytestmark = pytest.mark.skipif(NUMBA_MISSING is not None, reason=str(NUMBA_MISSING))


@pytest.fixture(scope="module")
def jitted():
    """Jitted probes: the view's sum and shape after a write through it, and whether an
    array (or its view) has an owner (a non-null meminfo)."""
    from numba import njit, types
    from numba.extending import intrinsic

    from ef21fast.kernels.borrow import borrowed, keep_alive

    @intrinsic
    def has_owner(typingctx, arr):
        def codegen(context, builder, signature, args):
            ary = context.make_array(arr)(context, builder, args[0])
            null = ary.meminfo.type(None)
            return builder.icmp_unsigned("!=", ary.meminfo, null)
        return types.boolean(arr), codegen

    @njit
    def write_through(x):
        v = borrowed(x)
        v[0, 1] = 7.0
        return v.sum(), v.shape, v.strides

    @njit
    def owners(x):
        y = np.empty(3)
        v = borrowed(y)
        out = (has_owner(x), has_owner(borrowed(x)), has_owner(y), has_owner(v))
        keep_alive((y,))
        return out

    return write_through, owners


def test_view_is_the_same_memory(jitted):
    write_through, _ = jitted
    x = np.arange(12.0).reshape(3, 4)[:, ::2]  # strided: the view keeps the strides
    expect = x.copy()
    expect[0, 1] = 7.0
    total, shape, strides = write_through(x)
    assert x[0, 1] == 7.0 and total == expect.sum()
    assert shape == x.shape and strides == x.strides


def test_view_has_no_owner(jitted):
    _, owners = jitted
    assert owners(np.zeros(4)) == (True, False, True, False)


def test_plain_python_versions():
    from ef21fast.kernels.borrow import borrowed, keep_alive
    x = np.zeros(3)
    assert borrowed(x) is x and keep_alive((x,)) is None


@pytest.mark.parametrize("k", [1, 2, 8, 16, 100])
def test_dense_rows_free_what_they_allocate(k, restore_threads):
    """The batch drivers on short rows (their buffers behind views) free every block
    they allocate, once; results as the reference's."""
    from numba.core.runtime import _nrt_python as nrt
    from numba.core.runtime import rtsys
    rng = np.random.default_rng(k)
    grad = rng.standard_normal((200, 112)).astype(np.float32)
    state = rng.standard_normal((200, 112)).astype(np.float32)
    expect = state.copy()
    eidx, eval_ = reference.ef21_step(grad, expect, k)
    stats_were_on = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    try:
        _check_balance(grad, state, k, (eidx, eval_, expect), rtsys)
    finally:
        if not stats_were_on:
            nrt.memsys_disable_stats()


def _check_balance(grad, state, k, expect, rtsys):
    eidx, eval_, expect = expect
    for threads in (1, 2):
        ef21fast.set_num_threads(threads)
        s = state.copy()
        ef21fast.ef21_step(grad, s, k, backend="numba")  # compiled, buffers kept
        s = state.copy()
        before = rtsys.get_allocation_stats()
        idx, val = ef21fast.ef21_step(grad, s, k, backend="numba")
        after = rtsys.get_allocation_stats()
        assert after.alloc - before.alloc == after.free - before.free
        assert after.mi_alloc - before.mi_alloc == after.mi_free - before.mi_free
        np.testing.assert_array_equal(idx, eidx)
        assert val.tobytes() == eval_.tobytes() and s.tobytes() == expect.tobytes()
