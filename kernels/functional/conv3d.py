"""``conv3d`` and ``conv_transpose3d``: the drop-ins for their ``torch.nn.functional`` namesakes.

Each checks its arguments as torch does, then runs the op one of three ways: the autograd Function when
gradients are wanted, the launchers directly when not, the registered op while ``torch.compile`` traces (all
three from ``kernels.autograd.conv`` and ``kernels.ops.conv3d``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..autocast import autocast_inputs
from ..call_plans import planned
from ..ops.epilogue import check_residual, make_epilogue
from ..shapes import (
    ConvBackendError,
    PaddingArg,
    check_conv_arguments,
    check_conv_tensors,
    check_tensor_arguments,
    int_arg,
)
from ..shapes3d import (
    conv3d_geometry,
    conv_transpose3d_geometry,
    int_triple_list,
)
from .conv import run_conv, without_channels

__all__ = ["conv3d", "conv_transpose3d"]


def _parse_parameters(stride: object, padding: object, dilation: object, groups: object) -> None:
    """conv3d's stride, padding, dilation and groups parsed as torch does (a TypeError for a wrong type)."""
    for value, name in ((stride, "stride"), (padding, "padding"), (dilation, "dilation")):
        int_triple_list(value, name, "conv3d")
    int_arg(groups, "groups", "conv3d")


@planned
@autocast_inputs("conv")
def conv3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    *,
    activation: str | None = None,
    negative_slope: float = 0.01,
    residual: torch.Tensor | None = None,
    residual_before_activation: bool = False,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.conv3d``, with an optional fused epilogue.

    input ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; weight ``(K, C/groups, T, R, S)``; bias ``(K,)``.
    Returns ``(N, K, Z, P, Q)`` (or ``(K, Z, P, Q)``), channels_last_3d when the input or weight is.

    Keyword-only extras, fused into the kernel, as in :func:`kernels.conv2d`: ``activation`` (None,
    ``"relu"``, ``"leaky_relu"`` with ``negative_slope``, ``"gelu"``, ``"silu"``) and ``residual`` (the
    output's shape and dtype): ``act(conv + bias) + residual``, or ``act(conv + bias + residual)`` with
    ``residual_before_activation``.
    """
    check_conv_arguments("conv3d", input, weight, bias, stride, padding, dilation, groups, _parse_parameters)
    epilogue = make_epilogue(activation, negative_slope, residual, residual_before_activation)
    unbatched = input.dim() == 4
    x = input.unsqueeze(0) if unbatched else input
    try:
        g = conv3d_geometry(x.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
                            dilation, groups)
    except ConvBackendError:
        check_conv_tensors("conv3d", input, weight, bias)  # torch checks the tensors' types first
        raise
    check_conv_tensors("conv3d", input, weight, bias)
    out_channels = g.K if g.C else 0  # torch: no input channels, no output channels
    if residual is not None:
        check_residual("conv3d", residual, (out_channels, g.Z, g.P, g.Q) if unbatched
                       else (g.N, out_channels, g.Z, g.P, g.Q), x)
        residual = residual.unsqueeze(0) if unbatched else residual
    if not out_channels:
        out = without_channels(x, weight, bias, residual, g)
    else:
        out = run_conv(x, weight, bias, residual, g, epilogue)
    return out.squeeze(0) if unbatched else out


@planned
@autocast_inputs("conv")
def conv_transpose3d(
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
    """Drop-in for ``torch.nn.functional.conv_transpose3d``, with an optional fused epilogue.

    input ``(N, Cin, D, H, W)`` or unbatched ``(Cin, D, H, W)``; weight ``(Cin, Cout/groups, T, R, S)``; bias
    ``(Cout,)``. Returns ``(N, Cout, Dout, Hout, Wout)`` with ``Dout = (D-1)*stride - 2*padding +
    dilation*(T-1) + output_padding + 1`` (and so for H and W).

    Keyword-only extras, fused into the kernel, as in :func:`kernels.conv2d`: ``activation``,
    ``negative_slope``, ``residual`` (the output's shape and dtype) and ``residual_before_activation``.
    """
    check_tensor_arguments("conv_transpose3d", input, weight, bias)
    epilogue = make_epilogue(activation, negative_slope, residual, residual_before_activation)
    unbatched = input.dim() == 4
    x = input.unsqueeze(0) if unbatched else input
    try:
        g = conv_transpose3d_geometry(x.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
                                      output_padding, groups, dilation)
    except ConvBackendError:
        check_conv_tensors("conv_transpose3d", input, weight, bias)  # torch checks the tensors' types first
        raise
    check_conv_tensors("conv_transpose3d", input, weight, bias)
    if residual is not None:
        check_residual("conv_transpose3d", residual, (g.C, g.D, g.H, g.W) if unbatched
                       else (g.N, g.C, g.D, g.H, g.W), x)
        residual = residual.unsqueeze(0) if unbatched else residual
    out = run_conv(x, weight, bias, residual, g, epilogue, transposed=True)
    return out.squeeze(0) if unbatched else out
