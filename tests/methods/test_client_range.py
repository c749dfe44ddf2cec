"""client_grads(x, lo, hi, out) and client_stochastic_grads(..., lo, hi, out): the rows
of a range are bit for bit those rows of the call over all clients, on every oracle
(fused C dense and CSR, NumPy/scipy dense with equal and unequal clients, CSR), float32,
the owned-features regulariser and ClonedProblem; out= is written and checked."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast.methods.data import ClientData
from ef21fast.methods.problems import ClonedProblem, LinearRegression, LogisticRegression

try:
    importlib.import_module("ef21fast.methods.oracle")
    ORACLES = ["numpy", "c"]
except ImportError:
    ORACLES = ["numpy"]


def data(sparse, equal, seed=0, d=37):
    rng = np.random.default_rng(seed)
    m_i = np.full(9, 6) if equal else rng.integers(1, 12, size=9)
    m_i[3] = m_i[3] if equal else 1
    off = np.concatenate([[0], np.cumsum(m_i)]).astype(np.int64)
    m = int(off[-1])
    A = rng.standard_normal((m, d)) * (rng.random((m, d)) < 0.3)
    b = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    if sparse:
        A = sp.csr_matrix(A)
    return ClientData(A, b, off, "t")


def problems():
    for sparse in (False, True):
        for equal in (False, True):
            for cls in (LogisticRegression, LinearRegression):
                for oracle in ORACLES:
                    for dtype in ("float64", "float32"):
                        if oracle == "c" and dtype == "float32":
                            continue
                        for reg in ("all", "owned"):
                            yield (f"{cls.kind}-{'csr' if sparse else 'dense'}-"
                                   f"{'eq' if equal else 'uneq'}-{oracle}-{dtype}-{reg}",
                                   lambda sparse=sparse, equal=equal, cls=cls, oracle=oracle,
                                   dtype=dtype, reg=reg: cls(data(sparse, equal), lam=0.1,
                                                             oracle=oracle, dtype=dtype,
                                                             regulariser=reg))


CASES = dict(problems())
RANGES = [(0, 1), (0, 9), (2, 5), (3, 4), (8, 9), (4, 4), (0, 8), (1, 9)]


def point(p, seed=1):
    return np.random.default_rng(seed).standard_normal(p.d)


@pytest.mark.parametrize("name", sorted(CASES))
def test_range_rows_are_the_full_rows(name):
    p = CASES[name]()
    for x in (point(p), point(p, 2)):
        full = p.client_grads(x)
        for lo, hi in RANGES:
            part = p.client_grads(x, lo, hi)
            assert part.dtype == p.dtype and part.shape == (hi - lo, p.d)
            assert part.tobytes() == full[lo:hi].tobytes(), (lo, hi)
            out = np.full((hi - lo, p.d), np.nan, dtype=p.dtype)
            assert p.client_grads(x, lo, hi, out=out) is out
            assert out.tobytes() == full[lo:hi].tobytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_stochastic_range_rows_are_the_full_rows(name):
    p = CASES[name]()
    x = point(p)
    full = p.client_stochastic_grads(x, 3, np.random.default_rng(5))
    draw = p.draw_minibatches(3, np.random.default_rng(5))
    for lo, hi in RANGES:
        # a Generator: the draw of all clients, the same numbers as the full call
        part = p.client_stochastic_grads(x, 3, np.random.default_rng(5), lo, hi)
        assert part.tobytes() == full[lo:hi].tobytes(), (lo, hi)
        out = np.empty((hi - lo, p.d), dtype=p.dtype)
        p.client_stochastic_grads(x, 3, draw, lo, hi, out=out)
        assert out.tobytes() == full[lo:hi].tobytes(), (lo, hi)


def test_draw_consumes_what_the_full_call_does():
    p = CASES["logreg-dense-uneq-numpy-float64-all"]()
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    p.client_stochastic_grads(point(p), 2, r1)
    p.draw_minibatches(2, r2)
    assert r1.random() == r2.random()


@pytest.mark.parametrize("oracle", ORACLES)
@pytest.mark.parametrize("sparse", [False, True])
def test_cloned_ranges(oracle, sparse):
    base = LogisticRegression(data(sparse, False), oracle=oracle)
    p = ClonedProblem(base, np.array([1, 3, 1, 2, 1, 1, 4, 1, 2]))
    x = point(p)
    full = p.client_grads(x)
    sfull = p.client_stochastic_grads(x, 2, np.random.default_rng(0))
    draw = p.draw_minibatches(2, np.random.default_rng(0))
    for lo, hi in [(0, 1), (1, 4), (2, 3), (0, p.n), (5, 12), (p.n - 1, p.n), (7, 7)]:
        assert p.client_grads(x, lo, hi).tobytes() == full[lo:hi].tobytes()
        out = np.empty((hi - lo, p.d))
        p.client_grads(x, lo, hi, out=out)
        assert out.tobytes() == full[lo:hi].tobytes()
        s = p.client_stochastic_grads(x, 2, draw, lo, hi)
        assert s.tobytes() == sfull[lo:hi].tobytes()


@pytest.mark.parametrize("oracle", ORACLES)
def test_chunked_losses_are_the_fused_pass_losses(oracle):
    p = LogisticRegression(data(True, False), oracle=oracle)
    q = LogisticRegression(data(True, False), oracle=oracle)
    x = point(p)
    p.client_grads(x)
    for lo, hi in [(0, 4), (4, 5), (5, 9)]:
        q.client_grads(x, lo, hi)
    assert p.client_losses(x).tobytes() == q.client_losses(x).tobytes()


def test_bad_range_and_out():
    p = LogisticRegression(data(False, True))
    x = point(p)
    for lo, hi in [(-1, 2), (3, 2), (0, 10), (1.0, 2), (True, 2)]:
        with pytest.raises(ValueError, match="lo|hi|range"):
            p.client_grads(x, lo, hi)
    for out, match in [(np.empty((2, p.d)), "shape"),
                       (np.empty((3, p.d), dtype=np.float32), "dtype"),
                       (np.empty((p.d, 3)).T, "C-contiguous"),
                       ([[0.0] * p.d] * 3, "numpy array")]:
        with pytest.raises(ValueError, match=match):
            p.client_grads(x, 0, 3, out=out)
        with pytest.raises(ValueError, match=match):
            p.client_stochastic_grads(x, 1, np.random.default_rng(0), 0, 3, out=out)
    other = LogisticRegression(data(False, True))
    with pytest.raises(ValueError, match="another problem"):
        p.client_stochastic_grads(x, 1, other.draw_minibatches(1, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="another problem"):
        p.client_stochastic_grads(x, 2, p.draw_minibatches(1, np.random.default_rng(0)))
    with pytest.raises(TypeError, match="Generator"):
        p.client_stochastic_grads(x, 1, 0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_oracle_point_gives_the_same_bits_and_is_held_read_only(name):
    p = CASES[name]()
    x = point(p)
    pt = p.oracle_point(x)
    assert pt.dtype == p.dtype and pt.shape == (p.d,) and not pt.flags.writeable
    assert np.array_equal(pt, x.astype(p.dtype))
    assert p.oracle_point(x.copy()) is pt  # the same values: the same array
    with pytest.raises(ValueError, match="read-only"):
        pt[0] = 1.0
    q = CASES[name]()  # a problem that never saw the point
    for lo, hi in RANGES:
        assert p.client_grads(pt, lo, hi).tobytes() == q.client_grads(x, lo, hi).tobytes()
    assert p.client_losses(pt).tobytes() == q.client_losses(x).tobytes()
    y = point(p, seed=2)
    assert p.client_grads(y, 0, 3).tobytes() == q.client_grads(y, 0, 3).tobytes()
    assert p.oracle_point(y) is not pt  # another x: another copy; the old one unchanged
    assert np.array_equal(pt, x.astype(p.dtype))


def test_oracle_point_spares_the_ranges_comparing_x(monkeypatch):
    """A chunked round compares its x with the problem's last one once (the point),
    not once per range: on a wide problem each comparison cost as much as a range."""
    from ef21fast.methods import method as method_mod
    from ef21fast.methods import problems as problems_mod
    from ef21fast.methods.algorithms import run

    p = LogisticRegression(data(True, False), oracle=ORACLES[-1])
    q = LogisticRegression(data(True, False), oracle=ORACLES[-1])
    ref = run(q, "ef21", k=2, iters=4)
    monkeypatch.setattr(method_mod, "CHUNK_ONE_BELOW", 0)  # every client its own range
    monkeypatch.setattr(method_mod, "CHUNK_FRACTION", 0.0)
    monkeypatch.setattr(method_mod, "CHUNK_MIN_BYTES", 1)
    assert method_mod.chunk_rows(p.n, p.d, 8) == 1
    calls = []
    real = problems_mod._equal
    monkeypatch.setattr(problems_mod, "_equal", lambda a, b: calls.append(1) or real(a, b))
    tr = run(p, "ef21", k=2, iters=4)
    assert tr.x.tobytes() == ref.x.tobytes()
    assert tr.grad_norm_sq.tobytes() == ref.grad_norm_sq.tobytes()
    assert len(calls) <= 5  # at most one a round (the point) and one at the start


def test_oracle_point_of_cloned_problem_and_bad_shape():
    base = LogisticRegression(data(True, False))
    p = ClonedProblem(base, np.array([1, 3, 1, 2, 1, 1, 4, 1, 2]))
    x = point(p)
    pt = p.oracle_point(x)
    assert pt is base.oracle_point(x)
    assert p.client_grads(pt, 2, 7).tobytes() == p.client_grads(x, 2, 7).tobytes()
    with pytest.raises(ValueError, match="shape"):
        p.oracle_point(np.zeros(p.d + 1))
