"""The package's import graph has no cycles, and ``import ef21fast`` stays light.

The graph is built from the sources (every ``import`` statement, at module level or
inside a function: a lazy import that closes a cycle is still a cycle in the design),
over ``ef21fast/`` and the Numba backend ``kernels/`` (installed as
``ef21fast.kernels``). An edge goes to the module imported, or to the package when the
name imported from it is not a module. A package is not taken to import its children
implicitly.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter outside the checkout; its stripped stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _modules() -> dict:
    """Module name -> source path, for ef21fast and ef21fast.kernels."""
    out = {}
    for top, prefix in ((ROOT / "ef21fast", "ef21fast"), (ROOT / "kernels", "ef21fast.kernels")):
        for path in top.rglob("*.py"):
            parts = list(path.relative_to(top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix] + parts)] = path
    return out


def import_graph(modules: dict) -> dict:
    """Module name -> set of package modules it imports."""
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module
                targets = [f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in modules else mod
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # "import ef21fast.x.y as z"
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_covers_the_package():
    graph = import_graph(_modules())
    assert {"ef21fast", "ef21fast.api", "ef21fast.kernels", "ef21fast.cli"} <= set(graph)
    assert "ef21fast.api" in graph["ef21fast"]
    assert "ef21fast.backends.registry" in graph["ef21fast.api"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph(_modules()))
    assert cycles == [], f"import cycles: {cycles}"


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_import_is_light():
    """``import ef21fast`` imports neither numba, the C library, scipy, the methods, the
    command line nor torch."""
    code = ("import sys, ef21fast; heavy = ('numba', 'ef21fast._ckernels', 'scipy', "
            "'ef21fast.methods', 'ef21fast.cli', 'ef21fast.testing', 'torch', 'matplotlib'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    assert _python(code) == "[]"


def test_testing_tools_import_without_pytest_or_hypothesis():
    code = ("import sys; sys.modules['pytest'] = None; sys.modules['hypothesis'] = None; "
            "import ef21fast.testing, ef21fast.testing.fuzzing, ef21fast.testing.timing, "
            "ef21fast.testing.differential; "
            "from ef21fast.testing import cross_check; "
            "print(cross_check('numpy', large=False, kernels=('topk',)) == [])")
    assert _python(code) == "True"


def test_moved_modules_still_import_with_a_deprecation_warning():
    from ef21fast import _moved

    code = ("import warnings, importlib, ef21fast; from ef21fast._moved import MOVED; "
            "warnings.simplefilter('error'); bad = []\n"
            "for old, new in MOVED.items():\n"
            "    try:\n"
            "        importlib.import_module(old)\n"
            "        bad.append(old)\n"
            "    except DeprecationWarning as w:\n"
            "        ok = new in str(w)\n"
            "        if not ok: bad.append(old)\n"
            "warnings.simplefilter('ignore')\n"
            "for old, new in MOVED.items():\n"
            "    if importlib.import_module(old) is not importlib.import_module(new):\n"
            "        bad.append(old)\n"
            "print(bad)")
    assert _python(code) == "[]"
    assert set(_moved.MOVED.values()) <= set(_modules())
