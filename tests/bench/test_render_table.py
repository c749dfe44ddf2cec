"""The script that renders benchmark JSON into the README table, and ``ef21fast bench``."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from ef21fast.testing import timing as speed

ROOT = Path(__file__).resolve().parents[2]


def _load_render():
    spec = importlib.util.spec_from_file_location("render_table",
                                                  ROOT / "bench" / "render_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(backend, median, kernel="topk", d=10**7, k=10**5):
    return {"extra_info": {"kernel": kernel, "d": d, "k": k, "dtype": "float32",
                           "backend": backend}, "stats": {"median": median}}


def test_render_computes_ratios_within_a_group(tmp_path):
    doc = {"datetime": "2026-11-28T10:00:00", "machine_info": {
        "python_version": "3.11.7", "cpu": {"brand_raw": "TestCPU", "count": 2}},
        "benchmarks": [_bench(speed.STREAM, 0.002), _bench(speed.ARGPART, 0.030),
                       _bench("c", 0.004), _bench("numba", 0.006),
                       _bench("c", 1.0, d=1000, k=10),  # another group: no anchors
                       {"extra_info": {}, "stats": {"median": 1.0}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    render = _load_render()
    rows = render.rows_from_json(doc)
    c = next(r for r in rows if r["backend"] == "c" and r["d"] == 10**7)
    assert np.isclose(c["ratio_stream"], 2.0) and np.isclose(c["speedup_argpartition"], 7.5)
    lonely = next(r for r in rows if r["d"] == 1000)
    assert "ratio_stream" not in lonely
    text = render.render(doc)
    assert "2026-11-28" in text and "TestCPU" in text
    assert "| topk | 1e7 | 1e5 | float32 | c | 4.00 ms | 2.00 | 7.5x |" in text
    assert render.main([str(path), "--kernels", "topk"]) == 0
    doc["benchmarks"][2]["stats"]["data"] = [0.004] * 1000  # per-round timings
    path.write_text(json.dumps(doc))
    stripped = tmp_path / "s.json"
    assert render.main([str(path), "--strip-to", str(stripped)]) == 0
    small = json.loads(stripped.read_text())
    assert "data" not in small["benchmarks"][2]["stats"]
    assert small["benchmarks"][2]["stats"]["median"] == 0.004
    assert render.render(small) == render.render(doc)


def test_quick_speed_table_runs():
    rows = speed.run_table(sizes=(1000,), kernels=("topk", "ef21_step"), backends=["numpy"])
    backends = {r["backend"] for r in rows}
    torch = {speed.TORCH} if importlib.util.find_spec("torch") else set()  # optional
    assert backends == {speed.STREAM, speed.ARGPART, "numpy"} | torch
    table = speed.format_table(rows)
    assert table.count("\n") == len(rows) + 1
    assert all(r["median_s"] > 0 for r in rows)


def _tagged(measure, median=1.0, **info):
    return {"extra_info": dict(info, measure=measure), "stats": {"median": median}}


def test_render_scaling_memory_and_startup_tables():
    scal = dict(kernel="topk", dtype="float32", backend="c")
    doc = {"datetime": "2026-11-28T10:00:00", "machine_info": {}, "benchmarks": [
        _bench(speed.STREAM, 0.002), _bench("c", 0.004), _bench(speed.TORCH, 0.008),
        _tagged("scaling", 0.001, d=10**6, k=10**4, **scal),
        _tagged("scaling", 0.012, d=10**7, k=10**5, **scal),
        _tagged("scaling", 0.150, d=10**8, k=10**6, **scal),
        _tagged("memory", kernel="topk", backend="numba", d=10**7, k=10**5,
                dtype="float32", extra_bytes=2 * 2**20, fraction=0.0524),
        _tagged("memory", kernel="ef_step", backend="c", d=10**7, k=10**4),  # no figure
        _tagged("startup", startup="import ef21fast", import_s=0.25,
                numba_imported=False)]}
    render = _load_render()
    rows = render.rows_from_json(doc)
    # Tagged benchmarks stay out of the main table; the torch anchor is a row in it.
    assert {r["backend"] for r in rows} == {speed.STREAM, "c", speed.TORCH}
    torch_row = next(r for r in rows if r["backend"] == speed.TORCH)
    assert np.isclose(torch_row["ratio_stream"], 4.0)
    (srow,) = render.scaling_rows(doc)
    assert srow["k_fraction"] == 100 and np.isclose(srow["ratio"], 1.5)
    assert np.isclose(srow["ns_per_elem"][10**7], 1.2)
    text = render.render(doc)
    assert "| topk | float32 | d/100 | c | 1.00 | 1.20 | 1.50 | 1.50 |" in text
    assert "| topk | numba | 1e7 | 1e5 | float32 | 2.00 MiB | 5.24% |" in text
    assert "ef_step" not in text
    assert "- import ef21fast: import_s 0.250" in text
    assert "numba_imported" not in text
    assert "ns/elem" not in render.render(doc, ["ef21_step"])


def test_compact_batched_and_round_tables():
    render = _load_render()

    def b(info, median, group=""):
        return {"extra_info": info, "stats": {"median": median}, "group": group}

    base = dict(kernel="topk", d=10**7, k=10**5, dtype="float32")
    doc = {"benchmarks": [
        b(dict(base, backend=speed.STREAM), 0.002), b(dict(base, backend=speed.ARGPART), 0.03),
        b(dict(base, backend="numpy"), 1.0), b(dict(base, backend="c"), 0.004),
        b(dict(kernel="ef21_step batched", d=112, k=1, dtype="float32", n=1000,
               backend="per-row reference loop", baseline=True), 0.01),
        b(dict(kernel="ef21_step batched", d=112, k=1, dtype="float32", n=1000,
               backend="c", baseline=False), 0.0001),
        b(dict(impl="per-client numpy loop", shape="dense", n=1000), 0.012, "round dense"),
        b(dict(impl="ef21fast[c]", shape="dense", n=1000, threads="default"), 0.0004,
          "round dense"),
        b(dict(impl="one streaming read (data as stored + n x d state)", shape="dense",
               n=1000), 0.0002, "round dense"),
    ]}
    text = render.render(doc, compact=True)
    main_table = text.split("One EF21 round")[0]
    assert "| c |" in main_table and "np.argpartition |" not in main_table.split("\n", 3)[3]
    assert "| numpy |" not in main_table
    assert "| ef21_step | 1000 | 112 | 1 | float32 | c | 100.0 us | 100x |" in text
    assert "| round dense | ef21fast[c] | default | 400.0 us | 30.0x | 2.00 |" in text
    assert "| round dense | per-client numpy loop |  | 12.00 ms |  |  |" in text


def test_render_ddp_table():
    def row(comm, median_s, k=None, params=10**6):
        return {"params": params, "comm": comm, "k_fraction": k, "median_s": median_s,
                "bytes_per_step": 8000, "compress_s": 0.0 if k is None else 0.001}

    rows = [row("allreduce", 0.010), row("ef21fast.ddp", 0.005, 0.01),
            row("torch.topk EF21", 0.030, 0.01, params=2 * 10**6)]  # no all-reduce row
    doc = {"datetime": "2026-12-05T10:00:00", "machine_info": {},
           "benchmarks": [_tagged("ddp", rows=rows)]}
    render = _load_render()
    table = render.ddp_table(doc)
    assert "| 1.00M | all-reduce |  | 10.00 ms | 1.00 | 0.008 MB |  |" in table
    assert "| 1.00M | ef21fast.ddp | 1.0% | 5.00 ms | 0.50 | 0.008 MB | 1.00 ms |" in table
    assert "| 2.00M | torch.topk EF21 | 1.0% | 30.00 ms |  |" in table
    assert "DDP step, 2 processes" in render.render(doc)
    assert render.ddp_table({"benchmarks": []}) == ""
