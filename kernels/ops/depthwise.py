"""Launchers of the direct depthwise convolution kernels (``groups == C``, channel multiplier ``K // C``).

Every tensor may have any strides: the kernels take the four strides of each one. The block configuration
follows the layout: channels_last tensors get channel-wide tiles, NCHW tensors pixel-wide tiles whose
width follows the image's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..autotune import layout_of, select_config
from ..jit.depthwise import (
    depthwise_dgrad_kernel,
    depthwise_fwd_kernel,
    depthwise_wgrad_kernel,
)
from ..launch import (
    INDEX_LIMIT,
    KernelConfig,
    KernelSpace,
    VariantAxis,
    VariantLimit,
    bias_stride,
    cdiv,
    closest_config,
    kernel_strides,
    launch,
    register_space,
)
from ..shapes import ConvGeometry
from .epilogue import EPILOGUE_AXES, EPILOGUE_VALUES, PLAIN, Epilogue, epilogue_arguments, epilogue_variant_valid
from .reduce import acc_dtype, sum_splits

# Tiles are [BLOCK_PIX, BLOCK_C]; the pixels form a (BLOCK_PIX // BLOCK_W) x BLOCK_W rectangle.
_TILE_CONFIGS = [
    KernelConfig.of(BLOCK_PIX=128, BLOCK_W=32, BLOCK_C=4),   # NCHW, wide images
    KernelConfig.of(BLOCK_PIX=64, BLOCK_W=8, BLOCK_C=8),     # NCHW, narrow images
    KernelConfig.of(BLOCK_PIX=32, BLOCK_W=8, BLOCK_C=32),    # channels_last
]
# The forward's 16-bit channels_last tiles: 8 x 8 pixels (the default: more tiles have their windows inside
# the image, the unmasked path) and 16 x 8 pixels of 32 channels, on 8 warps: one or two pixels of eight
# channels (16-byte loads) a thread. With four pixels a thread (2 and 4 warps), Triton 3.6 leaves a 16-48 byte
# stack frame on sm_90 in every variant (the ahead-of-time check on the GPU machine's stack). float32 and
# float64 keep the tiles above: 32 elements a thread spill there when the strides are not specialised (so do
# these tiles in the input gradient's flat tap loop).
_CHANNELS_LAST_16BIT = KernelConfig.of(num_warps=8, BLOCK_PIX=64, BLOCK_W=8, BLOCK_C=32)
# One-row tiles for one-row outputs (conv1d's (N, C, 1, L) views): every lane of a taller tile past the
# first row would be masked off.
_ONE_ROW_NCHW = KernelConfig.of(BLOCK_PIX=128, BLOCK_W=128, BLOCK_C=4)
_ONE_ROW_CHANNELS_LAST = KernelConfig.of(BLOCK_PIX=32, BLOCK_W=32, BLOCK_C=32)  # (64 x 32 on 2 warps spills)
_TILE_CONFIGS_16BIT = [
    *_TILE_CONFIGS,
    _CHANNELS_LAST_16BIT,
    KernelConfig.of(num_warps=8, BLOCK_PIX=128, BLOCK_W=8, BLOCK_C=32),
    _ONE_ROW_NCHW,
    _ONE_ROW_CHANNELS_LAST,
]
_FWD_WIDE_CONFIGS = [*_TILE_CONFIGS, _ONE_ROW_NCHW, _ONE_ROW_CHANNELS_LAST]


def _pixel_tiles(a: Mapping[str, Any], rows: int, cols: int, tiles: int) -> dict[str, int]:
    """The factors of a count of ``rows x cols`` pixel tiles over the images: images, tile rows, tile columns."""
    tile_rows, tile_cols = cdiv(rows, a["BLOCK_PIX"] // a["BLOCK_W"]), cdiv(cols, a["BLOCK_W"])
    return {"images": tiles // (tile_rows * tile_cols), "tile rows": tile_rows, "tile columns": tile_cols}


def _inside(tiles: int, block: int, out: int, size: int, stride: int, pad: int, dil: int, taps: int) -> int:
    """How many of ``tiles`` tiles of ``block`` output rows (or columns) are whole and have every window
    inside the ``size`` input rows: the forward kernel's test for its unmasked path, along one axis."""
    return sum(1 for t in range(tiles)
               if (t + 1) * block <= out and t * block * stride - pad >= 0
               and (t * block + block - 1) * stride - pad + (taps - 1) * dil < size)


def _fwd_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    tiles = _pixel_tiles(a, a["P"], a["Q"], grid[0])
    block_h = a["BLOCK_PIX"] // a["BLOCK_W"]
    interior = (tiles["images"] * a["K"] // a["BLOCK_C"]
                * _inside(tiles["tile rows"], block_h, a["P"], a["H"], a["stride_h"], a["pad_h"], a["dil_h"], a["R"])
                * _inside(tiles["tile columns"], a["BLOCK_W"], a["Q"], a["W"], a["stride_w"], a["pad_w"], a["dil_w"],
                          a["S"]))
    return {"kernel rows": a["R"], "kernel columns": a["S"], **tiles,
            "interior programs": interior, "edge programs": grid[0] * grid[1] - interior}


def _dgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    rows, cols = cdiv(a["H"], a["stride_h"]), cdiv(a["W"], a["stride_w"])
    return {"taps": a["R"] * a["S"], "multiplier": a["mult"], "row phases": a["stride_h"],
            "column phases": a["stride_w"], **_pixel_tiles(a, rows, cols, grid[0])}


def _wgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    tiles = a["N"] * cdiv(a["P"], a["BLOCK_PIX"] // a["BLOCK_W"]) * cdiv(a["Q"], a["BLOCK_W"])
    return {"taps": a["R"] * a["S"], "channel blocks": cdiv(a["K"], a["BLOCK_C"]),
            "tiles per split": a["tiles_per_split"], **_pixel_tiles(a, a["P"], a["Q"], tiles)}


# float64 silu or gelu (libdevice exp/erf in double precision) spills on sm_80 on the 128-pixel tile, and on
# the 32-channel tile with a residual: those keep to the 64 x 8 tile.
_WIDE_CURVED = VariantLimit(
    "float64-curved",
    applies=lambda constexprs: constexprs.get("ACTIVATION") in ("silu", "gelu"),
    allows=lambda config: config["BLOCK_PIX"] <= 64 and config["BLOCK_C"] <= 8,
    dtypes=frozenset({torch.float64}),
)


def _space(kernel: object, counts, epilogue: bool = False, limits: tuple[VariantLimit, ...] = (),
           configs: list[KernelConfig] = _TILE_CONFIGS, wide_configs: list[KernelConfig] | None = None
           ) -> KernelSpace:
    variants = {}
    if epilogue:
        variants = dict(axes=(VariantAxis("HAS_BIAS", (False, True)), *EPILOGUE_AXES), values=EPILOGUE_VALUES,
                        valid=lambda variant, dtype, tf32: epilogue_variant_valid(variant))
    return register_space(KernelSpace(kernel.__name__, kernel, list(configs), counts=counts, limits=limits,
                                      wide_configs=list(wide_configs or []), **variants))


FWD_SPACE = _space(depthwise_fwd_kernel, _fwd_counts, epilogue=True, limits=(_WIDE_CURVED,),
                   configs=_TILE_CONFIGS_16BIT, wide_configs=_FWD_WIDE_CONFIGS)
# The gradients take the one-row tiles too: on a conv1d's (N, C, 1, L) view, the 4-row tiles above would leave
# three of every four lanes masked off.
_WITH_ONE_ROW = [*_TILE_CONFIGS, _ONE_ROW_NCHW, _ONE_ROW_CHANNELS_LAST]
# float64's input gradient on the 32 x 32 one-row tile spills 8 bytes on sm_80: it keeps to the other tiles.
_WIDE_ONE_ROW = VariantLimit(
    "float64-one-row",
    applies=lambda constexprs: True,
    allows=lambda config: config != _ONE_ROW_CHANNELS_LAST,
    dtypes=frozenset({torch.float64}),
)
DGRAD_SPACE = _space(depthwise_dgrad_kernel, _dgrad_counts, epilogue=True, limits=(_WIDE_ONE_ROW,),
                     configs=_WITH_ONE_ROW)
WGRAD_SPACE = _space(depthwise_wgrad_kernel, _wgrad_counts, configs=_WITH_ONE_ROW)

# Weight gradient: aim for about this many programs, with at least _MIN_TILES pixel tiles per program.
_WGRAD_PROGRAMS = 2048
_MIN_TILES = 4
_MAX_GRID_YZ = 65535


def _check_depthwise(g: ConvGeometry) -> None:
    if not g.is_depthwise:
        raise ValueError(f"depthwise kernels need groups == C and one channel per group, got {g}")


def pick_tile(space: KernelSpace, dtype: torch.dtype, t: torch.Tensor, width: int, height: int = 1,
              channels: int = 1, variant: Mapping[str, Any] | None = None,
              channels_last: KernelConfig = _TILE_CONFIGS[2], depth: int | None = None) -> KernelConfig:
    """The tuned tile (``kernels.autotune``) of a ``height x width`` pixel grid (``depth`` such slices in 3-D)
    of ``channels`` channels, else the default: the channel-wide tile closest to ``channels_last`` when
    ``t``'s channels are contiguous, else pixel-wide tiles. ``variant``: the launch's constexprs, which may
    limit the tiles."""
    configs = space.for_dtype(dtype, False, variant)
    one_row = [c for c in configs if c["BLOCK_PIX"] == c["BLOCK_W"]]
    contiguous_channels = layout_of(t) == "channels_last"
    if height == 1 and one_row:  # (a conv1d: the one-row tile with the most channels, or pixels for NCHW)
        default = max(one_row, key=lambda c: (c["BLOCK_C"], c["BLOCK_PIX"]) if contiguous_channels
                      else (c["BLOCK_PIX"], -c["BLOCK_C"]))
    elif contiguous_channels:
        default = channels_last if channels_last in configs else closest_config(configs, **dict(channels_last.blocks))
    elif width <= 16:
        default = closest_config(configs, BLOCK_PIX=64, BLOCK_W=8, BLOCK_C=8)
    else:
        default = closest_config(configs, BLOCK_PIX=128, BLOCK_W=32, BLOCK_C=4)
    slices = {} if depth is None else {"D": depth}
    problem = {"N": t.shape[0], **slices, "PIX": height * width, "W": width, "C": channels}
    return select_config(space, dtype, layout_of(t), problem, default, variant)


def narrow_weight_block(w: torch.Tensor, block_c: int, limit: int = INDEX_LIMIT) -> torch.Tensor:
    """``w`` ``(K, 1, *kernel)`` (any rank), or when one block of ``block_c`` output channels of it spans more
    than ``limit`` elements (the forward's and input gradient's 32-bit offsets within a block), a copy with
    contiguous channels."""
    if (block_c - 1) * w.stride(0) <= limit:
        return w
    return w.movedim(0, -1).contiguous().movedim(-1, 0)


def _w_strides(w: torch.Tensor) -> tuple[int, int, int]:
    return w.stride(0), w.stride(2), w.stride(3)


def depthwise_fwd(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, g: ConvGeometry,
                  out: torch.Tensor, epilogue: Epilogue = PLAIN, residual: torch.Tensor | None = None,
                  preact: torch.Tensor | None = None) -> None:
    """``out = conv2d(x, w, bias, stride, padding, dilation, groups=C)``, bias and ``epilogue`` fused.

    x ``(N, C, H, W)``, w ``(K, 1, R, S)``, bias ``(K,)`` or None, out ``(N, K, P, Q)`` preallocated
    (any strides for all of them); ``residual`` and ``preact`` (or None) have out's strides.
    """
    _check_depthwise(g)
    if out.numel() == 0:
        return
    extra, fused = epilogue_arguments(epilogue, out, residual, preact)
    constexprs = {"HAS_BIAS": bias is not None, **fused}
    cfg = pick_tile(FWD_SPACE, x.dtype, x, g.Q, g.P, g.K, constexprs, _CHANNELS_LAST_16BIT)
    w = narrow_weight_block(w, cfg["BLOCK_C"])
    block_h = cfg["BLOCK_PIX"] // cfg["BLOCK_W"]
    pixel_tiles = g.N * cdiv(g.P, block_h) * cdiv(g.Q, cfg["BLOCK_W"])
    grid = (pixel_tiles, cdiv(g.K, cfg["BLOCK_C"]))
    if grid[1] > _MAX_GRID_YZ:
        raise ValueError(f"depthwise_fwd: too many channels for one launch: {g}")
    args = (
        x, w, bias if bias is not None else w, out, *extra,
        g.H, g.W, g.K, g.P, g.Q, g.R, g.S,
        g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.K // g.C,
        *kernel_strides(x), *_w_strides(w), *kernel_strides(out), bias_stride(bias),
    )
    launch(FWD_SPACE, grid, args, cfg, x.dtype, **constexprs)


def depthwise_dgrad(grad_out: torch.Tensor, w: torch.Tensor, g: ConvGeometry, grad_in: torch.Tensor,
                    bias: torch.Tensor | None = None, epilogue: Epilogue = PLAIN,
                    residual: torch.Tensor | None = None, preact: torch.Tensor | None = None) -> None:
    """Input gradient of the depthwise convolution, written over every element of ``grad_in``.

    grad_out ``(N, K, P, Q)``, w ``(K, 1, R, S)``, grad_in ``(N, C, H, W)`` preallocated (any strides).
    ``bias (C,)``, when given, is added and ``epilogue`` fused (the forward of a depthwise transposed
    convolution; ``residual`` and ``preact`` have grad_in's strides). Strided
    convolutions are split into ``stride_h * stride_w`` phases, so no tap is visited for an input position
    it does not reach.
    """
    _check_depthwise(g)
    if grad_in.numel() == 0:
        return
    rows, cols = cdiv(g.H, g.stride_h), cdiv(g.W, g.stride_w)
    extra, fused = epilogue_arguments(epilogue, grad_in, residual, preact)
    constexprs = {"HAS_BIAS": bias is not None, **fused}
    cfg = pick_tile(DGRAD_SPACE, grad_out.dtype, grad_in, cols, rows, g.C, constexprs)
    w = narrow_weight_block(w, cfg["BLOCK_C"] * (g.K // g.C))
    block_h = cfg["BLOCK_PIX"] // cfg["BLOCK_W"]
    grid = (
        g.N * cdiv(rows, block_h) * cdiv(cols, cfg["BLOCK_W"]),
        cdiv(g.C, cfg["BLOCK_C"]),
        g.stride_h * g.stride_w,
    )
    if grid[1] > _MAX_GRID_YZ or grid[2] > _MAX_GRID_YZ:
        raise ValueError(f"depthwise_dgrad: too many channels or stride phases for one launch: {g}")
    args = (
        grad_out, w, bias if bias is not None else w, grad_in, *extra,
        g.C, g.H, g.W, g.P, g.Q, g.R, g.S,
        g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.K // g.C,
        *kernel_strides(grad_out), *_w_strides(w), *kernel_strides(grad_in), bias_stride(bias),
    )
    launch(DGRAD_SPACE, grid, args, cfg, grad_out.dtype, **constexprs)


def depthwise_wgrad(grad_out: torch.Tensor, x: torch.Tensor, g: ConvGeometry) -> torch.Tensor:
    """Weight gradient ``(K, 1, R, S)`` of the depthwise convolution, in x's dtype.

    grad_out ``(N, K, P, Q)``, x ``(N, C, H, W)`` (any strides). The reduction over ``N*P*Q`` is split
    into SPLIT runs of pixel tiles; each program writes one partial sum per (channel, tap) to a
    ``(SPLIT, K, R*S)`` workspace, which the shared split-sum kernel sums and casts.
    """
    _check_depthwise(g)
    grad_w = torch.empty((g.K, 1, g.R, g.S), dtype=x.dtype, device=x.device)
    if g.N == 0 or g.P * g.Q == 0:
        return grad_w.zero_()
    cfg = pick_tile(WGRAD_SPACE, x.dtype, x, g.Q, g.P, g.K)
    block_h = cfg["BLOCK_PIX"] // cfg["BLOCK_W"]
    tiles = g.N * cdiv(g.P, block_h) * cdiv(g.Q, cfg["BLOCK_W"])
    base = cdiv(g.K, cfg["BLOCK_C"]) * g.R * g.S
    split = max(1, min(cdiv(_WGRAD_PROGRAMS, base), tiles // _MIN_TILES, _MAX_GRID_YZ))
    tiles_per_split = cdiv(tiles, split)
    split = cdiv(tiles, tiles_per_split)
    ws = torch.empty((split, g.K, g.R * g.S), dtype=acc_dtype(x.dtype), device=x.device)
    args = (
        grad_out, x, ws,
        g.N, g.H, g.W, g.K, g.P, g.Q, g.R, g.S,
        g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.K // g.C,
        tiles_per_split,
        *kernel_strides(grad_out), *kernel_strides(x),
    )
    launch(WGRAD_SPACE, (base, split), args, cfg, x.dtype)
    return sum_splits(ws.view(split, -1), grad_w)
