"""The kernel table: every public kernel, its arguments, what it updates, how it is tested.

One :class:`Kernel` entry per kernel. Everything that needs to know the kernels reads
this table instead of naming them: the public functions' docstrings
(:mod:`ef21fast.api`), the backend registry, the cross-checks and the fuzzer
(:mod:`ef21fast.testing`), ``ef21fast bench`` and the benchmark suites (``bench/``).
Adding a kernel is one entry here plus its three implementations (the reference in
:mod:`ef21fast.reference`, Numba in ``kernels/``, C in ``csrc/``) and its public
function in :mod:`ef21fast.api`.

Argument roles (``Param.role``):

``"data"``
    The float32/float64 input of shape (d,) or (n, d), read only.
``"state"``
    An array of the data's shape and dtype, updated in place.
``"k"``
    The number of entries kept per row.
``"factor"``
    An optional real factor: a scalar, or (when ``Kernel.factor_per_row``) one value
    per row.
``"out"``
    A dense 1-D accumulator of length d, updated in place.
``"idx"``, ``"val"``
    A sparse message: indices and values of shape (k,) or (n, k).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ef21fast._validation import native_dtype

__all__ = ["KERNELS", "KERNEL_NAMES", "Kernel", "Param"]


@dataclass(frozen=True)
class Param:
    """One argument of a kernel: its name, role, numpydoc type and description."""

    name: str
    role: str
    type: str
    doc: str
    optional: bool = False


@dataclass(frozen=True)
class Kernel:
    """One public kernel: its contract, arguments and the variants it is checked with.

    Attributes
    ----------
    name : str
        The function name, the same in :mod:`ef21fast.api` and in every backend.
    summary : str
        The docstring's first line.
    contract : str
        The semantics, in the words of the docstring.
    params : tuple of Param
        In signature order (the backends take them in this order, normalised).
    returns : str
        The numpydoc "Returns" section body.
    raises : str
        The numpydoc "Raises" section body.
    updated : str or None
        The argument updated in place, if any.
    returned : tuple of str
        Names of the returned arrays (``("idx", "val")`` or ``("out",)``).
    factor_per_row : bool
        Whether the factor argument may hold one value per row.
    factor_values : tuple
        The factors the cross-checks use: ``None`` (not given), a real scalar, or
        ``("per-row", lo, hi, one)``: ``np.linspace(lo, hi, n)`` on a batch of n rows,
        the scalar ``one`` on a single vector (left out when ``one`` is None).
    bench_k_fractions : tuple of int
        The benchmark suites time ``k = d / f`` for each f.
    bench_dtypes : tuple of str
        The dtypes the benchmark suites time.
    """

    name: str
    summary: str
    contract: str
    params: tuple
    returns: str
    raises: str
    updated: str | None = None
    returned: tuple = ("idx", "val")
    factor_per_row: bool = False
    factor_values: tuple = (None,)
    bench_k_fractions: tuple = (100,)
    bench_dtypes: tuple = ("float32",)
    doc_notes: str = field(default="", repr=False)

    # ------------------------------------------------------------------ the arguments
    @property
    def param_names(self) -> tuple:
        """Argument names in signature order."""
        return tuple(p.name for p in self.params)

    def param(self, role: str) -> Param | None:
        """The argument with ``role`` (None when the kernel has none)."""
        for p in self.params:
            if p.role == role:
                return p
        return None

    @property
    def factor(self) -> str | None:
        """The name of the optional factor argument, or None."""
        p = self.param("factor")
        return None if p is None else p.name

    @property
    def updated_position(self) -> int | None:
        """Position of the updated argument in the signature, or None."""
        return None if self.updated is None else self.param_names.index(self.updated)

    @property
    def stream_reads(self) -> tuple:
        """The arrays one streaming read of the inputs covers (benchmark anchor)."""
        return tuple(p.name for p in self.params if p.role in ("data", "state", "out"))

    def factor_variants(self, n: int, batch: bool) -> list[dict]:
        """The optional-argument variants of the cross-checks for ``n`` rows.

        Returns a list of keyword dicts (``{}`` for "not given"); see
        ``factor_values``.
        """
        out = []
        for value in self.factor_values:
            if value is None:
                out.append({})
            elif isinstance(value, tuple):  # ("per-row", lo, hi, one)
                _, lo, hi, one = value
                if batch:
                    out.append({self.factor: np.linspace(lo, hi, n)})
                elif one is not None:
                    out.append({self.factor: one})
            else:
                out.append({self.factor: value})
        return out

    # -------------------------------------------------------------------- the call
    def arguments(self, x: np.ndarray, k: int, state: np.ndarray | None = None,
                  message=None, factor: dict | None = None):
        """``(args, kwargs)`` of one public call on a data array ``x``.

        Parameters
        ----------
        x : ndarray, shape (d,) or (n, d)
            The data (read only; the ``out`` of a scatter has length d).
        k : int
        state : ndarray or None
            Copied into a fresh updated argument (zeros when None).
        message : (idx, val) or None
            The sparse message of a kernel that takes one (required then).
        factor : dict or None
            One of :meth:`factor_variants`.

        Returns
        -------
        args : tuple
        kwargs : dict
        """
        args = []
        for p in self.params:
            if p.role == "data":
                args.append(x)
            elif p.role == "state":
                args.append(np.zeros(x.shape, native_dtype(x.dtype))
                            if state is None else np.array(state, copy=True, order="C"))
            elif p.role == "k":
                args.append(k)
            elif p.role == "out":
                args.append(np.zeros(x.shape[-1], dtype=native_dtype(x.dtype)))
            elif p.role == "idx":
                args.append(message[0])
            elif p.role == "val":
                args.append(np.asarray(message[1]).astype(native_dtype(x.dtype)))
        return tuple(args), dict(factor or {})

    def results(self, args: tuple, returned) -> tuple:
        """What to compare after a call: the returned arrays, then the updated
        argument (when it is not itself returned)."""
        got = tuple(returned) if self.returned != ("out",) else (returned,)
        if self.updated is not None and self.updated not in self.returned:
            got += (args[self.updated_position],)
        return got

    @property
    def result_names(self) -> tuple:
        """Names of :meth:`results`, in order."""
        names = tuple(self.returned)
        if self.updated is not None and self.updated not in self.returned:
            names += (self.updated,)
        return names

    # --------------------------------------------------------------- the docstring
    def docstring(self) -> str:
        """The numpydoc docstring of the public function (:mod:`ef21fast.api`)."""
        lines = [self.summary, "", self.contract.strip(), ""]
        if self.doc_notes:
            lines += [self.doc_notes.strip(), ""]
        lines += [TENSORS.strip(), ""]
        lines += ["Parameters", "----------"]
        for p in self.params:
            lines.append(f"{p.name} : {p.type}")
            lines += ["    " + line for line in p.doc.strip().splitlines()]
        lines += ["backend : {\"c\", \"numba\", \"numpy\"} or None",
                  "    None: ``$EF21FAST_BACKEND`` if set, else the fastest available",
                  "    backend (:func:`ef21fast.available_backends`).", ""]
        lines += ["Returns", "-------"] + self.returns.strip().splitlines() + [""]
        lines += ["Raises", "------"] + self.raises.strip().splitlines()
        return "\n".join(lines) + "\n"


#: How every kernel takes ``torch.Tensor`` arguments (:mod:`ef21fast._tensors`); part
#: of every kernel's docstring.
TENSORS = """Every array argument may also be a CPU ``torch.Tensor`` of the same dtype (read-only
arguments may be non-contiguous; tensors and arrays may be mixed). Nothing is copied:
the kernel works on ``tensor.numpy()`` views, the updated argument is updated inside its
tensor, and ``idx``/``val`` come back as tensors (indices int64) when the data or the
updated argument is a tensor. A tensor that cannot be served raises before any work,
naming the argument: ``TypeError`` for a tensor off the CPU (CUDA) or not dense, or of
float16/bfloat16 (or any dtype the argument cannot take); ``ValueError`` for an updated
tensor that requires grad or is not contiguous. ``import ef21fast`` never imports
torch."""

_ORDER = """Selection order: larger ``|x|`` first; NaN ranks above +inf and all NaNs rank
equal; -0.0 equals +0.0; ties go to the smaller index. The selected set is exactly
``np.argsort(-np.abs(x), kind="stable")[:k]`` with NaNs placed first, and the indices
are returned ascending."""

_K = Param("k", "k", "int", "Entries kept per row, ``0 <= k <= d``.")

_GRAD = Param("grad", "data", "ndarray of float32 or float64, shape (d,) or (n, d)",
              "Gradients, one row per client. May be non-contiguous. Never modified.")

_MESSAGE_RETURNS = """\
idx : ndarray of int64, shape (k,) or (n, k)
    {idx}
val : ndarray of the input's dtype (native byte order), shape (k,) or (n, k)
    {val}"""

_STEP_RAISES = """\
TypeError
    Unsupported dtype, dtype mismatch between ``grad`` and ``{state}``, ``k`` not an
    integer, ``{factor}`` not a real number.
ValueError
    ``grad`` not 1-D or 2-D, shape mismatch, ``{state}`` read-only, not C-contiguous or
    not in native byte order, ``k`` out of range, {factor_shape}a finite ``{factor}``
    beyond the dtype's range."""

TOPK = Kernel(
    name="topk",
    summary="TopK selection: the ``k`` entries of largest magnitude of each row.",
    contract=_ORDER,
    params=(
        Param("x", "data", "ndarray of float32 or float64, shape (d,) or (n, d)",
              "A vector, or a batch of n vectors (one per row). May be non-contiguous or "
              "in non-native byte order. Never modified."),
        _K,
    ),
    returns=_MESSAGE_RETURNS.format(idx="Selected indices, ascending within each row.",
                                    val="``x[idx]``, bit for bit (sign of zero, NaN "
                                        "payload)."),
    raises="""\
TypeError
    ``x`` is not float32/float64, or ``k`` is not an integer.
ValueError
    ``x`` is not 1-D or 2-D, or ``k`` is outside ``[0, d]``.""",
    bench_k_fractions=(1000, 100, 10),
    bench_dtypes=("float32", "float64"),
)

EF21_STEP = Kernel(
    name="ef21_step",
    summary="The EF21 / EF21-W client step, fused: compress the change, update the state.",
    contract="""\
``delta = grad - state`` (``scale * grad - state`` when ``scale`` is given, the product
rounded in the array dtype first); ``(idx, val) = topk(delta, k)``;
``state[idx] += val``. The compiled backends need no d-sized temporary.""",
    doc_notes=_ORDER,
    params=(
        _GRAD,
        Param("state", "state", "ndarray, same shape and dtype as ``grad``",
              "Client states g_i: writable, C-contiguous, native byte order.\n"
              "**Updated in place.**"),
        _K,
        Param("scale", "factor", "None, real scalar, or array of shape (n,)",
              "EF21-W factor ``1 / (n w_i)`` per client, cast to the array dtype. A 1-D\n"
              "``grad`` takes a scalar only.", optional=True),
    ),
    returns=_MESSAGE_RETURNS.format(idx="Indices sent, ascending per row.",
                                    val="``delta[idx]``: the values sent (what was added "
                                        "to ``state``)."),
    raises=_STEP_RAISES.format(state="state", factor="scale",
                               factor_shape="``scale`` of the wrong shape, "),
    updated="state",
    factor_per_row=True,
    factor_values=(None, 0.3, ("per-row", 0.5, 3.0, 1.7)),
)

EF_STEP = Kernel(
    name="ef_step",
    summary="Classic error feedback (EF14) client step, fused.",
    contract="""\
``error += lr * grad`` (the product rounded in the array dtype first);
``(idx, val) = topk(error, k)``; ``error[idx] = 0``.""",
    doc_notes=_ORDER,
    params=(
        _GRAD,
        Param("error", "state", "ndarray, same shape and dtype as ``grad``",
              "Error accumulators e_i: writable, C-contiguous, native byte order.\n"
              "**Updated in place** (also when ``k = 0``)."),
        _K,
        Param("lr", "factor", "real scalar, default 1.0",
              "Step size multiplying the gradient, cast to the array dtype.",
              optional=True),
    ),
    returns=_MESSAGE_RETURNS.format(idx="Indices sent, ascending per row.",
                                    val="The accumulated error at ``idx`` before it was "
                                        "zeroed (the values sent)."),
    raises=_STEP_RAISES.format(state="error", factor="lr", factor_shape=""),
    updated="error",
    factor_values=(0.5, -2.5),
)

SCATTER_ADD = Kernel(
    name="scatter_add",
    summary="Server aggregation: ``out[idx[i, j]] += w_i * val[i, j]``, in row order.",
    contract="""\
Rows are applied in order 0..n-1 and the entries of a row in order, so the result is
identical across backends and thread counts; repeated indices accumulate (as
``np.add.at``). Each product ``w_i * val[i, j]`` is rounded in ``out``'s dtype before
it is added.""",
    params=(
        Param("out", "out", "ndarray of float32 or float64, shape (d,)",
              "Dense accumulator: writable, C-contiguous, native byte order.\n"
              "**Updated in place.**"),
        Param("idx", "idx", "ndarray of integers, shape (k,) or (n, k)",
              "Indices in ``[0, d)`` (negative indices are rejected, not wrapped)."),
        Param("val", "val", "ndarray of ``out.dtype``, same shape as ``idx``",
              "Values to add. Never modified."),
        Param("weights", "factor", "None, real scalar, or array of shape (n,)",
              "Per-row weights (a 1-D ``idx`` is one row), cast to ``out.dtype``.",
              optional=True),
    ),
    returns="""\
out : ndarray
    ``out`` itself.""",
    raises="""\
TypeError
    Unsupported dtype, ``val`` of another dtype than ``out``, ``idx`` not integers,
    ``out`` not a numpy array.
ValueError
    ``out`` not 1-D, read-only or non-contiguous; shape mismatch of ``idx``, ``val`` or
    ``weights``.
IndexError
    An index outside ``[0, d)``.""",
    updated="out",
    returned=("out",),
    factor_per_row=True,
    factor_values=(None, ("per-row", 0.1, 1.0, None)),
)

#: The kernel table, in the order every backend module defines the kernels.
KERNELS: dict[str, Kernel] = {k.name: k for k in (TOPK, EF21_STEP, EF_STEP, SCATTER_ADD)}

#: Kernel names, in table order.
KERNEL_NAMES: tuple = tuple(KERNELS)
