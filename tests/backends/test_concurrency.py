"""Concurrency: Python threads, process pools (fork and spawn) and thread counts.

Every scenario runs in its own interpreter (``subprocess``, cwd outside the source tree
so the installed package imports), so that an abort (Numba's workqueue layer terminates
the process on concurrent parallel calls; GNU OpenMP deadlocks in forked children) shows
up as a failed return code or a timeout of that subprocess, never as a dead test run.

The scenario programs live in ``scenarios/concurrency.py`` (a file, not a ``-c`` string:
spawned pool workers must re-import the module that defines their function).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from registry_params import backend_params

COMPILED = [p.values[0] for p in backend_params()
            if not any(m.name == "skip" for m in p.marks)]

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "concurrency.py"


# Variables that steer backends and thread counts: unset in every scenario unless set.
_STEERING = ("EF21FAST_BACKEND", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
             "NUMBA_THREADING_LAYER", "NUMBA_DISABLE_JIT")


def _scenario(tmp_path, *args, env=None, timeout=600):
    """Run one scenario in a fresh interpreter; return (CompletedProcess, last JSON)."""
    path = SCENARIO
    full_env = {k: v for k, v in os.environ.items() if k not in _STEERING}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, str(path), *map(str, args)], env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())
    last = None
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            last = json.loads(line)
            break
    return proc, last


def _explain(proc):
    return f"return code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def _need(*backends):
    for b in backends:
        if b not in COMPILED:
            pytest.skip(f"backend {b!r} is not available here")


# The first Numba subprocess may compile the kernels (tens of seconds, then cached):
# generous timeouts. A hang would otherwise be the only symptom of a deadlock.
T_RUN = 600


# ------------------------------------------------------------------------- threads

@pytest.mark.parametrize("backends", ["c", "numba", "c,numba"])
def test_threads_match_serial(tmp_path, backends):
    """8 Python threads call every kernel (1-D d = 3e5 and batched 64 x 5000, both
    dtypes, all variants) concurrently on their own arrays, from a cold start; every
    result equals the serial one bit for bit and the process never aborts.
    ``c,numba``: threads alternate backends (both OpenMP runtimes' users at once)."""
    _need(*backends.split(","))
    proc, out = _scenario(tmp_path, "threads", backends, timeout=T_RUN)
    assert proc.returncode == 0 and out and out["ok"], _explain(proc)
    assert out["calls"] == 8 * 2 * 20


def test_threads_numba_workqueue_layer(tmp_path):
    """Under NUMBA_THREADING_LAYER=workqueue (which terminates the process on concurrent
    parallel launches) the backend's lock serialises the 8 threads: no abort, same
    results."""
    _need("numba")
    proc, out = _scenario(tmp_path, "threads", "numba", timeout=T_RUN,
                          env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert proc.returncode == 0 and out and out["ok"], _explain(proc)
    assert out["layer"] == "workqueue"
    assert "Concurrent access" not in proc.stderr


def test_c_kernels_release_the_gil(tmp_path):
    """Two Python threads each running a long C topk (d = 5e7 float32, one OpenMP
    thread, ~0.5 s) run at the same time, and a pure-Python thread keeps counting
    while the main thread is inside a C call: the kernels release the GIL.

    Robust on a loaded 2-core machine: no speed-up is required. Were the GIL held, the
    two calls' spans could overlap by a few switch intervals (5 ms) at most and the
    counter could run only during a switch interval around the call; here the spans
    must overlap over a third of the shorter call and the counter must reach 5% of its
    solo rate (it gets ~100% on an idle 2-core machine)."""
    _need("c")
    proc, out = _scenario(tmp_path, "gil", timeout=300)
    assert proc.returncode == 0 and out, _explain(proc)
    assert out["shortest"] > 0.1, out  # long enough to tell the two cases apart
    assert out["overlap"] > max(out["shortest"] / 3, 10 * out["switch_interval"]), out
    assert out["counter_fraction"] > 0.05, out


# ------------------------------------------------------------------------ processes

POOLS = [
    pytest.param("fork", "c", "pool", id="fork-c-Pool"),
    pytest.param("fork", "c", "executor", id="fork-c-executor"),
    pytest.param("spawn", "c", "pool", id="spawn-c-Pool"),
    pytest.param("spawn", "numba", "executor", id="spawn-numba-executor"),
    pytest.param("fork", "numba", "executor", id="fork-numba-executor"),
    pytest.param("fork", "numba", "pool", id="fork-numba-Pool"),
]


@pytest.mark.parametrize("method, backend, api", POOLS)
def test_process_pool_after_parallel_parent(tmp_path, method, backend, api):
    """The parent runs every task with thread teams (so OpenMP/Numba pools exist), then
    a multiprocessing pool (``multiprocessing.Pool`` or ``ProcessPoolExecutor``) of
    the given start method runs them again: results identical to the parent's, no
    hang (the pool has a timeout; a dead worker fails at once).

    fork: GNU libgomp deadlocks in a forked child's first parallel region if the
    parent had used a thread team (C), and Numba terminates such a child when it starts
    a parallel region ("omp" layer); both backends therefore run their kernels on one
    thread in such a child, Numba through drivers that start no parallel region
    (``c_backend._after_fork_in_child``, ``kernels._after_fork_in_child``)."""
    _need(backend)
    proc, out = _scenario(tmp_path, "pool", method, backend, api, timeout=T_RUN,
                          env={"T_POOL": "120"})
    assert proc.returncode == 0 and out and out["ok"], _explain(proc)
    if method == "fork":
        assert out["child_threads"] == [1], out


def test_fork_pool_numba_forksafe_layer(tmp_path):
    """With NUMBA_THREADING_LAYER=forksafe (here: workqueue, guarded by the backend's
    lock) a fork pool works after parallel Numba calls in the parent."""
    _need("numba")
    proc, out = _scenario(tmp_path, "pool", "fork", "numba", "executor", timeout=T_RUN,
                          env={"T_POOL": "120", "NUMBA_THREADING_LAYER": "forksafe"})
    assert proc.returncode == 0 and out and out["ok"], _explain(proc)


# ------------------------------------------------------------------- thread counts

SETTINGS = [
    ("default", 0, {}),
    ("set_num_threads(1)", 1, {}),
    ("set_num_threads(3)", 3, {}),  # more threads than cores on small machines
    ("OMP_NUM_THREADS=1", 0, {"OMP_NUM_THREADS": "1"}),
    ("NUMBA_NUM_THREADS=1", 0, {"NUMBA_NUM_THREADS": "1"}),
    ("both=3", 0, {"OMP_NUM_THREADS": "3", "NUMBA_NUM_THREADS": "3"}),
]


def test_thread_count_settings_never_change_results(tmp_path):
    """One interpreter per setting (ef21fast.set_num_threads, OMP_NUM_THREADS,
    NUMBA_NUM_THREADS): each reports the thread count it was given and the same
    SHA-256 of every result (all kernels, both dtypes, 1-D and batched), bit for bit;
    the C and Numba backends also agree with each other."""
    reports = {}
    for name, n, env in SETTINGS:
        proc, out = _scenario(tmp_path, "hash", n, env=env, timeout=T_RUN)
        assert proc.returncode == 0 and out, f"{name}: " + _explain(proc)
        reports[name] = out
    backends = sorted(reports["default"])
    assert backends, "no compiled backend"
    for b in backends:
        hashes = {name: r[b]["hash"] for name, r in reports.items()}
        assert len(set(hashes.values())) == 1, (b, hashes)
    if len(backends) == 2:
        assert reports["default"]["c"]["hash"] == reports["default"]["numba"]["hash"]
    threads = {name: {b: r[b]["threads"] for b in r} for name, r in reports.items()}
    expect = {"set_num_threads(1)": {"c": 1, "numba": 1},
              "OMP_NUM_THREADS=1": {"c": 1},
              "NUMBA_NUM_THREADS=1": {"numba": 1},
              "both=3": {"c": 3, "numba": 3},
              "set_num_threads(3)": {"c": 3}}
    for name, want in expect.items():
        for b, n in want.items():
            if b in threads[name]:
                assert threads[name][b] == n, (name, threads)

