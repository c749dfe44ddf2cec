"""The hook's state: the options, and the per-parameter EF arrays of every bucket layout.

DDP rebuilds its buckets after the first iteration (other bucket indices, sizes and
parameter orders), so the EF arrays cannot be keyed by bucket index. They are kept per
parameter: each parameter gets a key at the first iteration this state sees, its
place in DDP's first bucket layout (``"bucket.position"``), which is the same in every
process that builds the same model with the same ``bucket_cap_mb``, so a checkpoint
taken in one process resumes in another. The arrays of one bucket layout are one flat
pair (state ``g`` and aggregate ``G``) that the bucket's buffer lines up with; a new
layout gathers its parameters' values from wherever they were.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

_METHODS = ("ef21", "ef21-w", "ef14")
_FORMAT = 1


class _Flat:
    """The EF arrays of one bucket layout: ``g`` (EF21 states g_r or EF14 errors e_r)
    and ``G`` (the EF21 aggregate; None for EF14), both flat over the bucket."""

    __slots__ = ("keys", "offsets", "sizes", "g", "G")

    def __init__(self, keys, sizes, dtype, aggregate: bool):
        self.keys = keys
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = int(self.offsets[-1])
        self.g = np.zeros(n, dtype)
        self.G = np.zeros(n, dtype) if aggregate else None

    def piece(self, j: int):
        s = slice(int(self.offsets[j]), int(self.offsets[j + 1]))
        return self.g[s], (None if self.G is None else self.G[s])


class EFState:
    """State of :func:`ef21fast.ddp.ef_hook`: the method, its options, the EF arrays.

    Register with ``ddp_model.register_comm_hook(EFState(...), ef_hook)`` before the
    first backward pass; one state per DDP model.

    Parameters
    ----------
    process_group : torch.distributed.ProcessGroup or None
        The group the gradients are averaged over (None: the default group). Its
        backend must take CPU tensors (gloo); its timeout bounds every wait.
    k : int, optional
        Values sent per bucket and iteration (``k >= 1``; capped at the bucket's size).
    ratio : float, optional
        Instead of ``k``: ``ceil(ratio * size)`` values per bucket, ``0 < ratio <= 1``.
        Exactly one of ``k`` and ``ratio`` is given.
    method : {"ef21", "ef21-w", "ef14"}
        ``"ef21"``: EF21 with weights ``1/W`` over the W ranks; ``"ef21-w"``: EF21-W
        with this rank's ``weight``; ``"ef14"``: classic error feedback (the bucket
        becomes the mean of the messages).
    weight : float, optional
        ``"ef21-w"`` only (and required there): this rank's weight w_r > 0; the
        weights of all ranks must sum to 1 (checked at the first iteration).
    start_iter : int, default 1
        Iterations ``0 .. start_iter - 1`` are a plain mean all-reduce; for EF21 the
        last of them sets the states (``g_r`` = the rank's gradient, scaled for
        EF21-W) and the aggregate ``G``. ``start_iter=0``: EF21 from zero states.
        The plain all-reduce is torch's: the same bits on every rank, but summed in
        the order of the process group's algorithm, which for 3 or more ranks is not
        always the rank order; EF21's initialisation and every compressed iteration
        sum in rank order (the bits of a single-process simulation).
    backend : {"c", "numba", "numpy"} or None
        The ef21fast backend of the kernels (None: the default backend).

    Attributes
    ----------
    iteration : int
        Iterations completed (counted at each iteration's last bucket).
    bits_sent : int
        Bits this rank contributed: the dense buckets of the all-reduce iterations
        (size x bits per value) and the compressed messages
        (k x (bits per value + 32 or 64 bits per index)).
    weights : ndarray or None
        Every rank's weight w_r (float64, rank order), known from the first
        iteration on (``1/W`` each except for ``"ef21-w"``).

    Raises
    ------
    TypeError
        ``k`` not an integer, ``ratio``/``weight`` not real numbers, ``start_iter``
        not an integer.
    ValueError
        Both or neither of ``k`` and ``ratio``, values out of range, an unknown
        ``method`` or ``backend``, ``weight`` missing for ``"ef21-w"`` or given for
        another method.
    """

    def __init__(self, process_group=None, *, k=None, ratio=None, method="ef21",
                 weight=None, start_iter=1, backend=None):
        from ef21fast.backends.registry import BACKENDS

        if (k is None) == (ratio is None):
            raise ValueError("give exactly one of k (values per bucket) and ratio "
                             "(fraction of each bucket)")
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, numbers.Integral):
                raise TypeError(f"k must be an integer, got {type(k).__name__} {k!r}")
            if k < 1:
                raise ValueError(f"k must be at least 1, got {k}")
            k = int(k)
        else:
            if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real):
                raise TypeError(f"ratio must be a real number, got "
                                f"{type(ratio).__name__} {ratio!r}")
            if not 0 < ratio <= 1:
                raise ValueError(f"ratio must satisfy 0 < ratio <= 1, got {ratio}")
            ratio = float(ratio)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}, "
                             f"got {method!r}")
        if method == "ef21-w":
            if weight is None:
                raise ValueError("method 'ef21-w' needs this rank's weight (weight=)")
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
                raise TypeError(f"weight must be a real number, got "
                                f"{type(weight).__name__} {weight!r}")
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"weight must be positive and finite, got {weight}")
            weight = float(weight)
        elif weight is not None:
            raise ValueError(f"weight is for method 'ef21-w' only, got method "
                             f"{method!r}")
        if isinstance(start_iter, bool) or not isinstance(start_iter, numbers.Integral):
            raise TypeError(f"start_iter must be an integer, got "
                            f"{type(start_iter).__name__} {start_iter!r}")
        if start_iter < 0:
            raise ValueError(f"start_iter must be >= 0, got {start_iter}")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)} or None, "
                             f"got {backend!r}")
        self.process_group = process_group
        self.k = k
        self.ratio = ratio
        self.method = method
        self.weight = weight
        self.start_iter = int(start_iter)
        self.backend = backend
        self.iteration = 0
        self.bits_sent = 0
        self.weights = None  # every rank's weight, float64, once checked
        self._checked = False
        self._keys = {}      # id(parameter) -> key
        self._held = []      # the parameters, so that their ids stay theirs
        self._flats = {}     # tuple of keys (a bucket's layout) -> _Flat
        self._where = {}     # key -> (_Flat, position in it)
        self._saved = {}     # key -> (g, G) loaded, not yet placed in a layout

    # ------------------------------------------------------------------ per bucket
    def k_for(self, size: int) -> int:
        """Values sent for a bucket of ``size`` elements."""
        if self.k is not None:
            return min(self.k, size)
        return min(size, max(1, math.ceil(self.ratio * size)))

    def assign_keys(self, bucket) -> list:
        """Key the parameters of ``bucket`` not seen before by their place in it;
        returns the bucket's parameters."""
        params = bucket.parameters()
        for j, p in enumerate(params):
            if id(p) not in self._keys:
                self._keys[id(p)] = f"{bucket.index()}.{j}"
                self._held.append(p)
        return params

    def flat_for(self, bucket, dtype) -> _Flat:
        """The EF arrays lined up with ``bucket``'s buffer (built on a new layout)."""
        params = self.assign_keys(bucket)
        keys = tuple(self._keys[id(p)] for p in params)
        flat = self._flats.get(keys)
        if flat is None:
            flat = self._new_layout(keys, [p.numel() for p in params], dtype)
        return flat

    def _new_layout(self, keys, sizes, dtype) -> _Flat:
        flat = _Flat(keys, sizes, dtype, aggregate=self.method != "ef14")
        for j, key in enumerate(keys):
            g, G = flat.piece(j)
            if key in self._where:
                old, i = self._where[key]
                src = old.piece(i)
            elif key in self._saved:
                src = self._saved.pop(key)
                if src[0].size != g.size:
                    raise ValueError(f"the loaded state of parameter {key} has "
                                     f"{src[0].size} elements, the parameter "
                                     f"{g.size}: not the same model")
            else:
                continue
            g[...] = src[0]
            if G is not None:
                G[...] = src[1]
            self._where[key] = (flat, j)
        for j, key in enumerate(keys):
            self._where[key] = (flat, j)
        live = {id(f) for f, _ in self._where.values()}
        self._flats = {ks: f for ks, f in self._flats.items() if id(f) in live}
        self._flats[keys] = flat
        return flat

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """A checkpoint of the EF state (copies; tensors, so ``torch.save`` and
        ``torch.load(weights_only=True)`` take it).

        Returns
        -------
        dict
            ``format``, ``method``, ``iteration``, ``bits_sent``, and ``params``:
            for each parameter key, ``{"state": g, "aggregate": G}`` (no aggregate
            for EF14).
        """
        import torch

        params = {}
        for key, (flat, j) in self._where.items():
            params[key] = flat.piece(j)
        params.update(self._saved)
        out = {}
        for key, (g, G) in params.items():
            entry = {"state": torch.from_numpy(np.array(g, copy=True))}
            if G is not None:
                entry["aggregate"] = torch.from_numpy(np.array(G, copy=True))
            out[key] = entry
        return {"format": _FORMAT, "method": self.method, "iteration": self.iteration,
                "bits_sent": self.bits_sent, "params": out}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume from :meth:`state_dict` (of the same rank, model and method).

        Raises
        ------
        ValueError
            Another format or method.
        """
        if state_dict.get("format") != _FORMAT:
            raise ValueError(f"state_dict has format {state_dict.get('format')!r}, "
                             f"this version reads {_FORMAT}")
        if state_dict.get("method") != self.method:
            raise ValueError(f"state_dict is of method {state_dict.get('method')!r}, "
                             f"this state runs {self.method!r}")
        self.iteration = int(state_dict["iteration"])
        self.bits_sent = int(state_dict["bits_sent"])
        self._saved = {}
        for key, entry in state_dict["params"].items():
            g = entry["state"].detach().cpu().numpy()
            G = entry["aggregate"].detach().cpu().numpy() if "aggregate" in entry else None
            if key in self._where:
                flat, j = self._where[key]
                dst_g, dst_G = flat.piece(j)
                dst_g[...] = g
                if dst_G is not None:
                    dst_G[...] = G
            else:
                self._saved[key] = (g.copy(), None if G is None else G.copy())
