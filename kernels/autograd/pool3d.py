"""3-D pooling's autograd, defined once (as :mod:`kernels.autograd.pool2d` for 2-D): what each forward saves,
its backward formula, the eager Functions and the registered ops ``kernels::max_pool3d``,
``kernels::avg_pool3d``, ``kernels::adaptive_avg_pool3d`` and ``kernels::adaptive_max_pool3d`` with their
backward ops.

Inputs are batched ``(N, C, D, H, W)``. Layouts follow torch's CPU ops: ``channels_last`` is the layout
(channels_last_3d or contiguous) of an output, ``grad_channels_last`` that of the input gradient (the input's
own: torch's 3-D average and adaptive pools give contiguous outputs but input gradients in the input's
layout). Both backwards are linear in the output gradient and their recorded forms close under
differentiation: max pooling's backward and the gather at the saved maxima are each other's gradient, average
pooling's backward and average pooling likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..ops.pool3d import (
    avg_pool3d_input_grad,
    avg_pool3d_output,
    max_pool3d_gathered,
    max_pool3d_input_grad,
    max_pool3d_output,
)
from ..pool_shapes3d import PoolGeometry3d, adaptive_pool3d_geometry, avg_pool3d_geometry, max_pool3d_geometry
from ..shapes3d import empty_5d, prefers_channels_last_3d
from . import eager_passes
from .pool2d import save_avg_pool, save_max_pool  # (what a pooling forward saves: any rank)

Tensor = torch.Tensor


@dataclass(frozen=True)
class Pool3dPasses:
    """The passes of the pooling backwards:

    * ``max_input_grad(grad_out (N, C, T, P, Q), indices, g, channels_last) -> (N, C, D, H, W)``;
    * ``avg_input_grad(grad_out (N, C, T, P, Q), g, channels_last) -> (N, C, D, H, W)``.
    """

    max_input_grad: Callable[[Tensor, Tensor, PoolGeometry3d, bool], Tensor]
    avg_input_grad: Callable[[Tensor, PoolGeometry3d, bool], Tensor]


# --------------------------------------------------------------------------------------------------------
# The one definition: setup and backward formula (strided and adaptive windows alike: ``g.adaptive``)


def max_pool3d_grad(passes: Pool3dPasses, saved: Sequence[Tensor], g: PoolGeometry3d, channels_last: bool,
                    grad_out: Tensor) -> Tensor:
    """The input gradient ``(N, C, D, H, W)`` of max pooling from ``grad_out (N, C, T, P, Q)``."""
    (indices,) = saved
    return passes.max_input_grad(grad_out, indices, g, channels_last)


def avg_pool3d_grad(passes: Pool3dPasses, g: PoolGeometry3d, channels_last: bool, grad_out: Tensor) -> Tensor:
    """The input gradient ``(N, C, D, H, W)`` of average pooling from ``grad_out (N, C, T, P, Q)``."""
    return passes.avg_input_grad(grad_out, g, channels_last)


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class MaxPool3dFunction(torch.autograd.Function):
    """Max pooling (strided or adaptive windows); returns the output and the int64 flat indices of the maxima
    (an empty placeholder when neither the caller nor the backward needs them)."""

    @staticmethod
    def forward(ctx, x: Tensor, g: PoolGeometry3d, return_indices: bool, channels_last: bool,
                grad_channels_last: bool):
        out, indices = max_pool3d_output(x, g, return_indices or ctx.needs_input_grad[0], channels_last)
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)  # (no int64 zeros for the indices' gradient, which nothing reads)
        save_max_pool(ctx, indices, g, grad_channels_last)
        return out, indices

    @staticmethod
    def backward(ctx, grad_out: Tensor | None, _grad_indices: Tensor | None):
        if grad_out is None:
            return None, None, None, None, None
        grad_in = max_pool3d_grad(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.geometry,
                                  ctx.channels_last, grad_out)
        return grad_in, None, None, None, None


class MaxPool3dBackward(torch.autograd.Function):
    """The max-pooling input gradient as a differentiable op: linear in ``grad_out``, whose gradient takes
    the incoming gradient at the saved maxima (:class:`MaxPool3dGather`)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, indices: Tensor, g: PoolGeometry3d, channels_last: bool) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.out_channels_last = prefers_channels_last_3d(grad_out)
        return max_pool3d_input_grad(grad_out, indices, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPool3dGather.apply(grad_grad_in, indices, ctx.geometry, ctx.out_channels_last), None, None, None


class MaxPool3dGather(torch.autograd.Function):
    """``(N, C, D, H, W) -> (N, C, T, P, Q)``: the elements at the saved maxima; its gradient is the
    max-pooling backward, so the pair closes under differentiation."""

    @staticmethod
    def forward(ctx, src: Tensor, indices: Tensor, g: PoolGeometry3d, channels_last: bool) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.src_channels_last = prefers_channels_last_3d(src)
        return max_pool3d_gathered(src, indices, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPool3dBackward.apply(grad_out, indices, ctx.geometry, ctx.src_channels_last), None, None, None


class AvgPool3dFunction(torch.autograd.Function):
    """Average pooling (strided or adaptive windows). Only the geometry is saved for the backward."""

    @staticmethod
    def forward(ctx, x: Tensor, g: PoolGeometry3d, channels_last: bool, grad_channels_last: bool) -> Tensor:
        save_avg_pool(ctx, g, grad_channels_last)
        return avg_pool3d_output(x, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_in = avg_pool3d_grad(eager_passes(LAUNCHERS, RECORDED), ctx.geometry, ctx.channels_last, grad_out)
        return grad_in, None, None, None


class AvgPool3dBackward(torch.autograd.Function):
    """The average-pooling input gradient as a differentiable op: linear, and its gradient is the average
    pooling of the incoming gradient."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, g: PoolGeometry3d, channels_last: bool) -> Tensor:
        ctx.geometry = g
        ctx.out_channels_last = prefers_channels_last_3d(grad_out)
        ctx.channels_last = channels_last
        return avg_pool3d_input_grad(grad_out, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        return AvgPool3dFunction.apply(grad_grad_in, ctx.geometry, ctx.out_channels_last, ctx.channels_last), \
            None, None


LAUNCHERS = Pool3dPasses(max_input_grad=max_pool3d_input_grad, avg_input_grad=avg_pool3d_input_grad)
RECORDED = Pool3dPasses(max_input_grad=MaxPool3dBackward.apply, avg_input_grad=AvgPool3dBackward.apply)


# --------------------------------------------------------------------------------------------------------
# Registered: the ops torch.compile traces. They take tensors and plain ints only: the forward ops take
# torch's pooling arguments (resolved), the backward ops the input's size besides.


def _window(g: PoolGeometry3d) -> tuple[list[int], list[int], list[int]]:
    """``(kernel_size, stride, padding)`` of a strided geometry, as the registered ops take them."""
    return list(g.kernel), list(g.stride), list(g.padding)


def _max_geometry(shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool) -> PoolGeometry3d:
    return max_pool3d_geometry(tuple(shape), list(kernel_size), list(stride), list(padding), list(dilation),
                               ceil_mode)


def _avg_geometry(shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], ceil_mode: bool, count_include_pad: bool, divisor: int) -> PoolGeometry3d:
    return avg_pool3d_geometry(tuple(shape), list(kernel_size), list(stride), list(padding), ceil_mode,
                               count_include_pad, divisor or None)


def _adaptive_geometry(shape: Sequence[int], output_size: Sequence[int], op: str) -> PoolGeometry3d:
    return adaptive_pool3d_geometry(tuple(shape), list(output_size), op)


def _max_outputs(x: Tensor, g: PoolGeometry3d, channels_last: bool) -> tuple[Tensor, Tensor]:
    return (empty_5d(g.output_shape, x, channels_last), empty_5d(g.output_shape, x, channels_last, torch.int64))


@torch.library.custom_op("kernels::max_pool3d", mutates_args=())
def max_pool3d_op(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  dilation: Sequence[int], ceil_mode: bool, channels_last: bool, grad_channels_last: bool
                  ) -> tuple[Tensor, Tensor]:
    """Max pooling: the output ``(N, C, T, P, Q)`` and the int64 flat indices ``(d*H + h)*W + w`` of the
    maxima (``grad_channels_last``: the layout its backward gives the input gradient)."""
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool3d_output(x, g, True, channels_last)


@max_pool3d_op.register_fake
def _(x, kernel_size, stride, padding, dilation, ceil_mode, channels_last, grad_channels_last):
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_outputs(x, g, channels_last)


@torch.library.custom_op("kernels::max_pool3d_backward", mutates_args=())
def max_pool3d_backward_op(grad_out: Tensor, indices: Tensor, input_size: Sequence[int],
                           kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                           dilation: Sequence[int], ceil_mode: bool, channels_last: bool) -> Tensor:
    """Gradient ``(N, C, D, H, W)`` (``input_size``) of max pooling from ``grad_out`` and the saved indices."""
    g = _max_geometry(input_size, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool3d_input_grad(grad_out, indices, g, channels_last)


@max_pool3d_backward_op.register_fake
def _(grad_out, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode, channels_last):
    return empty_5d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::adaptive_max_pool3d", mutates_args=())
def adaptive_max_pool3d_op(x: Tensor, output_size: Sequence[int], channels_last: bool, grad_channels_last: bool
                           ) -> tuple[Tensor, Tensor]:
    """Adaptive max pooling to ``output_size (T, P, Q)``: the output and the int64 flat indices."""
    g = _adaptive_geometry(x.shape, output_size, "adaptive_max_pool3d")
    return max_pool3d_output(x, g, True, channels_last)


@adaptive_max_pool3d_op.register_fake
def _(x, output_size, channels_last, grad_channels_last):
    g = _adaptive_geometry(x.shape, output_size, "adaptive_max_pool3d")
    return _max_outputs(x, g, channels_last)


@torch.library.custom_op("kernels::adaptive_max_pool3d_backward", mutates_args=())
def adaptive_max_pool3d_backward_op(grad_out: Tensor, indices: Tensor, input_size: Sequence[int],
                                    channels_last: bool) -> Tensor:
    """Gradient ``(N, C, D, H, W)`` (``input_size``) of adaptive max pooling from the saved indices."""
    g = _adaptive_geometry(input_size, grad_out.shape[2:], "adaptive_max_pool3d")
    return max_pool3d_input_grad(grad_out, indices, g, channels_last)


@adaptive_max_pool3d_backward_op.register_fake
def _(grad_out, indices, input_size, channels_last):
    return empty_5d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::avg_pool3d", mutates_args=())
def avg_pool3d_op(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  ceil_mode: bool, count_include_pad: bool, divisor: int, channels_last: bool,
                  grad_channels_last: bool) -> Tensor:
    """Average pooling ``(N, C, T, P, Q)``; ``divisor`` is ``divisor_override`` (0: none)."""
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return avg_pool3d_output(x, g, channels_last)


@avg_pool3d_op.register_fake
def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last, grad_channels_last):
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return empty_5d(g.output_shape, x, channels_last)


@torch.library.custom_op("kernels::avg_pool3d_backward", mutates_args=())
def avg_pool3d_backward_op(grad_out: Tensor, input_size: Sequence[int], kernel_size: Sequence[int],
                           stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                           count_include_pad: bool, divisor: int, channels_last: bool) -> Tensor:
    """Gradient ``(N, C, D, H, W)`` (``input_size``) of average pooling."""
    g = _avg_geometry(input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return avg_pool3d_input_grad(grad_out, g, channels_last)


@avg_pool3d_backward_op.register_fake
def _(grad_out, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last):
    return empty_5d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::adaptive_avg_pool3d", mutates_args=())
def adaptive_avg_pool3d_op(x: Tensor, output_size: Sequence[int], channels_last: bool, grad_channels_last: bool
                           ) -> Tensor:
    """Adaptive average pooling to ``output_size (T, P, Q)``."""
    g = _adaptive_geometry(x.shape, output_size, "adaptive_avg_pool3d")
    return avg_pool3d_output(x, g, channels_last)


@adaptive_avg_pool3d_op.register_fake
def _(x, output_size, channels_last, grad_channels_last):
    return empty_5d((x.shape[0], x.shape[1], *output_size), x, channels_last)


@torch.library.custom_op("kernels::adaptive_avg_pool3d_backward", mutates_args=())
def adaptive_avg_pool3d_backward_op(grad_out: Tensor, input_size: Sequence[int], channels_last: bool) -> Tensor:
    """Gradient ``(N, C, D, H, W)`` (``input_size``) of adaptive average pooling to ``grad_out``'s size."""
    g = _adaptive_geometry(input_size, grad_out.shape[2:], "adaptive_avg_pool3d")
    return avg_pool3d_input_grad(grad_out, g, channels_last)


@adaptive_avg_pool3d_backward_op.register_fake
def _(grad_out, input_size, channels_last):
    return empty_5d(tuple(input_size), grad_out, channels_last)


def registered_max_pool3d(x: Tensor, g: PoolGeometry3d, channels_last: bool, grad_channels_last: bool
                          ) -> tuple[Tensor, Tensor]:
    """The output and int64 indices of the registered max pooling of ``g`` (what the functional API calls
    while compiling)."""
    if g.adaptive:
        return torch.ops.kernels.adaptive_max_pool3d(x, [g.T, g.P, g.Q], channels_last, grad_channels_last)
    kernel_size, stride, padding = _window(g)
    return torch.ops.kernels.max_pool3d(x, kernel_size, stride, padding, list(g.dilation), g.ceil_mode,
                                        channels_last, grad_channels_last)


def registered_avg_pool3d(x: Tensor, g: PoolGeometry3d, channels_last: bool, grad_channels_last: bool) -> Tensor:
    """The output of the registered average pooling of ``g`` (what the functional API calls while
    compiling)."""
    if g.adaptive:
        return torch.ops.kernels.adaptive_avg_pool3d(x, [g.T, g.P, g.Q], channels_last, grad_channels_last)
    return torch.ops.kernels.avg_pool3d(x, *_window(g), g.ceil_mode, g.count_include_pad, g.divisor, channels_last,
                                        grad_channels_last)


def _registered_max_input_grad(grad_out: Tensor, indices: Tensor, g: PoolGeometry3d, channels_last: bool
                               ) -> Tensor:
    if g.adaptive:
        return torch.ops.kernels.adaptive_max_pool3d_backward(grad_out, indices, list(g.input_shape), channels_last)
    kernel_size, stride, padding = _window(g)
    return torch.ops.kernels.max_pool3d_backward(grad_out, indices, list(g.input_shape), kernel_size, stride,
                                                 padding, list(g.dilation), g.ceil_mode, channels_last)


def _registered_avg_input_grad(grad_out: Tensor, g: PoolGeometry3d, channels_last: bool) -> Tensor:
    if g.adaptive:
        return torch.ops.kernels.adaptive_avg_pool3d_backward(grad_out, list(g.input_shape), channels_last)
    return torch.ops.kernels.avg_pool3d_backward(grad_out, list(g.input_shape), *_window(g), g.ceil_mode,
                                                 g.count_include_pad, g.divisor, channels_last)


REGISTERED = Pool3dPasses(max_input_grad=_registered_max_input_grad, avg_input_grad=_registered_avg_input_grad)


def _setup_max_pool3d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, kernel_size, stride, padding, dilation, ceil_mode, _channels_last, grad_channels_last = inputs
    save_max_pool(ctx, output[1], _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode),
                  grad_channels_last)


def _setup_adaptive_max_pool3d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, output_size, _channels_last, grad_channels_last = inputs
    save_max_pool(ctx, output[1], _adaptive_geometry(x.shape, output_size, "adaptive_max_pool3d"),
                  grad_channels_last)


def _setup_avg_pool3d(ctx, inputs: tuple, output: Tensor) -> None:
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, _channels_last, grad_channels_last = inputs
    save_avg_pool(ctx, _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor),
                  grad_channels_last)


def _setup_adaptive_avg_pool3d(ctx, inputs: tuple, output: Tensor) -> None:
    x, output_size, _channels_last, grad_channels_last = inputs
    save_avg_pool(ctx, _adaptive_geometry(x.shape, output_size, "adaptive_avg_pool3d"), grad_channels_last)


def _backward_max_pool3d(ctx, grad_out: Tensor, _grad_indices: Tensor | None) -> tuple:
    grad_in = max_pool3d_grad(REGISTERED, ctx.saved_tensors, ctx.geometry, ctx.channels_last, grad_out)
    return grad_in, *(None,) * (len(ctx.needs_input_grad) - 1)


def _backward_avg_pool3d(ctx, grad_out: Tensor) -> tuple:
    grad_in = avg_pool3d_grad(REGISTERED, ctx.geometry, ctx.channels_last, grad_out)
    return grad_in, *(None,) * (len(ctx.needs_input_grad) - 1)


max_pool3d_op.register_autograd(_backward_max_pool3d, setup_context=_setup_max_pool3d)
adaptive_max_pool3d_op.register_autograd(_backward_max_pool3d, setup_context=_setup_adaptive_max_pool3d)
avg_pool3d_op.register_autograd(_backward_avg_pool3d, setup_context=_setup_avg_pool3d)
adaptive_avg_pool3d_op.register_autograd(_backward_avg_pool3d, setup_context=_setup_adaptive_avg_pool3d)
