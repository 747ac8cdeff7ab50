"""The aligned variant of the implicit-GEMM kernels (``VEC == 16``, ``kernels.jit.conv2d``): chosen exactly when
the channel axes are contiguous and the other strides and per-group channel counts are multiples of 16 in a
16-bit dtype, and then as exact as the general kernels (its large tiles included)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE

import kernels
from kernels.launch import KernelConfig, recording
from kernels.ops.conv2d import DGRAD, FWD, WGRAD

CL = torch.channels_last
GEMM_SPACES = ("conv2d_fwd_kernel", "conv2d_dgrad_kernel", "conv2d_wgrad_kernel")


def _units(fn) -> dict[str, int]:
    """The ``VEC`` each implicit-GEMM kernel was launched with while running ``fn``."""
    with recording() as launches:
        fn()
    return {r.space.name: r.constexprs["VEC"] for r in launches if r.space.name in GEMM_SPACES}


def _forward_backward(x, w, **kwargs):
    def run():
        out = kernels.conv2d(x, w, **kwargs)
        out.backward(torch.randn_like(out))
    return run


def _leaves(x_shape, w_shape, dtype=torch.bfloat16, fmt=CL):
    x = torch.randn(x_shape, dtype=dtype, device=DEVICE).to(memory_format=fmt).requires_grad_()
    w = torch.randn(w_shape, dtype=dtype, device=DEVICE).to(memory_format=fmt).requires_grad_()
    return x, w


def test_chosen_for_aligned_channels_last() -> None:
    x, w = _leaves((2, 32, 6, 5), (64, 16, 3, 3))
    assert _units(_forward_backward(x, w, padding=1, groups=2)) == dict.fromkeys(GEMM_SPACES, 16)


@pytest.mark.parametrize("case", ["nchw", "odd channels", "float32", "sliced channels"])
def test_general_otherwise(case: str) -> None:
    if case == "nchw":
        x, w = _leaves((2, 32, 6, 5), (64, 32, 3, 3), fmt=torch.contiguous_format)
    elif case == "odd channels":
        x, w = _leaves((2, 24, 6, 5), (40, 24, 3, 3))
    elif case == "float32":
        x, w = _leaves((2, 32, 6, 5), (64, 32, 3, 3), dtype=torch.float32)
    else:  # every other channel (channel stride 2): the kernels reading x are general; the input gradient,
        # from a channels_last output gradient into a fresh channels_last tensor, is aligned
        x, w = _leaves((2, 64, 6, 5), (32, 32, 3, 3))
        x = x.detach()[:, ::2].requires_grad_()
        units = _units(_forward_backward(x, w, padding=1))
        assert units == {"conv2d_fwd_kernel": 1, "conv2d_dgrad_kernel": 16, "conv2d_wgrad_kernel": 1}
        return
    assert set(_units(_forward_backward(x, w, padding=1)).values()) == {1}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kwargs", [
    {"padding": 1},
    {"stride": 2, "padding": 1, "groups": 2},
    {"dilation": 2, "padding": 2},
])
def test_matches_torch(kwargs: dict, dtype: torch.dtype, check_conv2d) -> None:
    x, w = _leaves((2, 32, 7, 6), (64, 32 // kwargs.get("groups", 1), 3, 3), dtype)
    b = torch.randn(64, dtype=dtype, device=DEVICE)
    assert _units(_forward_backward(x, w, **kwargs)) == dict.fromkeys(GEMM_SPACES, 16)
    check_conv2d(x.detach(), w.detach(), b, **kwargs)


def test_1x1_and_batch_slice(check_conv2d) -> None:
    """1x1 weights (size-1 dims with any stride) and a batch slice (a view) keep the aligned variant."""
    x, w = _leaves((4, 32, 5, 5), (16, 32, 1, 1))
    x_view = x.detach()[1:3]
    assert _units(_forward_backward(x_view.requires_grad_(), w, stride=2)) == dict.fromkeys(GEMM_SPACES, 16)
    check_conv2d(x.detach(), w.detach(), x_view=lambda t: t[1:3], stride=2)


@pytest.mark.parametrize("config", [c for c in FWD.configs if c["BLOCK_M"] * c["BLOCK_N"] >= 128 * 64])
def test_large_tiles_exact(config: KernelConfig, monkeypatch, assert_close) -> None:
    """Each large tile of the aligned variant, forced, against torch (forward and both gradients)."""
    from kernels import autotune

    monkeypatch.setattr(autotune._state, "forced", {FWD.name: config, DGRAD.name: config, WGRAD.name: config})
    x, w = _leaves((2, 32, 9, 8), (64, 32, 3, 3))
    out = kernels.conv2d(x, w, padding=1)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = F.conv2d(x64, w64, padding=1)
    assert_close(out, ref, torch.bfloat16, "output")
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, w), grad)
    expected = torch.autograd.grad(ref, (x64, w64), grad.double())
    for name, g, e in zip(("input", "weight"), got, expected, strict=True):
        assert_close(g, e, torch.bfloat16, f"grad of {name}")


def test_transposed_and_fused_epilogue(assert_close) -> None:
    x, w = _leaves((2, 16, 4, 4), (16, 32, 2, 2))
    skip = torch.randn(2, 32, 8, 8, dtype=torch.bfloat16, device=DEVICE).to(memory_format=CL)

    def run():
        out = kernels.conv_transpose2d(x, w, stride=2, activation="gelu", residual=skip)
        out.backward(torch.randn_like(out))

    assert set(_units(run).values()) == {16}
    out = kernels.conv_transpose2d(x, w, stride=2, activation="gelu", residual=skip)
    ref = F.gelu(F.conv_transpose2d(x.double(), w.double(), stride=2)) + skip.double()
    assert_close(out, ref, torch.bfloat16, "output")
