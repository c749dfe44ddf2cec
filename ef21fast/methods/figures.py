"""``ef21fast reproduce --figure NAME``: paper-style figures beyond the main comparison.

Each figure is a list of problems ("cases") and, for each, a few runs of the EF21
family, all with Top1 from ``x0 = 0`` until ``||grad f||^2 <= rel_tol ||grad f(x0)||^2``
or a cap on the rounds. A figure writes, under its folder, one plot per case
(``||grad f(x_t)||^2``, log scale, against bits per client), the CSV trace of every run
(streamed row by row while it runs), ``table.md``, ``table.csv`` and ``summary.json``.

* ``rare-features``: the rare-features generator
  (:func:`ef21fast.methods.data_sparse.make_rare_features`) at ``c/n`` = 0.05, 0.5 and
  0.9, linear regression with the owned-features regulariser at ``lam = 0`` (a
  quadratic, so that ``L_plus`` is the theory's); EF21 at ``gamma_QM``, at the
  rare-features step and with the adaptive step.
* ``sgd-pp``: heterogeneous synthetic logistic regression; EF21-SGD at the derived SGD
  step with ``L_QM`` and EF21-W-SGD with ``L_AM`` (:mod:`ef21fast.methods.theory_sgd`),
  EF21-PP and EF21-W-PP with ``p = 0.5`` at ``gamma_pp``.
* ``heterogeneity``: synthetic linear regression with n = 2000 clients, ``L_QM / L_AM``
  swept so that ``L_var`` covers five orders of magnitude; EF21 at ``gamma_QM`` and
  ``gamma_AM``, EF21-W at ``gamma_AM``; ``saving.png`` plots the saving against
  ``L_var``.
* ``cloning``: EF21 on the cloned problem against EF21 and EF21-W at ``gamma_AM``.
* ``libsvm``: LIBSVM files (given, or ``../shared/data/*.txt``), up to 1000 clients,
  contiguous and heterogeneous splits, ``L_var`` in the table.

The formulas are in docs/maths.rst ("Stochastic gradients", "Rare features",
"Step sizes"); the set-ups are this package's choices (the papers' exact set-ups were
not readable), stated in each table's note.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FIGURES", "run_figure", "format_rows", "libsvm_files"]


@dataclass
class Case:
    """One problem of a figure and its runs ``(label, method, run keywords)``."""

    name: str
    problem: object
    facts: dict
    runs: list = field(default_factory=list)


def _rare_feature_cases(quick: bool, opts: dict):
    from ef21fast.methods.data_sparse import make_rare_features
    from ef21fast.methods.problems import LinearRegression
    from ef21fast.methods.rare_features import rare_step

    n, d, m = (20, 60, 6) if quick else (100, 500, 12)
    for c_frac in (0.05, 0.5, 0.9):
        data = make_rare_features(n=n, d=d, m_per_client=m, c_frac=c_frac, seed=0)
        prob = LinearRegression(data, lam=0.0, regulariser="owned")
        g_rf, facts = rare_step(prob, 1)
        facts = {"c/n": facts["c"] / n, **facts}
        yield Case(f"rare-c{facts['c']}-n{n}", prob, facts, [
            ("EF21 gQM", "ef21", {"gamma": "theory-qm"}),
            ("EF21 gRF", "ef21", {"gamma": g_rf}),
            ("EF21 adaptive", "ef21", {"gamma": "theory-qm", "adaptive_step": True}),
        ])


def _sgd_pp_cases(quick: bool, opts: dict):
    from ef21fast.methods import theory
    from ef21fast.methods.data import make_synthetic
    from ef21fast.methods.problems import LogisticRegression

    spec = (dict(n=20, d=10, m_per_client=20, spread=3.0) if quick
            else dict(n=200, d=50, m_per_client=20, spread=5.0))
    prob = LogisticRegression(make_synthetic(kind="logreg", seed=0, **spec), lam=0.1)
    L_i = np.asarray(prob.L_i)
    facts = {"L_QM": theory.l_qm(L_i), "L_AM": theory.l_am(L_i),
             "batch": "half the rows", "p": 0.5}
    sgd = {"batch": spec["m_per_client"] // 2}  # the SGD step is the default rule
    yield Case("synthetic-logreg", prob, facts, [
        ("EF21-SGD gQM", "ef21-sgd", {"gamma": "theory-qm", **sgd}),
        ("EF21-W-SGD gAM", "ef21-w-sgd", {"gamma": "theory-am", **sgd}),
        ("EF21-PP gQM", "ef21-pp", {"gamma": "theory-qm", "p": 0.5}),
        ("EF21-W-PP gAM", "ef21-w-pp", {"gamma": "theory-am", "p": 0.5}),
    ])


def _cloning_cases(quick: bool, opts: dict):
    from ef21fast.methods import theory
    from ef21fast.methods.data import make_synthetic
    from ef21fast.methods.problems import LogisticRegression

    spec = (dict(n=20, d=10, m_per_client=10, spread=3.0) if quick
            else dict(n=200, d=50, m_per_client=20, spread=5.0))
    prob = LogisticRegression(make_synthetic(kind="logreg", seed=0, **spec), lam=0.1)
    L_i = np.asarray(prob.L_i)
    N = int(theory.clone_counts(L_i).sum())
    yield Case("synthetic-logreg", prob, {"L_QM": theory.l_qm(L_i),
                                          "L_AM": theory.l_am(L_i), "clones": N}, [
        ("EF21 gQM", "ef21", {"gamma": "theory-qm"}),
        ("EF21 gAM", "ef21", {"gamma": "theory-am"}),
        ("EF21-W gAM", "ef21-w", {"gamma": "theory-am"}),
        ("EF21 cloned gQM", "ef21-clone", {"gamma": "theory-qm"}),
    ])


#: Spreads L_QM / L_AM of the heterogeneity sweep (L_var = L_AM^2 (spread^2 - 1)).
SPREADS = (1.0005, 1.005, 1.05, 1.5, 5.0, 15.0)
SPREADS_QUICK = (1.005, 1.5, 5.0)


def _heterogeneity_cases(quick: bool, opts: dict):
    from ef21fast.methods import theory
    from ef21fast.methods.data import make_synthetic
    from ef21fast.methods.problems import LinearRegression

    spec = dict(n=50, d=10, m_per_client=5) if quick else dict(n=2000, d=20, m_per_client=5)
    for spread in (SPREADS_QUICK if quick else SPREADS):
        data = make_synthetic(kind="linreg", spread=spread, seed=0, **spec)
        prob = LinearRegression(data, lam=0.1)
        L_i = np.asarray(prob.L_i)
        yield Case(f"linreg-spread{spread:g}", prob,
                   {"L_var": theory.l_var(L_i), "L_QM/L_AM": theory.l_qm(L_i)
                    / theory.l_am(L_i)}, [
            ("EF21 gQM", "ef21", {"gamma": "theory-qm"}),
            ("EF21 gAM", "ef21", {"gamma": "theory-am"}),
            ("EF21-W gAM", "ef21-w", {"gamma": "theory-am"}),
        ])


#: Clients of the LIBSVM figure (at most; every client gets at least 5 rows).
LIBSVM_CLIENTS, LIBSVM_CLIENTS_QUICK = 1000, 50


def libsvm_files(data_files=()) -> list:
    """The files of the ``libsvm`` figure: those given, else the ``*.txt`` files of
    ``../shared/data`` (relative to the working directory) when that folder exists."""
    if data_files:
        return [str(f) for f in data_files]
    folder = os.path.join(os.pardir, "shared", "data")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".txt"))


def _libsvm_cases(quick: bool, opts: dict):
    from ef21fast.methods import theory
    from ef21fast.methods.data import load_libsvm, split_clients
    from ef21fast.methods.problems import LogisticRegression

    files = libsvm_files(opts.get("data_files", ()))
    if not files:
        raise ValueError("the libsvm figure needs LIBSVM files: pass data_files (--data), "
                         "or run where ../shared/data holds *.txt files")
    for path in files:
        A, b = load_libsvm(path)
        base = os.path.splitext(os.path.basename(path))[0]
        n = opts.get("clients") or min(LIBSVM_CLIENTS_QUICK if quick else LIBSVM_CLIENTS,
                                       max(1, A.shape[0] // 5))
        if n > A.shape[0]:
            raise ValueError(f"clients = {n} is more than the {A.shape[0]} rows of {path}")
        for how in ("contiguous", "heterogeneous"):
            prob = LogisticRegression(split_clients(A, b, n, how=how, name=base), lam=0.1)
            L_i = np.asarray(prob.L_i)
            yield Case(f"{base}-{how}", prob, {"n": n, "L_var": theory.l_var(L_i),
                                               "L_QM/L_AM": theory.l_qm(L_i)
                                               / theory.l_am(L_i)}, [
                ("EF21 gQM", "ef21", {"gamma": "theory-qm"}),
                ("EF21 gAM", "ef21", {"gamma": "theory-am"}),
                ("EF21-W gAM", "ef21-w", {"gamma": "theory-am"}),
            ])


def _plot_saving(rows, out) -> None:
    """``saving.png``: bits(EF21 gQM) / bits(EF21 gAM) against L_var."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {}
    for r in rows:
        by.setdefault(r["case"], {})[r["run"]] = r
    pts = [(runs["EF21 gQM"]["facts"]["L_var"],
            runs["EF21 gQM"]["bits"] / runs["EF21 gAM"]["bits"])
           for runs in by.values() if "EF21 gAM" in runs
           and runs["EF21 gQM"]["bits"] and runs["EF21 gAM"]["bits"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    if pts:
        x, y = zip(*sorted(pts))
        ax.plot(x, y, "o-")
    ax.set_xscale("log")
    ax.set_xlabel(r"$L_{\rm var}$")
    ax.set_ylabel("bits EF21 gQM / bits EF21 gAM")
    ax.set_title("saving of the Reloaded step against heterogeneity")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "saving.png"), dpi=100)
    plt.close(fig)


#: Figure name -> (cases, relative tolerance, round cap, quick tolerance, quick cap,
#: note on the set-up, post-processing of the rows or None).
FIGURES = {
    "rare-features": (_rare_feature_cases, 1e-2, 10_000, 1e-2, 10_000,
                      "rare-features generator (this package's), linear regression, "
                      "owned-features regulariser, lam = 0; gRF = 1/(L + L_plus "
                      "sqrt(c/n) xi)", None),
    "sgd-pp": (_sgd_pp_cases, 1e-3, 20_000, 1e-2, 3_000,
               "synthetic heterogeneous logistic regression, lam = 0.1; minibatches "
               "of half the rows; SGD steps "
               "derived (docs/maths.rst, 'Stochastic gradients'): the SGD runs stop "
               "in a neighbourhood and may not reach the tolerance; PP with p = 0.5, "
               "independent participation, gamma_pp", None),
    "heterogeneity": (_heterogeneity_cases, 1e-3, 50_000, 1e-2, 10_000,
                      "this package's synthetic linear regression (n = 2000, d = 20, 5 "
                      "rows per client; quick n = 50), lam = 0.1, L_QM/L_AM swept by the "
                      "generator's spread; saving.png plots bits(gQM)/bits(gAM) against "
                      "L_var", _plot_saving),
    "libsvm": (_libsvm_cases, 1e-3, 20_000, 1e-2, 3_000,
               "LIBSVM files, logistic regression, lam = 0.1, at most 1000 clients "
               "(quick 50) with at least 5 rows each, contiguous split (the EF21 "
               "authors') and this package's heterogeneous split (rows sorted by norm)",
               None),
    "cloning": (_cloning_cases, 1e-4, 50_000, 1e-3, 10_000,
                "synthetic heterogeneous logistic regression, lam = 0.1; the cloned "
                "problem has N_i = ceil(L_i/L_AM) clones of client i, its bits are "
                "counted per clone", None),
}


def _plain(d: dict) -> dict:
    """``d`` with NumPy values as Python ones (for JSON)."""
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in d.items()}


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def run_figure(name, out, *, quick=False, quiet=False, backend=None, iters=None,
               threads=1, data_files=(), clients=None) -> dict:
    """Run the figure ``name`` and write its results under ``out``.

    Parameters
    ----------
    name : str
        One of :data:`FIGURES`.
    out : str
        Output folder (created).
    quick : bool
        Small problems, a loose tolerance and a low cap on the rounds.
    quiet : bool
        No progress bars and no log lines on stderr.
    backend : str or None
        Kernel backend.
    iters : int or None
        Cap on the rounds of every run (default: the figure's).
    threads : int or None
        Kernel threads during the runs (restored after; None: leave them as they
        are). The figures' problems are small, and one thread gives the same bits and
        avoids the cost of synchronising threads, large on a busy machine.
    data_files : sequence of str
        ``libsvm`` only: the LIBSVM files (default :func:`libsvm_files`).
    clients : int or None
        ``libsvm`` only: the number of clients (default ``min(1000, m // 5)``).

    Returns
    -------
    dict
        ``rows`` (one per run), ``note``, ``wall_s``, ``interrupted`` (None or which
        run was stopped).

    Raises
    ------
    ValueError
        An unknown ``name``, an ``iters`` below 1, ``libsvm`` without files or with
        more clients than rows; :class:`ef21fast.methods.data.DataError` for a
        malformed file.
    """
    from ef21fast.backends.registry import default_backend, get_num_threads, set_num_threads
    from ef21fast.methods.trace import atomic_write_json, atomic_write_text, versions

    if name not in FIGURES:
        raise ValueError(f"figure must be one of {tuple(FIGURES)}, got {name!r}")
    cases, rel_tol, cap, q_tol, q_cap, setup, post = FIGURES[name]
    rel_tol, cap = (q_tol, q_cap) if quick else (rel_tol, cap)
    if iters is not None:
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
        cap = iters
    t0 = time.perf_counter()
    backend = default_backend() if backend is None else backend
    os.makedirs(out, exist_ok=True)
    cases = list(cases(quick, {"data_files": data_files, "clients": clients}))
    prev = get_num_threads(backend)
    if threads is not None:
        set_num_threads(threads)
    try:
        rows, interrupted = _run_cases(name, cases, out, rel_tol, cap, quiet, backend)
    finally:
        if threads is not None:
            set_num_threads(prev)
    note = (f"Top1 from x0 = 0; bits per client to reach ||grad f||^2 <= {rel_tol:g} * "
            f"||grad f(x0)||^2 (32 bits per value); '>' = not reached within {cap} "
            f"rounds. Set-up: {setup}. Backend {backend}.")
    if interrupted:
        note += f" INTERRUPTED ({interrupted}): the table is partial."
    atomic_write_text(os.path.join(out, "table.md"),
                      format_rows(rows, markdown=True) + "\n\n" + note + "\n")
    atomic_write_text(os.path.join(out, "table.csv"), _rows_csv(rows))
    if post is not None:
        post(rows, out)
    wall = time.perf_counter() - t0
    atomic_write_json(os.path.join(out, "summary.json"), {
        "figure": name, "status": "interrupted" if interrupted else "completed",
        "quick": quick, "rel_tol": rel_tol, "cap": cap, "backend": backend,
        "rows": rows, "note": note, "wall_s": wall, "versions": versions()})
    return {"rows": rows, "note": note, "wall_s": wall, "interrupted": interrupted}


def _run_cases(name, cases, out, rel_tol, cap, quiet, backend):
    """Run every case of a figure; its rows and what was interrupted (or None)."""
    from ef21fast.methods import algorithms
    from ef21fast.methods.plots import plot_traces
    from ef21fast.methods.trace import TraceLog

    rows, interrupted = [], None
    for case in cases:
        prob = case.problem
        x0 = np.zeros(prob.d)
        g0 = np.asarray(prob.grad(x0), dtype=np.float64)
        tol = rel_tol * float(g0 @ g0)
        if not quiet:
            print(f"[{name}: {case.name}] n={prob.n} d={prob.d} tol={tol:.3e} "
                  + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in case.facts.items()), file=sys.stderr, flush=True)
        folder = os.path.join(out, case.name)
        os.makedirs(folder, exist_ok=True)
        traces = {}
        for label, method, kw in case.runs:
            path = os.path.join(folder, _slug(label) + ".csv")
            with TraceLog(path) as log:
                tr = algorithms.run(prob, method, k=1, iters=cap, tol=tol, x0=x0,
                                    backend=backend, progress=not quiet, seed=0,
                                    on_row=lambda t, b, g, f, s, x, log=log:
                                    log.row(t, b, g, f, s), **kw)
            tr.to_csv(path)
            traces[label] = tr
            rows.append({"case": case.name, "run": label, "method": method,
                         "gamma": tr.gamma, "rounds": int(tr.rounds), "status": tr.status,
                         "bits": tr.bits_to_reach(tol), "max_bits": float(tr.bits[-1]),
                         "final": float(tr.grad_norm_sq[-1]), "tol": tol,
                         "facts": _plain(case.facts), "extra": _plain(tr.extra)})
            if not quiet:
                print(f"  {label:<15} gamma={tr.gamma:.4g}: {tr.message}", file=sys.stderr,
                      flush=True)
            if tr.status == "interrupted":
                interrupted = f"{case.name}, {label}: {tr.message}"
                break
        plot_traces(traces, os.path.join(out, case.name + ".png"), tol=tol,
                    title=f"{name}: {case.name} (n={prob.n}, d={prob.d}, Top1)")
        if interrupted:
            break
    return rows, interrupted


HEADER = ["case", "facts", "run", "gamma", "rounds", "bits to tol", "final ||grad f||^2"]


def _facts(f: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in f.items())


def _cells(r) -> list:
    bits = f"{r['bits']:,.0f}" if r["bits"] is not None else f">{r['max_bits']:,.0f}"
    return [r["case"], _facts(r["facts"]), r["run"], f"{r['gamma']:.4g}",
            str(r["rounds"]), bits, f"{r['final']:.3e}"]


def format_rows(rows, markdown: bool = False) -> str:
    """A figure's table: one line per run (aligned text, or Markdown)."""
    body = [_cells(r) for r in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(HEADER) + " |",
                          "|" + "|".join("---" for _ in HEADER) + "|"]
                         + ["| " + " | ".join(c) + " |" for c in body])
    cols = [0, 2, 3, 4, 5, 6]  # the facts are long: the Markdown table has them
    widths = {j: max([len(HEADER[j])] + [len(c[j]) for c in body]) for j in cols}
    line = lambda cells: "  ".join(  # noqa: E731
        cells[j].ljust(widths[j]) if j < 3 else cells[j].rjust(widths[j]) for j in cols)
    return "\n".join([line(HEADER), line(["-" * widths.get(j, 0) for j in range(7)])]
                     + [line(c) for c in body])


def _rows_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case", "run", "method", "gamma", "rounds", "status", "bits_to_tol",
                "final_grad_norm_sq", "tol", "facts"])
    for r in rows:
        w.writerow([r["case"], r["run"], r["method"], repr(r["gamma"]), r["rounds"],
                    r["status"], "" if r["bits"] is None else repr(r["bits"]),
                    repr(r["final"]), repr(r["tol"]), _facts(r["facts"])])
    return buf.getvalue()
