"""3-D pooling: the launchers of the pooling kernels of ``kernels.jit.pool3d``.

Layers, as in 2-D: ``kernels.jit.pool3d`` holds the Triton kernels; this module picks block configurations and
launches; ``kernels.ops.pool`` allocates outputs (contiguous or channels_last_3d) for every rank,
``kernels.autograd.pool`` builds the autograd Functions and the registered ops, and
``kernels.functional.pool3d`` checks the arguments (through ``kernels.pool_shapes3d``) and is the public entry
point. Every kernel reads its input once and writes its output once
(:func:`kernels.pool_shapes3d.pool3d_bytes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..autotune import select_config, tunable
from ..jit.pool3d import (
    avg_pool3d_bwd_kernel,
    avg_pool3d_fwd_kernel,
    global_avg_pool3d_kernel,
    max_pool3d_bwd_kernel,
    max_pool3d_fwd_kernel,
    max_pool3d_gather_kernel,
)
from ..launch import (
    KernelConfig,
    KernelSpace,
    VariantAxis,
    VariantLimit,
    batch_chunks,
    batch_rows,
    cdiv,
    closest_config,
    kernel_strides,
    launch,
    pow2_at_least,
    register_space,
)
from ..pool_shapes3d import PoolGeometry3d
from .pool2d import _WIDE_AVG, _channels_contiguous

# Tiles are [BLOCK_PIX, BLOCK_C]: voxel-wide for NCDHW tensors (one channel, consecutive voxels), channel-wide
# for channels_last_3d ones. 16 x 64 over 128 threads gives each thread 8 consecutive channels: 16-byte
# vectors for 16-bit dtypes (two for float32).
_WINDOW_TILES = [
    KernelConfig.of(BLOCK_PIX=256, BLOCK_C=1, num_warps=4),   # NCDHW
    KernelConfig.of(BLOCK_PIX=32, BLOCK_C=16, num_warps=4),   # channels_last_3d, few channels
    KernelConfig.of(BLOCK_PIX=16, BLOCK_C=64, num_warps=4),   # channels_last_3d, 16-byte vectors
]
_GLOBAL_TILES = [
    KernelConfig.of(BLOCK_DHW=512, BLOCK_C=1, num_warps=4),   # NCDHW
    KernelConfig.of(BLOCK_DHW=32, BLOCK_C=32, num_warps=4),   # channels_last_3d, few channels
    KernelConfig.of(BLOCK_DHW=8, BLOCK_C=128, num_warps=4),   # channels_last_3d
]

_ADAPTIVE = VariantAxis("ADAPTIVE", (False, True))
_AVG_AXES = (_ADAPTIVE, VariantAxis("COUNT_INCLUDE_PAD", (False, True)))


def _avg_valid(variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
    """Adaptive windows have no padding: their geometry keeps ``count_include_pad`` at its default, True."""
    return variant["COUNT_INCLUDE_PAD"] or not variant["ADAPTIVE"]


def _tile_counts(volume: str, windows: tuple[str, str, str] | None = None):
    """``counts`` of a kernel on the 1-D grid of ``_voxel_channel_tile`` over ``N x volume`` (the product of
    three named arguments) and C, looping over ``windows`` (three named bounds) when given."""
    depth, rows, cols = volume.split("*")

    def counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
        out = {"voxel blocks": cdiv(a["N"] * a[depth] * a[rows] * a[cols], a["BLOCK_PIX"]),
               "channel blocks": cdiv(a["C"], a["BLOCK_C"]), "images": a["N"]}
        if windows is not None:
            out.update({f"window {name}": a[name] for name in windows})
        return out

    return counts


def _space(name: str, kernel, configs: list[KernelConfig], counts, axes: tuple[VariantAxis, ...] = (),
           valid=None, limits: tuple[VariantLimit, ...] = ()) -> KernelSpace:
    return register_space(KernelSpace(name, kernel, list(configs), axes=axes, valid=valid, counts=counts,
                                      limits=limits))


# float64 values with int64 flat indices: 8 of each per thread on the 16 x 64 tile, with five unspecialised
# strides per tensor, are kept to the smaller tiles.
_WIDE_FLAT_INDEX = VariantLimit(
    "float64-flat-index",
    applies=lambda constexprs: constexprs.get("INDEX") == "flat",
    allows=lambda config: config["BLOCK_PIX"] * config["BLOCK_C"] <= 512,
    dtypes=frozenset({torch.float64}),
)

# Averages that leave the padding out of the divisor keep the window's in-bounds extents live across the tap
# loop: on the 16 x 64 tile they spill 8 bytes on sm_90 (the ahead-of-time check; the backward with Triton 3.8),
# so they keep to the smaller tiles.
_EXCLUDE_PAD = VariantLimit(
    "exclude-pad",
    applies=lambda constexprs: constexprs.get("COUNT_INCLUDE_PAD") is False,
    allows=lambda config: config["BLOCK_PIX"] * config["BLOCK_C"] <= 512,
)
# The average backward's NCDHW tile runs on 8 warps (a voxel a thread): on 4 warps Triton 3.8 spills 8 bytes
# there on sm_90 for adaptive windows and for averages that leave the padding out. Triton 3.6 fails to compile
# the float64 backward on the 32 x 16 tile (an MLIR pass error), and Triton 3.8 spills 8 bytes in the float64
# forward on the 16 x 64 tile (adaptive windows, as in 2-D: pool2d's limit): float64 keeps off those.
_AVG_BWD_TILES = [KernelConfig.of(BLOCK_PIX=256, BLOCK_C=1, num_warps=8), *_WINDOW_TILES[1:]]
_WIDE_AVG_BWD = VariantLimit(
    "float64-avg-backward",
    applies=lambda constexprs: True,
    allows=lambda config: config != _WINDOW_TILES[1],
    dtypes=frozenset({torch.float64}),
)

MAX_FWD = _space("max_pool3d_fwd_kernel", max_pool3d_fwd_kernel, _WINDOW_TILES,
                 _tile_counts("T*P*Q", ("KD", "KH", "KW")),
                 (_ADAPTIVE, VariantAxis("INDEX", ("none", "flat"))), limits=(_WIDE_FLAT_INDEX,))
MAX_BWD = _space("max_pool3d_bwd_kernel", max_pool3d_bwd_kernel, _WINDOW_TILES,
                 _tile_counts("D*H*W", ("COVER_D", "COVER_H", "COVER_W")), (_ADAPTIVE,))
MAX_GATHER = _space("max_pool3d_gather_kernel", max_pool3d_gather_kernel, _WINDOW_TILES, _tile_counts("T*P*Q"))
AVG_FWD = _space("avg_pool3d_fwd_kernel", avg_pool3d_fwd_kernel, _WINDOW_TILES,
                 _tile_counts("T*P*Q", ("KD", "KH", "KW")), _AVG_AXES, _avg_valid, limits=(_EXCLUDE_PAD, _WIDE_AVG))
AVG_BWD = _space("avg_pool3d_bwd_kernel", avg_pool3d_bwd_kernel, _AVG_BWD_TILES,
                 _tile_counts("D*H*W", ("COVER_D", "COVER_H", "COVER_W")), _AVG_AXES, _avg_valid,
                 limits=(_EXCLUDE_PAD, _WIDE_AVG_BWD))
GLOBAL_AVG = _space("global_avg_pool3d_kernel", global_avg_pool3d_kernel, _GLOBAL_TILES,
                    lambda a, grid: {"images": grid[0] // cdiv(a["C"], a["BLOCK_C"]),
                                     "channel blocks": cdiv(a["C"], a["BLOCK_C"]),
                                     "volume blocks": cdiv(a["D"] * a["H"] * a["W"], a["BLOCK_DHW"])})


def _layout(t: torch.Tensor) -> str:
    """The autotuning layout key: ``"channels_last"`` when the channels are contiguous, else ``"nchw"``."""
    return "channels_last" if _channels_contiguous(t) else "nchw"


def _pick_window_tile(space: KernelSpace, t: torch.Tensor, voxels: int, variant: Mapping[str, Any] | None = None
                      ) -> KernelConfig:
    """The tuned tile (``kernels.autotune``) for ``voxels`` voxels of ``t``'s channels, else the default:
    channel-wide tiles when ``t``'s channels are contiguous (channels_last_3d), else voxel-wide ones.
    ``variant``: the launch's constexprs, which may limit the tiles."""
    configs = space.for_dtype(t.dtype, False, variant)
    if _channels_contiguous(t):
        block_c = pow2_at_least(t.shape[1], 16, 64)
        default = closest_config(configs, BLOCK_C=block_c, BLOCK_PIX=1024 // block_c)
    else:
        default = closest_config(configs, BLOCK_C=1)
    return select_config(space, t.dtype, _layout(t), {"PIX": voxels, "C": t.shape[1]}, default, variant)


def _tile_grid(voxels: int, channels: int, config: KernelConfig) -> tuple[int]:
    """The 1-D grid of ``[BLOCK_PIX, BLOCK_C]`` tiles over ``voxels`` x ``channels``."""
    return (cdiv(voxels, config["BLOCK_PIX"]) * cdiv(channels, config["BLOCK_C"]),)


def _sizes(g: PoolGeometry3d, n: int) -> tuple[int, ...]:
    return (n, g.C, g.D, g.H, g.W, g.T, g.P, g.Q)


# --------------------------------------------------------------------------------------------------------
# Launchers (batched 5-D tensors, any strides)


@tunable
def max_pool3d_forward(x: torch.Tensor, g: PoolGeometry3d, out: torch.Tensor, indices: torch.Tensor | None
                       ) -> None:
    """``out (N, C, T, P, Q)`` = max over the windows of ``x (N, C, D, H, W)``; ``indices`` (int64, same
    shape), when given, gets the flat ``(d*H + h)*W + w`` of each maximum. Strided or adaptive windows."""
    if out.numel() == 0:
        return
    if indices is not None and indices.dtype != torch.int64:
        raise TypeError(f"max_pool3d indices must be int64, got {indices.dtype}")
    index = "none" if indices is None else "flat"
    config = _pick_window_tile(MAX_FWD, x, g.N * g.T * g.P * g.Q, {"ADAPTIVE": g.adaptive, "INDEX": index})
    for n0, n1 in batch_chunks(g.N, g.T * g.P * g.Q):
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        ids = batch_rows(indices, n0, n1) if indices is not None else ys
        grid = _tile_grid((n1 - n0) * g.T * g.P * g.Q, g.C, config)
        args = (xs, ys, ids, *_sizes(g, n1 - n0), *kernel_strides(xs), *kernel_strides(ys), *kernel_strides(ids),
                *g.kernel, *g.stride, *g.padding, *g.dilation)
        launch(MAX_FWD, grid, args, config, x.dtype, ADAPTIVE=g.adaptive, INDEX=index)


@tunable
def max_pool3d_backward(grad_out: torch.Tensor, indices: torch.Tensor, g: PoolGeometry3d,
                        grad_in: torch.Tensor) -> None:
    """``grad_in (N, C, D, H, W)``: each element gathers ``grad_out (N, C, T, P, Q)`` from the windows whose
    saved flat index points at it; grad_in is overwritten."""
    if grad_in.numel() == 0:
        return
    if grad_out.numel() == 0:
        grad_in.zero_()
        return
    config = _pick_window_tile(MAX_BWD, grad_in, g.N * g.D * g.H * g.W, {"ADAPTIVE": g.adaptive})
    for n0, n1 in batch_chunks(g.N, g.D * g.H * g.W):
        gys, ids, gxs = batch_rows(grad_out, n0, n1), batch_rows(indices, n0, n1), batch_rows(grad_in, n0, n1)
        grid = _tile_grid((n1 - n0) * g.D * g.H * g.W, g.C, config)
        args = (gys, ids, gxs, *_sizes(g, n1 - n0), *kernel_strides(gys), *kernel_strides(ids), *kernel_strides(gxs),
                *g.cover, *g.stride, *g.padding, *g.window_extent)
        launch(MAX_BWD, grid, args, config, grad_in.dtype, ADAPTIVE=g.adaptive)


@tunable
def max_pool3d_gather(src: torch.Tensor, indices: torch.Tensor, g: PoolGeometry3d, out: torch.Tensor) -> None:
    """``out (N, C, T, P, Q)``: the elements of ``src (N, C, D, H, W)`` at the saved flat ``indices``; out is
    overwritten."""
    if out.numel() == 0:
        return
    config = _pick_window_tile(MAX_GATHER, out, g.N * g.T * g.P * g.Q)
    for n0, n1 in batch_chunks(g.N, g.T * g.P * g.Q):
        srcs, ids, outs = batch_rows(src, n0, n1), batch_rows(indices, n0, n1), batch_rows(out, n0, n1)
        grid = _tile_grid((n1 - n0) * g.T * g.P * g.Q, g.C, config)
        args = (srcs, ids, outs, *_sizes(g, n1 - n0), *kernel_strides(srcs), *kernel_strides(ids),
                *kernel_strides(outs))
        launch(MAX_GATHER, grid, args, config, out.dtype)


@tunable
def avg_pool3d_forward(x: torch.Tensor, g: PoolGeometry3d, out: torch.Tensor) -> None:
    """``out (N, C, T, P, Q)`` = mean over the windows of ``x (N, C, D, H, W)`` with torch's divisor rules.
    Global pooling (adaptive to 1x1x1) runs as one reduction per volume."""
    if out.numel() == 0:
        return
    if g.is_global:
        _global_avg(x, g, out)
        return
    variant = {"ADAPTIVE": g.adaptive, "COUNT_INCLUDE_PAD": g.count_include_pad}
    config = _pick_window_tile(AVG_FWD, x, g.N * g.T * g.P * g.Q, variant)
    for n0, n1 in batch_chunks(g.N, g.T * g.P * g.Q):
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        grid = _tile_grid((n1 - n0) * g.T * g.P * g.Q, g.C, config)
        args = (xs, ys, *_sizes(g, n1 - n0), *kernel_strides(xs), *kernel_strides(ys), *g.kernel, *g.stride, *g.padding,
                g.divisor)
        launch(AVG_FWD, grid, args, config, x.dtype, **variant)


def _global_avg(x: torch.Tensor, g: PoolGeometry3d, out: torch.Tensor) -> None:
    configs = GLOBAL_AVG.for_dtype(x.dtype, False)
    if _channels_contiguous(x):
        default = closest_config(configs, BLOCK_C=128 if g.C >= 128 else 32)
    else:
        default = closest_config(configs, BLOCK_C=1)
    config = select_config(GLOBAL_AVG, x.dtype, _layout(x), {"N": g.N, "DHW": g.D * g.H * g.W, "C": g.C}, default)
    grid = (g.N * cdiv(g.C, config["BLOCK_C"]),)
    args = (x, out, g.C, g.D, g.H, g.W, *kernel_strides(x), out.stride(0), out.stride(1))
    launch(GLOBAL_AVG, grid, args, config, x.dtype)


@tunable
def avg_pool3d_backward(grad_out: torch.Tensor, g: PoolGeometry3d, grad_in: torch.Tensor) -> None:
    """``grad_in (N, C, D, H, W)``: each element gathers ``grad_out (N, C, T, P, Q) / divisor`` from the
    windows that contain it; grad_in is overwritten."""
    if grad_in.numel() == 0:
        return
    if grad_out.numel() == 0:
        grad_in.zero_()
        return
    variant = {"ADAPTIVE": g.adaptive, "COUNT_INCLUDE_PAD": g.count_include_pad}
    config = _pick_window_tile(AVG_BWD, grad_in, g.N * g.D * g.H * g.W, variant)
    for n0, n1 in batch_chunks(g.N, g.D * g.H * g.W):
        gys, gxs = batch_rows(grad_out, n0, n1), batch_rows(grad_in, n0, n1)
        grid = _tile_grid((n1 - n0) * g.D * g.H * g.W, g.C, config)
        args = (gys, gxs, *_sizes(g, n1 - n0), *kernel_strides(gys), *kernel_strides(gxs), *g.cover, *g.kernel,
                *g.stride, *g.padding, g.divisor)
        launch(AVG_BWD, grid, args, config, grad_in.dtype, **variant)
