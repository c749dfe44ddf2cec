"""ef21fast: fast, exact, cross-checked kernels for error-feedback compressed optimisation.

Kernels (every backend returns the same bits as :mod:`ef21fast.reference`):
:func:`topk`, :func:`ef21_step`, :func:`ef_step`, :func:`scatter_add`.

Importing the package compiles nothing and imports neither numba nor the C library;
the backends load on first use (see :mod:`ef21fast.backends.registry`).
"""

import warnings

from ef21fast import _moved
from ef21fast._version import __version__
from ef21fast.api import ef21_step, ef_step, scatter_add, topk
from ef21fast.backends.registry import (
    available_backends,
    backend_errors,
    default_backend,
    get_num_threads,
    registry,
    set_num_threads,
)

from ef21fast.backends import checkout as _checkout

_moved.install()
if _checkout.problem() is not None:
    warnings.warn(_checkout.problem(), RuntimeWarning, stacklevel=2)

__all__ = [
    "__version__",
    "topk",
    "ef21_step",
    "ef_step",
    "scatter_add",
    "available_backends",
    "backend_errors",
    "default_backend",
    "registry",
    "get_num_threads",
    "set_num_threads",
]
