"""Shared test configuration: what this run must have, and the Hypothesis profiles.

Before any test runs, the run stops with the reason (never a green run that tested
less than it claims) when

- ef21fast is imported from a source checkout whose compiled backends are not in place
  (``python -m pytest`` in the checkout after a plain ``pip install .``): see
  :mod:`ef21fast.backends.checkout`;
- a backend named in ``$EF21FAST_EXPECT_BACKENDS`` (CI sets ``c,numba,numpy``) is
  missing;
- ``$EF21FAST_EXPECT_TORCH=1`` (CI sets it) and torch cannot be imported: the tensor
  and ``ef21fast.ddp`` tests would skip.

Hypothesis profiles: ``quick`` (default) and ``slow`` (many examples), chosen with
``EF21FAST_HYPOTHESIS=slow`` (or pytest's ``--hypothesis-profile=slow``). The kernel x
backend table the tests iterate is ``tests/registry_params.py``.
"""

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings
from registry_params import expected_backends


def pytest_configure(config):
    from ef21fast.backends import checkout, registry

    why = checkout.problem()
    if why is not None:
        raise pytest.UsageError(f"the tests would not test the compiled backends: {why}")
    expected = expected_backends()
    unknown = sorted(expected - set(registry.BACKENDS))
    if unknown:
        raise pytest.UsageError(f"$EF21FAST_EXPECT_BACKENDS names unknown backends "
                                f"{unknown} (known: {', '.join(registry.BACKENDS)})")
    errors = registry.backend_errors()
    missing = {name: errors[name] for name in sorted(expected) if name in errors}
    if missing:
        lines = "; ".join(f"{name}: {why}" for name, why in missing.items())
        raise pytest.UsageError(f"backends expected by $EF21FAST_EXPECT_BACKENDS are "
                                f"missing: {lines}")
    if (os.environ.get("EF21FAST_EXPECT_TORCH", "") == "1"
            and importlib.util.find_spec("torch") is None):
        raise pytest.UsageError("$EF21FAST_EXPECT_TORCH=1 but torch is not installed: "
                                "pip install \"torch==2.13.0+cpu\"")


settings.register_profile(
    "quick", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "slow", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("EF21FAST_HYPOTHESIS", "quick"))


@pytest.fixture
def restore_threads():
    """Set the kernels' thread count back to the machine's after the test."""
    yield
    import ef21fast
    ef21fast.set_num_threads(os.cpu_count() or 1)
