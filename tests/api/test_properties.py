"""Hypothesis property tests: every backend equals the reference on random inputs.

Elements mix small integers (ties), ordinary floats, and the special values (NaN
with several payloads, ±inf, ±0, subnormals). Quick by default; the ``slow`` marker
runs many more examples (``EF21FAST_HYPOTHESIS=slow pytest -m slow``).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from registry_params import kernel_backend_params as registry_params

from ef21fast._spec import KERNELS
from ef21fast.testing import Case, compare, nan_with_payload

PAIRS = registry_params()


@st.composite
def kernel_inputs(draw, max_rows=6, max_d=48, small_k=False):
    """A random :class:`Case`; ``small_k``: a batch of rows with ``2 <= k <= 16`` and
    ``k < d`` (the compiled backends' selection for few entries per row)."""
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    two_d = small_k or draw(st.booleans())
    d = draw(st.integers(3 if small_k else 0, max_d))
    shape = (draw(st.integers(1 if small_k else 0, max_rows)), d) if two_d else (d,)
    specials = [float(nan_with_payload(dtype, p, negative=s)) for p, s in
                ((1, False), (99, True))] + [np.inf, -np.inf, 0.0, -0.0,
                                             float(np.finfo(dtype).smallest_subnormal)]
    elems = st.one_of(
        st.integers(-3, 3).map(float),
        st.floats(width=8 * dtype.itemsize, allow_nan=False),
        st.sampled_from(specials),
    )
    x = draw(hnp.arrays(dtype, shape, elements=elems))
    # keep NaN payloads exactly: hypothesis may normalise them, so re-insert some
    if x.size and draw(st.booleans()):
        flat = x.reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = nan_with_payload(dtype, 4242, True)
    if draw(st.booleans()) and x.ndim == 1 and x.size > 1:
        x = x[::-1]  # negative stride
    elif draw(st.booleans()) and x.ndim == 2:
        x = np.asfortranarray(x)
    state = draw(hnp.arrays(dtype, shape, elements=elems))
    k = draw(st.integers(2, min(16, d - 1))) if small_k else draw(st.integers(0, d))
    return Case("hypothesis", x, k, np.ascontiguousarray(state))


def _kwargs(draw, kernel, case):
    """The kernel's optional factor (from the kernel table): absent, a scalar, or one
    value per row where the kernel takes that."""
    spec = KERNELS[kernel]
    if spec.factor is None:
        return {}
    n = 1 if case.x.ndim == 1 else case.x.shape[0]
    finite = st.floats(-4, 4, allow_nan=False, allow_infinity=False)
    optional = None in spec.factor_values
    if optional and draw(st.booleans()):
        return {}
    if spec.factor_per_row and case.x.ndim == 2 and draw(st.booleans()):
        return {spec.factor: np.array(draw(st.lists(finite, min_size=n, max_size=n)))}
    return {spec.factor: draw(finite)}


@pytest.mark.parametrize("kernel,backend", PAIRS)
@given(data=st.data())
def test_property_matches_reference(kernel, backend, data):
    case = data.draw(kernel_inputs())
    kw = _kwargs(data.draw, kernel, case)
    assert compare(kernel, case, backend, **kw) is None


@pytest.mark.parametrize("kernel,backend", PAIRS)
@given(data=st.data())
def test_property_small_k_rows_match_reference(kernel, backend, data):
    """Batches of rows up to 150 long with 2 <= k <= 16: the group-maxima selection of
    the compiled backends, and its fallback where many keys tie."""
    case = data.draw(kernel_inputs(max_rows=8, max_d=150, small_k=True))
    kw = _kwargs(data.draw, kernel, case)
    assert compare(kernel, case, backend, **kw) is None


@pytest.mark.slow
@pytest.mark.parametrize("kernel,backend", PAIRS)
@settings(max_examples=3000)
@given(data=st.data())
def test_property_matches_reference_many(kernel, backend, data):
    case = data.draw(kernel_inputs(max_rows=20, max_d=300))
    kw = _kwargs(data.draw, kernel, case)
    assert compare(kernel, case, backend, **kw) is None
