"""The 3-D family as a user meets it: the ``kernels.nn`` modules against their torch.nn twins, ``kernels.convert``
on a small volumetric network (a 3-D UNet with a transposed-convolution up-path and a concatenated skip),
``torch.compile(fullgraph=True)``, autocast, and that no torch convolution or pooling runs inside. The ops
themselves are tested in ``test_conv3d.py``, ``test_depthwise3d_launchers.py`` and ``test_pool3d.py``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from torch.utils._python_dispatch import TorchDispatchMode

import kernels
from kernels import nn as knn

F64 = torch.float64


def _t(*shape: int, dtype: torch.dtype = F64, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, device=DEVICE).requires_grad_(grad)


class _ForbidTorchOps(TorchDispatchMode):
    """Fail when torch's own convolution or pooling runs."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if any(op in name for op in ("convolution", "conv3d", "conv_transpose", "conv_depthwise", "pool")):
            raise AssertionError(f"kernels fell back to torch ({name})")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv3d_module(padding_mode: str) -> None:
    ref = torch.nn.Conv3d(4, 6, (3, 2, 3), padding=(1, 1, 2), dilation=(1, 2, 1), padding_mode=padding_mode)
    ours = knn.Conv3d(4, 6, (3, 2, 3), padding=(1, 1, 2), dilation=(1, 2, 1), padding_mode=padding_mode)
    ref, ours = ref.double().to(DEVICE), ours.double().to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    assert ours.state_dict().keys() == ref.state_dict().keys() and repr(ours) == repr(ref)
    x = _t(2, 4, 5, 6, 7)
    with _ForbidTorchOps():
        out = ours(x)
    torch.testing.assert_close(out, ref(x))


def test_conv_transpose3d_module_output_size() -> None:
    ref = torch.nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1).double().to(DEVICE)
    ours = knn.ConvTranspose3d(4, 3, 3, stride=2, padding=1).double().to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    x = _t(2, 4, 3, 4, 5)
    for size in (None, [6, 8, 10], [2, 3, 6, 7, 9]):
        with _ForbidTorchOps():
            out = ours(x, output_size=size)
        torch.testing.assert_close(out, ref(x, output_size=size))
    ours.padding_mode = "reflect"
    with pytest.raises(ValueError, match="Only `zeros` padding mode is supported for ConvTranspose3d"):
        ours(x)


def test_conv3d_modules_epilogue_extras() -> None:
    """The constructor extras and ``forward(input, residual)`` of Conv3d and ConvTranspose3d (and
    ``output_size`` with a residual)."""
    ref = torch.nn.Conv3d(2, 3, 2, padding=1, padding_mode="replicate").double().to(DEVICE)
    ours = knn.Conv3d(2, 3, 2, padding=1, padding_mode="replicate", activation="leaky_relu", negative_slope=0.2,
                      residual_before_activation=True).double().to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    assert repr(ours) == repr(ref)[:-1] + ", activation='leaky_relu', negative_slope=0.2, " \
        "residual_before_activation=True)"
    x, r = _t(1, 2, 2, 3, 3), _t(1, 3, 3, 4, 4)
    with _ForbidTorchOps():
        out = ours(x, r)
    torch.testing.assert_close(out, F.leaky_relu(ref(x) + r, 0.2))
    ref_t = torch.nn.ConvTranspose3d(2, 3, 2, stride=2).double().to(DEVICE)
    ours_t = knn.ConvTranspose3d(2, 3, 2, stride=2, activation="silu").double().to(DEVICE)
    ours_t.load_state_dict(ref_t.state_dict())
    x, r = _t(1, 2, 2, 1, 2), _t(1, 3, 5, 3, 5)
    with _ForbidTorchOps():
        out = ours_t(x, output_size=[5, 3, 5], residual=r)
    torch.testing.assert_close(out, F.silu(ref_t(x, output_size=[5, 3, 5])) + r)
    with pytest.raises(ValueError, match="activation must be one of"):
        knn.Conv3d(2, 3, 2, activation="tanh")


def test_convert_fuses_activations_after_3d_convolutions() -> None:
    torch.manual_seed(0)
    reference = torch.nn.Sequential(
        torch.nn.Conv3d(2, 3, 2, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose3d(3, 2, 2, stride=2), torch.nn.GELU(),
        torch.nn.Conv3d(2, 2, 1, groups=2), torch.nn.LeakyReLU(0.3),
    ).double().to(DEVICE)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 2, padding=1), torch.nn.ReLU(),
                                torch.nn.ConvTranspose3d(3, 2, 2, stride=2), torch.nn.GELU(),
                                torch.nn.Conv3d(2, 2, 1, groups=2), torch.nn.LeakyReLU(0.3)).double().to(DEVICE)
    model.load_state_dict(reference.state_dict())
    report = kernels.convert(model, fuse_activations=True)
    assert report.fused == [("0", "relu"), ("2", "gelu"), ("4", "leaky_relu")], str(report)
    assert all(isinstance(model[i], torch.nn.Identity) for i in (1, 3, 5))
    assert model[4].negative_slope == 0.3
    x = _t(1, 2, 2, 2, 3)
    with _ForbidTorchOps():
        out = model(x)
    torch.testing.assert_close(out, reference(x))


@pytest.mark.parametrize("module", [
    lambda: torch.nn.MaxPool3d(3, stride=2, padding=1, dilation=(1, 1, 2), ceil_mode=True),
    lambda: torch.nn.MaxPool3d(2, return_indices=True),
    lambda: torch.nn.AvgPool3d((2, 3, 2), stride=(1, 2, 2), padding=1, count_include_pad=False),
    lambda: torch.nn.AvgPool3d(2, divisor_override=3),
    lambda: torch.nn.AdaptiveAvgPool3d((2, None, 3)),
    lambda: torch.nn.AdaptiveMaxPool3d(2, return_indices=True),
], ids=["max", "max-indices", "avg", "avg-divisor", "adaptive-avg", "adaptive-max"])
def test_pool3d_modules(module) -> None:
    ref = module()
    ours = module()
    kernels.convert(ours)
    assert type(ours).__name__ == type(ref).__name__ and type(ours) is not type(ref) and repr(ours) == repr(ref)
    x = _t(2, 3, 5, 6, 7, grad=True)
    x_ref = x.detach().clone().requires_grad_()
    with _ForbidTorchOps():
        out = ours(x)
    expected = ref(x_ref)
    outs, refs = (out, expected) if isinstance(out, tuple) else ((out,), (expected,))
    for o, r in zip(outs, refs, strict=True):
        torch.testing.assert_close(o, r)
    grad = torch.randn_like(refs[0])
    with _ForbidTorchOps():
        (got,) = torch.autograd.grad(outs[0], x, grad)
    torch.testing.assert_close(got, torch.autograd.grad(refs[0], x_ref, grad)[0])


class _UNet3d(torch.nn.Module):
    """Two levels: conv-BN-ReLU blocks, max-pooled down, up by a transposed convolution, the skip concatenated,
    a depthwise 3x3x3 and a 1x1x1 head, and a global average over the volume beside it."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.down = torch.nn.Sequential(torch.nn.Conv3d(2, c, 3, padding=1), torch.nn.BatchNorm3d(c), torch.nn.ReLU())
        self.pool = torch.nn.MaxPool3d(2)
        self.mid = torch.nn.Sequential(torch.nn.Conv3d(c, 2 * c, 3, padding=1, bias=False), torch.nn.ReLU())
        self.up = torch.nn.ConvTranspose3d(2 * c, c, 2, stride=2)
        self.fuse = torch.nn.Sequential(torch.nn.Conv3d(2 * c, c, 3, padding=1, groups=2), torch.nn.ReLU(),
                                        torch.nn.Conv3d(c, c, 3, padding=1, groups=c))
        self.head = torch.nn.Conv3d(c, 3, 1)
        self.squeeze = torch.nn.Sequential(torch.nn.AdaptiveAvgPool3d(1), torch.nn.Conv3d(c, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.down(x)
        y = self.up(self.mid(self.pool(skip)))
        y = self.fuse(torch.cat([y, skip], dim=1))
        return self.head(y) + self.squeeze(y)


@pytest.mark.parametrize("channels_last", [False, True])
def test_convert_unet3d(channels_last: bool) -> None:
    torch.manual_seed(0)
    ref = _UNet3d().double().to(DEVICE)
    ours = _UNet3d().double().to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    report = kernels.convert(ours)
    assert len(report.converted) == 9 and not report.kept, str(report)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    x = _t(2, 2, 4, 6, 4).to(memory_format=fmt).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    with _ForbidTorchOps():
        out = ours(x)
    expected = ref(x_ref)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    grad = torch.randn_like(expected)
    with _ForbidTorchOps():
        got = torch.autograd.grad(out, [x, *ours.parameters()], grad)
    want = torch.autograd.grad(expected, [x_ref, *ref.parameters()], grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_compile_3d() -> None:
    """The 3-D ops inside ``torch.compile(fullgraph=True)`` through their registered ops, with gradients."""
    def f(x, w, b, wt):
        y = F.relu(kernels.conv3d(x, w, b, padding=1))
        y = kernels.max_pool3d(y, 2) + kernels.avg_pool3d(y, 2)
        y = kernels.conv_transpose3d(y, wt, stride=2)
        return kernels.adaptive_avg_pool3d(y, (1, 2, 2)) + kernels.adaptive_max_pool3d(y, (1, 2, 2))

    def ref_f(x, w, b, wt):
        y = F.relu(F.conv3d(x, w, b, padding=1))
        y = F.max_pool3d(y, 2) + F.avg_pool3d(y, 2)
        y = F.conv_transpose3d(y, wt, stride=2)
        return F.adaptive_avg_pool3d(y, (1, 2, 2)) + F.adaptive_max_pool3d(y, (1, 2, 2))

    torch._dynamo.reset()
    args = (_t(2, 3, 4, 4, 6, grad=True), _t(4, 3, 3, 3, 3, grad=True), _t(4, grad=True),
            _t(4, 2, 2, 2, 2, grad=True))
    ref_args = [a.detach().clone().requires_grad_() for a in args]
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(*args)
    ref = ref_f(*ref_args)
    torch.testing.assert_close(out, ref)
    for a, r in zip(torch.autograd.grad(out.sum(), args), torch.autograd.grad(ref.sum(), ref_args), strict=True):
        torch.testing.assert_close(a, r)


def test_conv3d_module_under_autocast() -> None:
    """Under autocast the 3-D convolution casts like torch's (to the autocast dtype); pooling keeps its input's."""
    conv = knn.Conv3d(3, 4, 3, padding=1).to(DEVICE)
    x = torch.randn(1, 3, 4, 4, 4, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        out = conv(x)
        pooled = kernels.max_pool3d(x, 2)
    assert out.dtype == torch.bfloat16 and pooled.dtype == torch.float32
    torch.testing.assert_close(out.float(), F.conv3d(x, conv.weight, conv.bias, padding=1), rtol=2e-2, atol=2e-2)
