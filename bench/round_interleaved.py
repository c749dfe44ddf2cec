"""Interleaved timing of an EF21 round of bench/test_bench_ef21_round.py (w8a-sized
sparse by default, ``--shape dense`` for the mushrooms-sized one): the package round,
the same round with the scipy.sparse oracle (sparse only), the per-client loop and one
streaming read of the data as stored plus the n x d state, taken in turn for a fixed
time so that a shared machine's load falls on all of them alike. Prints min and median
of each and their ratios, with the load average before and after; then (``--parts``)
the medians of the parts of a round and of its trace row, taken in turn the same way:
the oracle (client gradients; with the client losses, as on a traced round, and
without), the mean of the client gradients (the trace's grad f), ``ef21_step`` on the
n x d state, the server's ``scatter_add``, and the trace's f from the losses of the
same pass.

    OPENBLAS_NUM_THREADS=1 python bench/round_interleaved.py [--shape sparse|dense]
        [--threads N] [--seconds S] [--parts]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ef21fast  # noqa: E402
from ef21fast.methods.algorithms import wants_losses  # noqa: E402
import test_bench_ef21_round as B  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="kernel threads (1)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time to run (60)")
    ap.add_argument("--parts", action="store_true", help="also time the parts of a round")
    ap.add_argument("--shape", choices=sorted(B.SHAPES), default="sparse",
                    help="the round's data (sparse)")
    args = ap.parse_args()
    ef21fast.set_num_threads(args.threads)
    backend = B.fastest_backend()
    p = B.problem_for(args.shape)
    impls = {"package": (B.PackageRound(p, backend), 40)}
    if args.shape == "sparse":
        impls["scipy oracle"] = (B.PackageRound(B.problem_for("sparse", "numpy"), backend), 20)
    impls.update({"stream read": (B.StreamRead(p), 40), "loop": (B.LoopRound(p), 2)})
    times: dict = {k: [] for k in impls}
    print(f"backend {backend}, kernel threads {ef21fast.get_num_threads(backend)}, "
          f"load before {os.getloadavg()}")
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        for name, (fn, reps) in impls.items():
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    print(f"load after {os.getloadavg()}")
    for name, ts in times.items():
        print(f"{name:13s} rounds {len(ts):6d}  min {min(ts) * 1e3:8.3f} ms  "
              f"median {np.median(ts) * 1e3:8.3f} ms")
    for stat, f in (("median", np.median), ("min", min)):
        s = {k: f(v) for k, v in times.items()}
        text = (f"{stat:6s} ratios: loop / package {s['loop'] / s['package']:.1f}x, "
                f"package / read {s['package'] / s['stream read']:.2f}")
        if "scipy oracle" in s:
            text += (f", loop / scipy {s['loop'] / s['scipy oracle']:.1f}x, "
                     f"scipy / read {s['scipy oracle'] / s['stream read']:.2f}")
        print(text)
    if args.parts:
        parts(p, backend, args.seconds / 4)


def parts(p, backend, seconds: float) -> None:
    """Medians of the parts of one round and of its trace row."""
    x = np.random.default_rng(1).standard_normal(p.d) * 0.1
    G = p.client_grads(x)
    state, g = G.copy(), G.mean(axis=0)
    idx, val = ef21fast.ef21_step(G, state.copy(), B.K, backend=backend)

    def oracle(on):
        def call():
            wants_losses(p, on)
            try:
                p.client_grads(x)
            finally:
                wants_losses(p, True)
        return call

    def f_from_pass():
        p.client_grads(x)
        t0 = time.perf_counter()
        p.loss(x)
        return time.perf_counter() - t0

    impls = {"oracle + losses": oracle(True), "oracle, no losses": oracle(False),
             "mean of G (grad f)": lambda: G.mean(axis=0),
             "ef21_step": lambda: ef21fast.ef21_step(G, state, B.K, backend=backend),
             "scatter_add": lambda: ef21fast.scatter_add(g, idx, val, weights=1.0 / p.n,
                                                         backend=backend)}
    times: dict = {k: [] for k in list(impls) + ["f (losses reused)"]}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, fn in impls.items():
            for _ in range(20):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        times["f (losses reused)"].append(f_from_pass())
    for name, ts in times.items():
        print(f"part {name:20s} median {np.median(ts) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
