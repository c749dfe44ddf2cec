"""The DDP communication hook: per bucket, the EF step, one all-gather, the aggregate.

Wire format of one compressed message (fixed size for a bucket, so that gloo can
all-gather it): ``k`` values of the bucket's dtype, then ``k`` indices, int32 when the
bucket has fewer than 2**31 elements (int64 otherwise), as one uint8 tensor. Values
come first so that both parts stay aligned.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from ef21fast.api import ef21_step, ef_step, scatter_add

# all_gather_single is all_gather_into_tensor's newer name (the old one warns in 2.13)
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}
_METHOD_CODE = {"ef21": 0.0, "ef21-w": 1.0, "ef14": 2.0}


def _group(state):
    return state.process_group if state.process_group is not None else dist.group.WORLD


def _failed(state, bucket, it: int, what: str, exc: BaseException) -> RuntimeError:
    return RuntimeError(
        f"ef21fast.ddp: the {what} of bucket {bucket.index()} at iteration "
        f"{it} failed on rank {dist.get_rank(_group(state))}: a rank died, "
        f"stalled past the process group's timeout, or left the job ({exc})")


def _first_iteration_check(state, bucket, buf) -> None:
    """One all-gather of each rank's view of this bucket; every rank raises the same
    error when the ranks disagree or a bucket cannot be served."""
    pg = _group(state)
    world = dist.get_world_size(pg)
    dtype_code = {torch.float32: 0.0, torch.float64: 1.0}.get(buf.dtype, 2.0)
    mine = torch.tensor([float(buf.numel()), dtype_code,
                         0.0 if buf.device.type == "cpu" else 1.0,
                         _METHOD_CODE[state.method], float(state.start_iter),
                         float(state.k if state.k is not None else -1),
                         state.ratio if state.ratio is not None else -1.0,
                         state.weight if state.weight is not None else np.nan],
                        dtype=torch.float64)
    everyone = torch.empty(world * mine.numel(), dtype=torch.float64)
    try:
        _all_gather(everyone, mine, group=pg)
    except RuntimeError as exc:
        raise _failed(state, bucket, state.iteration, "first-iteration check", exc) from exc
    rows = everyone.numpy().reshape(world, -1)
    where = f"ef21fast.ddp, bucket {bucket.index()} at the first iteration"
    off = np.flatnonzero(rows[:, 2] != 0)
    if off.size:
        raise TypeError(f"{where}: the gradients of rank(s) {off.tolist()} are not on "
                        f"the CPU (this rank's: {buf.device}); ef21fast.ddp needs CPU "
                        f"buckets (gloo)")
    bad = np.flatnonzero(rows[:, 1] == 2)
    if bad.size:
        raise TypeError(f"{where}: the gradients of rank(s) {bad.tolist()} are not "
                        f"float32/float64 (this rank's: {buf.dtype}); float16 and "
                        f"bfloat16 buckets are not supported")
    if len(set(rows[:, 1])) > 1:
        raise TypeError(f"{where}: the ranks' gradient dtypes differ "
                        f"(codes {rows[:, 1].tolist()}, 0 = float32, 1 = float64)")
    if len(set(rows[:, 0])) > 1:
        raise ValueError(f"{where}: the bucket's size differs between ranks "
                         f"({[int(s) for s in rows[:, 0]]} elements on ranks 0.."
                         f"{world - 1}): every rank must build the same model with the "
                         f"same bucket_cap_mb")
    for col, what in ((3, "method"), (4, "start_iter"), (5, "k"), (6, "ratio")):
        if len(set(rows[:, col])) > 1:
            raise ValueError(f"{where}: the ranks' EFState {what} differ "
                             f"({rows[:, col].tolist()})")
    if state.method == "ef21-w":
        w = rows[:, 7]
        if not (np.all(np.isfinite(w)) and np.all(w > 0)) or abs(w.sum() - 1) > 1e-6:
            raise ValueError(f"{where}: the ranks' weights must be positive and sum to "
                             f"1, got {w.tolist()} (sum {float(w.sum())!r})")
        state.weights = w.copy()
    else:
        state.weights = np.full(world, 1.0 / world)
    params = sum(p.numel() for p in bucket.parameters())
    if params != buf.numel():
        raise ValueError(f"{where}: the bucket holds {buf.numel()} elements but its "
                         f"parameters {params}: a layout ef21fast.ddp does not know")


def _mean_allreduce(state, bucket, it, buf):
    world = dist.get_world_size(_group(state))
    work = dist.all_reduce(buf, group=_group(state), async_op=True)

    def done(fut):
        try:
            return fut.value()[0].div_(world)
        except RuntimeError as exc:
            raise _failed(state, bucket, it, "all-reduce", exc) from exc

    return work.get_future().then(done)


def _gather(state, bucket, it, tensor, then):
    """All-gather ``tensor`` (same size on every rank); ``then(rows)`` runs on the
    (world, size) numpy view of the result when it arrives, and its return value
    becomes the future's."""
    world = dist.get_world_size(_group(state))
    out = torch.empty(world * tensor.numel(), dtype=tensor.dtype)
    work = _all_gather(out, tensor, group=_group(state), async_op=True)

    def done(fut):
        try:
            fut.value()
        except RuntimeError as exc:
            raise _failed(state, bucket, it, "all-gather", exc) from exc
        return then(out.numpy().reshape(world, -1))

    return work.get_future().then(done)


def _init_ef21(state, bucket, it, buf, flat, dtype):
    """The last all-reduce iteration of EF21: g_r = (scaled) gradient, G = sum_r w_r g_r
    in rank order (the same bits on every rank)."""
    a = buf.detach().numpy()
    scale = _scale(state)
    if scale is None:
        flat.g[...] = a
    else:
        np.multiply(a, dtype.type(scale), out=flat.g)
    state.bits_sent += 8 * a.nbytes
    w = state.weights.astype(dtype)

    def then(rows):
        tmp = np.empty_like(flat.G)
        flat.G[...] = 0
        for r in range(rows.shape[0]):
            np.multiply(rows[r], w[r], out=tmp)
            flat.G += tmp
        np.copyto(a, flat.G)
        return buf

    return _gather(state, bucket, it, torch.from_numpy(flat.g), then)


def _scale(state):
    if state.method != "ef21-w":
        return None
    return 1.0 / (len(state.weights) * state.weight)


def _compressed(state, bucket, it, buf, flat, dtype):
    a = buf.detach().numpy()
    n = a.size
    k = state.k_for(n)
    if state.method == "ef14":
        idx, val = ef_step(a, flat.g, k, backend=state.backend)
    else:
        idx, val = ef21_step(a, flat.g, k, scale=_scale(state), backend=state.backend)
    itype = np.dtype(np.int32) if n < 2**31 else np.dtype(np.int64)
    vbytes, ibytes = k * dtype.itemsize, k * itype.itemsize
    wire = np.empty(vbytes + ibytes, np.uint8)
    wire[:vbytes].view(dtype)[...] = val
    wire[vbytes:].view(itype)[...] = idx
    state.bits_sent += 8 * wire.size
    weights = state.weights

    def then(rows):
        vals = rows[:, :vbytes].view(dtype)
        idxs = rows[:, vbytes:].view(itype)
        if state.method == "ef14":
            a[...] = 0
            scatter_add(a, idxs, vals, weights=weights, backend=state.backend)
        else:
            scatter_add(flat.G, idxs, vals, weights=weights, backend=state.backend)
            np.copyto(a, flat.G)
        return buf

    return _gather(state, bucket, it, torch.from_numpy(wire), then)


def ef_hook(state, bucket):
    """The DDP communication hook of ef21fast: exact EF21, EF21-W or EF14 across ranks.

    Register with ``ddp_model.register_comm_hook(EFState(...), ef_hook)``. For each
    bucket (its buffer ``grad_r``, this rank's local gradient):

    - iterations before ``state.start_iter``: the mean all-reduce; for EF21 the last of
      them sets ``g_r = grad_r`` (EF21-W: ``grad_r / (W w_r)``) and all-gathers the
      states into ``G = sum_r w_r g_r``, added in rank order;
    - then EF21/EF21-W: ``(idx, val) = ef21_step(grad_r, g_r, k, scale)``, one
      all-gather of the fixed-size messages, ``G += sum_r w_r val_r`` at ``idx_r``
      in rank order (:func:`ef21fast.scatter_add`), and the bucket becomes ``G``;
    - EF14: ``(idx, val) = ef_step(grad_r, e_r, k)`` and the bucket becomes
      ``sum_r val_r / W`` at ``idx_r``.

    The sums run in rank order on every rank, so every rank ends with the same bits;
    an optimiser ``SGD(lr=gamma)`` on top then follows the EF21 iterates (see
    ``docs/maths.rst``, "EF21 on torch.distributed").

    Parameters
    ----------
    state : EFState
    bucket : torch.distributed.GradBucket

    Returns
    -------
    torch.futures.Future
        Of the bucket's buffer, overwritten with the aggregate.

    Raises
    ------
    TypeError
        At the first iteration, on every rank: a bucket not on the CPU, or of a dtype
        other than float32/float64 on some rank.
    ValueError
        At the first iteration, on every rank: buckets of different sizes or EFState
        options that differ between ranks, weights that are not positive or do not sum
        to 1.
    RuntimeError
        A collective failed: a rank died or stalled past the process group's timeout.
    """
    buf = bucket.buffer()
    if not state._checked:
        _first_iteration_check(state, bucket, buf)
        state.assign_keys(bucket)  # in DDP's first layout, the same in every process
    it = state.iteration
    if bucket.is_last():
        state.iteration += 1
        state._checked = True
    dtype = _DTYPES[buf.dtype]
    ef21 = state.method != "ef14"
    if it < state.start_iter - 1 or (it == state.start_iter - 1 and not ef21):
        state.bits_sent += 8 * buf.numel() * buf.element_size()
        return _mean_allreduce(state, bucket, it, buf)
    flat = state.flat_for(bucket, dtype)
    if it == state.start_iter - 1:
        return _init_ef21(state, bucket, it, buf, flat, dtype)
    return _compressed(state, bucket, it, buf, flat, dtype)
