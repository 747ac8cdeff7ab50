"""kernels.conv_transpose2d and kernels.nn.ConvTranspose2d against torch, forward and all gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import _layout, reference_layout
from torch_errors import assert_raises_like_torch

import kernels
from kernels.shapes import conv_transpose2d_geometry

# (N, Cin, H, W, Cout, kernel, stride, padding, output_padding, dilation, groups, bias)
CASES = [
    (2, 4, 5, 6, 6, 3, 1, 1, 0, 1, 1, True),
    (2, 4, 5, 6, 6, 3, 2, 1, 1, 1, 1, True),
    (1, 4, 4, 5, 6, 4, 2, 1, 0, 1, 2, False),
    (2, 4, 3, 5, 6, (3, 2), (3, 2), (2, 0), (2, 1), (2, 1), 2, True),
    (2, 3, 5, 4, 5, 3, 1, 0, 1, 2, 1, True),  # output_padding allowed by dilation > stride
    (2, 4, 5, 5, 4, 3, 2, 1, 1, 1, 4, True),  # depthwise transposed
    (1, 4, 4, 4, 8, 5, 3, 2, 2, 1, 4, False),  # depthwise with channel multiplier 2
    (0, 4, 5, 5, 6, 3, 2, 1, 0, 1, 1, True),  # empty batch
    (1, 2, 1, 1, 3, 2, 2, 0, 0, 1, 1, True),  # 1x1 input
]
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _run(case, dtype, assert_close, forbid_torch_conv, channels_last=False, unbatched=False):
    N, Cin, H, W, Cout, k, stride, padding, out_pad, dilation, groups, has_bias = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(N, Cin, H, W, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    if unbatched:
        x = x[0]
    w = torch.randn(Cin, Cout // groups, kh, kw, dtype=dtype)
    b = torch.randn(Cout, dtype=dtype) if has_bias else None
    leaves = [t.requires_grad_() for t in (x, w, b) if t is not None]
    twins = [t.detach().to(torch.float64).requires_grad_() for t in leaves]
    args = dict(stride=stride, padding=padding, output_padding=out_pad, groups=groups, dilation=dilation)
    with forbid_torch_conv():
        out = kernels.conv_transpose2d(*leaves, **args) if has_bias else kernels.conv_transpose2d(*leaves, None,
                                                                                                   **args)
    ref = F.conv_transpose2d(*twins, **args) if has_bias else F.conv_transpose2d(*twins, None, **args)
    assert out.shape == ref.shape and out.dtype == dtype
    assert out.dim() == 3 or _layout(out) == reference_layout(F.conv_transpose2d, ref, *leaves[:2],
                                                               leaves[2] if has_bias else None, **args)
    assert_close(out, ref, dtype, "output")
    grad = torch.randn(ref.shape, dtype=dtype)
    with forbid_torch_conv():
        out.backward(grad)
    ref.backward(grad.to(torch.float64))
    for name, t, twin in zip(("input", "weight", "bias"), leaves, twins, strict=False):
        assert t.grad is not None and t.grad.dtype == dtype
        assert_close(t.grad, twin.grad, dtype, f"grad of {name}")


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_against_torch_float64(case, assert_close, forbid_torch_conv):
    _run(case, torch.float64, assert_close, forbid_torch_conv)


@pytest.mark.parametrize("dtype", DTYPES[1:], ids=str)
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]], ids=["dense", "grouped", "depthwise"])
def test_dtypes(case, dtype, assert_close, forbid_torch_conv):
    _run(case, dtype, assert_close, forbid_torch_conv)


@pytest.mark.parametrize("case", [CASES[1], CASES[5]], ids=["dense", "depthwise"])
def test_channels_last(case, assert_close, forbid_torch_conv):
    _run(case, torch.float32, assert_close, forbid_torch_conv, channels_last=True)


def test_unbatched(assert_close, forbid_torch_conv):
    _run(CASES[1], torch.float64, assert_close, forbid_torch_conv, unbatched=True)


def test_non_contiguous_input(assert_close):
    x = torch.randn(2, 5, 7, 4, dtype=torch.float64)[:, ::2, 1:, :].transpose(2, 3)
    w = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    assert not x.is_contiguous()
    assert_close(kernels.conv_transpose2d(x, w, stride=2, output_padding=1),
                 F.conv_transpose2d(x, w, stride=2, output_padding=1), torch.float64, "output")


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]], ids=["dense", "grouped", "depthwise"])
def test_gradcheck(case):
    N, Cin, H, W, Cout, k, stride, padding, out_pad, dilation, groups, _ = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(1, Cin, min(H, 3), min(W, 3), dtype=torch.float64, requires_grad=True)
    w = torch.randn(Cin, Cout // groups, kh, kw, dtype=torch.float64, requires_grad=True)
    b = torch.randn(Cout, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: kernels.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation), (x, w, b),
        fast_mode=True,
    )


def test_geometry_matches_torch_output_size():
    for H in range(1, 7):
        for stride, padding, out_pad, dilation, k in [(1, 0, 0, 1, 3), (2, 1, 1, 1, 3), (3, 2, 1, 2, 4),
                                                      (2, 0, 1, 1, 2)]:
            if (H - 1) * stride - 2 * padding + dilation * (k - 1) + out_pad + 1 < 1:
                continue
            g = conv_transpose2d_geometry((1, 2, H, H), (2, 3, k, k), None, stride, padding, out_pad, 1, dilation)
            ref = F.conv_transpose2d(torch.zeros(1, 2, H, H), torch.zeros(2, 3, k, k), None, stride, padding,
                                     out_pad, 1, dilation)
            assert (g.N, g.C, g.H, g.W) == tuple(ref.shape)


BAD_ARGUMENTS = [
    ("input rank 5", (1, 2, 4, 5, 5), (4, 3, 3, 3), {}),
    ("input rank 2", (5, 5), (4, 3, 3, 3), {}),
    ("weight rank 3", (2, 4, 5, 5), (4, 3, 3), {}),
    ("channel mismatch", (2, 4, 5, 5), (5, 3, 3, 3), {}),
    ("groups do not divide", (2, 3, 5, 5), (3, 3, 3, 3), {"groups": 2}),
    ("output_padding >= stride and dilation", (2, 4, 5, 5), (4, 3, 3, 3), {"output_padding": 1}),
    ("negative padding", (2, 4, 5, 5), (4, 3, 3, 3), {"padding": -1}),
    ("negative output_padding", (2, 4, 5, 5), (4, 3, 3, 3), {"output_padding": -1, "stride": 2}),
    ("string padding", (2, 4, 5, 5), (4, 3, 3, 3), {"padding": "same"}),
    ("stride 0", (2, 4, 5, 5), (4, 3, 3, 3), {"stride": 0}),
    ("groups 0", (2, 4, 5, 5), (4, 3, 3, 3), {"groups": 0}),
    ("dilation 0", (2, 4, 5, 5), (4, 3, 3, 3), {"dilation": 0}),
    ("zero input channels", (2, 0, 5, 5), (0, 4, 3, 3), {}),
    ("zero input channels, groups 2", (2, 0, 5, 5), (0, 4, 3, 3), {"groups": 2}),
    ("weight rank 5", (2, 4, 5, 5), (4, 3, 3, 3, 1), {}),
    ("weight rank 2", (2, 4, 5, 5), (4, 3), {}),
    ("unbatched input, weight rank 3", (4, 5, 5), (4, 3, 3), {}),
    ("stride float", (2, 4, 5, 5), (4, 3, 3, 3), {"stride": 1.5}),
    ("stride tuple with a float", (2, 4, 5, 5), (4, 3, 3, 3), {"stride": (1.0, 2)}),
    ("groups float", (2, 4, 5, 5), (4, 3, 3, 3), {"groups": 1.0}),
    ("padding and groups of wrong types", (2, 4, 5, 5), (4, 3, 3, 3), {"padding": "a", "groups": 1.5}),
    ("dilation negative", (2, 4, 5, 5), (4, 3, 3, 3), {"dilation": -1}),
    ("padding 3-tuple", (2, 4, 5, 5), (4, 3, 3, 3), {"padding": (1, 1, 1)}),
    ("groups do not divide weight", (2, 4, 5, 5), (4, 3, 3, 3), {"groups": 3}),
    ("input rank 1", (5,), (4, 3, 3, 3), {}),
]


@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", BAD_ARGUMENTS, ids=[b[0] for b in BAD_ARGUMENTS])
def test_bad_arguments_raise_like_torch(name, x_shape, w_shape, kwargs):
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    assert_raises_like_torch(F.conv_transpose2d, kernels.conv_transpose2d, x, w, **kwargs)


BAD_TENSORS = {
    "weight float64": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3, dtype=torch.float64)),
    "weight float16": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3, dtype=torch.float16)),
    "bias float64": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(3, dtype=torch.float64)),
    "bias bfloat16": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(3, dtype=torch.bfloat16)),
    "bias wrong length": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(4)),
    "weight float64 and channel mismatch": lambda: (torch.randn(2, 5, 5, 5),
                                                     torch.randn(4, 3, 3, 3, dtype=torch.float64)),
    "input not a tensor": lambda: ([[1.0]], torch.randn(4, 3, 3, 3)),
    "bias not a tensor": lambda: (torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3), [0.0] * 3),
}


@pytest.mark.parametrize("name", list(BAD_TENSORS))
def test_bad_tensors_raise_like_torch(name):
    assert_raises_like_torch(F.conv_transpose2d, kernels.conv_transpose2d, *BAD_TENSORS[name]())


_ON_CPU = not torch.cuda.is_available() or kernels.INTERPRETING


@pytest.mark.parametrize(
    "x_shape, w_shape, groups",
    [
        ((2, 0, 5, 5), (0, 4, 3, 3), 1),
        ((2, 0, 5, 5), (0, 2, 3, 3), 2),
        ((0, 0, 5, 5), (0, 4, 3, 3), 1),
        ((0, 5, 5), (0, 4, 3, 3), 1),
        pytest.param((2, 4, 5, 5), (4, 0, 3, 3), 1, marks=pytest.mark.skipif(
            not _ON_CPU, reason="zero output channels: checked against torch's CPU backends only")),
        pytest.param((4, 5, 5), (4, 0, 3, 3), 1, marks=pytest.mark.skipif(
            not _ON_CPU, reason="zero output channels: checked against torch's CPU backends only")),
    ],
    ids=["no-input-channels", "no-input-channels-grouped", "no-input-channels-no-batch", "no-input-channels-unbatched",
         "no-output-channels", "no-output-channels-unbatched"],
)
def test_zero_channels_raise_like_torch(x_shape, w_shape, groups):
    """Unlike conv2d, torch's transposed convolution rejects an input without channels (the weight's first
    dimension, the input channels, must be at least ``groups``), and its CPU backends a weight without output
    channels."""
    x, w = torch.randn(x_shape, dtype=torch.float64), torch.randn(w_shape, dtype=torch.float64)
    assert_raises_like_torch(F.conv_transpose2d, kernels.conv_transpose2d, x, w, groups=groups)


def test_output_too_small_and_mismatched_dtypes_raise():
    with pytest.raises(RuntimeError, match="too small"):
        kernels.conv_transpose2d(torch.randn(2, 4, 1, 1), torch.randn(4, 3, 3, 3), padding=3)
    with pytest.raises(RuntimeError):
        kernels.conv_transpose2d(torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError):
        kernels.conv_transpose2d(torch.randn(2, 4, 5, 5), torch.randn(4, 3, 3, 3), torch.randn(4))


def _twin_modules(**kwargs):
    ours = kernels.nn.ConvTranspose2d(**kwargs).double()
    theirs = torch.nn.ConvTranspose2d(**kwargs).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def test_module_is_a_torch_module_with_same_state_and_repr():
    ours, theirs = _twin_modules(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1,
                                 output_padding=1, groups=2)
    assert isinstance(ours, torch.nn.ConvTranspose2d)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("output_size", [(9, 9), (10, 10), [1, 4, 10, 9]])
def test_module_output_size_resolves_output_padding(output_size, assert_close):
    ours, theirs = _twin_modules(in_channels=4, out_channels=3, kernel_size=3, stride=2, padding=1)
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    assert_close(ours(x, output_size=output_size), theirs(x, output_size=output_size), torch.float64, "out")


def test_module_output_size_out_of_range_raises_like_torch():
    ours, theirs = _twin_modules(in_channels=4, out_channels=3, kernel_size=3, stride=2)
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    with pytest.raises(ValueError):
        theirs(x, output_size=(8, 8))
    with pytest.raises(ValueError):
        ours(x, output_size=(8, 8))


class _EncoderDecoder(torch.nn.Module):
    """A small U-Net: strided conv down, transposed conv up, concatenation skip connection."""

    def __init__(self, conv, up) -> None:
        super().__init__()
        self.enc1 = conv(3, 4, 3, padding=1)
        self.down = conv(4, 8, 3, stride=2, padding=1)
        self.mid = conv(8, 8, 3, padding=1, groups=8)
        self.up = up(8, 4, 3, stride=2, padding=1)
        self.dec = conv(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = torch.relu(self.enc1(x))
        y = torch.relu(self.mid(torch.relu(self.down(skip))))
        y = self.up(y, output_size=skip.shape[-2:])
        return self.dec(torch.cat([y, skip], dim=1))


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_encoder_decoder_with_skip_connections_matches_torch(size, assert_close, forbid_torch_conv):
    ours = _EncoderDecoder(kernels.nn.Conv2d, kernels.nn.ConvTranspose2d).double()
    theirs = _EncoderDecoder(torch.nn.Conv2d, torch.nn.ConvTranspose2d).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    with forbid_torch_conv():
        out = ours(x)
    ref = theirs(x)
    assert_close(out, ref, torch.float64, "output")
    grad = torch.randn_like(ref)
    with forbid_torch_conv():
        out.backward(grad)
    ref.backward(grad)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert_close(p.grad, q.grad, torch.float64, f"grad of {name}")
