"""examples/ddp_digits.py runs under torchrun with 2 processes (a few steps) and prints
what it promises."""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install "
                            "ef21fast[torch]); CI sets EF21FAST_EXPECT_TORCH=1")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ddp_digits.py"


def test_the_digits_example_trains_with_both_hooks_under_torchrun():
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", str(EXAMPLE), "--steps", "5"],
                          capture_output=True, text=True, timeout=120,
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "train loss" in ln]
    assert len(lines) == 2, proc.stdout
    assert lines[0].startswith("all-reduce") and lines[1].startswith("EF21 hook")
    mb = [float(re.search(r"sent\s+([\d.]+) MB", ln).group(1)) for ln in lines]
    assert 0 < mb[1] < mb[0]
    assert "digits, 2 processes, 5 full-batch steps" in proc.stdout
