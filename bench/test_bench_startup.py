"""Start-up costs (issue 4), each in a fresh process run outside the source tree.

* ``import ef21fast``: wall time of the import inside the child (numpy included;
  target < 1 s), and the fact that it imports neither numba nor the C library.
* Numba, first ever: time to the first topk result in a process whose
  ``NUMBA_CACHE_DIR`` is an empty temporary directory (import + compile + run).
* Numba, cached: a second process with the same ``NUMBA_CACHE_DIR``: time to the
  first result (target < 1 s).
* C: time to the first topk result in a fresh process (target < 1 s).

Every figure starts just before ``import ef21fast`` (the interpreter start is not
counted; it is the same with or without the package) and uses topk on float32,
d = 1e6, k = d/100 (above the size where the kernels go parallel, so the parallel
paths are part of the first result). The child also times a second call, so
"first result" minus "second call" is the one-off cost. Figures are printed and
stored in ``extra_info`` (``measure="startup"``). The non-timing facts are asserted
always (CI smoke runs included); the 1 s targets only with ``--benchmark-enable``. ::

    pytest bench/test_bench_startup.py --benchmark-enable -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ef21fast.backends import registry

TARGET_S = 1.0
D = 10**6
K = D // 100

CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import ef21fast
    t_import = time.perf_counter() - t0
    report = dict(import_s=t_import, file=ef21fast.__file__,
                  numba_imported="numba" in sys.modules,
                  c_loaded=any(m.startswith("ef21fast._ckernels") for m in sys.modules))
    backend, d, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if backend != "none":
        import numpy as np
        x = np.random.default_rng(0).standard_normal(d, dtype=np.float32)
        t1 = time.perf_counter()
        idx, val = ef21fast.topk(x, k, backend=backend)
        report["first_call_s"] = time.perf_counter() - t1
        report["first_result_s"] = t_import + report["first_call_s"]  # not the data
        t2 = time.perf_counter()
        ef21fast.topk(x, k, backend=backend)
        report["second_call_s"] = time.perf_counter() - t2
        report["ok"] = bool(idx.shape == (k,) and np.array_equal(val, x[idx]))
    print(json.dumps(report))
""")


def child(backend: str, cwd, env_extra=None) -> dict:
    """Run the probe in a fresh interpreter with cwd outside the repository."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    env.pop("EF21FAST_BACKEND", None)
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, str(D), str(K)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _enabled(request) -> bool:
    """As pytest-benchmark decides: ``--benchmark-enable`` overrides the addopts'
    ``--benchmark-disable`` (which stays True in the options)."""
    opt = request.config.getoption
    return not (opt("benchmark_disable") and not opt("benchmark_enable"))


def _require(backend):
    if backend not in registry.available_backends():
        pytest.skip(f"backend {backend!r} is not available: "
                    f"{registry.backend_errors().get(backend, '')}")


def _record(benchmark, name, report, keys):
    benchmark.group = "start-up (fresh process)"
    benchmark.extra_info.update(measure="startup", startup=name,
                                **{k: report[k] for k in keys if k in report})


def test_import_time(benchmark, request, tmp_path):
    report = benchmark.pedantic(child, args=("none", tmp_path), rounds=1, iterations=1)
    _record(benchmark, "import ef21fast", report, ["import_s", "numba_imported"])
    print(f"\nimport ef21fast: {report['import_s'] * 1e3:.0f} ms "
          f"(numba imported: {report['numba_imported']})")
    # The child must import the installed package, not a stray copy from its cwd.
    assert not report["file"].startswith(str(tmp_path))
    assert not report["numba_imported"], "import ef21fast must not import numba"
    assert not report["c_loaded"], "import ef21fast must not load the C library"
    if _enabled(request):
        assert report["import_s"] < TARGET_S


def test_numba_first_result(benchmark, request, tmp_path):
    """Cold compile into an empty NUMBA_CACHE_DIR, then a second process that loads it."""
    _require("numba")
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {"NUMBA_CACHE_DIR": str(cache)}

    def both():
        return child("numba", tmp_path, env), child("numba", tmp_path, env)

    cold, warm = benchmark.pedantic(both, rounds=1, iterations=1)
    benchmark.group = "start-up (fresh process)"
    benchmark.extra_info.update(
        measure="startup", startup="numba topk first result",
        cold_first_result_s=cold["first_result_s"], cold_first_call_s=cold["first_call_s"],
        cached_first_result_s=warm["first_result_s"],
        cached_first_call_s=warm["first_call_s"], second_call_s=warm["second_call_s"])
    print(f"\nnumba topk d={D:.0e}: first ever (empty cache) {cold['first_result_s']:.2f} s "
          f"to the first result (call {cold['first_call_s']:.2f} s); cached "
          f"{warm['first_result_s']:.3f} s (call {warm['first_call_s'] * 1e3:.0f} ms, "
          f"a warm call {warm['second_call_s'] * 1e3:.1f} ms)")
    assert cold["ok"] and warm["ok"]
    assert any(cache.rglob("*.nbi")), "the kernels were not cached in NUMBA_CACHE_DIR"
    if _enabled(request):
        assert warm["first_result_s"] < TARGET_S


def test_c_first_result(benchmark, request, tmp_path):
    _require("c")
    report = benchmark.pedantic(child, args=("c", tmp_path), rounds=1, iterations=1)
    _record(benchmark, "c topk first result", report,
            ["first_result_s", "first_call_s", "second_call_s", "numba_imported"])
    print(f"\nc topk d={D:.0e}: {report['first_result_s']:.3f} s to the first result "
          f"(call {report['first_call_s'] * 1e3:.1f} ms, a warm call "
          f"{report['second_call_s'] * 1e3:.1f} ms)")
    assert report["ok"]
    if _enabled(request):
        assert report["first_result_s"] < TARGET_S
