"""The convolution call behind every rank's public functions (``kernels.functional.conv1d``, ``conv2d``,
``conv_transpose2d``, ``conv3d``): the route (the registered op while compiling, the autograd Function when
gradients are wanted, else the launchers directly) and torch's result for an input without channels."""

from __future__ import annotations

import torch

from ..autograd.conv import (
    RANKS,
    ConvFunction,
    Geometry,
    registered_conv,
    registered_conv_transpose,
)
from ..call_plans import apply_function
from ..ops.epilogue import Epilogue, wants_grad


def run_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None,
             g: Geometry, epilogue: Epilogue, transposed: bool = False) -> torch.Tensor:
    """The batched output ``(N, K, *out)`` of the convolution (``transposed``: of the transposed convolution,
    ``g`` being the geometry of the convolution it transposes) with its fused epilogue."""
    if torch.compiler.is_compiling():
        registered = registered_conv_transpose if transposed else registered_conv
        return registered(x, weight, bias, residual, g, epilogue, RANKS[g.rank].output_channels_last(x, weight),
                          wants_grad(x, weight, bias, residual))
    if wants_grad(x, weight, bias, residual):
        return apply_function(ConvFunction, x, weight, bias, residual, g, epilogue, None, transposed)
    # nothing to differentiate: the kernels without autograd's bookkeeping
    rank = RANKS[g.rank]
    return (rank.transposed_output if transposed else rank.output)(x, weight, bias, residual, g, epilogue)[0]


def without_channels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     residual: torch.Tensor | None, g: Geometry) -> torch.Tensor:
    """torch's result for an input with zero channels: an ``(N, 0, *out)`` output (whatever the weight's count
    of filters), and zero gradients for input, weight, bias and residual."""
    out = x.new_zeros((g.N, 0, *g.output_size))
    anchors = [t.sum() * 0 for t in (x, weight, bias, residual) if t is not None and t.requires_grad]
    return out + sum(anchors) if anchors and torch.is_grad_enabled() else out
