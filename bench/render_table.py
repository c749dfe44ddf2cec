"""Render a saved pytest-benchmark JSON into the README's markdown table.

Usage::

    python bench/render_table.py bench/results.json [--kernels topk,ef21_step]

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

from ef21fast.testing.timing import ARGPART, STREAM, add_ratios, format_count, format_seconds, format_table


def rows_from_json(doc: dict) -> list[dict]:
    """Timing rows (see ef21fast.testing.timing.format_table) from a pytest-benchmark document."""
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
            + " | ".join(f"ns/elem d={format_count(d)}" for d in sizes) + " | ratio largest/smallest d |")
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
        lines.append(f"| {info['kernel']} | {info['backend']} | {format_count(info['d'])} "
                     f"| {format_count(info['k'])} | {info['dtype']} "
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


def batched_table(doc: dict) -> str:
    """Batched benchmarks (extra_info has n and baseline): speed-up vs the loop."""
    rows = [b for b in doc.get("benchmarks", []) if "baseline" in b.get("extra_info", {})]
    base = {}
    for b in rows:
        info = b["extra_info"]
        if info["baseline"]:
            base[(info["kernel"], info["n"], info["d"], info["k"])] = b["stats"]["median"]
    lines = ["| kernel | n | d | k | dtype | implementation | median | speed-up vs loop |",
             "|" + "---|" * 8]
    for b in rows:
        i = b["extra_info"]
        med = b["stats"]["median"]
        ref = base.get((i["kernel"], i["n"], i["d"], i["k"]))
        speed = "" if ref is None or i["baseline"] else f"{ref / med:.0f}x"
        lines.append(f"| {i['kernel'].replace(' batched', '')} | {i['n']} | {format_count(i['d'])} "
                     f"| {format_count(i['k'])} | {i['dtype']} | {i['backend']} | {format_seconds(med)} "
                     f"| {speed} |")
    return "\n".join(lines) if rows else ""


#: ``impl`` prefixes of the anchors of the round tables: the per-client loop (the
#: speed-up column) and one streaming read of the data (the "x stream read" column).
_LOOP, _READ = "per-client", "one streaming read"


def _versus_anchors(rows, key, time):
    """``(benchmark, time, speed-up vs loop, x stream read)`` for each row, the ratios
    against the anchors of the same ``key(b)`` (empty on the anchors themselves)."""
    anchor = {p: {key(b): time(b) for b in rows if b["extra_info"]["impl"].startswith(p)}
              for p in (_LOOP, _READ)}
    for b in rows:
        t = time(b)
        if b["extra_info"]["impl"].startswith((_LOOP, _READ)):
            yield b, t, "", ""
            continue
        ref, rd = anchor[_LOOP].get(key(b)), anchor[_READ].get(key(b))
        yield (b, t, "" if ref is None else f"{ref / t:.1f}x",
               "" if rd is None else f"{t / rd:.2f}")


def rounds_table(doc: dict) -> str:
    """EF21 rounds (bench/test_bench_ef21_round.py): package vs the per-client loop."""
    rows = [b for b in doc.get("benchmarks", [])
            if {"impl", "shape"} <= set(b.get("extra_info", {}))]
    lines = ["| data (n = 1000 clients, Top1) | implementation | kernel threads | median "
             "| speed-up vs loop | x stream read |", "|" + "---|" * 6]
    for b, med, speed, times in _versus_anchors(rows, lambda b: b["extra_info"]["shape"],
                                                lambda b: b["stats"]["median"]):
        i = b["extra_info"]
        lines.append(f"| {b.get('group') or i['shape']} | {i['impl']} "
                     f"| {i.get('threads', '')} | {format_seconds(med)} | {speed} "
                     f"| {times} |")
    return "\n".join(lines) if rows else ""


#: How the DDP benchmark's communications are named in the table.
_DDP_NAMES = {"allreduce": "all-reduce", "powersgd": "PowerSGD, rank 4"}


def format_ddp(rows: list[dict]) -> str:
    """Markdown table of the DDP step benchmark's rows (bench/ddp_step.py): time per
    step, its ratio to the all-reduce step of the same model, bytes per step and rank,
    and the hook's synchronous part (the compression; empty for the plain all-reduce)."""
    base = {r["params"]: r["median_s"] for r in rows if r["comm"] == "allreduce"}
    lines = ["| params | communication | k | median step | x all-reduce step "
             "| bytes/step/rank | compression/step |", "|" + "---|" * 7]
    for r in rows:
        k = "" if r["k_fraction"] is None else f"{r['k_fraction']:.1%}"
        ref = base.get(r["params"])
        ratio = "" if ref is None else f"{r['median_s'] / ref:.2f}"
        comp = "" if r["comm"] == "allreduce" else format_seconds(r["compress_s"])
        lines.append(f"| {r['params'] / 1e6:.2f}M | {_DDP_NAMES.get(r['comm'], r['comm'])} "
                     f"| {k} | {format_seconds(r['median_s'])} | {ratio} "
                     f"| {r['bytes_per_step'] / 1e6:.3f} MB | {comp} |")
    return "\n".join(lines) if rows else ""


def ddp_table(doc: dict) -> str:
    """The DDP step table of a run of bench/test_bench_ddp.py ("" without one)."""
    return "\n\n".join(format_ddp(info["rows"]) for info, _ in _measured(doc, "ddp"))


def run_table(doc: dict) -> str:
    """``ef21fast run`` per round (bench/test_bench_run.py): medians divided by the
    rounds of a call, speed-up vs the per-client loop and times the streaming read."""
    rows = sorted((b for b in doc.get("benchmarks", [])
                   if {"impl", "data", "rounds"} <= set(b.get("extra_info", {}))),
                  key=lambda b: (b["extra_info"]["data"], b["extra_info"]["n"]))
    lines = ["| data | n | implementation | layout | kernel threads | per round "
             "| speed-up vs loop | x stream read |", "|" + "---|" * 8]
    for b, med, speed, times in _versus_anchors(
            rows, lambda b: (b["extra_info"]["data"], b["extra_info"]["n"]),
            lambda b: b["stats"]["median"] / b["extra_info"]["rounds"]):
        i = b["extra_info"]
        lines.append(f"| {i['data']} | {i['n']} | {i['impl']} | {i.get('layout', '')} "
                     f"| {i.get('threads', '')} | {format_seconds(med)} | {speed} "
                     f"| {times} |")
    return "\n".join(lines) if rows else ""


#: Rows dropped by --compact: the anchors (their ratios stay in the other rows) and
#: the NumPy reference, which is there for correctness, not speed.
_NOT_COMPACT = (STREAM, ARGPART, "numpy")


def render(doc: dict, kernels: list[str] | None = None, compact: bool = False) -> str:
    rows = [r for r in rows_from_json(doc) if "batched" not in r["kernel"]]
    scaling = scaling_rows(doc)
    if kernels:
        rows = [r for r in rows if r["kernel"] in kernels]
        scaling = [r for r in scaling if r["kernel"] in kernels]
    if compact:
        rows = [r for r in rows if r["backend"] not in _NOT_COMPACT and r["d"] > 1000]
    parts = [header(doc), format_table(rows)]
    sections = (
        ("One EF21 round (client gradients + ef21_step + scatter_add)", rounds_table(doc)),
        ("`ef21fast run` per round (EF21, Top1, trace included)", run_table(doc)),
        ("Batched clients, one call for all rows", batched_table(doc)),
        ("Time per element as d grows (medians)", format_scaling(scaling) if scaling else ""),
        ("Peak extra resident memory of one call (fresh process, after a warm-up)",
         format_memory(doc)),
        ("DDP step, 2 processes (bench/test_bench_ddp.py)", ddp_table(doc)),
        ("Start-up (fresh processes)", format_startup(doc)))
    parts += [f"{title}:\n\n{body}" for title, body in sections if body]
    return "\n\n".join(parts)


def strip_data(doc: dict) -> dict:
    """A copy of a pytest-benchmark document without each benchmark's per-round
    timings (``stats.data``); every statistic the tables use is kept."""
    out = dict(doc)
    out["benchmarks"] = [dict(b, stats={k: v for k, v in b.get("stats", {}).items()
                                        if k != "data"})
                         for b in doc.get("benchmarks", [])]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--kernels", help="comma-separated kernels to include")
    parser.add_argument("--compact", action="store_true",
                        help="README form: no anchor or reference rows, d > 1e3 only")
    parser.add_argument("--strip-to", metavar="OUT",
                        help="also write the run to OUT without the per-round timings "
                             "(stats.data: tens of MB) for bench/results/")
    args = parser.parse_args(argv)
    with open(args.json_file) as fh:
        doc = json.load(fh)
    if args.strip_to:
        with open(args.strip_to, "w") as fh:
            json.dump(strip_data(doc), fh, indent=4)
            fh.write("\n")
    kernels = args.kernels.split(",") if args.kernels else None
    print(render(doc, kernels, compact=args.compact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
