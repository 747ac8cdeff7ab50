"""Launchers of the direct depthwise 3-D convolution kernels (``groups == C``, channel multiplier ``K // C``).

Every tensor may have any strides: the kernels take the five strides of each one. The block configuration
follows the layout: channels_last_3d tensors get channel-wide tiles (16-bit ones 16-byte vectors of eight
channels), NCDHW tensors pixel-wide tiles whose width follows the image's. A tile covers pixels of one
depth slice; the grid's first axis enumerates images, slices and the tiles of a slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..jit.depthwise3d import (
    depthwise3d_dgrad_kernel,
    depthwise3d_fwd_kernel,
    depthwise3d_wgrad_kernel,
)
from ..launch import (
    KernelConfig,
    KernelSpace,
    VariantAxis,
    VariantLimit,
    bias_stride,
    cdiv,
    kernel_strides,
    launch,
    register_space,
)
from ..shapes3d import ConvGeometry3d
from .depthwise import _inside, narrow_weight_block, pick_tile
from .epilogue import EPILOGUE_AXES, EPILOGUE_VALUES, PLAIN, Epilogue, epilogue_arguments, epilogue_variant_valid
from .reduce import acc_dtype, sum_splits

# Tiles are [BLOCK_PIX, BLOCK_C]; the pixels form a (BLOCK_PIX // BLOCK_W) x BLOCK_W rectangle of one slice.
_NCDHW_WIDE = KernelConfig.of(BLOCK_PIX=128, BLOCK_W=32, BLOCK_C=4)     # NCDHW, wide images
_NCDHW_NARROW = KernelConfig.of(BLOCK_PIX=64, BLOCK_W=8, BLOCK_C=8)     # NCDHW, narrow images
_CHANNELS_LAST = KernelConfig.of(BLOCK_PIX=32, BLOCK_W=8, BLOCK_C=32)   # channels_last_3d
_TILE_CONFIGS = [_NCDHW_WIDE, _NCDHW_NARROW, _CHANNELS_LAST]
# The forward's 16-bit channels_last_3d tile gives each thread two pixels of eight channels (16-byte loads),
# sharing the per-tap scalar work and weight loads; float32 and float64 keep the tiles above (32 elements a
# thread of them spill). Four pixels a thread (2 warps), and the 32 x 32 tile in 16-bit, leave an 8-16 byte
# stack frame on sm_90 with Triton 3.6: 16-bit problems keep to this tile and the NCDHW ones.
_CHANNELS_LAST_16BIT = KernelConfig.of(num_warps=4, BLOCK_PIX=64, BLOCK_W=8, BLOCK_C=32)


def _pixel_tiles(a: Mapping[str, Any], slices: int, rows: int, cols: int, tiles: int) -> dict[str, int]:
    """The factors of a count of pixel tiles of ``slices`` depth slices of ``rows x cols`` pixels each:
    images, depth slices, tile rows, tile columns."""
    tile_rows, tile_cols = cdiv(rows, a["BLOCK_PIX"] // a["BLOCK_W"]), cdiv(cols, a["BLOCK_W"])
    return {"images": tiles // (slices * tile_rows * tile_cols), "depth slices": slices, "tile rows": tile_rows,
            "tile columns": tile_cols}


def _fwd_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    tiles = _pixel_tiles(a, a["Z"], a["P"], a["Q"], grid[0])
    block_h = a["BLOCK_PIX"] // a["BLOCK_W"]
    interior = (tiles["images"] * (a["K"] // a["BLOCK_C"])
                * _inside(a["Z"], 1, a["Z"], a["D"], a["stride_d"], a["pad_d"], a["dil_d"], a["T"])
                * _inside(tiles["tile rows"], block_h, a["P"], a["H"], a["stride_h"], a["pad_h"], a["dil_h"], a["R"])
                * _inside(tiles["tile columns"], a["BLOCK_W"], a["Q"], a["W"], a["stride_w"], a["pad_w"], a["dil_w"],
                          a["S"]))
    return {"kernel planes": a["T"], "kernel rows": a["R"], "kernel columns": a["S"], **tiles,
            "interior programs": interior, "edge programs": grid[0] * grid[1] - interior}


def _dgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    slices = cdiv(a["D"], a["stride_d"])
    rows, cols = cdiv(a["H"], a["stride_h"]), cdiv(a["W"], a["stride_w"])
    return {"taps": a["T"] * a["R"] * a["S"], "multiplier": a["mult"], "depth phases": a["stride_d"],
            "row phases": a["stride_h"], "column phases": a["stride_w"],
            **_pixel_tiles(a, slices, rows, cols, grid[0])}


def _wgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    tiles = a["N"] * a["Z"] * cdiv(a["P"], a["BLOCK_PIX"] // a["BLOCK_W"]) * cdiv(a["Q"], a["BLOCK_W"])
    return {"taps": a["T"] * a["R"] * a["S"], "channel blocks": cdiv(a["K"], a["BLOCK_C"]),
            "tiles per split": a["tiles_per_split"], **_pixel_tiles(a, a["Z"], a["P"], a["Q"], tiles)}


# The forward and the input gradient (the transposed convolution's forward) store through the fused epilogue.
_EPILOGUE_VARIANTS = dict(axes=(VariantAxis("HAS_BIAS", (False, True)), *EPILOGUE_AXES), values=EPILOGUE_VALUES,
                          valid=lambda variant, dtype, tf32: epilogue_variant_valid(variant))

_16BIT = VariantLimit(
    "16-bit",
    applies=lambda constexprs: True,
    allows=lambda config: config != _CHANNELS_LAST,
    dtypes=frozenset({torch.float16, torch.bfloat16}),
)

FWD_SPACE = register_space(KernelSpace(
    depthwise3d_fwd_kernel.__name__, depthwise3d_fwd_kernel, [*_TILE_CONFIGS, _CHANNELS_LAST_16BIT],
    wide_configs=list(_TILE_CONFIGS), counts=_fwd_counts, limits=(_16BIT,), **_EPILOGUE_VARIANTS))
DGRAD_SPACE = register_space(KernelSpace(
    depthwise3d_dgrad_kernel.__name__, depthwise3d_dgrad_kernel, list(_TILE_CONFIGS), counts=_dgrad_counts,
    **_EPILOGUE_VARIANTS))
WGRAD_SPACE = register_space(KernelSpace(
    depthwise3d_wgrad_kernel.__name__, depthwise3d_wgrad_kernel, list(_TILE_CONFIGS), counts=_wgrad_counts))

# Weight gradient: aim for about this many programs, with at least _MIN_TILES pixel tiles per program.
_WGRAD_PROGRAMS = 2048
_MIN_TILES = 4
_MAX_GRID_X = 2**31 - 1
_MAX_GRID_YZ = 65535


def _check_depthwise(g: ConvGeometry3d) -> None:
    if not g.is_depthwise:
        raise ValueError(f"depthwise kernels need groups == C and one channel per group, got {g}")


def _w_strides(w: torch.Tensor) -> tuple[int, int, int, int]:
    return w.stride(0), w.stride(2), w.stride(3), w.stride(4)


def _geometry_args(g: ConvGeometry3d) -> tuple[int, ...]:
    return (*g.stride, *g.padding, *g.dilation, g.K // g.C)


def depthwise3d_fwd(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, g: ConvGeometry3d,
                    out: torch.Tensor, epilogue: Epilogue = PLAIN, residual: torch.Tensor | None = None,
                    preact: torch.Tensor | None = None) -> None:
    """``out = conv3d(x, w, bias, stride, padding, dilation, groups=C)``, bias and ``epilogue`` fused.

    x ``(N, C, D, H, W)``, w ``(K, 1, T, R, S)``, bias ``(K,)`` or None, out ``(N, K, Z, P, Q)`` preallocated
    (any strides for all of them); ``residual`` and ``preact`` (or None) have out's strides.
    """
    _check_depthwise(g)
    if out.numel() == 0:
        return
    extra, fused = epilogue_arguments(epilogue, out, residual, preact)
    constexprs = {"HAS_BIAS": bias is not None, **fused}
    cfg = pick_tile(FWD_SPACE, x.dtype, x, g.Q, g.P, g.K, constexprs, _CHANNELS_LAST_16BIT, depth=g.Z)
    w = narrow_weight_block(w, cfg["BLOCK_C"])
    block_h = cfg["BLOCK_PIX"] // cfg["BLOCK_W"]
    grid = (g.N * g.Z * cdiv(g.P, block_h) * cdiv(g.Q, cfg["BLOCK_W"]), cdiv(g.K, cfg["BLOCK_C"]))
    if grid[0] > _MAX_GRID_X or grid[1] > _MAX_GRID_YZ:
        raise ValueError(f"depthwise3d_fwd: too many pixel tiles or channels for one launch: {g}")
    args = (
        x, w, bias if bias is not None else w, out, *extra,
        g.D, g.H, g.W, g.K, g.Z, g.P, g.Q, g.T, g.R, g.S, *_geometry_args(g),
        *kernel_strides(x), *_w_strides(w), *kernel_strides(out), bias_stride(bias),
    )
    launch(FWD_SPACE, grid, args, cfg, x.dtype, **constexprs)


def depthwise3d_dgrad(grad_out: torch.Tensor, w: torch.Tensor, g: ConvGeometry3d, grad_in: torch.Tensor,
                      bias: torch.Tensor | None = None, epilogue: Epilogue = PLAIN,
                      residual: torch.Tensor | None = None, preact: torch.Tensor | None = None) -> None:
    """Input gradient of the depthwise 3-D convolution, written over every element of ``grad_in``.

    grad_out ``(N, K, Z, P, Q)``, w ``(K, 1, T, R, S)``, grad_in ``(N, C, D, H, W)`` preallocated (any strides).
    ``bias (C,)``, when given, is added and ``epilogue`` fused: the forward of a depthwise transposed convolution
    (``residual`` and ``preact`` have grad_in's strides). Strided
    convolutions are split into ``stride_d * stride_h * stride_w`` phases, so no tap is visited for an input
    position it does not reach.
    """
    _check_depthwise(g)
    if grad_in.numel() == 0:
        return
    slices, rows, cols = cdiv(g.D, g.stride_d), cdiv(g.H, g.stride_h), cdiv(g.W, g.stride_w)
    extra, fused = epilogue_arguments(epilogue, grad_in, residual, preact)
    constexprs = {"HAS_BIAS": bias is not None, **fused}
    cfg = pick_tile(DGRAD_SPACE, grad_out.dtype, grad_in, cols, rows, g.C, constexprs, _CHANNELS_LAST, depth=slices)
    w = narrow_weight_block(w, cfg["BLOCK_C"] * (g.K // g.C))
    block_h = cfg["BLOCK_PIX"] // cfg["BLOCK_W"]
    grid = (
        g.N * slices * cdiv(rows, block_h) * cdiv(cols, cfg["BLOCK_W"]),
        cdiv(g.C, cfg["BLOCK_C"]),
        g.stride_d * g.stride_h * g.stride_w,
    )
    if grid[0] > _MAX_GRID_X or grid[1] > _MAX_GRID_YZ or grid[2] > _MAX_GRID_YZ:
        raise ValueError(f"depthwise3d_dgrad: too many pixel tiles, channels or stride phases for one launch: {g}")
    args = (
        grad_out, w, bias if bias is not None else w, grad_in, *extra,
        g.C, g.D, g.H, g.W, g.Z, g.P, g.Q, g.T, g.R, g.S, *_geometry_args(g),
        *kernel_strides(grad_out), *_w_strides(w), *kernel_strides(grad_in), bias_stride(bias),
    )
    launch(DGRAD_SPACE, grid, args, cfg, grad_out.dtype, **constexprs)


def depthwise3d_wgrad(grad_out: torch.Tensor, x: torch.Tensor, g: ConvGeometry3d) -> torch.Tensor:
    """Weight gradient ``(K, 1, T, R, S)`` of the depthwise 3-D convolution, in x's dtype.

    grad_out ``(N, K, Z, P, Q)``, x ``(N, C, D, H, W)`` (any strides). The reduction over ``N*Z*P*Q`` is split
    into SPLIT runs of pixel tiles; each program writes one partial sum per (channel, tap) to a
    ``(SPLIT, K, T*R*S)`` workspace, which the shared split-sum kernel sums and casts (deterministic).
    """
    _check_depthwise(g)
    taps = g.T * g.R * g.S
    grad_w = torch.empty((g.K, 1, g.T, g.R, g.S), dtype=x.dtype, device=x.device)
    if g.N == 0 or g.Z * g.P * g.Q == 0:
        return grad_w.zero_()
    cfg = pick_tile(WGRAD_SPACE, x.dtype, x, g.Q, g.P, g.K, None, _CHANNELS_LAST, depth=g.Z)
    block_h = cfg["BLOCK_PIX"] // cfg["BLOCK_W"]
    tiles = g.N * g.Z * cdiv(g.P, block_h) * cdiv(g.Q, cfg["BLOCK_W"])
    base = cdiv(g.K, cfg["BLOCK_C"]) * taps
    if base > _MAX_GRID_X or tiles > _MAX_GRID_X:  # (the kernel counts tiles in 32 bits)
        raise ValueError(f"depthwise3d_wgrad: too many channels and taps, or pixel tiles, for one launch: {g}")
    split = max(1, min(cdiv(_WGRAD_PROGRAMS, base), tiles // _MIN_TILES, _MAX_GRID_YZ))
    tiles_per_split = cdiv(tiles, split)
    split = cdiv(tiles, tiles_per_split)
    ws = torch.empty((split, g.K, taps), dtype=acc_dtype(x.dtype), device=x.device)
    args = (
        grad_out, x, ws,
        g.N, g.D, g.H, g.W, g.K, g.Z, g.P, g.Q, g.T, g.R, g.S, *_geometry_args(g),
        tiles_per_split,
        *kernel_strides(grad_out), *kernel_strides(x),
    )
    launch(WGRAD_SPACE, (base, split), args, cfg, x.dtype)
    return sum_splits(ws.view(split, -1), grad_w)
