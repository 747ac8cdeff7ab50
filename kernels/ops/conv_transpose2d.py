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
from torch.autograd.function import once_differentiable

from ..autocast import autocast_inputs
from ..shapes import ConvGeometry, check_float_tensors, conv_transpose2d_geometry, empty_4d, prefers_channels_last
from .conv2d import conv2d_forward, conv2d_input_grad, conv2d_weight_grad
from .reduce import channel_sum


class ConvTranspose2dFunction(torch.autograd.Function):
    """conv_transpose2d with every pass in Triton. ``x`` is batched; ``g`` is the transposed geometry."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                g: ConvGeometry) -> torch.Tensor:
        out = empty_4d((g.N, g.C, g.H, g.W), x, prefers_channels_last(x, weight))
        conv2d_input_grad(x, weight, g, out, bias)
        ctx.save_for_backward(x, weight)
        ctx.geometry = g
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        g: ConvGeometry = ctx.geometry
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = empty_4d(x.shape, x, prefers_channels_last(x))
            conv2d_forward(grad_out, weight, None, g, grad_x)
        if need_w:
            grad_w = conv2d_weight_grad(x, grad_out, g)
        if need_b:
            grad_b = channel_sum(grad_out)
        return grad_x, grad_w, grad_b, None


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
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.conv_transpose2d``.

    input ``(N, Cin, H, W)`` or unbatched ``(Cin, H, W)``; weight ``(Cin, Cout/groups, R, S)``; bias ``(Cout,)``.
    Returns ``(N, Cout, Hout, Wout)`` with ``Hout = (H-1)*stride - 2*padding + dilation*(R-1) +
    output_padding + 1``.
    """
    check_float_tensors("conv_transpose2d", input=input, weight=weight, bias=bias)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    g = conv_transpose2d_geometry(x.shape if input.dim() in (3, 4) else input.shape, weight.shape,
                                  None if bias is None else bias.shape, stride, padding, output_padding,
                                  groups, dilation)
    if torch.compiler.is_compiling():
        out = torch.ops.kernels.conv_transpose2d(x, weight, bias, [g.stride_h, g.stride_w], [g.pad_h, g.pad_w],
                                                 [g.dil_h, g.dil_w], g.groups, [g.H, g.W])
    else:
        out = ConvTranspose2dFunction.apply(x, weight, bias, g)
    return out.squeeze(0) if unbatched else out
