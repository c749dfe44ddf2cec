"""float32 problems (``Problem(dtype="float32")``, ``ef21fast run --dtype float32``): the
oracles, the methods' states and the kernels in float32, the trace within a stated
tolerance of the float64 one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from ef21fast import cli
from ef21fast.methods.algorithms import run
from ef21fast.methods.data import ClientData, make_synthetic
from ef21fast.methods.ef21 import EF21
from ef21fast.methods.problems import LinearRegression, LogisticRegression

#: ||grad f||^2 and f of a float32 trace against the float64 one, relative, over 300
#: rounds while ||grad f||^2 stays above 1e-6 of its start (measured: at most 4e-6 and
#: 1.6e-6 on these problems; float32 rounding is 6e-8).
RTOL = 1e-4

METHODS = [("ef21", {}), ("ef21-w", {}), ("ef14", {}), ("ef21-sgd", {"batch": 4}),
           ("ef21-pp", {"p": 0.5}), ("gd", {})]


def synthetic(kind):
    return make_synthetic(n=50, kind=kind, seed=0)


def close_traces(t32, t64):
    keep = t64.grad_norm_sq > 1e-6 * t64.grad_norm_sq[0]
    assert keep.sum() >= 5
    for a, b in ((t32.grad_norm_sq, t64.grad_norm_sq), (t32.f, t64.f)):
        rel = np.abs(a[keep] - b[keep]) / np.abs(b[keep])
        assert rel.max() <= RTOL, rel.max()


@pytest.mark.parametrize("cls", [LogisticRegression, LinearRegression])
@pytest.mark.parametrize("method, kw", METHODS)
def test_float32_trace_matches_float64(cls, method, kw):
    cd = synthetic(cls.kind)
    p64, p32 = cls(cd), cls(cd, dtype="float32")
    assert (p32.L, list(p32.L_i)) == (p64.L, list(p64.L_i))  # from the float64 data
    opts = dict(k=1, gamma="theory-am", iters=300, seed=1, **kw)
    t64, t32 = run(p64, method, **opts), run(p32, method, **opts)
    assert t32.status == t64.status == "completed"
    assert np.array_equal(t32.bits, t64.bits)
    close_traces(t32, t64)


@pytest.mark.parametrize("sparse", [False, True])
def test_float32_oracles_and_states(sparse):
    cd = synthetic("logreg")
    if sparse:
        cd = ClientData(sp.csr_matrix(cd.A), cd.b, cd.offsets, "s")
    p32, p64 = LogisticRegression(cd, dtype="float32"), LogisticRegression(cd)
    assert p32.oracle == p64.oracle  # the fused C oracles have float32 passes
    numpy32 = LogisticRegression(cd, dtype="float32", oracle="numpy")
    x = np.linspace(-1, 1, cd.d)
    G = p32.client_grads(x)
    assert G.dtype == np.float32 and G.flags.c_contiguous
    np.testing.assert_allclose(G, p64.client_grads(x), rtol=1e-4,
                               atol=1e-5 * np.abs(G).max())
    np.testing.assert_allclose(G, numpy32.client_grads(x), rtol=1e-4,
                               atol=1e-5 * np.abs(G).max())
    S = p32.client_stochastic_grads(x, 3, np.random.default_rng(0))
    assert S.dtype == np.float32
    m = EF21(p32, k=1, gamma=1e-3)
    m.start(np.zeros(cd.d))
    assert m.state.dtype == np.float32 and m.g.dtype == np.float32
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        LogisticRegression(cd, dtype="float16")
    if sparse:  # a float32 copy of the values only: the index arrays are the data's
        A32, A = p32._A, p64._A
        assert A32.dtype == np.float32 and not np.shares_memory(A32.data, A.data)
        assert np.shares_memory(A32.indices, A.indices)
        assert np.shares_memory(A32.indptr, A.indptr)


def test_run_dtype_float32_cli(tmp_path, capsys):
    out = {}
    for dtype in ("float64", "float32"):
        rc = cli.main(["run", "--problem", "logreg", "--data", "synthetic", "--clients",
                       "30", "--method", "ef21", "--iters", "200", "--quiet", "--dtype",
                       dtype, "--out", str(tmp_path / dtype)])
        capsys.readouterr()
        assert rc == 0
        summary = json.loads((tmp_path / dtype / "summary.json").read_text())
        assert summary["dtype"] == dtype
        out[dtype] = np.genfromtxt(tmp_path / dtype / "trace.csv", delimiter=",",
                                   names=True)
    a, b = out["float32"], out["float64"]
    for col in ("grad_norm_sq", "f"):
        np.testing.assert_allclose(a[col], b[col], rtol=RTOL)
