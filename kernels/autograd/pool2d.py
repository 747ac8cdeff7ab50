"""Pooling's autograd, defined once: what each forward saves, its backward formula, the passes that formula is
made of (launchers, recorded Functions, registered ops: see ``kernels.autograd``), the eager Functions and
the registered ops ``kernels::max_pool2d``, ``kernels::avg_pool2d``, ``kernels::adaptive_avg_pool2d`` and
``kernels::adaptive_max_pool2d`` with their backward ops.

Inputs are batched ``(N, C, H, W)``; ``channels_last`` is the layout of every output and input gradient.
Both backwards are linear in the output gradient, and their recorded forms close under differentiation:
max pooling's backward and the gather at the saved maxima are each other's gradient, average pooling's
backward and average pooling likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..ops.pool2d import (
    avg_pool2d_input_grad,
    avg_pool2d_output,
    max_pool2d_gathered,
    max_pool2d_input_grad,
    max_pool2d_output,
)
from ..pool_shapes import PoolGeometry, adaptive_pool2d_geometry, avg_pool2d_geometry, max_pool2d_geometry
from ..pool_shapes3d import PoolGeometry3d
from ..shapes import empty_4d, prefers_channels_last
from . import eager_passes

Tensor = torch.Tensor


@dataclass(frozen=True)
class PoolPasses:
    """The passes of the pooling backwards:

    * ``max_input_grad(grad_out (N, C, P, Q), indices, g, channels_last) -> (N, C, H, W)``;
    * ``avg_input_grad(grad_out (N, C, P, Q), g, channels_last) -> (N, C, H, W)``.
    """

    max_input_grad: Callable[[Tensor, Tensor, PoolGeometry, bool], Tensor]
    avg_input_grad: Callable[[Tensor, PoolGeometry, bool], Tensor]


# --------------------------------------------------------------------------------------------------------
# The one definition: setup and backward formula (strided and adaptive windows alike: ``g.adaptive``)


def save_max_pool(ctx, indices: Tensor, g: PoolGeometry | PoolGeometry3d, channels_last: bool) -> None:
    """What max pooling's forward saves: where the maxima are (int64 flat indices, or in 2-D uint8 positions in
    the window: :meth:`PoolGeometry.saved_index_dtype`), the geometry and the layout (2-D and 3-D alike)."""
    ctx.save_for_backward(indices)
    ctx.geometry = g
    ctx.channels_last = channels_last


def max_pool2d_grad(passes: PoolPasses, saved: Sequence[Tensor], g: PoolGeometry, channels_last: bool,
                    grad_out: Tensor) -> Tensor:
    """The input gradient ``(N, C, H, W)`` of max pooling from ``grad_out (N, C, P, Q)``."""
    (indices,) = saved
    return passes.max_input_grad(grad_out, indices, g, channels_last)


def save_avg_pool(ctx, g: PoolGeometry | PoolGeometry3d, channels_last: bool) -> None:
    """What average pooling's forward saves: no tensor, the geometry and the layout (2-D and 3-D alike)."""
    ctx.geometry = g
    ctx.channels_last = channels_last


def avg_pool2d_grad(passes: PoolPasses, g: PoolGeometry, channels_last: bool, grad_out: Tensor) -> Tensor:
    """The input gradient ``(N, C, H, W)`` of average pooling from ``grad_out (N, C, P, Q)``."""
    return passes.avg_input_grad(grad_out, g, channels_last)


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling (strided or adaptive windows); returns the output and the saved maxima: torch's int64
    indices when ``return_indices``, else one byte per output for the backward (or int64 indices for windows
    over 256 positions), else an empty placeholder when the backward needs none."""

    @staticmethod
    def forward(ctx, x: Tensor, g: PoolGeometry, return_indices: bool, channels_last: bool):
        saved = return_indices or ctx.needs_input_grad[0]
        out, indices = max_pool2d_output(x, g, g.saved_index_dtype(return_indices) if saved else None,
                                         channels_last)
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)  # (no int64 zeros for the indices' gradient, which nothing reads)
        save_max_pool(ctx, indices, g, channels_last)
        return out, indices

    @staticmethod
    def backward(ctx, grad_out: Tensor | None, _grad_indices: Tensor | None):
        if grad_out is None:
            return None, None, None, None
        grad_in = max_pool2d_grad(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.geometry,
                                  ctx.channels_last, grad_out)
        return grad_in, None, None, None


class MaxPool2dBackward(torch.autograd.Function):
    """The max-pooling input gradient as a differentiable op: linear in ``grad_out``, whose gradient takes
    the incoming gradient at the saved maxima (:class:`MaxPool2dGather`)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, indices: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.out_channels_last = prefers_channels_last(grad_out)
        return max_pool2d_input_grad(grad_out, indices, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPool2dGather.apply(grad_grad_in, indices, ctx.geometry, ctx.out_channels_last), None, None, None


class MaxPool2dGather(torch.autograd.Function):
    """``(N, C, H, W) -> (N, C, P, Q)``: the elements at the saved maxima; its gradient is the max-pooling
    backward, so the pair closes under differentiation."""

    @staticmethod
    def forward(ctx, src: Tensor, indices: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.src_channels_last = prefers_channels_last(src)
        return max_pool2d_gathered(src, indices, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPool2dBackward.apply(grad_out, indices, ctx.geometry, ctx.src_channels_last), None, None, None


class AvgPool2dFunction(torch.autograd.Function):
    """Average pooling (strided or adaptive windows). Only the geometry is saved for the backward."""

    @staticmethod
    def forward(ctx, x: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
        save_avg_pool(ctx, g, channels_last)
        return avg_pool2d_output(x, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_in = avg_pool2d_grad(eager_passes(LAUNCHERS, RECORDED), ctx.geometry, ctx.channels_last, grad_out)
        return grad_in, None, None


class AvgPool2dBackward(torch.autograd.Function):
    """The average-pooling input gradient as a differentiable op: linear, and its gradient is the average
    pooling of the incoming gradient."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
        ctx.geometry = g
        ctx.out_channels_last = prefers_channels_last(grad_out)
        return avg_pool2d_input_grad(grad_out, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        return AvgPool2dFunction.apply(grad_grad_in, ctx.geometry, ctx.out_channels_last), None, None


LAUNCHERS = PoolPasses(max_input_grad=max_pool2d_input_grad, avg_input_grad=avg_pool2d_input_grad)
RECORDED = PoolPasses(max_input_grad=MaxPool2dBackward.apply, avg_input_grad=AvgPool2dBackward.apply)


# --------------------------------------------------------------------------------------------------------
# Registered: the ops torch.compile traces. They take tensors and plain ints only: the forward ops take
# torch's pooling arguments (resolved), the backward ops the input's size besides.


def _window(g: PoolGeometry) -> tuple[list[int], list[int], list[int]]:
    """``(kernel_size, stride, padding)`` of a strided geometry, as the registered ops take them."""
    return [g.kh, g.kw], [g.stride_h, g.stride_w], [g.pad_h, g.pad_w]


def _max_geometry(shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool) -> PoolGeometry:
    return max_pool2d_geometry(tuple(shape), list(kernel_size), list(stride), list(padding), list(dilation),
                               ceil_mode)


def _avg_geometry(shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], ceil_mode: bool, count_include_pad: bool, divisor: int) -> PoolGeometry:
    return avg_pool2d_geometry(tuple(shape), list(kernel_size), list(stride), list(padding), ceil_mode,
                               count_include_pad, divisor or None)


def _adaptive_geometry(shape: Sequence[int], output_size: Sequence[int], op: str) -> PoolGeometry:
    return adaptive_pool2d_geometry(tuple(shape), list(output_size), op)


def _max_outputs(x: Tensor, g: PoolGeometry, return_indices: bool, channels_last: bool) -> tuple[Tensor, Tensor]:
    return (empty_4d(g.output_shape, x, channels_last),
            empty_4d(g.output_shape, x, channels_last, g.saved_index_dtype(return_indices)))


@torch.library.custom_op("kernels::max_pool2d", mutates_args=())
def max_pool2d_op(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  dilation: Sequence[int], ceil_mode: bool, return_indices: bool, channels_last: bool
                  ) -> tuple[Tensor, Tensor]:
    """Max pooling: the output ``(N, C, P, Q)`` and the maxima: int64 flat indices ``h*W + w`` with
    ``return_indices``, else as :meth:`PoolGeometry.saved_index_dtype` says."""
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool2d_output(x, g, g.saved_index_dtype(return_indices), channels_last)


@max_pool2d_op.register_fake
def _(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, channels_last):
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_outputs(x, g, return_indices, channels_last)


@torch.library.custom_op("kernels::max_pool2d_backward", mutates_args=())
def max_pool2d_backward_op(grad_out: Tensor, indices: Tensor, input_size: Sequence[int],
                           kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                           dilation: Sequence[int], ceil_mode: bool, channels_last: bool) -> Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of max pooling from ``grad_out`` and the saved indices."""
    g = _max_geometry(input_size, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool2d_input_grad(grad_out, indices, g, channels_last)


@max_pool2d_backward_op.register_fake
def _(grad_out, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::adaptive_max_pool2d", mutates_args=())
def adaptive_max_pool2d_op(x: Tensor, output_size: Sequence[int], return_indices: bool, channels_last: bool
                           ) -> tuple[Tensor, Tensor]:
    """Adaptive max pooling to ``output_size (P, Q)``: the output and the maxima (as :func:`max_pool2d_op`)."""
    g = _adaptive_geometry(x.shape, output_size, "adaptive_max_pool2d")
    return max_pool2d_output(x, g, g.saved_index_dtype(return_indices), channels_last)


@adaptive_max_pool2d_op.register_fake
def _(x, output_size, return_indices, channels_last):
    g = _adaptive_geometry(x.shape, output_size, "adaptive_max_pool2d")
    return _max_outputs(x, g, return_indices, channels_last)


@torch.library.custom_op("kernels::adaptive_max_pool2d_backward", mutates_args=())
def adaptive_max_pool2d_backward_op(grad_out: Tensor, indices: Tensor, input_size: Sequence[int],
                                    channels_last: bool) -> Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of adaptive max pooling from the saved indices."""
    g = _adaptive_geometry(input_size, grad_out.shape[2:], "adaptive_max_pool2d")
    return max_pool2d_input_grad(grad_out, indices, g, channels_last)


@adaptive_max_pool2d_backward_op.register_fake
def _(grad_out, indices, input_size, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::avg_pool2d", mutates_args=())
def avg_pool2d_op(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  ceil_mode: bool, count_include_pad: bool, divisor: int, channels_last: bool) -> Tensor:
    """Average pooling ``(N, C, P, Q)``; ``divisor`` is ``divisor_override`` (0: none)."""
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return avg_pool2d_output(x, g, channels_last)


@avg_pool2d_op.register_fake
def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last):
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return empty_4d(g.output_shape, x, channels_last)


@torch.library.custom_op("kernels::avg_pool2d_backward", mutates_args=())
def avg_pool2d_backward_op(grad_out: Tensor, input_size: Sequence[int], kernel_size: Sequence[int],
                           stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                           count_include_pad: bool, divisor: int, channels_last: bool) -> Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of average pooling."""
    g = _avg_geometry(input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return avg_pool2d_input_grad(grad_out, g, channels_last)


@avg_pool2d_backward_op.register_fake
def _(grad_out, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::adaptive_avg_pool2d", mutates_args=())
def adaptive_avg_pool2d_op(x: Tensor, output_size: Sequence[int], channels_last: bool) -> Tensor:
    """Adaptive average pooling to ``output_size (P, Q)``."""
    g = _adaptive_geometry(x.shape, output_size, "adaptive_avg_pool2d")
    return avg_pool2d_output(x, g, channels_last)


@adaptive_avg_pool2d_op.register_fake
def _(x, output_size, channels_last):
    return empty_4d((x.shape[0], x.shape[1], *output_size), x, channels_last)


@torch.library.custom_op("kernels::adaptive_avg_pool2d_backward", mutates_args=())
def adaptive_avg_pool2d_backward_op(grad_out: Tensor, input_size: Sequence[int], channels_last: bool) -> Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of adaptive average pooling to ``grad_out``'s size."""
    g = _adaptive_geometry(input_size, grad_out.shape[2:], "adaptive_avg_pool2d")
    return avg_pool2d_input_grad(grad_out, g, channels_last)


@adaptive_avg_pool2d_backward_op.register_fake
def _(grad_out, input_size, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


def registered_max_pool2d(x: Tensor, g: PoolGeometry, return_indices: bool, channels_last: bool
                          ) -> tuple[Tensor, Tensor]:
    """The output and saved maxima of the registered max pooling of ``g`` (what the functional API calls
    while compiling): torch's int64 indices with ``return_indices``."""
    if g.adaptive:
        return torch.ops.kernels.adaptive_max_pool2d(x, [g.P, g.Q], return_indices, channels_last)
    kernel_size, stride, padding = _window(g)
    return torch.ops.kernels.max_pool2d(x, kernel_size, stride, padding, [g.dil_h, g.dil_w], g.ceil_mode,
                                        return_indices, channels_last)


def registered_avg_pool2d(x: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
    """The output of the registered average pooling of ``g`` (what the functional API calls while
    compiling)."""
    if g.adaptive:
        return torch.ops.kernels.adaptive_avg_pool2d(x, [g.P, g.Q], channels_last)
    return torch.ops.kernels.avg_pool2d(x, *_window(g), g.ceil_mode, g.count_include_pad, g.divisor, channels_last)


def _registered_max_input_grad(grad_out: Tensor, indices: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
    if g.adaptive:
        return torch.ops.kernels.adaptive_max_pool2d_backward(grad_out, indices, list(g.input_shape), channels_last)
    kernel_size, stride, padding = _window(g)
    return torch.ops.kernels.max_pool2d_backward(grad_out, indices, list(g.input_shape), kernel_size, stride,
                                                 padding, [g.dil_h, g.dil_w], g.ceil_mode, channels_last)


def _registered_avg_input_grad(grad_out: Tensor, g: PoolGeometry, channels_last: bool) -> Tensor:
    if g.adaptive:
        return torch.ops.kernels.adaptive_avg_pool2d_backward(grad_out, list(g.input_shape), channels_last)
    return torch.ops.kernels.avg_pool2d_backward(grad_out, list(g.input_shape), *_window(g), g.ceil_mode,
                                                 g.count_include_pad, g.divisor, channels_last)


REGISTERED = PoolPasses(max_input_grad=_registered_max_input_grad, avg_input_grad=_registered_avg_input_grad)


def _setup_max_pool2d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, kernel_size, stride, padding, dilation, ceil_mode, _return_indices, channels_last = inputs
    save_max_pool(ctx, output[1], _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode),
                  channels_last)


def _setup_adaptive_max_pool2d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, output_size, _return_indices, channels_last = inputs
    save_max_pool(ctx, output[1], _adaptive_geometry(x.shape, output_size, "adaptive_max_pool2d"), channels_last)


def _setup_avg_pool2d(ctx, inputs: tuple, output: Tensor) -> None:
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last = inputs
    save_avg_pool(ctx, _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor),
                  channels_last)


def _setup_adaptive_avg_pool2d(ctx, inputs: tuple, output: Tensor) -> None:
    x, output_size, channels_last = inputs
    save_avg_pool(ctx, _adaptive_geometry(x.shape, output_size, "adaptive_avg_pool2d"), channels_last)


def _backward_max_pool2d(ctx, grad_out: Tensor, _grad_indices: Tensor | None) -> tuple:
    grad_in = max_pool2d_grad(REGISTERED, ctx.saved_tensors, ctx.geometry, ctx.channels_last, grad_out)
    return grad_in, *(None,) * (len(ctx.needs_input_grad) - 1)


def _backward_avg_pool2d(ctx, grad_out: Tensor) -> tuple:
    grad_in = avg_pool2d_grad(REGISTERED, ctx.geometry, ctx.channels_last, grad_out)
    return grad_in, *(None,) * (len(ctx.needs_input_grad) - 1)


max_pool2d_op.register_autograd(_backward_max_pool2d, setup_context=_setup_max_pool2d)
adaptive_max_pool2d_op.register_autograd(_backward_max_pool2d, setup_context=_setup_adaptive_max_pool2d)
avg_pool2d_op.register_autograd(_backward_avg_pool2d, setup_context=_setup_avg_pool2d)
adaptive_avg_pool2d_op.register_autograd(_backward_avg_pool2d, setup_context=_setup_adaptive_avg_pool2d)
