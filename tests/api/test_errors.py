"""Bad input: a clear exception naming the argument, the same from every backend,
and nothing modified on the way."""

import numpy as np
import pytest

import ef21fast
from registry_params import backend_params

BACKENDS = backend_params(include_numpy=True)
F64 = np.float64


def _x(d=8, dtype=F64):
    return np.linspace(-1, 1, d).astype(dtype)


def _readonly(a):
    a.flags.writeable = False
    return a


# (kernel, args, kwargs, exception, text the message must contain)
BAD_INPUT = [
    ("topk", lambda: (np.arange(8), 2), TypeError, "x must have dtype"),
    ("topk", lambda: (_x().astype(np.float16), 2), TypeError, "float32 or float64"),
    ("topk", lambda: (_x().astype(np.complex128), 2), TypeError, "x must have dtype"),
    ("topk", lambda: (np.array([1.0, "a"], dtype=object), 1), TypeError, "x must have"),
    ("topk", lambda: (np.array([True, False]), 1), TypeError, "x must have dtype"),
    ("topk", lambda: ("abc", 1), TypeError, "x must be a numpy array"),
    ("topk", lambda: (np.array(3.0), 0), ValueError, "x must be 1-D"),
    ("topk", lambda: (np.zeros((2, 2, 2)), 1), ValueError, "x must be 1-D"),
    ("topk", lambda: (_x(), -1), ValueError, "0 <= k <= d"),
    ("topk", lambda: (_x(), 9), ValueError, "0 <= k <= d"),
    ("topk", lambda: (_x(), 2.0), TypeError, "k must be an integer"),
    ("topk", lambda: (_x(), True), TypeError, "k must be an integer"),
    ("topk", lambda: (_x(), "2"), TypeError, "k must be an integer"),
    ("topk", lambda: (_x(), None), TypeError, "k must be an integer"),
    ("ef21_step", lambda: (_x(), _x(dtype=np.float32), 1), TypeError, "state must have"),
    ("ef21_step", lambda: (_x(), _x(9), 1), ValueError, "state must have the same shape"),
    ("ef21_step", lambda: (_x(), _readonly(_x()), 1), ValueError, "state is updated"),
    ("ef21_step", lambda: (_x(16)[::2], _x(16)[::2], 1), ValueError, "C-contiguous"),
    ("ef21_step", lambda: (_x(), _x().astype(">f8"), 1), TypeError, "native byte order"),
    ("ef21_step", lambda: (_x(), list(_x()), 1), TypeError, "state must be a numpy"),
    ("ef21_step", lambda: (np.zeros((3, 4)), np.zeros((3, 4)), 1, np.ones(2)), ValueError,
     "scale must be a scalar or have shape (3,)"),
    ("ef21_step", lambda: (_x(), _x(), 1, np.ones(8)), ValueError,
     "scale must be a scalar for a 1-D grad"),
    ("ef21_step", lambda: (_x(), _x(), 1, 1j), TypeError, "scale must be a real number"),
    ("ef21_step", lambda: (np.zeros((2, 4)), np.zeros((2, 4)), 1, np.array(["a", "b"])),
     TypeError, "scale must hold real numbers"),
    ("ef21_step", lambda: (np.arange(4), np.zeros(4), 1), TypeError, "grad must have"),
    ("ef21_step", lambda: (_x(), _x(), 9), ValueError, "0 <= k <= d"),
    ("ef_step", lambda: (_x(), _readonly(_x()), 1), ValueError, "error is updated"),
    ("ef_step", lambda: (_x(), _x(), 1, "0.1"), TypeError, "lr must be a real number"),
    ("ef_step", lambda: (_x(), _x(), 1, True), TypeError, "lr must be a real number"),
    ("ef_step", lambda: (_x(), np.zeros((1, 8)), 1), ValueError, "error must have the same"),
    ("scatter_add", lambda: (np.zeros(4), np.array([0, 4]), np.ones(2)), IndexError,
     "idx must lie in [0, 4)"),
    ("scatter_add", lambda: (np.zeros(4), np.array([-1]), np.ones(1)), IndexError,
     "idx must lie in [0, 4)"),
    ("scatter_add", lambda: (np.zeros(4), np.array([0.0]), np.ones(1)), TypeError,
     "idx must hold integers"),
    ("scatter_add", lambda: (np.zeros(4), np.array([0, 1]), np.ones(3)), ValueError,
     "same shape"),
    ("scatter_add", lambda: (np.zeros(4), np.array([0]), np.ones(1, np.float32)), TypeError,
     "val must have the dtype of out"),
    ("scatter_add", lambda: (np.zeros((2, 2)), np.array([0]), np.ones(1)), ValueError,
     "out must be 1-D"),
    ("scatter_add", lambda: (_readonly(np.zeros(4)), np.array([0]), np.ones(1)),
     ValueError, "out is updated"),
    ("scatter_add", lambda: (np.zeros(8)[::2], np.array([0]), np.ones(1)), ValueError,
     "C-contiguous"),
    ("scatter_add", lambda: (np.zeros(4, np.int64), np.array([0]), np.ones(1)),
     TypeError, "out must have dtype"),
    ("scatter_add", lambda: (np.zeros(4), np.zeros((2, 1), np.int64), np.ones((2, 1)),
                             np.ones(3)), ValueError, "weights must be a scalar or have"),
    # masks cannot be honoured by any kernel: rejected, never silently dropped
    ("topk", lambda: (np.ma.masked_array(_x(), mask=_x() > 0), 2), TypeError,
     "x must not be a masked array"),
    ("ef_step", lambda: (_x(), np.ma.masked_array(_x()), 1), TypeError,
     "error must not be a masked array"),
    ("scatter_add", lambda: (np.ma.masked_array(np.zeros(4)), np.array([0]), np.ones(1)),
     TypeError, "out must not be a masked array"),
    # factors beyond the data dtype's range: an error, not a silent inf
    ("ef_step", lambda: (_x(), _x(), 1, 10**400), ValueError, "lr has a value beyond"),
    ("ef_step", lambda: (_x(dtype=np.float32), _x(dtype=np.float32), 1, 1e300), ValueError,
     "lr has a value beyond the range of float32"),
    ("ef21_step", lambda: (np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32), 1,
                           np.array([1.0, 1e300])), ValueError, "scale has a value beyond"),
    ("scatter_add", lambda: (np.zeros(4), np.array([0]), np.ones(1), 10**400), ValueError,
     "weights has a value beyond"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel,make,exc,text", BAD_INPUT,
                         ids=[f"{b[0]}-{i}-{b[3][:24]}" for i, b in enumerate(BAD_INPUT)])
def test_bad_input_raises_clear_error(kernel, make, exc, text, backend):
    args = make()
    snapshot = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with pytest.raises(exc) as info:
        getattr(ef21fast, kernel)(*args, backend=backend)
    assert text in str(info.value)
    for before, after in zip(snapshot, args):
        if isinstance(before, np.ndarray):
            assert np.array_equal(before, after, equal_nan=before.dtype.kind in "fc")


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="backend must be one of"):
        ef21fast.topk(_x(), 1, backend="cuda")


@pytest.mark.parametrize("backend", BACKENDS)
def test_aliased_grad_and_state(backend):
    """grad and state the same array: delta is taken before the update (all zeros)."""
    a = _x()
    b = _x()
    want = ef21fast.ef21_step(b.copy(), b, 3, backend="numpy")
    got = ef21fast.ef21_step(a, a, 3, backend=backend)
    assert np.array_equal(want[0], got[0]) and np.array_equal(a, b)
    e1, e2 = _x(), _x()
    want = ef21fast.ef_step(e1.copy(), e1, 2, backend="numpy")
    got = ef21fast.ef_step(e2, e2, 2, backend=backend)
    assert np.array_equal(want[0], got[0]) and np.array_equal(e1, e2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ndarray_subclasses_are_updated_in_place(backend, tmp_path):
    """np.matrix and np.memmap targets: the kernels work on plain views of the same
    memory; the caller's object holds the update (scatter_add returns it)."""
    grad = np.arange(12.0).reshape(3, 4)
    state = np.zeros((3, 4)).view(np.matrix)
    idx, val = ef21fast.ef21_step(grad, state, 2, backend=backend)
    assert type(idx) is np.ndarray and np.array_equal(np.asarray(state)[0], [0, 0, 2, 3])
    out = np.memmap(tmp_path / "out.bin", dtype=np.float64, mode="w+", shape=(4,))
    assert ef21fast.scatter_add(out, np.array([1, 1]), np.ones(2), backend=backend) is out
    assert np.array_equal(out, [0, 2, 0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_signalling_nan_factor_cast_does_not_warn(backend):
    """A float64 signalling NaN cast to float32 is a NaN factor, without a warning."""
    from ef21fast.testing import nan_with_payload

    snan = nan_with_payload(np.float64, 5, quiet=False)
    err = np.ones(4, np.float32)
    ef21fast.ef_step(np.ones(4, np.float32), err, 1, lr=snan, backend=backend)
    assert np.all(np.isnan(err[1:]))
