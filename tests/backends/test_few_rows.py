"""Batched short rows with few entries each (1 <= k <= 16, rows up to a few hundred):
the selection that C's AVX-512 version runs in registers (its threshold from the
lanes' largest and second largest keys, at most 16 or 32 candidates; on rows up to 128
the k-th key from the three to five largest keys of each lane's group first, and k = 1
as the first of the largest keys, two rows at a time), the Numba backend's LLVM vector
counterpart (its k-th key from three to five levels for 3 <= k <= 16) and the paths they
fall back to, against the reference, bit for bit, for every mode and thread count.

The edges of that selection: rows shorter than a vector or not a multiple of it, k = d,
heavy ties at the k-th key (more candidates than it ranks), zeros, NaNs, rows longer
than it takes (1024), a NaN scale."""

from __future__ import annotations

import numpy as np
import pytest
from registry_params import backend_params, require_threads

import ef21fast
from ef21fast import api, reference
from ef21fast.testing import nan_with_payload

BACKENDS = backend_params()
LENGTHS = [2, 5, 15, 16, 17, 31, 33, 63, 112, 128, 129, 300, 1024, 1025]
KINDS = ["normal", "ties", "small_ints", "zeros", "nans", "ramp"]


def _rows(kind, n, d, rng, dtype=np.float32):
    if kind == "normal":
        return rng.standard_normal((n, d)).astype(dtype)
    if kind == "ties":  # a few distinct magnitudes: many keys equal to the k-th
        return (rng.integers(-2, 3, (n, d)) * 0.5).astype(dtype)
    if kind == "small_ints":
        return rng.integers(-40, 41, (n, d)).astype(dtype)
    if kind == "zeros":
        x = rng.standard_normal((n, d)).astype(dtype)
        x[rng.random((n, d)) < 0.9] = 0
        return x
    if kind == "nans":
        x = rng.standard_normal((n, d)).astype(dtype)
        x[rng.random((n, d)) < 0.2] = np.nan
        x[rng.random((n, d)) < 0.05] = -np.inf
        return x
    # ascending magnitudes: the largest keys in the last group of every lane
    return np.tile(np.arange(d, dtype=dtype), (n, 1)) * np.where(rng.random((n, d)) < 0.5,
                                                                 -1, 1).astype(dtype)


def _same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    bits = np.uint32 if a.dtype == np.float32 else np.uint64
    assert np.array_equal(np.ascontiguousarray(a).view(bits), np.ascontiguousarray(b).view(bits))


def _same_ef21_step(g, s0, k, scale, backend):
    """ef21_step of the backend on a copy of s0 against the reference's: the same
    indices, values and state, bit for bit."""
    s_ref, s_got = s0.copy(), s0.copy()
    want = reference.ef21_step(g, s_ref, k, scale=scale)
    got = api.ef21_step(g, s_got, k, scale=scale, backend=backend)
    for w, h in zip(want, got):
        _same(w, h)
    _same(s_ref, s_got)


def _ks(d):
    # (C's groups: three levels up to k = 4, four up to 8, five above; k = 1: C's
    # argmax of two rows at a time)
    ks = {k for k in (1, 2, 3, 4, 5, 8, 9, 12, 13, 16) if k <= d}
    return sorted(ks | ({d} if d <= 16 else set()))


@pytest.fixture(autouse=True)
def _restore_threads():
    before = ef21fast.get_num_threads()
    yield
    ef21fast.set_num_threads(before)


THREADS = pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "2threads"])


@THREADS
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_ef21_step_and_topk_match_the_reference(backend, kind, threads):
    require_threads(backend, threads)
    rng = np.random.default_rng(len(kind) * 7919 + threads)
    for d in LENGTHS:
        n = 40 if d <= 300 else 8
        g = _rows(kind, n, d, rng)
        s0 = (rng.standard_normal((n, d)) * (kind != "zeros")).astype(np.float32)
        for k in _ks(d):
            _same_ef21_step(g, s0, k, None, backend)
            for w, h in zip(reference.topk(g, k), api.topk(g, k, backend=backend)):
                _same(w, h)


@THREADS
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", ["rows", "nan", "inf"])
def test_scaled_and_ef_steps_match_the_reference(backend, scale, threads):
    require_threads(backend, threads)
    rng = np.random.default_rng(17 + threads)
    for d in (5, 16, 112, 129):
        for kind in ("normal", "ties", "nans"):
            g = _rows(kind, 30, d, rng)
            s0 = rng.standard_normal((30, d)).astype(np.float32)
            w = rng.uniform(0.5, 2.0, 30).astype(np.float32)
            if scale == "nan":
                w[::3] = np.nan
            if scale == "inf":  # (inf x 0 is a NaN: the lanes past a row's end stay out)
                w[::2] = np.inf
                w[1::4] = -np.inf
                g[:, ::3] = 0
            for k in _ks(d):
                _same_ef21_step(g, s0, k, w, backend)
                e_ref, e_got = s0.copy(), s0.copy()
                for a, b in zip(reference.ef_step(g, e_ref, k, lr=0.25),
                                api.ef_step(g, e_got, k, lr=0.25, backend=backend)):
                    _same(a, b)
                _same(e_ref, e_got)


@THREADS
@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_rows_match_the_reference(backend, threads):
    require_threads(backend, threads)
    rng = np.random.default_rng(5)
    for d in (7, 112, 300):
        for kind in ("normal", "ties", "nans"):
            g = _rows(kind, 20, d, rng, np.float64)
            for k in _ks(d):
                s_ref, s_got = np.zeros_like(g), np.zeros_like(g)
                for a, b in zip(reference.ef21_step(g, s_ref, k),
                                api.ef21_step(g, s_got, k, backend=backend)):
                    _same(a, b)
                _same(s_ref, s_got)


def _crowded_or_tied(kind, n, d, k, rng):
    """Rows whose k-th key the three to five largest keys of each group j mod 16 do not
    settle (``crowded``: the k largest entries all in one group, when it holds more;
    every other row, so that rows taken two at a time mix both) or settle with ties at
    it in several groups (``tied``: entries of other groups set to the k-th value or its
    negative, after the k-th in index order or before it); ``spread``: every entry of
    k - 1 groups larger than those of the others, every other row (on rows of 128 and
    k = 12, 88 keys above the k-th largest group maximum: more than the Numba
    backend's groups rank, :data:`kernels.groups.CAND_MAX`)."""
    g = rng.standard_normal((n, d)).astype(np.float32)
    for row in g:
        if kind == "spread" and rng.random() < 0.5:
            big = np.isin(np.arange(d) % 16, rng.permutation(min(16, d))[:k - 1])
            row[big] = (np.sign(row[big]) * (np.abs(row[big]) + 10)).astype(np.float32)
        elif kind == "crowded" and rng.random() < 0.5:
            lane = rng.integers(min(16, d))
            at = np.arange(lane, d, 16)[:k]
            row[at] = rng.permutation(len(at)).astype(np.float32) + 10
        elif kind == "tied":
            kth = np.argsort(-np.abs(row), kind="stable")[k - 1]
            others = np.flatnonzero(np.abs(row) < np.abs(row[kth]))
            at = rng.choice(others, size=min(len(others), 1 + rng.integers(3)), replace=False)
            row[at] = row[kth] * np.where(rng.random(len(at)) < 0.5, -1, 1).astype(np.float32)
    return g


@THREADS
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["crowded", "tied", "spread"])
def test_rows_the_groups_do_not_settle_or_settle_with_ties(backend, kind, threads):
    require_threads(backend, threads)
    rng = np.random.default_rng(23 + threads + len(kind))
    for d in (17, 40, 63, 112, 128):
        for k in _ks(d):
            if k == d:
                continue
            g = _crowded_or_tied(kind, 30, d, k, rng)
            s0 = np.zeros((30, d), np.float32)  # (keys |g|: the ties kept)
            w = rng.uniform(0.5, 2.0, 30).astype(np.float32)
            for scale in (None, w):
                _same_ef21_step(g, s0, k, scale, backend)
            for a, b in zip(reference.topk(g, k), api.topk(g, k, backend=backend)):
                _same(a, b)


def _nans_with_payloads(shape, rng, share, first_payload):
    """float32 array of standard normals with about ``share`` of its entries NaNs, each
    with its own payload (quiet and signalling, either sign), from ``first_payload`` on."""
    x = rng.standard_normal(shape).astype(np.float32)
    at = np.flatnonzero(rng.random(shape) < share)
    flags = rng.random((at.size, 2)) < 0.5
    x.flat[at] = [nan_with_payload(np.float32, first_payload + u, negative=neg, quiet=q)
                  for u, (q, neg) in enumerate(flags)]
    return x


@THREADS
@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_states_and_gradients_keep_the_reference_payloads(backend, threads):
    # a NaN state plus a NaN step: the state's NaN, quieted, stays (the reference's
    # operand order), whichever NaN the step itself carries
    require_threads(backend, threads)
    rng = np.random.default_rng(23 + threads)
    for d in (16, 33, 112, 128, 300):
        g = _nans_with_payloads((24, d), rng, 0.25, 1)
        s0 = _nans_with_payloads((24, d), rng, 0.25, 0x200001)
        w = rng.uniform(0.5, 2.0, 24).astype(np.float32)
        for k in _ks(d):
            _same_ef21_step(g, s0, k, None, backend)
            _same_ef21_step(g, s0, k, w, backend)
