"""Start the multi-process DDP scenarios of ``tests/ddp/scenarios`` and read what they
wrote; the single-process NumPy simulation of the same EF21 they are checked against.

Every job runs on gloo at 127.0.0.1 on a free port, each rank a subprocess with a
deadline; a rank still running at the deadline is killed (and the job fails), so no
process started here outlives its test.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCENARIOS = Path(__file__).resolve().parent / "ddp" / "scenarios"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(program: str, world: int, args, outdir) -> list:
    """Start ``world`` ranks of ``program`` (a file under scenarios/)."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return [subprocess.Popen([sys.executable, str(SCENARIOS / program), str(r), str(world),
                              str(port), str(outdir)] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             text=True)
            for r in range(world)]


def finish(procs, deadline_s: float) -> list:
    """Wait for every rank until ``deadline_s`` from now; kill what is left. Returns
    ``(returncode, output)`` per rank (returncode None: killed at the deadline)."""
    end = time.monotonic() + deadline_s
    out = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=max(0.1, end - time.monotonic()))
            out.append((p.returncode, text))
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
            out.append((None, text))
    return out


def run(program: str, world: int, args, outdir, deadline_s: float = 120) -> list:
    """Start a job and wait for it; fails (AssertionError) unless every rank exits 0."""
    results = finish(start(program, world, args, outdir), deadline_s)
    for rank, (code, text) in enumerate(results):
        assert code == 0, f"rank {rank} of {program} exited with {code}:\n{text}"
    return results


def load(outdir, case: str, rank: int):
    """``(params or None, info)`` that rank ``rank`` wrote for ``case``."""
    outdir = Path(outdir)
    info = json.loads((outdir / f"{case}-{rank}.json").read_text())
    npz = outdir / f"{case}-{rank}.npz"
    params = None
    if npz.exists():
        with np.load(npz) as f:
            params = {k: f[k] for k in f.files}
    return params, info


def _topk(v: np.ndarray, k: int) -> np.ndarray:
    """Our selection order, written independently: larger |v| first, ties to the
    smaller index, indices ascending (the data has no NaN)."""
    return np.sort(np.argsort(-np.abs(v), kind="stable")[:k])


def simulate(common, case: str, world: int, layouts: list, iters: int):
    """The same training in one process: each rank's gradient computed by torch on
    its own block of data (as the ranks do), EF21 / EF21-W / EF14 on them in NumPy with
    the bucket layouts the job used, and the same SGD step. Returns the final
    parameters."""
    import torch

    opts = common.CASES[case]
    model = common.make_model(case)
    named = dict(model.named_parameters())
    opt = torch.optim.SGD(model.parameters(), lr=common.LR)
    dtype = next(model.parameters()).detach().numpy().dtype
    method, start = opts["method"], opts["start_iter"]
    w = common.weights(world) if method == "ef21-w" else np.full(world, 1.0 / world)
    wd = w.astype(dtype)
    scale = (1.0 / (world * w)).astype(dtype) if method == "ef21-w" else None
    g = [{n: np.zeros(p.numel(), dtype) for n, p in named.items()} for _ in range(world)]
    G = {n: np.zeros(p.numel(), dtype) for n, p in named.items()}
    for it in range(iters):
        grads = []
        for r in range(world):
            model.zero_grad()
            common.loss(case, model, r, it).backward()
            grads.append({n: p.grad.detach().numpy().ravel().copy()
                          for n, p in named.items()})
        for names in layouts[it]:
            cut = np.cumsum([0] + [named[n].numel() for n in names])
            flat = [np.concatenate([gr[n] for n in names]) for gr in grads]
            st = [np.concatenate([g[r][n] for n in names]) for r in range(world)]
            agg = np.concatenate([G[n] for n in names])
            size = cut[-1]
            k = min(size, opts["k"]) if "k" in opts else min(
                size, max(1, int(np.ceil(opts["ratio"] * size))))
            if it < start - 1 or (it == start - 1 and method == "ef14"):
                agg = sum(flat) / world  # not compared bit for bit (see the test)
            elif it == start - 1:
                agg[:] = 0
                for r in range(world):
                    st[r] = flat[r] if scale is None else scale[r] * flat[r]
                    agg += wd[r] * st[r]
            elif method == "ef14":
                agg = np.zeros(size, dtype)
                for r in range(world):
                    st[r] = st[r] + flat[r]
                    idx = _topk(st[r], k)
                    agg[idx] += wd[r] * st[r][idx]
                    st[r][idx] = 0
            else:
                for r in range(world):
                    target = flat[r] if scale is None else scale[r] * flat[r]
                    delta = target - st[r]
                    idx = _topk(delta, k)
                    st[r][idx] += delta[idx]
                    agg[idx] += wd[r] * delta[idx]
            for j, n in enumerate(names):
                for r in range(world):
                    g[r][n] = st[r][cut[j]:cut[j + 1]]
                if method != "ef14":
                    G[n] = agg[cut[j]:cut[j + 1]].copy()
                named[n].grad = torch.from_numpy(
                    np.array(agg[cut[j]:cut[j + 1]])).reshape(named[n].shape)
        opt.step()
    return {n: p.detach().numpy().copy() for n, p in named.items()}
