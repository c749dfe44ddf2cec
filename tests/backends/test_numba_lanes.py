"""The vector operations of the Numba backend that the selection of few entries in
short rows uses (``kernels/lanes.py``, and ``eq_mask`` and ``gt_mask`` of
``kernels/masks.py``: LLVM vector code emitted through Numba intrinsics) and that
selection (``kernels/groups.py``), on int32 and int64 keys: the jitted versions
against the plain Python ones (which ``NUMBA_DISABLE_JIT=1`` runs), and both against
definitions written here by brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ef21fast.backends.registry import backend_errors

NUMBA_MISSING = backend_errors().get("numba")
pytestmark = pytest.mark.skipif(NUMBA_MISSING is not None, reason=str(NUMBA_MISSING))

if NUMBA_MISSING is None:
    from numba import njit

    from ef21fast.kernels import groups, lanes, masks

    @njit
    def _jit_all(keys, nvec, t, m, off, k, ck, c, packed):
        """Every operation once, in jitted code (keys: 128 of them)."""
        words = np.empty((2, 2), np.uint64)
        for q in range(2):
            words[0, q] = masks.gt_mask(keys, q * 64, t)
            words[1, q] = masks.eq_mask(keys, q * 64, t)
        lanes.group_top2(keys, nvec, m)
        n = masks.compress_gt(keys, 64, t, packed, masks.compress_gt(keys, 0, t, packed, 0))
        return words, lanes.kth_lanes(m, off, k), lanes.kth_of(ck, c, k), n

    @njit
    def _jit_kth_levels(keys, nvec, k):
        return lanes.kth_levels(keys, nvec, k)

    @njit
    def _jit_select(keys, d, k, m, ck, sel):
        return groups.select_groups(keys, d, k, m, ck, sel)

DTYPES = [np.int32, np.int64]


def _py_all(keys, nvec, t, m, off, k, ck, c, packed):
    words = np.array([[f(keys, q * 64, t) for q in range(2)]
                      for f in (masks.gt_mask, masks.eq_mask)], np.uint64)
    lanes.group_top2(keys, nvec, m)
    n = masks.compress_gt(keys, 64, t, packed, masks.compress_gt(keys, 0, t, packed, 0))
    return words, lanes.kth_lanes(m, off, k), lanes.kth_of(ck, c, k), n


def _brute(keys, nvec, t, off, k, ck, c):
    """The definitions, element by element."""
    words = np.zeros((2, 2), np.uint64)
    for j in range(128):
        for r, hit in enumerate((keys[j] > t, keys[j] == t)):
            if hit:
                words[r, j // 64] |= np.uint64(1 << (j % 64))
    top = np.full(32, -1, np.int64)
    for u in range(16):
        col = sorted((int(keys[q * 16 + u]) for q in range(nvec)), reverse=True)
        top[u] = col[0]
        if len(col) > 1:
            top[16 + u] = col[1]
    lane_keys = sorted(top[off:off + 16].tolist(), reverse=True)
    cands = sorted(ck[:c].tolist(), reverse=True)
    return words, top, lane_keys[k - 1], cands[k - 1]


def _check(keys, t, off, k, ck, c, dtype):
    """keys: 16 nvec of them, read as 128 (padded with -1) by the masks."""
    nvec = len(keys) // 16
    keys = np.concatenate([keys, np.full(128 - len(keys), -1)]).astype(dtype)
    ck = ck.astype(dtype)
    t = dtype(t)
    m_jit, m_py = np.empty(32, dtype), np.empty(32, dtype)
    words_b, top_b, kl_b, ko_b = _brute(keys, nvec, t, off, k, ck, c)
    above = [int(x) for x in keys if x > t]  # compress_gt: the keys above t, in order
    # (room for the whole vectors it stores past the count: 64 more)
    p_jit, p_py = np.full(128 + 64, -7, dtype), np.full(128 + 64, -7, dtype)
    for got, m, packed in ((_jit_all(keys, nvec, t, m_jit, off, k, ck, c, p_jit), m_jit,
                            p_jit),
                           (_py_all(keys, nvec, t, m_py, off, k, ck, c, p_py), m_py, p_py)):
        words, kl, ko, n = got
        assert np.array_equal(words, words_b)
        assert np.array_equal(m.astype(np.int64), top_b)
        assert (int(kl), int(ko)) == (kl_b, ko_b)
        assert n == len(above) and packed[:n].tolist() == above


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_lane_operations_match_their_definitions(dtype, data):
    nvec = data.draw(st.integers(1, 8))
    hi = data.draw(st.sampled_from([3, 50, 2**31 - 1]))  # heavy ties to none
    keys = np.array(data.draw(st.lists(st.integers(-1, hi), min_size=16 * nvec,
                                       max_size=16 * nvec)))
    t = data.draw(st.sampled_from(keys.tolist()) | st.integers(-1, hi))
    c = data.draw(st.integers(1, 64))
    ck = np.array(data.draw(st.lists(st.integers(0, hi), min_size=64, max_size=64)))
    k = data.draw(st.integers(1, min(c, 16)))
    _check(keys, t, 16 * data.draw(st.integers(0, 1)), k, ck, c, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lane_operations_at_the_edges(dtype):
    """Candidate counts at the vector boundaries (1, 16, 17, 32, 33, 64) with k = 1, 2
    (kth_lanes by two reductions) and 16, the largest keys of each width, keys all
    equal, and -1 padding."""
    rng = np.random.default_rng(3)
    top = np.iinfo(dtype).max
    for c in (1, 16, 17, 32, 33, 64):
        for k in sorted({1, min(c, 2), min(c, 16)}):
            for hi in (1, 1000, top):
                keys = rng.integers(-1, hi, 16 * 8, endpoint=True)
                ck = rng.integers(0, hi, 64, endpoint=True)
                ck[c:] = top  # (past c: never read as keys)
                _check(keys, keys[5], 0, k, ck, c, dtype)
                _check(np.full(16, 7), 7, 16, k, np.full(64, 7), c, dtype)


def _kth_levels_case(keys, d, k, dtype):
    """kth_levels of keys[:d] (padded with -1), jitted and in Python: the same result,
    UNSETTLED or the k-th largest key. Returns whether it settled."""
    nvec = -(-d // 16)
    padded = np.full(16 * nvec, -1, dtype)
    padded[:d] = keys[:d]
    want = sorted(padded[:d].tolist(), reverse=True)[k - 1]
    got_jit = int(_jit_kth_levels(padded, nvec, k))
    got_py = int(lanes.kth_levels(padded, nvec, k))
    assert got_jit == got_py, (got_jit, got_py, k, d)
    assert got_jit in (lanes.UNSETTLED, want), (got_jit, want, k, d)
    return got_jit != lanes.UNSETTLED


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_kth_levels_is_the_kth_key_or_unsettled(dtype, data):
    """The k-th key from the groups' levels (three levels for k <= 4, four up to 8,
    five above; the insertion of the third and fourth level's lanes; the shortcut by
    the maxima for k <= 12), on rows with heavy ties, zeros and the largest keys."""
    d = data.draw(st.integers(17, 128))
    k = data.draw(st.integers(1, 16))
    hi = data.draw(st.sampled_from([1, 3, 50, int(np.iinfo(dtype).max) - 1]))
    keys = np.array(data.draw(st.lists(st.integers(0, hi), min_size=d, max_size=d)),
                    dtype)
    _kth_levels_case(keys, d, k, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kth_levels_settles_most_random_rows(dtype):
    """On random rows of 112 the levels settle almost every row for every k (by
    simulation: at most about 3% left at k = 16), so the fast path is what runs;
    sorted and reversed rows (every key of a group in one level) are left to the
    caller or settled exactly."""
    rng = np.random.default_rng(11)
    for k in range(1, 17):
        settled = sum(_kth_levels_case(rng.integers(0, 2**30, 112), 112, k, dtype)
                      for _ in range(200))
        assert settled >= 180, (k, settled)
        for row in (np.arange(112), np.arange(112)[::-1], np.zeros(112, int)):
            _kth_levels_case(row, 112, k, dtype)


def _select_brute(keys, d, k):
    order = sorted(range(d), key=lambda j: (-int(keys[j]), j))
    return sorted(order[:k])


def _threshold_brute(keys, d, k):
    """The groups' threshold as the docstring of kernels.groups states it."""
    cols = [sorted((int(keys[j]) for j in range(u, d, 16)), reverse=True) + [-1, -1]
            for u in range(16)]
    if k <= groups.TOP1_K:
        return sorted((c[0] for c in cols), reverse=True)[k - 1]
    return sorted((c[1] for c in cols), reverse=True)[(k + 1) // 2 - 1]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_select_groups_is_the_k_largest_ties_to_the_smaller_index(dtype, data):
    d = data.draw(st.integers(3, groups.GROUPS_MAX_D))
    k = data.draw(st.integers(2, min(16, d - 1)))
    hi = data.draw(st.sampled_from([2, 40, 2**31 - 1]))
    keys = np.full(64 * -(-d // 64), -1, dtype)
    keys[:d] = data.draw(st.lists(st.integers(0, hi), min_size=d, max_size=d))
    want = _select_brute(keys, d, k)
    # (its plain Python version runs under NUMBA_DISABLE_JIT in test_threads.py)
    sel = np.empty(groups.CAND_MAX, np.int64)
    got = _jit_select(keys, d, k, np.empty(32, dtype),
                      np.empty(groups.CAND_MAX + 64, dtype), sel)
    tv = _threshold_brute(keys, d, k)
    assert np.count_nonzero(keys[:d] >= tv) >= k
    if got == 0:  # only when more than CAND_MAX keys are above it
        assert np.count_nonzero(keys[:d] > tv) > groups.CAND_MAX
    else:
        assert got == k and sel[:k].tolist() == want


def test_eq_mask_takes_a_wider_threshold():
    """int32 keys against an int64 t (what Numba's arithmetic makes of canon's keys):
    the same bits as the brute force, and none for a t outside int32."""
    keys = np.random.default_rng(9).integers(-1, 4, 64).astype(np.int32)

    @njit
    def wide(keys, t):
        return masks.eq_mask(keys, 0, np.int64(t))
    for t in (-1, 0, 3, 2**31, -2**31 - 1):
        want = sum(1 << u for u in range(64) if keys[u] == t)
        assert int(wide(keys, t)) == want == int(masks.eq_mask(keys, 0, t))
