"""Inputs longer than 2**31 elements (int64 indexing throughout). Opt-in: ``pytest -m huge``.

Needs about 18 GB of memory (two float32 vectors of 2**31 + 17 elements). The check is
independent of any selection code: the vector is zero except for planted entries of
known, distinct magnitudes (several beyond index 2**31), so the exact answer is known.
"""

import time

import numpy as np
import pytest

import ef21fast
from registry_params import backend_params

D = 2**31 + 17
K = 1000

pytestmark = pytest.mark.huge


@pytest.fixture(scope="module")
def planted():
    """x: zeros, K winners of magnitude >= 1 (among them indices 2**31 and D - 1), and
    K losers of magnitude 0.5; want: the winners' indices, ascending."""
    rng = np.random.default_rng(31)
    pos = rng.choice(D - 2, size=2 * K, replace=False)
    pos = pos[pos != 2**31]
    winners = np.concatenate([pos[: K - 2], [2**31, D - 1]]).astype(np.int64)
    losers = pos[K - 2: 2 * K - 2]
    x = np.zeros(D, dtype=np.float32)
    signs = np.where(rng.random(K) < 0.5, -1.0, 1.0).astype(np.float32)
    x[winners] = signs * np.arange(1, K + 1, dtype=np.float32)
    x[losers] = -0.5
    return x, np.sort(winners)


@pytest.mark.parametrize("backend", backend_params())
def test_topk_and_ef21_step_beyond_2_31(planted, backend):
    x, want = planted
    t = time.perf_counter()
    idx, val = ef21fast.topk(x, K, backend=backend)
    t_topk = time.perf_counter() - t
    assert np.array_equal(idx, want) and np.array_equal(val, x[want])
    state = np.zeros_like(x)
    t = time.perf_counter()
    idx2, val2 = ef21fast.ef21_step(x, state, K, backend=backend)
    t_step = time.perf_counter() - t
    assert np.array_equal(idx2, want) and np.array_equal(val2, x[want])
    assert np.array_equal(state[want], x[want])
    state[want] = 0
    assert not state.any()
    print(f"\n[{backend}] d = 2**31 + 17, k = {K}: topk {t_topk:.2f} s, "
          f"ef21_step {t_step:.2f} s")
