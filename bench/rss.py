"""The resident-set readings of the memory benchmarks (Linux /proc), in one place.

:mod:`bench.scale` and ``bench/test_bench_memory.py`` (its child processes) read the
current and the peak resident set of their own process, reset the peak, and return
the heap's free memory to the system, through these functions. Not part of the
package: benchmarks only.
"""

from __future__ import annotations

import ctypes
import resource

__all__ = ["status_kib", "current_bytes", "peak_bytes", "reset_peak", "trim"]


def status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``"VmRSS"``, ``"VmHWM"``), or None
    where there is no such file or field."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_bytes() -> int:
    """The current resident set, bytes (``VmRSS``; where /proc is missing, the peak
    so far)."""
    kib = status_kib("VmRSS")
    return (kib if kib is not None else _ru_maxrss_kib()) * 1024


def peak_bytes() -> int:
    """The peak resident set since the start or the last :func:`reset_peak`, bytes
    (``VmHWM``; where /proc is missing, ``ru_maxrss``, which cannot be reset)."""
    kib = status_kib("VmHWM")
    return (kib if kib is not None else _ru_maxrss_kib()) * 1024


def reset_peak() -> bool:
    """Reset the peak resident set to the current one (``echo 5 >
    /proc/self/clear_refs``, Linux >= 4.0); False where that cannot be written."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def trim() -> None:
    """Return the heap's free memory to the system (glibc ``malloc_trim``; nothing
    elsewhere)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _ru_maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
