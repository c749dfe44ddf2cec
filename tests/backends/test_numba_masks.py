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


_ROW_KEYS = {}


def _row_keys_runners(mode):
    """(vector, scalar) jitted runners of one mode: :func:`row_keys` on every row of
    (a, b, cvec), and the keys element by element."""
    if mode not in _ROW_KEYS:
        from numba import njit

        from ef21fast.kernels.keys import canon, value, vbits
        from ef21fast.kernels.masks import row_keys

        @njit
        def vector(a, b, cvec, out, top):
            for i in range(a.shape[0]):
                top[i] = row_keys(mode, (a, b, cvec), i, out[i])

        @njit
        def scalar(a, b, cvec, out):
            for i in range(a.shape[0]):
                for j in range(a.shape[1]):
                    out[i, j] = canon(vbits(value(mode, True, (a, b, cvec[i]), (i, j))))
        _ROW_KEYS[mode] = (vector, scalar)
    return _ROW_KEYS[mode]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_row_keys_match_the_scalar_code(mode, dtype):
    """The keys of whole rows by masked vector loads: those of the scalar code
    (``MODE_EF``: of ``b``, the update written) and their largest returned, -1 up to
    the next multiple of 16, nothing written after it; rows whose length is not a
    multiple of 16 (the masked lanes of the last row are past the end of the arrays);
    a, b, cvec untouched. (Its
    plain Python version runs in the NUMBA_DISABLE_JIT cross-check of
    test_threads.py.)"""
    ib = np.int32 if dtype == np.float32 else np.int64
    rng = np.random.default_rng(7 * mode + np.dtype(dtype).itemsize)
    vector, scalar = _row_keys_runners(mode)
    for d in (1, 15, 16, 17, 63, 112, 130):
        n = 5
        a, b = (_nasty(rng, dtype, n * d).reshape(n, d) for _ in range(2))
        cvec = np.concatenate([_nasty(rng, dtype, 3), np.array([0.75, np.nan], dtype)])
        saved = [x.copy() for x in (a, b, cvec)]
        want = np.empty((n, d), ib)
        scalar(a, b, cvec, want)
        width = -(-d // 16) * 16
        out = np.full((n, width + 16), 5, ib)
        top = np.zeros(n, ib)
        vector(a, b, cvec, out, top)
        np.testing.assert_array_equal(out[:, :d], want)
        np.testing.assert_array_equal(top, want.max(axis=1))
        assert (out[:, d:width] == -1).all() and (out[:, width:] == 5).all()
        for x, x0 in zip((a, b, cvec), saved):
            np.testing.assert_array_equal(x.view(ib), x0.view(ib))
