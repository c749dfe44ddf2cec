"""``ef21fast info``: backends (and why any is missing), versions, thread counts."""

from __future__ import annotations

import os
import platform
import sys

from ef21fast.backends import registry
from ef21fast._version import __version__


def collect() -> dict:
    """Facts about this installation, as a dict (what ``ef21fast info`` prints)."""
    import numpy

    facts = {
        "ef21fast": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "cpus": os.cpu_count(),
        "backends": {},
    }
    errors = registry.backend_errors()
    for name in registry.BACKENDS:
        if name in errors:
            facts["backends"][name] = {"available": False, "reason": errors[name]}
            continue
        module = registry.load_backend(name)
        entry = {"available": True}
        describe = getattr(module, "describe", None)
        if describe is not None:
            entry.update(describe())
        missing = registry.missing_kernels(name)
        if missing:
            entry["missing_kernels"] = dict(missing)
        facts["backends"][name] = entry
    try:
        facts["default_backend"] = registry.default_backend()
    except (ValueError, RuntimeError) as exc:
        facts["default_backend"] = f"error: {exc}"
    return facts


def format_facts(facts: dict) -> str:
    lines = [f"ef21fast {facts['ef21fast']}  python {facts['python']}  "
             f"numpy {facts['numpy']}",
             f"platform: {facts['platform']}  cpus: {facts['cpus']}",
             f"default backend: {facts['default_backend']}",
             "backends:"]
    for name, entry in facts["backends"].items():
        if not entry["available"]:
            lines.append(f"  {name:6s} MISSING  {entry['reason']}")
            continue
        extras = "  ".join(f"{k}={v}" for k, v in entry.items()
                           if k not in ("available", "missing_kernels"))
        lines.append(f"  {name:6s} ok       {extras}".rstrip())
        for kernel, why in entry.get("missing_kernels", {}).items():
            lines.append(f"           lacks {kernel}: {why}")
    return "\n".join(lines)


def _cmd(args) -> int:
    print(format_facts(collect()))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="backends, versions, thread counts")
    p.set_defaults(func=_cmd)
