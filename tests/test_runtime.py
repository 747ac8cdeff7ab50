"""Where the kernels run: the interpreter decision and the import order it depends on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import kernels


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without a GPU")
def test_interpreter_is_chosen_without_a_gpu():
    assert kernels.INTERPRETING
    assert os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without a GPU")
def test_triton_imported_before_kernels_still_works():
    """A user who imports triton first must not get compiler-built helpers inside interpreted kernels."""
    script = (
        "import triton, triton.language\n"
        "import torch, kernels\n"
        "x = torch.randn(1, 4, 6, 6, dtype=torch.float64)\n"
        "w = torch.randn(4, 1, 3, 3, dtype=torch.float64)\n"
        "y = kernels.conv2d(x, w, groups=4) - torch.nn.functional.conv2d(x, w, groups=4)\n"
        "z = kernels.adaptive_avg_pool2d(x, 1) - x.mean((2, 3), keepdim=True)\n"
        "assert y.abs().max() < 1e-12 and z.abs().max() < 1e-12\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_tensors_on_different_devices_raise():
    x = torch.randn(1, 2, 5, 5)
    w = torch.randn(2, 2, 3, 3, device="meta")
    with pytest.raises(RuntimeError, match="same device"):
        kernels.conv2d(x, w)
