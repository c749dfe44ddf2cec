"""A source checkout without its build says so, instead of silently losing backends.

``pip install .`` puts the compiled C backend and ``kernels/`` (as ``ef21fast.kernels``)
in site-packages only; Python started in the checkout's root imports the source folder.
"""

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ef21fast.backends import checkout

ROOT = Path(__file__).resolve().parents[2]


def _development_install() -> bool:
    """ef21fast is installed in development mode (``pip install -e .``)."""
    try:
        text = importlib.metadata.distribution("ef21fast").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    return bool(text) and json.loads(text).get("dir_info", {}).get("editable", False)


needs_regular_install = pytest.mark.skipif(
    _development_install(),
    reason="ef21fast is installed in development mode here: its import hook serves the "
           "compiled modules of this checkout to any copy of the sources (CI installs "
           "it the regular way and runs these)")


def _fake_checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's layout: the ef21fast/ sources without any compiled
    module, pyproject.toml, kernels/__init__.py and csrc/."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "ef21fast", root / "ef21fast",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__",
                                                  "*build_error*"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "kernels").mkdir()
    (root / "kernels" / "__init__.py").write_text("")
    (root / "csrc").mkdir()
    return root


def test_installed_or_development_copy_has_no_problem():
    assert checkout.problem() is None


@needs_regular_install
def test_import_from_a_checkout_without_build_warns_and_names_the_cause(tmp_path):
    root = _fake_checkout(tmp_path)
    code = ("import warnings, ef21fast; "
            "print(ef21fast.__file__); print(ef21fast.available_backends()); "
            "print(ef21fast.backend_errors().get('c', ''))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, backends, c_reason = proc.stdout.splitlines()[:3]
    assert where.startswith(str(root))
    assert "'c'" not in backends
    assert "RuntimeWarning" in proc.stderr and "source checkout" in proc.stderr
    assert "pip install -e ." in proc.stderr
    assert "source checkout" in c_reason  # `ef21fast info` shows it too


@needs_regular_install
def test_pytest_refuses_to_run_in_a_checkout_without_build(tmp_path):
    root = _fake_checkout(tmp_path)
    shutil.copytree(ROOT / "tests", root / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "tests/api/test_reference.py"], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "source checkout" in proc.stdout + proc.stderr
    assert " passed" not in proc.stdout


@pytest.mark.parametrize("present", [(), ("kernels",), ("csrc",), ("pyproject.toml",)])
def test_not_a_checkout_without_its_markers(tmp_path, present):
    for name in present:
        target = tmp_path / name
        if name == "kernels":
            target.mkdir()
            (target / "__init__.py").write_text("")
        elif name == "csrc":
            target.mkdir()
        else:
            target.write_text("")
    assert not checkout._is_checkout(tmp_path)
