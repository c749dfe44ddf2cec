"""The C modules' own contracts, below the public API: the return codes of
csrc/ef21fast.h and csrc/glm_oracle.h and the exception each maps to, the mode names
shared with Python, the build-error record each module reports when it is missing, and
the thread count and fork-safety rule that the fused GLM oracle shares with the
kernels."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from registry_params import expected_backends

from ef21fast.backends import checkout, registry

try:
    c_backend = registry.load_backend("c")
except RuntimeError as exc:
    pytest.skip(str(exc), allow_module_level=True)

lib, ffi = c_backend.lib, c_backend.ffi


_ptr = c_backend._ptr


def test_status_and_mode_constants():
    assert (lib.EF21_OK, lib.EF21_ENOMEM, lib.EF21_EINVAL) == (0, 1, 2)
    assert (lib.EF21_MODE_TOPK, lib.EF21_MODE_EF21, lib.EF21_MODE_EF21_SCALED,
            lib.EF21_MODE_EF) == (0, 1, 2, 3)


def test_each_status_maps_to_one_exception():
    c_backend._check(lib.EF21_OK)
    with pytest.raises(MemoryError, match="out of memory"):
        c_backend._check(lib.EF21_ENOMEM)
    with pytest.raises(ValueError, match="out of range"):
        c_backend._check(lib.EF21_EINVAL)
    with pytest.raises(RuntimeError, match="unknown return code 99"):
        c_backend._check(99)


@pytest.mark.parametrize("n,d,k", [(2, 8, 9), (-1, 8, 1), (2, -8, 1), (2, 8, -1)])
def test_sizes_out_of_range_are_einval_and_touch_nothing(n, d, k):
    x = np.ones((2, 8), np.float32)
    state = np.ones((2, 8), np.float32)
    idx = np.full((2, 9), -7, np.int64)
    val = np.full((2, 9), -7, np.float32)
    args = (n, d, k, _ptr(idx, True), _ptr(val, True))
    assert lib.ef21_topk_f32(_ptr(x), *args) == lib.EF21_EINVAL
    assert lib.ef21_ef21_step_f32(_ptr(x), _ptr(state, True), ffi.NULL, *args) == \
        lib.EF21_EINVAL
    assert lib.ef21_ef_step_f32(_ptr(x), _ptr(state, True), 0.5, *args) == lib.EF21_EINVAL
    assert np.all(idx == -7) and np.all(val == -7) and np.all(state == 1)


def test_scatter_add_sizes_out_of_range_are_einval():
    out = np.zeros(8, np.float64)
    idx = np.zeros((2, 3), np.int64)
    val = np.ones((2, 3), np.float64)
    for n, k, d in ((-1, 3, 8), (2, -3, 8), (2, 3, -8)):
        rc = lib.ef21_scatter_add_f64(_ptr(out, True), d, _ptr(idx), _ptr(val), ffi.NULL, n, k)
        assert rc == lib.EF21_EINVAL
    assert np.all(out == 0)


def test_empty_calls_are_ok():
    assert lib.ef21_topk_f64(ffi.NULL, 0, 5, 0, ffi.NULL, ffi.NULL) == lib.EF21_OK
    assert lib.ef21_ef_step_f64(ffi.NULL, ffi.NULL, 1.0, 3, 0, 0, ffi.NULL, ffi.NULL) == \
        lib.EF21_OK
    assert lib.ef21_scatter_add_f64(ffi.NULL, 0, ffi.NULL, ffi.NULL, ffi.NULL, 0, 0) == \
        lib.EF21_OK


# ------------------------------------------------------------------ the fused GLM oracle

def _oracle():
    try:
        from ef21fast.methods import oracle
    except ImportError as exc:
        if "c" in expected_backends():
            raise  # this run expects the C backend: a missing oracle is a failure
        pytest.skip(f"fused GLM oracle not available: {exc}")
    return oracle


def test_oracle_constants_and_status():
    oracle = _oracle()
    assert oracle.GLM_KINDS == {"logreg": oracle.lib.EF21_GLM_LOGREG,
                                "linreg": oracle.lib.EF21_GLM_LINREG} == {"logreg": 0,
                                                                          "linreg": 1}
    oracle._check(oracle.lib.EF21_GLM_OK)
    with pytest.raises(ValueError, match="out of range"):
        oracle._check(oracle.lib.EF21_GLM_EINVAL)
    with pytest.raises(RuntimeError, match="unknown return code 5"):
        oracle._check(5)


def test_oracle_bad_kind_or_threads_is_einval_and_touches_nothing():
    oracle = _oracle()
    olib, offi = oracle.lib, oracle.ffi
    A, b = np.ones((4, 3)), np.ones(4)
    off, x, reg = np.array([0, 2, 4], dtype=np.int64), np.ones(3), np.zeros(3)
    G = np.full((2, 3), -7.0)

    def call(kind, nthreads, n=2, d=3):
        return olib.ef21_glm_client_grads(
            offi.from_buffer("double[]", A), offi.from_buffer("double[]", b),
            offi.from_buffer("int64_t[]", off), n, d, offi.from_buffer("double[]", x),
            offi.from_buffer("double[]", reg), kind, nthreads,
            offi.from_buffer("double[]", G, require_writable=True))

    assert call(2, 1) == olib.EF21_GLM_EINVAL
    assert call(-1, 1) == olib.EF21_GLM_EINVAL
    assert call(olib.EF21_GLM_LOGREG, 0) == olib.EF21_GLM_EINVAL
    assert call(olib.EF21_GLM_LOGREG, 1, n=-1) == olib.EF21_GLM_EINVAL
    assert np.all(G == -7.0)
    assert call(olib.EF21_GLM_LINREG, 4) == olib.EF21_GLM_OK
    assert np.array_equal(G, oracle.glm_client_grads(A, b, off, x, reg, "linreg"))


def test_oracle_takes_the_c_backends_thread_count():
    import ef21fast

    before = c_backend.get_num_threads()
    try:
        ef21fast.set_num_threads(3)
        assert c_backend.parallel_call_threads() == 3 == c_backend.get_num_threads()
    finally:
        ef21fast.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_after_a_parallel_oracle_call_runs_the_child_serially(tmp_path):
    """The oracle's parallel region counts for the fork-safety rule: after it ran on 2
    threads in the parent (the first C call of the process), a forked child runs the C
    code on one thread (GNU OpenMP would deadlock in the child's first parallel region
    otherwise) and gets the same result."""
    _oracle()
    if not lib.ef21_has_openmp():
        pytest.skip("built without OpenMP: no thread team")
    script = textwrap.dedent("""
        import os, signal, sys
        import numpy as np
        import ef21fast
        from ef21fast.backends import c
        from ef21fast.methods import oracle

        ef21fast.set_num_threads(2)
        rng = np.random.default_rng(0)
        A = rng.standard_normal((4000, 100))  # m d >= 2**18: the parallel path
        b = np.where(rng.random(4000) < 0.5, -1.0, 1.0)
        off = np.arange(0, 4001, 40, dtype=np.int64)
        x, reg = rng.standard_normal(100), np.zeros(100)
        G = oracle.glm_client_grads(A, b, off, x, reg, "logreg")
        assert c._team_used
        pid = os.fork()
        if pid == 0:
            signal.alarm(60)  # a deadlocked child dies instead of lingering
            same = np.array_equal(oracle.glm_client_grads(A, b, off, x, reg, "logreg"), G)
            os._exit(0 if same and c.get_num_threads() == 1 else 3)
        sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------- a missing module says why (its record)

def _import_copy(monkeypatch, tmp_path, module, subdir, missing, record):
    """Import a copy of the glue module ``module`` (ef21fast/<subdir>/<file>) placed in a
    fake package under tmp_path, with the extension ``missing`` unimportable and, if
    ``record`` is given, its build record written where setup.py would put it."""
    src = importlib.util.find_spec(module).origin
    pkg = tmp_path / "ef21fast"
    (pkg / subdir).mkdir(parents=True)
    copy = pkg / subdir / os.path.basename(src)
    with open(src) as fh:
        copy.write_text(fh.read())
    if record is not None:
        (pkg / f"{missing.rsplit('.', 1)[-1]}_build_error.txt").write_text(record + "\n")
    # the glue reads the record through checkout.compiled, beside the package it serves
    monkeypatch.setattr(checkout, "_PACKAGE", pkg)
    monkeypatch.setitem(sys.modules, missing, None)
    spec = importlib.util.spec_from_file_location("copy_of_" + module.replace(".", "_"), copy)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kernels_missing_report_their_record(monkeypatch, tmp_path):
    record = "ef21fast._ckernels did not build: CompileError: (kernels' reason)"
    with pytest.raises(ImportError, match=r"C backend is not available: .*\(kernels' reason\)"):
        _import_copy(monkeypatch, tmp_path, "ef21fast.backends.c", "backends",
                     "ef21fast._ckernels", record)


def test_kernels_missing_without_record(monkeypatch, tmp_path):
    with pytest.raises(ImportError, match="C backend is not available") as info:
        _import_copy(monkeypatch, tmp_path, "ef21fast.backends.c", "backends",
                     "ef21fast._ckernels", None)
    assert "did not build" not in str(info.value)


def test_oracle_missing_reports_its_own_record(monkeypatch, tmp_path):
    _oracle()
    record = "ef21fast._coracle did not build: CompileError: (oracle's reason)"
    with pytest.raises(ImportError, match=r"GLM oracle is not available: .*\(oracle's reason\)"):
        _import_copy(monkeypatch, tmp_path, "ef21fast.methods.oracle", "methods",
                     "ef21fast._coracle", record)


def test_oracle_without_the_kernels_says_so(monkeypatch, tmp_path):
    _oracle()

    def load_backend(name):
        raise RuntimeError(f"backend {name!r} is not available: (kernels' reason)")

    monkeypatch.setattr(registry, "load_backend", load_backend)
    with pytest.raises(ImportError, match=r"runs on the C backend's threads, .*\(kernels'"):
        _import_copy(monkeypatch, tmp_path, "ef21fast.methods.oracle", "methods",
                     "ef21fast._no_such_module", None)
