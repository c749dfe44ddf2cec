"""One rank of a job running :func:`ef21fast.methods.distributed.run`, for
tests/ddp/test_workers.py.

``python workers.py RANK WORLD PORT OUTDIR MODE TIMEOUT_S``: the process joins the job
through the env:// variables, as under torchrun. MODE ``cases``: every case of
:data:`CASES` in the one process group, each rank writing ``OUTDIR/CASE-RANK.npz``
(trace columns but time, last iterate). MODE ``dead`` / ``stall``: case ef21 for
many rounds; after round 3 rank 1 exits, or sleeps past the timeout and then exits;
rank 0 writes ``OUTDIR/MODE-0.json``: the error and the seconds from its last row to
the error. MODE ``absent``: rank 1 exits before joining; rank 0 writes
``OUTDIR/absent-0.json`` likewise (seconds from the start of its run).
"""
import json
import os
import sys
import time

import numpy as np

#: name -> (method, options of run); on the problem of :func:`problem`.
CASES = {
    "ef21": ("ef21", {}),
    "ef21-w": ("ef21-w", {"gamma": "theory-qm"}),
    "ef14": ("ef14", {}),
    "ef21-sgd": ("ef21-sgd", {"batch": 3, "seed": 5}),
    "ef21-w-sgd": ("ef21-w-sgd", {"batch": 2}),
    "ef21-pp": ("ef21-pp", {"p": 0.3, "seed": 1}),
    "ef21-w-pp": ("ef21-w-pp", {"p": 0.4, "participation": "fixed"}),
    "ef21-clone": ("ef21-clone", {}),
    "indices": ("ef21", {"bits": "values+indices", "tol": 0.05}),
    "fresh-seed": ("ef21-pp", {"seed": None}),
    "linreg-numpy": ("ef21-w", {}),
    "owned-pp": ("ef21-pp", {"seed": 2}),
    "owned-sgd": ("ef21-w-sgd", {"batch": 4}),
    "sparse-ef14": ("ef14", {}),
    "sparse-sgd": ("ef21-sgd", {"batch": 2}),
    "float32-ef21-w": ("ef21-w", {}),
    "float32-ef14": ("ef14", {}),
    "float32-pp": ("ef21-pp", {"seed": 3}),
}
K, ITERS = 3, 25


def problem(case="ef21"):
    """Synthetic logistic regression, 7 clients, the fused C oracle where built; the
    NumPy oracle on linear regression; linear regression with owned regularisers
    (rare features); sparse (CSR) logistic regression; float32 data and states."""
    from ef21fast.cli._common import build_problem
    from ef21fast.methods import data, data_sparse, problems

    if case == "linreg-numpy":
        split = build_problem("linreg", "synthetic", clients=7, seed=3)[1]
        return problems.LinearRegression(split, oracle="numpy")
    if case.startswith("owned-pp"):
        split = data_sparse.make_rare_features(n=7, d=40, m_per_client=6, seed=4)
        return problems.LinearRegression(split, regulariser="owned")
    if case.startswith("sparse"):
        import scipy.sparse as sp

        rng = np.random.default_rng(5)
        A = sp.random(60, 30, density=0.2, format="csr", random_state=rng)
        b = np.where(rng.random(60) < 0.5, -1.0, 1.0)
        return problems.LogisticRegression(data.split_clients(A, b, 7))
    if case.startswith("float32"):
        return build_problem("logreg", "synthetic", clients=7, seed=3, dtype="float32")[0]
    return build_problem("logreg", "synthetic", clients=7, seed=3)[0]


def main():
    rank, world, port, outdir, mode, timeout = sys.argv[1:7]
    os.environ.update(RANK=rank, WORLD_SIZE=world, MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=port)
    rank, timeout = int(rank), float(timeout)
    from ef21fast.methods import distributed

    if mode == "cases":
        import torch.distributed as dist
        from datetime import timedelta

        dist.init_process_group("gloo", init_method="env://",
                                timeout=timedelta(seconds=timeout))
        for case, (method, opts) in CASES.items():
            tr = distributed.run(problem(case), method, k=K, iters=ITERS, timeout=timeout, **opts)
            np.savez(os.path.join(outdir, f"{case}-{rank}.npz"), iter=tr.iter,
                     bits=tr.bits, grad_norm_sq=tr.grad_norm_sq, f=tr.f, x=tr.x,
                     status=tr.status, workers=tr.extra["workers"], seed=tr.seed,
                     block_oracle=tr.extra["block_oracle"])
        dist.destroy_process_group()
        return
    if mode == "absent" and rank == 1:
        os._exit(0)
    prob = problem()
    last = [time.monotonic()]

    def callback(t, x, gn):
        last[0] = time.monotonic()
        if t == 3 and rank == 1:
            if mode == "stall":
                time.sleep(timeout + 2)
            os._exit(0)

    report = dict(error=None, message="no error", seconds=None)
    try:
        distributed.run(prob, "ef21", k=K, iters=10_000, timeout=timeout,
                        callback=callback)
    except RuntimeError as exc:
        report = dict(error=type(exc).__name__, message=str(exc),
                      seconds=time.monotonic() - last[0])
    if rank == 0:
        with open(os.path.join(outdir, f"{mode}-0.json"), "w") as f:
            json.dump(report, f)
    os._exit(0)  # without the destructors of a broken process group


if __name__ == "__main__":
    main()
