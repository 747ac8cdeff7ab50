"""``kernels.conv2d``: the drop-in for ``torch.nn.functional.conv2d``, with an optional fused epilogue.

Checks the arguments as torch does, then runs the op one of three ways: the autograd Function when gradients
are wanted, the launchers directly when not, the registered op while ``torch.compile`` traces (all three from
``kernels.autograd.conv`` and ``kernels.ops.conv2d``).
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
    check_conv2d_arguments,
    check_conv_tensors,
    conv2d_geometry,
)
from .conv import run_conv, without_channels


@planned
@autocast_inputs("conv")
def conv2d(
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
    """Drop-in for ``torch.nn.functional.conv2d``, with an optional fused epilogue.

    input ``(N, C, H, W)`` or unbatched ``(C, H, W)``; weight ``(K, C/groups, R, S)``; bias ``(K,)``.
    Returns ``(N, K, P, Q)`` (or ``(K, P, Q)``), channels_last when the input or weight is.

    Keyword-only extras, fused into the kernel: ``activation`` (None, ``"relu"``, ``"leaky_relu"`` with
    ``negative_slope``, ``"gelu"``, ``"silu"``) and ``residual`` (the output's shape and dtype):
    ``act(conv + bias) + residual``, or ``act(conv + bias + residual)`` with ``residual_before_activation``.
    """
    check_conv2d_arguments(input, weight, bias, stride, padding, dilation, groups)
    epilogue = make_epilogue(activation, negative_slope, residual, residual_before_activation)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    try:
        g = conv2d_geometry(x.shape, weight.shape, None if bias is None else bias.shape, stride, padding, dilation,
                            groups)
    except ConvBackendError:
        check_conv_tensors("conv2d", input, weight, bias)  # torch checks the tensors' types first
        raise
    check_conv_tensors("conv2d", input, weight, bias)
    out_channels = g.K if g.C else 0  # torch: no input channels, no output channels
    if residual is not None:
        check_residual("conv2d", residual, (out_channels, g.P, g.Q) if unbatched else (g.N, out_channels, g.P, g.Q),
                       x)
        residual = residual.unsqueeze(0) if unbatched else residual
    if not out_channels:
        out = without_channels(x, weight, bias, residual, g)
    else:
        out = run_conv(x, weight, bias, residual, g, epilogue)
    return out.squeeze(0) if unbatched else out
