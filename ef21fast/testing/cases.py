"""The shared adversarial input generator of the kernel checks.

Every generated :class:`Case` is named for what it exercises (or for the bug it caught):
ties, NaN and inf mixes (several payloads), signed zeros, subnormals, all-equal rows,
``k = 0`` and ``k = d``, ``d = 1``, empty inputs, strided, negative-stride, transposed
and big-endian views, batches of clients, and (``large=True``) rows long enough to take
the compiled backends' parallel paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ef21fast.testing.bits import nan_with_payload

__all__ = ["Case", "cases", "all_cases"]


@dataclass
class Case:
    """One adversarial input: ``x`` (read input), ``k``, and a ``state`` of x's shape.

    ``x`` may be non-contiguous or in non-native byte order; ``state`` is always a
    fresh writable C-contiguous native array (copy it before each use).
    """

    name: str
    x: np.ndarray
    k: int
    state: np.ndarray = field(repr=False)
    scale: object = None

    def __repr__(self) -> str:
        return (f"Case({self.name}, shape={self.x.shape}, dtype={self.x.dtype}, "
                f"k={self.k})")


def _specials(dtype, rng, size):
    """NaNs of several payloads and signs, ±inf, ±0, subnormals, the extremes."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    tiny_sub = np.array(info.smallest_subnormal, dtype=dtype)
    pool = [
        nan_with_payload(dtype, 1), nan_with_payload(dtype, 7, negative=True),
        nan_with_payload(dtype, 12345), nan_with_payload(dtype, 3, quiet=False),
        np.array(np.inf, dtype), np.array(-np.inf, dtype),
        np.array(0.0, dtype), np.array(-0.0, dtype),
        tiny_sub, -tiny_sub, np.array(info.tiny, dtype) * dtype.type(0.5),
        np.array(info.max, dtype), np.array(-info.max, dtype),
        np.array(1.0, dtype), np.array(-1.0, dtype),
    ]
    pool = np.stack([np.asarray(p, dtype=dtype).reshape(()) for p in pool])
    return pool[rng.integers(0, len(pool), size=size)]


def _ks(d: int) -> list[int]:
    return sorted({k for k in (0, 1, 2, 3, d // 7, d // 2, d - 1, d) if 0 <= k <= d})


def cases(dtype=np.float64, seed: int = 0, large: bool = True):
    """Yield the adversarial cases for one dtype.

    Parameters
    ----------
    dtype : float32 or float64
    seed : int
        Seed of the random parts (the structure is fixed).
    large : bool
        Include rows long enough (>= 2**17) to take the compiled backends' parallel
        within-row paths, sorted inputs that defeat sampling included.
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)

    def state_like(shape):
        return rng.standard_normal(shape).astype(dtype)

    def emit(name, x, ks=None):
        d = x.shape[-1]
        for k in (ks if ks is not None else _ks(d)):
            yield Case(f"{name}/k={k}", x, k, state_like(x.shape))

    normal = rng.standard_normal(1000).astype(dtype)
    yield from emit("normal_1d", normal)
    yield from emit("ties_small_ints", rng.integers(-2, 3, 500).astype(dtype))
    yield from emit("all_equal_row", np.full(300, 1.5, dtype))
    yield from emit("all_equal_rows_2d", np.full((4, 50), -2.0, dtype))
    yield from emit("plus_minus_same_magnitude",
                    (rng.choice([-3.0, 3.0], 200)).astype(dtype))
    signed_zeros = np.where(rng.random(100) < 0.5, -0.0, 0.0).astype(dtype)
    yield from emit("signed_zeros_only", signed_zeros)
    mix = rng.standard_normal(400).astype(dtype)
    mask = rng.random(400) < 0.3
    mix[mask] = _specials(dtype, rng, int(mask.sum()))
    yield from emit("nan_inf_mix", mix)
    yield from emit("specials_only", _specials(dtype, rng, 256))
    sub = (rng.standard_normal(300) * np.finfo(dtype).smallest_subnormal * 50).astype(dtype)
    yield from emit("subnormals", sub)
    yield from emit("d1", np.array([-0.5], dtype))
    yield from emit("d1_nan", nan_with_payload(dtype, 9).reshape(1))
    yield from emit("d0", np.empty(0, dtype))
    yield from emit("n0_rows", np.empty((0, 10), dtype))
    yield from emit("d0_rows", np.empty((3, 0), dtype))
    base = rng.standard_normal(2000).astype(dtype)
    yield from emit("strided_view", base[::2])
    yield from emit("negative_stride", base[::-3])
    mat = rng.standard_normal((30, 20)).astype(dtype)
    mat[rng.random(mat.shape) < 0.1] = np.nan
    yield from emit("transposed_2d", mat.T)
    yield from emit("big_endian", normal.astype(dtype.newbyteorder(">")))
    batch = rng.standard_normal((1000, 112)).astype(dtype)
    batch[::7] = np.round(batch[::7])  # rows with ties
    # k from 2 to 16 (the compiled backends' selection among the group maxima'
    # candidates, or an insertion top-k), and the radix select above 16
    yield from emit("batched_clients", batch, ks=[0, 1, 2, 4, 5, 8, 16, 17, 112])
    short = np.round(rng.standard_normal((40, 20)) * 2).astype(dtype)
    short[::5, 3:] = 0  # mostly zero: every key reaches the threshold (0)
    short[1::9, ::4] = np.nan
    # rows shorter than the 16 or 32 groups of that selection, many ties
    yield from emit("batched_short_rows", short, ks=[2, 3, 4, 8, 9, 16, 19])
    ties = rng.integers(-3, 4, (6, 4000)).astype(dtype)
    yield from emit("batched_ties", ties, ks=[1, 3, 16, 17, 100, 3999])
    ascending_rows = np.tile(np.arange(300, dtype=dtype), (4, 1))  # insertion worst case
    yield from emit("batched_ascending", ascending_rows, ks=[2, 16, 17])
    if large:
        d = 1 << 17
        big = rng.standard_normal(d).astype(dtype)
        big[rng.integers(0, d, 50)] = np.nan
        yield from emit("large_normal_with_nans", big, ks=[1, 10, d // 1000, d // 100,
                                                           d // 10, d - 1])
        asc = np.sort(np.abs(rng.standard_normal(d))).astype(dtype)
        yield from emit("large_sorted_ascending", asc, ks=[1, 100, d // 100, d // 2])
        yield from emit("large_sorted_descending", asc[::-1].copy(), ks=[100, d // 100])
        yield from emit("large_few_values", rng.integers(0, 3, d).astype(dtype),
                        ks=[1, 1000, d // 3, d // 2])
        yield from emit("large_all_equal", np.full(d, 7.0, dtype), ks=[1, 5000])
        yield from emit("large_rows_batch", rng.standard_normal((3, 50_000)).astype(dtype),
                        ks=[1, 500, 5000])
    # Rows starting 1, 6 and 13 elements past a 64-byte boundary, with ties and a NaN
    # among their first elements: a SIMD pass may take the part before the first
    # boundary on its own (the C float64 candidate pass does, in each chunk).
    # The values do not depend on where the buffer lands (the reference caches key a
    # case by its name).
    values = np.round(np.random.default_rng([seed, 1]).standard_normal(5000) * 4)
    values[2] = np.nan
    for shift in (1, 6, 13):
        buf = np.empty(5000 + 32, dtype)
        start = (-buf.ctypes.data % 64) // buf.itemsize + shift
        row = buf[start:start + 5000]
        row[:] = values
        yield from emit(f"unaligned_start_{shift}", row, ks=[1, 3, 50, 500])


def all_cases(seed: int = 0, large: bool = True):
    """Cases of both dtypes."""
    for dtype in (np.float32, np.float64):
        yield from cases(dtype, seed=seed, large=large)
