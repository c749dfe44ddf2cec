"""EFState without processes: its options are checked, the EF arrays follow the
parameters through a new bucket layout, and a checkpoint restores them exactly."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install "
                            "ef21fast[torch]); CI sets EF21FAST_EXPECT_TORCH=1")
from ef21fast.ddp import EFState  # noqa: E402


class Bucket:
    """The GradBucket methods EFState uses."""

    def __init__(self, index, params):
        self._index, self._params = index, params

    def index(self):
        return self._index

    def parameters(self):
        return self._params


@pytest.mark.parametrize("kwargs,exc,text", [
    (dict(), ValueError, "exactly one of k"),
    (dict(k=3, ratio=0.1), ValueError, "exactly one of k"),
    (dict(k=0), ValueError, "k must be at least 1"),
    (dict(k=2.0), TypeError, "k must be an integer"),
    (dict(k=True), TypeError, "k must be an integer"),
    (dict(ratio=0.0), ValueError, "0 < ratio <= 1"),
    (dict(ratio=1.5), ValueError, "0 < ratio <= 1"),
    (dict(ratio="0.1"), TypeError, "ratio must be a real number"),
    (dict(k=3, method="ef22"), ValueError, "method must be one of"),
    (dict(k=3, method="ef21-w"), ValueError, "needs this rank's weight"),
    (dict(k=3, method="ef21-w", weight=-0.5), ValueError, "weight must be positive"),
    (dict(k=3, method="ef21-w", weight=float("nan")), ValueError, "weight must be"),
    (dict(k=3, method="ef21-w", weight="a"), TypeError, "weight must be a real"),
    (dict(k=3, weight=0.5), ValueError, "weight is for method 'ef21-w' only"),
    (dict(k=3, start_iter=-1), ValueError, "start_iter must be >= 0"),
    (dict(k=3, start_iter=1.0), TypeError, "start_iter must be an integer"),
    (dict(k=3, backend="cuda"), ValueError, "backend must be one of"),
])
def test_bad_options_are_rejected_naming_them(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        EFState(**kwargs)


def test_k_per_bucket():
    assert EFState(k=5).k_for(3) == 3 and EFState(k=5).k_for(100) == 5
    assert EFState(ratio=0.01).k_for(1000) == 10
    assert EFState(ratio=0.01).k_for(1001) == 11
    assert EFState(ratio=0.001).k_for(10) == 1


def _params():
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(n)) for n in (3, 5, 2)]


def test_state_follows_the_parameters_into_a_new_layout_and_a_checkpoint():
    a, b, c = _params()
    st = EFState(k=2)
    first = [Bucket(0, [a, b]), Bucket(1, [c])]
    for bucket in first:
        st.assign_keys(bucket)
    flat = st.flat_for(first[0], np.dtype(np.float32))
    flat.g[:] = np.arange(8)
    flat.G[:] = -np.arange(8)
    st.flat_for(first[1], np.dtype(np.float32)).g[:] = [10, 11]
    rebuilt = st.flat_for(Bucket(0, [c, b, a]), np.dtype(np.float32))
    assert rebuilt.g.tolist() == [10, 11, 3, 4, 5, 6, 7, 0, 1, 2]
    assert rebuilt.G.tolist() == [0, 0, -3, -4, -5, -6, -7, 0, -1, -2]

    sd = st.state_dict()
    assert set(sd["params"]) == {"0.0", "0.1", "1.0"}
    fresh = EFState(k=2)
    fresh.load_state_dict(sd)
    a2, b2, c2 = _params()
    for bucket in [Bucket(0, [a2, b2]), Bucket(1, [c2])]:  # DDP's first layout again
        fresh.assign_keys(bucket)
    again = fresh.flat_for(Bucket(0, [a2, b2]), np.dtype(np.float32))
    assert again.g.tolist() == list(range(8))
    assert fresh.flat_for(Bucket(1, [c2]), np.dtype(np.float32)).g.tolist() == [10, 11]
    assert fresh.iteration == st.iteration and fresh.bits_sent == st.bits_sent


def test_checkpoint_of_another_method_or_model_is_rejected():
    sd = EFState(k=2).state_dict()
    with pytest.raises(ValueError, match="method 'ef21'"):
        EFState(k=2, method="ef14").load_state_dict(sd)
    with pytest.raises(ValueError, match="format"):
        EFState(k=2).load_state_dict(dict(sd, format=99))
    a, = _params()[:1]
    st = EFState(k=2)
    st.assign_keys(Bucket(0, [a]))
    st.flat_for(Bucket(0, [a]), np.dtype(np.float32))
    sd = st.state_dict()
    other = EFState(k=2)
    other.load_state_dict(sd)
    bigger = torch.nn.Parameter(torch.zeros(7))
    other.assign_keys(Bucket(0, [bigger]))
    with pytest.raises(ValueError, match="not the same model"):
        other.flat_for(Bucket(0, [bigger]), np.dtype(np.float32))
