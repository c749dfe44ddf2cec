"""The backend registry: which backends exist, which work here, and which one runs.

Three backends implement the same kernels under the same names:

``"c"``
    C kernels compiled at install through cffi (``csrc/``), OpenMP when available.
``"numba"``
    Numba-parallel kernels (``ef21fast.kernels``), compiled on first use and cached.
``"numpy"``
    The reference (``ef21fast.reference``): slow, obviously right, always present.

Backends are imported lazily: ``import ef21fast`` imports neither numba nor the C
library. A backend that fails to import is absent from :func:`available_backends`,
and the reason is kept for :func:`backend_errors` and ``ef21fast info``. A backend
module may declare ``MISSING = {kernel_name: reason}`` for kernels it lacks; the
registry reports them and the tests skip those pairs with the reason.
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
import os
import sys
import threading

from ef21fast._spec import KERNEL_NAMES
from ef21fast.backends import checkout

#: Kernel names, in the order every backend module defines them (the kernel table).
KERNELS = KERNEL_NAMES

#: Backend names, fastest first (the default is the first that imports).
BACKENDS = ("c", "numba", "numpy")

_MODULES = {
    "c": "ef21fast.backends.c",
    "numba": "ef21fast.kernels",
    "numpy": "ef21fast.reference",
}

ENV_VAR = "EF21FAST_BACKEND"

_lock = threading.Lock()
_loaded: dict[str, object] = {}
_errors: dict[str, str] = {}
_requested_threads: int | None = None


def load_backend(name: str):
    """Import and return the module of backend ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend.
    RuntimeError
        If the backend does not work on this machine (the message says why).
    """
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    with _lock:
        if name not in _loaded and name not in _errors:
            try:
                module = importlib.import_module(_MODULES[name])
            except Exception as exc:  # any import failure means "not available"
                _errors[name] = f"{type(exc).__name__}: {exc}"
                why = checkout.problem()
                if why is not None:
                    _errors[name] += f" ({why})"
            else:
                _loaded[name] = module
                with _torch_threads_kept():
                    _apply_thread_request(module)
    if name in _errors:
        raise RuntimeError(f"backend {name!r} is not available: {_errors[name]}")
    return _loaded[name]


@contextlib.contextmanager
def _torch_threads_kept():
    """Give torch back its intra-op thread count if the block changed it.

    Both torch and the compiled backends run on OpenMP; with the C module loaded,
    starting Numba's OpenMP threading layer (at its first thread request) also set
    torch's count (torch 2.13, Numba 0.68: 1 -> 2 threads, DDP steps 3-5x slower).
    """
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _apply_thread_request(module) -> None:
    if _requested_threads is not None and hasattr(module, "set_num_threads"):
        module.set_num_threads(_requested_threads)


def loaded_backend(name: str):
    """The module of backend ``name`` if it was already imported, else None."""
    return _loaded.get(name)


def available_backends() -> list[str]:
    """Names of the backends that import on this machine, fastest first."""
    out = []
    for name in BACKENDS:
        try:
            load_backend(name)
        except RuntimeError:
            continue
        out.append(name)
    return out


def backend_errors() -> dict[str, str]:
    """For each backend that failed to import, the reason (after trying all)."""
    available_backends()
    return dict(_errors)


def default_backend() -> str:
    """The backend used when ``backend=None``.

    ``$EF21FAST_BACKEND`` if set, else the fastest available backend.

    Raises
    ------
    ValueError
        If the environment variable names an unknown backend.
    RuntimeError
        If it names a backend that does not work here.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env not in _MODULES:
            raise ValueError(f"${ENV_VAR} must be one of {BACKENDS}, got {env!r}")
        load_backend(env)
        return env
    return available_backends()[0]


def _missing(module) -> dict[str, str]:
    missing = dict(getattr(module, "MISSING", {}))
    for kernel in KERNELS:
        if kernel not in missing and not callable(getattr(module, kernel, None)):
            missing[kernel] = f"not defined in {module.__name__}"
    return missing


def missing_kernels(name: str) -> dict[str, str]:
    """Kernels backend ``name`` lacks, with the reason it gives (empty if complete)."""
    return _missing(load_backend(name))


def get_kernel(kernel: str, backend: str | None = None):
    """The function implementing ``kernel`` in ``backend`` (None: the default).

    Raises
    ------
    ValueError
        Unknown backend or kernel.
    RuntimeError
        The backend does not work here.
    NotImplementedError
        The backend lacks this kernel (the message gives its reason).
    """
    # Fast path for small calls: the function resolved before, still valid (the module
    # it came from is the one loaded now, and the default has not changed).
    if backend is None or type(backend) is str:
        name = backend if backend is not None else _cached_default()
        hit = _kernel_cache.get((kernel, name))
        if hit is not None and _loaded.get(name) is hit[0]:
            return hit[1]
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"backend must be a string or None, got {type(backend).__name__}")
    name = default_backend() if backend is None else backend
    module = load_backend(name)
    missing = _missing(module)
    if kernel in missing:
        raise NotImplementedError(f"backend {name!r} lacks {kernel}: {missing[kernel]}")
    fn = getattr(module, kernel)
    _kernel_cache[(kernel, name)] = (module, fn)
    return fn


#: (kernel, backend) -> (module, function), filled by :func:`get_kernel`.
_kernel_cache: dict = {}


def _cached_default():
    """The default backend's name if it is known without importing anything (the
    environment names one, or every faster backend has already failed), else None."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env.strip()
    for name in BACKENDS:
        if name in _loaded:
            return name
        if name not in _errors:
            return None
    return None


def registry() -> list[tuple[str, str, object, str | None]]:
    """Every (kernel, backend) pair: ``(kernel, backend, function or None, reason)``.

    ``reason`` is None when the pair works, else why it does not (backend absent
    or kernel missing). The tests and the benchmarks iterate this one table.
    """
    rows = []
    for backend in BACKENDS:
        try:
            module = load_backend(backend)
        except RuntimeError as exc:
            rows.extend((k, backend, None, str(exc)) for k in KERNELS)
            continue
        missing = _missing(module)
        for kernel in KERNELS:
            if kernel in missing:
                rows.append((kernel, backend, None, missing[kernel]))
            else:
                rows.append((kernel, backend, getattr(module, kernel), None))
    return rows


# ----------------------------------------------------------------------------- threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled kernels (``1 <= n``; capped per backend).

    The count applies to the Numba and C backends, now if they are loaded and when they
    load later. Without a call, each backend uses its own default: ``NUMBA_NUM_THREADS``
    for Numba and ``OMP_NUM_THREADS`` for OpenMP (else all cores). Results never depend
    on the count. torch's own thread count (``torch.set_num_threads``) is left as it was.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n < 1``.
    """
    global _requested_threads
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _requested_threads = int(n)
    with _torch_threads_kept():
        for name in BACKENDS:
            module = _loaded.get(name)
            if module is not None and hasattr(module, "set_num_threads"):
                module.set_num_threads(_requested_threads)


def requested_num_threads() -> int | None:
    """The count last set by :func:`set_num_threads`, or None."""
    return _requested_threads


def get_num_threads(backend: str | None = None) -> int:
    """Threads the kernels of ``backend`` (default: the default backend) use."""
    module = load_backend(backend or default_backend())
    getter = getattr(module, "get_num_threads", None)
    return 1 if getter is None else int(getter())
