"""Coverage-guided fuzzing of the public kernels with atheris (libFuzzer).

Each input becomes one public kernel call (:func:`ef21fast.testing.fuzzing.build_call` over an
``atheris.FuzzedDataProvider``), run on every available backend and checked against
the numpy reference (:func:`ef21fast.testing.fuzzing.check_call`). Calls matching an open
finding (``ef21fast.testing.fuzzing.KNOWN_ISSUES``) are skipped. The Python code of ef21fast
(validation, dispatch, reference) is instrumented; the Numba and C kernels are not.

Usage (libFuzzer options pass through)::

    pip install atheris
    mkdir -p /tmp/ef21_corpus  # libFuzzer requires the corpus folder to exist
    python fuzz/fuzz_kernels.py -max_total_time=600 -rss_limit_mb=4096 /tmp/ef21_corpus

A mismatch stops the run and writes ``crash-<sha1>``; replay it with
``python fuzz/fuzz_kernels.py crash-<sha1>``. With ``EF21FAST_FUZZ_KEEP_GOING=1`` each
new kind of mismatch is printed (with the call) when first seen, its count at 10,
100, 1000... occurrences, and fuzzing goes on.
"""

import os
import re
import sys
from collections import Counter

import atheris
import numpy as np  # imported first: not instrumented

with atheris.instrument_imports():
    import ef21fast
    from ef21fast.testing import fuzzing

KEEP_GOING = os.environ.get("EF21FAST_FUZZ_KEEP_GOING", "") not in ("", "0")
_seen: Counter = Counter()


def warm_up() -> list[str]:
    """Load every backend and compile the Numba kernels (once, before fuzzing)."""
    backends = ef21fast.available_backends()  # imported here: not instrumented
    for b in backends:
        for dtype in (np.float32, np.float64):
            for shape in ((7,), (3, 7)):
                x = np.linspace(-1, 1, int(np.prod(shape))).astype(dtype).reshape(shape)
                n = 1 if len(shape) == 1 else shape[0]
                w = np.ones(n, dtype) if len(shape) == 2 else 1.0
                ef21fast.topk(x, 2, backend=b)
                for scale in (None, w):
                    ef21fast.ef21_step(x, np.zeros_like(x), 2, scale=scale, backend=b)
                ef21fast.ef_step(x, np.zeros_like(x), 2, lr=0.5, backend=b)
                idx = np.zeros(shape, np.int64)
                for weights in (None, w):
                    ef21fast.scatter_add(np.zeros(7, dtype), idx, x, weights, backend=b)
    return backends


def _kind(call, message: str) -> str:
    """A short key for a mismatch: kernel, backend and what differed, without values."""
    first = message.splitlines()[0]
    return f"{call.kernel} " + re.sub(r"(:| reference| array\(|\(reference).*", "", first)


def TestOneInput(data: bytes) -> None:
    call = fuzzing.build_call(fuzzing.FDPSource(atheris.FuzzedDataProvider(data)))
    if fuzzing.known_issue(call) is not None:
        return
    try:
        fuzzing.check_call(*call)
    except AssertionError as exc:
        if not KEEP_GOING:
            raise
        kind = _kind(call, str(exc))
        _seen[kind] += 1
        count = _seen[kind]
        if count == 1:
            print(f"\n=== NEW FINDING: {kind}\n{call.note}\n{exc}\n", file=sys.stderr,
                  flush=True)
        elif str(count).strip("0") == "1":  # 10, 100, 1000...
            print(f"=== FINDING {kind}: seen {count} times", file=sys.stderr, flush=True)


def main() -> None:
    backends = warm_up()
    print(f"backends: {backends}", file=sys.stderr, flush=True)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
