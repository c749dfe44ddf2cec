"""pytest parameters over the backend registry, shared by the test and benchmark suites.

A pair that does not work here (backend absent, kernel missing) becomes a skip carrying
the registry's reason, so it shows in the report, never silently absent. A backend that
this run is expected to have (``EF21FAST_EXPECT_BACKENDS``, see ``tests/conftest.py``)
and that is missing fails the whole run before any test starts.
"""

import pytest

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
