"""Results never depend on the number of threads; Numba kernels run as plain Python."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import ef21fast
from registry_params import backend_params, require_threads

from ef21fast._spec import KERNEL_NAMES
from ef21fast.testing import C_FORCED_PATHS, all_cases, bits_equal, run_case, variants

COMPILED = backend_params()
BIG = [c for c in all_cases(seed=3) if c.x.size >= 50_000 or c.name.startswith("batched")]


@pytest.mark.parametrize("backend", COMPILED)
def test_results_identical_with_1_and_2_threads(backend, restore_threads):
    require_threads(backend, 2)
    mismatches = []
    for case in BIG:
        for kernel in KERNEL_NAMES:
            for kw in variants(kernel, case):
                results = []
                for n in (1, 2):
                    ef21fast.set_num_threads(n)
                    results.append(run_case(kernel, case, backend, **kw))
                if not all(bits_equal(a, b) for a, b in zip(*results)):
                    mismatches.append(f"{kernel} {case} {kw}")
    assert mismatches == []


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_scatter_add_exact(backend, dtype, restore_threads):
    """A batch above both backends' serial threshold for scatter_add (n * k >= 2**17
    entries, d >= 2**14) with many repeated indices: the same bits as the reference
    with 1 and 2 threads (each thread owns a part of out and applies its entries in
    message order)."""
    from ef21fast import api, reference

    require_threads(backend, 2)
    rng = np.random.default_rng(11)
    n, k, d = 64, 4096, 50_000
    idx = rng.integers(0, d, (n, k))
    idx[:, :100] = rng.integers(0, 10, (n, 100))  # hot entries, hit by every row
    val = rng.standard_normal((n, k)).astype(dtype)
    w = rng.random(n).astype(dtype)
    out0 = rng.standard_normal(d).astype(dtype)
    expected = reference.scatter_add(out0.copy(), idx, val, w)
    for threads in (1, 2):
        ef21fast.set_num_threads(threads)
        got = api.scatter_add(out0.copy(), idx, val, w, backend=backend)
        assert bits_equal(got, expected), (backend, threads)


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="n must be >= 1"):
        ef21fast.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        ef21fast.set_num_threads(1.5)


@pytest.mark.parametrize("backend", [p for p in COMPILED if p.values[0] == "numba"])
def test_numba_kernels_as_python(backend):
    """NUMBA_DISABLE_JIT=1 runs the Numba kernels' logic line by line (coverage)."""
    code = ("import sys; from ef21fast.testing import cross_check; "
            "f = cross_check('numba', large=False, max_size=3000); "
            "print('\\n'.join(f[:10])); sys.exit(1 if f else 0)")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("backend", COMPILED)
def test_thread_count_is_applied(backend, restore_threads):
    """set_num_threads reaches the backend: 1 is reported as 1, and 2 as 2 wherever the
    backend can run two threads (require_threads skips or fails otherwise)."""
    ef21fast.set_num_threads(1)
    assert ef21fast.get_num_threads(backend) == 1
    require_threads(backend, 2)
    assert ef21fast.get_num_threads(backend) == 2


def test_numpy_backend_reports_one_thread():
    ef21fast.set_num_threads(2)
    try:
        assert ef21fast.get_num_threads("numpy") == 1
    finally:
        ef21fast.set_num_threads(os.cpu_count() or 1)


@pytest.mark.parametrize("force", C_FORCED_PATHS)
@pytest.mark.parametrize("backend", [p for p in COMPILED if p.values[0] == "c"])
def test_c_forced_paths(backend, force):
    """Each internal path of the C selection (forced by EF21FAST_C_FORCE) is exact."""
    code = ("import sys; from ef21fast.testing import cross_check; "
            "f = cross_check('c', seed=5); print('\\n'.join(f[:10])); sys.exit(1 if f else 0)")
    env = dict(os.environ, EF21FAST_C_FORCE=force)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stdout + proc.stderr
