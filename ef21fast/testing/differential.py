"""The oracle of the differential fuzzers: one call, every backend, bit for bit.

:func:`check_call` runs one public kernel call on the reference backend and on each
other backend, each on its own :func:`clone` of the arguments (aliasing, strides,
offsets, alignment, byte order and flags preserved, canary bytes around every buffer),
and raises AssertionError with a readable description of the call (:func:`describe`)
unless all agree: the same exception type, or bit-equal results, bit-equal updated
arrays and every other byte unchanged. Which argument a kernel updates comes from the
kernel table (:mod:`ef21fast._spec`).
"""

from __future__ import annotations

import copy
import ctypes
import warnings
from dataclasses import dataclass

import numpy as np

from ef21fast import api
from ef21fast._spec import KERNELS
from ef21fast.testing.bits import bits_equal

__all__ = ["DOCUMENTED_EXCEPTIONS", "UPDATED", "Region", "check_call", "clone", "describe"]

#: Name and position of the argument each kernel updates in place (the kernel table).
UPDATED = {name: (spec.updated, spec.updated_position) for name, spec in KERNELS.items()
           if spec.updated is not None}
#: Exceptions the public kernels document; any other one is reported as a failure.
DOCUMENTED_EXCEPTIONS = (TypeError, ValueError, IndexError)
_PAD = 64  # canary bytes around each cloned buffer (catches writes out of bounds)
_CANARY = 0xA5


def _extent(a: np.ndarray) -> tuple[int, int]:
    """The byte range ``[lo, hi)`` spanned by the elements of ``a``."""
    lo = hi = a.__array_interface__["data"][0]
    if a.size == 0:
        return lo, hi
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + a.dtype.itemsize


def _root(a: np.ndarray):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


@dataclass
class Region:
    """One cloned memory block: ``buf[start:stop]`` with canaries around it."""

    buf: np.ndarray
    start: int
    stop: int
    before: bytes

    def canaries_intact(self) -> bool:
        return bool(np.equal(self.buf[:self.start], _CANARY).all()
                    and np.equal(self.buf[self.stop:], _CANARY).all())


def clone(args: tuple, kwargs: dict):
    """Deep-copy a call's arguments, keeping how the arrays share memory.

    Arrays whose memory overlaps (or that are views of one array) are copied into one
    new block, each rebuilt at the same offset with the same shape, strides, dtype
    (byte order included) and writeable flag; the block keeps the original alignment
    modulo 64 and is surrounded by canary bytes. Object arrays and non-arrays are
    deep-copied. Subclasses (masks included) are kept.

    Returns
    -------
    args, kwargs
        The copies.
    regions : list of Region
        The new memory blocks (with their content at copy time).
    where : dict
        ``id(copy) -> index`` of the region of each copied array.
    """
    items = list(args) + list(kwargs.values())
    arrays = [a for a in items if isinstance(a, np.ndarray) and a.dtype != object]
    spans = []
    for a in arrays:
        lo, hi = _extent(a)
        r = _root(a)
        if r.dtype != object:
            rlo, rhi = _extent(r)
            if rlo <= lo and hi <= rhi:
                lo, hi = rlo, rhi
        spans.append([lo, hi])
    # merge overlapping spans into groups
    order = sorted(range(len(arrays)), key=lambda i: spans[i][0])
    group, groups = {}, []
    for i in order:
        lo, hi = spans[i]
        if groups and lo < groups[-1][1] and hi > lo:
            groups[-1][1] = max(groups[-1][1], hi)
        else:
            groups.append([lo, hi])
        group[i] = len(groups) - 1
    regions = []
    for lo, hi in groups:
        span = hi - lo
        buf = np.full(span + 2 * _PAD + 64, _CANARY, np.uint8)
        shift = (lo - buf.ctypes.data - _PAD) % 64
        start = shift + _PAD
        content = ctypes.string_at(lo, span) if span else b""
        buf[start:start + span] = np.frombuffer(content, np.uint8)
        regions.append(Region(buf, start, start + span, content))
    copies, where = {}, {}
    for i, a in enumerate(arrays):
        g = group[i]
        off = regions[g].start + a.__array_interface__["data"][0] - groups[g][0]
        c = np.ndarray(a.shape, a.dtype, buffer=regions[g].buf, offset=off,
                       strides=a.strides)
        if type(a) is not np.ndarray:
            c = c.view(type(a))
            if np.ma.getmask(a) is not np.ma.nomask:
                c.mask = np.ma.getmask(a).copy()
        c.flags.writeable = a.flags.writeable
        copies[id(a)] = c
        where[id(c)] = g

    def cp(v):
        return copies[id(v)] if id(v) in copies else copy.deepcopy(v)

    return (tuple(cp(a) for a in args), {k: cp(v) for k, v in kwargs.items()}, regions,
            where)


# ---------------------------------------------------------------- the oracle


def _fmt(v) -> str:
    if not isinstance(v, np.ndarray):
        return f"{type(v).__name__} {v!r}"[:300]
    flags = ("" if v.flags.writeable else " readonly") + (
        "" if v.flags.aligned else " unaligned") + (
        " C-contiguous" if v.flags.c_contiguous else "")
    head = (f"{type(v).__name__}(shape={v.shape}, dtype={v.dtype.str}, strides={v.strides}"
            f"{',' + flags if flags else ''})")
    if v.dtype == object or v.size > 64:
        return head + (" values " + np.array2string(v, threshold=20)[:400]
                       if v.dtype == object or v.size else "")
    if v.dtype.kind == "f" and v.dtype.itemsize in (4, 8):
        hexes = [f"{int(b):#x}" for b in np.ascontiguousarray(v).astype(
            v.dtype.newbyteorder("=")).view(f"u{v.dtype.itemsize}").reshape(-1)]
        return head + " bits [" + ", ".join(hexes) + "]"
    return head + " " + np.array2string(v, threshold=64).replace("\n", "")


def describe(kernel: str, args: tuple, kwargs: dict, note: str = "") -> str:
    """A readable, reproducible description of a call (arrays as their bits)."""
    names = KERNELS[kernel].param_names if kernel in KERNELS else ()
    items = list(zip(names, args)) + list(kwargs.items())
    arrays = {n: v for n, v in items if isinstance(v, np.ndarray)}
    lines = [f"ef21fast.{kernel}(...)" + (f"  [{note}]" if note else "")]
    for name, v in items:
        shared = [o for o, w in arrays.items() if o != name and isinstance(v, np.ndarray)
                  and np.may_share_memory(v, w)]
        lines.append(f"  {name} = {_fmt(v)}" + (f"  (shares memory with {', '.join(shared)})"
                                                 if shared else ""))
    return "\n".join(lines)


@dataclass
class _Outcome:
    result: object
    args: tuple
    kwargs: dict
    regions: list
    where: dict
    warned: list


def _run(kernel, args, kwargs, backend) -> _Outcome:
    cargs, ckwargs, regions, where = clone(args, kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = getattr(api, kernel)(*cargs, backend=backend, **ckwargs)
        except Exception as exc:  # noqa: BLE001 (compared across backends below)
            result = exc.with_traceback(None)  # no cycle keeping the arrays alive
    warned = sorted({w.category.__name__ for w in caught})
    return _Outcome(result, cargs, ckwargs, regions, where, warned)


def _updated(kernel, out: _Outcome):
    name, pos = UPDATED.get(kernel, (None, None))
    if name is None:
        return None
    a = out.args[pos] if len(out.args) > pos else out.kwargs.get(name)
    return a if isinstance(a, np.ndarray) and id(a) in out.where else None


def _others(out: _Outcome, region: int, upd, before: bool = False) -> np.ndarray:
    """The bytes of a region that are not elements of the updated array ``upd``."""
    r = out.regions[region]
    mem = np.frombuffer(r.before, np.uint8) if before else r.buf[r.start:r.stop]
    if upd is None or out.where[id(upd)] != region or not upd.size:
        return mem
    mask = np.zeros(len(r.buf), bool)
    first = upd.__array_interface__["data"][0] - r.buf.ctypes.data
    np.ndarray(upd.shape + (upd.dtype.itemsize,), bool, buffer=mask, offset=first,
               strides=upd.strides + (1,))[...] = True
    return mem[~mask[r.start:r.stop]]


def _compare(kernel, ref: _Outcome, got: _Outcome) -> str | None:
    """The first difference between two outcomes, or None."""
    a, b = ref.result, got.result
    if isinstance(a, BaseException) or isinstance(b, BaseException):
        if type(a) is not type(b):
            return f"outcome differs: reference {a!r}, backend {b!r}"
        return None
    if kernel == "scatter_add":
        if b is not got.args[0]:
            return "scatter_add did not return out itself"
    else:
        if not (isinstance(b, tuple) and len(b) == 2):
            return f"result is not a pair: {b!r}"
        for name, x, y in (("idx", a[0], b[0]), ("val", a[1], b[1])):
            if x.dtype != y.dtype or not bits_equal(x, y):
                return f"{name} differs: reference {_fmt(x)}, backend {_fmt(y)}"
    upd_a, upd_b = _updated(kernel, ref), _updated(kernel, got)
    if upd_a is not None and not bits_equal(upd_a, upd_b):
        return (f"{UPDATED[kernel][0]} after the call differs: reference {_fmt(upd_a)}, "
                f"backend {_fmt(upd_b)}")
    for i in range(len(got.regions)):
        if not np.array_equal(_others(ref, i, upd_a), _others(got, i, upd_b)):
            return "memory of the arguments differs after the call (beyond the updated array)"
    if ref.warned != got.warned:
        return f"warnings differ: reference {ref.warned}, backend {got.warned}"
    return None


def _self_check(kernel, out: _Outcome) -> str | None:
    """Contract checks on one outcome alone: documented exceptions, inputs unchanged."""
    raised = isinstance(out.result, BaseException)
    if raised and not isinstance(out.result, DOCUMENTED_EXCEPTIONS):
        return f"undocumented exception {out.result!r}"
    upd = None if raised else _updated(kernel, out)
    for i, r in enumerate(out.regions):
        if not r.canaries_intact():
            return "a write out of the bounds of an argument (canary bytes changed)"
        if not np.array_equal(_others(out, i, upd), _others(out, i, upd, before=True)):
            if raised:
                return f"an argument was modified although the call raised {out.result!r}"
            return "memory other than the updated array's elements was modified"
    return None


def check_call(kernel: str, args: tuple, kwargs: dict, backends=None) -> None:
    """Run one call on the reference and on each backend; fail on any difference.

    Each backend runs on its own :func:`clone` of the arguments. Passes when every
    backend raises an exception of the reference's type (leaving every argument
    unchanged), or returns the reference's results bit for bit (NaN payloads
    included) and leaves the updated array bit-equal and all other argument memory
    byte-equal, with
    the same warning categories (warnings are recorded, never raised). The reference
    itself must raise only documented exceptions and modify only the in-place argument.

    Parameters
    ----------
    kernel : str
        A name of the kernel table.
    args : tuple
    kwargs : dict
        Arguments of the public function (not ``backend``); never modified.
    backends : sequence of str, optional
        Backends to compare with ``"numpy"``; default: all available.

    Raises
    ------
    AssertionError
        On any difference, with a description of the call and of the difference.
    """
    if backends is None:
        from ef21fast.backends.registry import available_backends
        backends = available_backends()
    ref = _run(kernel, args, kwargs, "numpy")
    problems = []
    problem = _self_check(kernel, ref)
    if problem:
        problems.append(f"[numpy] {problem}")
    for b in backends:
        if b == "numpy":
            continue
        got = _run(kernel, args, kwargs, b)
        problem = _self_check(kernel, got) or _compare(kernel, ref, got)
        if problem:
            problems.append(f"[{b}] {problem}")
    if problems:
        outcome = ref.result if isinstance(ref.result, BaseException) else "returned"
        raise AssertionError("\n".join(problems) + f"\n(reference: {outcome!r})\n"
                             + describe(kernel, args, kwargs))
