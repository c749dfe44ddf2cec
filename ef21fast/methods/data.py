"""Data for the experiments: LIBSVM files, splits into clients, a synthetic generator.

* :func:`load_libsvm` reads a LIBSVM/svmlight file with scikit-learn's reader and maps
  the two labels to -1/+1 as the EF21 authors' code does.
* :func:`split_clients` splits the rows among n clients: ``contiguous`` (the EF21
  authors' split), ``label-sorted``, ``heterogeneous`` (sorted by row norm) or ``random``.
* :func:`make_synthetic` builds a seeded problem whose L_QM / L_AM is prescribed: the
  package's default data, no download needed.
* :class:`ClientData` holds the result: the rows, the labels, and where each client's
  rows start; :func:`with_layout` stores its rows dense or CSR, by density
  (:func:`choose_layout`).

The splits and the generator, and which of their rules are the package's own choices,
are described in docs/maths.rst, "Problems".

scipy and scikit-learn (the ``experiments`` extra) are imported on first use.
"""

from __future__ import annotations

import bz2
import gzip
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "ClientData",
    "load_libsvm",
    "split_clients",
    "make_synthetic",
    "feature_ownership",
    "SPLITS",
    "MAX_FEATURES",
    "LAYOUTS",
    "DENSE_MIN_DENSITY",
    "choose_layout",
    "with_layout",
]

#: Split strategies accepted by :func:`split_clients`.
SPLITS = ("contiguous", "label-sorted", "heterogeneous", "random")

#: Layouts of the rows accepted by :func:`with_layout` (``ef21fast run --layout``).
LAYOUTS = ("auto", "dense", "csr")

#: ``layout="auto"`` stores the rows dense from this fraction of stored values on.
#: Measured with the fused C oracles (one logistic gradient pass and its loss, 1 thread,
#: n = 20 and 1000): CSR faster on a9a (11% stored, 3.0-3.3x), mushrooms (19%, 1.2x),
#: w8a (3.9%, 9-16x); dense faster or equal on phishing (44%, 0.6-1.0x). A CSR pass
#: costs about 4 times a dense one per stored value (a scattered read and write
#: against a vector operation), and binary files skip the stored values.
DENSE_MIN_DENSITY = 0.3

#: Default cap on the number of features :func:`load_libsvm` accepts (an index above it
#: is reported as a malformed line rather than allocating a gigantic matrix).
MAX_FEATURES = 2**27


class DataError(ValueError):
    """Malformed data; the message names the file and the line number when known."""


def _is_csr(A) -> bool:
    import scipy.sparse as sp

    return sp.issparse(A) and A.format == "csr"


@dataclass(frozen=True, eq=False)
class ClientData:
    """Rows of a data set split among n clients.

    Attributes
    ----------
    A : ndarray, shape (m, d), float64, or scipy.sparse CSR matrix (m, d), float64
        The feature rows; client i holds rows ``offsets[i]:offsets[i+1]``.
    b : ndarray, shape (m,), float64
        Labels (-1/+1 for classification) or targets.
    offsets : ndarray, shape (n+1,), int64
        ``offsets[0] = 0``, ``offsets[-1] = m``, strictly increasing (every client
        holds at least one row).
    name : str
        A label for reports.

    Raises
    ------
    ValueError
        On construction, if the shapes, dtypes or offsets are inconsistent.
    """

    A: object
    b: np.ndarray
    offsets: np.ndarray
    name: str = ""

    def __post_init__(self):
        A = self.A
        if _is_csr(A):
            if A.dtype != np.float64:
                raise ValueError(f"A must be float64, got {A.dtype}")
        elif isinstance(A, np.ndarray):
            if A.ndim != 2 or A.dtype != np.float64:
                raise ValueError(f"A must be a 2-D float64 array, got {A.ndim}-D {A.dtype}")
        else:
            raise ValueError(f"A must be a 2-D float64 ndarray or a scipy.sparse CSR "
                             f"matrix, got {type(A).__name__}")
        m = A.shape[0]
        b = np.asarray(self.b)
        if b.shape != (m,) or b.dtype != np.float64:
            raise ValueError(f"b must be a float64 array of shape ({m},), "
                             f"got {b.dtype} {b.shape}")
        off = np.asarray(self.offsets)
        if off.ndim != 1 or off.size < 2 or off.dtype.kind not in "iu":
            raise ValueError("offsets must be a 1-D integer array of n+1 >= 2 entries")
        off = off.astype(np.int64)
        if off[0] != 0 or off[-1] != m or np.any(np.diff(off) <= 0):
            raise ValueError(f"offsets must start at 0, end at m = {m} and be strictly "
                             f"increasing (every client non-empty)")
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "offsets", off)

    @property
    def n(self) -> int:
        """Number of clients."""
        return int(self.offsets.size - 1)

    @property
    def m(self) -> int:
        """Number of rows (samples) in all."""
        return int(self.A.shape[0])

    @property
    def d(self) -> int:
        """Number of features."""
        return int(self.A.shape[1])

    @property
    def m_i(self) -> np.ndarray:
        """Rows per client, shape (n,), int64."""
        return np.diff(self.offsets)

    @property
    def is_sparse(self) -> bool:
        """Whether A is a scipy.sparse CSR matrix."""
        return _is_csr(self.A)

    def client(self, i: int):
        """Client i's rows and labels ``(A_i, b_i)`` (views where possible)."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.A[lo:hi], self.b[lo:hi]

    def dense(self) -> "ClientData":
        """The same split with A as a dense C-contiguous float64 array."""
        A = self.A.toarray() if self.is_sparse else self.A
        return ClientData(np.ascontiguousarray(A), self.b, self.offsets, self.name)

    def sparse(self) -> "ClientData":
        """The same split with A as a canonical scipy.sparse CSR matrix."""
        import scipy.sparse as sp

        A = sp.csr_matrix(self.A, dtype=np.float64)
        A.sum_duplicates()
        A.sort_indices()
        return ClientData(A, self.b, self.offsets, self.name)


def choose_layout(A, layout: str = "auto") -> str:
    """The layout :func:`with_layout` gives the rows ``A``.

    Parameters
    ----------
    A : ndarray (m, d) or scipy.sparse matrix (m, d)
    layout : {"auto", "dense", "csr"}
        ``"auto"``: ``"dense"`` when at least :data:`DENSE_MIN_DENSITY` of the m d
        entries are stored (non-zeros of a dense array), else ``"csr"``; the others
        are returned as given.

    Returns
    -------
    {"dense", "csr"}

    Raises
    ------
    ValueError
        On an unknown ``layout``.
    """
    import scipy.sparse as sp

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout != "auto":
        return layout
    m, d = A.shape
    stored = A.nnz if sp.issparse(A) else np.count_nonzero(A)
    return "dense" if m * d and stored >= DENSE_MIN_DENSITY * m * d else "csr"


def with_layout(data: ClientData, layout: str = "auto") -> ClientData:
    """``data`` with its rows dense or CSR (:func:`choose_layout`): the same values,
    split and name; ``data`` itself when already so.

    Parameters
    ----------
    data : ClientData
    layout : {"auto", "dense", "csr"}

    Returns
    -------
    ClientData

    Raises
    ------
    ValueError
        On an unknown ``layout``.
    TypeError
        If ``data`` is not a ClientData.
    """
    if not isinstance(data, ClientData):
        raise TypeError(f"data must be a ClientData, got {type(data).__name__}")
    want = choose_layout(data.A, layout)
    if want == "dense":
        return data.dense() if data.is_sparse else data
    return data if data.is_sparse else data.sparse()


# ------------------------------------------------------------------------- LIBSVM

def _open_binary(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _bad_line(path: Path, max_features: int):
    """Scan the file; return ``(line_number, reason)`` of the first bad line, or None.

    Only run when the fast reader failed or its result failed a check, so it can be
    plain Python.
    """
    try:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.split(b"#", 1)[0].strip()
                if not line:
                    continue
                tokens = line.split()
                try:
                    label = float(tokens[0])
                except ValueError:
                    return lineno, f"label {tokens[0][:40]!r} is not a number"
                if not math.isfinite(label):
                    return lineno, f"label {tokens[0][:40]!r} is not finite"
                prev = 0
                for t, tok in enumerate(tokens[1:]):
                    idx, sep, val = tok.partition(b":")
                    if t == 0 and idx == b"qid":
                        continue
                    if not sep:
                        return lineno, f"token {tok[:40]!r} is not index:value"
                    try:
                        j = int(idx)
                    except ValueError:
                        return lineno, f"index {idx[:40]!r} is not an integer"
                    if j < 1:
                        return lineno, (f"index {j} < 1 (LIBSVM feature indices are "
                                        f"1-based)")
                    if j > max_features:
                        return lineno, (f"index {j} exceeds max_features = "
                                        f"{max_features}")
                    if j <= prev:
                        return lineno, "feature indices are not strictly increasing"
                    prev = j
                    try:
                        v = float(val)
                    except ValueError:
                        return lineno, f"value {val[:40]!r} is not a number"
                    if not math.isfinite(v):
                        return lineno, f"value {val[:40]!r} is not finite"
    except (OSError, EOFError, ValueError) as exc:  # e.g. a corrupt .gz
        return 0, f"cannot be read: {exc}"
    return None


def _data_error(path: Path, max_features: int, fallback: str) -> DataError:
    found = _bad_line(path, max_features)
    if found is None:
        return DataError(f"{path}: {fallback}")
    lineno, reason = found
    if lineno == 0:
        return DataError(f"{path}: {reason}")
    return DataError(f"{path}, line {lineno}: {reason}")


def load_libsvm(path, *, max_features: int = MAX_FEATURES):
    """Read a LIBSVM (svmlight) file for binary classification.

    Uses :func:`sklearn.datasets.load_svmlight_file` with ``zero_based=False`` (LIBSVM
    indices are 1-based; an index 0 is an error, not a hint to shift). The labels are
    mapped as in the EF21 authors' code: the larger of the two distinct labels becomes
    +1, the smaller -1 (a file with a single label keeps its sign: +1 if positive, else
    -1). ``.gz`` and ``.bz2`` files are decompressed.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_features : int, optional
        Largest feature index accepted (default :data:`MAX_FEATURES` = 2**27).

    Returns
    -------
    A : scipy.sparse.csr_matrix, shape (m, d), float64
        Canonical (sorted indices, no duplicates); d is the largest index seen.
    b : ndarray, shape (m,), float64
        Labels in {-1.0, +1.0}.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DataError
        If the file is empty (no data lines), a line is malformed (not
        ``label index:value ...``, index < 1 or above ``max_features``, indices not
        increasing, non-finite numbers, binary garbage), or it has more than two
        distinct labels. The message names the file and, when found, the line number.
    """
    from sklearn.datasets import load_svmlight_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such LIBSVM file: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, not a LIBSVM file")
    try:
        A, y = load_svmlight_file(str(p), zero_based=False, dtype=np.float64)
    except (ValueError, OverflowError, TypeError, UnicodeDecodeError, EOFError,
            OSError) as exc:
        raise _data_error(p, max_features, f"malformed LIBSVM data ({exc})") from exc
    if A.shape[0] == 0:
        raise DataError(f"{p}: empty file (no data lines)")
    if (A.shape[1] > max_features or not np.all(np.isfinite(A.data))
            or not np.all(np.isfinite(y))):
        raise _data_error(p, max_features,
                          "an index above max_features or a non-finite number")
    labels = np.unique(y)
    if labels.size > 2:
        shown = ", ".join(f"{v:g}" for v in labels[:5])
        raise DataError(f"{p}: {labels.size} distinct labels ({shown}"
                        f"{', ...' if labels.size > 5 else ''}); binary "
                        f"classification needs two")
    if labels.size == 2:
        b = np.where(y == labels[1], 1.0, -1.0)
    else:
        b = np.full(y.shape, 1.0 if labels[0] > 0 else -1.0)
    A = A.tocsr().astype(np.float64, copy=False)  # the reader's arrays, not a copy
    if A.indices.dtype != np.int32 and max(A.nnz, A.shape[1]) < 2**31:
        # the reader's int64 indices: half the bytes, and so half the oracle's reads
        A.indices, A.indptr = A.indices.astype(np.int32), A.indptr.astype(np.int32)
    A.sum_duplicates()
    A.sort_indices()
    return A, b


# -------------------------------------------------------------------------- splits

def _contiguous_offsets(m: int, n: int) -> np.ndarray:
    size = m // n
    off = np.arange(n + 1, dtype=np.int64) * size
    off[-1] = m
    return off


def _row_sq_norms(A) -> np.ndarray:
    if _is_csr(A):
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        return np.bincount(rows, weights=A.data * A.data, minlength=A.shape[0])
    return np.einsum("ij,ij->i", A, A)


def split_clients(A, b, n, how="contiguous", seed=None, name=""):
    """Split the rows of (A, b) among n clients.

    ``how``:

    * ``"contiguous"`` -- the EF21 authors' split: clients 0..n-2 get ``m // n``
      consecutive rows each, the last client the rest; no shuffling.
    * ``"label-sorted"`` -- rows stably sorted by label, then contiguous.
    * ``"heterogeneous"`` -- rows stably sorted by squared norm (ascending), then
      contiguous, so the L_i differ (a rule of this package, not of the papers:
      docs/maths.rst, "Problems").
    * ``"random"`` -- rows shuffled with ``numpy.random.default_rng(seed)``, then
      contiguous.

    Parameters
    ----------
    A : ndarray (m, d) or scipy.sparse matrix (m, d)
        Converted to float64 (sparse input becomes canonical CSR).
    b : array_like, shape (m,)
    n : int
        Number of clients, ``1 <= n <= m``.
    how : str
        One of :data:`SPLITS`.
    seed : int or None
        Only used by ``"random"``.
    name : str

    Returns
    -------
    ClientData

    Raises
    ------
    ValueError
        If n is not an integer in [1, m], ``how`` is unknown, or the shapes disagree.
    """
    import scipy.sparse as sp

    if sp.issparse(A):
        A = sp.csr_matrix(A, dtype=np.float64)
        A.sum_duplicates()
        A.sort_indices()
    else:
        A = np.ascontiguousarray(A, dtype=np.float64)
        if A.ndim != 2:
            raise ValueError(f"A must be 2-D, got shape {A.shape}")
    b = np.asarray(b, dtype=np.float64)
    m = A.shape[0]
    if b.shape != (m,):
        raise ValueError(f"b must have shape ({m},) to match A, got {b.shape}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n (number of clients) must be an integer, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"n (number of clients) must be >= 1, got {n}")
    if n > m:
        raise ValueError(f"cannot split {m} rows among n = {n} clients: every client "
                         f"needs at least one row (n must be <= m)")
    if how == "contiguous":
        perm = None
    elif how == "label-sorted":
        perm = np.argsort(b, kind="stable")
    elif how == "heterogeneous":
        perm = np.argsort(_row_sq_norms(A), kind="stable")
    elif how == "random":
        perm = np.random.default_rng(seed).permutation(m)
    else:
        raise ValueError(f"unknown split {how!r}; expected one of {', '.join(SPLITS)}")
    if perm is not None:
        A = A[perm]
        b = b[perm]
    return ClientData(A, np.ascontiguousarray(b), _contiguous_offsets(m, n), name)


# ----------------------------------------------------------------------- synthetic

_FLOOR = 1e-6  # relative floor of the data part of the lightest client


def _profile(n: int, q: float) -> np.ndarray:
    """Weights ``w_i ∝ t_i^q + floor`` with ``t_i = (i+1)/n``, normalised to mean 1."""
    logt = np.log(np.arange(1, n + 1, dtype=np.float64) / n)
    w = np.exp(q * (logt - logt.max()))
    w = w / w.mean()
    return (w + _FLOOR) / (1.0 + _FLOOR)


def _ratio(L: np.ndarray) -> float:
    return math.sqrt(float(np.mean(L * L))) / float(np.mean(L))


def _synthetic_Li(n: int, spread: float, lam: float, data_mean: float) -> np.ndarray:
    """Target L_i = 2 lam + data_mean * w_i(q) with q solved so that L_QM/L_AM = spread."""
    def ratio(q):
        return _ratio(2 * lam + data_mean * _profile(n, q))

    if spread == 1.0:
        return np.full(n, 2 * lam + data_mean)
    one_hot = np.full(n, _FLOOR / (1.0 + _FLOOR))
    one_hot[-1] += n / (1.0 + _FLOOR)
    top = _ratio(2 * lam + data_mean * one_hot)
    if not spread < top:
        raise ValueError(f"spread = {spread:g} cannot be reached with n = {n} clients "
                         f"(L_QM/L_AM < {top:.4g} ~ sqrt(n)); raise n or lower spread")
    lo, hi = 0.0, 1.0
    while ratio(hi) < spread:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if ratio(mid) < spread:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 2 * lam + data_mean * _profile(n, hi)


def make_synthetic(n=200, d=50, m_per_client=20, spread=1.0, seed=0, kind="logreg",
                   *, lam=0.1, name=None):
    """A seeded synthetic split whose clients have prescribed, heterogeneous L_i.

    Client i's rows are ``s_i Z_i`` with Z_i standard normal (m_per_client, d); the
    scale s_i is chosen so that, for the problem ``kind`` with regulariser ``lam``,
    the smoothness constant of client i is exactly (up to rounding)
    ``L_i = 2 lam + w_i`` with ``w_i ∝ t_i^q + 1e-6``, ``t_i = (i+1)/n``, mean(w) = 1
    (clients ordered from smooth to steep). The exponent q >= 0 is solved (bisection)
    so that

        ``L_QM / L_AM = spread``  (exactly, up to rounding),

    i.e. ``spread = 1`` gives equal L_i and larger spreads concentrate the smoothness
    on the last clients. The generator is this package's own (docs/maths.rst,
    "Problems"), not one of the papers'. A ratio of at least sqrt(n)-ish (one client holding all the
    data part) cannot be exceeded: with the default n = 200 spreads up to about 11.8
    are available (lam = 0.1). Labels: ``logreg`` -> ``sign(Z_i x* + 0.1 noise)`` in
    {-1, +1}; ``linreg`` -> ``A_i x* + 0.1 noise``; x* ~ N(0, I/d).

    Parameters
    ----------
    n, d, m_per_client : int
        Clients, features, rows per client (all >= 1).
    spread : float
        Target L_QM / L_AM, >= 1.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    kind : {"logreg", "linreg"}
        Which problem's L_i formula the scales are set for
        (:class:`ef21fast.methods.problems.LogisticRegression` or ``LinearRegression``).
    lam : float
        Regulariser weight the problem will be built with (enters L_i as 2 lam).
    name : str, optional

    Returns
    -------
    ClientData
        Dense A of shape (n * m_per_client, d), float64.

    Raises
    ------
    ValueError
        On a non-positive size, spread < 1 or unreachable, unknown kind, lam < 0.
    """
    for nm, v in (("n", n), ("d", d), ("m_per_client", m_per_client)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{nm} must be a positive integer, got {v!r}")
    n, d, mp = int(n), int(d), int(m_per_client)
    spread = float(spread)
    if not (spread >= 1.0 and math.isfinite(spread)):
        raise ValueError(f"spread must be a finite number >= 1, got {spread!r}")
    if kind not in ("logreg", "linreg"):
        raise ValueError(f"kind must be 'logreg' or 'linreg', got {kind!r}")
    lam = float(lam)
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")

    target = _synthetic_Li(n, spread, lam, data_mean=1.0)
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, mp, d))
    G = Z @ Z.transpose(0, 2, 1) if mp <= d else Z.transpose(0, 2, 1) @ Z
    lmax = np.linalg.eigvalsh(G)[:, -1]
    unit = lmax / (4 * mp) if kind == "logreg" else 2 * lmax / mp
    scale = np.sqrt((target - 2 * lam) / unit)
    x_star = rng.standard_normal(d) / math.sqrt(d)
    noise = 0.1 * rng.standard_normal((n, mp))
    if kind == "logreg":
        b = np.where(Z @ x_star + noise >= 0, 1.0, -1.0)
    A = Z * scale[:, None, None]
    if kind == "linreg":
        b = A @ x_star + noise
    A = A.reshape(n * mp, d)
    if name is None:
        name = f"synthetic-{kind}-n{n}-spread{spread:g}"
    off = np.arange(n + 1, dtype=np.int64) * mp
    return ClientData(np.ascontiguousarray(A), b.reshape(-1).astype(np.float64), off,
                      name)


def feature_ownership(data: ClientData) -> tuple[int, int]:
    """Rare-features statistics ``(c, r)`` of a split; see
    :func:`ef21fast.methods.theory.rare_features` (this is the same function)."""
    from ef21fast.methods.theory import rare_features

    return rare_features(data)
