"""Render a saved pytest-benchmark JSON into the README's markdown table.

Usage::

    python bench/render_table.py bench/results.json [--groups topk,ef21_step]

Each benchmark carries ``extra_info`` (kernel, d, k, dtype, backend); the anchors of
a group (streaming read, np.argpartition, torch.topk) give the ratios. The machine,
date and versions come from the JSON itself.

Benchmarks whose ``extra_info`` has a ``measure`` other than ``"time"`` get small
tables of their own after the main one: ``"scaling"`` (bench/test_bench_scaling.py:
ns per element at each d and the ratio largest d / smallest d), ``"memory"``
(bench/test_bench_memory.py: peak extra resident memory as a fraction of the input)
and ``"startup"`` (bench/test_bench_startup.py: import and first-result times).
"""

from __future__ import annotations

import argparse
import json
import sys

from ef21fast.speed import _sci, add_ratios, format_table


def rows_from_json(doc: dict) -> list[dict]:
    """Timing rows (see ef21fast.speed.format_table) from a pytest-benchmark document."""
    rows = []
    for bench in doc.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if info.get("measure", "time") != "time":
            continue
        if not {"kernel", "d", "k", "dtype", "backend"} <= set(info):
            continue
        rows.append(dict(kernel=info["kernel"], d=int(info["d"]), k=int(info["k"]),
                         dtype=info["dtype"], backend=info["backend"],
                         median_s=float(bench["stats"]["median"])))
    return add_ratios(rows)


def _measured(doc: dict, measure: str) -> list[tuple[dict, dict]]:
    """(extra_info, stats) of the benchmarks tagged ``measure``."""
    return [(b.get("extra_info", {}), b.get("stats", {})) for b in doc.get("benchmarks", [])
            if b.get("extra_info", {}).get("measure") == measure]


def scaling_rows(doc: dict) -> list[dict]:
    """One row per (kernel, dtype, d/k, backend): ns/elem per d and the growth ratio."""
    groups: dict[tuple, dict[int, float]] = {}
    for info, stats in _measured(doc, "scaling"):
        d, k = int(info["d"]), int(info["k"])
        key = (info["kernel"], info["dtype"], d // max(k, 1), info["backend"])
        groups.setdefault(key, {})[d] = float(stats["median"]) / d * 1e9
    rows = []
    for (kernel, dtype, frac, backend), ns in groups.items():
        lo, hi = min(ns), max(ns)
        rows.append(dict(kernel=kernel, dtype=dtype, k_fraction=frac, backend=backend,
                         ns_per_elem=ns, ratio=ns[hi] / ns[lo] if hi > lo else None))
    return rows


def format_scaling(rows: list[dict]) -> str:
    """Markdown: ns per element at each d, and ns/elem(largest d) / ns/elem(smallest)."""
    sizes = sorted({d for r in rows for d in r["ns_per_elem"]})
    head = ("| kernel | dtype | k | backend | "
            + " | ".join(f"ns/elem d={_sci(d)}" for d in sizes) + " | ratio largest/smallest d |")
    lines = [head, "|" + "---|" * (5 + len(sizes))]
    for r in rows:
        cells = " | ".join(f"{r['ns_per_elem'][d]:.2f}" if d in r["ns_per_elem"] else ""
                           for d in sizes)
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['kernel']} | {r['dtype']} | d/{r['k_fraction']} | "
                     f"{r['backend']} | {cells} | {ratio} |")
    return "\n".join(lines)


def format_memory(doc: dict) -> str:
    """Markdown: peak extra resident memory per kernel, backend and k."""
    lines = ["| kernel | backend | d | k | dtype | peak extra | % of input |", "|" + "---|" * 7]
    for info, _ in _measured(doc, "memory"):
        if "fraction" not in info:
            continue
        lines.append(f"| {info['kernel']} | {info['backend']} | {_sci(info['d'])} "
                     f"| {_sci(info['k'])} | {info['dtype']} "
                     f"| {info['extra_bytes'] / 2**20:.2f} MiB | {100 * info['fraction']:.2f}% |")
    return "\n".join(lines) if len(lines) > 2 else ""


def format_startup(doc: dict) -> str:
    """Markdown list of the start-up figures (seconds)."""
    lines = []
    for info, _ in _measured(doc, "startup"):
        figures = ", ".join(f"{k} {v:.3f}" for k, v in info.items()
                            if k.endswith("_s") and isinstance(v, (int, float)))
        lines.append(f"- {info.get('startup', '?')}: {figures}")
    return "\n".join(lines)


def header(doc: dict) -> str:
    m = doc.get("machine_info", {})
    cpu = m.get("cpu", {})
    when = doc.get("datetime", "?")[:10]
    brand = cpu.get("brand_raw") or m.get("processor") or m.get("machine", "?")
    return (f"Measured {when} on {brand} ({cpu.get('count', '?')} cpus), "
            f"python {m.get('python_version', '?')}; medians from pytest-benchmark, "
            f"ratios within one run.")


def render(doc: dict, kernels: list[str] | None = None) -> str:
    rows = rows_from_json(doc)
    scaling = scaling_rows(doc)
    if kernels:
        rows = [r for r in rows if r["kernel"] in kernels]
        scaling = [r for r in scaling if r["kernel"] in kernels]
    parts = [header(doc), format_table(rows)]
    if scaling:
        parts.append("Time per element as d grows (medians):\n\n" + format_scaling(scaling))
    memory = format_memory(doc)
    if memory:
        parts.append("Peak extra resident memory of one call (fresh process, after a "
                     "warm-up):\n\n" + memory)
    startup = format_startup(doc)
    if startup:
        parts.append("Start-up (fresh processes):\n\n" + startup)
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--kernels", help="comma-separated kernels to include")
    args = parser.parse_args(argv)
    with open(args.json_file) as fh:
        doc = json.load(fh)
    kernels = args.kernels.split(",") if args.kernels else None
    print(render(doc, kernels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
