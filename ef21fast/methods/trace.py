"""The record of one optimisation run, and atomic file writing.

A :class:`Trace` holds one row per recorded iterate ``x_t``, ``t = 0..T`` (row 0 is
the starting point ``x0``): the cumulative bits sent per client, ``||grad f(x_t)||^2``,
``f(x_t)`` and the wall time since the run started.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Trace", "TraceLog", "atomic_write_bytes", "atomic_write_json", "versions",
           "atomic_write_text", "STATUSES"]

#: Possible values of ``Trace.status``.
STATUSES = ("completed", "converged", "diverged", "interrupted")

#: Column order of :meth:`Trace.to_csv`.
CSV_COLUMNS = ("iter", "bits", "grad_norm_sq", "f", "time_s")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically.

    The bytes go to a temporary file in the same folder, flushed and synced, which then
    replaces ``path`` (``os.replace``): readers never see a partial file. On any error
    the temporary file is removed and the error propagates.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its folder must exist.
    data : bytes
        The whole content.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    text : str
        The whole content, written as UTF-8.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    """:func:`atomic_write_text` of ``obj`` as indented JSON (one trailing newline).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    obj : object
        Anything ``json.dumps`` accepts.
    """
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def csv_header() -> str:
    """The header line of a trace CSV, newline included."""
    return ",".join(CSV_COLUMNS) + "\n"


def csv_row(t: int, bits: float, grad_norm_sq: float, f: float, time_s: float) -> str:
    """One trace CSV line, newline included; floats in full precision (``repr``)."""
    return f"{int(t)},{float(bits)!r},{float(grad_norm_sq)!r},{float(f)!r},{float(time_s)!r}\n"


class TraceLog:
    """A trace CSV written row by row while a run goes on, so that nothing is lost.

    The header and every row go to the file in one ``os.write`` each, straight to the
    operating system (no user-space buffer): whenever the process stops, even by
    ``SIGKILL``, the file is a valid CSV of the rows logged so far (a signal handler in
    Python runs between two writes, never inside one). At the end of a run the caller
    replaces the file atomically with :meth:`Trace.to_csv`, which writes the same rows.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; created or truncated.

    Notes
    -----
    Use as a context manager, or call :meth:`close`. :meth:`row` has the signature of
    the ``on_row`` hook of :func:`ef21fast.methods.algorithms.run` minus the iterate.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.rows = 0
        self._write(csv_header())

    def _write(self, text: str) -> None:
        data = text.encode("ascii")
        while data:  # a regular file takes it whole; the loop is for completeness
            data = data[os.write(self._fd, data):]

    def row(self, t, bits, grad_norm_sq, f, time_s) -> None:
        """Append one row (the columns of :meth:`Trace.to_csv`).

        Raises
        ------
        ValueError
            If the log is closed.
        """
        if self._fd < 0:
            raise ValueError(f"TraceLog {self.path} is closed")
        self._write(csv_row(t, bits, grad_norm_sq, f, time_s))
        self.rows += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@dataclass
class Trace:
    """The trace of one run of :func:`ef21fast.methods.algorithms.run`.

    Attributes
    ----------
    iter : ndarray of int64, shape (T+1,)
        Round numbers ``0..T``; row 0 is ``x0``.
    bits : ndarray of float64, shape (T+1,)
        Cumulative bits sent from a client to the server up to and including round
        ``t`` (average over clients when not all clients send, e.g. EF21-PP); 0 at row 0.
    grad_norm_sq : ndarray of float64, shape (T+1,)
        ``||grad f(x_t)||^2``.
    f : ndarray of float64, shape (T+1,)
        ``f(x_t)``.
    time_s : ndarray of float64, shape (T+1,)
        Wall time in seconds since the run started (set-up included).
    x : ndarray of float64, shape (d,)
        The iterate of the last row.
    status : str
        ``"completed"`` (all rounds ran), ``"converged"`` (``||grad f||^2 < tol``),
        ``"diverged"`` (a non-finite iterate, gradient or loss appeared; the rows
        before it are kept) or ``"interrupted"`` (Ctrl-C or the callback asked to stop).
    message : str
        One human-readable line about how the run ended.
    method, gamma, gamma_rule, k, n, d, backend, bits_mode, seed
        What was run: ``gamma`` is the step size used, ``gamma_rule`` how it was chosen.
    extra : dict
        Method-specific facts (participation, batch sizes, clone counts...).
    """

    iter: np.ndarray
    bits: np.ndarray
    grad_norm_sq: np.ndarray
    f: np.ndarray
    time_s: np.ndarray
    x: np.ndarray
    status: str
    message: str
    method: str
    gamma: float
    gamma_rule: str = ""
    k: int = 0
    n: int = 0
    d: int = 0
    backend: str = ""
    bits_mode: str = "values"
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.iter)

    @property
    def rounds(self) -> int:
        """Number of rounds run (the last ``iter``)."""
        return int(self.iter[-1]) if len(self.iter) else 0

    def bits_to_reach(self, tol: float) -> float | None:
        """Bits per client at the first row with ``grad_norm_sq <= tol``.

        Parameters
        ----------
        tol : float
            The threshold on ``||grad f||^2``.

        Returns
        -------
        float or None
            None if no row reaches ``tol``.
        """
        hit = np.flatnonzero(self.grad_norm_sq <= tol)
        return float(self.bits[hit[0]]) if hit.size else None

    def to_csv(self, path=None) -> str:
        """The trace as CSV (columns iter,bits,grad_norm_sq,f,time_s), full precision.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Where to write it (atomically).

        Returns
        -------
        str
            The CSV text, returned whether or not it was written.
        """
        buf = io.StringIO()
        buf.write(csv_header())
        cols = (self.bits.tolist(), self.grad_norm_sq.tolist(), self.f.tolist(),
                self.time_s.tolist())
        for row in zip(self.iter.tolist(), *cols):
            buf.write(csv_row(*row))
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_dict(self, arrays: bool = True) -> dict:
        """A JSON-serialisable dict of the run.

        Parameters
        ----------
        arrays : bool
            False leaves out the per-row arrays and the iterate (a summary).

        Returns
        -------
        dict
        """
        last = len(self.iter) - 1
        out = {
            "method": self.method,
            "gamma": float(self.gamma),
            "gamma_rule": self.gamma_rule,
            "k": int(self.k),
            "n": int(self.n),
            "d": int(self.d),
            "backend": self.backend,
            "bits_mode": self.bits_mode,
            "seed": self.seed,
            "status": self.status,
            "message": self.message,
            "rounds": self.rounds,
            "final_bits": float(self.bits[last]) if last >= 0 else 0.0,
            "final_grad_norm_sq": float(self.grad_norm_sq[last]) if last >= 0 else None,
            "final_f": float(self.f[last]) if last >= 0 else None,
            "time_s": float(self.time_s[last]) if last >= 0 else 0.0,
            "extra": _jsonable(self.extra),
        }
        if arrays:
            out.update({
                "iter": self.iter.tolist(),
                "bits": self.bits.tolist(),
                "grad_norm_sq": self.grad_norm_sq.tolist(),
                "f": self.f.tolist(),
                "time_s": self.time_s.tolist(),
                "x": self.x.tolist(),
            })
        return out



def versions() -> dict:
    """Versions of the software that produced a result (for summaries).

    Returns
    -------
    dict
        ``{"ef21fast": ..., "numpy": ..., "scipy": ..., "python": ...}``.
    """
    import platform

    import numpy
    import scipy

    from ef21fast._version import __version__

    return {"ef21fast": __version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
