"""conv2d's autograd, defined once: what its forward saves, its backward formula, the passes that formula is
made of (launchers, recorded Functions, registered ops: see ``kernels.autograd``), the eager Functions and the
registered op ``kernels::conv2d`` with the input-gradient and weight-gradient ops of its backward.

The three convolution passes (forward, input gradient, weight gradient) are bilinear, and each one's
gradients are the other two: so the recorded passes close under differentiation, and gradients of
gradients work in eager mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..ops.conv2d import conv2d_output, conv2d_weight_grad, input_grad
from ..ops.epilogue import PLAIN, Epilogue, activation_backward
from ..ops.reduce import channel_sum
from ..shapes import ConvGeometry, empty_4d, prefers_channels_last
from . import eager_passes
from .epilogue import ActivationBackward, saved_for_backward
from .reduce import ChannelSumFunction

Tensor = torch.Tensor


@dataclass(frozen=True)
class ConvPasses:
    """The passes the backward of a convolution (conv2d or conv_transpose2d) is made of:

    * ``conv2d(x (N, C, H, W), weight, g, channels_last) -> (N, K, P, Q)``, a plain convolution;
    * ``input_grad(grad_out (N, K, P, Q), weight, g, channels_last) -> (N, C, H, W)``;
    * ``weight_grad(grad_out (N, K, P, Q), x (N, C, H, W), g) -> (K, C/groups, R, S)``;
    * ``channel_sum((N, C, H, W)) -> (C,)``, a bias gradient;
    * ``activation_backward(grad_out, saved, epilogue, inputs) -> grad_pre``: ``grad_out * act'(saved)``
      (``inputs``: the convolution's, see :class:`ActivationBackward`).
    """

    conv2d: Callable[[Tensor, Tensor, ConvGeometry, bool], Tensor]
    input_grad: Callable[[Tensor, Tensor, ConvGeometry, bool], Tensor]
    weight_grad: Callable[[Tensor, Tensor, ConvGeometry], Tensor]
    channel_sum: Callable[[Tensor], Tensor]
    activation_backward: Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]


# --------------------------------------------------------------------------------------------------------
# The one definition: setup and backward formula


def save_conv(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, out: Tensor,
              preact: Tensor | None, g: ConvGeometry, epilogue: Epilogue) -> None:
    """What a convolution's forward (conv2d's or conv_transpose2d's) saves: ``x``, ``weight``, the tensor
    ``act'`` is read from (or None), and, for a curved activation, ``bias`` and ``residual`` (its
    pre-activation depends on them too: see :class:`ActivationBackward`); the geometry and the epilogue."""
    anchors = (bias, residual) if epilogue.curved else ()
    ctx.save_for_backward(x, weight, saved_for_backward(epilogue, out, preact), *anchors)
    ctx.geometry = g
    ctx.epilogue = epilogue


def epilogue_grads(passes: ConvPasses, grad_out: Tensor, saved: Tensor | None, epilogue: Epilogue,
                   inputs: tuple[Tensor | None, ...], need_residual: bool) -> tuple[Tensor, Tensor | None]:
    """``(grad_pre, grad_residual)`` from a convolution's output gradient: the gradient at the activation's
    input (what the convolution's own gradients consume) and the residual's (None when not wanted)."""
    grad_pre = grad_out if saved is None else passes.activation_backward(grad_out, saved, epilogue, inputs)
    grad_res = None
    if epilogue.has_residual and need_residual:
        grad_res = grad_pre if epilogue.residual_before_activation else grad_out
    return grad_pre, grad_res


def conv2d_grads(passes: ConvPasses, saved: Sequence[Tensor | None], needs_input_grad: Sequence[bool],
                 g: ConvGeometry, epilogue: Epilogue, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of conv2d's ``x``, ``weight``, ``bias`` and ``residual`` (None where not needed) from
    ``grad_out (N, K, P, Q)``; ``saved`` is what :func:`save_conv` saved."""
    x, weight, activation_saved, *anchors = saved
    need_x, need_w, need_b, need_res = needs_input_grad[:4]
    grad_pre, grad_res = epilogue_grads(passes, grad_out, activation_saved, epilogue, (x, weight, *anchors),
                                        need_res)
    grad_x = passes.input_grad(grad_pre, weight, g, prefers_channels_last(x)) if need_x else None
    grad_w = passes.weight_grad(grad_pre, x, g) if need_w else None
    grad_b = passes.channel_sum(grad_pre) if need_b else None
    return grad_x, grad_w, grad_b, grad_res


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class Conv2dFunction(torch.autograd.Function):
    """conv2d with every pass in Triton, and an optional fused epilogue. Inputs are batched ``(N, C, H, W)``;
    ``g`` is their geometry; ``residual`` (or None) has the output's shape; ``channels_last`` (None: torch's
    rule) fixes the output's layout."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: ConvGeometry,
                epilogue: Epilogue = PLAIN, channels_last: bool | None = None) -> Tensor:
        out, preact = conv2d_output(x, weight, bias, residual, g, epilogue, channels_last,
                                    epilogue.needs_preact(any(ctx.needs_input_grad[:4])))
        save_conv(ctx, x, weight, bias, residual, out, preact, g, epilogue)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv2d_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                             ctx.geometry, ctx.epilogue, grad_out)
        return *grads, None, None, None


class Conv2dInputGrad(torch.autograd.Function):
    """``grad_in (N, C, H, W)`` of a conv2d from ``grad_out (N, K, P, Q)`` and ``weight`` as a differentiable
    op: its gradients are a conv2d of the incoming gradient (for grad_out) and a weight gradient (for
    weight)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, weight: Tensor, g: ConvGeometry, channels_last: bool) -> Tensor:
        ctx.save_for_backward(grad_out, weight)
        ctx.geometry = g
        return input_grad(grad_out, weight, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        grad_out, weight = ctx.saved_tensors
        g: ConvGeometry = ctx.geometry
        need_grad_out, need_w = ctx.needs_input_grad[:2]
        d_grad_out = None
        if need_grad_out:
            d_grad_out = RECORDED.conv2d(grad_grad_in, weight, g, prefers_channels_last(grad_out))
        d_w = RECORDED.weight_grad(grad_out, grad_grad_in, g) if need_w else None
        return d_grad_out, d_w, None, None


class Conv2dWeightGrad(torch.autograd.Function):
    """``grad_weight (K, C/groups, R, S)`` of a conv2d from ``grad_out (N, K, P, Q)`` and ``x (N, C, H, W)``
    as a differentiable op: its gradients are a conv2d (for grad_out) and an input gradient (for x)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, x: Tensor, g: ConvGeometry) -> Tensor:
        ctx.save_for_backward(grad_out, x)
        ctx.geometry = g
        return conv2d_weight_grad(grad_out, x, g)

    @staticmethod
    def backward(ctx, grad_grad_w: Tensor):
        grad_out, x = ctx.saved_tensors
        g: ConvGeometry = ctx.geometry
        need_grad_out, need_x = ctx.needs_input_grad[:2]
        d_grad_out = RECORDED.conv2d(x, grad_grad_w, g, prefers_channels_last(grad_out)) if need_grad_out else None
        d_x = RECORDED.input_grad(grad_out, grad_grad_w, g, prefers_channels_last(x)) if need_x else None
        return d_grad_out, d_x, None


def _plain_conv2d(x: Tensor, weight: Tensor, g: ConvGeometry, channels_last: bool) -> Tensor:
    return conv2d_output(x, weight, None, None, g, PLAIN, channels_last)[0]


LAUNCHERS = ConvPasses(
    conv2d=_plain_conv2d,
    input_grad=input_grad,
    weight_grad=conv2d_weight_grad,
    channel_sum=channel_sum,
    activation_backward=lambda grad_out, saved, epilogue, inputs: activation_backward(grad_out, saved, epilogue),
)
RECORDED = ConvPasses(
    conv2d=lambda x, weight, g, channels_last: Conv2dFunction.apply(x, weight, None, None, g, PLAIN, channels_last),
    input_grad=Conv2dInputGrad.apply,
    weight_grad=Conv2dWeightGrad.apply,
    channel_sum=ChannelSumFunction.apply,
    activation_backward=lambda grad_out, saved, epilogue, inputs: ActivationBackward.apply(grad_out, saved, epilogue,
                                                                                          *inputs),
)


# --------------------------------------------------------------------------------------------------------
# Registered: the ops torch.compile traces. They take tensors and plain ints only: a geometry travels as
# its stride, padding, dilation and groups (padding top/left) beside the tensors' shapes.


def conv_arguments(g: ConvGeometry) -> tuple[list[int], list[int], list[int], int]:
    """``(stride, padding, dilation, groups)`` of a geometry, as the registered ops take them."""
    return [g.stride_h, g.stride_w], [g.pad_h, g.pad_w], [g.dil_h, g.dil_w], g.groups


def conv_geometry(input_size: Sequence[int], weight_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], dilation: Sequence[int], groups: int,
                  output_size: Sequence[int]) -> ConvGeometry:
    """The geometry of a conv2d of an ``input_size (N, C, H, W)`` input by a ``weight_size (K, C/groups, R,
    S)`` weight with output ``(P, Q)`` (``output_size``); ``padding`` is top/left."""
    N, C, H, W = input_size
    K, _, R, S = weight_size
    P, Q = output_size
    return ConvGeometry(N, C, H, W, K, R, S, P, Q, stride[0], stride[1], padding[0], padding[1],
                        dilation[0], dilation[1], groups)


def epilogue_of(activation: str, negative_slope: float, residual: Tensor | None,
                residual_before_activation: bool) -> Epilogue:
    """The epilogue a registered convolution's arguments describe."""
    return Epilogue(activation, negative_slope, residual is not None, residual_before_activation)


def preact_like(out: Tensor, stored: bool) -> Tensor:
    """A registered convolution's second output: a pre-activation like ``out`` when ``stored``, else empty."""
    return torch.empty_like(out) if stored else out.new_empty((0,))


@torch.library.custom_op("kernels::conv2d", mutates_args=())
def conv2d_op(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, stride: Sequence[int],
              padding: Sequence[int], dilation: Sequence[int], groups: int, output_size: Sequence[int],
              channels_last: bool, activation: str, negative_slope: float, residual_before_activation: bool,
              store_preact: bool) -> tuple[Tensor, Tensor]:
    """``(out (N, K, P, Q), preact)``: conv2d of batched ``x`` with its fused epilogue (``kernels.ops.epilogue``;
    ``activation="none"`` and no residual: a plain conv2d); ``padding`` is top/left, ``output_size`` is ``(P,
    Q)``. ``preact`` has 0 elements unless the backward reads ``act'`` from it (and ``store_preact``: gradients
    are wanted)."""
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    out, preact = conv2d_output(x, weight, bias, residual, g, epilogue, channels_last,
                                epilogue.needs_preact(store_preact))
    return out, out.new_empty((0,)) if preact is None else preact


@conv2d_op.register_fake
def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, channels_last, activation,
      negative_slope, residual_before_activation, store_preact):
    out = empty_4d((x.shape[0], weight.shape[0], *output_size), x, channels_last)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    return out, preact_like(out, epilogue.needs_preact(store_preact))


@torch.library.custom_op("kernels::conv2d_input_grad", mutates_args=())
def conv2d_input_grad_op(grad_out: Tensor, weight: Tensor, input_size: Sequence[int], stride: Sequence[int],
                         padding: Sequence[int], dilation: Sequence[int], groups: int,
                         channels_last: bool) -> Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of a conv2d's input from ``grad_out (N, K, P, Q)``."""
    g = conv_geometry(input_size, weight.shape, stride, padding, dilation, groups, grad_out.shape[2:])
    return input_grad(grad_out, weight, g, channels_last)


@conv2d_input_grad_op.register_fake
def _(grad_out, weight, input_size, stride, padding, dilation, groups, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op("kernels::conv2d_weight_grad", mutates_args=())
def conv2d_weight_grad_op(grad_out: Tensor, x: Tensor, weight_size: Sequence[int], stride: Sequence[int],
                          padding: Sequence[int], dilation: Sequence[int], groups: int) -> Tensor:
    """Gradient ``(K, C/groups, R, S)`` (``weight_size``) of a conv2d's weight, contiguous."""
    g = conv_geometry(x.shape, weight_size, stride, padding, dilation, groups, grad_out.shape[2:])
    return conv2d_weight_grad(grad_out, x, g).contiguous()


@conv2d_weight_grad_op.register_fake
def _(grad_out, x, weight_size, stride, padding, dilation, groups):
    return x.new_empty(tuple(weight_size))


def registered_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: ConvGeometry,
                      epilogue: Epilogue, channels_last: bool, store_preact: bool) -> Tensor:
    """The ``(N, K, P, Q)`` output of the registered conv2d (what the functional API calls while compiling)."""
    return torch.ops.kernels.conv2d(x, weight, bias, residual, *conv_arguments(g), [g.P, g.Q], channels_last,
                                    epilogue.activation, epilogue.negative_slope,
                                    epilogue.residual_before_activation, store_preact)[0]


def _registered_input_grad(grad_out: Tensor, weight: Tensor, g: ConvGeometry, channels_last: bool) -> Tensor:
    return torch.ops.kernels.conv2d_input_grad(grad_out, weight, [g.N, g.C, g.H, g.W], *conv_arguments(g),
                                               channels_last)


def _registered_weight_grad(grad_out: Tensor, x: Tensor, g: ConvGeometry) -> Tensor:
    return torch.ops.kernels.conv2d_weight_grad(grad_out, x, [g.K, g.channels_per_group, g.R, g.S],
                                                *conv_arguments(g))


REGISTERED = ConvPasses(
    conv2d=lambda x, weight, g, channels_last: registered_conv2d(x, weight, None, None, g, PLAIN, channels_last,
                                                                 False),
    input_grad=_registered_input_grad,
    weight_grad=_registered_weight_grad,
    channel_sum=torch.ops.kernels.channel_sum,
    activation_backward=lambda grad_out, saved, epilogue, inputs: torch.ops.kernels.activation_backward(
        grad_out, saved, epilogue.activation, epilogue.negative_slope),
)


def save_registered_conv(ctx, inputs: tuple, output: tuple[Tensor, Tensor], g: ConvGeometry) -> None:
    """:func:`save_conv` from a registered convolution's arguments (``inputs``, as ``kernels::conv2d`` and
    ``kernels::conv_transpose2d`` take them), its outputs and its geometry."""
    x, weight, bias, residual, *_, activation, negative_slope, residual_before_activation, store_preact = inputs
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    out, preact = output
    save_conv(ctx, x, weight, bias, residual, out, preact if epilogue.needs_preact(store_preact) else None, g,
              epilogue)


def _setup_conv2d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, weight, _, _, stride, padding, dilation, groups, output_size = inputs[:9]
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    save_registered_conv(ctx, inputs, output, g)


def _backward_conv2d(ctx, grad_out: Tensor, _grad_preact: Tensor | None) -> tuple:
    grads = conv2d_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry, ctx.epilogue, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


conv2d_op.register_autograd(_backward_conv2d, setup_context=_setup_conv2d)
