"""Run to run, every op gives bitwise the same outputs and gradients (no atomics: split reductions write
partial sums that one kernel adds in a fixed order; pooling's backward gathers).

Only a GPU can show a race: Triton's interpreter runs the programs of a launch one after another, so on the
CPU these tests are skipped rather than passing without meaning.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest import DEVICE

import kernels

pytestmark = pytest.mark.skipif(DEVICE.type != "cuda",
                                reason="the interpreter runs programs one at a time: no race can show on the CPU")

CL = torch.channels_last


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, **kwargs) -> torch.Tensor:
    return kernels.conv2d(x, w, b, **kwargs)


# name: (input shape, weight shape or None, op, channels_last, dtype); shapes large enough for split-K weight
# gradients and split bias sums on a GPU
CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...] | None, Callable, bool, torch.dtype]] = {
    "conv2d 3x3 bf16 NHWC": ((8, 64, 28, 28), (64, 64, 3, 3), lambda x, w, b: _conv(x, w, b, padding=1), True,
                             torch.bfloat16),
    "conv2d 7x7 stem fp32": ((8, 3, 64, 64), (32, 3, 7, 7), lambda x, w, b: _conv(x, w, b, stride=2, padding=3),
                             False, torch.float32),
    "conv2d grouped stride 2 fp16": ((4, 32, 30, 30), (64, 8, 3, 3),
                                     lambda x, w, b: _conv(x, w, b, stride=2, padding=1, groups=4), False,
                                     torch.float16),
    "depthwise 7x7 bf16 NHWC": ((8, 96, 28, 28), (96, 1, 7, 7),
                                lambda x, w, b: _conv(x, w, b, padding=3, groups=96), True, torch.bfloat16),
    "conv_transpose2d stride 2 bf16 NHWC": ((4, 64, 16, 16), (64, 32, 4, 4),
                                            lambda x, w, b: kernels.conv_transpose2d(x, w, b, stride=2, padding=1),
                                            True, torch.bfloat16),
    "fused gelu + residual bf16": ((4, 64, 16, 16), (64, 64, 3, 3),
                                   lambda x, w, b: kernels.conv2d(x, w, b, padding=1, activation="gelu",
                                                                  residual=x), True, torch.bfloat16),
    "max_pool2d 3x3 stride 2": ((8, 64, 56, 56), None, lambda x, w, b: kernels.max_pool2d(x, 3, 2, 1), True,
                                torch.bfloat16),
    "avg_pool2d 3x3 stride 1": ((8, 64, 28, 28), None, lambda x, w, b: kernels.avg_pool2d(x, 3, 1, 1), False,
                                torch.float16),
    "adaptive_avg_pool2d global": ((8, 256, 7, 7), None, lambda x, w, b: kernels.adaptive_avg_pool2d(x, 1), True,
                                   torch.bfloat16),
}


def _run(case: str, seed: int) -> list[torch.Tensor]:
    x_shape, w_shape, op, channels_last, dtype = CASES[case]
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def rand(shape: tuple[int, ...]) -> torch.Tensor:
        t = torch.randn(shape, generator=gen, device=DEVICE).to(dtype)
        return t.contiguous(memory_format=CL) if channels_last and t.dim() == 4 else t

    x = rand(x_shape).requires_grad_()
    w = rand(w_shape).requires_grad_() if w_shape else None
    b = rand((w_shape[1] if "transpose" in case else w_shape[0],)).requires_grad_() if w_shape else None
    out = op(x, w, b)
    grad = torch.randn(out.shape, generator=gen, device=DEVICE).to(dtype)
    leaves = [t for t in (x, w, b) if t is not None]
    return [out.detach(), *torch.autograd.grad(out, leaves, grad)]


@pytest.mark.parametrize("case", list(CASES))
def test_bitwise_equal_run_to_run(case: str) -> None:
    first, second = _run(case, 0), _run(case, 0)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b), f"{case}: two runs differ"
