"""Bit masks of a comparison over a word of consecutive keys.

:func:`gt_mask` is the inner step of the passes that visit only the set bits of a mask
(the candidate pass, the window of the candidate lists, the emission from them, the
small-k select): bit u of the result is set when ``keys[start + u] > t``, for ``u <
MASK_BITS``. Written as a loop (``msk |= (keys[u] > t) << u``), LLVM builds the word
from 64 widened lanes, shifted and OR-reduced: about 0.27 ns per key on the 2-core
AMD EPYC (2026-12-05, 1e5 int32 keys: 27.5 us), which was most of the candidate pass.
Here the jitted version is one vector compare whose ``<64 x i1>`` result is the word
itself (a bit cast: one mask register on AVX-512, a few movemasks on AVX2): 2.4 us for
the same keys (int64 keys 30.7 / 5.0 us).
"""

from __future__ import annotations

import operator

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .keys import canon
from .modes import MODE_EF, MODE_EF21, MODE_EF21_SCALED, MODE_TOPK

#: Keys per mask word (the width of the words of :mod:`.passes`).
MASK_BITS = 64


def gt_mask(keys, start, t):
    """A ``uint64`` with bit u set when ``keys[start + u] > t`` (``u < MASK_BITS``;
    ``keys``: a 1-D integer array with ``start + MASK_BITS <= len(keys)``, not checked
    in jitted code). Pure-Python version; jitted callers get the overload."""
    return _word(keys[start:start + MASK_BITS].astype(np.int64) > int(t))


def _word(hits):
    """The uint64 with bit u set where ``hits[u]`` (plain Python)."""
    msk = 0
    for u in np.flatnonzero(hits):
        msk |= 1 << int(u)
    return np.uint64(msk)


def _integer_word_args(keys, t):
    """Whether :func:`gt_mask` / :func:`eq_mask` take these Numba types."""
    return (isinstance(keys, types.Array) and keys.ndim == 1
            and isinstance(keys.dtype, types.Integer) and isinstance(t, types.Integer))


def _mask_loop(cmp):
    """The word of ``cmp(keys[start + u], t)`` as a loop: the jitted form for arrays
    and thresholds the vector compare does not take."""
    def loop(keys, start, t):
        msk = np.uint64(0)
        for u in range(MASK_BITS):
            msk |= np.uint64(cmp(keys[start + u], t)) << np.uint64(u)
        return msk
    return loop


def splat(builder, vty, scalar):
    """A vector of type ``vty`` with ``scalar`` in every lane (LLVM IR, for the
    intrinsics here and in :mod:`.lanes`)."""
    lane0 = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar,
                                   ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(
        lane0, ir.Constant(vty, ir.Undefined),
        ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count))


def _mask_codegen(keyed, op=">"):
    """The code of the intrinsics below: ``MASK_BITS`` lanes of the array from
    ``start`` as integers of its width (``keyed``: a float array's bits, mapped to
    their keys as :func:`.keys.canon` does), compared with t (``op``: ``">"`` or
    ``"=="``), the ``<64 x i1>`` result bit cast to the word."""
    def codegen(context, builder, signature, args):
        arr, at, tv = args
        aty, sty, _ = signature.args
        data = context.make_array(aty)(context, builder, arr).data
        at = context.cast(builder, at, sty, types.intp)
        bw = aty.dtype.bitwidth
        vty = ir.VectorType(ir.IntType(bw), MASK_BITS)
        ptr = builder.bitcast(builder.gep(data, [at]), vty.as_pointer())
        vec = builder.load(ptr, align=bw // 8)
        signed = keyed or aty.dtype.signed
        if keyed:  # canon: the sign bit cleared, every NaN to one key above +inf
            absm = (1 << (bw - 1)) - 1
            nan = (0x7F800001 if bw == 32 else 0x7FF0000000000001)
            vec = builder.and_(vec, ir.Constant(vty, [absm] * MASK_BITS))
            nanv = ir.Constant(vty, [nan] * MASK_BITS)
            vec = builder.select(builder.icmp_signed("<", vec, nanv), vec, nanv)
        tvec = splat(builder, vty, tv)
        if signed:
            hit = builder.icmp_signed(op, vec, tvec)
        else:
            hit = builder.icmp_unsigned(op, vec, tvec)
        return builder.bitcast(hit, ir.IntType(MASK_BITS))
    return codegen


@intrinsic
def _gt_mask_vector(typingctx, keys, start, t):
    """:func:`gt_mask` on a C-contiguous array, with t of the keys' own type."""
    return types.uint64(keys, start, t), _mask_codegen(False)


@intrinsic
def _eq_mask_vector(typingctx, keys, start, t):
    """:func:`eq_mask` on a C-contiguous array, with t of the keys' own type."""
    return types.uint64(keys, start, t), _mask_codegen(False, "==")


def eq_mask(keys, start, t):
    """As :func:`gt_mask`, for ``keys[start + u] == t``. Pure-Python version; jitted
    callers get the overload (one vector compare)."""
    return _word(keys[start:start + MASK_BITS].astype(np.int64) == int(t))


@overload(eq_mask, jit_options={"nogil": True})
def _eq_mask_overload(keys, start, t):
    if not _integer_word_args(keys, t):
        return None
    kt = keys.dtype
    if keys.layout != "C" or t.signed != kt.signed:
        return _mask_loop(operator.eq)
    if t == kt:
        def same(keys, start, t):
            return _eq_mask_vector(keys, start, t)
        return same
    conv = getattr(np, str(kt))
    info = np.iinfo(np.dtype(str(kt)))
    lo, hi = info.min, info.max

    # (the keys' own width: canon's int32 keys come out of Numba's arithmetic as int64;
    # a t outside the keys' range equals none of them)
    def narrowed(keys, start, t):
        if t < lo or t > hi:
            return np.uint64(0)
        return _eq_mask_vector(keys, start, conv(t))
    return narrowed


@intrinsic
def _key_gt_mask_vector(typingctx, values, start, t):
    """:func:`key_gt_mask` on a C-contiguous array, with t of the keys' type."""
    return types.uint64(values, start, t), _mask_codegen(True)


def key_gt_mask(values, start, t):
    """A ``uint64`` with bit u set when the key (:func:`.keys.key`) of ``values[start +
    u]`` is > t (``u < MASK_BITS``; ``values``: a 1-D float32/float64 array with
    ``start + MASK_BITS <= len(values)``, not checked in jitted code; t: an integer of
    the keys' width, :func:`.keys.vbits`). The candidate pass of topk, whose values are
    the input itself: no buffer of keys between the loads and the compare (half the
    time of the pass's masks). Pure-Python version; jitted callers get the
    overload."""
    ib = np.int32 if values.dtype.itemsize == 4 else np.int64
    bits = values[start:start + MASK_BITS].view(ib)
    keys = np.array([canon(b) for b in bits], dtype=ib)
    return gt_mask(keys, 0, t)


@overload(key_gt_mask, jit_options={"nogil": True})
def _key_gt_mask_overload(values, start, t):
    if not (isinstance(values, types.Array) and values.ndim == 1
            and isinstance(values.dtype, types.Float) and values.layout == "C"
            and isinstance(t, types.Integer) and t.bitwidth == values.dtype.bitwidth):
        return None

    def impl(values, start, t):
        return _key_gt_mask_vector(values, start, t)
    return impl


@overload(gt_mask, jit_options={"nogil": True})
def _gt_mask_overload(keys, start, t):
    if not _integer_word_args(keys, t):
        return None
    kt = keys.dtype
    if keys.layout != "C" or (t != kt and not (t.signed and kt.signed)):
        return _mask_loop(operator.gt)
    info = np.iinfo(np.dtype(str(kt)))
    lo, hi = info.min, info.max
    if t == kt:
        def same(keys, start, t):
            return _gt_mask_vector(keys, start, t)
        return same
    conv = getattr(np, str(kt))
    # t clamped to the keys' range: the compare is then the same for every key
    if t.signed == kt.signed and t.bitwidth < kt.bitwidth:
        def wider(keys, start, t):
            return _gt_mask_vector(keys, start, conv(t))
        return wider

    def clamped(keys, start, t):
        if t >= hi:
            return np.uint64(0)
        return _gt_mask_vector(keys, start, conv(max(t, lo)))
    return clamped


def _value_vector(builder, mode, vecs, cv):
    """The values of ``mode`` (:mod:`.modes`) from the float vectors ``vecs = (a, b)``
    and the scalar ``cv`` (ignored where unused), in the operand order of
    :func:`.keys.value`, with the NaN rules of :func:`.keys.add` and
    :func:`.keys.mul` (both operands NaN: the first, quietened). No FMA: the IR
    carries no contraction flags."""
    va, vb = vecs
    if mode == MODE_TOPK:
        return va
    if mode == MODE_EF21:
        return builder.fsub(va, vb)

    def first_nan(r, x):  # r, or x quietened where both r and x are NaN
        bw = _fbits(x.type.element)
        ity = ir.VectorType(ir.IntType(bw), x.type.count)
        both = builder.and_(builder.fcmp_unordered("uno", r, r),
                            builder.fcmp_unordered("uno", x, x))
        quiet = 1 << 22 if bw == 32 else 1 << 51  # the quiet bit (see keys.quiet)
        qx = builder.or_(builder.bitcast(x, ity),
                         ir.Constant(ity, [quiet] * x.type.count))
        return builder.select(both, builder.bitcast(qx, x.type), r)

    cvec = splat(builder, va.type, cv)
    m = first_nan(builder.fmul(cvec, va), cvec)
    if mode == MODE_EF21_SCALED:
        return builder.fsub(m, vb)
    return first_nan(builder.fadd(vb, m), vb)


def _fbits(fty):
    """The width of an llvmlite float type."""
    return 32 if isinstance(fty, ir.FloatType) else 64


def _word_compare(context, builder, mode, seg, at, tv):
    """``(bits, gt)``: the value bits of the ``MASK_BITS`` elements from ``at`` of the
    segment ``seg = (its type, (a, b, c))`` in ``mode`` (:func:`_value_vector`;
    ``MODE_EF``: written back to ``b``), and the ``<MASK_BITS x i1>`` compare of their
    keys (as :func:`key_gt_mask`) with t (``tv``)."""
    segty, segv = seg
    aty, bty, _ = segty.types
    bw = aty.dtype.bitwidth
    vty = ir.VectorType(ir.IntType(bw), MASK_BITS)
    fvty = ir.VectorType(context.get_data_type(aty.dtype), MASK_BITS)
    ptrs = []
    for q, ty in ((0, aty), (1, bty)):
        data = context.make_array(ty)(context, builder, builder.extract_value(segv, q)).data
        ptrs.append(builder.bitcast(builder.gep(data, [at]), fvty.as_pointer()))
    vecs = [builder.load(ptrs[0], align=bw // 8),
            builder.load(ptrs[1], align=bw // 8) if mode != MODE_TOPK else None]
    fval = _value_vector(builder, mode, vecs, builder.extract_value(segv, 2))
    if mode == MODE_EF:
        builder.store(fval, ptrs[1], align=bw // 8)
    vec = builder.bitcast(fval, vty)
    absm = (1 << (bw - 1)) - 1
    nan = (0x7F800001 if bw == 32 else 0x7FF0000000000001)
    keys = builder.and_(vec, ir.Constant(vty, [absm] * MASK_BITS))
    nanv = ir.Constant(vty, [nan] * MASK_BITS)
    keys = builder.select(builder.icmp_signed("<", keys, nanv), keys, nanv)
    return vec, builder.icmp_signed(">", keys, splat(builder, vty, tv))


def _compress_codegen(mode):
    """The code of :func:`_compress_vector` for ``mode``: ``MASK_BITS`` values of
    ``seg = (a, b, c)`` from ``start`` (:func:`_value_vector`; ``MODE_EF``: written
    back to ``b``), the lanes whose key (as :func:`key_gt_mask`) is > t left-packed
    by ``llvm.experimental.vector.compress`` into ``lists = (kbuf, obuf)`` (their
    bits, and ``start + u`` for lane u) from position ``cnt``, whole 512-bit vectors
    stored (up to ``MASK_BITS`` entries past ``cnt`` written); returns ``cnt`` plus
    their count."""
    def codegen(context, builder, signature, args):
        _, seg, start, tv, lists, cnt = args
        _, segty, stty, _, lty, cty = signature.args
        kty, oty = lty.types
        bw = kty.dtype.bitwidth
        ow = oty.dtype.bitwidth
        ovty = ir.VectorType(ir.IntType(ow), MASK_BITS)
        mty = ir.VectorType(ir.IntType(1), MASK_BITS)
        at = context.cast(builder, start, stty, types.intp)
        vec, gt = _word_compare(context, builder, mode, (segty, seg), at, tv)
        pos = context.cast(builder, cnt, cty, types.intp)
        kdata, odata = (context.make_array(ty)(context, builder,
                                               builder.extract_value(lists, q)).data
                        for q, ty in ((0, kty), (1, oty)))
        base = builder.trunc(at, ir.IntType(ow)) if ow < 64 else at
        offs = builder.add(splat(builder, ovty, base),
                           ir.Constant(ovty, list(range(MASK_BITS))))
        # per 512-bit part: compressed in a register, stored whole (the store of a
        # compress to memory is microcoded on AMD Zen), the position advanced by its
        # count
        lanes = 512 // bw
        word = builder.bitcast(gt, ir.IntType(MASK_BITS))
        for p0 in range(0, MASK_BITS, lanes):
            sel = ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                              list(range(p0, p0 + lanes)))
            part_m = builder.shuffle_vector(gt, ir.Constant(mty, ir.Undefined), sel)
            for data, v, w in ((kdata, vec, bw), (odata, offs, ow)):
                pty = ir.VectorType(ir.IntType(w), lanes)
                part = builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), sel)
                packed = builder.call(_compress_fn(builder.module, pty),
                                      [part, part_m, ir.Constant(pty, ir.Undefined)])
                dst = builder.bitcast(builder.gep(data, [pos]), pty.as_pointer())
                builder.store(packed, dst, align=w // 8)
            bits = builder.trunc(builder.lshr(word, ir.Constant(word.type, p0)),
                                 ir.IntType(lanes))
            pos = builder.add(pos, builder.zext(builder.ctpop(bits), pos.type))
        return context.cast(builder, pos, types.intp, cty)
    return codegen


def _compress_fn(mod, vty):
    """The declaration of ``llvm.experimental.vector.compress`` for vectors ``vty``."""
    from numba.core import cgutils
    mty = ir.VectorType(ir.IntType(1), vty.count)
    fty = ir.FunctionType(vty, [vty, mty, vty])
    name = f"llvm.experimental.vector.compress.v{vty.count}i{vty.element.width}"
    return cgutils.get_or_insert_function(mod, fty, name)


@intrinsic
def _compress_vector(typingctx, mode, seg, start, t, lists, cnt):
    """:func:`compress_values` (``mode`` a literal; ``cnt``: uint64)."""
    if not isinstance(mode, types.IntegerLiteral):
        return None
    sig = types.uint64(mode, seg, start, t, lists, cnt)
    return sig, _compress_codegen(mode.literal_value)


def compress_values(mode, seg, start, t, lists, cnt):
    """Append the elements ``start + u`` (``u < MASK_BITS``) of the segment ``seg =
    (a, b, c)`` whose value in ``mode`` (:func:`.keys.value`, not yet written) has a
    key > t: their value bits to ``lists[0]``, ``start + u`` to ``lists[1]``, both from
    position ``cnt`` (room for ``MASK_BITS`` more assumed, not checked in jitted
    code), in index order; returns the new count (uint64). ``MODE_EF``: the updated
    error is written back to ``b`` on the ``MASK_BITS`` elements.

    ``a``, ``b``: C-contiguous float32/float64 arrays (``b`` unread in ``MODE_TOPK``),
    ``c`` a scalar of their dtype, t an integer of the keys' width. The jitted version
    is vector arithmetic, one vector compare and compresses in registers, stored
    whole (``vpcompressd``/``q`` on AVX-512): no branch per candidate or per word.
    Pure-Python version; jitted callers get the overload (``mode`` a constant)."""
    from .keys import add, mul, value, vbits
    sa, sb, c = seg
    kbuf, obuf = lists
    n = int(cnt)
    for u in range(MASK_BITS):
        j = int(start) + u
        if mode == MODE_EF:
            sb[j] = add(sb[j], mul(c, sa[j]))
        v = vbits(value(mode, True, seg, j))
        if canon(v) > t:
            kbuf[n] = v
            obuf[n] = j
            n += 1
    return np.uint64(n)


@overload(compress_values, jit_options={"nogil": True})
def _compress_values_overload(mode, seg, start, t, lists, cnt):
    if not isinstance(mode, types.IntegerLiteral):
        return None
    a, b, _ = seg.types
    kbuf, obuf = lists.types
    if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
                for x in (a, b, kbuf, obuf))
            and isinstance(a.dtype, types.Float) and b.dtype == a.dtype
            and isinstance(kbuf.dtype, types.Integer) and isinstance(obuf.dtype, types.Integer)
            and kbuf.dtype.bitwidth == a.dtype.bitwidth and isinstance(t, types.Integer)
            and t.bitwidth == kbuf.dtype.bitwidth):
        return None

    def impl(mode, seg, start, t, lists, cnt):
        return _compress_vector(mode, seg, start, t, lists, np.uint64(cnt))
    return impl


@intrinsic
def _values_mask_vector(typingctx, mode, seg, start, t):
    """:func:`values_gt_mask` (``mode`` a literal)."""
    if not isinstance(mode, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        _, segv, start, tv = args
        _, segty, stty, _ = signature.args
        at = context.cast(builder, start, stty, types.intp)
        _, gt = _word_compare(context, builder, mode.literal_value, (segty, segv), at, tv)
        return builder.bitcast(gt, ir.IntType(MASK_BITS))
    return types.uint64(mode, seg, start, t), codegen


def values_gt_mask(mode, seg, start, t):
    """A ``uint64`` with bit u set when the value in ``mode`` (not yet written) of
    element ``start + u`` (``u < MASK_BITS``) of ``seg = (a, b, c)`` has a key > t; as
    :func:`compress_values` (``MODE_EF``: the updated error written back), without
    the compress. Pure-Python version; jitted callers get the overload."""
    from .keys import add, mul, value, vbits
    sa, sb, c = seg
    msk = 0
    for u in range(MASK_BITS):
        j = int(start) + u
        if mode == MODE_EF:
            sb[j] = add(sb[j], mul(c, sa[j]))
        if canon(vbits(value(mode, True, seg, j))) > t:
            msk |= 1 << u
    return np.uint64(msk)


@overload(values_gt_mask, jit_options={"nogil": True})
def _values_gt_mask_overload(mode, seg, start, t):
    if not isinstance(mode, types.IntegerLiteral):
        return None
    a, b, _ = seg.types
    if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
                for x in (a, b))
            and isinstance(a.dtype, types.Float) and b.dtype == a.dtype
            and isinstance(t, types.Integer) and t.bitwidth == a.dtype.bitwidth):
        return None

    def impl(mode, seg, start, t):
        return _values_mask_vector(mode, seg, start, t)
    return impl


def popcount(x):
    """Set bits of a uint64. Pure-Python version; jitted callers get the overload
    (one instruction)."""
    return bin(int(x)).count("1")


@intrinsic
def _popcount64(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@overload(popcount, jit_options={"nogil": True})
def _popcount_overload(x):
    if isinstance(x, types.Integer):
        def impl(x):
            return _popcount64(np.uint64(x))
        return impl
    return None
