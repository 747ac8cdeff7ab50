"""The pooling call behind every rank's public functions (``kernels.functional.pool1d``, ``pool2d``,
``pool3d``): the batched view, torch's output layouts, and the route (the registered op while compiling, the
autograd Function when there is something to differentiate, else the launchers directly)."""

from __future__ import annotations

import torch

from ..autograd.pool import AvgPoolFunction, Geometry, MaxPoolFunction, registered_avg_pool, registered_max_pool
from ..call_plans import apply_function
from ..ops.pool import LAUNCHERS, avg_pool_output, max_pool_output


def check_tensor(input: object) -> None:
    """The adaptive ops reach ``input.size()`` before any argument check, as torch's Python wrappers do."""
    if not isinstance(input, torch.Tensor):
        raise AttributeError(f"'{type(input).__name__}' object has no attribute 'size'")


def _batched(input: torch.Tensor, rank: int) -> tuple[torch.Tensor, bool, bool]:
    """The batched view of ``input``, whether it was unbatched, and whether it is channels_last (torch's
    ``suggest_memory_format``; an unbatched input counts as contiguous)."""
    if input.dim() == rank + 1:
        return input.unsqueeze(0), True, False
    return input, False, LAUNCHERS[rank].prefers_channels_last(input)


def _output_channels_last(g: Geometry, input_channels_last: bool, is_max: bool) -> bool:
    """torch's output layouts: 2-D pools keep the input's; of torch's 3-D (CPU) pools, strided max pooling
    keeps it, adaptive max pooling gives contiguous, and average pooling contiguous unless global. The input
    gradient always takes the input's layout."""
    if g.rank == 2 or not input_channels_last:
        return input_channels_last
    return not g.adaptive if is_max else g.is_global


def max_pool(input: torch.Tensor, g: Geometry, return_indices: bool
             ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Max pooling of ``input (N, C, *in)`` or unbatched ``(C, *in)``: the output, and with ``return_indices``
    torch's int64 flat indices of the maxima."""
    x, unbatched, grad_channels_last = _batched(input, g.rank)
    channels_last = _output_channels_last(g, grad_channels_last, is_max=True)
    if torch.compiler.is_compiling():
        out, indices = registered_max_pool(x, g, return_indices, channels_last, grad_channels_last)
    elif torch.is_grad_enabled() and x.requires_grad:
        out, indices = apply_function(MaxPoolFunction, x, g, return_indices, channels_last, grad_channels_last)
    else:  # nothing to differentiate: the kernel without autograd's bookkeeping
        out, indices = max_pool_output(x, g, torch.int64 if return_indices else None, channels_last)
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def avg_pool(input: torch.Tensor, g: Geometry) -> torch.Tensor:
    """Average pooling of ``input (N, C, *in)`` or unbatched ``(C, *in)``."""
    x, unbatched, grad_channels_last = _batched(input, g.rank)
    channels_last = _output_channels_last(g, grad_channels_last, is_max=False)
    if torch.compiler.is_compiling():
        out = registered_avg_pool(x, g, channels_last, grad_channels_last)
    elif torch.is_grad_enabled() and x.requires_grad:
        out = apply_function(AvgPoolFunction, x, g, channels_last, grad_channels_last)
    else:  # nothing to differentiate: the kernel without autograd's bookkeeping
        out = avg_pool_output(x, g, channels_last)
    return out.squeeze(0) if unbatched else out
