"""``ef21fast reproduce``: the comparison of "Error Feedback Reloaded" in seconds.

On heterogeneous problems (built-in synthetic logistic and linear regression, and any
LIBSVM files given, split heterogeneously) it runs, all with Top1 from ``x0 = 0``:

* EF21 with the original step size ``gamma_QM = 1/(L + L_QM xi(alpha))``,
* EF21 with the Reloaded step size ``gamma_AM = 1/(L + L_AM xi(alpha))``,
* EF21-W with ``gamma_AM`` (same iterates as the previous line, up to rounding: TopK
  is positively homogeneous),
* EF14 (classic error feedback) at ``gamma_AM`` (a heuristic: no theory step for it),

until ``||grad f(x_t)||^2 <= tol = rel_tol * ||grad f(x0)||^2`` or a cap on the rounds,
and reports the bits per client each needed (32 bits per sent value, as the EF21
code), the speed-up ``bits(gamma_QM) / bits(gamma_AM)``, and saves one plot per
problem (||grad f||^2, log scale, against bits per client) and the CSV traces.
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

__all__ = ["reproduce", "format_table", "SYNTHETIC", "COMPARISON"]


@dataclass(frozen=True)
class ProblemSpec:
    """A built-in synthetic problem of the comparison."""

    name: str
    kind: str  # "logreg" | "linreg"
    synthetic: dict = field(default_factory=dict)  # make_synthetic keyword arguments


#: The built-in problems (full run): 200 clients whose L_i are set by the generator so
#: that L_QM / L_AM = 5 (L_AM = 1.2), d = 50, 20 rows per client.
SYNTHETIC = (
    ProblemSpec("synthetic-logreg", "logreg",
                dict(n=200, d=50, m_per_client=20, spread=5.0, seed=0)),
    ProblemSpec("synthetic-linreg", "linreg",
                dict(n=200, d=50, m_per_client=20, spread=5.0, seed=1)),
)

#: The built-in problems for ``--quick`` (L_QM / L_AM = 3).
SYNTHETIC_QUICK = (
    ProblemSpec("synthetic-logreg", "logreg",
                dict(n=20, d=10, m_per_client=10, spread=3.0, seed=0)),
    ProblemSpec("synthetic-linreg", "linreg",
                dict(n=20, d=10, m_per_client=10, spread=3.0, seed=1)),
)

#: (label, method, step-size rule) of the comparison, in table order.
COMPARISON = (
    ("EF21 gQM", "ef21", "theory-qm"),
    ("EF21 gAM", "ef21", "theory-am"),
    ("EF21-W gAM", "ef21-w", "theory-am"),
    ("EF14 gAM", "ef14", "theory-am"),
)

REL_TOL = 1e-5
REL_TOL_QUICK = 1e-3
MAX_ITERS = 200_000
MAX_ITERS_QUICK = 20_000
#: EF14 gets at most this many times the rounds of the slowest EF21 run.
EF14_ROUNDS_FACTOR = 2
LIBSVM_CLIENTS = 100
LAM = 0.1


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _log(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _problems(data_files, clients, quick):
    """Yield (name, problem, description) for every problem of the comparison."""
    from ef21fast.methods import data as D
    from ef21fast.methods import problems as P

    for spec in (SYNTHETIC_QUICK if quick else SYNTHETIC):
        cd = D.make_synthetic(kind=spec.kind, **spec.synthetic)
        cls = P.LogisticRegression if spec.kind == "logreg" else P.LinearRegression
        yield spec.name, cls(cd, lam=LAM), "synthetic, heterogeneous clients"
    for path in data_files:
        A, b = D.load_libsvm(path)
        m = A.shape[0]
        n = clients if clients is not None else min(LIBSVM_CLIENTS, max(1, m // 10))
        if n > m:
            raise ValueError(f"--clients {n} is more than the {m} rows of {path}")
        base = os.path.splitext(os.path.basename(path))[0]
        cd = D.split_clients(A, b, n, how="heterogeneous", name=base)
        yield f"{base}-logreg", P.LogisticRegression(cd, lam=LAM), \
            "LIBSVM, heterogeneous split"


def reproduce(out, *, data_files=(), clients=None, quick=False, quiet=False,
              backend=None, iters=None) -> dict:
    """Run the comparison and write its results under ``out``.

    Parameters
    ----------
    out : str
        Output folder (created): ``table.csv``, ``table.md``, ``summary.json``,
        ``<problem>.png`` and ``<problem>/<method>.csv`` for every problem.
    data_files : sequence of str
        LIBSVM files to add (logistic regression, heterogeneous split).
    clients : int or None
        Clients for the LIBSVM files (default ``min(100, m // 10)``).
    quick : bool
        Small synthetic problems, ``rel_tol = 1e-3``, at most 20000 rounds.
    quiet : bool
        No progress bars and no log lines on stderr.
    backend : str or None
        Kernel backend.
    iters : int or None
        Cap on the rounds of every run (default 200000, quick 20000).

    Returns
    -------
    dict
        ``rows`` (one dict per problem, as in the table), ``note``, ``wall_s``,
        ``interrupted`` (None, or which run Ctrl-C / SIGTERM stopped).

    Notes
    -----
    Nothing computed is lost: every run's CSV is streamed row by row while it runs
    (:class:`ef21fast.methods.trace.TraceLog`) and ``summary.json`` says ``"running"`` until the
    end. Ctrl-C (or SIGTERM under ``ef21fast reproduce``) stops the comparison at the
    end of the current round; the table, plots and summary are then written for what
    ran, marked ``"interrupted"``.
    """
    from ef21fast.methods import algorithms, theory
    from ef21fast.backends.registry import default_backend
    from ef21fast.methods.plots import plot_traces
    from ef21fast.methods.trace import TraceLog, atomic_write_json, atomic_write_text, versions

    t_start = time.perf_counter()
    backend = default_backend() if backend is None else backend
    rel_tol = REL_TOL_QUICK if quick else REL_TOL
    cap = int(iters) if iters is not None else (MAX_ITERS_QUICK if quick else MAX_ITERS)
    if cap < 1:
        raise ValueError(f"--iters must be at least 1, got {cap}")
    # Load and check every file before the first run (bad input fails fast).
    problems = list(_problems(data_files, clients, quick))
    os.makedirs(out, exist_ok=True)
    rows = []
    interrupted = None

    def write_summary(status: str, note: str) -> None:
        summary = {"status": status, "interrupted": interrupted, "rows": rows,
                   "rel_tol": rel_tol, "cap": cap, "quick": quick, "backend": backend,
                   "versions": versions(), "wall_s": time.perf_counter() - t_start,
                   "methods": [list(c) for c in COMPARISON], "note": note}
        atomic_write_json(os.path.join(out, "summary.json"), summary)

    # Rewritten after every problem: if the process is killed, the summary says so.
    running_note = (f"running in process {os.getpid()}; if that process is gone, it was "
                    f"killed: 'rows' are the finished problems, and every run's CSV "
                    f"holds its completed rounds")
    write_summary("running", running_note)
    for name, problem, desc in problems:
        L_i = np.asarray(problem.L_i, dtype=np.float64)
        lqm, lam_ = theory.l_qm(L_i), theory.l_am(L_i)
        x0 = np.zeros(problem.d)
        g0 = np.asarray(problem.grad(x0), dtype=np.float64)
        tol = rel_tol * float(g0 @ g0)
        _log(quiet, f"[{name}] n={problem.n} d={problem.d} L={problem.L:.4g} "
                    f"L_QM={lqm:.4g} L_AM={lam_:.4g} (ratio {lqm / lam_:.3f}) "
                    f"tol={tol:.3e}")
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        traces, row = {}, {
            "problem": name, "kind": desc, "n": int(problem.n), "d": int(problem.d),
            "L": float(problem.L), "L_QM": lqm, "L_AM": lam_, "ratio": lqm / lam_,
            "tol": tol, "bits": {}, "rounds": {}, "status": {}, "gamma": {},
        }
        ef21_rounds = 0
        for label, method, rule in COMPARISON:
            run_cap = cap
            if method == "ef14" and ef21_rounds:
                run_cap = min(cap, EF14_ROUNDS_FACTOR * ef21_rounds)
            csv_path = os.path.join(folder, _slug(label) + ".csv")
            with TraceLog(csv_path) as log:
                tr = algorithms.run(problem, method, k=1, gamma=rule, iters=run_cap,
                                    tol=tol, x0=x0, backend=backend, progress=not quiet,
                                    on_row=lambda t, b, g, f, s, x, log=log:
                                    log.row(t, b, g, f, s))
            if method != "ef14":
                ef21_rounds = max(ef21_rounds, tr.rounds)
            traces[label] = tr
            tr.to_csv(csv_path)
            reached = tr.bits_to_reach(tol)
            row["bits"][label] = reached
            row["rounds"][label] = tr.rounds
            row["status"][label] = tr.status
            row["gamma"][label] = tr.gamma
            row.setdefault("max_bits", {})[label] = float(tr.bits[-1])
            _log(quiet, f"  {label:<11} gamma={tr.gamma:.4g}: {tr.message} "
                        f"({tr.time_s[-1]:.2f} s)")
            if tr.status == "interrupted":  # Ctrl-C / kill: stop everything, keep all
                interrupted = f"{name}, {label}: {tr.message}"
                break
        qm, am = row["bits"].get("EF21 gQM"), row["bits"].get("EF21 gAM")
        row["speedup"] = (qm / am) if (qm and am) else None
        plot_traces(traces, os.path.join(out, name + ".png"), tol=tol,
                    title=f"{name}: n={problem.n}, d={problem.d}, Top1, "
                          f"L_QM/L_AM={lqm / lam_:.2f}")
        rows.append(row)
        if interrupted:
            break
        write_summary("running", running_note)

    wall = time.perf_counter() - t_start
    note = (f"Top1 from x0 = 0; bits per client to reach ||grad f||^2 <= {rel_tol:g} * "
            f"||grad f(x0)||^2 (32 bits per sent value); '>' = not reached within the "
            f"cap; speed-up = bits(EF21 gQM) / bits(EF21 gAM). Backend {backend}.")
    if interrupted:
        note += f" INTERRUPTED ({interrupted}): the table is partial."
    atomic_write_text(os.path.join(out, "table.md"), format_table(rows, markdown=True)
                      + "\n\n" + note + "\n")
    atomic_write_text(os.path.join(out, "table.csv"), _table_csv(rows))
    write_summary("interrupted" if interrupted else "completed", note)
    return {"rows": rows, "note": note, "wall_s": wall, "interrupted": interrupted}


def _bits_cell(row, label) -> str:
    if label not in row["bits"]:  # not run: the comparison was interrupted before it
        return "-"
    b = row["bits"][label]
    if b is not None:
        return f"{b:,.0f}"
    return f">{row['max_bits'][label]:,.0f}"


def _cells(row) -> list[str]:
    sp = row["speedup"]
    return ([row["problem"], f"{row['L_QM']:.4g}", f"{row['L_AM']:.4g}",
             f"{row['ratio']:.2f}"]
            + [_bits_cell(row, label) for label, _, _ in COMPARISON]
            + ["-" if sp is None else f"{sp:.2f}x"])


HEADER = (["problem", "L_QM", "L_AM", "L_QM/L_AM"]
          + [f"bits {label}" for label, _, _ in COMPARISON] + ["speed-up gAM/gQM"])


def format_table(rows, markdown: bool = False) -> str:
    """The comparison as an aligned text table (or a Markdown table)."""
    body = [_cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |",
                 "|" + "|".join("---" for _ in HEADER) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[j]) for c in body)) if body else len(h)
              for j, h in enumerate(HEADER)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(HEADER), fmt(["-" * w for w in widths])] + [fmt(c) for c in body])


def _table_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["problem", "n", "d", "L", "L_QM", "L_AM", "ratio", "tol"]
               + [f"bits {label}" for label, _, _ in COMPARISON]
               + [f"rounds {label}" for label, _, _ in COMPARISON] + ["speedup"])
    for r in rows:
        w.writerow([r["problem"], r["n"], r["d"], repr(r["L"]), repr(r["L_QM"]),
                    repr(r["L_AM"]), repr(r["ratio"]), repr(r["tol"])]
                   + ["" if r["bits"].get(lab) is None else repr(r["bits"][lab])
                      for lab, _, _ in COMPARISON]
                   + [r["rounds"].get(lab, "") for lab, _, _ in COMPARISON]
                   + ["" if r["speedup"] is None else repr(r["speedup"])])
    return buf.getvalue()
