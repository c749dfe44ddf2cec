"""Shared test configuration: Hypothesis profiles.

Profiles: ``quick`` (default) and ``slow`` (many examples), chosen with
``EF21FAST_HYPOTHESIS=slow`` (or pytest's ``--hypothesis-profile=slow``).
The kernel x backend table the tests iterate is ``ef21fast.testing.registry_params``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick", max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "slow", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("EF21FAST_HYPOTHESIS", "quick"))
