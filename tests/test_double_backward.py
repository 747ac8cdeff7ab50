"""Gradients of gradients (double backward): every backward is made of differentiable ops whose own
backwards are further Triton kernels. Checked by ``gradgradcheck`` in float64 on small shapes, and by a
gradient penalty on a small network against torch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from torch.autograd import gradgradcheck

import kernels
from kernels.ops.pool2d import max_pool2d_gather
from kernels.pool_shapes import max_pool2d_geometry

F64 = torch.float64


def _leaf(*shape: int, channels_last: bool = False) -> torch.Tensor:
    t = torch.randn(shape, dtype=F64, device=DEVICE)
    if channels_last and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_()


# name -> (function of the tensors, tensor shapes, channels_last)
CASES: dict[str, tuple[Callable[..., torch.Tensor], tuple[tuple[int, ...], ...], bool]] = {
    "conv2d dense stride dilation": (
        lambda x, w, b: kernels.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
        ((2, 3, 5, 6), (4, 3, 3, 3), (4,)), False),
    "conv2d grouped NHWC": (
        lambda x, w, b: kernels.conv2d(x, w, b, padding="same", groups=2),
        ((2, 4, 5, 4), (6, 2, 3, 3), (6,)), True),
    "conv2d depthwise x2 stride 2": (
        lambda x, w, b: kernels.conv2d(x, w, b, stride=2, padding=1, groups=4),
        ((2, 4, 5, 5), (8, 1, 3, 3), (8,)), False),
    "conv_transpose2d output_padding": (
        lambda x, w, b: kernels.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        ((2, 4, 3, 4), (4, 3, 3, 3), (3,)), False),
    "conv_transpose2d depthwise": (
        lambda x, w, b: kernels.conv_transpose2d(x, w, b, padding=1, groups=4),
        ((2, 4, 4, 3), (4, 1, 3, 3), (4,)), False),
    "conv2d relu + residual": (
        lambda x, w, b, r: kernels.conv2d(x, w, b, padding=1, activation="relu", residual=r),
        ((2, 3, 4, 5), (4, 3, 3, 3), (4,), (2, 4, 4, 5)), False),
    "conv_transpose2d leaky_relu(+ residual)": (
        lambda x, w, b, r: kernels.conv_transpose2d(x, w, b, activation="leaky_relu", negative_slope=-0.5,
                                                    residual=r, residual_before_activation=True),
        ((2, 4, 3, 3), (4, 3, 2, 2), (3,), (2, 3, 4, 4)), False),
    "max_pool2d": (lambda x: kernels.max_pool2d(x, 3, 2, 1, dilation=(1, 2)), ((2, 3, 7, 8),), False),
    "max_pool2d NHWC ceil": (lambda x: kernels.max_pool2d(x, 2, ceil_mode=True), ((2, 3, 5, 5),), True),
    "adaptive_max_pool2d": (lambda x: kernels.adaptive_max_pool2d(x, (3, 2)), ((2, 3, 7, 5),), False),
    "avg_pool2d": (lambda x: kernels.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                   ((2, 3, 6, 7),), False),
    "adaptive_avg_pool2d": (lambda x: kernels.adaptive_avg_pool2d(x, (2, 3)), ((2, 3, 5, 7),), True),
    "global average": (lambda x: kernels.adaptive_avg_pool2d(x, 1), ((2, 3, 5, 4),), False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradgradcheck(name: str, forbid_torch_conv) -> None:
    fn, shapes, channels_last = CASES[name]
    tensors = tuple(_leaf(*shape, channels_last=channels_last) for shape in shapes)
    with forbid_torch_conv():
        assert gradgradcheck(fn, tensors, fast_mode=True)


def _penalty_net(ops) -> Callable[[torch.Tensor], torch.Tensor]:
    """A small discriminator-like chain whose input-gradient norm is penalised (as in WGAN-GP)."""

    def net(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        y = F.leaky_relu(ops.conv2d(x, params["w1"], params["b1"], stride=2, padding=1), 0.2)
        y = ops.max_pool2d(y, 2, ceil_mode=True)
        y = ops.conv_transpose2d(y, params["w2"], params["b2"], stride=2)
        y = ops.conv2d(y, params["w3"], None, padding=1, groups=y.shape[1])
        return ops.avg_pool2d(y, 2).sum(dim=(1, 2, 3))

    return net


@pytest.mark.parametrize("channels_last", [False, True])
def test_gradient_penalty_matches_torch(channels_last: bool, assert_close, forbid_torch_conv) -> None:
    dtype = torch.float32
    x = torch.randn(2, 3, 8, 8, dtype=dtype, device=DEVICE)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    params = {"w1": torch.randn(4, 3, 3, 3), "b1": torch.randn(4), "w2": torch.randn(4, 5, 2, 2),
              "b2": torch.randn(5), "w3": torch.randn(5, 1, 3, 3)}
    results = {}
    for label, ops in (("ours", kernels), ("torch", F)):
        xs = x.detach().clone().requires_grad_()
        ps = {k: v.to(dtype=dtype, device=DEVICE).requires_grad_() for k, v in params.items()}
        with forbid_torch_conv() if label == "ours" else contextlib.nullcontext():
            scores = _penalty_net(ops)(xs, ps)
            (grad_x,) = torch.autograd.grad(scores.sum(), xs, create_graph=True)
            penalty = grad_x.flatten(1).norm(dim=1).sub(1).square().mean()
            penalty.backward()
        results[label] = (penalty.detach(), xs.grad, {k: v.grad for k, v in ps.items()})
    ours, ref = results["ours"], results["torch"]
    assert_close(ours[0], ref[0], dtype, "penalty")
    assert_close(ours[1], ref[1], dtype, "grad of the penalty wrt x")
    for k in params:
        if ours[2][k] is None:  # b2: the penalty does not depend on it (torch materialises zeros)
            assert ref[2][k] is None or not ref[2][k].any(), k
        else:
            assert_close(ours[2][k], ref[2][k], dtype, f"grad of the penalty wrt {k}")


@pytest.mark.parametrize("activation", ["gelu", "silu"])
def test_curved_fused_activation_double_backward_raises(activation: str) -> None:
    x, w, b = _leaf(1, 2, 4, 4), _leaf(3, 2, 3, 3), _leaf(3)
    y = kernels.conv2d(x, w, b, padding=1, activation=activation)
    (grad_x,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)  # creating the graph is fine
    reference = torch.autograd.grad(getattr(F, activation)(F.conv2d(x, w, b, padding=1)).square().sum(), x)[0]
    torch.testing.assert_close(grad_x.detach(), reference)
    with pytest.raises(RuntimeError, match="double backward through a fused"):
        grad_x.sum().backward()


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool2d_gather_writes_every_element(channels_last: bool) -> None:
    shape = (2, 3, 7, 6)
    x = torch.randn(shape, device=DEVICE)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    _, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    source = torch.randn(2, 3, 6, 7, device=DEVICE).transpose(2, 3)  # a strided view of (N, C, H, W)
    out = torch.full_like(indices, float("nan"), dtype=source.dtype)
    max_pool2d_gather(source, indices, max_pool2d_geometry(shape, 3, 2, 1, 1, False), out)
    expected = source.flatten(2).gather(2, indices.flatten(2)).view_as(out)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def _maml_outer_grads(ops, x: torch.Tensor, target: torch.Tensor, params: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
    """One MAML step: an inner SGD step on the parameters, with its graph kept, then the outer loss's
    gradients with respect to the original parameters (second order through every weight and bias
    gradient)."""

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        y = ops.conv2d(x, p["w1"], p["b1"], padding=1)
        y = ops.conv_transpose2d(F.leaky_relu(y, 0.1), p["w2"], p["b2"], stride=2)
        y = ops.avg_pool2d(y, 2)
        return (y.to(target.dtype) - target).square().mean()

    inner = torch.autograd.grad(loss(params), list(params.values()), create_graph=True)
    adapted = {k: v - 0.5 * g for (k, v), g in zip(params.items(), inner, strict=True)}
    outer = torch.autograd.grad(loss(adapted), list(params.values()))
    return dict(zip(params, outer, strict=True))


@pytest.mark.parametrize(("dtype", "channels_last", "channels"),
                         [(torch.float64, False, 3), (torch.bfloat16, True, 16)])
def test_maml_second_order_matches_torch(dtype: torch.dtype, channels_last: bool, channels: int,
                                         assert_close, forbid_torch_conv) -> None:
    """Second order through weight and bias gradients (a bias gradient's gradient is a broadcast, stride-0
    view fed to the next kernel); in bf16 channels_last with 16 channels the aligned variant runs."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, channels, 5, 5, device=DEVICE).to(dtype).contiguous(memory_format=fmt)
    target = torch.randn(2, channels, 5, 5, device=DEVICE, dtype=F64 if dtype == F64 else torch.float32)
    base = {"w1": torch.randn(channels, channels, 3, 3) / channels, "b1": torch.randn(channels),
            "w2": torch.randn(channels, channels, 2, 2) / channels, "b2": torch.randn(channels)}
    ours_params = {k: v.to(dtype=dtype, device=DEVICE).requires_grad_() for k, v in base.items()}
    with forbid_torch_conv():
        ours = _maml_outer_grads(kernels, x, target, ours_params)
    ref_params = {k: v.to(dtype=F64, device=DEVICE).requires_grad_() for k, v in base.items()}
    ref = _maml_outer_grads(F, x.to(F64), target.to(F64), ref_params)
    for k in base:
        assert_close(ours[k], ref[k], dtype, f"outer grad wrt {k}")
