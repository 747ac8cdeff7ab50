"""2-D pooling: the launchers of the pooling kernels.

Layers: ``kernels.jit.pool2d`` holds the Triton kernels; this module picks block configurations and launches;
``kernels.ops.pool`` allocates outputs in the requested memory format (every rank), ``kernels.autograd.pool``
builds the autograd Functions and the registered ops, ``kernels.functional.pool2d`` checks the arguments
(through ``kernels.pool_shapes``) and is the public entry point, and ``kernels.nn.pooling`` wraps it in
modules. Every kernel reads its input once and writes its output once; :func:`kernels.pool_shapes.pool2d_bytes`
gives the bytes moved by each pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..autotune import layout_of, select_config, tunable
from ..jit.pool2d import (
    avg_pool2d_bwd_kernel,
    avg_pool2d_fwd_kernel,
    global_avg_pool2d_kernel,
    max_pool2d_bwd_kernel,
    max_pool2d_fwd_kernel,
    max_pool2d_gather_kernel,
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
from ..pool_shapes import PoolGeometry

# Tiles are [BLOCK_PIX, BLOCK_C]: pixel-wide for NCHW tensors (one channel, consecutive pixels), channel-wide
# for channels_last ones. 16 x 64 over 128 threads gives each thread 8 consecutive channels: 16-byte vectors
# for 16-bit dtypes (8 x 64 gives 8-byte ones, and stays for the tuned choices that measured it).
_WINDOW_TILES = [
    KernelConfig.of(BLOCK_PIX=256, BLOCK_C=1, num_warps=4),   # NCHW
    KernelConfig.of(BLOCK_PIX=32, BLOCK_C=16, num_warps=4),   # channels_last, few channels
    KernelConfig.of(BLOCK_PIX=8, BLOCK_C=64, num_warps=4),    # channels_last
    KernelConfig.of(BLOCK_PIX=16, BLOCK_C=64, num_warps=4),   # channels_last, 16-byte vectors
]
_GLOBAL_TILES = [
    KernelConfig.of(BLOCK_HW=512, BLOCK_C=1, num_warps=4),    # NCHW, large planes
    KernelConfig.of(BLOCK_HW=64, BLOCK_C=1, num_warps=2),     # NCHW, small planes (7x7)
    KernelConfig.of(BLOCK_HW=32, BLOCK_C=32, num_warps=4),    # channels_last, few channels
    KernelConfig.of(BLOCK_HW=8, BLOCK_C=128, num_warps=4),    # channels_last
]


_ADAPTIVE = VariantAxis("ADAPTIVE", (False, True))
_AVG_AXES = (_ADAPTIVE, VariantAxis("COUNT_INCLUDE_PAD", (False, True)))


def _avg_valid(variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
    """Adaptive windows have no padding: their geometry keeps ``count_include_pad`` at its default, True."""
    return variant["COUNT_INCLUDE_PAD"] or not variant["ADAPTIVE"]


def _tile_counts(pixels: str, windows: tuple[str, str] | None = None):
    """``counts`` of a kernel on the 1-D grid of ``_pixel_channel_tile`` over ``N x pixels`` (the product of
    the named arguments) and C, looping over ``windows`` (two named bounds) when given."""
    rows, cols = pixels.split("*")

    def counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
        out = {"pixel blocks": cdiv(a["N"] * a[rows] * a[cols], a["BLOCK_PIX"]),
               "channel blocks": cdiv(a["C"], a["BLOCK_C"]), "images": a["N"]}
        if windows is not None:
            out.update({f"window {windows[0]}": a[windows[0]], f"window {windows[1]}": a[windows[1]]})
        return out

    return counts


def _space(name: str, kernel, configs: list[KernelConfig], counts, axes: tuple[VariantAxis, ...] = (),
           valid=None, limits: tuple[VariantLimit, ...] = ()) -> KernelSpace:
    return register_space(KernelSpace(name, kernel, list(configs), axes=axes, valid=valid, counts=counts,
                                      limits=limits))


# Saved maxima: none, positions inside the window (uint8), torch's flat indices (int64).
_INDEX_KINDS = {None: "none", torch.uint8: "window", torch.int64: "flat"}
_WINDOW_INDEX = VariantAxis("WINDOW_INDEX", (False, True))


def _gather_valid(variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
    """Flat indices are read the same for strided and adaptive windows: one variant serves both."""
    return variant["WINDOW_INDEX"] or not variant["ADAPTIVE"]


# Adaptive windows read through window positions divide per candidate window: with unspecialised strides that
# spills on sm_80 for float32 on the 16 x 64 tile.
_ADAPTIVE_WINDOW_INDEX = VariantLimit(
    "adaptive-window-index",
    applies=lambda constexprs: constexprs.get("ADAPTIVE") and constexprs.get("WINDOW_INDEX"),
    allows=lambda config: config["BLOCK_PIX"] * config["BLOCK_C"] <= 512,
    dtypes=frozenset({torch.float32}),
)


# float64 values with int64 flat indices: 16 of each per thread spill on sm_80 (unspecialised strides).
_WIDE_FLAT_INDEX = VariantLimit(
    "float64-flat-index",
    applies=lambda constexprs: constexprs.get("INDEX") == "flat",
    allows=lambda config: config["BLOCK_PIX"] * config["BLOCK_C"] <= 512,
    dtypes=frozenset({torch.float64}),
)

MAX_FWD = _space("max_pool2d_fwd_kernel", max_pool2d_fwd_kernel, _WINDOW_TILES, _tile_counts("P*Q", ("KH", "KW")),
                 (_ADAPTIVE, VariantAxis("INDEX", tuple(_INDEX_KINDS.values()))), limits=(_WIDE_FLAT_INDEX,))
MAX_BWD = _space("max_pool2d_bwd_kernel", max_pool2d_bwd_kernel, _WINDOW_TILES,
                 _tile_counts("H*W", ("COVER_H", "COVER_W")), (_ADAPTIVE, _WINDOW_INDEX),
                 limits=(_ADAPTIVE_WINDOW_INDEX,))
MAX_GATHER = _space("max_pool2d_gather_kernel", max_pool2d_gather_kernel, _WINDOW_TILES, _tile_counts("P*Q"),
                    (_ADAPTIVE, _WINDOW_INDEX), _gather_valid)
# float64 averages on the 16 x 64 tile spill 8 bytes on sm_90 with Triton 3.8: they keep to the smaller tiles.
_WIDE_AVG = VariantLimit(
    "float64-avg",
    applies=lambda constexprs: True,
    allows=lambda config: config["BLOCK_PIX"] * config["BLOCK_C"] <= 512,
    dtypes=frozenset({torch.float64}),
)
AVG_FWD = _space("avg_pool2d_fwd_kernel", avg_pool2d_fwd_kernel, _WINDOW_TILES, _tile_counts("P*Q", ("KH", "KW")),
                 _AVG_AXES, _avg_valid, limits=(_WIDE_AVG,))
AVG_BWD = _space("avg_pool2d_bwd_kernel", avg_pool2d_bwd_kernel, _WINDOW_TILES,
                 _tile_counts("H*W", ("COVER_H", "COVER_W")), _AVG_AXES, _avg_valid)
GLOBAL_AVG = _space("global_avg_pool2d_kernel", global_avg_pool2d_kernel, _GLOBAL_TILES,
                    lambda a, grid: {"images": grid[0] // cdiv(a["C"], a["BLOCK_C"]),
                                     "channel blocks": cdiv(a["C"], a["BLOCK_C"]),
                                     "plane blocks": cdiv(a["H"] * a["W"], a["BLOCK_HW"])})


def _channels_contiguous(t: torch.Tensor) -> bool:
    return t.shape[1] > 1 and t.stride(1) == 1


def _pick_window_tile(space: KernelSpace, t: torch.Tensor, pixels: int, variant: Mapping[str, Any] | None = None
                      ) -> KernelConfig:
    """The tuned tile (``kernels.autotune``) for ``pixels`` pixels of ``t``'s channels, else the default:
    channel-wide tiles when ``t``'s channels are contiguous (channels_last), else pixel-wide ones.
    ``variant``: the launch's constexprs, which may limit the tiles."""
    configs = space.for_dtype(t.dtype, False, variant)
    if _channels_contiguous(t):
        block_c = pow2_at_least(t.shape[1], 16, 64)
        default = closest_config(configs, BLOCK_C=block_c, BLOCK_PIX=1024 // block_c)
    else:
        default = closest_config(configs, BLOCK_C=1)
    return select_config(space, t.dtype, layout_of(t), {"PIX": pixels, "C": t.shape[1]}, default, variant)


def _tile_grid(pixels: int, channels: int, config: KernelConfig) -> tuple[int]:
    """The 1-D grid of ``[BLOCK_PIX, BLOCK_C]`` tiles over ``pixels`` x ``channels`` (``_pixel_channel_tile``)."""
    return (cdiv(pixels, config["BLOCK_PIX"]) * cdiv(channels, config["BLOCK_C"]),)


def _window_params(g: PoolGeometry) -> tuple[int, ...]:
    return (g.stride_h, g.stride_w, g.pad_h, g.pad_w)


def _index_kind(indices: torch.Tensor | None) -> str:
    """What saved maxima ``indices`` hold (``INDEX`` of the max-pooling kernels), from their dtype."""
    kind = _INDEX_KINDS.get(None if indices is None else indices.dtype)
    if kind is None:
        raise TypeError(f"max pooling indices must be int64 or uint8, got {indices.dtype}")
    return kind


# --------------------------------------------------------------------------------------------------------
# Launchers (batched 4-D tensors, any strides)


@tunable
def max_pool2d_forward(x: torch.Tensor, g: PoolGeometry, out: torch.Tensor, indices: torch.Tensor | None
                       ) -> None:
    """``out (N, C, P, Q)`` = max over the windows of ``x (N, C, H, W)``; ``indices`` (same shape), when
    given, gets where each maximum is: the flat ``h*W + w`` when int64, the position inside the window
    when uint8 (:meth:`PoolGeometry.saved_index_dtype`). Strided or adaptive windows (``g.adaptive``)."""
    if out.numel() == 0:
        return
    index = _index_kind(indices)
    config = _pick_window_tile(MAX_FWD, x, g.N * g.P * g.Q, {"ADAPTIVE": g.adaptive, "INDEX": index})
    for n0, n1 in batch_chunks(g.N, g.P * g.Q):
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        ids = batch_rows(indices, n0, n1) if indices is not None else ys
        grid = _tile_grid((n1 - n0) * g.P * g.Q, g.C, config)
        args = (xs, ys, ids, n1 - n0, g.C, g.H, g.W, g.P, g.Q,
                *kernel_strides(xs), *kernel_strides(ys), *kernel_strides(ids),
                g.kh, g.kw, *_window_params(g), g.dil_h, g.dil_w, g.window_extent[1])
        launch(MAX_FWD, grid, args, config, x.dtype, ADAPTIVE=g.adaptive, INDEX=index)


@tunable
def max_pool2d_backward(grad_out: torch.Tensor, indices: torch.Tensor, g: PoolGeometry,
                        grad_in: torch.Tensor) -> None:
    """``grad_in (N, C, H, W)``: each element gathers ``grad_out (N, C, P, Q)`` from the windows whose saved
    index (int64 flat or uint8 in-window, see :func:`max_pool2d_forward`) points at it; grad_in is
    overwritten."""
    if grad_in.numel() == 0:
        return
    if grad_out.numel() == 0:
        grad_in.zero_()
        return
    variant = {"ADAPTIVE": g.adaptive, "WINDOW_INDEX": _index_kind(indices) == "window"}
    config = _pick_window_tile(MAX_BWD, grad_in, g.N * g.H * g.W, variant)
    for n0, n1 in batch_chunks(g.N, g.H * g.W):
        gys, ids, gxs = batch_rows(grad_out, n0, n1), batch_rows(indices, n0, n1), batch_rows(grad_in, n0, n1)
        grid = _tile_grid((n1 - n0) * g.H * g.W, g.C, config)
        args = (gys, ids, gxs, n1 - n0, g.C, g.H, g.W, g.P, g.Q,
                *kernel_strides(gys), *kernel_strides(ids), *kernel_strides(gxs),
                g.cover_h, g.cover_w, *_window_params(g), *g.window_extent)
        launch(MAX_BWD, grid, args, config, grad_in.dtype, **variant)


@tunable
def max_pool2d_gather(src: torch.Tensor, indices: torch.Tensor, g: PoolGeometry, out: torch.Tensor) -> None:
    """``out (N, C, P, Q)``: the elements of ``src (N, C, H, W)`` at the saved ``indices`` (int64 flat or
    uint8 in-window); out is overwritten."""
    if out.numel() == 0:
        return
    config = _pick_window_tile(MAX_GATHER, out, g.N * g.P * g.Q)
    window = _index_kind(indices) == "window"
    for n0, n1 in batch_chunks(g.N, g.P * g.Q):
        srcs, ids, outs = batch_rows(src, n0, n1), batch_rows(indices, n0, n1), batch_rows(out, n0, n1)
        grid = _tile_grid((n1 - n0) * g.P * g.Q, g.C, config)
        args = (srcs, ids, outs, n1 - n0, g.C, g.H, g.W, g.P, g.Q, *kernel_strides(srcs), *kernel_strides(ids),
                *kernel_strides(outs), *_window_params(g), g.window_extent[1])
        launch(MAX_GATHER, grid, args, config, out.dtype, ADAPTIVE=g.adaptive and window, WINDOW_INDEX=window)


@tunable
def avg_pool2d_forward(x: torch.Tensor, g: PoolGeometry, out: torch.Tensor) -> None:
    """``out (N, C, P, Q)`` = mean over the windows of ``x (N, C, H, W)`` with torch's divisor rules.
    Global pooling (adaptive to 1x1) runs as one reduction per plane."""
    if out.numel() == 0:
        return
    if g.is_global:
        _global_avg(x, g, out)
        return
    config = _pick_window_tile(AVG_FWD, x, g.N * g.P * g.Q)
    for n0, n1 in batch_chunks(g.N, g.P * g.Q):
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        grid = _tile_grid((n1 - n0) * g.P * g.Q, g.C, config)
        args = (xs, ys, n1 - n0, g.C, g.H, g.W, g.P, g.Q, *kernel_strides(xs), *kernel_strides(ys),
                g.kh, g.kw, *_window_params(g), g.divisor)
        launch(AVG_FWD, grid, args, config, x.dtype, ADAPTIVE=g.adaptive,
               COUNT_INCLUDE_PAD=g.count_include_pad)


def _global_avg(x: torch.Tensor, g: PoolGeometry, out: torch.Tensor) -> None:
    configs = GLOBAL_AVG.for_dtype(x.dtype, False)
    if _channels_contiguous(x):
        default = closest_config(configs, BLOCK_C=128 if g.C >= 128 else 32)
    else:
        default = closest_config(configs, BLOCK_C=1, BLOCK_HW=64 if g.H * g.W <= 128 else 512)
    config = select_config(GLOBAL_AVG, x.dtype, layout_of(x), {"N": g.N, "HW": g.H * g.W, "C": g.C}, default)
    grid = (g.N * cdiv(g.C, config["BLOCK_C"]),)
    args = (x, out, g.C, g.H, g.W, *kernel_strides(x), out.stride(0), out.stride(1))
    launch(GLOBAL_AVG, grid, args, config, x.dtype)


@tunable
def avg_pool2d_backward(grad_out: torch.Tensor, g: PoolGeometry, grad_in: torch.Tensor) -> None:
    """``grad_in (N, C, H, W)``: each element gathers ``grad_out (N, C, P, Q) / divisor`` from the windows
    that contain it; grad_in is overwritten."""
    if grad_in.numel() == 0:
        return
    if grad_out.numel() == 0:
        grad_in.zero_()
        return
    config = _pick_window_tile(AVG_BWD, grad_in, g.N * g.H * g.W)
    for n0, n1 in batch_chunks(g.N, g.H * g.W):
        gys, gxs = batch_rows(grad_out, n0, n1), batch_rows(grad_in, n0, n1)
        grid = _tile_grid((n1 - n0) * g.H * g.W, g.C, config)
        args = (gys, gxs, n1 - n0, g.C, g.H, g.W, g.P, g.Q, *kernel_strides(gys), *kernel_strides(gxs),
                g.cover_h, g.cover_w, g.kh, g.kw, *_window_params(g), g.divisor)
        launch(AVG_BWD, grid, args, config, grad_in.dtype, ADAPTIVE=g.adaptive,
               COUNT_INCLUDE_PAD=g.count_include_pad)
