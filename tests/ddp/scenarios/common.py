"""What the DDP scenario programs and the tests' single-process simulation share: the
models, the data and its split over ranks, the cases. Deterministic, so that every
process (and the simulation) builds the same model and data from the same seeds.
"""

import numpy as np
import torch

LR = 0.05
ITERS = 6
BATCH = 16  # samples per rank per iteration
FEATURES = 12

#: case name -> options. ``model``: "mlp" (several buckets with bucket_cap_mb, rebuilt
#: after the first iteration) or "ties" (one parameter vector whose gradient is a fixed
#: vector full of ties, with start_iter 0 so the first message is TopK of it).
CASES = {
    "ef21": dict(model="mlp", method="ef21", k=5, start_iter=1),
    "ef21-ratio": dict(model="mlp", method="ef21", ratio=0.03, start_iter=2),
    "ef21-w": dict(model="mlp", method="ef21-w", k=7, start_iter=1),
    "ef14": dict(model="mlp", method="ef14", k=6, start_iter=1),
    "ef14-0": dict(model="mlp", method="ef14", k=6, start_iter=0),
    "ef21-f64": dict(model="mlp", method="ef21", k=9, start_iter=1, dtype="float64"),
    "ties": dict(model="ties", method="ef21", k=4, start_iter=0),
}
BUCKET_CAP_MB = 0.0005
TIES_D = 24


def weights(world: int) -> np.ndarray:
    """The EF21-W weights of the ranks (unequal, summing to 1 in float64 to within
    rounding)."""
    w = np.arange(1, world + 1, dtype=np.float64)
    return w / w.sum()


def make_model(case: str) -> torch.nn.Module:
    opts = CASES[case]
    torch.manual_seed(1234)
    if opts["model"] == "ties":
        model = torch.nn.Linear(TIES_D, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
    else:
        model = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, 32), torch.nn.Tanh(),
            torch.nn.Linear(32, 24), torch.nn.Tanh(),
            torch.nn.Linear(24, 1))
    if opts.get("dtype") == "float64":
        model = model.double()
    return model


def ties_vector(rank: int) -> np.ndarray:
    """The fixed gradient of rank ``rank`` in the ties case: two entries of magnitude 2,
    the rest of magnitude 1 with mixed signs, so TopK with k = 4 picks two among many
    equal magnitudes (ours: the smallest indices)."""
    v = np.ones(TIES_D)
    v[::3] = -1.0
    v[rank % 4 + 5::12] = 2.0
    return v


def batch(case: str, rank: int, it: int, dtype=torch.float32):
    """Rank ``rank``'s data at iteration ``it``: a contiguous block of a fixed data set
    (ranks get different blocks, so their gradients differ)."""
    rng = np.random.default_rng(1000 * it + rank)
    x = rng.standard_normal((BATCH, FEATURES))
    y = np.sin(x.sum(axis=1, keepdims=True)) + 0.1 * rank
    return torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)


def loss(case: str, model, rank: int, it: int):
    """The local loss of rank ``rank`` at iteration ``it`` on ``model``."""
    dtype = next(model.parameters()).dtype
    if CASES[case]["model"] == "ties":
        c = torch.from_numpy(ties_vector(rank)).to(dtype)
        return model(c[None]).sum()  # gradient: exactly c
    x, y = batch(case, rank, it, dtype)
    return torch.nn.functional.mse_loss(model(x), y)
