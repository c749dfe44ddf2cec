"""One rank of a DDP job on gloo (127.0.0.1) that trains the cases of common.py with
the ef21fast hook, for tests/ddp/test_hook.py.

``python train.py RANK WORLD PORT OUTDIR CASE[,CASE...]``. Each case writes
``OUTDIR/CASE-RANK.npz`` (the final parameters) and ``OUTDIR/CASE-RANK.json`` (the
bucket layouts of every iteration, bits sent, or the error raised). Besides the cases
of common.CASES:

- ``resume``: case ef21 for 3 iterations, a checkpoint (model, optimiser, EF state
  through torch.save), then a fresh model, DDP and EFState that load it and finish;
- ``bad-weight``, ``bad-bucket``, ``meta``, ``bf16``: one iteration that must fail.

The process ends with ``os._exit`` after its files are written: a job whose ranks
have raised must not hang in teardown.
"""
import io
import json
import os
import sys
import traceback
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from ef21fast.ddp import EFState, ef_hook  # noqa: E402


def efstate(case, rank, world, **over):
    opts = dict(common.CASES[case])
    opts.update(over)
    kw = dict(method=opts["method"], start_iter=opts["start_iter"], backend="c")
    if "ratio" in opts:
        kw["ratio"] = opts["ratio"]
    else:
        kw["k"] = opts["k"]
    if opts["method"] == "ef21-w":
        kw["weight"] = opts.get("weight", float(common.weights(world)[rank]))
    return EFState(**kw)


class Job:
    """A model under DDP with the hook, recording each iteration's bucket layout."""

    def __init__(self, case, rank, world, state, bucket_cap_mb=common.BUCKET_CAP_MB,
                 dtype=None):
        self.case, self.rank = case, rank
        self.model = common.make_model(case)
        if dtype is not None:
            self.model = self.model.to(dtype)
        self.names = {id(p): n for n, p in self.model.named_parameters()}
        self.ddp = DDP(self.model, bucket_cap_mb=bucket_cap_mb)
        self.state = state
        self.layouts = []
        self.ddp.register_comm_hook(state, self.hook)
        self.opt = torch.optim.SGD(self.ddp.parameters(), lr=common.LR)
        self.it = 0

    def hook(self, state, bucket):
        if bucket.index() == 0 or not self.layouts:
            self.layouts.append({})
        self.layouts[-1][bucket.index()] = [self.names[id(p)] for p in bucket.parameters()]
        return ef_hook(state, bucket)

    def step(self):
        self.opt.zero_grad()
        common.loss(self.case, self.ddp, self.rank, self.it).backward()
        self.opt.step()
        self.it += 1

    def params(self):
        return {n: p.detach().numpy().copy() for n, p in self.model.named_parameters()}


class FakeBucket:
    """The GradBucket methods the hook calls, over one parameter."""

    def __init__(self, grad):
        self.param = torch.nn.Parameter(torch.zeros(grad.shape))
        self.grad = grad

    def buffer(self):
        return self.grad

    def index(self):
        return 0

    def is_last(self):
        return True

    def parameters(self):
        return [self.param]


def save(outdir, name, rank, params=None, **info):
    if params is not None:
        np.savez(os.path.join(outdir, f"{name}-{rank}.npz"), **params)
    with open(os.path.join(outdir, f"{name}-{rank}.json"), "w") as f:
        json.dump(info, f)


def layouts_of(job):
    return [[v for _, v in sorted(it.items())] for it in job.layouts]


def run_case(case, rank, world, outdir):
    job = Job(case, rank, world, efstate(case, rank, world))
    for _ in range(common.ITERS):
        job.step()
    save(outdir, case, rank, job.params(), layouts=layouts_of(job),
         bits_sent=job.state.bits_sent, iteration=job.state.iteration)


def run_resume(rank, world, outdir):
    job = Job("ef21", rank, world, efstate("ef21", rank, world))
    for _ in range(3):
        job.step()
    blob = io.BytesIO()
    torch.save({"model": job.model.state_dict(), "opt": job.opt.state_dict(),
                "ef": job.state.state_dict()}, blob)
    blob.seek(0)
    ckpt = torch.load(blob, weights_only=True)
    fresh = Job("ef21", rank, world, efstate("ef21", rank, world))
    fresh.model.load_state_dict(ckpt["model"])
    fresh.opt.load_state_dict(ckpt["opt"])
    fresh.state.load_state_dict(ckpt["ef"])
    fresh.it = 3
    for _ in range(common.ITERS - 3):
        fresh.step()
    save(outdir, "resume", rank, fresh.params(), layouts=layouts_of(fresh),
         bits_sent=fresh.state.bits_sent, iteration=fresh.state.iteration)


def run_failing(case, rank, world, outdir):
    if case == "bad-weight":
        job = Job("ef21-w", rank, world, efstate("ef21-w", rank, world, weight=0.4))
    elif case == "bad-bucket":
        # DDP itself builds equal buckets on every rank; a bucket of another size
        # (another model, a custom bucketing) is handed to the hook directly
        job = None
        bucket = FakeBucket(torch.zeros(10 + rank))
    elif case == "meta":  # rank 1's gradients off the CPU (as a CUDA bucket would be)
        job = None
        bucket = FakeBucket(torch.zeros(10, device="meta" if rank == 1 else "cpu"))
    else:  # bf16
        job = Job("ef21", rank, world, efstate("ef21", rank, world),
                  dtype=torch.bfloat16)
    try:
        if job is None:
            ef_hook(efstate("ef21", rank, world), bucket).wait()
        else:
            job.step()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        save(outdir, case, rank, error=type(exc).__name__, message=str(exc))
    else:
        save(outdir, case, rank, error=None, message="no error")


def main():
    rank, world, port, outdir, cases = sys.argv[1:6]
    rank, world = int(rank), int(world)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=20))
    try:
        for case in cases.split(","):
            if case == "resume":
                run_resume(rank, world, outdir)
            elif case in common.CASES:
                run_case(case, rank, world, outdir)
            else:
                run_failing(case, rank, world, outdir)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
