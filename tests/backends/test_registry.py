"""Backend selection, lazy import, and ``ef21fast info``."""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import ef21fast
from ef21fast.backends import registry as dispatch


def _python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=300, cwd=tempfile.gettempdir())


def test_import_is_lazy():
    """import ef21fast loads neither numba nor the compiled C module."""
    proc = _python("import sys, time; t = time.perf_counter(); import ef21fast; "
                   "dt = time.perf_counter() - t; import json; print(json.dumps("
                   "[dt, 'numba' in sys.modules, 'ef21fast._ckernels' in sys.modules]))")
    assert proc.returncode == 0, proc.stderr
    _, numba_loaded, c_loaded = json.loads(proc.stdout)
    assert not numba_loaded and not c_loaded


def test_numpy_backend_always_available():
    assert "numpy" in ef21fast.available_backends()
    assert ef21fast.available_backends()[0] == dispatch.default_backend() or \
        os.environ.get(dispatch.ENV_VAR)


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

    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    first = dispatch.available_backends()[0]
    assert dispatch.get_kernel("topk") is dispatch.load_backend(first).topk
    monkeypatch.setenv(dispatch.ENV_VAR, "numpy")
    assert dispatch.get_kernel("topk") is reference.topk
    monkeypatch.setenv(dispatch.ENV_VAR, "gpu")
    with pytest.raises(ValueError, match="EF21FAST_BACKEND must be one of"):
        dispatch.get_kernel("topk")
    monkeypatch.delenv(dispatch.ENV_VAR)
    assert dispatch.get_kernel("topk") is dispatch.load_backend(first).topk
    if first != "numpy":  # a backend replaced after caching is looked up again
        class Other:
            topk = staticmethod(lambda x, k: None)
            ef21_step = ef_step = scatter_add = topk

        monkeypatch.setitem(dispatch._loaded, first, Other)
        assert dispatch.get_kernel("topk") is Other.topk
        assert dispatch.get_kernel("topk", first) is Other.topk
    with pytest.raises(TypeError, match="backend must be a string"):
        dispatch.get_kernel("topk", ["c"])
    with pytest.raises(ValueError, match="kernel must be one of"):
        dispatch.get_kernel("argmax")


def test_registry_covers_every_pair():
    rows = ef21fast.registry()
    assert {(k, b) for k, b, _, _ in rows} == {
        (k, b) for k in dispatch.KERNELS for b in dispatch.BACKENDS}
    for kernel, backend, fn, reason in rows:
        assert (fn is None) != (reason is None)


def test_missing_backend_reason_is_reported(monkeypatch):
    monkeypatch.setitem(dispatch._errors, "c", "ImportError: compiler said no")
    monkeypatch.delitem(dispatch._loaded, "c", raising=False)
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
    for name in dispatch.BACKENDS:
        assert name in proc.stdout
    assert "default backend" in proc.stdout
