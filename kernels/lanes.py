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

:func:`kth_levels` is the k-th largest key of a short row from its groups' first three
to five levels (sorted by bitonic networks of shuffles and min/max), as the C
backend's AVX-512 selection (``csrc/select_avx512.c``) finds it; when the levels do
not settle it, the callers rank the keys above :func:`kth_lanes`'s threshold with
:func:`kth_of`.

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

from .masks import (llvm_call as _call, splat, vector_reduce_smax as _reduce_smax,
                    vector_smax as _smax, vector_smin as _smin)

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


#: The levels of :func:`kth_levels` per k (a few more cost more to form and settle
#: more rows), and how many lanes of the third and fourth level it inserts into its
#: 16 largest (the rest that reach its first threshold send the row to the caller's
#: other path). As C's ``x512_pair_k`` and ``EF_GROUPS_CAP*`` (csrc/select_avx512.c).
LEVELS_3_K = 4
LEVELS_4_K = 8
#: (lanes of the third level, lanes of the fourth) per number of levels
LEVEL_CAPS = {3: (0, 0), 4: (1, 0), 5: (3, 1)}
#: With k up to this, the k-th largest of the groups' maxima is the row's k-th when no
#: group's second key reaches it (random rows of 112: k = 2 95% of rows, 4 70%).
MAX_ONLY_K = 12
#: The result of :func:`kth_levels` when the levels do not settle the k-th key.
UNSETTLED = -2


def levels_for(k):
    """The levels :func:`kth_levels` forms for k."""
    return 3 if k <= LEVELS_3_K else 4 if k <= LEVELS_4_K else 5


def kth_levels(keys, nvec, k):
    """The k-th largest T of the keys ``keys[:16 nvec]`` (``1 <= k <= 16``, padded with
    -1, at least k keys), or ``UNSETTLED``, from the ``L = levels_for(k)`` largest keys
    of each group j mod 16 (level l: the l-th largest of each group, -1 for none).

    tv = the k-th largest of the groups' maxima: when ``k <= MAX_ONLY_K`` and no
    group's second key reaches it, the keys >= tv are the maxima >= tv, and T = tv.
    Else bs = the 16 largest of the first two levels, tv its k-th, the first
    ``LEVEL_CAPS`` lanes (in lane order) of the third and fourth level that reach tv
    put into bs (its 16 largest kept): T = bs's k-th when no group's L-th key and no
    lane of the third and fourth level left out reaches it. Then every key >= T is in
    bs (T >= tv: each such key was one of the first two levels or a lane that reached
    tv), and bs holds keys of the row only: its k-th is the row's. Random rows of 112
    left unsettled, by simulation (C's): about 1% at k = 8, 3% at k = 16."""
    blk = np.sort(keys[:nvec * LANES].reshape(nvec, LANES), axis=0)[::-1]
    nl = levels_for(k)
    m = np.full((5, LANES), -1, dtype=np.int64)
    m[:min(nl, nvec)] = blk[:nl]
    tv = np.sort(m[0])[::-1][k - 1]
    if k <= MAX_ONLY_K and not (m[1] >= tv).any():
        return keys.dtype.type(tv)
    bs = np.sort(np.concatenate([m[0], m[1]]))[::-1][:LANES]
    tv = bs[k - 1]
    rests = []
    for lev, cap in zip((2, 3), LEVEL_CAPS[nl]):
        if lev >= nl - 1:
            break
        hit = np.flatnonzero(m[lev] >= tv)
        bs = np.sort(np.concatenate([bs, m[lev][hit[:cap]]]))[::-1][:LANES]
        rests.append(m[lev][hit[cap:]])
    t = bs[k - 1]
    ok = not (m[nl - 1] >= t).any() and not any((r >= t).any() for r in rests)
    return keys.dtype.type(t if ok else UNSETTLED)


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


def _levels(builder, base, ity, nvec, nl):
    """The nl largest keys of each group of the nvec vectors from ``base``, level by
    level (-1 for none): each vector goes down the levels by max/min. Vector p < nl - 1
    finds levels p and below empty: it goes down p levels only, and what it leaves is
    level p (as C's ``x512_keys_top``)."""
    lv = [cgutils.alloca_once_value(builder, _const(ity, [-1] * LANES)) for _ in range(nl)]

    def down(v, levels):
        for q in range(levels):
            m = builder.load(lv[q])
            builder.store(_smax(builder, m, v), lv[q])
            v = _smin(builder, m, v)
        return v

    for p in range(nl - 1):
        with builder.if_then(builder.icmp_signed(">", nvec, ir.Constant(nvec.type, p))):
            v = _load(builder, base, ity, LANES * p)
            builder.store(down(v, p), lv[p])
    start = ir.Constant(nvec.type, nl - 1)
    with cgutils.for_range(builder, nvec, start=start) as loop:
        at = builder.mul(loop.index, ir.Constant(loop.index.type, LANES))
        v = down(_load(builder, builder.gep(base, [at]), ity), nl - 1)
        builder.store(_smax(builder, builder.load(lv[nl - 1]), v), lv[nl - 1])
    return [builder.load(x) for x in lv]


@intrinsic
def _group_top2(typingctx, keys, nvec, m):
    def codegen(context, builder, sig, args):
        base, ity = _ptr(context, builder, sig.args[0], args[0])
        first, second = _levels(builder, base, ity, args[1], 2)
        out, _ = _ptr(context, builder, sig.args[2], args[2])
        _store(builder, first, out)
        _store(builder, second, out, LANES)
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


def _exchange(builder, v, j, take_max):
    """One compare-exchange step on the 16 lanes of v: lane i against lane i ^ j, the
    larger kept where ``take_max(i)``."""
    w = builder.shuffle_vector(v, v, _const(_I32, [i ^ j for i in range(LANES)]))
    mask = ir.Constant(ir.VectorType(ir.IntType(1), LANES),
                       [int(bool(take_max(i))) for i in range(LANES)])
    return builder.select(mask, _smax(builder, v, w), _smin(builder, v, w))


def _sort16(builder, v, descending):
    """v's 16 lanes sorted (a bitonic network of 10 compare-exchange steps)."""
    size = 2
    while size <= LANES:
        j = size // 2
        while j:
            def take_max(i, j=j, size=size):
                lower = (i & j) == 0
                block_down = (i & size) == 0 if size < LANES else True
                return lower == (block_down == descending)
            v = _exchange(builder, v, j, take_max)
            j //= 2
        size *= 2
    return v


def _merge16_down(builder, v):
    """A bitonic sequence of 16 lanes sorted descending (4 steps)."""
    for j in (8, 4, 2, 1):
        v = _exchange(builder, v, j, lambda i, j=j: (i & j) == 0)
    return v


def _lane(builder, v, at):
    return builder.extract_element(v, at)


def _any_ge(builder, v, t, live=None):
    """Whether a lane of v (of those in the ``i1`` vector ``live``) is >= t."""
    hit = builder.icmp_signed(">=", v, _splat(builder, t))
    if live is not None:
        hit = builder.and_(hit, live)
    return builder.icmp_unsigned("!=", builder.bitcast(hit, ir.IntType(LANES)),
                                 ir.Constant(ir.IntType(LANES), 0))


def _insert_lanes(builder, bs, mr, tv, cap):
    """bs (16 keys, descending) with the first ``cap`` lanes of mr that reach tv put in,
    its 16 largest kept (lane i <- max(bs[i], min(bs[i - 1], x)), bs[-1] above every
    key: no compare into a mask); returns it and the lanes that reach tv left out (an
    ``i1`` vector)."""
    ity = mr.type.element
    top = _const(ity, [(1 << (ity.width - 1)) - 1] * LANES)
    shift = _const(_I32, [LANES] + list(range(LANES - 1)))
    zero = ir.Constant(_I32, 0)
    bits = builder.zext(builder.bitcast(builder.icmp_signed(">=", mr, _splat(builder, tv)),
                                        ir.IntType(LANES)), _I32)
    for _ in range(cap):
        # the lane of the lowest set bit (none: -1, which changes nothing)
        at = builder.and_(_call(builder, "llvm.cttz.i32", _I32,
                                [bits, ir.Constant(ir.IntType(1), 0)]),
                          ir.Constant(_I32, LANES - 1))
        x = builder.select(builder.icmp_unsigned("!=", bits, zero),
                           _lane(builder, mr, at), ir.Constant(ity, -1))
        up = builder.shuffle_vector(bs, top, shift)
        bs = _smax(builder, bs, _smin(builder, up, _splat(builder, x)))
        bits = builder.and_(bits, builder.sub(bits, ir.Constant(_I32, 1)))
    rest = builder.bitcast(builder.trunc(bits, ir.IntType(LANES)),
                           ir.VectorType(ir.IntType(1), LANES))
    return bs, rest


def _kth_levels_intrinsic(nl):
    caps = LEVEL_CAPS[nl]

    @intrinsic
    def _kth_levels(typingctx, keys, nvec, k):
        """:func:`kth_levels` with ``nl`` levels."""
        def codegen(context, builder, sig, args):
            base, ity = _ptr(context, builder, sig.args[0], args[0])
            kk = args[2]
            m = _levels(builder, base, ity, args[1], nl)
            k1 = builder.trunc(builder.sub(kk, ir.Constant(kk.type, 1)), _I32)
            s0 = _sort16(builder, m[0], True)
            tv0 = _lane(builder, s0, k1)
            result = cgutils.alloca_once_value(builder, tv0)
            short = builder.and_(
                builder.icmp_signed("<=", kk, ir.Constant(kk.type, MAX_ONLY_K)),
                builder.not_(_any_ge(builder, m[1], tv0)))
            with builder.if_then(builder.not_(short), likely=False):
                s1 = _sort16(builder, m[1], False)
                bs = _merge16_down(builder, _smax(builder, s0, s1))
                tv = _lane(builder, bs, k1)
                rests = []
                for lev, cap in zip((2, 3), caps):
                    if lev < nl - 1:
                        bs, rest = _insert_lanes(builder, bs, m[lev], tv, cap)
                        rests.append((m[lev], rest))
                t = _lane(builder, bs, k1)
                bad = _any_ge(builder, m[nl - 1], t)
                for mr, rest in rests:
                    bad = builder.or_(bad, _any_ge(builder, mr, t, rest))
                builder.store(builder.select(bad, ir.Constant(ity, UNSETTLED), t), result)
            return builder.load(result)
        return keys.dtype(keys, nvec, k), codegen
    return _kth_levels


_kth_levels3 = _kth_levels_intrinsic(3)
_kth_levels4 = _kth_levels_intrinsic(4)
_kth_levels5 = _kth_levels_intrinsic(5)


@overload(kth_levels, jit_options={"nogil": True})
def _kth_levels_overload(keys, nvec, k):
    def impl(keys, nvec, k):
        if k <= LEVELS_3_K:
            return _kth_levels3(keys, nvec, k)
        if k <= LEVELS_4_K:
            return _kth_levels4(keys, nvec, k)
        return _kth_levels5(keys, nvec, k)
    return impl


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
