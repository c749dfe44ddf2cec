"""The value sources of the selection have one set of names and values in both compiled
backends: ``kernels/modes.py`` (Numba) and the ``EF21_MODE_*`` constants of
``csrc/ef21fast.h`` (C, read through cffi)."""

import pytest

from ef21fast.backends import registry

NAMES = ("TOPK", "EF21", "EF21_SCALED", "EF")


def _load(name):
    try:
        return registry.load_backend(name)
    except RuntimeError as exc:
        pytest.skip(str(exc))


def test_numba_and_c_share_the_mode_names_and_values():
    numba_backend = _load("numba")
    c_backend = _load("c")
    from ef21fast.kernels import modes

    numba_modes = {name: getattr(modes, f"MODE_{name}") for name in NAMES}
    c_modes = {name: getattr(c_backend.lib, f"EF21_MODE_{name}") for name in NAMES}
    assert numba_modes == c_modes == {"TOPK": 0, "EF21": 1, "EF21_SCALED": 2, "EF": 3}
    assert numba_backend is not None
    assert sorted(n for n in dir(modes) if n.startswith("MODE_")) == \
        sorted(f"MODE_{name}" for name in NAMES)
