"""conv_transpose2d (up-convolution) built from the conv2d kernels, with roles exchanged.

For ``x (N, Cin, H, W)`` and ``weight (Cin, Cout/groups, R, S)``, let ``g`` be the geometry of the
convolution that the transposed one transposes (``kernels.shapes.conv_transpose2d_geometry``). Then:

* forward     = that convolution's input gradient, with ``x`` as the output gradient (+ bias, fused);
* grad-input  = that convolution's forward, applied to the output gradient;
* grad-weight = that convolution's weight gradient with ``x`` as its output gradient and the output
  gradient as its input;
* grad-bias   = the per-channel sum of the output gradient.

The input-gradient kernel works by stride phase, so no zeros are ever inserted between input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..autocast import autocast_inputs
from ..call_plans import apply_function, planned
from ..shapes import (
    ConvBackendError,
    ConvGeometry,
    check_conv_tensors,
    check_tensor_arguments,
    conv_output_channels_last,
    conv_transpose2d_geometry,
    empty_4d,
    prefers_channels_last,
)
from ._autograd import backward_is_recorded
from .conv2d import Conv2dFunction, Conv2dWeightGrad, conv2d_input_grad, conv2d_output, conv2d_weight_grad
from .epilogue import (
    PLAIN,
    Epilogue,
    check_residual,
    epilogue_backward,
    make_epilogue,
    saved_for_backward,
    wants_grad,
    with_strides_of,
)
from .reduce import ChannelSumFunction, channel_sum


def conv_transpose2d_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            residual: torch.Tensor | None, g: ConvGeometry, epilogue: Epilogue = PLAIN,
                            store_preact: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A new ``(N, C_out, H_out, W_out)`` output of conv_transpose2d with its fused epilogue (torch's layout
    rule), and the pre-activation beside it when ``store_preact`` (else None)."""
    out = empty_4d((g.N, g.C, g.H, g.W), x, conv_output_channels_last(x, weight))
    preact = torch.empty_like(out) if store_preact else None
    residual = None if residual is None else with_strides_of(residual, out)
    conv2d_input_grad(x, weight, g, out, bias, epilogue, residual, preact)
    return out, preact


class ConvTranspose2dFunction(torch.autograd.Function):
    """conv_transpose2d with every pass in Triton, and an optional fused epilogue. ``x`` is batched; ``g`` is
    the transposed geometry; ``residual`` (or None) has the output's shape. The backward is made of
    conv2d's differentiable Functions, so gradients of gradients work too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                residual: torch.Tensor | None, g: ConvGeometry, epilogue: Epilogue = PLAIN) -> torch.Tensor:
        out, preact = conv_transpose2d_output(x, weight, bias, residual, g, epilogue,
                                              epilogue.needs_preact(any(ctx.needs_input_grad[:4])))
        # a curved activation's pre-activation also depends on bias and residual (see ActivationBackward)
        anchors = (bias, residual) if epilogue.curved else ()
        ctx.save_for_backward(x, weight, saved_for_backward(epilogue, out, preact), *anchors)
        ctx.geometry = g
        ctx.epilogue = epilogue
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, saved, *anchors = ctx.saved_tensors
        g: ConvGeometry = ctx.geometry
        need_x, need_w, need_b, need_res = ctx.needs_input_grad[:4]
        grad_pre, grad_res = epilogue_backward(grad_out, saved, ctx.epilogue, (x, weight, *anchors))
        x_channels_last = prefers_channels_last(x)
        if backward_is_recorded():
            grad_x = Conv2dFunction.apply(grad_pre, weight, None, None, g, PLAIN, x_channels_last) if need_x else None
            grad_w = Conv2dWeightGrad.apply(x, grad_pre, g) if need_w else None
            grad_b = ChannelSumFunction.apply(grad_pre) if need_b else None
        else:
            grad_x = conv2d_output(grad_pre, weight, None, None, g, PLAIN, x_channels_last)[0] if need_x else None
            grad_w = conv2d_weight_grad(x, grad_pre, g) if need_w else None
            grad_b = channel_sum(grad_pre) if need_b else None
        return grad_x, grad_w, grad_b, grad_res if need_res else None, None, None


@planned
@autocast_inputs("conv")
def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
    *,
    activation: str | None = None,
    negative_slope: float = 0.01,
    residual: torch.Tensor | None = None,
    residual_before_activation: bool = False,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.conv_transpose2d``, with an optional fused epilogue.

    input ``(N, Cin, H, W)`` or unbatched ``(Cin, H, W)``; weight ``(Cin, Cout/groups, R, S)``; bias ``(Cout,)``.
    Returns ``(N, Cout, Hout, Wout)`` with ``Hout = (H-1)*stride - 2*padding + dilation*(R-1) +
    output_padding + 1``.

    Keyword-only extras, fused into the kernel, as in :func:`kernels.conv2d`: ``activation``,
    ``negative_slope``, ``residual`` (the output's shape and dtype) and ``residual_before_activation``.
    """
    check_tensor_arguments("conv_transpose2d", input, weight, bias)
    epilogue = make_epilogue(activation, negative_slope, residual, residual_before_activation)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    try:
        g = conv_transpose2d_geometry(x.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
                                      output_padding, groups, dilation)
    except ConvBackendError:
        check_conv_tensors("conv_transpose2d", input, weight, bias)  # torch checks the tensors' types first
        raise
    check_conv_tensors("conv_transpose2d", input, weight, bias)
    if residual is not None:
        check_residual("conv_transpose2d", residual, (g.C, g.H, g.W) if unbatched else (g.N, g.C, g.H, g.W), x)
        residual = residual.unsqueeze(0) if unbatched else residual
    if not torch.compiler.is_compiling():
        if wants_grad(x, weight, bias, residual):
            out = apply_function(ConvTranspose2dFunction, x, weight, bias, residual, g, epilogue)
        else:  # nothing to differentiate: the kernels without autograd's bookkeeping
            out = conv_transpose2d_output(x, weight, bias, residual, g, epilogue)[0]
    elif epilogue.is_plain:
        out = torch.ops.kernels.conv_transpose2d(x, weight, bias, [g.stride_h, g.stride_w], [g.pad_h, g.pad_w],
                                                 [g.dil_h, g.dil_w], g.groups, [g.H, g.W])
    else:
        out = torch.ops.kernels.conv_transpose2d_fused(
            x, weight, bias, residual, [g.stride_h, g.stride_w], [g.pad_h, g.pad_w], [g.dil_h, g.dil_w],
            g.groups, [g.H, g.W], epilogue.activation, epilogue.negative_slope,
            epilogue.residual_before_activation, wants_grad(x, weight, bias, residual))[0]
    return out.squeeze(0) if unbatched else out
