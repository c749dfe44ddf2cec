"""EF21 on ``torch.distributed``: an exact error-feedback DDP communication hook.

::

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from ef21fast.ddp import EFState, ef_hook

    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    model = DDP(net)
    model.register_comm_hook(EFState(ratio=0.01), ef_hook)
    opt = torch.optim.SGD(model.parameters(), lr=gamma)   # EF21's iterates

Each bucket sends ``k`` values and their indices per rank and iteration instead of
its dense gradient; the EF state (``g_r`` per rank, the aggregate ``G``) survives DDP's
bucket rebuild and is checkpointed with :meth:`EFState.state_dict`. CPU buckets
(gloo), float32 or float64. The maths: ``docs/maths.rst``, "EF21 on
torch.distributed". Importing this module imports torch (``import ef21fast`` does
not).
"""

from ef21fast.ddp._hook import ef_hook
from ef21fast.ddp._state import EFState

__all__ = ["EFState", "ef_hook"]
