"""The script that renders benchmark JSON into the README table, and ``ef21fast bench``."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from ef21fast import speed

ROOT = Path(__file__).resolve().parents[1]


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


def test_quick_speed_table_runs():
    rows = speed.run_table(sizes=(1000,), kernels=("topk", "ef21_step"), backends=["numpy"])
    backends = {r["backend"] for r in rows}
    assert backends == {speed.STREAM, speed.ARGPART, "numpy"}
    table = speed.format_table(rows)
    assert table.count("\n") == len(rows) + 1
    assert all(r["median_s"] > 0 for r in rows)
