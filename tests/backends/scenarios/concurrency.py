"""Concurrency scenarios of tests/backends/test_concurrency.py, one per command line.

Run as ``python concurrency.py WHAT ARGS...`` in a fresh interpreter (``threads``,
``pool``, ``hash``, ``gil``); the last line printed is a JSON report. A program file,
not a ``-c`` string: spawned pool workers re-import the module that defines their
function.
"""
import hashlib
import json
import os
import sys
import threading
import time

import numpy as np

import ef21fast
from ef21fast.testing import bits_equal

# Sizes above every serial threshold of the compiled backends (Numba: 2**16 elements
# per call; C: rows >= 65536 split across threads, batches >= 2**15 elements, scatter
# with n*k >= 2**17 and d >= 16384), so each call really starts a thread team.
D1 = 300_000
N2, D2 = 64, 5_000
_TASKS = None


def make_tasks(seed=0):
    """(kernel, dtype, arrays...) tuples; deterministic, so a child can rebuild them."""
    rng = np.random.default_rng(seed)
    tasks = []
    for dt in (np.float32, np.float64):
        x1 = rng.standard_normal(D1).astype(dt)
        x1[rng.integers(0, D1, 40)] = np.nan
        x1[rng.integers(0, D1, 40)] = 0.5  # ties
        x2 = rng.standard_normal((N2, D2)).astype(dt)
        x2[::5] = np.round(x2[::5])  # rows full of ties
        s1 = rng.standard_normal(D1).astype(dt)
        s2 = rng.standard_normal((N2, D2)).astype(dt)
        for x, s, k in ((x1, s1, 3000), (x2, s2, 50)):
            scale = 0.7 if x.ndim == 1 else np.linspace(0.5, 2.0, N2)
            tasks.append(("topk", x, k))
            tasks.append(("ef21_step", x, s, k, None))
            tasks.append(("ef21_step", x, s, k, scale))
            tasks.append(("ef_step", x, s, k, -1.5))
        idx = rng.integers(0, D1, (N2, 3000))  # repeated indices accumulate in order
        val = rng.standard_normal((N2, 3000)).astype(dt)
        tasks.append(("scatter_add", idx, val, None))
        tasks.append(("scatter_add", idx, val, np.linspace(0.1, 1.0, N2)))
    return tasks


def tasks():
    global _TASKS
    if _TASKS is None:
        _TASKS = make_tasks()
    return _TASKS


def run(task, backend):
    """Run one task; return every array to compare (message and updated state)."""
    kind = task[0]
    if kind == "topk":
        return ef21fast.topk(task[1], task[2], backend=backend)
    if kind == "ef21_step":
        _, x, s, k, scale = task
        st = s.copy()
        idx, val = ef21fast.ef21_step(x, st, k, scale=scale, backend=backend)
        return idx, val, st
    if kind == "ef_step":
        _, x, s, k, lr = task
        err = s.copy()
        idx, val = ef21fast.ef_step(x, err, k, lr=lr, backend=backend)
        return idx, val, err
    _, idx, val, w = task
    out = np.zeros(D1, dtype=val.dtype)
    ef21fast.scatter_add(out, idx, val, weights=w, backend=backend)
    return (out,)


def run_index(args):
    """Pool worker: run task j on backend; also report the child's thread count."""
    j, backend = args
    return run(tasks()[j], backend), ef21fast.get_num_threads(backend), os.getpid()


def same(a, b):
    return len(a) == len(b) and all(bits_equal(u, v) and u.dtype == v.dtype
                                    for u, v in zip(a, b))


def digest(results):
    h = hashlib.sha256()
    for res in results:
        for a in res:
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def threads_scenario(backends, n_threads=8, reps=2):
    """n_threads Python threads run every task (each its own order) on their own
    arrays, *before* any serial call (first-use races: imports, compilation, the
    Numba layer detection); then the serial results are computed and compared."""
    ts = tasks()
    got = [[] for _ in range(n_threads)]
    errors = []
    barrier = threading.Barrier(n_threads)

    def worker(i):
        backend = backends[i % len(backends)]
        order = np.random.default_rng(100 + i).permutation(len(ts))
        try:
            barrier.wait()
            for _ in range(reps):
                for j in order:
                    got[i].append((j, backend, run(ts[j], backend)))
        except BaseException as exc:  # reported, and fails the scenario
            errors.append(f"thread {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    serial = {(j, b): run(ts[j], b) for b in set(backends) for j in range(len(ts))}
    bad = [f"task {j} ({ts[j][0]}) on {b} in thread {i}"
           for i in range(n_threads) for j, b, res in got[i] if not same(res, serial[j, b])]
    assert not bad, bad[:10]
    calls = sum(len(g) for g in got)
    layer = None
    if "numba" in backends:
        import numba
        layer = numba.threading_layer()
    print(json.dumps({"ok": True, "calls": calls, "layer": layer}))


def pool_scenario(method, backend, api):
    """The parent runs every task (parallel kernels: thread teams exist), then a pool
    of 2 workers of start method ``method`` runs them again; results must be equal."""
    import multiprocessing as mp
    ts = tasks()
    parent = [run(t, backend) for t in ts]
    ctx = mp.get_context(method)
    jobs = [(j, backend) for j in range(len(ts))]
    try:
        if api == "executor":
            from concurrent.futures import ProcessPoolExecutor
            with ProcessPoolExecutor(2, mp_context=ctx) as ex:
                out = list(ex.map(run_index, jobs, timeout=float(os.environ["T_POOL"])))
        else:
            with ctx.Pool(2) as pool:
                out = pool.map_async(run_index, jobs).get(float(os.environ["T_POOL"]))
    except BaseException as exc:  # a dead or hung worker: report and leave at once
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}),
              flush=True)
        os._exit(3)
    bad = [j for j, (res, _, _) in enumerate(out) if not same(res, parent[j])]
    assert not bad, [ts[j][0] for j in bad]
    print(json.dumps({"ok": True, "child_threads": sorted({o[1] for o in out}),
                      "pids": len({o[2] for o in out})}))


def hash_scenario(n):
    """Thread count from ef21fast.set_num_threads(n) (n > 0) or the environment. The
    compiled backends that are available, or those of them named in
    ``EF21FAST_SCENARIO_BACKENDS`` (a comma-separated list; .ci/sanitize names "c": its
    C build is what it checks, and the Numba kernels' first compile under the
    preloaded ASan allocator took over three minutes of its run)."""
    if n > 0:
        ef21fast.set_num_threads(n)
    only = os.environ.get("EF21FAST_SCENARIO_BACKENDS")
    names = [b for b in ("c", "numba") if b in ef21fast.available_backends()
             and (not only or b in only.split(","))]
    report = {}
    for b in names:
        report[b] = {"hash": digest([run(t, b) for t in tasks()]),
                     "threads": ef21fast.get_num_threads(b)}
    print(json.dumps(report))


def gil_scenario():
    """Two C topk calls (d = 5e7 float32, one OpenMP thread each) run from two Python
    threads overlap in time, and a pure-Python thread keeps counting during one call."""
    ef21fast.set_num_threads(1)
    d = 50_000_000
    k = d // 2  # the long path: about 0.5 s per call on one thread
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(d, dtype=np.float32) for _ in range(2)]
    ef21fast.topk(xs[0][:1000], 5, backend="c")  # load the backend
    single = []
    for x in xs:
        t0 = time.perf_counter()
        ef21fast.topk(x, k, backend="c")
        single.append(time.perf_counter() - t0)
    # 1. two threads, each one long C call: the spans [start, end] must overlap. With
    #    the GIL held during a call they could overlap by a switch interval at most.
    spans = [None, None]
    barrier = threading.Barrier(2)

    def one(i):
        barrier.wait()
        t0 = time.perf_counter()
        ef21fast.topk(xs[i], k, backend="c")
        spans[i] = (t0, time.perf_counter())

    th = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    t0 = time.perf_counter()
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.perf_counter() - t0
    overlap = min(s[1] for s in spans) - max(s[0] for s in spans)
    shortest = min(s[1] - s[0] for s in spans)
    # 2. a pure-Python counter thread progresses while the main thread is inside C
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    sp = threading.Thread(target=spin)
    sp.start()
    time.sleep(0.2)  # solo rate of the counter (the main thread only sleeps)
    c0 = count[0]
    time.sleep(0.3)
    rate = (count[0] - c0) / 0.3
    c0 = count[0]
    t0 = time.perf_counter()
    ef21fast.topk(xs[0], k, backend="c")
    during = time.perf_counter() - t0
    progressed = count[0] - c0
    stop.set()
    sp.join()
    print(json.dumps({"single": single, "wall": wall, "overlap": overlap,
                      "shortest": shortest, "counter_fraction":
                      progressed / max(rate * during, 1.0), "during": during,
                      "switch_interval": sys.getswitchinterval()}))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "threads":
        threads_scenario(sys.argv[2].split(","))
    elif what == "pool":
        pool_scenario(sys.argv[2], sys.argv[3], sys.argv[4])
    elif what == "hash":
        hash_scenario(int(sys.argv[2]))
    elif what == "gil":
        gil_scenario()
