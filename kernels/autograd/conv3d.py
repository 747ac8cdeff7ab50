"""conv3d's and conv_transpose3d's autograd, defined once: what their forwards save, their backward formulas,
the passes those formulas are made of (launchers, recorded Functions, registered ops: see
``kernels.autograd``), the eager Functions and the registered ops ``kernels::conv3d``,
``kernels::conv3d_input_grad``, ``kernels::conv3d_weight_grad`` and ``kernels::conv_transpose3d``.

The three convolution passes (forward, input gradient, weight gradient) are bilinear, and each one's
gradients are the other two: so the recorded passes close under differentiation, and gradients of
gradients work in eager mode. The transposed convolution is the same three passes with roles exchanged
(``kernels.ops.conv3d.conv_transpose3d_output``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..ops.conv3d import conv3d_output, conv3d_weight_grad, conv_transpose3d_output, input_grad
from ..ops.reduce import channel_sum
from ..shapes3d import ConvGeometry3d, conv3d_output_channels_last, empty_5d, prefers_channels_last_3d
from . import eager_passes
from .reduce import ChannelSumFunction

Tensor = torch.Tensor


@dataclass(frozen=True)
class Conv3dPasses:
    """The passes the backward of a 3-D convolution (conv3d or conv_transpose3d) is made of:

    * ``conv3d(x (N, C, D, H, W), weight, g, channels_last) -> (N, K, Z, P, Q)``, a convolution without bias;
    * ``input_grad(grad_out (N, K, Z, P, Q), weight, g, channels_last) -> (N, C, D, H, W)``;
    * ``weight_grad(grad_out (N, K, Z, P, Q), x (N, C, D, H, W), g) -> (K, C/groups, T, R, S)``;
    * ``channel_sum((N, C, D, H, W)) -> (C,)``, a bias gradient.
    """

    conv3d: Callable[[Tensor, Tensor, ConvGeometry3d, bool], Tensor]
    input_grad: Callable[[Tensor, Tensor, ConvGeometry3d, bool], Tensor]
    weight_grad: Callable[[Tensor, Tensor, ConvGeometry3d], Tensor]
    channel_sum: Callable[[Tensor], Tensor]


def _planes(t: Tensor) -> Tensor:
    """``(N, C, D, H, W) -> (N, C, D*H, W)``, the 4-D shape the channel sum takes (a view for NCDHW and
    channels_last_3d tensors)."""
    return t.flatten(2, 3)


# --------------------------------------------------------------------------------------------------------
# The one definition: setup and backward formulas


def save_conv3d(ctx, x: Tensor, weight: Tensor, g: ConvGeometry3d) -> None:
    """What a 3-D convolution's forward (conv3d's or conv_transpose3d's) saves: its operands and geometry."""
    ctx.save_for_backward(x, weight)
    ctx.geometry = g


def conv3d_grads(passes: Conv3dPasses, saved: Sequence[Tensor], needs_input_grad: Sequence[bool],
                 g: ConvGeometry3d, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of conv3d's ``x``, ``weight`` and ``bias`` (None where not needed) from
    ``grad_out (N, K, Z, P, Q)``."""
    x, weight = saved
    need_x, need_w, need_b = needs_input_grad[:3]
    grad_x = passes.input_grad(grad_out, weight, g, conv3d_output_channels_last(x, weight)) if need_x else None
    grad_w = passes.weight_grad(grad_out, x, g) if need_w else None
    grad_b = passes.channel_sum(grad_out) if need_b else None
    return grad_x, grad_w, grad_b


def conv_transpose3d_grads(passes: Conv3dPasses, saved: Sequence[Tensor], needs_input_grad: Sequence[bool],
                           g: ConvGeometry3d, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of conv_transpose3d's ``x``, ``weight`` and ``bias`` from ``grad_out (N, Cout, Dout,
    Hout, Wout)``; ``g`` is the geometry of the convolution it transposes."""
    x, weight = saved
    need_x, need_w, need_b = needs_input_grad[:3]
    grad_x = passes.conv3d(grad_out, weight, g, conv3d_output_channels_last(x, weight)) if need_x else None
    grad_w = passes.weight_grad(x, grad_out, g) if need_w else None
    grad_b = passes.channel_sum(grad_out) if need_b else None
    return grad_x, grad_w, grad_b


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class Conv3dFunction(torch.autograd.Function):
    """conv3d with every pass in Triton. Inputs are batched ``(N, C, D, H, W)``; ``g`` is their geometry;
    ``channels_last`` (None: torch's rule) fixes the output's layout."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, g: ConvGeometry3d,
                channels_last: bool | None = None) -> Tensor:
        save_conv3d(ctx, x, weight, g)
        return conv3d_output(x, weight, bias, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv3d_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                             ctx.geometry, grad_out)
        return *grads, None, None


class Conv3dInputGrad(torch.autograd.Function):
    """``grad_in (N, C, D, H, W)`` of a conv3d from ``grad_out (N, K, Z, P, Q)`` and ``weight`` as a
    differentiable op: its gradients are a conv3d of the incoming gradient (for grad_out) and a weight
    gradient (for weight)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, weight: Tensor, g: ConvGeometry3d, channels_last: bool) -> Tensor:
        ctx.save_for_backward(grad_out, weight)
        ctx.geometry = g
        return input_grad(grad_out, weight, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        grad_out, weight = ctx.saved_tensors
        g: ConvGeometry3d = ctx.geometry
        need_grad_out, need_w = ctx.needs_input_grad[:2]
        d_grad_out = None
        if need_grad_out:
            d_grad_out = RECORDED.conv3d(grad_grad_in, weight, g, prefers_channels_last_3d(grad_out))
        d_w = RECORDED.weight_grad(grad_out, grad_grad_in, g) if need_w else None
        return d_grad_out, d_w, None, None


class Conv3dWeightGrad(torch.autograd.Function):
    """``grad_weight (K, C/groups, T, R, S)`` of a conv3d from ``grad_out (N, K, Z, P, Q)`` and
    ``x (N, C, D, H, W)`` as a differentiable op: its gradients are a conv3d (for grad_out) and an input
    gradient (for x)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, x: Tensor, g: ConvGeometry3d) -> Tensor:
        ctx.save_for_backward(grad_out, x)
        ctx.geometry = g
        return conv3d_weight_grad(grad_out, x, g)

    @staticmethod
    def backward(ctx, grad_grad_w: Tensor):
        grad_out, x = ctx.saved_tensors
        g: ConvGeometry3d = ctx.geometry
        need_grad_out, need_x = ctx.needs_input_grad[:2]
        d_grad_out = None
        if need_grad_out:
            d_grad_out = RECORDED.conv3d(x, grad_grad_w, g, prefers_channels_last_3d(grad_out))
        d_x = RECORDED.input_grad(grad_out, grad_grad_w, g, prefers_channels_last_3d(x)) if need_x else None
        return d_grad_out, d_x, None


class ConvTranspose3dFunction(torch.autograd.Function):
    """conv_transpose3d with every pass in Triton. ``x`` is batched ``(N, Cin, D, H, W)``; ``g`` is the
    geometry of the convolution it transposes; ``channels_last`` (None: torch's rule) fixes the output's
    layout. The recorded backward is made of conv3d's differentiable Functions, so gradients of gradients
    work too."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, g: ConvGeometry3d,
                channels_last: bool | None = None) -> Tensor:
        save_conv3d(ctx, x, weight, g)
        return conv_transpose3d_output(x, weight, bias, g, channels_last)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv_transpose3d_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                                       ctx.geometry, grad_out)
        return *grads, None, None


LAUNCHERS = Conv3dPasses(
    conv3d=lambda x, weight, g, channels_last: conv3d_output(x, weight, None, g, channels_last),
    input_grad=input_grad,
    weight_grad=conv3d_weight_grad,
    channel_sum=lambda t: channel_sum(_planes(t)),
)
RECORDED = Conv3dPasses(
    conv3d=lambda x, weight, g, channels_last: Conv3dFunction.apply(x, weight, None, g, channels_last),
    input_grad=Conv3dInputGrad.apply,
    weight_grad=Conv3dWeightGrad.apply,
    channel_sum=lambda t: ChannelSumFunction.apply(_planes(t)),
)


# --------------------------------------------------------------------------------------------------------
# Registered: the ops torch.compile traces. They take tensors and plain ints only: a geometry travels as
# its stride, padding, dilation and groups (padding front/top/left) beside the tensors' shapes.


def conv3d_arguments(g: ConvGeometry3d) -> tuple[list[int], list[int], list[int], int]:
    """``(stride, padding, dilation, groups)`` of a geometry, as the registered ops take them."""
    return list(g.stride), list(g.padding), list(g.dilation), g.groups


def conv3d_geometry_of(input_size: Sequence[int], weight_size: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int], groups: int,
                       output_size: Sequence[int]) -> ConvGeometry3d:
    """The geometry of a conv3d of an ``input_size (N, C, D, H, W)`` input by a ``weight_size (K, C/groups,
    T, R, S)`` weight with output ``(Z, P, Q)`` (``output_size``); ``padding`` is front/top/left."""
    N, C, D, H, W = input_size
    K, _, T, R, S = weight_size
    Z, P, Q = output_size
    return ConvGeometry3d(N, C, D, H, W, K, T, R, S, Z, P, Q, *stride, *padding, *dilation, groups)


def _transposed_geometry(x: Tensor, weight: Tensor, stride: Sequence[int], padding: Sequence[int],
                         dilation: Sequence[int], groups: int, output_size: Sequence[int]) -> ConvGeometry3d:
    """The geometry of the convolution that a conv_transpose3d of ``x`` to ``output_size`` transposes."""
    shape = (x.shape[0], weight.shape[1] * groups, *output_size)
    return conv3d_geometry_of(shape, weight.shape, stride, padding, dilation, groups, x.shape[2:])


@torch.library.custom_op("kernels::conv3d", mutates_args=())
def conv3d_op(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int], padding: Sequence[int],
              dilation: Sequence[int], groups: int, output_size: Sequence[int], channels_last: bool) -> Tensor:
    """``out (N, K, Z, P, Q)``: conv3d of batched ``x``; ``padding`` is front/top/left, ``output_size`` is
    ``(Z, P, Q)``."""
    g = conv3d_geometry_of(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    return conv3d_output(x, weight, bias, g, channels_last)


@conv3d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, output_size, channels_last):
    return empty_5d((x.shape[0], weight.shape[0], *output_size), x, channels_last)


@torch.library.custom_op("kernels::conv3d_input_grad", mutates_args=())
def conv3d_input_grad_op(grad_out: Tensor, weight: Tensor, input_size: Sequence[int], stride: Sequence[int],
                         padding: Sequence[int], dilation: Sequence[int], groups: int,
                         channels_last: bool) -> Tensor:
    """Gradient ``(N, C, D, H, W)`` (``input_size``) of a conv3d's input from ``grad_out (N, K, Z, P, Q)``."""
    g = conv3d_geometry_of(input_size, weight.shape, stride, padding, dilation, groups, grad_out.shape[2:])
    return input_grad(grad_out, weight, g, channels_last)


@conv3d_input_grad_op.register_fake
def _(grad_out, weight, input_size, stride, padding, dilation, groups, channels_last):
    return empty_5d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::conv3d_weight_grad", mutates_args=())
def conv3d_weight_grad_op(grad_out: Tensor, x: Tensor, weight_size: Sequence[int], stride: Sequence[int],
                          padding: Sequence[int], dilation: Sequence[int], groups: int) -> Tensor:
    """Gradient ``(K, C/groups, T, R, S)`` (``weight_size``) of a conv3d's weight, contiguous."""
    g = conv3d_geometry_of(x.shape, weight_size, stride, padding, dilation, groups, grad_out.shape[2:])
    return conv3d_weight_grad(grad_out, x, g)


@conv3d_weight_grad_op.register_fake
def _(grad_out, x, weight_size, stride, padding, dilation, groups):
    return x.new_empty(tuple(weight_size))


@torch.library.custom_op("kernels::conv_transpose3d", mutates_args=())
def conv_transpose3d_op(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int],
                        padding: Sequence[int], dilation: Sequence[int], groups: int, output_size: Sequence[int],
                        channels_last: bool) -> Tensor:
    """``out (N, Cout, Dout, Hout, Wout)``: the transposed convolution of batched ``x (N, Cin, D, H, W)``
    with ``weight (Cin, Cout/groups, T, R, S)``; ``output_size`` is ``(Dout, Hout, Wout)`` with
    output_padding already resolved."""
    g = _transposed_geometry(x, weight, stride, padding, dilation, groups, output_size)
    return conv_transpose3d_output(x, weight, bias, g, channels_last)


@conv_transpose3d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, output_size, channels_last):
    return empty_5d((x.shape[0], weight.shape[1] * groups, *output_size), x, channels_last)


def registered_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None, g: ConvGeometry3d, channels_last: bool
                      ) -> Tensor:
    """The ``(N, K, Z, P, Q)`` output of the registered conv3d (what the functional API calls while
    compiling)."""
    return torch.ops.kernels.conv3d(x, weight, bias, *conv3d_arguments(g), [g.Z, g.P, g.Q], channels_last)


def registered_conv_transpose3d(x: Tensor, weight: Tensor, bias: Tensor | None, g: ConvGeometry3d,
                                channels_last: bool) -> Tensor:
    """The ``(N, Cout, Dout, Hout, Wout)`` output of the registered conv_transpose3d (what the functional API
    calls while compiling)."""
    return torch.ops.kernels.conv_transpose3d(x, weight, bias, *conv3d_arguments(g), [g.D, g.H, g.W],
                                              channels_last)


def _registered_input_grad(grad_out: Tensor, weight: Tensor, g: ConvGeometry3d, channels_last: bool) -> Tensor:
    return torch.ops.kernels.conv3d_input_grad(grad_out, weight, [g.N, g.C, g.D, g.H, g.W], *conv3d_arguments(g),
                                               channels_last)


def _registered_weight_grad(grad_out: Tensor, x: Tensor, g: ConvGeometry3d) -> Tensor:
    return torch.ops.kernels.conv3d_weight_grad(grad_out, x, [g.K, g.channels_per_group, g.T, g.R, g.S],
                                                *conv3d_arguments(g))


REGISTERED = Conv3dPasses(
    conv3d=lambda x, weight, g, channels_last: registered_conv3d(x, weight, None, g, channels_last),
    input_grad=_registered_input_grad,
    weight_grad=_registered_weight_grad,
    channel_sum=lambda t: torch.ops.kernels.channel_sum(_planes(t)),
)


def _setup_conv3d(ctx, inputs: tuple, output: Tensor) -> None:
    x, weight, _, stride, padding, dilation, groups, output_size, _ = inputs
    save_conv3d(ctx, x, weight, conv3d_geometry_of(x.shape, weight.shape, stride, padding, dilation, groups,
                                                   output_size))


def _backward_conv3d(ctx, grad_out: Tensor) -> tuple:
    grads = conv3d_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


def _setup_conv_transpose3d(ctx, inputs: tuple, output: Tensor) -> None:
    x, weight, _, stride, padding, dilation, groups, output_size, _ = inputs
    save_conv3d(ctx, x, weight, _transposed_geometry(x, weight, stride, padding, dilation, groups, output_size))


def _backward_conv_transpose3d(ctx, grad_out: Tensor) -> tuple:
    grads = conv_transpose3d_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


conv3d_op.register_autograd(_backward_conv3d, setup_context=_setup_conv3d)
conv_transpose3d_op.register_autograd(_backward_conv_transpose3d, setup_context=_setup_conv_transpose3d)
