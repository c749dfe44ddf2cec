"""The reference itself, held against an independent statement of the contract."""

import numpy as np
import pytest

from ef21fast import reference
from ef21fast.testing import all_cases, bits_equal, nan_with_payload


def contract_topk_row(row, k):
    """DESIGN.md's definition, written differently from the reference: NaNs first
    (in index order), then the rest by a stable argsort of -|x|; first k, sorted."""
    row = np.asarray(row)
    nan_idx = np.flatnonzero(np.isnan(row))
    rest = np.flatnonzero(~np.isnan(row))
    with np.errstate(all="ignore"):
        order = rest[np.argsort(-np.abs(row[rest]), kind="stable")]
    return np.sort(np.concatenate([nan_idx, order])[:k])


@pytest.mark.parametrize("case", list(all_cases(large=False)), ids=repr)
def test_reference_topk_matches_contract(case):
    x = np.asarray(case.x)
    idx, val = reference.topk(x, case.k)
    rows = x if x.ndim == 2 else x[None]
    want = np.empty((rows.shape[0], case.k), np.int64)
    for i, r in enumerate(rows):
        want[i] = contract_topk_row(r, case.k)
    assert idx.dtype == np.int64
    assert np.array_equal(idx.reshape(want.shape), want)
    assert bits_equal(val.reshape(want.shape), np.take_along_axis(rows, want, axis=1))


def test_hand_examples():
    x = np.array([1.0, -3.0, 3.0, np.nan, -np.inf, 0.0, -0.0, 2.0])
    assert reference.topk(x, 3)[0].tolist() == [1, 3, 4]  # NaN, -inf, then -3 (smaller index)
    assert reference.topk(x, 4)[0].tolist() == [1, 2, 3, 4]
    z = np.array([-0.0, 0.0, -0.0])
    idx, val = reference.topk(z, 2)
    assert idx.tolist() == [0, 1] and np.signbit(val).tolist() == [True, False]


def test_nan_payload_is_kept():
    x = np.zeros(4, np.float32)
    x[2] = nan_with_payload(np.float32, 77, negative=True)
    _, val = reference.topk(x, 1)
    assert bits_equal(val, x[2:3])


def test_ef21_step_hand_example():
    grad = np.array([1.0, 5.0, -2.0])
    state = np.array([1.0, 1.0, 1.0])
    idx, val = reference.ef21_step(grad, state, 1)
    assert idx.tolist() == [1] and val.tolist() == [4.0]
    assert state.tolist() == [1.0, 5.0, 1.0]
    idx, val = reference.ef21_step(np.array([[2.0, 0.0]]), np.zeros((1, 2)), 1,
                                   scale=np.array([0.5]))
    assert idx.tolist() == [[0]] and val.tolist() == [[1.0]]


def test_ef_step_hand_example():
    error = np.array([0.5, -1.0, 0.0])
    idx, val = reference.ef_step(np.array([1.0, 1.0, -4.0]), error, 2, lr=0.5)
    # error becomes [1.0, -0.5, -2.0]; top 2 are indices 0 and 2
    assert idx.tolist() == [0, 2] and val.tolist() == [1.0, -2.0]
    assert error.tolist() == [0.0, -0.5, 0.0]


def test_scatter_add_order_and_weights():
    out = np.zeros(3)
    idx = np.array([[0, 2], [2, 1]])
    val = np.array([[1.0, 2.0], [3.0, 4.0]])
    reference.scatter_add(out, idx, val, weights=np.array([1.0, 0.5]))
    assert out.tolist() == [1.0, 2.0, 3.5]
    out = np.zeros(2)
    reference.scatter_add(out, np.array([1, 1]), np.array([1.0, 2.0]))
    assert out.tolist() == [0.0, 3.0]
