"""``kernels.max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d`` and ``adaptive_max_pool2d``: the drop-ins for
torch.nn.functional's 2-D pooling. Each checks its arguments as torch does (``kernels.pool_shapes``), then runs
through ``kernels.autograd.pool`` (the autograd Function, or the registered op while compiling) or, with
nothing to differentiate, the launchers of ``kernels.ops.pool2d`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..call_plans import planned
from ..pool_shapes import (
    IntPair,
    adaptive_pool2d_geometry,
    avg_pool2d_geometry,
    check_pool_input,
    max_pool2d_geometry,
)
from .pool import avg_pool, check_tensor, max_pool

__all__ = ["adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "max_pool2d"]


@planned
def max_pool2d(
    input: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.max_pool2d``.

    input ``(N, C, H, W)`` or ``(C, H, W)``; returns ``(N, C, P, Q)`` (or ``(C, P, Q)``) in the input's
    memory format, and with ``return_indices`` the int64 flat indices ``h*W + w`` of the maxima.
    """
    return_indices = bool(return_indices)
    check_pool_input(input, "max_pool2d_with_indices" if return_indices else "max_pool2d")
    g = max_pool2d_geometry(input.shape, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return max_pool(input, g, return_indices)


@planned
def avg_pool2d(
    input: torch.Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.avg_pool2d``.

    input ``(N, C, H, W)`` or ``(C, H, W)``; returns ``(N, C, P, Q)`` (or ``(C, P, Q)``) in the input's
    memory format. Accumulates in float32 (float64 for float64 inputs).
    """
    check_pool_input(input, "avg_pool2d")
    g = avg_pool2d_geometry(input.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)
    return avg_pool(input, g)


@planned
def adaptive_avg_pool2d(input: torch.Tensor, output_size: int | Sequence[int | None]) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.adaptive_avg_pool2d``.

    input ``(N, C, H, W)`` or ``(C, H, W)``; ``output_size`` ``(P, Q)`` or one int, ``None`` keeping the
    input's size. Output row ``p`` averages rows ``[floor(p*H/P), ceil((p+1)*H/P))``. Output size 1 (global
    average pooling) is one reduction per plane.
    """
    check_tensor(input)
    check_pool_input(input, "adaptive_avg_pool2d")
    g = adaptive_pool2d_geometry(input.shape, output_size, "adaptive_avg_pool2d")
    return avg_pool(input, g)


@planned
def adaptive_max_pool2d(
    input: torch.Tensor, output_size: int | Sequence[int | None], return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.adaptive_max_pool2d``.

    input ``(N, C, H, W)`` or ``(C, H, W)``; returns ``(N, C, P, Q)`` (or ``(C, P, Q)``), and with
    ``return_indices`` the int64 flat indices ``h*W + w`` of the maxima.
    """
    check_tensor(input)
    check_pool_input(input, "adaptive_max_pool2d")
    g = adaptive_pool2d_geometry(input.shape, output_size, "adaptive_max_pool2d")
    return max_pool(input, g, bool(return_indices))
