"""kernels.nn.Conv2d: a torch.nn.Conv2d subclass with the same constructor, parameters, state_dict and repr,
whose forward and backward (every padding_mode) match torch.nn.Conv2d with the same parameters."""

from __future__ import annotations

import pytest
import torch
from conftest import _layout, reference_layout

import kernels

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")

def _cfg(in_channels: int, out_channels: int, kernel_size, x_shape: tuple[int, ...], **kwargs):
    """(constructor keyword arguments, input shape)"""
    kwargs.update(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size)
    return kwargs, x_shape


CONFIGS = {
    "basic": _cfg(4, 6, 3, (2, 4, 7, 9)),
    "stride-padding-nobias": _cfg(4, 6, 3, (2, 4, 9, 8), stride=2, padding=1, bias=False),
    "tuples-groups-dilation": _cfg(4, 8, (3, 2), (1, 4, 9, 8), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                                   groups=2),
    "valid": _cfg(3, 2, 5, (2, 3, 7, 9), padding="valid"),
    "same-depthwise": _cfg(4, 4, 3, (2, 4, 7, 9), padding="same", groups=4),
    "depthwise-x2": _cfg(3, 6, 3, (1, 3, 8, 7), padding=1, groups=3),
    "same-even-kernel-dilated": _cfg(2, 3, (4, 2), (1, 2, 7, 9), padding="same", dilation=(1, 3)),
    "reflect": _cfg(4, 6, 3, (2, 4, 7, 9), padding=1, padding_mode="reflect"),
    "reflect-same": _cfg(3, 4, 5, (1, 3, 8, 9), padding="same", padding_mode="reflect", bias=False),
    "replicate": _cfg(4, 6, (3, 5), (2, 4, 7, 9), stride=(1, 2), padding=(1, 2), padding_mode="replicate"),
    "replicate-same-even": _cfg(2, 4, 4, (1, 2, 6, 7), padding="same", padding_mode="replicate"),
    "circular": _cfg(4, 6, 3, (2, 4, 7, 9), padding=2, dilation=2, padding_mode="circular"),
    "circular-grouped-strided": _cfg(4, 4, 3, (1, 4, 9, 7), stride=2, padding=(1, 2), padding_mode="circular",
                                     groups=2),
    "reflect-depthwise": _cfg(4, 4, 3, (2, 4, 6, 7), padding=1, groups=4, padding_mode="reflect", bias=False),
}


def _pair(kwargs: dict, dtype: torch.dtype = torch.float32):
    ours = kernels.nn.Conv2d(**kwargs, device=DEVICE, dtype=dtype)
    theirs = torch.nn.Conv2d(**kwargs, device=DEVICE, dtype=dtype)
    return ours, theirs


def _compare(ours: torch.nn.Conv2d, x: torch.Tensor, assert_close, forbid_torch_conv) -> torch.Tensor:
    """Forward and backward of ``ours`` against a float64 torch.nn.Conv2d holding the same parameters."""
    dtype = x.dtype
    kwargs = dict(in_channels=ours.in_channels, out_channels=ours.out_channels, kernel_size=ours.kernel_size,
                  stride=ours.stride, padding=ours.padding, dilation=ours.dilation, groups=ours.groups,
                  bias=ours.bias is not None, padding_mode=ours.padding_mode)
    ref = torch.nn.Conv2d(**kwargs, device=DEVICE, dtype=torch.float64)
    ref.load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    x = x.detach().requires_grad_()
    x64 = x.detach().double().requires_grad_()

    with forbid_torch_conv():
        out = ours(x)
    expected = ref(x64)
    assert out.dtype == dtype and out.shape == expected.shape
    if out.dim() == 4:
        same_dtype = torch.nn.Conv2d(**kwargs, device=DEVICE, dtype=dtype)
        same_dtype.weight.data = ours.weight.detach().clone(memory_format=torch.preserve_format)  # and layout
        assert _layout(out) == reference_layout(same_dtype, expected, x)
    assert torch.isfinite(out).all()
    assert_close(out, expected, dtype, "output")

    grad_out = torch.randn(expected.shape, dtype=dtype, device=DEVICE)
    with forbid_torch_conv():
        out.backward(grad_out)
    expected.backward(grad_out.double())
    assert_close(x.grad, x64.grad, dtype, "grad of input")
    for (name, p), (ref_name, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert name == ref_name
        assert p.grad is not None and p.grad.dtype == dtype, name
        assert_close(p.grad, q.grad, dtype, f"grad of {name}")
    return out


def test_is_a_torch_conv2d():
    assert issubclass(kernels.nn.Conv2d, torch.nn.Conv2d)
    module = kernels.nn.Conv2d(3, 4, 3)
    assert isinstance(module, torch.nn.Conv2d) and isinstance(module, torch.nn.Module)


@pytest.mark.parametrize("name", list(CONFIGS), ids=str)
def test_repr_parameters_and_state_dict_keys(name: str):
    kwargs, _ = CONFIGS[name]
    ours, theirs = _pair(kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [(n, p.shape, p.dtype) for n, p in ours.named_parameters()] == \
        [(n, p.shape, p.dtype) for n, p in theirs.named_parameters()]
    for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                 "padding_mode", "transposed", "output_padding", "_reversed_padding_repeated_twice"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr


def test_same_initialisation_under_the_same_seed():
    torch.manual_seed(1234)
    theirs = torch.nn.Conv2d(4, 6, 3, groups=2)
    torch.manual_seed(1234)
    ours = kernels.nn.Conv2d(4, 6, 3, groups=2)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("name", list(CONFIGS), ids=str)
def test_load_torch_state_dict_into_ours(name: str, assert_close, forbid_torch_conv):
    kwargs, x_shape = CONFIGS[name]
    ours, theirs = _pair(kwargs)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(x_shape, device=DEVICE)
    out = _compare(ours, x, assert_close, forbid_torch_conv)
    # and the float32 torch module itself agrees
    assert_close(out, theirs(x), torch.float32, "output against the float32 torch module")


@pytest.mark.parametrize("name", ["basic", "tuples-groups-dilation", "depthwise-x2", "reflect", "circular"],
                         ids=str)
def test_load_our_state_dict_into_torch(name: str, assert_close, forbid_torch_conv):
    kwargs, x_shape = CONFIGS[name]
    ours, theirs = _pair(kwargs)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()
    theirs.load_state_dict(ours.state_dict())
    for (n, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q), n
    x = torch.randn(x_shape, device=DEVICE, requires_grad=True)
    x_theirs = x.detach().clone().requires_grad_()
    with forbid_torch_conv():
        out = ours(x)
    expected = theirs(x_theirs)
    assert_close(out, expected, torch.float32, "output")
    grad_out = torch.randn_like(expected)
    with forbid_torch_conv():
        out.backward(grad_out)
    expected.backward(grad_out)
    assert_close(x.grad, x_theirs.grad, torch.float32, "grad of input")
    for (n, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert_close(p.grad, q.grad, torch.float32, f"grad of {n}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("name", ["basic", "depthwise-x2", "reflect"], ids=str)
def test_module_dtypes(name: str, dtype: torch.dtype, assert_close, forbid_torch_conv):
    kwargs, x_shape = CONFIGS[name]
    ours = kernels.nn.Conv2d(**kwargs, device=DEVICE, dtype=dtype)
    assert all(p.dtype == dtype for p in ours.parameters())
    _compare(ours, torch.randn(x_shape, device=DEVICE, dtype=dtype), assert_close, forbid_torch_conv)


@pytest.mark.parametrize("name", ["basic", "reflect", "circular"], ids=str)
def test_unbatched_input(name: str, assert_close, forbid_torch_conv):
    kwargs, x_shape = CONFIGS[name]
    ours = kernels.nn.Conv2d(**kwargs, device=DEVICE)
    out = _compare(ours, torch.randn(x_shape[1:], device=DEVICE), assert_close, forbid_torch_conv)
    assert out.dim() == 3


@pytest.mark.parametrize("name", ["basic", "same-depthwise", "replicate"], ids=str)
def test_channels_last_model(name: str, assert_close, forbid_torch_conv):
    kwargs, x_shape = CONFIGS[name]
    ours = kernels.nn.Conv2d(**kwargs, device=DEVICE).to(memory_format=torch.channels_last)
    x = torch.randn(x_shape, device=DEVICE).to(memory_format=torch.channels_last)
    out = _compare(ours, x, assert_close, forbid_torch_conv)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_training_step_matches_torch(forbid_torch_conv):
    """One SGD step through a small stack of our modules lands on torch's parameters."""

    def stack(cls):
        torch.manual_seed(7)
        return torch.nn.Sequential(
            cls(3, 6, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU(),
            cls(6, 6, 3, stride=2, groups=6, bias=False), torch.nn.ReLU(),
            cls(6, 4, 1),
        ).to(device=DEVICE, dtype=torch.float64)

    ours, theirs = stack(kernels.nn.Conv2d), stack(torch.nn.Conv2d)
    x = torch.randn(2, 3, 9, 8, device=DEVICE, dtype=torch.float64)
    target = torch.randn(2, 4, 4, 3, device=DEVICE, dtype=torch.float64)
    for model in (ours, theirs):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        if model is ours:
            with forbid_torch_conv():
                loss = torch.nn.functional.mse_loss(model(x), target)
                loss.backward()
        else:
            loss = torch.nn.functional.mse_loss(model(x), target)
            loss.backward()
        opt.step()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding_mode="mirror"),
        dict(padding="same", stride=2),
        dict(padding="middle"),
        dict(groups=3),
        dict(groups=0),
    ],
    ids=["bad-padding-mode", "same-strided", "bad-padding-string", "groups-not-dividing", "groups-0"],
)
def test_constructor_errors_like_torch(kwargs):
    args = dict(in_channels=4, out_channels=6, kernel_size=3, **kwargs)
    with pytest.raises(Exception) as torch_error:
        torch.nn.Conv2d(**args)
    with pytest.raises(torch_error.type):
        kernels.nn.Conv2d(**args)
