"""End to end: ``ef21fast run`` per round (EF21, Top1, its trace included) on the four
LIBSVM files, against a plain per-client NumPy loop and one streaming read of the data.

For each file (a9a, mushrooms, phishing, w8a) and n = 20 and 1000 clients (contiguous
split), side by side in one pytest-benchmark group, each timed over several rounds per
call (``extra_info["rounds"]``: the README divides by it; ``CLI_ROUNDS`` for the
command, so that what a run does once -- its first pass at x_0, the checkpoint of x_0
with its fsync, opening trace.csv -- weighs well under 1% of a round, ``ROUNDS`` for
the others):

* "ef21fast run": the rounds of ``ef21fast run --method ef21 --k 1`` as the command runs
  them (:func:`ef21fast.cli.run.run_streaming`: the method, its trace row of every round,
  f and ||grad f||^2, streamed to ``trace.csv``), on the problem the command builds
  (:func:`ef21fast.cli._common.build_problem`: the layout chosen by density); the
  problem's set-up (L and the L_i) is outside the timing. Also with ``trace_every=10``.
* "per-client loop": each client holds its rows as a dense array and makes one call
  that returns its loss and gradient (one product ``A_i @ x``), then ``np.argpartition``
  on ``|grad_i - g_i|``; the server sums the messages; f and ||grad f||^2 of the trace
  come from the same calls.
* "one streaming read": ``np.sum`` over the arrays of the data as stored (the CSR
  arrays the file loads into), once per round.

The files are found in ``$EF21FAST_DATA_DIR`` (as the tests), else ``../shared/data``
next to the repository; the tests skip, saying so, when a file is absent. They are
never copied into the repository. Run::

    OPENBLAS_NUM_THREADS=1 pytest bench/test_bench_run.py --benchmark-enable \\
        -p no:cacheprovider --benchmark-json=run.json
    python bench/render_table.py run.json --groups run

Targets (issue 14): at n = 1000 at least 20x the loop; at n = 20 within 3x of the read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

import ef21fast

FILES = ("a9a", "mushrooms", "phishing", "w8a")
CLIENTS = (20, 1000)
ROUNDS = 100
CLI_ROUNDS = 500
GAMMA = "theory-am"
#: ``impl`` of the anchors (bench/render_table.py divides by them).
LOOP_IMPL = "per-client numpy loop (dense rows)"
READ_IMPL = "one streaming read of the data as stored"


def data_dir() -> Path:
    env = os.environ.get("EF21FAST_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def data_path(name: str) -> Path:
    path = data_dir() / f"{name}.txt"
    if not path.is_file():
        pytest.skip(f"LIBSVM file {path} not available (set EF21FAST_DATA_DIR to the "
                    f"folder of {', '.join(f + '.txt' for f in FILES)})")
    return path


@functools.lru_cache(maxsize=None)
def loaded(name: str):
    from ef21fast.methods.data import load_libsvm

    return load_libsvm(data_path(name))


@functools.lru_cache(maxsize=None)
def problem_for(name: str, n: int):
    """The problem ``ef21fast run --data NAME.txt --clients n`` builds."""
    from ef21fast.cli._common import build_problem

    return build_problem("logreg", str(data_path(name)), clients=n)


def run_options(trace_every: int = 1, rounds: int = ROUNDS) -> dict:
    return dict(k=1, gamma=GAMMA, gamma_mult=1.0, iters=rounds, tol=None, x0=None,
                seed=0, backend=None, bits="values", p=None, batch=None,
                participation="independent", progress=False, sgd_theory=False,
                adaptive_step=False, trace_every=trace_every)


class CliRounds:
    """``rounds`` rounds of ``ef21fast run`` (``run_streaming``, trace.csv written)."""

    def __init__(self, name, n, trace_every=1, rounds=CLI_ROUNDS):
        self.problem, _ = problem_for(name, n)
        self.rounds = rounds
        self.options = run_options(trace_every, rounds)
        self.out = tempfile.mkdtemp(prefix="ef21fast-bench-run-")

    def __call__(self):
        from ef21fast.cli.run import run_streaming

        return run_streaming(self.problem, "ef21", self.options, self.out)


class LoopRounds:
    """The same method as a plain per-client loop over dense rows."""

    def __init__(self, name, n, rounds=ROUNDS):
        self.rounds = rounds
        problem, data = problem_for(name, n)
        A = data.A.toarray() if data.is_sparse else data.A
        o = data.offsets
        self.A = [np.ascontiguousarray(A[o[i]:o[i + 1]]) for i in range(n)]
        self.b = [data.b[o[i]:o[i + 1]] for i in range(n)]
        self.lam, self.n, self.gamma = problem.lam, n, None
        from ef21fast.methods.algorithms import step_size

        self.gamma, _ = step_size(problem, "ef21", GAMMA, k=1)

    def loss_grad(self, i, x):
        A, b = self.A[i], self.b[i]
        t = -b * (A @ x)
        x2 = x * x
        loss = np.mean(np.logaddexp(0.0, t)) + self.lam * np.sum(x2 / (1.0 + x2))
        grad = A.T @ (-b * expit(t)) / len(b) + 2 * self.lam * x / (1.0 + x2) ** 2
        return loss, grad

    def __call__(self):
        n = self.n
        x = np.zeros(self.A[0].shape[1])
        state = [self.loss_grad(i, x)[1] for i in range(n)]
        g = np.mean(state, axis=0)
        rows = []
        for _ in range(self.rounds):
            x = x - self.gamma * g
            f, grad = 0.0, np.zeros_like(x)
            for i in range(n):
                fi, gi = self.loss_grad(i, x)
                f += fi / n
                grad += gi / n
                delta = gi - state[i]
                idx = np.argpartition(np.abs(delta), -1)[-1:]
                c = delta[idx]
                state[i][idx] += c
                g[idx] += c / n
            rows.append((f, float(grad @ grad)))
        return x, rows


class StreamRead:
    """``ROUNDS`` streaming reads of the data as the file loads (CSR arrays)."""

    def __init__(self, name):
        A, b = loaded(name)
        self.arrays = [A.data, A.indices, A.indptr, b]

    def __call__(self):
        return sum(float(np.sum(a)) for a in self.arrays for _ in range(ROUNDS))


@contextlib.contextmanager
def kernel_threads(n):
    if n is None:
        yield
        return
    before = ef21fast.get_num_threads("c")
    ef21fast.set_num_threads(n)
    try:
        yield
    finally:
        ef21fast.set_num_threads(before)


def _group(name, n):
    return f"ef21fast run, EF21 Top1, {name}, n={n} (per call: rounds in extra_info)"


def _compiled():
    from ef21fast.backends import registry

    if "c" not in registry.available_backends():
        pytest.skip("the C backend is not built: these targets are about it")


def _time(benchmark, fn, impl, name, n, rounds, *, calls=None, **info):
    """Time ``fn`` (``rounds`` rounds per call) in the group of ``name`` and ``n``;
    ``calls``: a fixed number of calls (for the slow loop), else pytest-benchmark's."""
    benchmark.group = _group(name, n)
    benchmark.extra_info.update(impl=impl, data=name, n=n, rounds=rounds, **info)
    if calls is not None and benchmark.enabled:
        benchmark.pedantic(fn, rounds=calls, iterations=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("threads", [None, 1], ids=["threads-default", "threads-1"])
@pytest.mark.parametrize("trace_every", [1, 10])
@pytest.mark.parametrize("n", CLIENTS)
@pytest.mark.parametrize("name", FILES)
def test_run_cli(benchmark, name, n, trace_every, threads):
    _compiled()
    rounds = CliRounds(name, n, trace_every)
    with kernel_threads(threads):
        _time(benchmark, rounds, f"ef21fast run (trace every {trace_every})", name, n,
              rounds.rounds, threads=threads or "default",
              layout="csr" if rounds.problem.data.is_sparse else "dense")


@pytest.mark.parametrize("n", CLIENTS)
@pytest.mark.parametrize("name", FILES)
def test_run_loop(benchmark, name, n):
    _time(benchmark, LoopRounds(name, n), LOOP_IMPL, name, n, ROUNDS, calls=3)


@pytest.mark.parametrize("n", CLIENTS)
@pytest.mark.parametrize("name", FILES)
def test_run_stream_read(benchmark, name, n):
    _time(benchmark, StreamRead(name), READ_IMPL, name, n, ROUNDS)


def test_loop_and_cli_run_the_same_method():
    """The loop is the same EF21 (same x and trace to rounding), so the ratio is fair
    (over 10 rounds: later, rounding can break a near tie of Top1 either way)."""
    _compiled()
    name, n = "mushrooms", 20
    x_loop, rows = LoopRounds(name, n, rounds=10)()
    trace = CliRounds(name, n, rounds=10)()
    np.testing.assert_allclose(trace.x, x_loop, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(trace.f[1:], [r[0] for r in rows], rtol=1e-10)
    np.testing.assert_allclose(trace.grad_norm_sq[1:], [r[1] for r in rows], rtol=1e-7)
