"""``max_pool3d``, ``avg_pool3d``, ``adaptive_avg_pool3d`` and ``adaptive_max_pool3d``: the drop-ins for
torch.nn.functional's 3-D pooling. Each checks its arguments as torch does (``kernels.pool_shapes3d``), then
runs through ``kernels.autograd.pool`` (the autograd Function, or the registered op while compiling) or, with
nothing to differentiate, the launchers of ``kernels.ops.pool3d`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._runtime import TORCH_VERSION
from ..autocast import autocast_inputs
from ..call_plans import planned
from ..pool_shapes import check_pool_input
from ..pool_shapes3d import (
    IntTriple,
    adaptive_pool3d_geometry,
    avg_pool3d_geometry,
    max_pool3d_geometry,
)
from .pool import avg_pool, check_tensor, max_pool

__all__ = ["adaptive_avg_pool3d", "adaptive_max_pool3d", "avg_pool3d", "max_pool3d"]


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
    return max_pool(input, g, return_indices)


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
    return avg_pool(input, g)


@planned
@autocast_inputs("pool")
def adaptive_avg_pool3d(input: torch.Tensor, output_size: int | Sequence[int | None]) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.adaptive_avg_pool3d``.

    input ``(N, C, D, H, W)`` or ``(C, D, H, W)``; ``output_size`` ``(T, P, Q)`` or one int, ``None`` keeping
    the input's size. Output ``t`` averages depths ``[floor(t*D/T), ceil((t+1)*D/T))`` (rows and columns
    alike). Output size 1 (global average pooling) is one reduction per volume.
    """
    check_tensor(input)
    check_pool_input(input, "adaptive_avg_pool3d")
    g = adaptive_pool3d_geometry(input.shape, output_size, "adaptive_avg_pool3d")
    return avg_pool(input, g)


@planned
@autocast_inputs("pool")
def adaptive_max_pool3d(
    input: torch.Tensor, output_size: int | Sequence[int | None], return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.adaptive_max_pool3d``.

    input ``(N, C, D, H, W)`` or ``(C, D, H, W)``; returns ``(N, C, T, P, Q)`` (or ``(C, T, P, Q)``), and
    with ``return_indices`` the int64 flat indices ``(d*H + h)*W + w`` of the maxima.
    """
    check_tensor(input)
    check_pool_input(input, "adaptive_max_pool3d")
    g = adaptive_pool3d_geometry(input.shape, output_size, "adaptive_max_pool3d")
    return max_pool(input, g, bool(return_indices))
