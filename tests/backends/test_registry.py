"""Backend selection, lazy import, and ``ef21fast info``."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import ef21fast
from ef21fast.backends import registry


def _python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=300, cwd=tempfile.gettempdir())


def test_numpy_backend_always_available():
    assert "numpy" in ef21fast.available_backends()
    assert ef21fast.available_backends()[0] == registry.default_backend() or \
        os.environ.get(registry.ENV_VAR)


def test_environment_variable_selects_backend():
    proc = _python("import ef21fast; print(ef21fast.default_backend())",
                   EF21FAST_BACKEND="numpy")
    assert proc.stdout.strip() == "numpy"
    proc = _python("import ef21fast, numpy as np; ef21fast.topk(np.ones(3), 1)",
                   EF21FAST_BACKEND="gpu")
    assert proc.returncode != 0 and "EF21FAST_BACKEND must be one of" in proc.stderr


def test_kernel_cache_follows_the_environment_and_the_loaded_modules(monkeypatch):
    """get_kernel caches what it resolved, but never serves a stale function."""
    from ef21fast import reference

    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    first = registry.available_backends()[0]
    assert registry.get_kernel("topk") is registry.load_backend(first).topk
    monkeypatch.setenv(registry.ENV_VAR, "numpy")
    assert registry.get_kernel("topk") is reference.topk
    monkeypatch.setenv(registry.ENV_VAR, "gpu")
    with pytest.raises(ValueError, match="EF21FAST_BACKEND must be one of"):
        registry.get_kernel("topk")
    monkeypatch.delenv(registry.ENV_VAR)
    assert registry.get_kernel("topk") is registry.load_backend(first).topk
    if first != "numpy":  # a backend replaced after caching is looked up again
        class Other:
            topk = staticmethod(lambda x, k: None)
            ef21_step = ef_step = scatter_add = topk

        monkeypatch.setitem(registry._loaded, first, Other)
        assert registry.get_kernel("topk") is Other.topk
        assert registry.get_kernel("topk", first) is Other.topk
    with pytest.raises(TypeError, match="backend must be a string"):
        registry.get_kernel("topk", ["c"])
    with pytest.raises(ValueError, match="kernel must be one of"):
        registry.get_kernel("argmax")


def test_registry_covers_every_pair():
    rows = ef21fast.registry()
    assert {(k, b) for k, b, _, _ in rows} == {
        (k, b) for k in registry.KERNELS for b in registry.BACKENDS}
    for kernel, backend, fn, reason in rows:
        assert (fn is None) != (reason is None)


def test_missing_backend_reason_is_reported(monkeypatch):
    monkeypatch.setitem(registry._errors, "c", "ImportError: compiler said no")
    monkeypatch.delitem(registry._loaded, "c", raising=False)
    assert "c" not in ef21fast.available_backends()
    with pytest.raises(RuntimeError, match="compiler said no"):
        ef21fast.topk(np.ones(3), 1, backend="c")
    from ef21fast.cli.info import collect, format_facts

    assert "compiler said no" in format_facts(collect())


def test_info_command_runs():
    proc = subprocess.run([sys.executable, "-m", "ef21fast.cli", "info"],
                          capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr
    for name in registry.BACKENDS:
        assert name in proc.stdout
    assert "default backend" in proc.stdout
