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

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .keys import canon

#: Keys per mask word (the width of the words of :mod:`.passes`).
MASK_BITS = 64


def gt_mask(keys, start, t):
    """A ``uint64`` with bit u set when ``keys[start + u] > t`` (``u < MASK_BITS``;
    ``keys``: a 1-D integer array with ``start + MASK_BITS <= len(keys)``, not checked
    in jitted code). Pure-Python version; jitted callers get the overload."""
    seg = keys[start:start + MASK_BITS]
    msk = 0
    for u in np.flatnonzero(seg.astype(np.int64) > int(t)):
        msk |= 1 << int(u)
    return np.uint64(msk)


def _splat(builder, vty, scalar):
    """A vector of type ``vty`` with ``scalar`` in every lane."""
    lane0 = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar,
                                   ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(
        lane0, ir.Constant(vty, ir.Undefined),
        ir.Constant(ir.VectorType(ir.IntType(32), MASK_BITS), [0] * MASK_BITS))


def _mask_codegen(keyed):
    """The code of the intrinsics below: ``MASK_BITS`` lanes of the array from
    ``start`` as integers of its width (``keyed``: a float array's bits, mapped to
    their keys as :func:`.keys.canon` does), compared with t, the ``<64 x i1>`` result
    bit cast to the word."""
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
        tvec = _splat(builder, vty, tv)
        if signed:
            gt = builder.icmp_signed(">", vec, tvec)
        else:
            gt = builder.icmp_unsigned(">", vec, tvec)
        return builder.bitcast(gt, ir.IntType(MASK_BITS))
    return codegen


@intrinsic
def _gt_mask_vector(typingctx, keys, start, t):
    """:func:`gt_mask` on a C-contiguous array, with t of the keys' own type."""
    return types.uint64(keys, start, t), _mask_codegen(False)


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
    if not (isinstance(keys, types.Array) and keys.ndim == 1
            and isinstance(keys.dtype, types.Integer) and isinstance(t, types.Integer)):
        return None
    kt = keys.dtype

    def loop(keys, start, t):
        msk = np.uint64(0)
        for u in range(MASK_BITS):
            msk |= np.uint64(keys[start + u] > t) << np.uint64(u)
        return msk
    if keys.layout != "C" or (t != kt and not (t.signed and kt.signed)):
        return loop
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
