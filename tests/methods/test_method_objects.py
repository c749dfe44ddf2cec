"""The method objects of ef21fast.methods (one class per method): the registry, the
options checked when an object is built, and one round of each against its update
written directly in NumPy (docs/maths.rst, "Methods").

The multi-round iterates against independent references are in test_algorithms.py;
here each object's state (``errors``, ``state``, ``g``) and the ``Round`` it returns
are checked after ``start``, ``step`` and ``round``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ef21fast.methods import algorithms
from ef21fast.methods.algorithms import METHOD_CLASSES, METHODS, method_class
from ef21fast.methods.data import make_synthetic
from ef21fast.methods.method import Method, Round
from ef21fast.methods.problems import LinearRegression, LogisticRegression

RTOL = 1e-13


def tiny(kind="logreg"):
    cd = make_synthetic(n=5, d=4, m_per_client=6, spread=1.5, seed=2, kind=kind)
    cls = LogisticRegression if kind == "logreg" else LinearRegression
    return cls(cd, lam=0.1)


def topk(v, k):
    keep = np.argsort(-np.abs(v), kind="stable")[:k]
    out = np.zeros_like(v)
    out[keep] = v[keep]
    return out


def options_for(name):
    opts = dict(k=2, gamma=0.1, backend="numpy")
    if name.endswith("-pp"):
        opts["p"] = 0.6
    if name.endswith("-sgd"):
        opts["batch"] = 2
    return opts


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(1.0, np.max(np.abs(b))))


# -------------------------------------------------------------------- the registry

def test_registry_names_and_order():
    assert METHODS == ("gd", "ef14", "ef21", "ef21-w", "ef21-sgd", "ef21-w-sgd",
                       "ef21-pp", "ef21-w-pp", "ef21-clone")
    assert tuple(METHOD_CLASSES) == METHODS
    for name, cls in METHOD_CLASSES.items():
        assert issubclass(cls, Method) and cls.name == name
        assert method_class(name) is cls
    for bad in ("nope", None, 3):
        with pytest.raises(ValueError, match="method must be one of"):
            method_class(bad)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("rule", ["theory-am", "theory-qm", 0.25])
def test_step_size_is_the_objects_gamma(name, rule):
    problem = tiny()
    m = method_class(name)(problem, k=2, gamma=rule, gamma_mult=3.0, p=0.9,
                           backend="numpy")
    # for ef21-clone, step_size takes the cloned problem (m.problem)
    assert algorithms.step_size(m.problem, name, rule, 3.0, k=2, p=0.9) == \
        (m.gamma, m.gamma_rule)


# ------------------------------------------------------- options, checked up front

@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("bad, exc, match", [
    (dict(k=0), ValueError, "k must be in"),
    (dict(k=2.0), TypeError, "k must be an integer"),
    (dict(bits="all"), ValueError, "bits must be one of"),
    (dict(gamma=0.0), ValueError, "gamma must be positive"),
    (dict(gamma="theory"), ValueError, "gamma must be a positive number or one of"),
    (dict(gamma_mult=-1.0), ValueError, "gamma_mult"),
    (dict(backend="nope"), ValueError, "backend"),
    (dict(p=1.5), ValueError, r"\(0, 1\]"),
    (dict(participation="some"), ValueError, "participation must be one of"),
    (dict(batch=0), ValueError, "batch must be"),
])
def test_bad_options_fail_when_the_object_is_built(name, bad, exc, match):
    problem = tiny()

    def no_gradients(x):
        raise AssertionError("a gradient was computed before the options were checked")

    problem.client_grads = no_gradients
    problem.client_stochastic_grads = no_gradients
    ignored = (("k" in bad and name == "gd")
               or (("p" in bad or "participation" in bad) and not name.endswith("-pp"))
               or ("batch" in bad and not name.endswith("-sgd")))
    opts = {**options_for(name), **bad}
    if ignored:  # an option the method does not take is not checked
        method_class(name)(problem, **opts)
        return
    with pytest.raises(exc, match=match):
        method_class(name)(problem, **opts)


def test_object_attributes():
    problem = tiny()
    m = method_class("ef21-w-pp")(problem, k=3, bits="values+indices", p=0.5,
                                  participation="fixed", backend="numpy")
    assert (m.n, m.d, m.k, m.backend) == (5, 4, 3, "numpy")
    assert m.bits_per_round == 3 * (32 + 2)
    assert m.size == 2 and m.extra == {"participation": "fixed", "p": 0.4,
                                       "subset_size": 2}
    np.testing.assert_array_equal(m.weights, problem.L_i / problem.L_i.sum())
    gd = method_class("gd")(problem, k=99, backend="numpy")
    assert gd.k == problem.d and gd.bits_per_round == 32.0 * problem.d
    clone = method_class("ef21-clone")(problem, backend="numpy")
    assert clone.n == clone.problem.n == clone.extra["clones"] >= problem.n
    assert clone.extra["base_clients"] == problem.n
    sgd = method_class("ef21-sgd")(problem, backend="numpy")
    np.testing.assert_array_equal(sgd.batch, np.maximum(1, problem.m_i // 10))
    assert "Method" not in repr(m) and "EF21WPP" in repr(m)


# ----------------------------------------------------- one round against NumPy

@pytest.mark.parametrize("kind", ["logreg", "linreg"])
@pytest.mark.parametrize("name", METHODS)
def test_one_round_against_numpy(name, kind):
    problem = tiny(kind)
    m = method_class(name)(problem, **options_for(name))
    P, n, k, gamma = m.problem, m.n, m.k, m.gamma
    x0 = np.random.default_rng(1).standard_normal(problem.d) * 0.5
    x0_copy = x0.copy()
    rng, twin = np.random.default_rng(7), np.random.default_rng(7)

    G0 = P.client_grads(x0)
    grad0 = m.start(x0, rng)
    close(grad0, G0.mean(axis=0))

    x1 = m.step(x0)
    assert x1 is not x0
    np.testing.assert_array_equal(x0, x0_copy)
    # EF14's errors of the step from x0 (a round already makes the next step's)
    errors = m.errors.copy() if name == "ef14" else None
    rnd = m.round(x1)
    assert isinstance(rnd, Round)
    G1 = P.client_grads(x1)

    if name == "gd":
        close(x1, x0 - gamma * G0.mean(axis=0))
        close(rnd.grad, G1.mean(axis=0))
        assert rnd.bits == 32.0 * problem.d
        return
    if name == "ef14":
        e = gamma * G0
        c = np.array([topk(row, k) for row in e])
        close(errors, e - c)
        close(x1, x0 - c.sum(axis=0) / n)
        close(rnd.grad, G1.mean(axis=0))
        assert rnd.bits == 32.0 * k
        return

    # EF21 forms: weights, start, step, the round of the participants
    w = P.L_i / P.L_i.sum() if m.weighted else np.full(n, 1.0 / n)
    scale = 1.0 / (n * w)
    g_i = G0 * scale[:, None]
    g = w @ g_i
    close(x1, x0 - gamma * g)
    if name.endswith("-sgd"):
        G1 = P.client_stochastic_grads(x1, m.batch, twin)
    members = np.arange(n)
    if name.endswith("-pp"):
        members = np.flatnonzero(twin.random(n) < 0.6)
    for i in members:
        c = topk(G1[i] * scale[i] - g_i[i], k)
        g_i[i] = g_i[i] + c
        g = g + w[i] * c
    close(m.state, g_i)
    close(m.g, g)
    if name.endswith("-sgd"):
        close(rnd.grad, P.grad(x1))
    else:
        close(rnd.grad, P.client_grads(x1).mean(axis=0))
    assert rnd.bits == 32.0 * k * members.size / n


def test_pp_fixed_draws_a_sorted_subset():
    m = method_class("ef21-pp")(tiny(), p=0.6, participation="fixed", backend="numpy")
    m.start(np.zeros(m.d), np.random.default_rng(0))
    for _ in range(5):
        S = m.participants()
        assert S.size == 3 and np.all(np.diff(S) > 0) and S.max() < m.n


@pytest.mark.parametrize("backend", ["c", "numba", "numpy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["ef21", "ef21-w", "ef21-sgd"])
def test_kernels_called_directly_match_the_api(monkeypatch, name, dtype, backend):
    """EF21's rounds call the backend's kernels on the method's own rows without the
    API's checks: the same bits as through ``ef21fast.api`` (forced here), in chunks of
    clients and in one."""
    from ef21fast.backends.registry import available_backends
    from ef21fast.methods import ef21, method

    if backend not in available_backends():
        pytest.skip(f"backend {backend} not available")
    data = make_synthetic(n=13, d=40, m_per_client=9, seed=3)
    problem = LogisticRegression(data, lam=0.1, dtype=dtype)
    calls = []
    direct = ef21.EF21._own_rows

    def spy(self, G, lo, hi):
        calls.append(direct(self, G, lo, hi))
        return calls[-1]

    traces = []
    for chunk in (None, 4):
        if chunk is not None:
            monkeypatch.setattr(method, "chunk_rows", lambda n, d, itemsize: chunk)
        for own in (spy, lambda self, G, lo, hi: False):
            monkeypatch.setattr(ef21.EF21, "_own_rows", own)
            traces.append(algorithms.run(problem, name, k=3, iters=12, seed=5,
                                         backend=backend))
    assert any(calls), "the direct path was never taken"
    for tr in traces[1:]:
        for col in ("x", "f", "grad_norm_sq"):
            np.testing.assert_array_equal(getattr(tr, col), getattr(traces[0], col))
