"""Operations on the 16 groups j mod 16 of a short row's keys for the Numba kernels:
LLVM vector code.

Numba's loops vectorise when they reduce a whole row to one value (a maximum, a count),
but not when they keep 16 values side by side: the largest and second largest key of
each group, written as a loop over the row, cost 40-60 ns on a row of 112 keys (AMD
EPYC Zen 4, Numba 0.68, 2026-12-05), as long as all of the rest of the row's
selection. Here they are LLVM vector instructions on ``<16 x iN>`` (N the keys' width),
emitted through Numba intrinsics, as :mod:`.masks` does for its bit masks: LLVM lowers
them to the machine's own vectors (one AVX-512 register of 16 int32, two AVX2
registers, ...), so the code stays portable.

Keys are the non-negative int32 / int64 keys of :mod:`.keys`; buffers read 16 at a
time are padded by the caller with ``-1`` (below every key).

Every function has a plain Python version (NumPy; it runs with ``NUMBA_DISABLE_JIT=1``)
and jitted callers get the intrinsic through an overload.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .masks import splat

#: Keys per vector (and the number of groups of :func:`group_top2`).
LANES = 16


# --- plain Python versions (the contract) -----------------------------------------------

def group_top2(keys, nvec, m):
    """For each lane u < 16, the largest (to ``m[u]``) and second largest (to
    ``m[16 + u]``) of the keys ``keys[16 q + u]``, ``q < nvec`` (two equal keys count
    twice); ``m`` has room for 32. ``nvec >= 1``."""
    blk = keys[:nvec * LANES].reshape(nvec, LANES)
    srt = np.sort(blk, axis=0)
    m[:LANES] = srt[-1]
    m[LANES:2 * LANES] = srt[-2] if nvec > 1 else -1


def kth_lanes(m, off, k):
    """The k-th largest of the 16 keys ``m[off:off + 16]`` (``1 <= k <= 16``)."""
    return np.sort(m[off:off + LANES])[LANES - k]


def kth_of(ck, c, k):
    """The k-th largest of the keys ``ck[:c]`` (``1 <= k <= c <= 64``); ``ck`` has room
    for 64 (those from ``c`` on are not read as keys)."""
    return np.sort(ck[:c])[c - k]


# --- the intrinsics ---------------------------------------------------------------------

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _vty(ity):
    return ir.VectorType(ity, LANES)


def _const(ity, values):
    """A vector constant of 16 lanes."""
    return ir.Constant(_vty(ity), list(values))


def _splat(builder, x):
    return splat(builder, _vty(x.type), x)


def _ptr(context, builder, aryty, aryval, j=0):
    """The address of element j of a 1-D array, and the keys' LLVM integer type."""
    ary = context.make_array(aryty)(context, builder, aryval)
    at = ir.Constant(_I64, j) if isinstance(j, int) else j
    return builder.gep(ary.data, [at]), context.get_data_type(aryty.dtype)


def _load(builder, ptr, ity, j=0):
    """The 16 keys from ``ptr + j`` (an int)."""
    vty = _vty(ity)
    if j:
        ptr = builder.gep(ptr, [ir.Constant(_I64, j)])
    return builder.load(builder.bitcast(ptr, vty.as_pointer()), typ=vty,
                        align=ity.width // 8)


def _store(builder, v, ptr, j=0):
    """The 16 keys v to ``ptr + j`` (an int)."""
    if j:
        ptr = builder.gep(ptr, [ir.Constant(_I64, j)])
    builder.store(v, builder.bitcast(ptr, v.type.as_pointer()),
                  align=v.type.element.width // 8)


def _call(builder, name, ret, vals):
    fnty = ir.FunctionType(ret, [v.type for v in vals])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    return builder.call(fn, vals)


def _smax(builder, a, b):
    return _call(builder, f"llvm.smax.v{LANES}i{a.type.element.width}", a.type, [a, b])


def _smin(builder, a, b):
    return _call(builder, f"llvm.smin.v{LANES}i{a.type.element.width}", a.type, [a, b])


def _reduce_smax(builder, v):
    return _call(builder, f"llvm.vector.reduce.smax.v{LANES}i{v.type.element.width}",
                 v.type.element, [v])


def _cast(builder, x, ity):
    if x.type.width == ity.width:
        return x
    return builder.trunc(x, ity) if x.type.width > ity.width else builder.sext(x, ity)


def _count(builder, cnt, hit, step):
    """cnt + step in the lanes where hit (a <16 x i1>; cnt, step <16 x i32>).

    The ranks here count in steps of k, a value LLVM does not know: by 1, it widens
    each compare's mask to a vector and subtracts it (two AVX-512 instructions), by
    k it adds under the mask (one). 1000 x 112 float32 ef21_step, one thread, Intel
    Xeon, A/B in one process (2026-12-05): 0.94-0.95x the time for k = 4 to 16."""
    return builder.select(hit, builder.add(cnt, step), cnt)


@intrinsic
def _group_top2(typingctx, keys, nvec, m):
    def codegen(context, builder, sig, args):
        base, ity = _ptr(context, builder, sig.args[0], args[0])
        low = _const(ity, [-1] * LANES)
        first = cgutils.alloca_once_value(builder, low)
        second = cgutils.alloca_once_value(builder, low)
        with cgutils.for_range(builder, args[1]) as loop:
            at = builder.mul(loop.index, ir.Constant(loop.index.type, LANES))
            v = _load(builder, builder.gep(base, [at]), ity)
            m1 = builder.load(first)
            builder.store(_smax(builder, m1, v), first)
            down = _smin(builder, m1, v)
            builder.store(_smax(builder, builder.load(second), down), second)
        out, _ = _ptr(context, builder, sig.args[2], args[2])
        _store(builder, builder.load(first), out)
        _store(builder, builder.load(second), out, LANES)
        return context.get_dummy_value()
    return types.none(keys, nvec, m), codegen


@intrinsic
def _kth_lanes(typingctx, m, off, k):
    """max{m_u : #{v : m_v >= m_u} >= k}: the ranks by the 16 rotations of the vector
    (a sorting network instead, 10 steps: no faster, A/B as :func:`_count`)."""
    def codegen(context, builder, sig, args):
        ptr, ity = _ptr(context, builder, sig.args[0], args[0], args[1])
        v = _load(builder, ptr, ity)
        kv = _splat(builder, _cast(builder, args[2], _I32))
        cnt = kv  # (each lane reaches itself: rotation 0)
        for r in range(1, LANES):
            rot = builder.shuffle_vector(v, v, _const(_I32, [(u + r) % LANES
                                                              for u in range(LANES)]))
            cnt = _count(builder, cnt, builder.icmp_signed(">=", rot, v), kv)
        hit = builder.icmp_signed(">=", cnt, builder.mul(kv, kv))
        return _reduce_smax(builder, builder.select(hit, v, _const(ity, [-1] * LANES)))
    return m.dtype(m, off, k), codegen


@intrinsic
def _second_lanes(typingctx, m, off):
    """The second largest of the 16 keys from ``m[off]`` (two equal keys count twice):
    the largest once its first lane is gone. Two reductions: fewer instructions than
    the ranks by rotations (1000 x 112 float32 ef21_step, k = 2, 2 threads, A/B in one
    process: 0.90-0.94x the time; for k = 3 and 4 removing lanes in turn saved
    nothing)."""
    def codegen(context, builder, sig, args):
        ptr, ity = _ptr(context, builder, sig.args[0], args[0], args[1])
        v = _load(builder, ptr, ity)
        top = _reduce_smax(builder, v)
        bits = builder.bitcast(builder.icmp_signed("==", v, _splat(builder, top)),
                               ir.IntType(LANES))
        first = builder.bitcast(builder.and_(bits, builder.neg(bits)),
                                ir.VectorType(ir.IntType(1), LANES))
        return _reduce_smax(builder, builder.select(first, _const(ity, [-1] * LANES), v))
    return m.dtype(m, off), codegen


def _kth_of_intrinsic(nv):
    @intrinsic
    def _kth_of(typingctx, ck, c, k):
        """max{ck_q : q < c, #{p < c : ck_p >= ck_q} >= k} over the first nv vectors of
        ck (c <= 16 nv)."""
        def codegen(context, builder, sig, args):
            base, ity = _ptr(context, builder, sig.args[0], args[0])
            vs = [_load(builder, base, ity, LANES * q) for q in range(nv)]
            cnts = [cgutils.alloca_once_value(builder, _const(_I32, [0] * LANES))
                    for _ in range(nv)]
            kv = _splat(builder, _cast(builder, args[2], _I32))
            with cgutils.for_range(builder, args[1]) as loop:
                s = _splat(builder, builder.load(builder.gep(base, [loop.index]), typ=ity))
                for q in range(nv):
                    hit = builder.icmp_signed(">=", s, vs[q])
                    builder.store(_count(builder, builder.load(cnts[q]), hit, kv), cnts[q])
            kk = builder.mul(kv, kv)  # (counts in steps of k, at most 64 * 64)
            cc = _splat(builder, _cast(builder, args[1], _I32))
            best = None
            for q in range(nv):
                lane = _const(_I32, range(LANES * q, LANES * (q + 1)))
                hit = builder.and_(builder.icmp_signed(">=", builder.load(cnts[q]), kk),
                                   builder.icmp_signed("<", lane, cc))
                sel = builder.select(hit, vs[q], _const(ity, [-1] * LANES))
                best = sel if best is None else _smax(builder, best, sel)
            return _reduce_smax(builder, best)
        return ck.dtype(ck, c, k), codegen
    return _kth_of


# (as few vectors as hold the candidates: about 1.5 k of them on random rows)
_kth_of1 = _kth_of_intrinsic(1)
_kth_of2 = _kth_of_intrinsic(2)
_kth_of4 = _kth_of_intrinsic(4)


@overload(kth_of, jit_options={"nogil": True})
def _kth_of_overload(ck, c, k):
    def impl(ck, c, k):
        if c <= LANES:
            return _kth_of1(ck, c, k)
        if c <= 2 * LANES:
            return _kth_of2(ck, c, k)
        return _kth_of4(ck, c, k)
    return impl


def _overload_with(py, intr):
    @overload(py, jit_options={"nogil": True})
    def _ovl(a, b, c):
        return lambda a, b, c: intr(a, b, c)


_overload_with(group_top2, _group_top2)


@overload(kth_lanes, jit_options={"nogil": True})
def _kth_lanes_overload(m, off, k):
    def impl(m, off, k):
        if k == 2:
            return _second_lanes(m, off)
        return _kth_lanes(m, off, k)
    return impl
