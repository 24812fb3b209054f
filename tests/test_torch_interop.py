"""neuropil's OpenMP kernels keep working when PyTorch (with its own libgomp) shares
the process, imported before or after neuropil. Each order runs in a fresh
interpreter; skipped when torch is not installed (CI does not install it)."""
import subprocess
import sys

import pytest

pytest.importorskip("torch")

CODE = r"""
import sys
sys.path.insert(0, {tests!r})
{first}
{second}
import numpy as np
import neuropil, torch
import _workloads as W
neuropil.set_num_threads(2)
torch.set_num_threads(2)
assert neuropil.get_num_threads() == 2
from neuropil import _kernels
assert _kernels.parallel_team_size(2) == 2
a = W.run_all(("gemm", "conv", "lstm", "fit"))
neuropil.set_num_threads(1)
b = W.run_all(("gemm", "conv", "lstm", "fit"))
assert W.same_bits(a, b), "thread count changed the bits"
x = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
ref = torch.from_numpy(x) @ torch.from_numpy(x)
neuropil.set_num_threads(2)
np.testing.assert_allclose(neuropil.functional.gemm(x, x), ref.numpy(), rtol=1e-4, atol=1e-3)
print("ok")
"""


@pytest.mark.parametrize("order", ["torch first", "neuropil first"])
def test_kernels_work_next_to_torch(order):
    import pathlib
    first, second = ("import torch", "import neuropil") if order == "torch first" else \
        ("import neuropil", "import torch")
    code = CODE.format(tests=str(pathlib.Path(__file__).parent), first=first, second=second)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
