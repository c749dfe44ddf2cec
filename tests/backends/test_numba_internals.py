"""Internals of the Numba backend (``kernels/``): the mode names, the per-mode
specialisation of its loops, and its internal paths forced on small inputs.

The static checks read the sources and need no Numba; the others are skipped with the
registry's reason when the backend is not available.
"""

import ast
import importlib
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import ef21fast
from ef21fast.backends.registry import backend_errors
from ef21fast.testing import cross_check

NUMBA_MISSING = backend_errors().get("numba")
needs_numba = pytest.mark.skipif(NUMBA_MISSING is not None, reason=str(NUMBA_MISSING))


def _sources():
    """``{module name: parsed source}`` of the kernels package, found without importing
    it (it imports numba)."""
    spec = importlib.util.find_spec("ef21fast.kernels")
    folder = pathlib.Path(spec.origin).parent
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(folder.glob("*.py"))}


def _bodies(trees):
    """Names of the functions compiled once per mode: those calling ``literally``."""
    out = set()
    for tree in trees.values():
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef) and any(
                    isinstance(c, ast.Call) and getattr(c.func, "id", None) == "literally"
                    for c in ast.walk(fn)):
                out.add(fn.name)
    return out


def test_mode_values_are_those_of_c():
    """The four value sources, with the values of C's EF21_MODE_* enum."""
    spec = importlib.util.find_spec("ef21fast.kernels")
    modes = {}
    exec(compile((pathlib.Path(spec.origin).parent / "modes.py").read_text(), "modes",
                 "exec"), modes)
    assert (modes["MODE_TOPK"], modes["MODE_EF21"], modes["MODE_EF21_SCALED"],
            modes["MODE_EF"]) == (0, 1, 2, 3)
    assert modes["MODES"] == (0, 1, 2, 3)


def test_no_bare_mode_literals():
    """Modes are compared with their names, never with numbers."""
    bad = []
    for name, tree in _sources().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Name) and "mode" in s.id for s in sides) and any(
                    isinstance(s, ast.Constant) and type(s.value) is int for s in sides):
                bad.append(f"{name}.py:{node.lineno}")
    assert bad == []


def test_bodies_are_called_only_through_by_mode():
    """A body (``literally(mode)``) called with a mode that is not a constant would make
    Numba compile its caller per mode value too, and a caller called from Python per
    mode value costs milliseconds per call: only ``by_mode`` may call a body."""
    trees = _sources()
    bodies = _bodies(trees)
    assert len(bodies) >= 8
    misuse = []
    for name, tree in trees.items():
        allowed = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "by_mode":
                allowed.add(id(node.args[0]))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in bodies and id(node) not in allowed:
                misuse.append(f"{name}.py:{node.lineno} {node.id}")
    assert misuse == []


def test_no_signature_over_eight_arguments():
    too_long = [f"{name}.py {fn.name}" for name, tree in _sources().items()
                for fn in ast.walk(tree)
                if isinstance(fn, ast.FunctionDef) and len(fn.args.args) > 8]
    assert too_long == []


# Thresholds of kernels.plan lowered so that the adversarial cases of cross_check
# (rows of up to a few thousand) take the paths of large inputs: rows split across
# threads, sampled rows, parallel scatter_add; with a sparse sample and no slack in the
# candidate buffers, their overflow paths too (a split row run again, a serial row's
# candidates collected again).
_SMALL_ROWS_LARGE_PATHS = {
    "SERIAL_BELOW": 0, "SPLIT_SERIAL_BELOW": 0, "PARALLEL_ROW_MIN_D": 64, "CHUNK_MIN": 16,
    "DENSE_MAX_D": 16, "SCATTER_SERIAL_BELOW": 0, "SCATTER_PARALLEL_MIN": 0,
    "SCATTER_PARALLEL_MIN_D": 0, "CANDIDATE_SLACK": 0}
FORCED = {
    "dense_sample": dict(_SMALL_ROWS_LARGE_PATHS, SAMPLE_SPACING=8, SAMPLE_BLOCK=4),
    "sparse_sample": dict(_SMALL_ROWS_LARGE_PATHS, SAMPLE_SPACING=64, SAMPLE_BLOCK=2),
}
_REF_CACHE: dict = {}


@needs_numba
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("forced", sorted(FORCED))
def test_forced_paths_exact(monkeypatch, restore_threads, forced, threads):
    from ef21fast.kernels import plan

    for name, value in FORCED[forced].items():
        monkeypatch.setattr(plan, name, value)
    ef21fast.set_num_threads(threads)
    assert cross_check("numba", large=False, ref_cache=_REF_CACHE) == []


@pytest.fixture
def restore_threads():
    yield
    ef21fast.set_num_threads(os.cpu_count() or 1)


@needs_numba
def test_python_facing_drivers_take_no_literal_mode(restore_threads):
    """The drivers called from Python are compiled for an int mode: a literal one (see
    test_bodies_are_called_only_through_by_mode) would recompile at every call."""
    import numba

    from ef21fast.kernels import launch

    rng = np.random.default_rng(0)
    ef21fast.set_num_threads(2)
    for shape, k in (((3, 10), 1), ((3, 10), 10), ((3, 100), 5), ((3, 5000), 50),
                     ((200, 400), 20), ((1, 70000), 300)):
        x = rng.standard_normal(shape).astype(np.float32)
        ef21fast.topk(x, k, backend="numba")
        ef21fast.ef_step(x, np.zeros_like(x), k, lr=0.5, backend="numba")
    drivers = [v for v in vars(launch).values()
               if isinstance(v, numba.core.dispatcher.Dispatcher)]
    assert len(drivers) >= 6
    literal = [(d.__name__, s) for d in drivers for s in d.signatures
               if any(isinstance(t, numba.types.Literal) for t in s)]
    assert literal == []


_IR_PROBE = """
import re, sys
import numpy as np
import ef21fast
from ef21fast.kernels import passes, rows
rng = np.random.default_rng(0)
for threads in (1, 2):
    ef21fast.set_num_threads(threads)
    for shape, k in (((3, 10), 1), ((3, 10), 10), ((300, 112), 5), ((300, 112), 30),
                     ((3, 5000), 50), ((1, 200000), 1), ((1, 200000), 2000),
                     ((1, 200000), 200000)):
        x = rng.standard_normal(shape).astype(np.float32)
        ef21fast.topk(x, k, backend="numba")
        ef21fast.ef21_step(x, np.zeros_like(x), k, backend="numba")
        ef21fast.ef21_step(x, np.zeros_like(x), k, scale=np.float32(0.5), backend="numba")
        ef21fast.ef_step(x, np.zeros_like(x), k, lr=0.5, backend="numba")
bad, seen = [], 0
for module in (passes, rows):
    for name in dir(module):
        body = getattr(module, name)
        if not (name.startswith("_") and hasattr(body, "signatures")):
            continue
        for sig in body.signatures:
            seen += 1
            ir = body.inspect_llvm(sig)
            # the mode and the flag are constants of the copy: its code never reads them
            for arg in ("mode", "written"):
                if len(re.findall(r"%%arg\\.%s\\b" % arg, ir)) != 1:
                    bad.append(f"{name} {sig[:2]} reads {arg}")
print(seen)
print("\\n".join(bad))
sys.exit(1 if bad or seen < 20 else 0)
"""


@needs_numba
@pytest.mark.slow
def test_every_body_is_specialised(tmp_path):
    """Compiled afresh (an empty cache), each per-mode copy of each body has every test
    of its mode folded away: the optimised LLVM code never reads the mode argument."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _IR_PROBE], env=env, capture_output=True,
                          text=True, timeout=1800, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stdout + proc.stderr
