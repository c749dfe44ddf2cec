"""CPU torch tensors through the public kernels: no copies, the same bits as numpy in
every backend, and a clear error for every tensor that cannot be served."""

import numpy as np
import pytest
from registry_params import kernel_backend_params

import ef21fast
from ef21fast import _tensors
from ef21fast._spec import KERNELS

torch = pytest.importorskip("torch", reason="torch is not installed (pip install "
                            "ef21fast[torch]); CI sets EF21FAST_EXPECT_TORCH=1")


def _bits(a):
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return a.view(np.uint8).tobytes(), a.shape, a.dtype


def _data(n=3, d=40, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    x[0, :5] = 1.5  # ties
    return x


def _tensor_args(args):
    return tuple(torch.from_numpy(np.array(a, copy=True)) if isinstance(a, np.ndarray)
                 else a for a in args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,backend", kernel_backend_params(include_numpy=True))
def test_tensors_give_the_bits_of_arrays_in_every_backend(kernel, backend, dtype):
    spec = KERNELS[kernel]
    x = _data(dtype=dtype)
    k = 7
    message = ef21fast.topk(x, k, backend="numpy")
    for batch in (True, False):
        xs = x if batch else x[1]
        msg = message if batch else (message[0][1], message[1][1])
        for factor in spec.factor_variants(x.shape[0], batch):
            args, kwargs = spec.arguments(xs, k, message=msg, factor=factor)
            t_args = _tensor_args(args)
            t_kwargs = {key: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray)
                        else v for key, v in kwargs.items()}
            want = spec.results(args, getattr(ef21fast, kernel)(*args, backend=backend,
                                                                **kwargs))
            got = spec.results(t_args, getattr(ef21fast, kernel)(*t_args, backend=backend,
                                                                 **t_kwargs))
            for name, w, g in zip(spec.result_names, want, got):
                assert isinstance(g, torch.Tensor), name
                assert _bits(g) == _bits(w), (name, batch, factor)
            if kernel != "scatter_add":
                assert got[0].dtype == torch.int64


def test_updated_tensor_is_updated_in_place_and_results_share_memory():
    x = _data()
    grad = torch.from_numpy(x.copy())
    state = torch.zeros_like(grad)
    ptr = state.data_ptr()
    idx, val = ef21fast.ef21_step(grad, state, 4)
    assert state.data_ptr() == ptr
    ref_state = np.zeros_like(x)
    ref_idx, ref_val = ef21fast.ef21_step(x, ref_state, 4)
    assert np.array_equal(state.numpy(), ref_state)
    assert np.array_equal(idx.numpy(), ref_idx) and np.array_equal(val.numpy(), ref_val)
    assert np.array_equal(grad.numpy(), x)  # read only
    out = torch.zeros(x.shape[1], dtype=torch.float32)
    got = ef21fast.scatter_add(out, idx, val)
    assert got is out and out.data_ptr() != 0
    assert np.array_equal(out.numpy(), ef21fast.scatter_add(np.zeros(x.shape[1],
                                                                     np.float32),
                                                            ref_idx, ref_val))
    error = torch.zeros_like(grad)
    ptr = error.data_ptr()
    ef21fast.ef_step(grad, error, 3, lr=0.5)
    assert error.data_ptr() == ptr and error.abs().sum() > 0


def test_inputs_are_views_not_copies():
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    for role in ("data", "state", "out", "val"):
        assert _tensors.as_array("x", t, role).ctypes.data == t.data_ptr()
    i = torch.arange(4)
    assert _tensors.as_array("idx", i, "idx").ctypes.data == i.data_ptr()
    x = torch.from_numpy(_data()[0])
    idx, val = ef21fast.topk(x, 5)
    assert torch.equal(val, x[idx])  # values gathered from x's own memory
    one = torch.from_numpy(np.arange(6, dtype=np.float32))
    idx, val = ef21fast.topk(one, 2)
    assert isinstance(idx, torch.Tensor) and idx.tolist() == [4, 5]


def test_non_contiguous_and_grad_requiring_read_inputs_work():
    x = _data(n=4, d=30)
    t = torch.from_numpy(x.T.copy()).T  # non-contiguous view, values of x
    assert not t.is_contiguous()
    assert _bits(ef21fast.topk(t, 6)[1]) == _bits(ef21fast.topk(x, 6)[1])
    g = torch.from_numpy(x.copy()).requires_grad_(True)
    state = torch.zeros(x.shape, dtype=torch.float32)
    ef21fast.ef21_step(g[:, ::1], state, 3)
    ref = np.zeros_like(x)
    ef21fast.ef21_step(x, ref, 3)
    assert np.array_equal(state.numpy(), ref)
    assert ef21fast.topk(torch.from_numpy(x[0]), torch.tensor(2))[0].shape == (2,)


def test_tensors_and_arrays_mix():
    x = _data()
    state = torch.zeros(x.shape, dtype=torch.float32)
    idx, val = ef21fast.ef21_step(x, state, 2)  # array in, tensor updated
    assert isinstance(idx, torch.Tensor) and state.abs().sum() > 0
    out = np.zeros(x.shape[1], np.float32)
    assert ef21fast.scatter_add(out, idx, val) is out
    assert np.count_nonzero(out) == idx.numel()


META = dict(device="meta")


def _rejections():
    f32 = dict(dtype=torch.float32)
    x = torch.ones(2, 8, **f32)
    idx = torch.zeros(2, 3, dtype=torch.int64)
    val = torch.ones(2, 3, **f32)
    out = torch.zeros(8, **f32)
    return [
        ("topk", (torch.ones(8, **META), 2), {}, TypeError, "x must be a CPU tensor"),
        ("topk", (torch.ones(8, dtype=torch.float16), 2), {}, TypeError,
         "x must have dtype float32 or float64, got tensor dtype torch.float16"),
        ("topk", (torch.ones(8, dtype=torch.bfloat16), 2), {}, TypeError,
         "x must have dtype float32 or float64, got tensor dtype torch.bfloat16"),
        ("topk", (torch.ones(8, dtype=torch.int32), 2), {}, TypeError, "x must have dtype"),
        ("topk", (torch.eye(4, **f32).to_sparse(), 2), {}, TypeError,
         "x must be a dense"),
        ("topk", (x, torch.tensor(2.0)), {}, TypeError, "k must be an integer"),
        ("ef21_step", (x, torch.zeros(2, 8, **META), 2), {}, TypeError,
         "state must be a CPU tensor"),
        ("ef21_step", (x, torch.zeros(2, 8, dtype=torch.bfloat16), 2), {}, TypeError,
         "state must have dtype"),
        ("ef21_step", (x, torch.zeros(2, 8, **f32, requires_grad=True), 2), {}, ValueError,
         "state is updated in place and must not require grad"),
        ("ef21_step", (x, torch.zeros(8, 2, **f32).T, 2), {}, ValueError,
         "state is updated in place and must be a contiguous tensor"),
        ("ef21_step", (x, torch.zeros(2, 8, **f32)._neg_view(), 2), {}, ValueError,
         "state is updated in place and must not be a lazily negated view"),
        ("ef21_step", (x, torch.zeros(2, 8, dtype=torch.float64), 2), {}, TypeError,
         "state must have the same dtype"),
        ("ef21_step", (x, torch.zeros(2, 8, **f32), 2), {"scale": torch.ones(2, **META)},
         TypeError, "scale must be a CPU tensor"),
        ("ef21_step", (x, torch.zeros(2, 8, **f32), 2),
         {"scale": torch.ones(2, dtype=torch.bfloat16)}, TypeError, "scale must hold real"),
        ("ef21_step", (x.to(**META), np.zeros((2, 8), np.float32), 2), {}, TypeError,
         "grad must be a CPU tensor"),
        ("ef_step", (x, torch.zeros(2, 8, **f32, requires_grad=True), 2), {}, ValueError,
         "error is updated in place and must not require grad"),
        ("ef_step", (x, torch.zeros(2, 16, **f32)[:, ::2], 2), {}, ValueError,
         "error is updated in place and must be a contiguous tensor"),
        ("ef_step", (x, torch.zeros(2, 8, **f32), 2, torch.tensor(1.0, **META)), {},
         TypeError, "lr must be a CPU tensor"),
        ("scatter_add", (out.to(**META), idx, val), {}, TypeError,
         "out must be a CPU tensor"),
        ("scatter_add", (torch.zeros(8, **f32, requires_grad=True), idx, val), {},
         ValueError, "out is updated in place and must not require grad"),
        ("scatter_add", (torch.zeros(16, **f32)[::2], idx, val), {}, ValueError,
         "out is updated in place and must be a contiguous tensor"),
        ("scatter_add", (out, idx.to(**META), val), {}, TypeError,
         "idx must be a CPU tensor"),
        ("scatter_add", (out, idx.bool(), val), {}, TypeError, "idx must hold integers"),
        ("scatter_add", (out, idx.float(), val), {}, TypeError, "idx must hold integers"),
        ("scatter_add", (out, idx, val.half()), {}, TypeError, "val must have dtype"),
        ("scatter_add", (out, idx, val.double()), {}, TypeError,
         "val must have the dtype of out"),
        ("scatter_add", (out, idx, val), {"weights": torch.ones(2, **META)}, TypeError,
         "weights must be a CPU tensor"),
        ("scatter_add", (out, idx, val), {"backend": torch.ones(1)}, TypeError,
         "backend must not be a tensor"),
    ]


@pytest.mark.parametrize("case", range(len(_rejections())))
def test_tensors_that_cannot_be_served_are_rejected_naming_the_argument(case):
    kernel, args, kwargs, exc, text = _rejections()[case]
    before = [a.clone() for a in args if isinstance(a, torch.Tensor)
              and a.device.type == "cpu" and not a.is_sparse]
    with pytest.raises(exc, match=text.replace("(", r"\(").replace(")", r"\)")):
        getattr(ef21fast, kernel)(*args, **kwargs)
    after = [a for a in args if isinstance(a, torch.Tensor) and a.device.type == "cpu"
             and not a.is_sparse]
    for b, a in zip(before, after):
        assert torch.equal(b.resolve_neg(), a.resolve_neg())  # nothing was touched


def test_is_tensor_needs_no_torch_import():
    assert not _tensors.is_tensor(np.zeros(3))
    assert _tensors.is_tensor(torch.zeros(3))


def test_backends_leave_torchs_thread_count_alone():
    """Loading the backends and setting their thread count leave torch's own count as it
    was (with the C module loaded first, Numba's OpenMP layer starting up set torch's
    count to NUMBA_NUM_THREADS), in a fresh interpreter, where the layers start."""
    import subprocess
    import sys
    import tempfile

    code = (
        "import numpy as np, torch, ef21fast\n"
        "from ef21fast.backends import registry\n"
        "torch.set_num_threads(1)\n"
        "ef21fast.set_num_threads(2)\n"
        "for name in registry.BACKENDS:\n"
        "    assert torch.get_num_threads() == 1, (name, torch.get_num_threads())\n"
        "    registry.load_backend(name)\n"
        "    ef21fast.topk(np.ones((64, 20000)), 3, backend=name)\n"
        "ef21fast.set_num_threads(1)\n"
        "assert torch.get_num_threads() == 1, torch.get_num_threads()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr[-3000:]
