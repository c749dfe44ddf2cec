"""``ef21fast bench``: a quick kernel speed table, and the table format shared with bench/.

Each kernel x backend is timed side by side, in one process, with two anchors on the
same input: one streaming read of the data (``np.sum``: of ``x``, or of ``grad`` and
``state`` for the fused steps) and NumPy's TopK idiom
``np.argpartition(np.abs(x), d - k)`` with the gather of the values. Figures are
medians; the ratios are what to quote, with the machine line printed beside them.
The full, statistically careful suite is ``bench/`` (pytest-benchmark).
"""

from __future__ import annotations

import contextlib
import platform
import time
from datetime import date

import numpy as np

from ef21fast import api
from ef21fast._spec import KERNELS
from ef21fast.backends import registry
from ef21fast._version import __version__

STREAM = "np.sum (stream)"
ARGPART = "np.argpartition"
TORCH = "torch.topk"


@contextlib.contextmanager
def kernel_threads(n, backend: str):
    """Run the block with ``n`` kernel threads (``None``, or the numpy backend, which
    has no threads: leave them as they are), then restore the backend's count."""
    if n is None or backend == "numpy":
        yield
        return
    before = registry.get_num_threads(backend)
    registry.set_num_threads(n)
    try:
        yield
    finally:
        registry.set_num_threads(before)


def argpartition_topk(x: np.ndarray, k: int):
    """NumPy's usual TopK: ``np.argpartition(np.abs(x), d - k)[d - k:]`` plus the gather.

    The anchor of the benchmarks (its order of ties and NaNs is not the contract's).
    """
    d = x.shape[-1]
    idx = np.argpartition(np.abs(x), d - k)[d - k:]
    return idx, x[idx]


def stream_read(*arrays) -> float:
    """One streaming read of each array (``np.sum``): the memory-bandwidth floor."""
    return float(sum(np.sum(a) for a in arrays))


def kernel_call(kernel: str, backend: str, x: np.ndarray, k: int, state=None):
    """``(fn, reset)``: a zero-argument callable running ``kernel`` once on ``x``, and a
    callable restoring the array it updates (None when repeated calls need no reset).

    The arguments come from the kernel table (:mod:`ef21fast._spec`): ``state`` (zeros
    by default) is the initial value of an updated state array; a kernel that takes a
    sparse message gets ``topk(x, k)``. Steps that update a state must be timed from
    the same state each time (``reset`` before each call, untimed): repeated EF21 steps
    on one gradient drive ``grad - state`` to all zeros, an all-ties input that is not
    what a simulation sees.
    """
    spec = KERNELS[kernel]
    message = None
    if spec.param("idx") is not None:
        message = api.topk(x, k, backend="numpy" if x.size <= 10**5 else backend)
    (args, kwargs) = spec.arguments(x, k, state, message)
    fn = getattr(api, kernel)

    def call():
        return fn(*args, backend=backend, **kwargs)

    updated = spec.param("state")
    if updated is None:
        return call, None
    target = args[spec.param_names.index(updated.name)]
    initial = target.copy()

    def reset():
        np.copyto(target, initial)

    return call, reset


def median_time(fn, min_time: float = 0.2, max_repeat: int = 50, reset=None) -> float:
    """Median wall time of ``fn()`` in seconds, after one warm-up call.

    ``reset`` (if given) runs before every call, outside the timed region.
    """
    reset = reset or (lambda: None)
    reset()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeat and (len(times) < 3 or
                                       time.perf_counter() - start < min_time):
        reset()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def machine_line() -> str:
    """Machine, date and versions, to print beside any figure."""
    import os

    parts = [f"{date.today().isoformat()}", platform.machine(),
             f"{os.cpu_count()} cpus", f"python {platform.python_version()}",
             f"numpy {np.__version__}", f"ef21fast {__version__}"]
    try:
        import numba

        parts.append(f"numba {numba.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def format_table(rows: list[dict]) -> str:
    """Markdown table of timing rows.

    Each row has keys kernel, d, k, dtype, backend, median_s and optionally
    ratio_stream (time / streaming read) and speedup_argpartition (argpartition
    time / this time).
    """
    head = ("| kernel | d | k | dtype | backend | median | x stream read "
            "| speed-up vs np.argpartition |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        ratio = r.get("ratio_stream")
        speed = r.get("speedup_argpartition")
        lines.append(
            f"| {r['kernel']} | {format_count(r['d'])} | {format_count(r['k'])} | {r['dtype']} "
            f"| {r['backend']} | {format_seconds(r['median_s'])} "
            f"| {'' if ratio is None else f'{ratio:.2f}'} "
            f"| {'' if speed is None else f'{speed:.1f}x'} |")
    return "\n".join(lines)


def format_count(v: int) -> str:
    v = int(v)
    if v >= 1000 and v == 10 ** int(round(np.log10(v))):
        return f"1e{int(round(np.log10(v)))}"
    return str(v)


def format_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def add_ratios(rows: list[dict]) -> list[dict]:
    """Fill ratio_stream and speedup_argpartition from the anchor rows of each group.

    A group is (kernel, d, k, dtype); anchors are rows whose backend is STREAM or
    ARGPART.
    """
    anchors = {}
    for r in rows:
        if r["backend"] in (STREAM, ARGPART):
            anchors[(r["kernel"], r["d"], r["k"], r["dtype"], r["backend"])] = r["median_s"]
    for r in rows:
        key = (r["kernel"], r["d"], r["k"], r["dtype"])
        stream = anchors.get(key + (STREAM,))
        arg = anchors.get(key + (ARGPART,))
        if stream:
            r["ratio_stream"] = r["median_s"] / stream
        if arg and r["backend"] != ARGPART:
            r["speedup_argpartition"] = arg / r["median_s"]
    return rows


def run_table(sizes=(10**3, 10**5, 10**7), kernels=("topk", "ef21_step"),
              dtype=np.float32, backends=None, k_fraction=100, seed=0) -> list[dict]:
    """Time kernels x backends at the given sizes, with the two anchors per group."""
    backends = [b for b in (backends or registry.available_backends()) if b != "numpy"] \
        or ["numpy"]
    rng = np.random.default_rng(seed)
    rows = []
    for d in sizes:
        x = rng.standard_normal(d).astype(dtype)
        k = max(1, d // k_fraction)
        for kernel in kernels:
            common = dict(kernel=kernel, d=d, k=k, dtype=np.dtype(dtype).name)
            state = rng.standard_normal(d).astype(dtype)
            reads = (x,) if len(KERNELS[kernel].stream_reads) == 1 else (x, state)
            rows.append(dict(common, backend=STREAM,
                             median_s=median_time(lambda: stream_read(*reads))))
            rows.append(dict(common, backend=ARGPART,
                             median_s=median_time(lambda: argpartition_topk(x, k))))
            for b in backends:
                fn, reset = kernel_call(kernel, b, x, k, state=state.copy())
                rows.append(dict(common, backend=b, median_s=median_time(fn, reset=reset)))
            torch_fn = _torch_topk(x, k) if kernel == "topk" else None
            if torch_fn is not None:
                rows.append(dict(common, backend=TORCH, median_s=median_time(torch_fn)))
    return add_ratios(rows)


def _torch_topk(x, k):
    try:
        import torch
    except ImportError:
        return None
    t = torch.from_numpy(x)
    return lambda: torch.topk(t.abs(), k, sorted=False)
