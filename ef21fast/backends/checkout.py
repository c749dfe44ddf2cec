"""Is ef21fast imported from a source checkout whose compiled parts are not in place?

``pip install .`` compiles the C backend and installs the top-level ``kernels/`` folder
as ``ef21fast.kernels`` (the Numba backend) in site-packages; the source folder
``ef21fast/`` itself has neither. Python started in the checkout's root (``python -c``,
``python -m pytest``) imports that folder instead of the installed copy, and would see
the NumPy backend only. :func:`problem` says so, and what to do; ``import ef21fast``
warns with it, the registry adds it to the reasons a backend is missing, and the test
suite refuses to run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["problem", "compiled"]

_PACKAGE = Path(__file__).resolve().parents[1]


def _is_checkout(root: Path) -> bool:
    return ((root / "pyproject.toml").is_file() and (root / "kernels" / "__init__.py").is_file()
            and (root / "csrc").is_dir())


def _c_in_place(package: Path) -> bool:
    """The C extension can be imported, or its build failed with a record (then the
    registry reports that record as the reason)."""
    return (importlib.util.find_spec("ef21fast._ckernels") is not None
            or (package / "_ckernels_build_error.txt").is_file())


def problem() -> str | None:
    """What is missing when ef21fast runs from a source checkout without its build.

    Returns
    -------
    str or None
        A message naming the missing backends and what to do, or None: the package is
        an installed copy, or a checkout installed in development mode (``pip install
        -e .``) or built in place (``python setup.py build_ext --inplace``).
    """
    root = _PACKAGE.parent
    if not _is_checkout(root):
        return None
    missing = []
    if importlib.util.find_spec("ef21fast.kernels") is None:
        missing.append("the Numba backend (kernels/ is installed as ef21fast.kernels)")
    if not _c_in_place(_PACKAGE):
        missing.append("the C backend (compiled by the install)")
    if not missing:
        return None
    return (f"ef21fast is imported from the source checkout {root}, not from an installed "
            f"copy, and {' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} not "
            f"in place there. Run `pip install -e .` in {root} (development mode), or run "
            f"Python from another folder to use the installed copy.")


def compiled(name: str, what: str):
    """``(ffi, lib)`` of the compiled cffi module ``ef21fast.<name>``.

    Raises
    ------
    ImportError
        Saying that ``what`` is not available, with the reason the build recorded in
        ``ef21fast/<name>_build_error.txt`` when there is one (none: not built at all,
        e.g. imported from a source tree).
    """
    try:
        module = importlib.import_module(f"ef21fast.{name}")
    except ImportError as exc:  # not built, or the build failed
        msg = f"{what} is not available: {exc}"
        try:
            msg += f" ({(_PACKAGE / f'{name}_build_error.txt').read_text().strip()})"
        except OSError:
            pass
        raise ImportError(msg) from exc
    return module.ffi, module.lib
