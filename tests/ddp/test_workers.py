"""``ef21fast run --workers`` and :func:`ef21fast.methods.distributed.run`: the trace
(but time) and the last iterate equal the single-process run's bit for bit, for every
method that runs distributed, with 2 and 3 processes; a dead or stalled rank makes the
others fail within the timeout; the command spawns its ranks or joins a torchrun-style
job; bad input gets a clear error.

One job serves all the cases of ``scenarios/workers.py``; the jobs run at once (their
processes mostly wait).
"""

import importlib.util
import json
import os
import subprocess
import sys
import time

import ddp_jobs
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install "
                            "ef21fast[torch]); CI sets EF21FAST_EXPECT_TORCH=1")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from ef21fast.cli import main  # noqa: E402
from ef21fast.methods import algorithms, distributed  # noqa: E402

_spec = importlib.util.spec_from_file_location("workers_scenario",
                                               ddp_jobs.SCENARIOS / "workers.py")
scenario = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenario)

TIMEOUT_S = 4
COLUMNS = ("iter", "bits", "grad_norm_sq", "f")
#: The cases where every rank evaluates all clients' gradients (a clone's losses are
#: its base client's); every other case evaluates only its block's.
ALL_CLIENTS = {"ef21-clone"}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """The cases with 2 and 3 ranks, and the dead and stalled rank, all at once."""
    out = tmp_path_factory.mktemp("workers")
    for w in (2, 3):
        (out / f"w{w}").mkdir()
    started = {w: ddp_jobs.start("workers.py", w, ["cases", 20], out / f"w{w}")
               for w in (2, 3)}
    started.update({mode: ddp_jobs.start("workers.py", 2, [mode, TIMEOUT_S], out)
                    for mode in ("dead", "stall", "absent")})
    results = {key: ddp_jobs.finish(procs, deadline_s=90)
               for key, procs in started.items()}
    return out, results


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("case", list(scenario.CASES))
def test_every_rank_equals_the_single_process_run(jobs, case, world):
    out, results = jobs
    for rank, (code, text) in enumerate(results[world]):
        assert code == 0, f"rank {rank} exited with {code}:\n{text}"
    method, opts = scenario.CASES[case]
    if "seed" in opts and opts["seed"] is None:  # rank 0 drew one for all ranks
        with np.load(out / f"w{world}" / f"{case}-0.npz") as got:
            opts = dict(opts, seed=int(got["seed"]))
    ref = algorithms.run(scenario.problem(case), method, k=scenario.K, iters=scenario.ITERS,
                         **opts)
    for rank in range(world):
        with np.load(out / f"w{world}" / f"{case}-{rank}.npz") as got:
            for col in COLUMNS:
                assert got[col].tobytes() == getattr(ref, col).tobytes(), (col, rank)
            assert got["x"].tobytes() == ref.x.tobytes(), rank
            assert str(got["status"]) == ref.status
            assert int(got["workers"]) == world
            # each rank evaluates only its block's gradients where that is exact
            assert bool(got["block_oracle"]) == (case not in ALL_CLIENTS)


@pytest.mark.parametrize("mode", ["dead", "stall", "absent"])
def test_a_dead_stalled_or_absent_rank_makes_the_others_fail_within_the_timeout(jobs, mode):
    out, results = jobs
    for rank, (code, text) in enumerate(results[mode]):
        assert code == 0, f"{mode}: rank {rank} ended with {code}:\n{text}"
    info = json.loads((out / f"{mode}-0.json").read_text())
    assert info["error"] == "RuntimeError", info
    # the timeout plus start-up and teardown slack (a loaded 2-core machine took 7.0 s)
    assert info["seconds"] < TIMEOUT_S + 8, info
    if mode == "absent":
        assert "rank 0 could not join the job at 127.0.0.1:" in info["message"], info
    else:
        assert "the exchange of round 4 failed on rank 0" in info["message"], info


def _cli(*extra):
    return ["run", "--method", "ef21-w-pp", "--clients", "5", "--k", "2", "--iters", "20",
            "--quiet", "--timeout", "20", *extra]


def _same_run(a, b):
    rows = [[r.rsplit(",", 1)[0] for r in (d / "trace.csv").read_text().splitlines()]
            for d in (a, b)]
    assert len(rows[0]) == 22 and rows[0] == rows[1]
    assert np.load(a / "x.npy").tobytes() == np.load(b / "x.npy").tobytes()


def test_the_command_spawns_its_ranks_or_joins_a_torchrun_job(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    cmd = [sys.executable, "-m", "ef21fast"]
    # cwd outside the source tree, whose ef21fast/ would shadow the installed package
    spawned = subprocess.Popen(cmd + _cli("--workers", "2", "--out", str(tmp_path / "w")),
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=tmp_path)
    tr_env = dict(env, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                  MASTER_PORT=str(ddp_jobs.free_port()))
    joined = [subprocess.Popen(cmd + _cli("--workers", "2", "--out", str(tmp_path / "t")),
                               env=dict(tr_env, RANK=str(r), LOCAL_RANK=str(r)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=tmp_path)
              for r in range(2)]
    assert main(_cli("--out", str(tmp_path / "s"))) == 0
    results = ddp_jobs.finish([spawned] + joined, deadline_s=60)
    for code, text in results:
        assert code == 0, text
    assert "wrote" in results[0][1] and "wrote" in results[1][1]
    assert results[2][1] == ""  # rank 1 prints nothing
    for d in ("w", "t"):
        _same_run(tmp_path / "s", tmp_path / d)
        summary = json.loads((tmp_path / d / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["workers"] == 2
    assert not (tmp_path / "t" / "x.npy").with_name("rank1").exists()


@pytest.mark.parametrize("stop", ["kill rank 1", "SIGTERM"])
def test_a_killed_rank_or_a_stopped_command_ends_it_and_keeps_the_rows(tmp_path, stop):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    out = tmp_path / "k"
    proc = subprocess.Popen([sys.executable, "-m", "ef21fast", "run", "--method", "ef21",
                             "--clients", "6", "--iters", "1000000", "--quiet",
                             "--timeout", str(TIMEOUT_S), "--workers", "2",
                             "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not (
                (out / "trace.csv").exists()
                and len((out / "trace.csv").read_text().splitlines()) > 5):
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = f.read().split()
        assert len(children) == 2
        if stop == "SIGTERM":
            proc.terminate()
        else:
            os.kill(int(children[1]), 9)
        stopped = time.monotonic()
        text, _ = proc.communicate(timeout=TIMEOUT_S + 20)
        assert time.monotonic() - stopped < TIMEOUT_S + 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    rows = (out / "trace.csv").read_text().splitlines()
    assert len(rows) > 5 and rows[0].startswith("iter,")
    if stop == "SIGTERM":  # as a single-process run: every file, marked interrupted
        assert proc.returncode == 143, text
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["rounds"] == len(rows) - 2
    else:
        assert proc.returncode not in (0, None), text
        assert "the exchange of round" in text, text


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "6"], "workers must be an integer from 1 to the number of clients "
                         "n = 5, got 6"),
    (["--workers", "2", "--timeout", "0"], "--timeout must be a positive number"),
    (["--workers", "2", "--timeout", "inf"], "--timeout must be a positive number"),
    (["--workers", "2", "--method", "gd"], "gd cannot run with workers"),
    (["--workers", "2", "--method", "ef21", "--adaptive-step"],
     "adaptive_step cannot run with workers"),
])
def test_bad_input_gets_a_clear_error(tmp_path, capsys, monkeypatch, extra, message):
    # as a rank of a job (RANK set): the checks run before it joins, nothing waits
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "6" if "6" in extra else "2")
    assert main(_cli(*extra, "--out", str(tmp_path / "o"))) == 2
    assert message in capsys.readouterr().err


def test_without_torch_or_a_matching_world_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(_cli("--workers", "2", "--out", str(tmp_path / "o"))) == 2
    assert "--workers 2 does not match the job's WORLD_SIZE=3" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "torch.distributed", None)
    assert main(_cli("--workers", "2", "--out", str(tmp_path / "o"))) == 2
    assert 'pip install "ef21fast[torch]"' in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="no torch.distributed process group"):
        for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(var, raising=False)
        distributed.run(scenario.problem(), "ef21", iters=1)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        distributed.run(scenario.problem(), "ef21", iters=1, timeout=-1)
