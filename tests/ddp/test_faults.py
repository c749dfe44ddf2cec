"""A rank of an ef21fast.ddp job that dies or stalls: the others raise a clear error
within the process group's timeout (never hang), and every process ends by itself."""

import ddp_jobs
import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install "
                    "ef21fast[torch]); CI sets EF21FAST_EXPECT_TORCH=1")

TIMEOUT_S = 4


def test_a_dead_or_stalled_rank_makes_the_others_fail_within_the_timeout(tmp_path):
    # both jobs at once: their processes mostly wait
    jobs = {mode: ddp_jobs.start("faults.py", 2, [mode, TIMEOUT_S], tmp_path)
            for mode in ("dead", "stall")}
    for mode, procs in jobs.items():
        results = ddp_jobs.finish(procs, deadline_s=60)
        for rank, (code, text) in enumerate(results):
            assert code == 0, f"{mode}: rank {rank} ended with {code}:\n{text}"
        _, info = ddp_jobs.load(tmp_path, mode, 0)
        assert info["error"] == "RuntimeError", info
        assert info["iteration"] == 2
        assert "ef21fast.ddp: the all-gather of bucket" in info["message"], info
        assert "at iteration 2 failed on rank 0" in info["message"], info
        assert info["seconds"] < TIMEOUT_S + 8, info  # slack for a loaded machine
