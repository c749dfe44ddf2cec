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


def test_drivers_are_called_through_their_mode_entries():
    """The jitted drivers are called from Python only through :func:`launch.entry`,
    which passes the mode as a constant (else the whole call tree would read it at run
    time)."""
    tree = _sources()["launch"]
    drivers = {"rows_trivial", "rows_dense", "rows_serial", "rows_batch", "row_split"}
    calls = [node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) in drivers]
    assert sorted(calls) == sorted(drivers)  # once each, in the entries' code


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


@needs_numba
def test_entries_take_no_literal(restore_threads):
    """What Python calls is compiled for the types of its arguments, never for a
    literal value: a Python call of a function compiled for a literal (numba.literally)
    recompiles at every call."""
    import numba

    from ef21fast.kernels import launch

    rng = np.random.default_rng(0)
    ef21fast.set_num_threads(2)
    for shape, k in (((3, 10), 1), ((3, 10), 10), ((3, 100), 5), ((3, 5000), 50),
                     ((200, 400), 20), ((1, 70000), 300)):
        x = rng.standard_normal(shape).astype(np.float32)
        ef21fast.topk(x, k, backend="numba")
        ef21fast.ef_step(x, np.zeros_like(x), k, lr=0.5, backend="numba")
    called = list(launch._entries.values()) + [launch.scatter_range, launch.scatter_parallel]
    assert len(called) >= 8
    literal = [(d.__name__, s) for d in called for s in d.signatures
               if any(isinstance(t, numba.types.Literal) for t in s)]
    assert literal == []


_IR_PROBE = """
import inspect, re, sys
import numba
import numpy as np
import ef21fast
from ef21fast.kernels import candidates, keys, passes, rows, select, split_row
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
for module in (keys, passes, select, candidates, rows, split_row):
    for name, fn in vars(module).items():
        if not (isinstance(fn, numba.core.dispatcher.Dispatcher)
                and fn.py_func.__module__ == module.__name__
                and "mode" in inspect.signature(fn.py_func).parameters):
            continue
        at = list(inspect.signature(fn.py_func).parameters).index("mode")
        for sig in fn.signatures:
            seen += 1
            if not isinstance(sig[at], numba.types.IntegerLiteral):
                bad.append(f"{name} compiled for a mode that is not a constant: {sig[at]}")
                continue
            # a constant of the copy: its optimised code (parallel loops included)
            # never reads the argument, only passes it on to the functions it calls
            # (compiled for it too) or to its parallel loops
            mangled = f"{len(name)}{name}B"
            funcs = fn.inspect_llvm(sig).split("\\ndefine ")[1:]
            own = [f for f in funcs
                   if re.match(r"[^@\\n]*@_ZN\\d+ef21fast[^(\\s]*" + mangled, f)]
            loops = [f for f in funcs if "numba_parfor_gufunc" in f.split("\\n", 1)[0]]
            if not own:
                bad.append(f"{name} {sig[at]}: its code was not found")
            elif any(re.search(r"%arg\\.mode\\b", line)
                     and not re.search(r" call |^\\s*store ", line)
                     for f in own + loops for line in f.split("\\n")[1:]):
                bad.append(f"{name} {sig[at]} reads its mode")
print(seen)
print("\\n".join(bad))
sys.exit(1 if bad or seen < 40 else 0)
"""


@needs_numba
@pytest.mark.slow
def test_every_loop_is_specialised(tmp_path):
    """Compiled afresh (an empty cache) by every path of the selection, each function
    that takes a mode is compiled only for constant modes, and in each copy every test
    of the mode is folded away: the optimised LLVM code never reads the argument."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _IR_PROBE], env=env, capture_output=True,
                          text=True, timeout=1800, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_emission_add_keeps_the_first_operands_nan(dtype):
    """keys.add_one, jitted (one AVX instruction on x86 with AVX, else keys.add), against
    the plain Python keys.add on every pair of finite values, infinities and NaNs with
    their own payloads (quiet and signalling, either sign): the same bits, both operand
    orders. With the instruction's operands swapped, the pairs of two NaNs differ."""
    from numba import njit

    from ef21fast.kernels import keys
    from ef21fast.testing import bits, nan_with_payload

    add_one = njit(lambda x, y: keys.add_one(x, y))
    values = [dtype(1.5), dtype(-0.0), dtype(np.inf), dtype(-np.inf)] + [
        nan_with_payload(dtype, p, negative=neg, quiet=q)[()]
        for p, neg, q in ((3, False, True), (5, True, True), (9, False, False),
                          (17, True, False))]
    for x in values:
        for y in values:
            with np.errstate(invalid="ignore"):
                want = keys.add.py_func(x, y)
            got = add_one(x, y)
            assert bits(np.array(got, dtype)) == bits(np.array(want, dtype)), (x, y)
