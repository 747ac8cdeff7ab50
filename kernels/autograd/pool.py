"""Pooling's autograd, defined once for every rank: what each forward saves, its backward formula, the passes
that formula is made of (launchers, recorded Functions, registered ops: see ``kernels.autograd``), the eager
Functions and the registered ops ``kernels::max_pool{2,3}d``, ``kernels::avg_pool{2,3}d``,
``kernels::adaptive_avg_pool{2,3}d`` and ``kernels::adaptive_max_pool{2,3}d`` with their backward ops.
(1-D pooling runs as 2-D views.)

Inputs are batched ``(N, C, *spatial)``; a geometry (``kernels.pool_shapes.PoolGeometry`` or
``kernels.pool_shapes3d.PoolGeometry3d``) says the rank; ``kernels.ops.pool`` holds each rank's launchers.
``channels_last`` is the layout of an output, ``grad_channels_last`` that of the input gradient (the input's
own: torch's 3-D average and adaptive pools give contiguous outputs but input gradients in the input's layout;
in 2-D the two are equal). Both backwards are linear in the output gradient and their recorded forms close
under differentiation: max pooling's backward and the gather at the saved maxima are each other's gradient,
average pooling's backward and average pooling likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..ops.pool import (
    LAUNCHERS as RANK_LAUNCHERS,
)
from ..ops.pool import (
    avg_pool_input_grad,
    avg_pool_output,
    max_pool_gathered,
    max_pool_input_grad,
    max_pool_output,
)
from ..pool_shapes import PoolGeometry, adaptive_pool2d_geometry, avg_pool2d_geometry, max_pool2d_geometry
from ..pool_shapes3d import PoolGeometry3d, adaptive_pool3d_geometry, avg_pool3d_geometry, max_pool3d_geometry
from ..shapes import empty_nd
from . import eager_passes

Tensor = torch.Tensor
Geometry = PoolGeometry | PoolGeometry3d


@dataclass(frozen=True)
class GeometryBuilders:
    """One rank's geometry builders (what the registered ops rebuild from plain ints)."""

    max: Callable[..., Geometry]
    avg: Callable[..., Geometry]
    adaptive: Callable[..., Geometry]


GEOMETRY: dict[int, GeometryBuilders] = {
    2: GeometryBuilders(max_pool2d_geometry, avg_pool2d_geometry, adaptive_pool2d_geometry),
    3: GeometryBuilders(max_pool3d_geometry, avg_pool3d_geometry, adaptive_pool3d_geometry),
}


@dataclass(frozen=True)
class PoolPasses:
    """The passes of the pooling backwards:

    * ``max_input_grad(grad_out (N, C, *out), indices, g, channels_last) -> (N, C, *in)``;
    * ``avg_input_grad(grad_out (N, C, *out), g, channels_last) -> (N, C, *in)``.
    """

    max_input_grad: Callable[[Tensor, Tensor, Geometry, bool], Tensor]
    avg_input_grad: Callable[[Tensor, Geometry, bool], Tensor]


# --------------------------------------------------------------------------------------------------------
# The one definition: what a forward saves, and the backward formula (strided and adaptive windows alike)


def save_max_pool(ctx, indices: Tensor, g: Geometry, grad_channels_last: bool) -> None:
    """What max pooling's forward saves: where the maxima are (int64 flat indices, or in 2-D uint8 positions in
    the window: ``g.saved_index_dtype``), the geometry and the input gradient's layout."""
    ctx.save_for_backward(indices)
    ctx.geometry = g
    ctx.channels_last = grad_channels_last


def save_avg_pool(ctx, g: Geometry, grad_channels_last: bool) -> None:
    """What average pooling's forward saves: no tensor, the geometry and the input gradient's layout."""
    ctx.geometry = g
    ctx.channels_last = grad_channels_last


def max_pool_grad(passes: PoolPasses, saved: Sequence[Tensor], g: Geometry, channels_last: bool,
                  grad_out: Tensor) -> Tensor:
    """The input gradient ``(N, C, *in)`` of max pooling from ``grad_out (N, C, *out)``."""
    (indices,) = saved
    return passes.max_input_grad(grad_out, indices, g, channels_last)


def avg_pool_grad(passes: PoolPasses, g: Geometry, channels_last: bool, grad_out: Tensor) -> Tensor:
    """The input gradient ``(N, C, *in)`` of average pooling from ``grad_out (N, C, *out)``."""
    return passes.avg_input_grad(grad_out, g, channels_last)


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class MaxPoolFunction(torch.autograd.Function):
    """Max pooling (strided or adaptive windows); returns the output and the saved maxima: torch's int64
    indices when ``return_indices``, else what ``g.saved_index_dtype`` says (in 2-D one byte per output for
    windows of at most 256 positions), else an empty placeholder when the backward needs none."""

    @staticmethod
    def forward(ctx, x: Tensor, g: Geometry, return_indices: bool, channels_last: bool, grad_channels_last: bool):
        saved = return_indices or ctx.needs_input_grad[0]
        out, indices = max_pool_output(x, g, g.saved_index_dtype(return_indices) if saved else None, channels_last)
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)  # (no int64 zeros for the indices' gradient, which nothing reads)
        save_max_pool(ctx, indices, g, grad_channels_last)
        return out, indices

    @staticmethod
    def backward(ctx, grad_out: Tensor | None, _grad_indices: Tensor | None):
        if grad_out is None:
            return None, None, None, None, None
        grad_in = max_pool_grad(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.geometry,
                                ctx.channels_last, grad_out)
        return grad_in, None, None, None, None


class MaxPoolBackward(torch.autograd.Function):
    """The max-pooling input gradient as a differentiable op: linear in ``grad_out``, whose gradient takes
    the incoming gradient at the saved maxima (:class:`MaxPoolGather`)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, indices: Tensor, g: Geometry, channels_last: bool) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.out_channels_last = RANK_LAUNCHERS[g.rank].prefers_channels_last(grad_out)
        return max_pool_input_grad(grad_out, indices, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPoolGather.apply(grad_grad_in, indices, ctx.geometry, ctx.out_channels_last), None, None, None


class MaxPoolGather(torch.autograd.Function):
    """``(N, C, *in) -> (N, C, *out)``: the elements at the saved maxima; its gradient is the max-pooling
    backward, so the pair closes under differentiation."""

    @staticmethod
    def forward(ctx, src: Tensor, indices: Tensor, g: Geometry, channels_last: bool) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.src_channels_last = RANK_LAUNCHERS[g.rank].prefers_channels_last(src)
        return max_pool_gathered(src, indices, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPoolBackward.apply(grad_out, indices, ctx.geometry, ctx.src_channels_last), None, None, None


class AvgPoolFunction(torch.autograd.Function):
    """Average pooling (strided or adaptive windows). Only the geometry is saved for the backward."""

    @staticmethod
    def forward(ctx, x: Tensor, g: Geometry, channels_last: bool, grad_channels_last: bool) -> Tensor:
        save_avg_pool(ctx, g, grad_channels_last)
        return avg_pool_output(x, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_in = avg_pool_grad(eager_passes(LAUNCHERS, RECORDED), ctx.geometry, ctx.channels_last, grad_out)
        return grad_in, None, None, None


class AvgPoolBackward(torch.autograd.Function):
    """The average-pooling input gradient as a differentiable op: linear, and its gradient is the average
    pooling of the incoming gradient."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, g: Geometry, channels_last: bool) -> Tensor:
        ctx.geometry = g
        ctx.out_channels_last = RANK_LAUNCHERS[g.rank].prefers_channels_last(grad_out)
        ctx.channels_last = channels_last
        return avg_pool_input_grad(grad_out, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        return AvgPoolFunction.apply(grad_grad_in, ctx.geometry, ctx.out_channels_last, ctx.channels_last), \
            None, None


LAUNCHERS = PoolPasses(max_input_grad=max_pool_input_grad, avg_input_grad=avg_pool_input_grad)
RECORDED = PoolPasses(max_input_grad=MaxPoolBackward.apply, avg_input_grad=AvgPoolBackward.apply)


# --------------------------------------------------------------------------------------------------------
# Registered: the ops torch.compile traces, one set per rank (``kernels::max_pool2d``, ``kernels::max_pool3d``,
# ...). They take tensors and plain ints only: the forward ops take torch's pooling arguments (resolved) and
# the layouts, the backward ops the input's size besides.


@dataclass(frozen=True)
class RegisteredPoolOps:
    """One rank's registered pooling ops."""

    max_pool: Callable
    max_pool_backward: Callable
    adaptive_max_pool: Callable
    adaptive_max_pool_backward: Callable
    avg_pool: Callable
    avg_pool_backward: Callable
    adaptive_avg_pool: Callable
    adaptive_avg_pool_backward: Callable

    def all(self) -> tuple[Callable, ...]:
        return (self.max_pool, self.max_pool_backward, self.adaptive_max_pool, self.adaptive_max_pool_backward,
                self.avg_pool, self.avg_pool_backward, self.adaptive_avg_pool, self.adaptive_avg_pool_backward)


def _register(rank: int) -> RegisteredPoolOps:
    """Register rank ``rank``'s pooling ops, their fake implementations and their autograd."""
    r = GEOMETRY[rank]

    def max_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode) -> Geometry:
        return r.max(tuple(shape), list(kernel_size), list(stride), list(padding), list(dilation),
                              ceil_mode)

    def avg_geometry(shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor) -> Geometry:
        return r.avg(tuple(shape), list(kernel_size), list(stride), list(padding), ceil_mode,
                              count_include_pad, divisor or None)

    def adaptive_geometry(shape, output_size, op: str) -> Geometry:
        return r.adaptive(tuple(shape), list(output_size), op)

    def max_outputs(x: Tensor, g: Geometry, return_indices: bool, channels_last: bool) -> tuple[Tensor, Tensor]:
        return (empty_nd(g.output_shape, x, channels_last),
                empty_nd(g.output_shape, x, channels_last, g.saved_index_dtype(return_indices)))

    def run_max(x: Tensor, g: Geometry, return_indices: bool, channels_last: bool) -> tuple[Tensor, Tensor]:
        return max_pool_output(x, g, g.saved_index_dtype(return_indices), channels_last)

    max_name, avg_name = f"max_pool{rank}d", f"avg_pool{rank}d"
    adaptive_max, adaptive_avg = f"adaptive_{max_name}", f"adaptive_{avg_name}"

    @torch.library.custom_op(f"kernels::{max_name}", mutates_args=())
    def max_pool_op(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                    dilation: Sequence[int], ceil_mode: bool, return_indices: bool, channels_last: bool,
                    grad_channels_last: bool) -> tuple[Tensor, Tensor]:
        """Max pooling: the output and the maxima (int64 flat indices with ``return_indices``, else as
        ``g.saved_index_dtype`` says); ``grad_channels_last``: the layout its backward gives."""
        g = max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
        return run_max(x, g, return_indices, channels_last)

    @max_pool_op.register_fake
    def _(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, channels_last, grad_channels_last):
        g = max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
        return max_outputs(x, g, return_indices, channels_last)

    @torch.library.custom_op(f"kernels::{max_name}_backward", mutates_args=())
    def max_pool_backward_op(grad_out: Tensor, indices: Tensor, input_size: Sequence[int],
                             kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                             dilation: Sequence[int], ceil_mode: bool, channels_last: bool) -> Tensor:
        """Gradient (``input_size``) of max pooling from ``grad_out`` and the saved maxima."""
        g = max_geometry(input_size, kernel_size, stride, padding, dilation, ceil_mode)
        return max_pool_input_grad(grad_out, indices, g, channels_last)

    @max_pool_backward_op.register_fake
    def _(grad_out, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode, channels_last):
        return empty_nd(tuple(input_size), grad_out, channels_last)

    @torch.library.custom_op(f"kernels::{adaptive_max}", mutates_args=())
    def adaptive_max_pool_op(x: Tensor, output_size: Sequence[int], return_indices: bool, channels_last: bool,
                             grad_channels_last: bool) -> tuple[Tensor, Tensor]:
        """Adaptive max pooling to ``output_size``: the output and the maxima (as ``max_pool``)."""
        return run_max(x, adaptive_geometry(x.shape, output_size, adaptive_max), return_indices, channels_last)

    @adaptive_max_pool_op.register_fake
    def _(x, output_size, return_indices, channels_last, grad_channels_last):
        return max_outputs(x, adaptive_geometry(x.shape, output_size, adaptive_max), return_indices, channels_last)

    @torch.library.custom_op(f"kernels::{adaptive_max}_backward", mutates_args=())
    def adaptive_max_pool_backward_op(grad_out: Tensor, indices: Tensor, input_size: Sequence[int],
                                      channels_last: bool) -> Tensor:
        """Gradient (``input_size``) of adaptive max pooling from the saved maxima."""
        g = adaptive_geometry(input_size, grad_out.shape[2:], adaptive_max)
        return max_pool_input_grad(grad_out, indices, g, channels_last)

    @adaptive_max_pool_backward_op.register_fake
    def _(grad_out, indices, input_size, channels_last):
        return empty_nd(tuple(input_size), grad_out, channels_last)

    @torch.library.custom_op(f"kernels::{avg_name}", mutates_args=())
    def avg_pool_op(x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                    ceil_mode: bool, count_include_pad: bool, divisor: int, channels_last: bool,
                    grad_channels_last: bool) -> Tensor:
        """Average pooling; ``divisor`` is ``divisor_override`` (0: none)."""
        g = avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
        return avg_pool_output(x, g, channels_last)

    @avg_pool_op.register_fake
    def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last, grad_channels_last):
        g = avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
        return empty_nd(g.output_shape, x, channels_last)

    @torch.library.custom_op(f"kernels::{avg_name}_backward", mutates_args=())
    def avg_pool_backward_op(grad_out: Tensor, input_size: Sequence[int], kernel_size: Sequence[int],
                             stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                             count_include_pad: bool, divisor: int, channels_last: bool) -> Tensor:
        """Gradient (``input_size``) of average pooling."""
        g = avg_geometry(input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
        return avg_pool_input_grad(grad_out, g, channels_last)

    @avg_pool_backward_op.register_fake
    def _(grad_out, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last):
        return empty_nd(tuple(input_size), grad_out, channels_last)

    @torch.library.custom_op(f"kernels::{adaptive_avg}", mutates_args=())
    def adaptive_avg_pool_op(x: Tensor, output_size: Sequence[int], channels_last: bool, grad_channels_last: bool
                             ) -> Tensor:
        """Adaptive average pooling to ``output_size``."""
        return avg_pool_output(x, adaptive_geometry(x.shape, output_size, adaptive_avg), channels_last)

    @adaptive_avg_pool_op.register_fake
    def _(x, output_size, channels_last, grad_channels_last):
        return empty_nd((x.shape[0], x.shape[1], *output_size), x, channels_last)

    @torch.library.custom_op(f"kernels::{adaptive_avg}_backward", mutates_args=())
    def adaptive_avg_pool_backward_op(grad_out: Tensor, input_size: Sequence[int], channels_last: bool) -> Tensor:
        """Gradient (``input_size``) of adaptive average pooling to ``grad_out``'s size."""
        g = adaptive_geometry(input_size, grad_out.shape[2:], adaptive_avg)
        return avg_pool_input_grad(grad_out, g, channels_last)

    @adaptive_avg_pool_backward_op.register_fake
    def _(grad_out, input_size, channels_last):
        return empty_nd(tuple(input_size), grad_out, channels_last)

    def setup_max_pool(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, kernel_size, stride, padding, dilation, ceil_mode, _return_indices, _channels_last, grad_cl = inputs
        save_max_pool(ctx, output[1], max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode),
                      grad_cl)

    def setup_adaptive_max_pool(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, output_size, _return_indices, _channels_last, grad_cl = inputs
        save_max_pool(ctx, output[1], adaptive_geometry(x.shape, output_size, adaptive_max), grad_cl)

    def setup_avg_pool(ctx, inputs: tuple, output: Tensor) -> None:
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, _channels_last, grad_cl = inputs
        save_avg_pool(ctx, avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        divisor), grad_cl)

    def setup_adaptive_avg_pool(ctx, inputs: tuple, output: Tensor) -> None:
        x, output_size, _channels_last, grad_cl = inputs
        save_avg_pool(ctx, adaptive_geometry(x.shape, output_size, adaptive_avg), grad_cl)

    max_pool_op.register_autograd(_backward_max_pool, setup_context=setup_max_pool)
    adaptive_max_pool_op.register_autograd(_backward_max_pool, setup_context=setup_adaptive_max_pool)
    avg_pool_op.register_autograd(_backward_avg_pool, setup_context=setup_avg_pool)
    adaptive_avg_pool_op.register_autograd(_backward_avg_pool, setup_context=setup_adaptive_avg_pool)
    return RegisteredPoolOps(max_pool_op, max_pool_backward_op, adaptive_max_pool_op, adaptive_max_pool_backward_op,
                             avg_pool_op, avg_pool_backward_op, adaptive_avg_pool_op, adaptive_avg_pool_backward_op)


def _registered_max_input_grad(grad_out: Tensor, indices: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    ops = POOL_OPS[g.rank]
    if g.adaptive:
        return ops.adaptive_max_pool_backward(grad_out, indices, list(g.input_shape), channels_last)
    return ops.max_pool_backward(grad_out, indices, list(g.input_shape), list(g.kernel), list(g.stride),
                                 list(g.padding), list(g.dilation), g.ceil_mode, channels_last)


def _registered_avg_input_grad(grad_out: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    ops = POOL_OPS[g.rank]
    if g.adaptive:
        return ops.adaptive_avg_pool_backward(grad_out, list(g.input_shape), channels_last)
    return ops.avg_pool_backward(grad_out, list(g.input_shape), list(g.kernel), list(g.stride), list(g.padding),
                                 g.ceil_mode, g.count_include_pad, g.divisor, channels_last)


REGISTERED = PoolPasses(max_input_grad=_registered_max_input_grad, avg_input_grad=_registered_avg_input_grad)


def _backward_max_pool(ctx, grad_out: Tensor, _grad_indices: Tensor | None) -> tuple:
    grad_in = max_pool_grad(REGISTERED, ctx.saved_tensors, ctx.geometry, ctx.channels_last, grad_out)
    return grad_in, *(None,) * (len(ctx.needs_input_grad) - 1)


def _backward_avg_pool(ctx, grad_out: Tensor) -> tuple:
    grad_in = avg_pool_grad(REGISTERED, ctx.geometry, ctx.channels_last, grad_out)
    return grad_in, *(None,) * (len(ctx.needs_input_grad) - 1)


POOL_OPS: dict[int, RegisteredPoolOps] = {rank: _register(rank) for rank in GEOMETRY}


def registered_max_pool(x: Tensor, g: Geometry, return_indices: bool, channels_last: bool,
                        grad_channels_last: bool) -> tuple[Tensor, Tensor]:
    """The output and saved maxima of the registered max pooling of ``g`` (what the functional API calls
    while compiling): torch's int64 indices with ``return_indices``."""
    ops = POOL_OPS[g.rank]
    if g.adaptive:
        return ops.adaptive_max_pool(x, list(g.output_shape[2:]), return_indices, channels_last, grad_channels_last)
    return ops.max_pool(x, list(g.kernel), list(g.stride), list(g.padding), list(g.dilation), g.ceil_mode,
                        return_indices, channels_last, grad_channels_last)


def registered_avg_pool(x: Tensor, g: Geometry, channels_last: bool, grad_channels_last: bool) -> Tensor:
    """The output of the registered average pooling of ``g`` (what the functional API calls while
    compiling)."""
    ops = POOL_OPS[g.rank]
    if g.adaptive:
        return ops.adaptive_avg_pool(x, list(g.output_shape[2:]), channels_last, grad_channels_last)
    return ops.avg_pool(x, list(g.kernel), list(g.stride), list(g.padding), g.ceil_mode, g.count_include_pad,
                        g.divisor, channels_last, grad_channels_last)
