"""``kernels.conv_transpose2d``: the drop-in for ``torch.nn.functional.conv_transpose2d``, with an optional
fused epilogue. Checks the arguments as torch does, then runs the op through ``kernels.autograd.conv``
(the autograd Function, or the registered op while compiling) or, with nothing to differentiate, the launcher
of ``kernels.ops.conv_transpose2d`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..autocast import autocast_inputs
from ..call_plans import planned
from ..ops.epilogue import check_residual, make_epilogue
from ..shapes import (
    ConvBackendError,
    check_conv_tensors,
    check_tensor_arguments,
    conv_transpose2d_geometry,
)
from .conv import run_conv


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
    out = run_conv(x, weight, bias, residual, g, epilogue, transposed=True)
    return out.squeeze(0) if unbatched else out
