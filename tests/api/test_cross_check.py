"""Every compiled backend against the reference, bit for bit, on the adversarial cases.

Driven by the registry (``tests/registry_params.py``): a backend or kernel
that is missing on this machine shows up as a skip with its reason.
"""

import numpy as np
import pytest

from registry_params import kernel_backend_params as registry_params

from ef21fast.testing import cross_check

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kernel,backend", registry_params())
def test_backend_matches_reference(kernel, backend, dtype):
    failures = []
    for seed in (0, 1):
        failures += cross_check(backend, seed=seed, large=(seed == 0), kernels=(kernel,),
                                dtypes=(dtype,))
    assert failures == [], "\n".join(failures[:20])


@pytest.mark.parametrize("cached", [False, True], ids=["fresh", "reference-cache"])
def test_cross_check_helper_flags_a_wrong_backend(monkeypatch, cached):
    """cross_check must be able to fail: a backend that drops the tie rule is caught,
    also when the reference's results come from a cache filled by an earlier, clean
    run (as cross_check_forced does)."""
    import ef21fast.reference as ref
    from ef21fast.backends import registry

    ref_cache = {}
    if cached:
        assert cross_check("numpy", large=False, kernels=("topk",), ref_cache=ref_cache) == []
        assert ref_cache

    class Broken:
        MISSING = {}

        @staticmethod
        def topk(x, k):
            idx, val = ref.topk(x, k)
            if k and x.shape[-1] > k:
                idx = idx.copy()
                idx[..., -1] = x.shape[-1] - 1  # wrong index, same shape
                val = np.take_along_axis(x, idx, axis=-1)
            return idx, val

        ef21_step = staticmethod(ref.ef21_step)
        ef_step = staticmethod(ref.ef_step)
        scatter_add = staticmethod(ref.scatter_add)

    monkeypatch.setitem(registry._loaded, "c", Broken)
    monkeypatch.delitem(registry._errors, "c", raising=False)
    assert cross_check("c", large=False, kernels=("topk",), ref_cache=ref_cache) != []
