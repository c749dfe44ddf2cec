"""CPU ``torch.Tensor`` arguments for the public kernels, without copies.

The public kernels (:mod:`ef21fast.api`) take numpy arrays; :func:`accepting` wraps
each so that it also takes tensors: every tensor argument is turned into a numpy view
of its memory (``tensor.numpy()``), the numpy kernel runs, and the returned arrays come
back as tensors over the same memory (``torch.from_numpy``). An argument updated in
place is updated inside the caller's tensor.

torch is never imported here: a tensor can only reach a kernel once the caller has
imported torch, so the module is looked up in ``sys.modules`` (``import ef21fast``
stays light and torch stays optional).

What cannot be served raises before any kernel runs, naming the argument:

- ``TypeError``: a tensor not on the CPU (CUDA, meta, ...), not strided (sparse), or of
  a dtype the argument cannot take (float16, bfloat16, complex, ...);
- ``ValueError``: a tensor updated in place that requires grad (autograd would not see
  the update), is not contiguous, or carries a lazy negation.
"""

from __future__ import annotations

import functools
import sys

_FLOAT_ROLES = ("data", "val", "state", "out")
_UPDATED_ROLES = ("state", "out")


def _torch():
    return sys.modules.get("torch")


def is_tensor(a) -> bool:
    """Whether ``a`` is a ``torch.Tensor`` (False when torch was never imported)."""
    torch = _torch()
    return torch is not None and isinstance(a, torch.Tensor)


def _check_place(name: str, t, updated: bool) -> None:
    if t.device.type != "cpu":
        raise TypeError(f"{name} must be a CPU tensor, got a tensor on device "
                        f"{t.device} (move it with {name}.cpu(); the kernels run on the "
                        f"CPU)")
    if t.layout is not _torch().strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    if updated:
        if t.requires_grad:
            raise ValueError(f"{name} is updated in place and must not require grad "
                             f"(autograd would not see the update): pass "
                             f"{name}.detach(), which shares its memory")
        if not t.is_contiguous():
            raise ValueError(f"{name} is updated in place and must be a contiguous "
                             f"tensor ({name}.is_contiguous() is False)")
        if t.is_neg():
            raise ValueError(f"{name} is updated in place and must not be a lazily "
                             f"negated view (call {name}.resolve_neg() first)")


def _check_dtype(name: str, t, role: str) -> None:
    torch = _torch()
    if role in _FLOAT_ROLES:
        if t.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must have dtype float32 or float64, got tensor "
                            f"dtype {t.dtype}")
    elif role == "idx":
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise TypeError(f"{name} must hold integers, got tensor dtype {t.dtype}")
    elif t.is_complex() or t.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(f"{name} must hold real numbers of at least float32 precision, "
                        f"got tensor dtype {t.dtype}")


def as_array(name: str, t, role: str):
    """The numpy view of tensor ``t`` passed as argument ``name`` with ``role`` (a role
    of :class:`ef21fast._spec.Param`).

    Parameters
    ----------
    name : str
        The argument's name, for the error messages.
    t : torch.Tensor
        A CPU tensor.
    role : str
        ``"data"``, ``"val"``, ``"idx"`` and ``"factor"`` are read only; ``"state"``
        and ``"out"`` are updated in place.

    Returns
    -------
    numpy.ndarray or int
        A view of ``t``'s memory (read-only inputs with requires grad are detached,
        lazily negated or conjugated ones resolved into a copy); for ``role == "k"``
        a 0-d integer tensor becomes an ``int``.

    Raises
    ------
    TypeError
        Not a CPU strided tensor, or a dtype the role cannot take.
    ValueError
        An updated tensor that requires grad, is not contiguous or is a negated view.
    """
    if role == "k":
        torch = _torch()
        if t.dim() == 0 and not (t.is_floating_point() or t.is_complex()
                                 or t.dtype == torch.bool):
            _check_place(name, t, updated=False)
            return int(t.item())
        return t  # check_k names the argument and rejects it
    updated = role in _UPDATED_ROLES
    _check_place(name, t, updated)
    _check_dtype(name, t, role)
    if updated:
        return t.detach().numpy()
    return t.detach().resolve_neg().resolve_conj().numpy()


def _any_tensor(tensor_type, args, kwargs) -> bool:
    for a in args:
        if isinstance(a, tensor_type):
            return True
    for a in kwargs.values():
        if isinstance(a, tensor_type):
            return True
    return False


def accepting(kernel, fn):
    """Wrap the public numpy kernel ``fn`` (the entry ``kernel`` of the kernel table)
    so that it takes CPU tensors for its array arguments.

    The wrapper costs one dictionary look-up when torch was never imported. With a
    tensor among the arguments, each tensor argument becomes a numpy view
    (:func:`as_array`) and ``fn`` runs on the views. Results: ``idx`` and ``val`` come
    back as tensors (``torch.from_numpy``, no copy) when the data argument or the
    updated argument is a tensor; ``scatter_add`` returns its ``out`` argument itself,
    tensor or array.
    """
    names = kernel.param_names
    roles = {p.name: p.role for p in kernel.params}
    data = next(p.name for p in kernel.params if p.role in ("data", "out"))
    tensor_results = (data, kernel.updated)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        torch = _torch()
        if torch is None or not _any_tensor(torch.Tensor, args, kwargs):
            return fn(*args, **kwargs)
        if len(args) > len(names):
            return fn(*args, **kwargs)  # fn raises the usual TypeError
        bound = dict(zip(names, args))
        overlap = set(bound) & set(kwargs)
        if overlap:
            return fn(*args, **kwargs)
        bound.update(kwargs)
        given = dict(bound)
        for name, value in bound.items():
            if name in roles and isinstance(value, torch.Tensor):
                bound[name] = as_array(name, value, roles[name])
            elif name not in roles and isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must not be a tensor")
        result = fn(**bound)
        if kernel.returned == ("out",):
            return given[data]
        if any(isinstance(given.get(n), torch.Tensor) for n in tensor_results):
            return tuple(torch.from_numpy(r) for r in result)
        return result

    return call
