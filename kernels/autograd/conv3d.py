"""conv3d's and conv_transpose3d's autograd, defined once: what their forwards save, their backward formulas,
the passes those formulas are made of (launchers, recorded Functions, registered ops: see
``kernels.autograd``), the eager Functions and the registered ops ``kernels::conv3d``,
``kernels::conv3d_input_grad``, ``kernels::conv3d_weight_grad`` and ``kernels::conv_transpose3d``. Both
convolutions take conv2d's fused epilogue (``kernels.ops.epilogue``); its part of the backward is shared with
2-D (``kernels.autograd.conv2d.epilogue_grads``).

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
from ..ops.epilogue import PLAIN, Epilogue, activation_backward
from ..ops.reduce import channel_sum
from ..shapes3d import ConvGeometry3d, conv3d_output_channels_last, empty_5d, prefers_channels_last_3d
from . import eager_passes
from .conv2d import epilogue_grads, epilogue_of, preact_like, save_conv, save_registered_conv
from .epilogue import ActivationBackward
from .reduce import ChannelSumFunction

Tensor = torch.Tensor


@dataclass(frozen=True)
class Conv3dPasses:
    """The passes the backward of a 3-D convolution (conv3d or conv_transpose3d) is made of:

    * ``conv3d(x (N, C, D, H, W), weight, g, channels_last) -> (N, K, Z, P, Q)``, a convolution without bias;
    * ``input_grad(grad_out (N, K, Z, P, Q), weight, g, channels_last) -> (N, C, D, H, W)``;
    * ``weight_grad(grad_out (N, K, Z, P, Q), x (N, C, D, H, W), g) -> (K, C/groups, T, R, S)``;
    * ``channel_sum((N, C, D, H, W)) -> (C,)``, a bias gradient;
    * ``activation_backward(grad_out, saved, epilogue, inputs) -> grad_pre``: ``grad_out * act'(saved)`` over
      ``(N, C, D, H, W)`` tensors (``inputs``: the convolution's, see :class:`ActivationBackward`).
    """

    conv3d: Callable[[Tensor, Tensor, ConvGeometry3d, bool], Tensor]
    input_grad: Callable[[Tensor, Tensor, ConvGeometry3d, bool], Tensor]
    weight_grad: Callable[[Tensor, Tensor, ConvGeometry3d], Tensor]
    channel_sum: Callable[[Tensor], Tensor]
    activation_backward: Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]


def _planes(t: Tensor) -> Tensor:
    """``(N, C, D, H, W) -> (N, C, D*H, W)``, the 4-D shape the channel sum and the activation's backward take
    (a view for NCDHW and channels_last_3d tensors)."""
    return t.flatten(2, 3)


def _planar(activation_backward: Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]
            ) -> Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]:
    """A 4-D activation backward applied to ``(N, C, D, H, W)`` tensors: on their ``(N, C, D*H, W)`` views,
    the result viewed back (``saved``'s layout, NCDHW or channels_last_3d)."""
    def planar(grad_out: Tensor, saved: Tensor, epilogue: Epilogue, inputs: tuple[Tensor | None, ...]) -> Tensor:
        grad_pre = activation_backward(_planes(grad_out), _planes(saved), epilogue, inputs)
        return grad_pre.unflatten(2, saved.shape[2:4])
    return planar


# --------------------------------------------------------------------------------------------------------
# The one definition: setup and backward formulas


def conv3d_grads(passes: Conv3dPasses, saved: Sequence[Tensor | None], needs_input_grad: Sequence[bool],
                 g: ConvGeometry3d, epilogue: Epilogue, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of conv3d's ``x``, ``weight``, ``bias`` and ``residual`` (None where not needed) from
    ``grad_out (N, K, Z, P, Q)``; ``saved`` is what ``kernels.autograd.conv2d.save_conv`` saved."""
    x, weight, activation_saved, *anchors = saved
    need_x, need_w, need_b, need_res = needs_input_grad[:4]
    grad_pre, grad_res = epilogue_grads(passes, grad_out, activation_saved, epilogue, (x, weight, *anchors),
                                        need_res)
    grad_x = passes.input_grad(grad_pre, weight, g, conv3d_output_channels_last(x, weight)) if need_x else None
    grad_w = passes.weight_grad(grad_pre, x, g) if need_w else None
    grad_b = passes.channel_sum(grad_pre) if need_b else None
    return grad_x, grad_w, grad_b, grad_res


def conv_transpose3d_grads(passes: Conv3dPasses, saved: Sequence[Tensor | None], needs_input_grad: Sequence[bool],
                           g: ConvGeometry3d, epilogue: Epilogue, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of conv_transpose3d's ``x``, ``weight``, ``bias`` and ``residual`` from ``grad_out (N,
    Cout, Dout, Hout, Wout)``; ``g`` is the geometry of the convolution it transposes."""
    x, weight, activation_saved, *anchors = saved
    need_x, need_w, need_b, need_res = needs_input_grad[:4]
    grad_pre, grad_res = epilogue_grads(passes, grad_out, activation_saved, epilogue, (x, weight, *anchors),
                                        need_res)
    grad_x = passes.conv3d(grad_pre, weight, g, conv3d_output_channels_last(x, weight)) if need_x else None
    grad_w = passes.weight_grad(x, grad_pre, g) if need_w else None
    grad_b = passes.channel_sum(grad_pre) if need_b else None
    return grad_x, grad_w, grad_b, grad_res


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class Conv3dFunction(torch.autograd.Function):
    """conv3d with every pass in Triton, and an optional fused epilogue. Inputs are batched ``(N, C, D, H,
    W)``; ``g`` is their geometry; ``residual`` (or None) has the output's shape; ``channels_last`` (None:
    torch's rule) fixes the output's layout."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: ConvGeometry3d,
                epilogue: Epilogue = PLAIN, channels_last: bool | None = None) -> Tensor:
        out, preact = conv3d_output(x, weight, bias, g, channels_last, epilogue, residual,
                                    epilogue.needs_preact(any(ctx.needs_input_grad[:4])))
        save_conv(ctx, x, weight, bias, residual, out, preact, g, epilogue)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv3d_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                             ctx.geometry, ctx.epilogue, grad_out)
        return *grads, None, None, None


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
    """conv_transpose3d with every pass in Triton, and an optional fused epilogue. ``x`` is batched ``(N, Cin,
    D, H, W)``; ``g`` is the geometry of the convolution it transposes; ``residual`` (or None) has the output's
    shape; ``channels_last`` (None: torch's rule) fixes the output's layout. The recorded backward is made of
    conv3d's differentiable Functions, so gradients of gradients work too."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: ConvGeometry3d,
                epilogue: Epilogue = PLAIN, channels_last: bool | None = None) -> Tensor:
        out, preact = conv_transpose3d_output(x, weight, bias, g, channels_last, epilogue, residual,
                                              epilogue.needs_preact(any(ctx.needs_input_grad[:4])))
        save_conv(ctx, x, weight, bias, residual, out, preact, g, epilogue)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv_transpose3d_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                                       ctx.geometry, ctx.epilogue, grad_out)
        return *grads, None, None, None


def _plain_conv3d(x: Tensor, weight: Tensor, g: ConvGeometry3d, channels_last: bool) -> Tensor:
    return conv3d_output(x, weight, None, g, channels_last)[0]


LAUNCHERS = Conv3dPasses(
    conv3d=_plain_conv3d,
    input_grad=input_grad,
    weight_grad=conv3d_weight_grad,
    channel_sum=lambda t: channel_sum(_planes(t)),
    activation_backward=_planar(lambda grad_out, saved, epilogue, inputs: activation_backward(grad_out, saved,
                                                                                              epilogue)),
)
RECORDED = Conv3dPasses(
    conv3d=lambda x, weight, g, channels_last: Conv3dFunction.apply(x, weight, None, None, g, PLAIN, channels_last),
    input_grad=Conv3dInputGrad.apply,
    weight_grad=Conv3dWeightGrad.apply,
    channel_sum=lambda t: ChannelSumFunction.apply(_planes(t)),
    activation_backward=_planar(lambda grad_out, saved, epilogue, inputs: ActivationBackward.apply(
        grad_out, saved, epilogue, *inputs)),
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
def conv3d_op(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, stride: Sequence[int],
              padding: Sequence[int], dilation: Sequence[int], groups: int, output_size: Sequence[int],
              channels_last: bool, activation: str, negative_slope: float, residual_before_activation: bool,
              store_preact: bool) -> tuple[Tensor, Tensor]:
    """``(out (N, K, Z, P, Q), preact)``: conv3d of batched ``x`` with its fused epilogue (as
    ``kernels::conv2d``); ``padding`` is front/top/left, ``output_size`` is ``(Z, P, Q)``. ``preact`` has 0
    elements unless the backward reads ``act'`` from it (and ``store_preact``: gradients are wanted)."""
    g = conv3d_geometry_of(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    out, preact = conv3d_output(x, weight, bias, g, channels_last, epilogue, residual,
                                epilogue.needs_preact(store_preact))
    return out, out.new_empty((0,)) if preact is None else preact


@conv3d_op.register_fake
def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, channels_last, activation,
      negative_slope, residual_before_activation, store_preact):
    out = empty_5d((x.shape[0], weight.shape[0], *output_size), x, channels_last)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    return out, preact_like(out, epilogue.needs_preact(store_preact))


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
def conv_transpose3d_op(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None,
                        stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
                        output_size: Sequence[int], channels_last: bool, activation: str, negative_slope: float,
                        residual_before_activation: bool, store_preact: bool) -> tuple[Tensor, Tensor]:
    """``(out (N, Cout, Dout, Hout, Wout), preact)``: the transposed convolution of batched ``x (N, Cin, D, H,
    W)`` with ``weight (Cin, Cout/groups, T, R, S)`` and its fused epilogue; ``output_size`` is ``(Dout, Hout,
    Wout)`` with output_padding already resolved; ``preact`` as in ``kernels::conv3d``."""
    g = _transposed_geometry(x, weight, stride, padding, dilation, groups, output_size)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    out, preact = conv_transpose3d_output(x, weight, bias, g, channels_last, epilogue, residual,
                                          epilogue.needs_preact(store_preact))
    return out, out.new_empty((0,)) if preact is None else preact


@conv_transpose3d_op.register_fake
def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, channels_last, activation,
      negative_slope, residual_before_activation, store_preact):
    out = empty_5d((x.shape[0], weight.shape[1] * groups, *output_size), x, channels_last)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    return out, preact_like(out, epilogue.needs_preact(store_preact))


def registered_conv3d(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: ConvGeometry3d,
                      epilogue: Epilogue, channels_last: bool, store_preact: bool) -> Tensor:
    """The ``(N, K, Z, P, Q)`` output of the registered conv3d (what the functional API calls while
    compiling)."""
    return torch.ops.kernels.conv3d(x, weight, bias, residual, *conv3d_arguments(g), [g.Z, g.P, g.Q],
                                    channels_last, epilogue.activation, epilogue.negative_slope,
                                    epilogue.residual_before_activation, store_preact)[0]


def registered_conv_transpose3d(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None,
                                g: ConvGeometry3d, epilogue: Epilogue, channels_last: bool, store_preact: bool
                                ) -> Tensor:
    """The ``(N, Cout, Dout, Hout, Wout)`` output of the registered conv_transpose3d (what the functional API
    calls while compiling)."""
    return torch.ops.kernels.conv_transpose3d(x, weight, bias, residual, *conv3d_arguments(g), [g.D, g.H, g.W],
                                              channels_last, epilogue.activation, epilogue.negative_slope,
                                              epilogue.residual_before_activation, store_preact)[0]


def _registered_input_grad(grad_out: Tensor, weight: Tensor, g: ConvGeometry3d, channels_last: bool) -> Tensor:
    return torch.ops.kernels.conv3d_input_grad(grad_out, weight, [g.N, g.C, g.D, g.H, g.W], *conv3d_arguments(g),
                                               channels_last)


def _registered_weight_grad(grad_out: Tensor, x: Tensor, g: ConvGeometry3d) -> Tensor:
    return torch.ops.kernels.conv3d_weight_grad(grad_out, x, [g.K, g.channels_per_group, g.T, g.R, g.S],
                                                *conv3d_arguments(g))


REGISTERED = Conv3dPasses(
    conv3d=lambda x, weight, g, channels_last: registered_conv3d(x, weight, None, None, g, PLAIN, channels_last,
                                                                 False),
    input_grad=_registered_input_grad,
    weight_grad=_registered_weight_grad,
    channel_sum=lambda t: torch.ops.kernels.channel_sum(_planes(t)),
    activation_backward=_planar(lambda grad_out, saved, epilogue, inputs: torch.ops.kernels.activation_backward(
        grad_out, saved, epilogue.activation, epilogue.negative_slope)),
)


def _setup_conv3d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, weight, _, _, stride, padding, dilation, groups, output_size = inputs[:9]
    g = conv3d_geometry_of(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    save_registered_conv(ctx, inputs, output, g)


def _backward_conv3d(ctx, grad_out: Tensor, _grad_preact: Tensor | None) -> tuple:
    grads = conv3d_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry, ctx.epilogue, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


def _setup_conv_transpose3d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, weight, _, _, stride, padding, dilation, groups, output_size = inputs[:9]
    g = _transposed_geometry(x, weight, stride, padding, dilation, groups, output_size)
    save_registered_conv(ctx, inputs, output, g)


def _backward_conv_transpose3d(ctx, grad_out: Tensor, _grad_preact: Tensor | None) -> tuple:
    grads = conv_transpose3d_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry,
                                   ctx.epilogue, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


conv3d_op.register_autograd(_backward_conv3d, setup_context=_setup_conv3d)
conv_transpose3d_op.register_autograd(_backward_conv_transpose3d, setup_context=_setup_conv_transpose3d)
