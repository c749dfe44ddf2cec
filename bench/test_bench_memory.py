"""Peak extra memory of the compiled kernels (issue 4): resident memory, fresh process.

For topk, ef21_step and ef_step on the compiled backends (c, numba), float32,
d = 1e7 and k = d/1000, d/100, a child process

1. warms the kernel up on a small input (d = 2**20, the same k/d, so compilation or
   cache loading, thread pools and any workspace pools exist before measuring);
2. allocates and touches the big inputs (``x``; or ``grad`` and ``state``);
3. resets the peak-RSS counter (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0)
   and reads the peak (``VmHWM`` in ``/proc/self/status``), which now equals the
   current resident set;
4. runs the kernel once on the big input and reads the peak again.

The child runs with ``MALLOC_MMAP_THRESHOLD_=65536`` (see ``CHILD_ENV``) so that
memory freed by the warm-up cannot silently absorb the kernel's allocations. The
*extra* memory is the difference: everything the call made resident, outputs
included (``idx`` int64 + ``val``: 12 bytes per selected entry, i.e. 3% of ``x`` at
k = d/100 and 0.3% at k = d/1000). It is reported as a fraction of the bytes of the
array the selection reads: ``x`` for topk, ``grad`` for the fused steps (``state`` /
``error`` is updated in place and not counted in the denominator). Target and
assertion: at most 10% for every k <= d/100. Memory, unlike time, is deterministic
enough to assert, so this runs in CI too (one child per case, a few seconds each).
Where ``clear_refs`` cannot be written the child falls back to ``ru_maxrss`` after
allocating the inputs, and the test skips if that baseline is not the current
resident set (the warm-up peak would hide the kernel's).

Run with figures::

    pytest bench/test_bench_memory.py --benchmark-enable -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from ef21fast._spec import KERNELS as SPECS
from ef21fast.backends import registry

D = 10**7
K_FRACTIONS = (1000, 100)
#: The kernels that select from a d-vector (the kernel table's entries with a data input).
KERNELS = tuple(spec.name for spec in SPECS.values() if spec.param("data") is not None)
BACKENDS = ("c", "numba")
MAX_FRACTION = 0.10

#: (kernel, backend, k_fraction) -> reason: known misses, marked xfail with the
#: measured figure (kept empty while every case meets the target).
KNOWN_MISSES: dict[tuple[str, str, int], str] = {}

#: glibc's malloc otherwise raises its mmap threshold dynamically (up to 32 MiB) after
#: the warm-up frees its arrays, and later workspaces are carved from heap pages that
#: are already resident: the kernel's extra memory would read as ~0. A fixed 64 KiB
#: threshold makes every sizeable allocation a fresh mapping, counted when touched.
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0",
             "OPENBLAS_NUM_THREADS": "1"}

#: Where the child finds rss.py (the readings it shares with bench/scale.py).
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import ef21fast
    from ef21fast._spec import KERNELS

    kernel, backend, d, k_frac = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, sys.argv[5])  # bench/: the resident-set readings of rss.py
    from rss import peak_bytes, reset_peak, status_kib

    spec = KERNELS[kernel]
    fn = getattr(ef21fast, kernel)

    def run(grad, state, k):
        args, kwargs = spec.arguments(grad, k, state)
        return fn(*args, backend=backend, **kwargs)

    rng = np.random.default_rng(0)
    small = 2**20
    for _ in range(2):  # compile / load from cache, start threads, fill any pools
        g = rng.standard_normal(small, dtype=np.float32)
        s = rng.standard_normal(small, dtype=np.float32)
        run(g, s, max(1, small // k_frac))
    del g, s

    k = max(1, d // k_frac)
    grad = rng.standard_normal(d, dtype=np.float32)      # written: resident
    state = (rng.standard_normal(d, dtype=np.float32) if spec.param("state") is not None
             else None)
    args, kwargs = spec.arguments(grad, k, state)  # the state copied: written, resident
    del state
    reset = reset_peak()
    before = peak_bytes()
    rss_kib = status_kib("VmRSS")
    rss_before = rss_kib * 1024 if rss_kib is not None else None
    out = fn(*args, backend=backend, **kwargs)
    after = peak_bytes()
    assert out[0].shape == (k,)
    print(json.dumps(dict(before=before, after=after, rss_before=rss_before,
                          reset=reset, input_bytes=grad.nbytes, k=k)))
""")


def measure(kernel: str, backend: str, d: int, k_fraction: int) -> dict:
    """Run the child for one case; its JSON report plus ``extra`` and ``fraction``."""
    env = dict(os.environ, **CHILD_ENV)
    proc = subprocess.run([sys.executable, "-c", CHILD, kernel, backend, str(d),
                           str(k_fraction), BENCH_DIR], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tempfile.gettempdir())  # the installed package
    if proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["extra"] = max(0, report["after"] - report["before"])
    report["fraction"] = report["extra"] / report["input_bytes"]
    return report


def _skip_unless_works(kernel, backend):
    reason = {(kr, b): r for kr, b, _, r in registry.registry()}[(kernel, backend)]
    if reason is not None:
        pytest.skip(reason)


def _cases():
    out = []
    for backend in BACKENDS:
        for kernel in KERNELS:
            for frac in K_FRACTIONS:
                marks = ()
                if (kernel, backend, frac) in KNOWN_MISSES:
                    marks = pytest.mark.xfail(reason=KNOWN_MISSES[(kernel, backend, frac)],
                                              strict=False)
                out.append(pytest.param(kernel, backend, frac, marks=marks,
                                        id=f"{kernel}-{backend}-k=d/{frac}"))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="resident-memory peak read from /proc (Linux)")
@pytest.mark.parametrize("kernel,backend,k_fraction", _cases())
def test_peak_extra_memory(benchmark, kernel, backend, k_fraction):
    _skip_unless_works(kernel, backend)
    k = D // k_fraction
    benchmark.group = "peak extra memory (fresh process), float32 d=1e7"
    benchmark.extra_info.update(measure="memory", kernel=kernel, backend=backend,
                                d=D, k=k, dtype="float32")
    report = benchmark.pedantic(measure, args=(kernel, backend, D, k_fraction),
                                rounds=1, iterations=1)
    if not report["reset"] and report["rss_before"] != report["before"]:
        pytest.skip("cannot reset the peak-RSS counter and the warm-up peak hides the "
                    "kernel's")
    benchmark.extra_info.update(extra_bytes=report["extra"], fraction=report["fraction"],
                                input_bytes=report["input_bytes"],
                                baseline_bytes=report["before"])
    print(f"\n{kernel} {backend} d={D} k={k}: extra {report['extra'] / 2**20:.2f} MiB "
          f"= {100 * report['fraction']:.2f}% of the input ({report['input_bytes'] / 2**20:.1f}"
          f" MiB)")
    assert report["fraction"] <= MAX_FRACTION, (
        f"{kernel} on {backend} at k = d/{k_fraction}: peak extra memory "
        f"{100 * report['fraction']:.1f}% of the input, target <= {100 * MAX_FRACTION:.0f}%")
