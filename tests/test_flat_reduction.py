"""The flat reduction of the implicit-GEMM convolutions (``FLAT``, ``kernels.jit.conv2d``): with fewer channels per
group than a channel block and more than one tap, the forward and the weight gradient run their reduction over
the flattened (c, taps). These tests run such problems, 2-D and 3-D, against torch in float64 (output and every
gradient) and check from the recorded launches that the flat kernels ran, and that problems outside the rule
keep the tap loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, _assert_close

import kernels
from kernels.functional import conv3d as conv3d_ops
from kernels.launch import recording

FLAT_SPACES = {"conv2d_fwd_kernel", "conv2d_wgrad_kernel", "conv3d_fwd_kernel", "conv3d_wgrad_kernel"}


def _flat_launches(ours, ref, x_shape: tuple[int, ...], w_shape: tuple[int, ...], kwargs: dict,
                   memory_format: torch.memory_format | None = None, bias_size: int | None = None,
                   dtype: torch.dtype = torch.float64) -> dict[str, bool]:
    """Run ``ours`` in ``dtype`` and ``ref`` in float64 forward and backward on the same random leaves (a bias of
    ``bias_size`` when given), compare the output and every gradient, and return each GEMM kernel launched
    with its FLAT value."""
    x = torch.randn(x_shape, dtype=dtype, device=DEVICE)
    w = torch.randn(w_shape, dtype=dtype, device=DEVICE)
    if memory_format is not None:
        x, w = x.contiguous(memory_format=memory_format), w.contiguous(memory_format=memory_format)
    leaves = [x, w] + ([torch.randn(bias_size, dtype=dtype, device=DEVICE)] if bias_size else [])
    twins = [t.detach().clone().double().requires_grad_() for t in leaves]
    for t in leaves:
        t.requires_grad_()
    with recording(run=True) as launches:
        out = ours(*leaves[:2], leaves[2] if bias_size else None, **kwargs)
        grad = torch.randn_like(out)
        out.backward(grad)
    want = ref(*twins[:2], twins[2] if bias_size else None, **kwargs)
    want.backward(grad.double())
    _assert_close(out, want, dtype, "output")
    for got, twin, name in zip(leaves, twins, ("input", "weight", "bias"), strict=False):
        _assert_close(got.grad, twin.grad, dtype, f"gradient of the {name}")
    return {r.space.name: r.constexprs["FLAT"] for r in launches if r.space.name in FLAT_SPACES}


CASES_2D = {
    # name: (input shape, weight shape, keyword arguments)
    "stem-7x7s2": ((2, 3, 19, 20), (20, 3, 7, 7), dict(stride=2, padding=3)),
    "grouped-cg4": ((2, 8, 9, 10), (36, 4, 3, 3), dict(padding=1, groups=2)),
    "cg15-same": ((1, 15, 7, 9), (18, 15, 3, 3), dict(padding="same")),
    "one-row-kernel": ((2, 2, 5, 21), (9, 2, 1, 5), dict(padding=(0, 2), dilation=(1, 3))),
    "dilated-strided": ((2, 3, 17, 15), (34, 3, 3, 2), dict(stride=(2, 1), padding=(2, 1), dilation=2)),
}


@pytest.mark.parametrize("name", list(CASES_2D))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_conv2d_flat_matches_torch(name: str, channels_last: bool) -> None:
    x_shape, w_shape, kwargs = CASES_2D[name]
    fmt = torch.channels_last if channels_last else None
    bias_size = None if name == "cg15-same" else w_shape[0]
    flat = _flat_launches(kernels.conv2d, F.conv2d, x_shape, w_shape, kwargs, fmt, bias_size)
    assert flat == {"conv2d_fwd_kernel": True, "conv2d_wgrad_kernel": True}


def test_conv_transpose2d_to_three_channels_flat_backward() -> None:
    """A transposed convolution to 3 channels (a decoder's last layer): its input gradient is the forward kernel
    over the 3 channels, its weight gradient the weight-gradient kernel with the operands swapped: both flat."""
    flat = _flat_launches(kernels.conv_transpose2d, F.conv_transpose2d, (2, 12, 6, 7), (12, 3, 4, 4),
                          dict(stride=2, padding=1), bias_size=3)
    assert flat == {"conv2d_fwd_kernel": True, "conv2d_wgrad_kernel": True}


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), [
    ((2, 16, 6, 7), (8, 16, 3, 3), dict(padding=1)),   # 16 channels per group: the tap loop fills a block
    ((2, 3, 6, 7), (8, 3, 1, 1), {}),                  # one tap: nothing to flatten
], ids=["cg16", "1x1"])
def test_conv2d_outside_the_rule_keeps_the_tap_loop(x_shape, w_shape, kwargs) -> None:
    flat = _flat_launches(kernels.conv2d, F.conv2d, x_shape, w_shape, kwargs, bias_size=w_shape[0])
    assert flat == {"conv2d_fwd_kernel": False, "conv2d_wgrad_kernel": False}


def test_conv2d_flat_forward_with_a_residual_keeps_the_tap_loop() -> None:
    """An epilogue that reads a residual keeps the forward on the tap loop (``flat_valid``); the weight gradient
    is flat all the same."""
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, device=DEVICE, requires_grad=True)
    w = torch.randn(10, 3, 3, 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    res = torch.randn(2, 10, 9, 8, dtype=torch.float64, device=DEVICE)
    with recording(run=True) as launches:
        out = kernels.conv2d(x, w, None, padding=1, activation="relu", residual=res)
        out.sum().backward()
    want = F.relu(F.conv2d(x, w, None, padding=1)) + res
    torch.testing.assert_close(out, want)
    flat = {r.space.name: r.constexprs["FLAT"] for r in launches if r.space.name in FLAT_SPACES}
    assert flat == {"conv2d_fwd_kernel": False, "conv2d_wgrad_kernel": True}


CASES_3D = {
    "stem-3x7x7": ((1, 3, 4, 11, 12), (8, 3, 3, 7, 7), dict(stride=(1, 2, 2), padding=(1, 3, 3))),
    "grouped-cg2-dilated": ((2, 4, 5, 6, 7), (6, 2, 2, 3, 2), dict(padding=1, dilation=(1, 2, 1), groups=2)),
}


@pytest.mark.parametrize("name", list(CASES_3D))
@pytest.mark.parametrize(("dtype", "channels_last"), [(torch.float64, False), (torch.bfloat16, True)],
                         ids=["float64-ncdhw", "bfloat16-channels_last_3d"])
def test_conv3d_flat_matches_torch(name: str, dtype: torch.dtype, channels_last: bool) -> None:
    """The 3-D kernels are flat in 16-bit dtypes only (``kernels.ops.conv3d``)."""
    x_shape, w_shape, kwargs = CASES_3D[name]
    fmt = torch.channels_last_3d if channels_last else None
    flat = _flat_launches(conv3d_ops.conv3d, F.conv3d, x_shape, w_shape, kwargs, fmt, w_shape[0], dtype)
    assert flat == {"conv3d_fwd_kernel": dtype == torch.bfloat16, "conv3d_wgrad_kernel": dtype == torch.bfloat16}


def test_conv3d_one_tap_keeps_the_tap_loop() -> None:
    flat = _flat_launches(conv3d_ops.conv3d, F.conv3d, (2, 3, 3, 4, 5), (7, 3, 1, 1, 1), {}, bias_size=7,
                          dtype=torch.bfloat16)
    assert flat == {"conv3d_fwd_kernel": False, "conv3d_wgrad_kernel": False}


def test_flat_gradcheck() -> None:
    """gradcheck and gradgradcheck in float64 through the flat kernels (2-D, 3 channels, a 3x2 kernel)."""
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64, device=DEVICE, requires_grad=True)
    w = torch.randn(2, 3, 3, 2, dtype=torch.float64, device=DEVICE, requires_grad=True)
    def conv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernels.conv2d(a, b, None, padding=1)

    assert torch.autograd.gradcheck(conv, (x, w), fast_mode=True)
    assert torch.autograd.gradgradcheck(conv, (x, w), fast_mode=True)
