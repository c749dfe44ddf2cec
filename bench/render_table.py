"""Render a saved pytest-benchmark JSON into the README's markdown table.

Usage::

    python bench/render_table.py bench/results.json [--groups topk,ef21_step]

Each benchmark carries ``extra_info`` (kernel, d, k, dtype, backend); the anchors of
a group (streaming read, np.argpartition) give the ratios. The machine, date and
versions come from the JSON itself.
"""

from __future__ import annotations

import argparse
import json
import sys

from ef21fast.speed import add_ratios, format_table


def rows_from_json(doc: dict) -> list[dict]:
    """Timing rows (see ef21fast.speed.format_table) from a pytest-benchmark document."""
    rows = []
    for bench in doc.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if not {"kernel", "d", "k", "dtype", "backend"} <= set(info):
            continue
        rows.append(dict(kernel=info["kernel"], d=int(info["d"]), k=int(info["k"]),
                         dtype=info["dtype"], backend=info["backend"],
                         median_s=float(bench["stats"]["median"])))
    return add_ratios(rows)


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
    if kernels:
        rows = [r for r in rows if r["kernel"] in kernels]
    return header(doc) + "\n\n" + format_table(rows)


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
