"""Pooling's plan builders for every rank: a new output in the requested layout, then the rank's launcher
(``kernels.ops.pool2d`` or ``kernels.ops.pool3d``; 1-D runs as 2-D views). The geometry says the rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..pool_shapes import PoolGeometry
from ..pool_shapes3d import PoolGeometry3d
from ..shapes import empty_nd, prefers_channels_last
from ..shapes3d import prefers_channels_last_3d
from . import pool2d, pool3d

Tensor = torch.Tensor
Geometry = PoolGeometry | PoolGeometry3d


@dataclass(frozen=True)
class PoolLaunchers:
    """One rank's launchers (outputs given) and its layout rule."""

    max_forward: Callable[[Tensor, Geometry, Tensor, Tensor | None], None]
    max_backward: Callable[[Tensor, Tensor, Geometry, Tensor], None]
    max_gather: Callable[[Tensor, Tensor, Geometry, Tensor], None]
    avg_forward: Callable[[Tensor, Geometry, Tensor], None]
    avg_backward: Callable[[Tensor, Geometry, Tensor], None]
    prefers_channels_last: Callable[..., bool]


LAUNCHERS: dict[int, PoolLaunchers] = {
    2: PoolLaunchers(pool2d.max_pool2d_forward, pool2d.max_pool2d_backward, pool2d.max_pool2d_gather,
                     pool2d.avg_pool2d_forward, pool2d.avg_pool2d_backward, prefers_channels_last),
    3: PoolLaunchers(pool3d.max_pool3d_forward, pool3d.max_pool3d_backward, pool3d.max_pool3d_gather,
                     pool3d.avg_pool3d_forward, pool3d.avg_pool3d_backward, prefers_channels_last_3d),
}


def max_pool_output(x: Tensor, g: Geometry, index_dtype: torch.dtype | None, channels_last: bool
                    ) -> tuple[Tensor, Tensor]:
    """New max-pooling output ``(N, C, *out)`` and saved maxima: int64 flat indices or (2-D) uint8 positions
    in the window as ``index_dtype`` says (``g.saved_index_dtype``), or an empty int64 placeholder when it is
    None."""
    r = LAUNCHERS[g.rank]
    out = empty_nd(g.output_shape, x, channels_last)
    if index_dtype is None:
        indices = torch.empty(0, dtype=torch.int64, device=x.device)
    else:
        indices = empty_nd(g.output_shape, x, channels_last, index_dtype)
    r.max_forward(x, g, out, indices if index_dtype is not None else None)
    return out, indices


def max_pool_input_grad(grad_out: Tensor, indices: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    """A new ``(N, C, *in)`` tensor: the max-pooling input gradient of ``grad_out (N, C, *out)``."""
    r = LAUNCHERS[g.rank]
    grad_in = empty_nd(g.input_shape, grad_out, channels_last)
    r.max_backward(grad_out, indices, g, grad_in)
    return grad_in


def max_pool_gathered(src: Tensor, indices: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    """A new ``(N, C, *out)`` tensor: the elements of ``src (N, C, *in)`` at the saved maxima."""
    r = LAUNCHERS[g.rank]
    out = empty_nd(g.output_shape, src, channels_last)
    r.max_gather(src, indices, g, out)
    return out


def avg_pool_output(x: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    """A new average-pooling output ``(N, C, *out)``."""
    r = LAUNCHERS[g.rank]
    out = empty_nd(g.output_shape, x, channels_last)
    r.avg_forward(x, g, out)
    return out


def avg_pool_input_grad(grad_out: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    """A new ``(N, C, *in)`` tensor: the average-pooling input gradient of ``grad_out (N, C, *out)``."""
    r = LAUNCHERS[g.rank]
    grad_in = empty_nd(g.input_shape, grad_out, channels_last)
    r.avg_backward(grad_out, g, grad_in)
    return grad_in
