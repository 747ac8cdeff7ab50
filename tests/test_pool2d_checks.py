"""Pooling's argument checks, shape arithmetic and modules.

* Every bad input raises the exception torch raises for it, type and message (found by calling torch,
  compared as ``torch_errors.assert_raises_like_torch`` describes).
* ``kernels.pool_shapes`` agrees with torch's output sizes and with a brute-force count of the adaptive
  windows; its bounds on window lengths and window overlaps hold.
* The modules subclass their torch.nn twins, construct and print as they do, and compute the same.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch_errors import assert_raises_like_torch

import kernels
from kernels.functional.pool2d import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from kernels.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from kernels.pool_shapes import (
    adaptive_max_cover,
    adaptive_max_window,
    adaptive_pool2d_geometry,
    adaptive_window,
    avg_pool2d_geometry,
    max_pool2d_geometry,
    pool2d_bytes,
    pool_output_size,
    window_max_cover,
)
from kernels.shapes import prefers_channels_last

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")

OURS = {
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "adaptive_max_pool2d": adaptive_max_pool2d,
}


def _x(*shape: int) -> torch.Tensor:
    return torch.randn(shape, device=DEVICE)


# (op, input shape or a non-tensor, positional args, keyword args)
BAD = [
    ("max_pool2d", (2, 3, 8, 8), (0,), {}),
    ("max_pool2d", (2, 3, 8, 8), (-1, 1), {}),
    ("max_pool2d", (2, 3, 8, 8), ((0, 2), 1), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, 0), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, -1), {}),
    ("max_pool2d", (2, 3, 8, 8), (3, 1, 2), {}),
    ("max_pool2d", (2, 3, 8, 8), (3, 1, 2), dict(dilation=2)),       # pad > kernel // 2
    ("max_pool2d", (2, 3, 8, 8), (3, 1, 3), dict(dilation=2)),
    ("max_pool2d", (2, 3, 8, 8), (1, 1, 1), {}),
    ("max_pool2d", (2, 3, 8, 8), (3, 1, -1), {}),
    ("max_pool2d", (2, 3, 8, 8), (3, 1, 0, 0), {}),
    ("max_pool2d", (2, 3, 8, 8), ((2, 2, 2),), {}),
    ("max_pool2d", (2, 3, 8, 8), ((),), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, (1, 1, 1)), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, 1, (0, 0, 0)), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, 1, ()), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, 1, 0, (1, 1, 1)), {}),
    ("max_pool2d", (2, 3, 8, 8), (2.0,), {}),
    ("max_pool2d", (2, 3, 8, 8), (True,), {}),
    ("max_pool2d", (2, 3, 8, 8), ("a",), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, 1, 0.0), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, 1, 0, 1.0), {}),
    ("max_pool2d", (2, 3, 8, 8), (2,), dict(ceil_mode=1)),
    ("max_pool2d", (2, 3, 8, 8), (2,), dict(ceil_mode=1, return_indices=True)),
    ("max_pool2d", (8, 8), (2,), {}),
    ("max_pool2d", (8,), (2,), {}),
    ("max_pool2d", (1, 1, 1, 8, 8), (2,), {}),
    ("max_pool2d", (2, 0, 8, 8), (2,), {}),
    ("max_pool2d", (2, 3, 0, 8), (2,), {}),
    ("max_pool2d", (0, 8, 8), (2,), {}),
    ("max_pool2d", (0, 3, 0, 8), (2,), {}),
    ("max_pool2d", (2, 3, 2, 2), (3,), {}),
    ("max_pool2d", (2, 3, 1, 8), (2, 1, 1, 3), {}),
    ("max_pool2d", "not a tensor", (2,), {}),
    ("max_pool2d", "not a tensor", (2,), dict(return_indices=True)),
    ("max_pool2d", (2, 3, 8, 8), ((2.0, 2),), {}),
    ("max_pool2d", (2, 3, 8, 8), ((True, 2),), {}),
    ("max_pool2d", (2, 3, 8, 8), (2, (1.0,)), {}),
    ("max_pool2d", (2, 3, 8, 8), (2.5,), dict(ceil_mode=1)),
    ("max_pool2d", (2, 3, 8, 8), ((2, 2, 2), 1.0), {}),
    ("max_pool2d", (2, 3, 8, 8), (2,), dict(padding=None)),
    ("max_pool2d", (2, 3, 8, 8), (2.0,), dict(return_indices=True)),
    ("max_pool2d", (2, 3, 8, 8), ((2, 2, 2),), dict(return_indices=True)),
    ("max_pool2d", (2, 3, 8, 8), (2, 1, 2), dict(return_indices=True)),
    ("max_pool2d", (8,), (2,), dict(return_indices=True)),
    ("avg_pool2d", (2, 3, 8, 8), (0,), {}),
    ("avg_pool2d", (2, 3, 8, 8), ((0, 2), 1), {}),
    ("avg_pool2d", (2, 3, 8, 8), (-1, 1), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, 0), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, -1), {}),
    ("avg_pool2d", (2, 3, 8, 8), (3, 1, 2), {}),
    ("avg_pool2d", (2, 3, 8, 8), (3, 1, -1), {}),
    ("avg_pool2d", (2, 3, 8, 8), (3, 1, 1), dict(divisor_override=0)),
    ("avg_pool2d", (2, 3, 8, 8), (3, 1, 1), dict(divisor_override=2.0)),
    ("avg_pool2d", (2, 3, 8, 8), (3, 1, 1), dict(divisor_override=True)),
    ("avg_pool2d", (2, 3, 8, 8), (3,), dict(count_include_pad=1)),
    ("avg_pool2d", (2, 3, 8, 8), (3,), dict(ceil_mode=1)),
    ("avg_pool2d", (2, 3, 8, 8), ((2, 2, 2),), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, (1, 1, 1)), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, 2, (1, 1, 1)), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, 2, ()), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2.0,), {}),
    ("avg_pool2d", (2, 3, 8, 8), ("a",), {}),
    ("avg_pool2d", (8, 8), (2,), {}),
    ("avg_pool2d", (8,), (2,), {}),
    ("avg_pool2d", (), (2,), {}),
    ("avg_pool2d", (1, 1, 1, 8, 8), (2,), {}),
    ("avg_pool2d", (2, 0, 8, 8), (2,), {}),
    ("avg_pool2d", (2, 3, 0, 8), (2,), {}),
    ("avg_pool2d", (0, 8, 8), (2,), {}),
    ("avg_pool2d", (2, 3, 2, 2), (3,), {}),
    ("avg_pool2d", "not a tensor", (2,), {}),
    ("avg_pool2d", (2, 3, 8, 8), ((2.0, 2),), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2.5,), dict(ceil_mode=1)),
    ("avg_pool2d", (2, 3, 8, 8), ((2, 2, 2), 1.0), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2,), dict(count_include_pad=1, ceil_mode=1)),
    ("avg_pool2d", (2, 3, 8, 8), (2,), dict(divisor_override=1.0, count_include_pad=1)),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), (-1,), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), ((2, -3),), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), ((1, 2, 3),), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), ([2],), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), (None,), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), (2.0,), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), ((2.0, 2),), {}),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), (True,), {}),
    ("adaptive_avg_pool2d", (8, 8), (2,), {}),
    ("adaptive_avg_pool2d", (8,), (2,), {}),
    ("adaptive_avg_pool2d", (1, 1, 1, 8, 8), (2,), {}),
    ("adaptive_avg_pool2d", (2, 3, 0, 8), (2,), {}),
    ("adaptive_avg_pool2d", (0, 3, 8, 0), (2,), {}),
    ("adaptive_avg_pool2d", "not a tensor", (2,), {}),
    ("adaptive_max_pool2d", (2, 3, 8, 8), (-1,), {}),
    ("adaptive_max_pool2d", (2, 3, 8, 8), ((2, -3),), {}),
    ("adaptive_max_pool2d", (2, 3, 8, 8), ((1, 2, 3),), {}),
    ("adaptive_max_pool2d", (2, 3, 8, 8), ([2],), {}),
    ("adaptive_max_pool2d", (2, 3, 8, 8), ((2.0, 2),), {}),
    ("adaptive_max_pool2d", (8, 8), (2,), {}),
    ("adaptive_max_pool2d", (1, 1, 1, 8, 8), (2,), {}),
    ("adaptive_max_pool2d", (2, 0, 8, 8), (2,), {}),
    ("adaptive_max_pool2d", (2, 3, 0, 8), (2,), {}),
    ("adaptive_max_pool2d", "not a tensor", (2,), {}),
    ("adaptive_max_pool2d", "not a tensor", (2, True), {}),
]


def _bad_id(case) -> str:
    op, shape, args, kwargs = case
    return f"{op}-{shape}-{args}-{kwargs}".replace(" ", "")


@pytest.mark.parametrize("case", BAD, ids=[_bad_id(c) for c in BAD])
def test_bad_input_raises_like_torch(case) -> None:
    op, shape, args, kwargs = case
    x = _x(*shape) if isinstance(shape, tuple) else shape
    assert_raises_like_torch(getattr(F, op), OURS[op], x, *args, **kwargs)


@pytest.mark.parametrize("op", list(OURS))
def test_integer_input_rejected(op: str) -> None:
    """Integer tensors: torch's adaptive pools raise NotImplementedError; so do all of ours (torch's
    max_pool2d/avg_pool2d accept them, these kernels take floating dtypes only)."""
    x = torch.randint(0, 5, (2, 3, 8, 8), device=DEVICE)
    with pytest.raises(NotImplementedError):
        OURS[op](x, 2)


GOOD = [
    ("max_pool2d", (2, 3, 8, 8), (2, ()), {}),                # empty stride: the kernel size
    ("max_pool2d", (2, 3, 8, 8), (2, [1]), {}),
    ("max_pool2d", (2, 3, 8, 8), ([3],), {}),
    ("max_pool2d", (2, 3, 8, 8), (torch.tensor(2),), {}),
    ("max_pool2d", (1, 1, 5, 5), (5, 1, 2), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, ()), {}),
    ("avg_pool2d", (2, 3, 8, 8), (2, None), {}),
    ("avg_pool2d", (1, 1, 5, 5), (4, 3, 2), dict(ceil_mode=True)),
    ("adaptive_avg_pool2d", (2, 3, 8, 8), ((None, None),), {}),
    ("adaptive_avg_pool2d", (0, 8, 8), (2,), {}),
    ("adaptive_avg_pool2d", (2, 0, 8, 8), (2,), {}),
    ("adaptive_max_pool2d", (0, 8, 8), (2,), {}),
    ("adaptive_max_pool2d", (2, 3, 8, 8), (torch.Size([3, 2]),), {}),
]


@pytest.mark.parametrize("case", GOOD, ids=[_bad_id(c) for c in GOOD])
def test_unusual_but_valid_arguments(case) -> None:
    op, shape, args, kwargs = case
    x = _x(*shape)
    ours = OURS[op](x, *args, **kwargs)
    ref = getattr(F, op)(x, *args, **kwargs)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------------
# Shape arithmetic


def test_output_size_matches_torch() -> None:
    """Torch's output-size rule, ceil_mode's dropped last window included, over a sweep of arguments."""
    for size, k, s, d, ceil in itertools.product(range(1, 9), (1, 2, 3, 4), (1, 2, 3), (1, 2), (False, True)):
        for pad in range(0, ((k - 1) * d + 1) // 2 + 1):
            if pad > k // 2:
                continue
            expected = pool_output_size(size, k, s, pad, d, ceil)
            if expected < 1:
                continue
            x = torch.empty(1, 1, size, 1, device="meta")
            ref = F.max_pool2d(x, (k, 1), (s, 1), (pad, 0), (d, 1), ceil_mode=ceil)
            assert ref.shape[2] == expected, (size, k, s, pad, d, ceil)


def test_adaptive_bounds_hold() -> None:
    """The window-length and overlap bounds the kernels loop over, checked by brute force."""
    for size in range(1, 24):
        for out in range(1, 30):
            windows = [adaptive_window(i, size, out) for i in range(out)]
            assert all(0 <= a < b <= size for a, b in windows)
            assert max(b - a for a, b in windows) <= adaptive_max_window(size, out)
            cover = max(sum(a <= h < b for a, b in windows) for h in range(size))
            assert cover <= adaptive_max_cover(size, out)
            if size % out == 0 or out % size == 0:
                assert cover == adaptive_max_cover(size, out)


def test_window_cover_bound() -> None:
    for size, k, s, d in itertools.product(range(1, 12), (1, 2, 3, 5), (1, 2, 3), (1, 2, 3)):
        pad = min(k // 2, ((k - 1) * d + 1) // 2)
        n = pool_output_size(size, k, s, pad, d, True)
        if n < 1:
            continue
        for h in range(size):
            cover = sum(p * s - pad <= h <= p * s - pad + d * (k - 1) for p in range(n))
            assert cover <= window_max_cover(k, s, d)


def test_geometries() -> None:
    g = max_pool2d_geometry((2, 3, 9, 11), 3, 2, 1, 1, True)
    assert g.output_shape == (2, 3, 5, 6) and not g.adaptive
    g = avg_pool2d_geometry((3, 9, 11), (2, 3), None, 0, False, False, 4)
    assert (g.N, g.P, g.Q, g.divisor, g.count_include_pad) == (1, 4, 3, 4, False)
    g = adaptive_pool2d_geometry((2, 3, 9, 11), (None, 1), "adaptive_avg_pool2d")
    assert g.output_shape == (2, 3, 9, 1) and g.adaptive and not g.is_global
    assert adaptive_pool2d_geometry((2, 3, 9, 11), 1, "adaptive_max_pool2d").is_global


def test_pool2d_bytes() -> None:
    g = max_pool2d_geometry((2, 3, 8, 8), 2)
    assert pool2d_bytes(g, torch.float32) == 2 * 3 * (64 + 16) * 4
    # saved maxima: torch's int64 indices when returned, else one byte per output
    assert pool2d_bytes(g, torch.float16, indices=True, return_indices=True) == 2 * 3 * (64 + 16) * 2 + 2 * 3 * 16 * 8
    assert pool2d_bytes(g, torch.float16, indices=True) == 2 * 3 * (64 + 16) * 2 + 2 * 3 * 16
    wide = max_pool2d_geometry((2, 3, 40, 40), 17, 1)  # 289 positions per window: int64 indices
    assert pool2d_bytes(wide, torch.float16, indices=True) == 2 * 3 * (1600 + 24 * 24) * 2 + 2 * 3 * 24 * 24 * 8


@pytest.mark.parametrize("make", [
    lambda: torch.randn(2, 3, 4, 5),
    lambda: torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last),
    lambda: torch.randn(2, 5, 4, 3).permute(0, 3, 2, 1),
    lambda: torch.randn(2, 4, 5, 3).permute(0, 3, 1, 2)[:, :, ::2],
    lambda: torch.randn(2, 1, 4, 5).contiguous(memory_format=torch.channels_last),
    lambda: torch.randn(2, 3, 1, 1).contiguous(memory_format=torch.channels_last),
    lambda: torch.randn(0, 3, 4, 5).contiguous(memory_format=torch.channels_last),
    lambda: torch.randn(2, 3, 4, 5)[:, :1].expand(2, 3, 4, 5),
], ids=["nchw", "nhwc", "nwhc", "nhwc_slice", "c1_nhwc", "hw1_nhwc", "n0_nhwc", "expand"])
def test_layout_rule_matches_torch(make) -> None:
    """Our rule for the output memory format is torch's ``suggest_memory_format``."""
    t = make()
    ref = F.avg_pool2d(t, 1)
    fmt = torch.channels_last if prefers_channels_last(t) else torch.contiguous_format
    assert ref.stride() == torch.empty(ref.shape, memory_format=fmt).stride()
    assert avg_pool2d(t, 1).stride() == ref.stride()


# --------------------------------------------------------------------------------------------------------
# Modules

MODULES = [
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)),
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=(2, 3), return_indices=True)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=2, ceil_mode=True, divisor_override=3)),
    (AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, dict(output_size=(3, None))),
    (AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, dict(output_size=1)),
    (AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d, dict(output_size=(3, 4), return_indices=True)),
]


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), MODULES, ids=lambda v: getattr(v, "__name__", ""))
def test_modules(ours, theirs, kwargs) -> None:
    mine, ref = ours(**kwargs), theirs(**kwargs)
    assert isinstance(mine, theirs)
    assert repr(mine) == repr(ref)
    assert mine.state_dict().keys() == ref.state_dict().keys()
    x = _x(2, 3, 9, 10).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, expected = mine(x), ref(x_ref)
    if isinstance(expected, tuple):
        assert torch.equal(out[1], expected[1])
        out, expected = out[0], expected[0]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
