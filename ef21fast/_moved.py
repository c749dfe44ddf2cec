"""Modules that moved in the 0.2 layout, still importable under their old names.

``import ef21fast.algorithms`` (and the others below) returns the module at its new
place, with a :class:`DeprecationWarning` naming it. Nothing is imported until an old
name is asked for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module name -> new module name.
MOVED = {
    "ef21fast.algorithms": "ef21fast.methods.algorithms",
    "ef21fast.data": "ef21fast.methods.data",
    "ef21fast.problems": "ef21fast.methods.problems",
    "ef21fast.theory": "ef21fast.methods.theory",
    "ef21fast.trace": "ef21fast.methods.trace",
    "ef21fast.plots": "ef21fast.methods.plots",
    "ef21fast.reproduce": "ef21fast.methods.reproduce",
    "ef21fast.dispatch": "ef21fast.backends.registry",
    "ef21fast.threads": "ef21fast.backends.registry",
    "ef21fast.c_backend": "ef21fast.backends.c",
    "ef21fast.validation": "ef21fast._validation",
    "ef21fast.fuzzing": "ef21fast.testing.fuzzing",
    "ef21fast.speed": "ef21fast.testing.timing",
    "ef21fast.info": "ef21fast.cli.info",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`MOVED` and loads the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new}; import it from there",
                      DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
