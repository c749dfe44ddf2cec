"""Plots of traces, as in the papers: ||grad f(x_t)||^2 (log scale) against bits per client.

matplotlib is imported only when a plot is drawn, and only through its object-oriented
API with the Agg canvas (no pyplot, no global backend switch, no display needed).
Files are written atomically.
"""

from __future__ import annotations

import io

import numpy as np

from ef21fast.methods.trace import atomic_write_bytes

__all__ = ["plot_traces"]


def plot_traces(traces, path, *, title: str = "", tol: float | None = None,
                xlabel: str = "bits sent from a client to the server") -> None:
    """Save a PNG with one line per trace: ``||grad f||^2`` (log) against bits.

    Parameters
    ----------
    traces : dict of str to Trace
        Label -> trace (lines drawn in this order).
    path : str or path-like
        Output PNG file, written atomically.
    title : str
        Figure title.
    tol : float or None
        Draws the tolerance as a dotted horizontal line.
    xlabel : str
        Label of the x-axis.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with np.errstate(all="ignore"):  # huge values before a divergence: no warnings
        _draw(traces, path, title, tol, xlabel, Figure, FigureCanvasAgg)


def _draw(traces, path, title, tol, xlabel, Figure, FigureCanvasAgg):
    fig = Figure(figsize=(6.4, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    styles = ("-", "--", "-.", ":")  # identical curves (EF21 / EF21-W) stay visible
    for j, (label, tr) in enumerate(traces.items()):
        y = np.asarray(tr.grad_norm_sq, dtype=np.float64)
        x = np.asarray(tr.bits, dtype=np.float64)
        keep = np.isfinite(y) & (y > 0)  # log scale: only positive values
        if not keep.any():
            continue
        suffix = "" if tr.status in ("completed", "converged") else f" ({tr.status})"
        ax.plot(x[keep], y[keep], label=f"{label}{suffix}", linewidth=1.4,
                linestyle=styles[j % len(styles)])
        drawn += 1
    if drawn:
        ax.set_yscale("log")
    if tol is not None and tol > 0 and drawn:
        ax.axhline(tol, color="grey", linestyle=":", linewidth=1, label="tolerance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$\|\nabla f(x_t)\|^2$")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
