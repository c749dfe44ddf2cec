"""Thread count of the compiled backends (results never depend on it).

The count applies to the Numba and C backends, now if they are loaded and when they
load later. Without a call, each backend uses its own default: ``NUMBA_NUM_THREADS``
for Numba and ``OMP_NUM_THREADS`` for OpenMP (else all cores).
"""

from __future__ import annotations

import numbers

from ef21fast import dispatch

_requested: int | None = None


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled kernels (``1 <= n``; capped per backend).

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n < 1``.
    """
    global _requested
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _requested = int(n)
    for name in ("numba", "c"):
        module = dispatch.loaded_backend(name)
        if module is not None and hasattr(module, "set_num_threads"):
            module.set_num_threads(_requested)


def requested_num_threads() -> int | None:
    """The count last set by :func:`set_num_threads`, or None."""
    return _requested


def get_num_threads(backend: str | None = None) -> int:
    """Threads the kernels of ``backend`` (default: the default backend) use."""
    module = dispatch.load_backend(backend or dispatch.default_backend())
    getter = getattr(module, "get_num_threads", None)
    return 1 if getter is None else int(getter())
