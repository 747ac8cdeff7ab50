"""``max_pool3d``, ``avg_pool3d``, ``adaptive_avg_pool3d`` and ``adaptive_max_pool3d``: the drop-ins for
torch.nn.functional's 3-D pooling. Each checks its arguments as torch does (``kernels.pool_shapes3d``), then
runs through ``kernels.autograd.pool3d`` (the autograd Function, or the registered op while compiling) or, with
nothing to differentiate, the launchers of ``kernels.ops.pool3d`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._runtime import TORCH_VERSION
from ..autocast import autocast_inputs
from ..autograd.pool3d import AvgPool3dFunction, MaxPool3dFunction, registered_avg_pool3d, registered_max_pool3d
from ..call_plans import apply_function, planned
from ..ops.pool3d import avg_pool3d_output, max_pool3d_output
from ..pool_shapes import check_pool_input
from ..pool_shapes3d import (
    IntTriple,
    PoolGeometry3d,
    adaptive_pool3d_geometry,
    avg_pool3d_geometry,
    max_pool3d_geometry,
)
from ..shapes3d import prefers_channels_last_3d

__all__ = ["adaptive_avg_pool3d", "adaptive_max_pool3d", "avg_pool3d", "max_pool3d"]


def _batched(input: torch.Tensor) -> tuple[torch.Tensor, bool, bool]:
    """The 5-D view of ``input``, whether it was unbatched, and whether it is channels_last_3d (torch's
    ``suggest_memory_format``; an unbatched input counts as contiguous)."""
    if input.dim() == 4:
        return input.unsqueeze(0), True, False
    return input, False, prefers_channels_last_3d(input)


def _max_pool(input: torch.Tensor, g: PoolGeometry3d, return_indices: bool
              ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Strided max pooling keeps the input's layout, adaptive max pooling gives a contiguous output (torch's
    CPU ops); the input gradient is in the input's layout."""
    x, unbatched, grad_channels_last = _batched(input)
    channels_last = grad_channels_last and not g.adaptive
    if torch.compiler.is_compiling():
        out, indices = registered_max_pool3d(x, g, channels_last, grad_channels_last)
    elif torch.is_grad_enabled() and x.requires_grad:
        out, indices = apply_function(MaxPool3dFunction, x, g, return_indices, channels_last, grad_channels_last)
    else:  # nothing to differentiate: the kernel without autograd's bookkeeping
        out, indices = max_pool3d_output(x, g, return_indices, channels_last)
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def _avg_pool(input: torch.Tensor, g: PoolGeometry3d) -> torch.Tensor:
    """A contiguous output (torch's CPU average pools, adaptive or not; a global one keeps the input's
    layout), the input gradient in the input's layout."""
    x, unbatched, grad_channels_last = _batched(input)
    channels_last = grad_channels_last and g.is_global
    if torch.compiler.is_compiling():
        out = registered_avg_pool3d(x, g, channels_last, grad_channels_last)
    elif torch.is_grad_enabled() and x.requires_grad:
        out = apply_function(AvgPool3dFunction, x, g, channels_last, grad_channels_last)
    else:  # nothing to differentiate: the kernel without autograd's bookkeeping
        out = avg_pool3d_output(x, g, channels_last)
    return out.squeeze(0) if unbatched else out


def _check_tensor(input: object) -> None:
    """The adaptive ops reach ``input.size()`` before any argument check, as torch's Python wrappers do."""
    if not isinstance(input, torch.Tensor):
        raise AttributeError(f"'{type(input).__name__}' object has no attribute 'size'")


@planned
@autocast_inputs("pool")
def max_pool3d(
    input: torch.Tensor,
    kernel_size: IntTriple,
    stride: IntTriple | None = None,
    padding: IntTriple = 0,
    dilation: IntTriple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.max_pool3d``.

    input ``(N, C, D, H, W)`` or ``(C, D, H, W)``; returns ``(N, C, T, P, Q)`` (or ``(C, T, P, Q)``) in the
    input's memory format, and with ``return_indices`` the int64 flat indices ``(d*H + h)*W + w`` of the
    maxima.
    """
    return_indices = bool(return_indices)
    if return_indices and not isinstance(input, torch.Tensor) and TORCH_VERSION >= (2, 13):
        raise AttributeError(f"'{type(input).__name__}' object has no attribute 'is_cuda'")
    check_pool_input(input, "max_pool3d_with_indices" if return_indices else "max_pool3d")
    g = max_pool3d_geometry(input.shape, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return _max_pool(input, g, return_indices)


@planned
@autocast_inputs("pool")
def avg_pool3d(
    input: torch.Tensor,
    kernel_size: IntTriple,
    stride: IntTriple | None = None,
    padding: IntTriple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.avg_pool3d``.

    input ``(N, C, D, H, W)`` or ``(C, D, H, W)``; returns ``(N, C, T, P, Q)`` (or ``(C, T, P, Q)``) in the
    input's memory format. Accumulates in float32 (float64 for float64 inputs).
    """
    check_pool_input(input, "avg_pool3d")
    g = avg_pool3d_geometry(input.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)
    return _avg_pool(input, g)


@planned
@autocast_inputs("pool")
def adaptive_avg_pool3d(input: torch.Tensor, output_size: int | Sequence[int | None]) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.adaptive_avg_pool3d``.

    input ``(N, C, D, H, W)`` or ``(C, D, H, W)``; ``output_size`` ``(T, P, Q)`` or one int, ``None`` keeping
    the input's size. Output ``t`` averages depths ``[floor(t*D/T), ceil((t+1)*D/T))`` (rows and columns
    alike). Output size 1 (global average pooling) is one reduction per volume.
    """
    _check_tensor(input)
    check_pool_input(input, "adaptive_avg_pool3d")
    g = adaptive_pool3d_geometry(input.shape, output_size, "adaptive_avg_pool3d")
    return _avg_pool(input, g)


@planned
@autocast_inputs("pool")
def adaptive_max_pool3d(
    input: torch.Tensor, output_size: int | Sequence[int | None], return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.adaptive_max_pool3d``.

    input ``(N, C, D, H, W)`` or ``(C, D, H, W)``; returns ``(N, C, T, P, Q)`` (or ``(C, T, P, Q)``), and
    with ``return_indices`` the int64 flat indices ``(d*H + h)*W + w`` of the maxima.
    """
    _check_tensor(input)
    check_pool_input(input, "adaptive_max_pool3d")
    g = adaptive_pool3d_geometry(input.shape, output_size, "adaptive_max_pool3d")
    return _max_pool(input, g, bool(return_indices))
