"""Receptive fields: NaN propagation through our kernels agrees with torch and with the layer arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import kernels.nn as knn
from kernels.functional.conv2d import conv2d
from kernels.functional.conv_transpose2d import conv_transpose2d
from kernels.functional.pool2d import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from kernels.receptive_field import receptive_field

OPS = {
    "conv": (conv2d, F.conv2d, lambda: (torch.randn(5, 3, 3, 3),), dict(stride=1, padding=1)),
    "conv_strided_dilated": (conv2d, F.conv2d, lambda: (torch.randn(5, 3, 3, 3),),
                             dict(stride=2, padding=2, dilation=2)),
    "depthwise": (conv2d, F.conv2d, lambda: (torch.randn(3, 1, 3, 3),), dict(padding=1, groups=3)),
    "conv_transpose": (conv_transpose2d, F.conv_transpose2d, lambda: (torch.randn(3, 2, 3, 3),),
                       dict(stride=2, padding=1)),
    "max": (max_pool2d, F.max_pool2d, lambda: (3, 2, 1), {}),
    "max_dilated_ceil": (max_pool2d, F.max_pool2d, lambda: (2, 2, 0, 2), dict(ceil_mode=True)),
    "avg": (avg_pool2d, F.avg_pool2d, lambda: (3, 2, 1), dict(count_include_pad=False)),
    "adaptive_avg": (adaptive_avg_pool2d, F.adaptive_avg_pool2d, lambda: ((3, 4),), {}),
    "adaptive_max": (adaptive_max_pool2d, F.adaptive_max_pool2d, lambda: ((3, 4),), {}),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN in the interpreter's numpy matmul
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_and_inf_propagate_like_torch(name: str, dtype: torch.dtype) -> None:
    ours, ref, make_args, kwargs = OPS[name]
    x = torch.randn(2, 3, 7, 7, dtype=dtype)
    x[0, 1, 3, 3] = float("nan")
    x[1, 2, 0, 6] = float("nan")
    x[1, 0, 5, 1] = float("inf")
    x[1, 1, 5, 1] = -float("inf")
    args = tuple(a.to(dtype) if isinstance(a, torch.Tensor) else a for a in make_args())
    a, b = ours(x, *args, **kwargs), ref(x, *args, **kwargs)
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.equal(a.isinf(), b.isinf())


def _net(layers: list[torch.nn.Module]) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(*layers)


def test_stack_matches_arithmetic_and_torch() -> None:
    layers = lambda conv, pool: [  # noqa: E731
        conv(1, 2, 3, padding=1), torch.nn.ReLU(), pool(2),
        conv(2, 2, 3, padding=2, dilation=2, groups=2), torch.nn.BatchNorm2d(2), conv(2, 1, 3, stride=2),
    ]
    ours = _net(layers(knn.Conv2d, knn.MaxPool2d))
    ref = _net(layers(torch.nn.Conv2d, torch.nn.MaxPool2d))
    ours.train()
    rf = receptive_field(ours, (1, 14, 14), chunk=196)
    assert ours.training and ours[4].training  # modes restored
    # r: 1 -> 3 -> 4 (pool, j=2) -> 4 + 2*2*2 = 12 -> 12 + 2*2 = 16; j = 4
    assert rf.size == (16, 16) and rf.jump == (4, 4)
    # 14 -> 14 -> 7 -> 7 -> 3: central output (1, 1), centred at start + 4 = 2.5 + 4 (start: +0.5 pool, +2 conv)
    assert rf.output_index == (1, 1) and rf.start == (2.5, 2.5)
    assert rf.compare() and rf.box == (0, 14, 0, 14)  # 16 wide: truncated at both borders
    assert torch.equal(rf.mask, receptive_field(ref, (1, 14, 14), chunk=196).mask)
    corner = receptive_field(ours, (1, 14, 14), output_index=(0, 0), chunk=196)
    assert corner.compare() and corner.box == (0, 11, 0, 11)  # truncated by the padding
    assert "size=(16, 16)" in str(rf)


def test_dilation_holes_and_influence() -> None:
    rf = receptive_field(_net([knn.Conv2d(1, 1, 3, dilation=2)]), (1, 9, 9))
    assert rf.size == (5, 5) and rf.compare()
    assert rf.mask.sum() == 9  # 3x3 taps spread over a 5x5 box
    assert rf.influence.sum() == 9  # the central input reaches the outputs one dilation step apart


def test_transposed_and_adaptive() -> None:
    net = _net([knn.ConvTranspose2d(1, 2, 3, padding=1), knn.AvgPool2d(2), knn.AdaptiveMaxPool2d(2)])
    rf = receptive_field(net, (1, 8, 8), output_index=(0, 1))
    assert rf.size == (6, 6) and rf.jump == (4, 4) and rf.compare()  # 3 -> 4 (j=2) -> 6 (j=4)
    strided = receptive_field(_net([knn.ConvTranspose2d(1, 1, 3, stride=2)]), (1, 4, 4))
    assert strided.size is None and "ConvTranspose2d" in (strided.reason or "")
    assert strided.box is not None
