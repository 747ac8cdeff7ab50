"""conv_transpose2d's autograd, defined once: what its forward saves and its backward formula (conv2d's passes
with roles exchanged, see ``kernels.ops.conv_transpose2d``), the eager Function and the registered op
``kernels::conv_transpose2d``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..ops.conv_transpose2d import conv_transpose2d_output
from ..ops.epilogue import PLAIN, Epilogue
from ..shapes import ConvGeometry, empty_4d, prefers_channels_last
from . import eager_passes
from .conv2d import (
    LAUNCHERS,
    RECORDED,
    REGISTERED,
    ConvPasses,
    conv_arguments,
    conv_geometry,
    epilogue_grads,
    epilogue_of,
    preact_like,
    save_conv,
    save_registered_conv,
)

Tensor = torch.Tensor


def conv_transpose2d_grads(passes: ConvPasses, saved: Sequence[Tensor | None], needs_input_grad: Sequence[bool],
                           g: ConvGeometry, epilogue: Epilogue, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of conv_transpose2d's ``x``, ``weight``, ``bias`` and ``residual`` (None where not needed)
    from ``grad_out (N, Cout, Hout, Wout)``; ``g`` is the geometry of the convolution it transposes and
    ``saved`` what :func:`kernels.autograd.conv2d.save_conv` saved."""
    x, weight, activation_saved, *anchors = saved
    need_x, need_w, need_b, need_res = needs_input_grad[:4]
    grad_pre, grad_res = epilogue_grads(passes, grad_out, activation_saved, epilogue, (x, weight, *anchors),
                                        need_res)
    grad_x = passes.conv2d(grad_pre, weight, g, prefers_channels_last(x)) if need_x else None
    grad_w = passes.weight_grad(x, grad_pre, g) if need_w else None
    grad_b = passes.channel_sum(grad_pre) if need_b else None
    return grad_x, grad_w, grad_b, grad_res


class ConvTranspose2dFunction(torch.autograd.Function):
    """conv_transpose2d with every pass in Triton, and an optional fused epilogue. ``x`` is batched; ``g`` is
    the transposed geometry; ``residual`` (or None) has the output's shape. The recorded backward is made of
    conv2d's differentiable Functions, so gradients of gradients work too."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: ConvGeometry,
                epilogue: Epilogue = PLAIN) -> Tensor:
        out, preact = conv_transpose2d_output(x, weight, bias, residual, g, epilogue, None,
                                              epilogue.needs_preact(any(ctx.needs_input_grad[:4])))
        save_conv(ctx, x, weight, bias, residual, out, preact, g, epilogue)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv_transpose2d_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                                       ctx.geometry, ctx.epilogue, grad_out)
        return *grads, None, None


def _transposed_geometry(x: Tensor, weight: Tensor, stride: Sequence[int], padding: Sequence[int],
                         dilation: Sequence[int], groups: int, output_size: Sequence[int]) -> ConvGeometry:
    """The geometry of the convolution that a conv_transpose2d of ``x`` to ``output_size`` transposes."""
    shape = (x.shape[0], weight.shape[1] * groups, *output_size)
    return conv_geometry(shape, weight.shape, stride, padding, dilation, groups, x.shape[2:])


@torch.library.custom_op("kernels::conv_transpose2d", mutates_args=())
def conv_transpose2d_op(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None,
                        stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
                        output_size: Sequence[int], channels_last: bool, activation: str, negative_slope: float,
                        residual_before_activation: bool, store_preact: bool) -> tuple[Tensor, Tensor]:
    """``(out (N, Cout, Hout, Wout), preact)``: the transposed convolution of batched ``x (N, Cin, H, W)`` with
    ``weight (Cin, Cout/groups, R, S)`` and its fused epilogue; ``output_size`` is ``(Hout, Wout)`` with
    output_padding already resolved; ``preact`` as in ``kernels::conv2d``."""
    g = _transposed_geometry(x, weight, stride, padding, dilation, groups, output_size)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    out, preact = conv_transpose2d_output(x, weight, bias, residual, g, epilogue, channels_last,
                                          epilogue.needs_preact(store_preact))
    return out, out.new_empty((0,)) if preact is None else preact


@conv_transpose2d_op.register_fake
def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, channels_last, activation,
      negative_slope, residual_before_activation, store_preact):
    out = empty_4d((x.shape[0], weight.shape[1] * groups, *output_size), x, channels_last)
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    return out, preact_like(out, epilogue.needs_preact(store_preact))


def registered_conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None,
                                g: ConvGeometry, epilogue: Epilogue, channels_last: bool, store_preact: bool
                                ) -> Tensor:
    """The ``(N, Cout, Hout, Wout)`` output of the registered conv_transpose2d (what the functional API calls
    while compiling)."""
    return torch.ops.kernels.conv_transpose2d(x, weight, bias, residual, *conv_arguments(g), [g.H, g.W],
                                              channels_last, epilogue.activation, epilogue.negative_slope,
                                              epilogue.residual_before_activation, store_preact)[0]


def _setup_conv_transpose2d(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
    x, weight, _, _, stride, padding, dilation, groups, output_size = inputs[:9]
    g = _transposed_geometry(x, weight, stride, padding, dilation, groups, output_size)
    save_registered_conv(ctx, inputs, output, g)


def _backward_conv_transpose2d(ctx, grad_out: Tensor, _grad_preact: Tensor | None) -> tuple:
    grads = conv_transpose2d_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry,
                                   ctx.epilogue, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


conv_transpose2d_op.register_autograd(_backward_conv_transpose2d, setup_context=_setup_conv_transpose2d)
