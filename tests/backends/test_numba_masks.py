"""The vector intrinsics of the Numba candidate pass (``kernels/masks.py``):
:func:`compress_values` and :func:`values_gt_mask` against the scalar per-element code
of :mod:`.keys` (:func:`value`, :func:`canon`, the EF14 write-back of :func:`add` and
:func:`mul`), on words full of the values whose arithmetic is delicate (NaNs with
payloads and signs, infinities, signed zeros), in every mode and dtype, NaN scalars
included."""

import numpy as np
import pytest

from ef21fast.backends.registry import backend_errors

NUMBA_MISSING = backend_errors().get("numba")
pytestmark = pytest.mark.skipif(NUMBA_MISSING is not None, reason=str(NUMBA_MISSING))

WORDS = 4


def _nasty(rng, dtype, n):
    """n values: normals, and about one in three a NaN (random payload and sign), an
    infinity or a signed zero."""
    ib = np.int32 if dtype == np.float32 else np.int64
    x = rng.standard_normal(n).astype(dtype)
    exp = np.array(np.inf, dtype=dtype).view(ib)
    payload = rng.integers(1, 1 << (22 if dtype == np.float32 else 51), n).astype(ib)
    sign = np.where(rng.random(n) < 0.5, 0, 1).astype(ib) << (8 * x.itemsize - 1)
    nan = (exp | payload | sign).view(dtype)
    choices = np.stack([nan, np.full(n, np.inf, dtype), np.full(n, -np.inf, dtype),
                        np.where(rng.random(n) < 0.5, 0.0, -0.0).astype(dtype)])
    pick = choices[rng.integers(0, 4, n), np.arange(n)]
    special = rng.random(n) < 0.35
    x[special] = pick[special]
    return x


_RUNNERS = {}


def _runners(mode):
    """(vector, scalar) jitted runners of one mode (a literal in each)."""
    if mode in _RUNNERS:
        return _RUNNERS[mode]
    from numba import njit

    from ef21fast.kernels.keys import add, canon, mul, value, vbits
    from ef21fast.kernels.masks import compress_values, values_gt_mask
    from ef21fast.kernels.modes import MODE_EF

    @njit
    def vector(a, b, bm, c, t, kbuf, obuf):
        nw = a.shape[0] // 64
        masks = np.empty(nw, dtype=np.uint64)
        for q in range(nw):
            masks[q] = values_gt_mask(mode, (a, bm, c), np.uint64(q * 64), t)
        cnt = np.uint64(0)
        for q in range(nw):
            cnt = compress_values(mode, (a, b, c), np.uint64(q * 64), t, (kbuf, obuf),
                                  cnt)
        return masks, np.int64(cnt)

    @njit
    def scalar(a, b, c, t, kbuf, obuf):
        nw = a.shape[0] // 64
        masks = np.zeros(nw, dtype=np.uint64)
        cnt = 0
        for j in range(a.shape[0]):
            if mode == MODE_EF:
                b[j] = add(b[j], mul(c, a[j]))
            v = vbits(value(mode, True, (a, b, c), j))
            if canon(v) > t:
                masks[j // 64] |= np.uint64(1) << np.uint64(j % 64)
                kbuf[cnt] = v
                obuf[cnt] = j
                cnt += 1
        return masks, np.int64(cnt)

    _RUNNERS[mode] = (vector, scalar)
    return vector, scalar


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_vector_words_match_the_scalar_code(mode, dtype):
    ib = np.int32 if dtype == np.float32 else np.int64
    rng = np.random.default_rng(10 * mode + np.dtype(dtype).itemsize)
    vector, scalar = _runners(mode)
    n = 64 * WORDS
    scalars = [dtype(0.75), dtype(-3.0), np.array(np.nan, dtype)[()],
               _nasty(rng, dtype, 4)]
    for c in scalars[:3] + list(scalars[3]):
        c = dtype(c)
        a, b0 = _nasty(rng, dtype, n), _nasty(rng, dtype, n)
        for level in (0.0, 0.5, np.inf):  # few, some, and only the NaN candidates
            t = ib(np.array(level, dtype).view(ib))
            bv, bm, bs = b0.copy(), b0.copy(), b0.copy()
            kv, ov = np.zeros(n + 64, ib), np.zeros(n + 64, np.int32)
            ks, os_ = np.zeros(n, ib), np.zeros(n, np.int32)
            mv, cv = vector(a, bv, bm, c, t, kv, ov)
            ms, cs = scalar(a, bs, c, t, ks, os_)
            assert cv == cs
            np.testing.assert_array_equal(mv, ms)
            np.testing.assert_array_equal(kv[:cs], ks[:cs])
            np.testing.assert_array_equal(ov[:cs], os_[:cs])
            # the EF14 error written back (bit for bit), the other modes' b untouched
            np.testing.assert_array_equal(bv.view(ib), bs.view(ib))
            np.testing.assert_array_equal(bm.view(ib), bs.view(ib))
            if mode != 3:
                np.testing.assert_array_equal(bv.view(ib), b0.view(ib))
