"""One DDP training step with 2 processes (gloo, 127.0.0.1): all-reduce, torch's
PowerSGD hook (rank 4), EF21 on ``torch.topk`` (written plainly in
``bench/ddp_step.py``) and ``ef21fast.ddp``, for MLPs of about 1M and 10M parameters
and k = 1% and 0.1% of each bucket. Time per step (median over the timed steps, each
after a barrier, one OpenMP thread per process), bytes each rank hands to collectives
per step, and the time per step in the hook's synchronous part (the compression).

With ``--benchmark-enable`` the full sizes run (a few minutes on 2 cores); without it
(CI's smoke run) a small model and one timed step, so the programs are exercised. ::

    pytest bench/test_bench_ddp.py --benchmark-enable -s -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import ddp_jobs  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_table import format_ddp  # noqa: E402

pytest.importorskip("torch", reason="torch is not installed (pip install ef21fast[torch])")

PROGRAM = Path(__file__).resolve().parent / "ddp_step.py"
FULL = dict(sizes="1000:1,1000:10", fractions="0.01,0.001", warmup=3, steps=7)
SMOKE = dict(sizes="64:2", fractions="0.01", warmup=3, steps=1)


def _enabled(request) -> bool:
    opt = request.config.getoption
    return not (opt("benchmark_disable") and not opt("benchmark_enable"))


def _job(tmp_path, cfg):
    out = tmp_path / "rows.json"
    port = ddp_jobs.free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(PROGRAM), str(r), "2", str(port),
                               str(out), cfg["sizes"], cfg["fractions"],
                               str(cfg["warmup"]), str(cfg["steps"])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env)
             for r in range(2)]
    for rank, (code, text) in enumerate(ddp_jobs.finish(procs, deadline_s=1500)):
        assert code == 0, f"rank {rank} ended with {code}:\n{text}"
    return json.loads(out.read_text())


def test_ddp_step(benchmark, request, tmp_path):
    cfg = FULL if _enabled(request) else SMOKE
    rows = benchmark.pedantic(_job, args=(tmp_path, cfg), rounds=1, iterations=1)
    benchmark.group = "DDP step, 2 processes"
    benchmark.extra_info.update(measure="ddp", rows=rows)
    print("\n" + format_ddp(rows))
    ours = [r for r in rows if r["comm"] == "ef21fast.ddp"]
    assert ours and all(r["bytes_per_step"] > 0 for r in rows if r["comm"] != "allreduce")
    for r in ours:  # k values + k int32 indices per bucket: 8 bytes per value sent
        dense = next(a for a in rows if a["comm"] == "allreduce" and
                     a["params"] == r["params"])
        assert r["bytes_per_step"] < dense["bytes_per_step"]
