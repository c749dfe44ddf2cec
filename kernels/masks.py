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
from numba.core import cgutils
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


def _float_pair(a, b, ndim):
    """Whether the Numba types ``a`` and ``b`` are C-contiguous float arrays of
    ``ndim`` dimensions and one dtype (the operands of the value intrinsics)."""
    return (all(isinstance(x, types.Array) and x.ndim == ndim and x.layout == "C"
                for x in (a, b))
            and isinstance(a.dtype, types.Float) and b.dtype == a.dtype)


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
        for p0 in range(0, MASK_BITS, lanes):
            sel = ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                              list(range(p0, p0 + lanes)))
            part_m = builder.shuffle_vector(gt, ir.Constant(mty, ir.Undefined), sel)
            for data, v in ((kdata, vec), (odata, offs)):
                part = builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), sel)
                _append_packed(builder, data, pos, part, part_m)
            pos = builder.add(pos, _lanes_set(builder, part_m, pos.type))
        return context.cast(builder, pos, types.intp, cty)
    return codegen


def _compress_fn(mod, vty):
    """The declaration of ``llvm.experimental.vector.compress`` for vectors ``vty``."""
    mty = ir.VectorType(ir.IntType(1), vty.count)
    fty = ir.FunctionType(vty, [vty, mty, vty])
    name = f"llvm.experimental.vector.compress.v{vty.count}i{vty.element.width}"
    return cgutils.get_or_insert_function(mod, fty, name)


def _append_packed(builder, data, pos, v, hit):
    """The lanes of the integer vector v where ``hit`` (an ``i1`` vector), left-packed
    in a register and stored whole to ``data + pos`` (the store of a compress to
    memory is microcoded on AMD Zen): v's length is written from ``pos``."""
    packed = builder.call(_compress_fn(builder.module, v.type),
                          [v, hit, ir.Constant(v.type, ir.Undefined)])
    dst = builder.bitcast(builder.gep(data, [pos]), v.type.as_pointer())
    builder.store(packed, dst, align=v.type.element.width // 8)


def _lanes_set(builder, hit, ity):
    """The number of set lanes of the ``i1`` vector ``hit``, as an ``ity``."""
    bits = builder.bitcast(hit, ir.IntType(hit.type.count))
    return builder.zext(builder.ctpop(bits), ity)


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
    if not (_float_pair(a, b, 1)
            and all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
                    for x in (kbuf, obuf))
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
    if not (_float_pair(a, b, 1)
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


def compress_gt(keys, start, t, out, cnt):
    """Append the keys ``keys[start + u]`` (``u < MASK_BITS``) that are > t to ``out``
    from position ``cnt``, in index order; returns the new count (int64).

    ``keys``, ``out``: C-contiguous 1-D integer arrays of one dtype, t an integer of
    their width; ``out`` has room for ``cnt + MASK_BITS`` (the jitted version stores
    whole 512-bit vectors: up to ``MASK_BITS`` entries past ``cnt`` are written, not
    checked in jitted code). Pure-Python version; jitted callers get the overload
    (vector compares and compresses in registers, as :func:`compress_values`)."""
    n = int(cnt)
    for u in range(MASK_BITS):
        if keys[start + u] > t:
            out[n] = keys[start + u]
            n += 1
    return np.int64(n)


@intrinsic
def _compress_gt_vector(typingctx, keys, start, t, out, cnt):
    def codegen(context, builder, signature, args):
        kv, start, tv, ov, cnt = args
        kty, sty, _, oty, cty = signature.args
        bw = kty.dtype.bitwidth
        lanes = 512 // bw
        pty = ir.VectorType(ir.IntType(bw), lanes)
        kdata = context.make_array(kty)(context, builder, kv).data
        odata = context.make_array(oty)(context, builder, ov).data
        at = context.cast(builder, start, sty, types.intp)
        pos = context.cast(builder, cnt, cty, types.intp)
        tvec = splat(builder, pty, tv)
        for p0 in range(0, MASK_BITS, lanes):
            src = builder.gep(kdata, [builder.add(at, ir.Constant(at.type, p0))])
            v = builder.load(builder.bitcast(src, pty.as_pointer()), align=bw // 8)
            hit = builder.icmp_signed(">", v, tvec)
            _append_packed(builder, odata, pos, v, hit)
            pos = builder.add(pos, _lanes_set(builder, hit, pos.type))
        return pos
    return types.intp(keys, start, t, out, cnt), codegen


@overload(compress_gt, jit_options={"nogil": True})
def _compress_gt_overload(keys, start, t, out, cnt):
    if not (_integer_word_args(keys, t) and keys.dtype.signed
            and isinstance(out, types.Array) and out.dtype == keys.dtype
            and keys.layout == "C" and out.layout == "C"
            and t.bitwidth == keys.dtype.bitwidth):
        return None

    def impl(keys, start, t, out, cnt):
        return _compress_gt_vector(keys, start, t, out, cnt)
    return impl


def row_keys(mode, rows, i, keys):
    """The keys of row i of ``rows = (a, b, cvec)`` in ``mode``, the ``MODE_EF``
    update already written to ``b`` (:func:`.keys.value` with ``written``):
    ``keys[j] = key(value)`` for ``j < d``, and ``keys[d:16 * ceil(d / 16)] = -1``.
    Returns the largest of the d keys (-1 when d = 0), in the keys' dtype: a running
    vector maximum beside the stores, dropped by LLVM where the caller ignores it.

    ``a``, ``b``: (n, d) C-contiguous float32/float64 arrays (``b`` unread in
    ``MODE_TOPK``), ``cvec`` the (n,) row scalars; ``keys``: integers of the values'
    width, room for ``16 * ceil(d / 16)``. Pure-Python version; jitted callers get the
    overload: 16 values at a time by masked vector loads (no read past the row),
    their keys stored as whole 16-key vectors. The readers load the keys 16 and 64 at
    a time, and a load wider than the stores it reads is not forwarded from them: it
    waits until they reach the cache (with the element loop's 32-byte stores, 8% of
    the time of a 1000 x 112 float32 ef21_step with k = 4 went to the first such
    load. Against that loop at the final kernels, ``bench/ab_kernels.py`` both ways
    round, one thread, Intel Xeon, 2026-12-05: k = 2 0.83-0.93x the time, k = 4 to 16
    0.96-1.02x, within the noise)."""
    from .keys import value, vbits
    a, b, cvec = rows
    d = a.shape[1]
    for j in range(d):
        keys[j] = canon(vbits(value(mode, True, (a, b, cvec[i]), (i, j))))
    keys[d:-(-d // 16) * 16] = -1
    return keys[:d].max() if d else keys.dtype.type(-1)


def _masked_load(builder, ptr, vty, live):
    """``llvm.masked.load`` of the float vector type ``vty`` at ``ptr``: the lanes of
    the ``i1`` vector ``live``, 0.0 in the others (not read)."""
    fw = _fbits(vty.element)
    mty = ir.VectorType(ir.IntType(1), vty.count)
    fnty = ir.FunctionType(vty, [vty.as_pointer(), ir.IntType(32), mty, vty])
    fn = cgutils.get_or_insert_function(builder.module, fnty,
                                        f"llvm.masked.load.v{vty.count}f{fw}.p0")
    return builder.call(fn, [builder.bitcast(ptr, vty.as_pointer()),
                             ir.Constant(ir.IntType(32), fw // 8), live,
                             ir.Constant(vty, [0.0] * vty.count)])


def llvm_call(builder, name, ret, vals):
    """A call of the LLVM intrinsic ``name`` returning ``ret`` (for the intrinsics here
    and in :mod:`.lanes`)."""
    fnty = ir.FunctionType(ret, [v.type for v in vals])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    return builder.call(fn, vals)


def _vty_name(v):
    return f"v{v.type.count}i{v.type.element.width}"


def vector_smax(builder, a, b):
    """The lane by lane signed maximum of two integer vectors."""
    return llvm_call(builder, f"llvm.smax.{_vty_name(a)}", a.type, [a, b])


def vector_smin(builder, a, b):
    """The lane by lane signed minimum of two integer vectors."""
    return llvm_call(builder, f"llvm.smin.{_vty_name(a)}", a.type, [a, b])


def vector_reduce_smax(builder, v):
    """The largest lane of an integer vector (signed)."""
    return llvm_call(builder, f"llvm.vector.reduce.smax.{_vty_name(v)}", v.type.element,
                     [v])


def _row_keys_codegen(mode):
    """The code of :func:`_row_keys_vector` for ``mode``."""
    def codegen(context, builder, signature, args):
        _, rows, i, keys = args
        _, rowsty, ity, kty = signature.args
        aty, bty, cty = rowsty.types
        lanes = 16
        i64 = ir.IntType(64)
        fty = context.get_data_type(aty.dtype)
        bw = _fbits(fty)
        fvty = ir.VectorType(fty, lanes)
        kvty = ir.VectorType(ir.IntType(bw), lanes)
        arrs = [context.make_array(t)(context, builder, builder.extract_value(rows, q))
                for q, t in ((0, aty), (1, bty))]
        row = context.cast(builder, i, ity, types.intp)
        d = builder.extract_value(arrs[0].shape, 1)
        starts = [builder.gep(arr.data, [builder.mul(row, d)]) for arr in arrs]
        cv = ir.Constant(fty, 0.0)
        if mode == MODE_EF21_SCALED:
            cvec = context.make_array(cty)(context, builder, builder.extract_value(rows, 2))
            cv = builder.load(builder.gep(cvec.data, [row]))
        kdata = context.make_array(kty)(context, builder, keys).data
        nvec = builder.sdiv(builder.add(d, ir.Constant(i64, lanes - 1)), ir.Constant(i64, lanes))
        absm = (1 << (bw - 1)) - 1
        nanv = ir.Constant(kvty, [0x7F800001 if bw == 32 else 0x7FF0000000000001] * lanes)
        none = ir.Constant(kvty, [-1] * lanes)
        top = cgutils.alloca_once_value(builder, none)
        with cgutils.for_range(builder, nvec) as loop:
            j = builder.mul(loop.index, ir.Constant(i64, lanes))
            # the lanes below d: the low min(d - j, 16) bits
            rem = builder.sub(d, j)
            low = builder.sub(builder.shl(ir.Constant(i64, 1), rem), ir.Constant(i64, 1))
            bits = builder.select(builder.icmp_signed(">=", rem, ir.Constant(i64, lanes)),
                                  ir.Constant(i64, (1 << lanes) - 1), low)
            live = builder.bitcast(builder.trunc(bits, ir.IntType(lanes)),
                                   ir.VectorType(ir.IntType(1), lanes))
            va, vb = (None if skip else _masked_load(builder, builder.gep(at, [j]), fvty, live)
                      for at, skip in ((starts[0], mode == MODE_EF),
                                       (starts[1], mode == MODE_TOPK)))
            fval = vb if mode == MODE_EF else _value_vector(builder, mode, (va, vb), cv)
            # canon: the sign bit cleared, every NaN to one key above +inf
            kv = builder.and_(builder.bitcast(fval, kvty), ir.Constant(kvty, [absm] * lanes))
            kv = builder.select(builder.icmp_signed("<", kv, nanv), kv, nanv)
            kv = builder.select(live, kv, none)
            builder.store(kv, builder.bitcast(builder.gep(kdata, [j]), kvty.as_pointer()),
                          align=bw // 8)
            builder.store(vector_smax(builder, builder.load(top), kv), top)
        return vector_reduce_smax(builder, builder.load(top))
    return codegen


@intrinsic
def _row_keys_vector(typingctx, mode, rows, i, keys):
    """:func:`row_keys` (``mode`` a literal)."""
    if not isinstance(mode, types.IntegerLiteral):
        return None
    return keys.dtype(mode, rows, i, keys), _row_keys_codegen(mode.literal_value)


@overload(row_keys, jit_options={"nogil": True})
def _row_keys_overload(mode, rows, i, keys):
    if not isinstance(mode, types.IntegerLiteral):
        return None
    a, b, cvec = rows.types
    if not (_float_pair(a, b, 2)
            and isinstance(cvec, types.Array) and cvec.ndim == 1 and cvec.layout == "C"
            and isinstance(keys, types.Array) and isinstance(keys.dtype, types.Integer)
            and keys.dtype.bitwidth == a.dtype.bitwidth):
        return None

    def impl(mode, rows, i, keys):
        return _row_keys_vector(mode, rows, i, keys)
    return impl
