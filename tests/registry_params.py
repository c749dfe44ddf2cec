"""pytest parameters over the backend registry, shared by the test and benchmark suites.

A pair that does not work here (backend absent, kernel missing) becomes a skip carrying
the registry's reason, so it shows in the report, never silently absent. A backend that
this run is expected to have (``EF21FAST_EXPECT_BACKENDS``, see ``tests/conftest.py``)
and that is missing fails the whole run before any test starts.
"""

import os

import pytest

import ef21fast
from ef21fast.backends.registry import BACKENDS, backend_errors, registry


def kernel_backend_params(kernels=None, include_numpy=False):
    """One param ``(kernel, backend)`` per pair of the registry."""
    params = []
    for kernel, backend, _fn, reason in registry():
        if kernels is not None and kernel not in kernels:
            continue
        if backend == "numpy" and not include_numpy:
            continue
        marks = [] if reason is None else [pytest.mark.skip(reason=reason)]
        params.append(pytest.param(kernel, backend, id=f"{kernel}-{backend}", marks=marks))
    return params


def backend_params(include_numpy=False):
    """One param per backend; an unavailable one is skipped with its reason."""
    errors = backend_errors()
    out = []
    for name in BACKENDS:
        if name == "numpy" and not include_numpy:
            continue
        marks = [pytest.mark.skip(reason=errors[name])] if name in errors else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def expected_backends() -> set:
    """The backends this run must have: ``$EF21FAST_EXPECT_BACKENDS`` (names separated by
    commas or spaces; CI sets it), else empty (a local run states no expectation)."""
    raw = os.environ.get("EF21FAST_EXPECT_BACKENDS", "")
    return {name for name in raw.replace(",", " ").split() if name}


def require_threads(backend: str, n: int) -> None:
    """Set ``n`` kernel threads and check that ``backend`` really runs with them.

    A test comparing thread counts passes vacuously if the backend silently caps the
    count (Numba cannot exceed ``NUMBA_NUM_THREADS``, a C build without OpenMP has one
    thread). Where the count is not reached, the test is skipped with the reason, or
    fails when this run expects the backend (``$EF21FAST_EXPECT_BACKENDS``).
    """
    ef21fast.set_num_threads(n)
    got = ef21fast.get_num_threads(backend)
    if got != n:
        why = f"backend {backend!r} runs {got} thread(s) here, not {n}"
        if backend in expected_backends():
            pytest.fail(why + " (expected by $EF21FAST_EXPECT_BACKENDS)")
        pytest.skip(why)
