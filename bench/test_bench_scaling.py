"""Time per element of topk as d grows (issue 4): does the selection stay linear?

topk, float32, k = d/100, on the default backend and the other compiled one, at
d = 1e6 and 1e7, plus d = 1e8 (400 MB of input) when ``EF21FAST_BENCH_LARGE=1``.
Each case records ``ns_per_elem`` (median / d) in ``extra_info`` beside kernel, d,
k, dtype, backend (``measure="scaling"``: bench/render_table.py renders these in
their own table, ns/elem per d and the ratio largest d / smallest d). One streaming
read of the same x (``np.sum``, ``backend = ef21fast.testing.timing.STREAM``) is measured at the
same sizes, as the anchor of the main table is: how much the memory hierarchy alone
adds per element once x no longer fits in the last-level cache (the 1e6 input, 4 MB,
does; 1e7 and 1e8 stream from DRAM).
``test_scaling_ratio`` reports ns/elem(largest d) / ns/elem(1e6) per backend, with the
read's own ratio beside it; the target is <= 1.5 from 1e6 to 1e8. It is reported, not
asserted: on a shared machine the medians at d = 1e6 (a few hundred microseconds)
swing by 10x and more. The ratio of the minima is printed beside the ratio of the
medians. ::

    EF21FAST_BENCH_LARGE=1 pytest bench/test_bench_scaling.py --benchmark-enable -s
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from ef21fast import api
from ef21fast.backends import registry
from ef21fast.testing.timing import STREAM, median_time

LARGE = os.environ.get("EF21FAST_BENCH_LARGE", "") not in ("", "0")
SIZES = [10**6, 10**7, 10**8]
K_FRACTION = 100
MAX_RATIO = 1.5

#: (backend, d) -> (median, min) ns per element, filled by test_topk_ns_per_elem
#: in real runs.
RESULTS: dict[tuple[str, int], tuple[float, float]] = {}


def compiled_backends() -> list[str]:
    """The default backend first, then the other compiled one (both if available)."""
    avail = [b for b in registry.available_backends() if b != "numpy"]
    try:
        default = registry.default_backend()
    except (ValueError, RuntimeError):
        default = None
    if default in avail:
        avail.remove(default)
        avail.insert(0, default)
    return avail


BACKENDS = ["c", "numba"]


@functools.lru_cache(maxsize=1)
def _data(d):
    return np.random.default_rng(d).standard_normal(d, dtype=np.float32)


def _skip_unless(backend, d):
    """Skip an absent backend (None: the NumPy anchor, always here), and 1e8 unless
    opted in."""
    if backend is not None and backend not in compiled_backends():
        pytest.skip(f"backend {backend!r} is not available here")
    if d >= 10**8 and not LARGE:
        pytest.skip("d = 1e8 (400 MB) is opt-in: set EF21FAST_BENCH_LARGE=1")


@pytest.mark.parametrize("d", SIZES, ids=[f"d{d:.0e}" for d in SIZES])
@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_ns_per_elem(benchmark, backend, d):
    _skip_unless(backend, d)
    k = d // K_FRACTION
    x = _data(d)
    benchmark.group = f"topk scaling float32 k=d/{K_FRACTION}"
    benchmark.extra_info.update(measure="scaling", kernel="topk", d=d, k=k,
                                dtype="float32", backend=backend)
    api.topk(x[: 2**20], 2**20 // K_FRACTION, backend=backend)  # compile / load
    if benchmark.enabled and d >= 10**8:
        # three calls first: the outputs (12 MB) page-fault on the first two, until
        # glibc's dynamic mmap threshold has risen and its heap has grown to hold them
        # (measured: 30, 20, then 10.5-11 ms in C; 50, 19, then 11-12 ms in Numba)
        idx, _ = benchmark.pedantic(api.topk, args=(x, k), kwargs=dict(backend=backend),
                                    rounds=7, warmup_rounds=3)
    else:
        idx, _ = benchmark(api.topk, x, k, backend=backend)
    assert idx.shape == (k,)
    if benchmark.enabled:
        ns = benchmark.stats.stats.median / d * 1e9
        ns_min = benchmark.stats.stats.min / d * 1e9
        RESULTS[(backend, d)] = (ns, ns_min)
        benchmark.extra_info.update(ns_per_elem=ns, ns_per_elem_min=ns_min)
        print(f"\ntopk {backend} d={d:.0e} k={k}: {ns:.3f} ns/elem (min {ns_min:.3f})")


@pytest.mark.parametrize("d", SIZES, ids=[f"d{d:.0e}" for d in SIZES])
def test_stream_read_ns_per_elem(benchmark, d):
    """The anchor: one streaming read of the same x (``np.sum``), ns/elem per d."""
    _skip_unless(None, d)
    x = _data(d)
    benchmark.group = f"topk scaling float32 k=d/{K_FRACTION}"
    benchmark.extra_info.update(measure="scaling", kernel="topk", d=d, k=d // K_FRACTION,
                                dtype="float32", backend=STREAM)
    if benchmark.enabled and d >= 10**8:
        total = benchmark.pedantic(np.sum, args=(x,), rounds=7, warmup_rounds=3)
    else:
        total = benchmark(np.sum, x)
    assert np.isfinite(total)
    if benchmark.enabled:
        ns = benchmark.stats.stats.median / d * 1e9
        ns_min = benchmark.stats.stats.min / d * 1e9
        RESULTS[(STREAM, d)] = (ns, ns_min)
        benchmark.extra_info.update(ns_per_elem=ns, ns_per_elem_min=ns_min)
        print(f"\nnp.sum d={d:.0e}: {ns:.3f} ns/elem (min {ns_min:.3f})")


@pytest.mark.parametrize("backend", BACKENDS)
def test_scaling_ratio(request, backend):
    """ns/elem at the largest d run over ns/elem at 1e6 (target <= 1.5 up to 1e8)."""
    _skip_unless(backend, 0)
    big = 10**8 if LARGE else 10**7
    ns, ns_min = {}, {}
    for d in (10**6, big):
        if (backend, d) in RESULTS:
            ns[d], ns_min[d] = RESULTS[(backend, d)]
        else:  # smoke mode or run alone: a short measurement of our own
            x = _data(d)
            ns[d] = median_time(lambda: api.topk(x, d // K_FRACTION, backend=backend),
                                min_time=0.05, max_repeat=10) / d * 1e9
            ns_min[d] = float("nan")
    ratio = ns[big] / ns[10**6]
    ratio_min = ns_min[big] / ns_min[10**6]
    request.node.user_properties.extend([("ns_per_elem_ratio", ratio),
                                         ("ns_per_elem_ratio_min", ratio_min)])
    verdict = "meets" if ratio <= MAX_RATIO else "MISSES"
    read = ""
    if (STREAM, 10**6) in RESULTS and (STREAM, big) in RESULTS:
        read_ratio = RESULTS[(STREAM, big)][0] / RESULTS[(STREAM, 10**6)][0]
        request.node.user_properties.append(("stream_read_ratio", read_ratio))
        read = f"; one streaming read of x (np.sum), same run: ratio {read_ratio:.2f}"
    print(f"\ntopk {backend}: {ns[10**6]:.3f} ns/elem at 1e6, {ns[big]:.3f} at {big:.0e}; "
          f"ratio {ratio:.2f}, of the minima {ratio_min:.2f} ({verdict} the target <= "
          f"{MAX_RATIO}{'' if big >= 10**8 else ', which is set for 1e8'}){read}")
    assert ns[big] > 0 and ns[10**6] > 0
