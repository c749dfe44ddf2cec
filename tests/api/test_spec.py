"""The kernel table (ef21fast._spec) agrees with the functions that implement it."""

import inspect

import numpy as np
import pytest

import ef21fast
from ef21fast import api, reference
from ef21fast._spec import KERNEL_NAMES, KERNELS
from ef21fast.backends import registry


def test_registry_and_api_use_the_table():
    assert registry.KERNELS == KERNEL_NAMES
    assert tuple(api.__all__) == KERNEL_NAMES
    for name in KERNEL_NAMES:
        assert getattr(ef21fast, name) is getattr(api, name)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_public_signature_is_the_tables(name):
    spec = KERNELS[name]
    params = inspect.signature(getattr(api, name)).parameters
    assert tuple(params)[:-1] == spec.param_names
    assert params["backend"].kind is inspect.Parameter.KEYWORD_ONLY
    for p in spec.params:
        has_default = params[p.name].default is not inspect.Parameter.empty
        assert has_default == p.optional, p.name


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_reference_signature_is_the_tables(name):
    assert tuple(inspect.signature(getattr(reference, name)).parameters) == \
        KERNELS[name].param_names


@pytest.mark.parametrize("backend", registry.BACKENDS)
def test_every_backend_defines_the_tables_kernels_in_order(backend):
    try:
        module = registry.load_backend(backend)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    defined = [n for n in KERNEL_NAMES if callable(getattr(module, n, None))]
    assert defined == list(KERNEL_NAMES), registry.missing_kernels(backend)
    order = [inspect.getsourcelines(getattr(module, n))[1] for n in KERNEL_NAMES
             if inspect.isfunction(getattr(module, n))]
    assert order == sorted(order), "kernels not defined in the table's order"


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_docstring_comes_from_the_table(name):
    doc = getattr(api, name).__doc__
    spec = KERNELS[name]
    assert doc == spec.docstring()
    for section in ("Parameters", "Returns", "Raises"):
        assert f"\n{section}\n" in doc
    for p in spec.params:
        assert f"\n{p.name} : " in doc
    if spec.updated is not None:
        assert "**Updated in place" in doc


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_arguments_and_results_roles(name):
    spec = KERNELS[name]
    x = np.arange(12.0).reshape(3, 4)
    state = np.ones_like(x)
    message = reference.topk(x, 2)
    args, kwargs = spec.arguments(x, 2, state, message)
    assert len(args) == sum(not p.optional for p in spec.params)
    if spec.param("state") is not None:
        updated = args[spec.updated_position]
        assert updated is not state and np.array_equal(updated, state)
    returned = getattr(api, name)(*args, backend="numpy", **kwargs)
    results = spec.results(args, returned)
    assert len(results) == len(spec.result_names)
    variants = spec.factor_variants(3, batch=True)
    assert {} in variants or spec.factor is not None
    for kw in variants:
        assert set(kw) <= {spec.factor}
