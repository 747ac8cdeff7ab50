"""Calls with nothing to differentiate skip the autograd Functions: same values and layout as the
differentiable path, outputs that do not require grad, and no graph."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE

import kernels

CL = torch.channels_last


def _leaves(*shapes: tuple[int, ...], channels_last: bool) -> list[torch.Tensor]:
    out = []
    for shape in shapes:
        t = torch.randn(shape, dtype=torch.float64, device=DEVICE)
        out.append(t.contiguous(memory_format=CL) if channels_last and t.dim() == 4 else t)
    return out


CASES = {
    "conv2d": lambda x, w, b: kernels.conv2d(x, w, b, padding=1, activation="relu"),
    "conv_transpose2d": lambda x, w, b: kernels.conv_transpose2d(x, w.transpose(0, 1), b, stride=2),
    "max_pool2d": lambda x, w, b: kernels.max_pool2d(x, 3, 2, 1, return_indices=True)[0],
    "avg_pool2d": lambda x, w, b: kernels.avg_pool2d(x, 3, 2, 1),
}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("op", list(CASES))
def test_no_grad_matches_the_differentiable_path(op: str, channels_last: bool) -> None:
    x, w, b = _leaves((2, 4, 7, 6), (6, 4, 3, 3), (6,), channels_last=channels_last)
    differentiable = CASES[op](*(t.requires_grad_() for t in (x, w, b)))
    assert differentiable.grad_fn is not None
    with torch.no_grad():
        plain = CASES[op](x, w, b)
    detached = CASES[op](x.detach(), w.detach(), b.detach())  # grad mode on, nothing requires grad
    for out in (plain, detached):
        assert out.grad_fn is None and not out.requires_grad
        assert out.stride() == differentiable.stride()
        torch.testing.assert_close(out, differentiable.detach(), rtol=0, atol=0)
