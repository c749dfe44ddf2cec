"""One rank of the DDP step benchmark (bench/test_bench_ddp.py): gloo on 127.0.0.1.

``python ddp_step.py RANK WORLD PORT OUTFILE SIZES FRACTIONS WARMUP STEPS``, SIZES a
comma list of ``width:layers`` (an MLP of ``layers`` square ``width`` x ``width``
linear layers), FRACTIONS the k / size fractions. For each model and each
communication: DDP without a hook (all-reduce), torch's PowerSGD hook (rank 4), EF21
on ``torch.topk`` (the hook below, the same maths written plainly) and
``ef21fast.ddp`` - a fresh model and DDP (one bucket, see BUCKET_CAP_MB), ``WARMUP``
untimed steps (past DDP's bucket rebuild and each hook's dense start), then ``STEPS``
timed steps, each after a barrier, one OpenMP thread per process.
Rank 0 writes a JSON list of rows: the median wall time of a step, the bytes this rank
handed to collectives per step, and the median time per step spent in the hook's
synchronous part (the compression).
"""
import json
import os
import statistics
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd
from torch.nn.parallel import DistributedDataParallel as DDP

from ef21fast.ddp import EFState, ef_hook

BATCH = 32
# One bucket for every model here: with several buckets torch's PowerSGD hook aborted
# the gloo job ("collective mismatch"); it issues collectives from its callbacks (gloo
# threads), which can interleave differently on the two ranks. The ef21fast hook
# issues all of its collectives from the hook itself, in bucket order.
BUCKET_CAP_MB = 64
_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class TopkEF21:
    """EF21 with torch.topk, per bucket index (re-initialised when a bucket's size
    changes, i.e. at DDP's rebuild): the baseline the ef21fast hook is compared with."""

    def __init__(self, fraction):
        self.fraction = fraction
        self.g, self.G = {}, {}
        self.bytes = 0


def topk_ef21_hook(st, bucket):
    world = dist.get_world_size()
    buf = bucket.buffer()
    i = bucket.index()
    if i not in st.g or st.g[i].numel() != buf.numel():
        st.g[i] = buf.clone()
        st.bytes += buf.numel() * buf.element_size()
        fut = dist.all_reduce(buf, async_op=True).get_future()

        def init(f):
            st.G[i] = f.value()[0].div_(world).clone()
            return st.G[i].clone()
        return fut.then(init)
    k = max(1, int(round(st.fraction * buf.numel())))
    delta = buf - st.g[i]
    idx = torch.topk(delta.abs(), k, sorted=False).indices
    val = delta[idx]
    st.g[i][idx] += val
    msg = torch.cat([idx.to(torch.int32), val.view(torch.int32)])
    out = torch.empty(world * msg.numel(), dtype=torch.int32)
    st.bytes += msg.numel() * 4
    fut = _gather(out, msg, async_op=True).get_future()

    def done(f):
        f.value()
        rows = out.view(world, 2 * k)
        G = st.G[i]
        for r in range(world):
            G.index_add_(0, rows[r, :k].long(), rows[r, k:].view(torch.float32) / world)
        buf.copy_(G)
        return buf
    return fut.then(done)


def make_model(width, layers):
    torch.manual_seed(0)
    mods = []
    for _ in range(layers):
        mods += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*mods[:-1])


def timed_hook(hook, acc):
    def wrapped(state, bucket):
        t0 = time.perf_counter()
        fut = hook(state, bucket)
        acc[0] += time.perf_counter() - t0
        return fut
    return wrapped


def run(width, layers, comm, fraction, warmup, steps, rank):
    model = make_model(width, layers)
    n = sum(p.numel() for p in model.parameters())
    ddp = DDP(model, bucket_cap_mb=BUCKET_CAP_MB)
    acc = [0.0]
    counted = [0]
    state = None
    if comm == "powersgd":
        state = psgd.PowerSGDState(process_group=None, matrix_approximation_rank=4,
                                   start_powerSGD_iter=2)
        ddp.register_comm_hook(state, timed_hook(psgd.powerSGD_hook, acc))
    elif comm == "torch.topk EF21":
        state = TopkEF21(fraction)
        ddp.register_comm_hook(state, timed_hook(topk_ef21_hook, acc))
    elif comm == "ef21fast.ddp":
        state = EFState(ratio=fraction)
        ddp.register_comm_hook(state, timed_hook(ef_hook, acc))
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(BATCH, width, generator=gen)
    y = torch.randn(BATCH, width, generator=gen)
    real_all_reduce = dist.all_reduce

    def counting_all_reduce(tensor, *args, **kwargs):
        counted[0] += tensor.numel() * tensor.element_size()
        return real_all_reduce(tensor, *args, **kwargs)

    times, compress, sent = [], [], 0
    for it in range(warmup + steps):
        dist.barrier()
        before = (state.bits_sent // 8 if comm == "ef21fast.ddp" else
                  state.bytes if comm == "torch.topk EF21" else 0)
        acc[0], counted[0] = 0.0, 0
        dist.all_reduce = counting_all_reduce
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.mse_loss(ddp(x), y).backward()
        opt.step()
        elapsed = time.perf_counter() - t0
        dist.all_reduce = real_all_reduce
        if it >= warmup:
            times.append(elapsed)
            compress.append(acc[0])
            if comm == "allreduce":
                sent = 4 * n
            elif comm == "powersgd":
                sent = counted[0]
            elif comm == "ef21fast.ddp":
                sent = state.bits_sent // 8 - before
            else:
                sent = state.bytes - before
    del ddp, opt
    return dict(params=n, comm=comm, k_fraction=fraction, median_s=statistics.median(times),
                bytes_per_step=sent, compress_s=statistics.median(compress), steps=steps)


def main():
    rank, world, port, outfile, sizes, fractions, warmup, steps = sys.argv[1:9]
    rank, world, warmup, steps = int(rank), int(world), int(warmup), int(steps)
    # one thread per rank: OMP_NUM_THREADS=1 from the test (torch's and the C kernels'
    # OpenMP). Not ef21fast.set_num_threads(1): it launches Numba's threading layer,
    # which raises torch's OpenMP thread count back to the core count here and made
    # the steps several times slower.
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=120))
    rows = []
    for size in sizes.split(","):
        width, layers = (int(v) for v in size.split(":"))
        plan = [("allreduce", None), ("powersgd", None)]
        for f in fractions.split(","):
            plan += [("torch.topk EF21", float(f)), ("ef21fast.ddp", float(f))]
        for comm, fraction in plan:
            rows.append(run(width, layers, comm, fraction, warmup, steps, rank))
    if rank == 0:
        with open(outfile, "w") as f:
            json.dump(rows, f)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
