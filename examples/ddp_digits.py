"""Train a small network on scikit-learn's digits with DistributedDataParallel, twice:
plain all-reduce, then the EF21 hook of ef21fast.ddp; print loss, accuracy and the
megabytes each rank sent.

    torchrun --standalone --nproc-per-node 2 examples/ddp_digits.py
    torchrun --standalone --nproc-per-node 2 examples/ddp_digits.py --ratio 0.01 --steps 600

Needs torch and scikit-learn (``pip install "ef21fast[torch,experiments]"``). Each
rank trains on its share of the training images (full batch, so both runs are
deterministic) from the same initial weights; the test images are the same on every
rank. The EF21 run sends ``ceil(ratio x size)`` values and their indices per bucket
instead of the dense gradient.
"""

import argparse
import datetime
import gc

import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel as DDP

from ef21fast.ddp import EFState, ef_hook


def data(rank, world):
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X = torch.tensor(X[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[order])
    cut = 1400
    return (X[rank:cut:world], y[rank:cut:world]), (X[cut:], y[cut:])


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def train(hook_state, train_set, test_set, steps, lr):
    net = DDP(model())
    if hook_state is not None:
        net.register_comm_hook(hook_state, ef_hook)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    X, y = train_set
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net(X), y)
        dist.all_reduce(loss)  # the mean of the ranks' losses = the training loss
        loss = float(loss) / dist.get_world_size()
        Xt, yt = test_set
        acc = float((net(Xt).argmax(1) == yt).float().mean())
    size = sum(p.numel() for p in net.parameters())
    if hook_state is None:  # DDP's all-reduce: the dense float32 gradient per step
        sent = steps * size * 4
    else:
        sent = hook_state.bits_sent / 8
    return loss, acc, sent / 1e6, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps (300)")
    ap.add_argument("--lr", type=float, default=0.5, help="SGD step size (0.5)")
    ap.add_argument("--ratio", type=float, default=0.05,
                    help="EF21: fraction of each bucket sent per step (0.05)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    train_set, test_set = data(rank, world)
    rows = [("all-reduce", train(None, train_set, test_set, args.steps, args.lr))]
    rows.append((f"EF21 hook, {args.ratio:g} of each bucket",
                 train(EFState(ratio=args.ratio), train_set, test_set, args.steps,
                       args.lr)))
    if rank == 0:
        size = rows[0][1][3]
        print(f"digits, {world} processes, {args.steps} full-batch steps, "
              f"{size} parameters")
        for name, (loss, acc, mb, _) in rows:
            print(f"{name:32s} train loss {loss:.4f}  test accuracy {acc:.3f}  "
                  f"sent {mb:8.3f} MB per rank")
    # The DDP models (kept alive by reference cycles) hold the process group: collect
    # them, and wait for every rank (rank 0's printing included), before the group
    # goes. Otherwise gloo's threads can be torn down at interpreter exit, in any
    # order, and a rank aborts ("terminate called without an active exception").
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
