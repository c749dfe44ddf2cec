"""Differential fuzzing of the public kernels: the call builder.

:func:`build_call` turns a stream of choices into one public kernel call with
adversarial arguments: valid and invalid dtypes, 0-d to 3-D shapes, strided, negative,
transposed, offset and unaligned views, big-endian data, odd ``k``, read-only and
aliased arguments (``grad`` is ``state``, ``scale`` a view of ``state``, ``val`` a view
of ``out``...). The arguments are built by their roles in the kernel table
(:mod:`ef21fast._spec`). The choices come from a :class:`Source`:
:class:`HypothesisSource` (``st.data()``) or :class:`FDPSource`
(``atheris.FuzzedDataProvider``).

The oracle is :func:`ef21fast.testing.differential.check_call` (re-exported here)::

    from hypothesis import given, strategies as st
    from ef21fast.testing.fuzzing import HypothesisSource, build_call, check_call

    @given(st.data())
    def test_fuzz(data):
        check_call(*build_call(HypothesisSource(data)))

Open findings are listed in :data:`KNOWN_ISSUES`; :func:`known_issue` tells whether a
call reproduces one (the fuzzers skip those).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ef21fast._spec import KERNEL_NAMES, KERNELS
from ef21fast.testing.bits import nan_with_payload
from ef21fast.testing.differential import (
    DOCUMENTED_EXCEPTIONS,
    UPDATED,
    check_call,
    clone,
    describe,
)

__all__ = ["DOCUMENTED_EXCEPTIONS", "KNOWN_ISSUES", "UPDATED", "Call", "FDPSource",
           "HypothesisSource", "Source", "build_call", "check_call", "clone", "describe",
           "known_issue"]


class Source:
    """A stream of choices. Subclasses implement :meth:`int` and :meth:`bytes`."""

    def int(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        raise NotImplementedError

    def bytes(self, n: int) -> bytes:
        """Exactly ``n`` bytes."""
        raise NotImplementedError

    def pick(self, seq):
        """One element of the sequence ``seq`` (the first ones shrink best)."""
        return seq[self.int(0, len(seq) - 1)]

    def bool(self, p_true: int = 2) -> bool:
        """True with probability about ``1 / p_true``."""
        return self.int(0, p_true - 1) == p_true - 1


class HypothesisSource(Source):
    """Choices drawn from Hypothesis' ``st.data()`` object (shrinkable)."""

    def __init__(self, data):
        from hypothesis import strategies as st
        self._data, self._st = data, st

    def int(self, lo, hi):
        return self._data.draw(self._st.integers(lo, hi))

    def bytes(self, n):
        return self._data.draw(self._st.binary(min_size=n, max_size=n))


class FDPSource(Source):
    """Choices consumed from an ``atheris.FuzzedDataProvider`` (zeros once exhausted)."""

    def __init__(self, fdp):
        self._fdp = fdp

    def int(self, lo, hi):
        return self._fdp.ConsumeIntInRange(lo, hi)

    def bytes(self, n):
        return self._fdp.ConsumeBytes(n).ljust(n, b"\0")


@dataclass
class Call:
    """One public kernel call: ``getattr(ef21fast, kernel)(*args, **kwargs)``.

    ``note`` lists the builder's salient choices (layouts, aliasing, k), for reports
    and for grouping findings.
    """

    kernel: str
    args: tuple
    kwargs: dict
    note: str = ""

    def __iter__(self):  # check_call(*call)
        return iter((self.kernel, self.args, self.kwargs))

    def __repr__(self) -> str:
        return describe(self.kernel, self.args, self.kwargs, self.note)


# ---------------------------------------------------------------- values and arrays
# Arrays are compared with ufuncs (np.less, np.equal), not operators: under atheris
# instrumentation the operators' array results leak.

_POOLS: dict = {}


def _pool(dtype: np.dtype) -> np.ndarray:
    """Adversarial values: NaNs (payloads, signs, signalling), ±inf, ±0, subnormals,
    extremes, and small integers (ties)."""
    if dtype not in _POOLS:
        info = np.finfo(dtype)
        nans = [nan_with_payload(dtype, p, negative=s, quiet=q) for p, s, q in
                ((1, False, True), (7, True, True), (12345, False, True), (3, False, False),
                 (0x2AAAAA, True, False))]
        plain = [np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal,
                 -info.smallest_subnormal, info.tiny, -info.tiny, info.tiny / 2, info.max,
                 -info.max, info.eps, 1.0, -1.0, 2.0, -2.0, 0.5, 3.0, -3.0, 1 / 3]
        _POOLS[dtype] = np.concatenate([np.stack([n.reshape(()) for n in nans]),
                                        np.array(plain, dtype=dtype)])
    return _POOLS[dtype]


class _Subclass(np.ndarray):
    """A trivial ndarray subclass."""


_VALID = (np.dtype(np.float64), np.dtype(np.float32))
_INVALID = tuple(np.dtype(t) for t in (np.int64, np.int32, np.float16, np.complex128,
                                       np.bool_, object, np.uint8, np.longdouble))
_SIZES = (0, 1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 255, 256, 300)
# past the compiled backends' dense/small thresholds; the last one takes their
# multi-threaded paths (as do 1000 rows)
_BIG = (4095, 4097, 5000, 16385, 2**18 + 5)


def _values(src: Source, size: int, dtype: np.dtype) -> np.ndarray:
    """``size`` adversarial floats of ``dtype`` (native), in one of several patterns."""
    pool = _pool(dtype)
    mode = src.int(0, 5) if size <= 256 else src.int(2, 5)
    if mode == 0:  # pool values, one byte each
        return pool[np.frombuffer(src.bytes(size), np.uint8) % len(pool)]
    if mode == 1 and size * dtype.itemsize <= 512:  # arbitrary bits
        return np.frombuffer(src.bytes(size * dtype.itemsize), dtype).copy()
    if mode == 2:  # all equal
        return np.full(size, pool[src.int(0, len(pool) - 1)], dtype)
    rng = np.random.default_rng(src.int(0, 2**32 - 1))
    if mode == 3:  # small integers: many ties, signed zeros
        out = rng.integers(-3, 4, size).astype(dtype)
        out[np.less(rng.random(size), 0.2)] *= -0.0
    else:  # gaussian, some sorted by magnitude (defeats sampling), with specials
        out = rng.standard_normal(size).astype(dtype)
        if mode == 4:
            out = np.sort(np.abs(out))[:: rng.choice([-1, 1])].copy()
    special = np.less(rng.random(size), rng.choice([0.0, 0.01, 0.3]))
    out[special] = pool[rng.integers(0, len(pool), int(special.sum()))]
    return out


def _typed_values(src: Source, size: int, dtype: np.dtype) -> np.ndarray:
    """Values for any dtype: floats as :func:`_values`, others converted from them."""
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return _values(src, size, dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = _values(src, size, np.dtype(np.float64))
        if dtype.kind in "iu":
            return np.nan_to_num(v, posinf=7, neginf=-7).clip(-9, 9).astype(dtype)
        if dtype.kind == "b":
            return np.greater(v, 0)
        return v.astype(dtype)


def _layout(src: Source, values: np.ndarray, shape: tuple, fresh: bool = False):
    """An array holding ``values`` in ``shape``, in a random memory layout.

    ``fresh``: a valid in-place target (C-contiguous, native, writable) is likely.
    Returns ``(array, tag)``.
    """
    dtype = values.dtype
    if not fresh and dtype.kind in "fiuc" and dtype.itemsize > 1 and src.bool(4):
        dtype = dtype.newbyteorder("S")
    n = max(values.size, 1)
    kind = src.int(0, 5) if not fresh or src.bool(10) else 0
    if kind == 1 and values.ndim > 0:  # steps along every axis, some negative
        steps = [src.pick((2, 3, -1, -2, 1)) for _ in shape]
        big = np.zeros([s * abs(t) + 1 for s, t in zip(shape, steps)], dtype)
        a = big[tuple(slice(None, None, t) for t in steps)][tuple(slice(0, s)
                                                                  for s in shape)]
        tag = f"steps{tuple(steps)}"
    elif kind == 2 and len(shape) >= 2:  # transposed (F order)
        a = np.zeros(shape[::-1], dtype).T
        tag = "transposed"
    elif kind == 3 and dtype != object:  # offset view into a bigger buffer
        off = src.int(1, 9)
        a = np.zeros(n + off + src.int(0, 9), dtype)[off:off + values.size].reshape(shape)
        tag = f"offset{off}"
    elif kind == 4 and dtype != object:  # unaligned: a byte offset
        off = src.int(1, dtype.itemsize - 1) if dtype.itemsize > 1 else 1
        raw = np.zeros(n * dtype.itemsize + off, np.uint8)
        a = np.ndarray(shape, dtype, buffer=raw, offset=off)
        tag = f"unaligned{off}"
    else:
        a = np.zeros(shape, dtype)
        tag = "contiguous"
    a[...] = values.reshape(shape)
    if not dtype.isnative:
        tag += ",byteswapped"
    if src.int(0, 19) == 0 and dtype != object:  # an ndarray subclass
        cls = src.pick((_Subclass, np.ma.MaskedArray) + ((np.matrix,) if a.ndim == 2 else ()))
        a = a.view(cls)
        tag += f",{cls.__name__}"
        if cls is np.ma.MaskedArray and src.bool():
            a.mask = np.resize(np.frombuffer(src.bytes(16), np.uint8) & 1, a.shape).astype(bool)
            tag += " with mask"
    if src.bool(16 if fresh else 6):
        a.flags.writeable = False
        tag += ",readonly"
    return a, tag


def _array(src: Source, shape: tuple, dtype: np.dtype, fresh: bool = False):
    values = _typed_values(src, int(np.prod(shape)), dtype).reshape(shape)
    return _layout(src, values, shape, fresh)


def _dtype(src: Source, dtype: np.dtype | None = None) -> np.dtype:
    """``dtype`` (or a random valid one) mostly, sometimes another valid or invalid one."""
    r = src.int(0, 15)
    if r == 15:
        return src.pick(_INVALID)
    if dtype is None or r == 14:
        return _VALID[r % 2]
    return dtype


def _shape(src: Source, large: bool) -> tuple:
    ndim = src.pick((1, 2) * 15 + (0, 3))
    d = src.pick(_SIZES) if src.int(0, 40) else src.pick(_BIG if large else _BIG[:-1])
    if ndim == 0:
        return ()
    if ndim == 1:
        return (d,)
    n = src.pick((1, 2, 3, 0, 4, 7, 40) * 8 + ((1000,) if large else ())) if d <= 300 \
        else src.pick((1, 2))
    return (n, d) if ndim == 2 else (2, min(n, 3), min(d, 300))


def _k(src: Source, d: int):
    r = src.int(0, 19) - 4
    if r < 9:
        return src.int(0, d)
    if r < 13:
        return src.pick((0, d, d + 1, -1, 1, 2**63, -2**63, 10**30))
    if r == 13:  # numpy integer types, in range if they can
        t = src.pick((np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64, np.intp))
        return t(min(src.int(0, d), np.iinfo(t).max))
    return src.pick((float(d // 2), 1.5, float("nan"), True, False, np.bool_(True),
                     np.float64(1.0), np.array(1), "1", None, 1 + 0j))


def _factor(src: Source, n: int, vector: bool, like: np.ndarray | None = None):
    """A scale / lr / weights argument: mostly valid, sometimes of a wrong type or length.

    ``vector``: a length-``n`` array is valid. ``like``: an in-place target the factor
    may be a view of (the aliasing hazard).
    """
    r = src.int(0, 15)
    if r < 3:
        return None, "none"
    if r < 7 or (r < 12 and not vector) or r == 12:
        v = src.pick((0.5, 1.0, -2.5, 0.0, -0.0, 1e-300, 1e300, 3, np.float32(0.3),
                      np.float64(-1.7), np.int64(2), float("nan"), float("inf"),
                      np.array(0.25), np.float16(2), -3, np.uint64(2**63),
                      nan_with_payload(np.float64, 5, quiet=False)[()]))
        return v, f"scalar {type(v).__name__}"
    if r < 12:
        if r == 11 and like is not None and like.size >= n and like.dtype.kind == "f":
            flat = like.reshape(-1)
            start = src.int(0, like.size - n)
            return flat[start:start + n], f"view of {like.dtype.str} in-place target"
        dt = src.pick((np.float64, np.float32, np.int32, np.float16))
        a, tag = _array(src, (n,), np.dtype(dt))
        return a, f"array {tag}"
    bad = src.pick((True, 1j, "0.5", [0.5] * max(n, 1), (1.0,) * (n + 1),
                    np.ones(n + 1), np.ones((n, 1)), np.ones(n, complex), np.ones(n, bool),
                    np.array(["a"] * n), 10**400, np.ones(n, object), object()))
    return bad, f"odd {type(bad).__name__}"


def _target(src: Source, shape: tuple, dtype: np.dtype):
    """An in-place target: mostly valid, sometimes of a wrong shape, dtype or kind."""
    r = src.int(0, 19)
    if r < 16:
        return _array(src, shape, dtype, fresh=True)
    r -= 4
    if r == 12 and len(shape):
        s = src.pick(((shape[-1] + 1,), shape[::-1], (1,) + shape, shape[1:] or (0,)))
        return _array(src, s, dtype, fresh=True)
    if r == 13:
        return _array(src, shape, _dtype(src, None if src.bool() else np.dtype(np.int64)))
    if r == 14:
        return _array(src, shape, dtype)  # any layout
    bad = src.pick(([0.0] * (shape[-1] if shape else 1), None, 0.0, "state"))
    return bad, f"odd {type(bad).__name__}"


def _alias(src: Source, state: np.ndarray):
    """A ``grad`` sharing memory with ``state``: the same object, a reversed,
    transposed or byte-swapped view, or both views into one buffer, shifted by one
    element. Returns ``(grad, state, tag)``."""
    how = src.int(0, 4)
    if how == 1 and state.ndim:
        return state[..., ::-1], state, "reversed view"
    if how == 2 and state.ndim == 2:
        return state.T, state, "transposed view"
    if how == 3 and state.dtype.itemsize > 1:
        return state.view(state.dtype.newbyteorder("S")), state, "byte-swapped view"
    if how == 4 and state.size and state.dtype != object:
        buf = np.zeros(state.size + 1, state.dtype)
        buf[:-1] = state.reshape(-1)
        new = buf[:-1].reshape(state.shape)
        new.flags.writeable = state.flags.writeable
        return buf[1:].reshape(state.shape), new, "shifted by one element"
    return state, state, "same object"


def build_call(src: Source, large: bool = True) -> Call:
    """Build one public kernel call from the choices of ``src``.

    Parameters
    ----------
    src : Source
        :class:`HypothesisSource` or :class:`FDPSource`.
    large : bool
        Sometimes build inputs of over 2**18 elements (above every threshold of the
        compiled backends' multi-threaded paths; slower).

    Returns
    -------
    Call
        Kernel name, positional and keyword arguments, and a note of the choices.
    """
    with np.errstate(all="ignore"):
        kernel = src.pick(KERNEL_NAMES)
        spec = KERNELS[kernel]
        dtype = _dtype(src)
        shape = _shape(src, large)
        d = shape[-1] if shape else 0
        n = 1 if len(shape) < 2 else shape[0]
        if spec.param("out") is not None:  # a dense accumulator and a sparse message
            return _build_scatter(src, spec, dtype, d)
        x, tag = _array(src, shape, dtype)
        note = [f"x: {tag}"]
        if spec.param("state") is None:
            if src.int(0, 30) == 0:
                x, note = x.tolist(), ["x: list"]
            k = _k(src, d)
            return Call(kernel, (x, k), {}, "; ".join(note + [f"k: {k!r}"]))
        state, ttag = _target(src, shape, dtype)
        note.append(f"{spec.updated}: {ttag}")
        if src.bool(8) and isinstance(state, np.ndarray):
            x, state, atag = _alias(src, state)
            note[0] = f"{spec.param('data').name}: {atag} of {spec.updated}"
        k = _k(src, d)
        vector = spec.factor_per_row and len(shape) == 2
        factor, ftag = _factor(src, n, vector, state if isinstance(
            state, np.ndarray) else None)
        note += [f"k: {k!r}", f"factor: {ftag}"]
        kwargs = {} if factor is None else {spec.factor: factor}
        return Call(kernel, (x, state, k), kwargs, "; ".join(note))


def _build_scatter(src: Source, spec, dtype: np.dtype, d: int) -> Call:
    """A call of a kernel taking ``(out, idx, val, factor)`` (``scatter_add``)."""
    out, tag = _target(src, (d,), dtype)
    note = [f"out: {tag}"]
    one_d = src.bool()
    n = src.pick((1, 2, 3, 0, 5))
    kk = src.pick((0, 1, 2, 3, 7, d, 2 * d + 1, 64) if d else (0, 0, 1))
    ishape = (kk,) if one_d else (n, kk)
    size = int(np.prod(ishape))
    r = src.int(0, 16)
    if r == 16 and _valid_target(out) and out.size:  # reinterpreted bits of out
        idx, vshape = _alias_idx(src, out), out.shape
        note.append(f"idx {vshape}: reinterpreted view of out")
        val, vtag = _array(src, vshape, _dtype(src, dtype))
        note.append(f"val: {vtag}")
        return Call(spec.name, (out, idx, val), {}, "; ".join(note))
    if r < 11:  # valid indices, repeats likely
        hi = max(d, 1)
        raw = np.frombuffer(src.bytes(min(size, 256)), np.uint8)
        ivals = np.resize(raw, size).astype(np.int64) % hi if size else np.zeros(0, int)
        idt = np.dtype(np.int64) if r < 8 else src.pick(
            (np.int32, np.uint8, np.int16, np.uint64, np.uint32, np.int8))
        if idt == np.int8 or idt == np.uint8:
            ivals = ivals % 127
        idx, itag = _layout(src, ivals.astype(idt).reshape(ishape), ishape)
    elif r < 14:  # out of range, negative, huge
        bad = src.pick((-1, d, d + 1, 2**62, -2**63))
        ivals = np.zeros(size, np.int64)
        if size:
            ivals[src.int(0, size - 1)] = bad
        dt = np.uint64 if bad >= 0 and src.bool() else np.int64
        with np.errstate(all="ignore"):
            idx, itag = _layout(src, ivals.astype(dt).reshape(ishape), ishape)
        itag += f", holds {bad}"
    else:  # wrong dtype
        idx, itag = _array(src, ishape, src.pick(
            (np.dtype(np.float64), np.dtype(np.bool_), np.dtype(object))))
    note.append(f"idx {ishape}: {itag}")
    vshape = ishape if src.int(0, 15) else src.pick(((kk + 1,), (1,) + ishape, ()))
    if src.bool(6) and isinstance(out, np.ndarray) and out.ndim == 1 and out.size and \
            out.dtype.kind == "f":
        val, vtag = _alias_val(src, out, vshape)
    else:
        val, vtag = _array(src, vshape, _dtype(src, dtype))
    note.append(f"val: {vtag}")
    w, wtag = _factor(src, n, not one_d, out if isinstance(out, np.ndarray) else None)
    note.append(f"weights: {wtag}")
    kwargs = {} if w is None else {spec.factor: w}
    return Call(spec.name, (out, idx, val), kwargs, "; ".join(note))


def _valid_target(a) -> bool:
    return (isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype in _VALID
            and a.flags.c_contiguous and a.flags.writeable)


def _alias_idx(src: Source, out: np.ndarray) -> np.ndarray:
    """``out``'s memory seen as integers, its bits set to indices in range (so
    ``out`` holds zeros and subnormals)."""
    idx = out.view(np.int64 if out.dtype.itemsize == 8 else np.int32)
    raw = np.frombuffer(src.bytes(min(out.size, 256)), np.uint8).astype(np.int64)
    idx[...] = np.resize(raw, out.size) % out.size
    return idx


def _alias_val(src: Source, out: np.ndarray, vshape: tuple):
    """``val`` as a view of ``out`` (repeating it with zero strides if too short)."""
    size = int(np.prod(vshape))
    if size <= out.size and src.bool():
        start = src.int(0, out.size - size)
        return out[start:start + size].reshape(vshape), "view of out"
    return np.lib.stride_tricks.as_strided(out, vshape, (0,) * len(vshape),
                                           writeable=False), "zero-stride view of out"


# ---------------------------------------------------------------- open findings


#: Findings of the fuzzers not fixed yet: ``(regression test in tests/test_fuzz.py,
#: predicate on a Call)``. The fuzz tests and the atheris harness skip matching calls
#: so that they keep finding new problems. Remove an entry with its fix (and the
#: xfail of its regression test). All findings so far are fixed (tests/test_fuzz.py,
#: ``test_regression_*``).
KNOWN_ISSUES: tuple = ()


def known_issue(call: Call) -> str | None:
    """The regression test of the open finding ``call`` reproduces, or None."""
    for name, match in KNOWN_ISSUES:
        if match(call):
            return name
    return None
