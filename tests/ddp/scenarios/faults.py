"""One rank of a DDP job in which rank 1 fails, for tests/ddp/test_faults.py.

``python faults.py RANK WORLD PORT OUTDIR MODE TIMEOUT_S``: the ranks train case ef21
of common.py with the ef21fast hook under a process-group timeout of TIMEOUT_S. At
iteration 2 rank 1 either exits (MODE ``dead``) or sleeps past the timeout and then
exits (MODE ``stall``). Every other rank writes ``OUTDIR/MODE-RANK.json``: the error it
got and the seconds from the start of that iteration to the error.
"""
import json
import os
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from ef21fast.ddp import EFState, ef_hook  # noqa: E402


def main():
    rank, world, port, outdir, mode, timeout = sys.argv[1:7]
    rank, world, timeout = int(rank), int(world), float(timeout)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=timeout))
    model = common.make_model("ef21")
    ddp = DDP(model, bucket_cap_mb=common.BUCKET_CAP_MB)
    ddp.register_comm_hook(EFState(k=5, backend="c"), ef_hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=common.LR)
    report = dict(error=None, message="no error", seconds=None)
    for it in range(6):
        if it == 2 and rank == 1:
            if mode == "stall":
                time.sleep(timeout + 2)
            os._exit(0)
        t0 = time.monotonic()
        try:
            opt.zero_grad()
            common.loss("ef21", ddp, rank, it).backward()
            opt.step()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            report = dict(error=type(exc).__name__, message=str(exc), iteration=it,
                          seconds=time.monotonic() - t0)
            break
    with open(os.path.join(outdir, f"{mode}-{rank}.json"), "w") as f:
        json.dump(report, f)
    os._exit(0)


if __name__ == "__main__":
    main()
