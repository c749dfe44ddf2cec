"""Differential fuzzing of the public kernels (see :mod:`ef21fast.testing.fuzzing`).

Every backend must agree with the numpy reference on adversarial calls: the same
exception type, or the same bits and the same memory afterwards. Quick by default;
``pytest -m slow tests/test_fuzz.py`` runs ``$EF21FAST_FUZZ_EXAMPLES`` examples
(default 20000). The coverage-guided harness is ``fuzz/fuzz_kernels.py`` (atheris).

Findings become ``test_regression_*`` tests below (xfail until fixed; all fixed so
far); the fuzz tests skip calls matching an open finding
(``ef21fast.testing.fuzzing.KNOWN_ISSUES``, empty now).
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ef21fast import reference
from ef21fast.backends import registry
from ef21fast.testing import fuzzing
from ef21fast.testing.fuzzing import (
    HypothesisSource,
    build_call,
    check_call,
    clone,
    known_issue,
)
from ef21fast.testing import nan_with_payload

COMPILED = [b for b in registry.available_backends() if b != "numpy"]
needs_compiled = pytest.mark.skipif(not COMPILED, reason="no compiled backend here")
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def _fuzz_one(data, large=True):
    call = build_call(HypothesisSource(data), large=large)
    assume(known_issue(call) is None)
    check_call(*call)


@settings(max_examples=int(os.environ.get("EF21FAST_FUZZ_QUICK_EXAMPLES", "1500")),
          deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_fuzz_backends_match_reference(data):
    _fuzz_one(data, large=False)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("EF21FAST_FUZZ_EXAMPLES", "20000")),
          deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_fuzz_backends_match_reference_many(data):
    _fuzz_one(data)


# ---------------------------------------------------------------- the machinery itself


def test_clone_keeps_aliasing_layout_and_flags():
    base = np.arange(40.0)
    x = base[30:5:-3]
    ro = base.astype(">f4")[::2]
    ro.flags.writeable = False
    raw = np.zeros(8 * 5 + 3, np.uint8)
    unaligned = np.ndarray((5,), np.float64, buffer=raw, offset=3)
    args, kwargs, regions, where = clone((x, base, ro, unaligned), {"s": base[:2]})
    cx, cbase, cro, cun = args
    assert np.may_share_memory(cx, cbase) and np.may_share_memory(kwargs["s"], cbase)
    assert not np.may_share_memory(cx, base)
    assert cx.strides == x.strides and np.array_equal(cx, x)
    assert cro.dtype.str == ">f4" and not cro.flags.writeable and np.array_equal(cro, ro)
    assert not cun.flags.aligned and np.array_equal(cun, unaligned)
    assert where[id(cx)] == where[id(cbase)] != where[id(cro)]
    assert all(r.canaries_intact() for r in regions)
    cbase[0] = 99.0
    assert kwargs["s"][0] == 99.0 and base[0] == 0.0


def test_build_call_from_bytes():
    """The atheris harness's path: choices from a FuzzedDataProvider."""
    atheris = pytest.importorskip("atheris")
    rng = np.random.default_rng(5)
    kernels = set()
    for _ in range(40):
        call = build_call(fuzzing.FDPSource(atheris.FuzzedDataProvider(rng.bytes(60))),
                          large=False)
        kernels.add(call.kernel)
        if known_issue(call) is None:
            check_call(*call)
    assert kernels == set(registry.KERNELS)


@pytest.fixture
def fake_backend(monkeypatch):
    """Install a backend (default "fake"): the reference with some kernels replaced."""
    def install(name="fake", **kernels):
        module = types.SimpleNamespace(**{k: getattr(reference, k) for k in registry.KERNELS})
        for kernel, fn in kernels.items():
            setattr(module, kernel, fn)
        monkeypatch.setitem(registry._MODULES, name, "ef21fast.reference")
        monkeypatch.setitem(registry._loaded, name, module)
        return [name]
    return install


def _nan_row(dtype=np.float64):
    x = np.linspace(-1, 1, 6).astype(dtype)
    x[2] = nan_with_payload(dtype, 77)
    return x


def _topk_flip_payload(x, k):
    idx, val = reference.topk(x, k)
    val.view(np.uint64)[np.isnan(val)] ^= 1
    return idx, val


def _ef21_skip_update(grad, state, k, scale):
    return reference.ef21_step(grad, state.copy(), k, scale)


def _ef_touch_grad(grad, error, k, lr):
    result = reference.ef_step(grad, error, k, lr)
    grad[0, 0] = 5.0  # the api passes a contiguous native grad through
    return result


def _scatter_out_of_bounds(out, idx, val, weights):
    out.base[0] ^= 1  # the byte before out's block: a canary
    return reference.scatter_add(out, idx, val, weights)


def _topk_raises(x, k):
    raise ValueError("fake")


BROKEN = {
    "topk: NaN payload of a copied value": ("topk", _topk_flip_payload, (_nan_row(), 3), {}),
    "ef21_step: state not updated": ("ef21_step", _ef21_skip_update,
                                     (np.ones(6), np.zeros(6), 2), {}),
    "ef_step: grad modified": ("ef_step", _ef_touch_grad, (np.ones(6), np.zeros(6), 2), {}),
    "scatter_add: write out of bounds": ("scatter_add", _scatter_out_of_bounds,
                                         (np.zeros(4), np.array([1, 1]), np.ones(2)), {}),
    "topk: raises on valid input": ("topk", _topk_raises, (np.ones(3), 1), {}),
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_oracle_catches_broken_backend(what, fake_backend):
    kernel, fn, args, kwargs = BROKEN[what]
    backends = fake_backend(**{kernel: fn})
    with pytest.raises(AssertionError, match=r"\[fake\]"):
        check_call(kernel, args, kwargs, backends)


def test_oracle_rejects_nan_payload_of_computed_values(fake_backend):
    """Computed values are compared bit for bit too: the reference fixes which NaN comes
    out of an operation on two NaNs (the first operand's, quietened)."""
    def other_payload(grad, state, k, scale):
        idx, val = reference.ef21_step(grad, state, k, scale)
        for a in (val, state):
            a[np.isnan(a)] = nan_with_payload(a.dtype, 999)
        return idx, val
    backends = fake_backend(ef21_step=other_payload)
    with pytest.raises(AssertionError, match=r"\[fake\] val differs"):
        check_call("ef21_step", (_nan_row(), np.zeros(6), 3), {}, backends)


def _two_nans(dtype, n=2, d=64):
    """(a, b): n x d arrays NaN at the same places (every third element) with different
    payloads and signs; long enough rows for NumPy's SIMD loops (which may swap the
    operands of + and *) and their scalar tails."""
    a = np.linspace(-2, 2, n * d).reshape(n, d).astype(dtype)
    b = a[:, ::-1].copy() * dtype(0.5)
    for j in range(0, d, 3):
        a[:, j] = nan_with_payload(dtype, 11 + j, negative=j % 2 == 0)
        b[:, j] = nan_with_payload(dtype, 500 + j, negative=j % 4 == 0, quiet=j % 6 != 0)
    return a, b


def _quiet_bits(x):
    bits = x.view(np.uint32 if x.dtype == np.float32 else np.uint64).copy()
    bits[np.isnan(x)] |= bits.dtype.type(1 << (22 if x.dtype == np.float32 else 51))
    return bits


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reference_first_nan_rule(dtype):
    """The reference's own results: where both operands are NaN, the first one's NaN,
    quietened (error + lr * grad keeps the error's; state + (grad - state) the state's)."""
    a, b = _two_nans(dtype)
    both = np.isnan(a) & np.isnan(b)
    rows = np.arange(2)[:, None]
    err = b.copy()
    idx, val = reference.ef_step(a, err, 5, lr=0.5)
    sent = np.zeros_like(both)
    sent[rows, idx] = True
    assert both[~sent].any() and np.isnan(val).any()
    np.testing.assert_array_equal(_quiet_bits(err)[both & ~sent], _quiet_bits(b)[both & ~sent])
    np.testing.assert_array_equal(_quiet_bits(val), _quiet_bits(b[rows, idx]))
    state = b.copy()
    idx, val = reference.ef21_step(a, state, 20)
    hit = both[rows, idx]
    assert hit.any()
    np.testing.assert_array_equal(_quiet_bits(state[rows, idx])[hit], _quiet_bits(b[rows, idx])[hit])


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", ["ef21_step", "ef21_step-scale", "ef_step", "scatter_add"])
def test_regression_two_nan_operands(kernel, dtype):
    """Where both operands were NaN, NumPy's loops returned the second one's payload past
    the 16th element on an AVX-512 machine, so the reference disagreed with the compiled
    backends' first-operand rule; the reference now applies it explicitly."""
    a, b = _two_nans(dtype)
    scale = np.array([nan_with_payload(dtype, 5)[()], dtype(0.5)], dtype=dtype)
    if kernel == "ef21_step":
        call = ("ef21_step", (a, b, 20), {})
    elif kernel == "ef21_step-scale":
        call = ("ef21_step", (a, b, 20), {"scale": scale})
    elif kernel == "ef_step":
        call = ("ef_step", (a, b, 20), {"lr": 0.5})
    else:
        idx = np.tile(np.arange(0, 64, 2), (2, 1))
        call = ("scatter_add", (b[0].copy(), idx, a[:, ::2].copy()), {"weights": scale})
    check_call(*call, COMPILED)


def test_oracle_rejects_undocumented_exception(fake_backend):
    def crash(x, k):
        raise RuntimeError("internal")
    fake_backend("numpy", topk=crash)  # the reference itself
    with pytest.raises(AssertionError, match=r"\[numpy\] undocumented exception"):
        check_call("topk", (np.ones(3), 1), {}, fake_backend(topk=crash))


# ---------------------------------------------------------------- findings

@pytest.mark.parametrize("kernel,args,kwargs", [
    ("ef_step", (np.ones(2), np.zeros(2), 1), {"lr": 10**400}),
    ("ef21_step", (np.ones(2), np.zeros(2), 1), {"scale": 10**400}),
    ("scatter_add", (np.zeros(2), np.array([0]), np.ones(1)), {"weights": 10**400}),
], ids=["ef_step-lr", "ef21_step-scale", "scatter_add-weights"])
def test_regression_huge_int_factor(kernel, args, kwargs):
    """An int beyond float64 (10**400) as lr/scale/weights raised OverflowError; now ValueError naming the argument."""
    check_call(kernel, args, kwargs, COMPILED)


@needs_compiled
def test_regression_scale_view_of_state():
    """scale, a view of state, was read by the compiled backends after rows of state were updated; the api now copies it."""
    state = np.ones((2, 3))
    check_call("ef21_step", (np.full((2, 3), 2.0), state, 3), {"scale": state[0, :2]},
               COMPILED)


@needs_compiled
def test_regression_weights_view_of_out():
    """weights, a view of out, was read after out was updated; the api now copies it."""
    out = np.ones(3)
    check_call("scatter_add", (out, np.array([[1], [0]]), np.ones((2, 1))),
               {"weights": out[:2]}, COMPILED)


@needs_compiled
def test_regression_val_view_of_out():
    """val, a view of out, was read after out was updated (reference [4, 3, 5], compiled [7, 3, 6]); the api now copies it."""
    out = np.array([1.0, 2.0, 3.0])
    check_call("scatter_add", (out, np.array([1, 2, 0]), out[0:3]), {}, COMPILED)


def _fresh_process(code: str) -> None:
    """Run ``code`` in a new interpreter (crashes, first-call behaviour); fail if it fails."""
    # cwd outside the source tree: its ef21fast/ would shadow the installed package
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, check=False, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr[-3000:]}"


@needs_compiled
def test_regression_idx_view_of_out():
    """idx sharing memory with out was re-read after out was written: writes out of bounds, a segfault in both compiled backends; the api now copies it."""
    _fresh_process(f"""
        import numpy as np
        from ef21fast.testing.fuzzing import check_call
        out = np.zeros(4)
        idx = out.view(np.int64)
        idx[:] = [1, 2, 3, 0]
        check_call("scatter_add", (out, idx, np.ones(4)), {{}}, {COMPILED!r})
    """)


@needs_compiled
def test_regression_subclass_target_masked():
    """A masked state reached the backends (the reference honoured the mask, the compiled ones did not); masked arrays are now rejected (TypeError)."""
    error = np.ma.masked_array(np.ones(6), mask=[1, 0, 0, 0, 0, 0])
    check_call("ef_step", (np.array([5.0, 1, 4, 0, 3, 2]), error, 2), {}, COMPILED)


@pytest.mark.skipif("numba" not in COMPILED, reason="numba backend not available")
def test_regression_subclass_target_masked_numba_first_call():
    """A masked out made Numba raise NumbaTypeError on a first call; now a TypeError from validation, in every backend."""
    _fresh_process("""
        import numpy as np
        from ef21fast.testing.fuzzing import check_call
        out = np.ma.masked_array(np.zeros(4))
        check_call("scatter_add", (out, np.array([0, 1]), np.ones(2)), {}, ["numba"])
    """)


@pytest.mark.skipif("numba" not in COMPILED, reason="numba backend not available")
def test_regression_subclass_target_matrix_numba_parallel():
    """An np.matrix state failed to compile in the Numba within-row path; subclasses now reach the backends as plain ndarray views."""
    _fresh_process("""
        import numpy as np
        from ef21fast.testing.fuzzing import check_call
        state = np.zeros((1, 2**18 + 5)).view(np.matrix)
        check_call("ef21_step", (np.ones((1, 2**18 + 5)), state, 1), {}, ["numba"])
    """)
