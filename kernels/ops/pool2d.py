"""2-D pooling: launchers, the autograd Functions and the functional entry points.

Layers: ``kernels.jit.pool2d`` holds the Triton kernels, this module checks arguments (through
``kernels.pool_shapes``), picks block configurations, allocates outputs in the input's memory format and
launches; ``kernels.nn.pooling`` wraps the functions in modules. Every kernel reads its input once and
writes its output once; :func:`kernels.pool_shapes.pool2d_bytes` gives the bytes moved by each pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..autotune import layout_of, select_config, tunable
from ..call_plans import apply_function, planned
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
    batch_chunks,
    batch_rows,
    cdiv,
    closest_config,
    launch,
    pow2_at_least,
    register_space,
)
from ..pool_shapes import (
    IntPair,
    PoolGeometry,
    adaptive_pool2d_geometry,
    avg_pool2d_geometry,
    check_pool_input,
    max_pool2d_geometry,
    pool2d_bytes,
)
from ..shapes import empty_4d, prefers_channels_last
from ._autograd import backward_is_recorded

__all__ = [
    "AvgPool2dFunction",
    "MaxPool2dFunction",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "max_pool2d",
    "pool2d_bytes",
]

# Tiles are [BLOCK_PIX, BLOCK_C]: pixel-wide for NCHW tensors (one channel, consecutive pixels), channel-wide
# for channels_last ones.
_WINDOW_TILES = [
    KernelConfig.of(BLOCK_PIX=256, BLOCK_C=1, num_warps=4),   # NCHW
    KernelConfig.of(BLOCK_PIX=32, BLOCK_C=16, num_warps=4),   # channels_last, few channels
    KernelConfig.of(BLOCK_PIX=8, BLOCK_C=64, num_warps=4),    # channels_last
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
           valid=None) -> KernelSpace:
    return register_space(KernelSpace(name, kernel, list(configs), axes=axes, valid=valid, counts=counts))


MAX_FWD = _space("max_pool2d_fwd_kernel", max_pool2d_fwd_kernel, _WINDOW_TILES, _tile_counts("P*Q", ("KH", "KW")),
                 (_ADAPTIVE, VariantAxis("STORE_INDEX", (False, True))))
MAX_BWD = _space("max_pool2d_bwd_kernel", max_pool2d_bwd_kernel, _WINDOW_TILES,
                 _tile_counts("H*W", ("COVER_H", "COVER_W")), (_ADAPTIVE,))
MAX_GATHER = _space("max_pool2d_gather_kernel", max_pool2d_gather_kernel, _WINDOW_TILES, _tile_counts("P*Q"))
AVG_FWD = _space("avg_pool2d_fwd_kernel", avg_pool2d_fwd_kernel, _WINDOW_TILES, _tile_counts("P*Q", ("KH", "KW")),
                 _AVG_AXES, _avg_valid)
AVG_BWD = _space("avg_pool2d_bwd_kernel", avg_pool2d_bwd_kernel, _WINDOW_TILES,
                 _tile_counts("H*W", ("COVER_H", "COVER_W")), _AVG_AXES, _avg_valid)
GLOBAL_AVG = _space("global_avg_pool2d_kernel", global_avg_pool2d_kernel, _GLOBAL_TILES,
                    lambda a, grid: {"images": grid[0] // cdiv(a["C"], a["BLOCK_C"]),
                                     "channel blocks": cdiv(a["C"], a["BLOCK_C"]),
                                     "plane blocks": cdiv(a["H"] * a["W"], a["BLOCK_HW"])})


def _channels_contiguous(t: torch.Tensor) -> bool:
    return t.shape[1] > 1 and t.stride(1) == 1


def _pick_window_tile(space: KernelSpace, t: torch.Tensor, pixels: int) -> KernelConfig:
    """The tuned tile (``kernels.autotune``) for ``pixels`` pixels of ``t``'s channels, else the default:
    channel-wide tiles when ``t``'s channels are contiguous (channels_last), else pixel-wide ones."""
    configs = space.for_dtype(t.dtype, False)
    if _channels_contiguous(t):
        default = closest_config(configs, BLOCK_C=pow2_at_least(t.shape[1], 16, 64))
    else:
        default = closest_config(configs, BLOCK_C=1)
    return select_config(space, t.dtype, layout_of(t), {"PIX": pixels, "C": t.shape[1]}, default)


def _tile_grid(pixels: int, channels: int, config: KernelConfig) -> tuple[int]:
    """The 1-D grid of ``[BLOCK_PIX, BLOCK_C]`` tiles over ``pixels`` x ``channels`` (``_pixel_channel_tile``)."""
    return (cdiv(pixels, config["BLOCK_PIX"]) * cdiv(channels, config["BLOCK_C"]),)


def _window_params(g: PoolGeometry) -> tuple[int, ...]:
    return (g.stride_h, g.stride_w, g.pad_h, g.pad_w)


# --------------------------------------------------------------------------------------------------------
# Launchers (batched 4-D tensors, any strides)


@tunable
def max_pool2d_forward(x: torch.Tensor, g: PoolGeometry, out: torch.Tensor, indices: torch.Tensor | None
                       ) -> None:
    """``out (N, C, P, Q)`` = max over the windows of ``x (N, C, H, W)``; ``indices`` (int64, same shape)
    gets the flat ``h*W + w`` of each maximum when given. Strided or adaptive windows (``g.adaptive``)."""
    if out.numel() == 0:
        return
    config = _pick_window_tile(MAX_FWD, x, g.N * g.P * g.Q)
    store = indices is not None
    for n0, n1 in batch_chunks(g.N, g.P * g.Q):
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        ids = batch_rows(indices, n0, n1) if indices is not None else ys
        grid = _tile_grid((n1 - n0) * g.P * g.Q, g.C, config)
        args = (xs, ys, ids, n1 - n0, g.C, g.H, g.W, g.P, g.Q,
                *xs.stride(), *ys.stride(), *ids.stride(),
                g.kh, g.kw, *_window_params(g), g.dil_h, g.dil_w)
        launch(MAX_FWD, grid, args, config, x.dtype, ADAPTIVE=g.adaptive, STORE_INDEX=store)


@tunable
def max_pool2d_backward(grad_out: torch.Tensor, indices: torch.Tensor, g: PoolGeometry,
                        grad_in: torch.Tensor) -> None:
    """``grad_in (N, C, H, W)``: each element gathers ``grad_out (N, C, P, Q)`` from the windows whose saved
    index points at it; grad_in is overwritten."""
    if grad_in.numel() == 0:
        return
    if grad_out.numel() == 0:
        grad_in.zero_()
        return
    config = _pick_window_tile(MAX_BWD, grad_in, g.N * g.H * g.W)
    for n0, n1 in batch_chunks(g.N, g.H * g.W):
        gys, ids, gxs = batch_rows(grad_out, n0, n1), batch_rows(indices, n0, n1), batch_rows(grad_in, n0, n1)
        grid = _tile_grid((n1 - n0) * g.H * g.W, g.C, config)
        args = (gys, ids, gxs, n1 - n0, g.C, g.H, g.W, g.P, g.Q,
                *gys.stride(), *ids.stride(), *gxs.stride(),
                g.cover_h, g.cover_w, *_window_params(g),
                g.dil_h * (g.kh - 1) + 1, g.dil_w * (g.kw - 1) + 1)
        launch(MAX_BWD, grid, args, config, grad_in.dtype, ADAPTIVE=g.adaptive)


@tunable
def max_pool2d_gather(src: torch.Tensor, indices: torch.Tensor, g: PoolGeometry, out: torch.Tensor) -> None:
    """``out (N, C, P, Q)``: the elements of ``src (N, C, H, W)`` at the saved ``indices``; out is overwritten."""
    if out.numel() == 0:
        return
    config = _pick_window_tile(MAX_GATHER, out, g.N * g.P * g.Q)
    for n0, n1 in batch_chunks(g.N, g.P * g.Q):
        srcs, ids, outs = batch_rows(src, n0, n1), batch_rows(indices, n0, n1), batch_rows(out, n0, n1)
        grid = _tile_grid((n1 - n0) * g.P * g.Q, g.C, config)
        args = (srcs, ids, outs, n1 - n0, g.C, g.H, g.W, g.P, g.Q, *srcs.stride(), *ids.stride(), *outs.stride())
        launch(MAX_GATHER, grid, args, config, out.dtype)


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
        args = (xs, ys, n1 - n0, g.C, g.H, g.W, g.P, g.Q, *xs.stride(), *ys.stride(),
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
    args = (x, out, g.C, g.H, g.W, *x.stride(), out.stride(0), out.stride(1))
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
        args = (gys, gxs, n1 - n0, g.C, g.H, g.W, g.P, g.Q, *gys.stride(), *gxs.stride(),
                g.cover_h, g.cover_w, g.kh, g.kw, *_window_params(g), g.divisor)
        launch(AVG_BWD, grid, args, config, grad_in.dtype, ADAPTIVE=g.adaptive,
               COUNT_INCLUDE_PAD=g.count_include_pad)


# --------------------------------------------------------------------------------------------------------
# Autograd


def max_pool2d_input_grad(grad_out: torch.Tensor, indices: torch.Tensor, g: PoolGeometry, channels_last: bool
                          ) -> torch.Tensor:
    """A new ``(N, C, H, W)`` tensor: the max-pooling input gradient of ``grad_out (N, C, P, Q)``."""
    grad_in = empty_4d(g.input_shape, grad_out, channels_last)
    max_pool2d_backward(grad_out, indices, g, grad_in)
    return grad_in


def avg_pool2d_input_grad(grad_out: torch.Tensor, g: PoolGeometry, channels_last: bool) -> torch.Tensor:
    """A new ``(N, C, H, W)`` tensor: the average-pooling input gradient of ``grad_out (N, C, P, Q)``."""
    grad_in = empty_4d(g.input_shape, grad_out, channels_last)
    avg_pool2d_backward(grad_out, g, grad_in)
    return grad_in


def max_pool2d_output(x: torch.Tensor, g: PoolGeometry, with_indices: bool, channels_last: bool
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """New ``(N, C, P, Q)`` max-pooling output and int64 indices (an empty placeholder unless
    ``with_indices``)."""
    out = empty_4d(g.output_shape, x, channels_last)
    if with_indices:
        indices = empty_4d(g.output_shape, x, channels_last, torch.int64)
    else:
        indices = torch.empty(0, dtype=torch.int64, device=x.device)
    max_pool2d_forward(x, g, out, indices if with_indices else None)
    return out, indices


def avg_pool2d_output(x: torch.Tensor, g: PoolGeometry, channels_last: bool) -> torch.Tensor:
    """A new ``(N, C, P, Q)`` average-pooling output."""
    out = empty_4d(g.output_shape, x, channels_last)
    avg_pool2d_forward(x, g, out)
    return out


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling (strided or adaptive windows) on a batched ``(N, C, H, W)`` input; returns the output
    and the int64 indices (an empty placeholder when neither returned nor needed for the backward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, g: PoolGeometry, return_indices: bool, channels_last: bool):
        need_grad = ctx.needs_input_grad[0]
        out, indices = max_pool2d_output(x, g, return_indices or need_grad, channels_last)
        ctx.mark_non_differentiable(indices)
        if need_grad:
            ctx.save_for_backward(indices)
            ctx.geometry = g
            ctx.channels_last = channels_last
        return out, indices

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor, _grad_indices: torch.Tensor | None):
        (indices,) = ctx.saved_tensors
        if backward_is_recorded():
            return MaxPool2dBackward.apply(grad_out, indices, ctx.geometry, ctx.channels_last), None, None, None
        return max_pool2d_input_grad(grad_out, indices, ctx.geometry, ctx.channels_last), None, None, None


class MaxPool2dBackward(torch.autograd.Function):
    """The max-pooling input gradient as a differentiable op: linear in ``grad_out``, whose gradient takes
    the incoming gradient at the saved maxima (:func:`max_pool2d_gather`)."""

    @staticmethod
    def forward(ctx, grad_out: torch.Tensor, indices: torch.Tensor, g: PoolGeometry,
                channels_last: bool) -> torch.Tensor:
        grad_in = max_pool2d_input_grad(grad_out, indices, g, channels_last)
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.out_channels_last = prefers_channels_last(grad_out)
        return grad_in

    @staticmethod
    def backward(ctx, grad_grad_in: torch.Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPool2dGather.apply(grad_grad_in, indices, ctx.geometry, ctx.out_channels_last), None, None, None


class MaxPool2dGather(torch.autograd.Function):
    """``(N, C, H, W) -> (N, C, P, Q)``: the elements at the saved maxima; its gradient is the max-pooling
    backward, so the pair closes under differentiation."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, indices: torch.Tensor, g: PoolGeometry, channels_last: bool
                ) -> torch.Tensor:
        out = empty_4d(g.output_shape, src, channels_last)
        max_pool2d_gather(src, indices, g, out)
        ctx.save_for_backward(indices)
        ctx.geometry = g
        ctx.src_channels_last = prefers_channels_last(src)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (indices,) = ctx.saved_tensors
        return MaxPool2dBackward.apply(grad_out, indices, ctx.geometry, ctx.src_channels_last), None, None, None


class AvgPool2dFunction(torch.autograd.Function):
    """Average pooling (strided or adaptive windows) on a batched ``(N, C, H, W)`` input. Only the
    geometry is saved for the backward, which is itself differentiable (:class:`AvgPool2dBackward`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, g: PoolGeometry, channels_last: bool) -> torch.Tensor:
        out = avg_pool2d_output(x, g, channels_last)
        ctx.geometry = g
        ctx.channels_last = channels_last
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        if backward_is_recorded():
            return AvgPool2dBackward.apply(grad_out, ctx.geometry, ctx.channels_last), None, None
        return avg_pool2d_input_grad(grad_out, ctx.geometry, ctx.channels_last), None, None


class AvgPool2dBackward(torch.autograd.Function):
    """The average-pooling input gradient as a differentiable op: linear, and its gradient is the average
    pooling of the incoming gradient."""

    @staticmethod
    def forward(ctx, grad_out: torch.Tensor, g: PoolGeometry, channels_last: bool) -> torch.Tensor:
        grad_in = avg_pool2d_input_grad(grad_out, g, channels_last)
        ctx.geometry = g
        ctx.out_channels_last = prefers_channels_last(grad_out)
        return grad_in

    @staticmethod
    def backward(ctx, grad_grad_in: torch.Tensor):
        return AvgPool2dFunction.apply(grad_grad_in, ctx.geometry, ctx.out_channels_last), None, None


# --------------------------------------------------------------------------------------------------------
# Functional entry points


def _batched(input: torch.Tensor) -> tuple[torch.Tensor, bool, bool]:
    """The 4-D view of ``input``, whether it was unbatched, and whether outputs are channels_last (torch's
    ``suggest_memory_format`` of the input; an unbatched input gives contiguous outputs)."""
    if input.dim() == 3:
        return input.unsqueeze(0), True, False
    return input, False, prefers_channels_last(input)


def _max_pool(input: torch.Tensor, g: PoolGeometry, return_indices: bool
              ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    x, unbatched, channels_last = _batched(input)
    if torch.compiler.is_compiling() and g.adaptive:
        out, indices = torch.ops.kernels.adaptive_max_pool2d(x, [g.P, g.Q], channels_last)
    elif torch.compiler.is_compiling():
        out, indices = torch.ops.kernels.max_pool2d(x, [g.kh, g.kw], [g.stride_h, g.stride_w],
                                                    [g.pad_h, g.pad_w], [g.dil_h, g.dil_w], g.ceil_mode,
                                                    channels_last)
    elif torch.is_grad_enabled() and x.requires_grad:
        out, indices = apply_function(MaxPool2dFunction, x, g, return_indices, channels_last)
    else:  # nothing to differentiate: the kernel without autograd's bookkeeping
        out, indices = max_pool2d_output(x, g, return_indices, channels_last)
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def _avg_pool(input: torch.Tensor, g: PoolGeometry) -> torch.Tensor:
    x, unbatched, channels_last = _batched(input)
    if torch.compiler.is_compiling():
        if g.adaptive:
            out = torch.ops.kernels.adaptive_avg_pool2d(x, [g.P, g.Q], channels_last)
        else:
            out = torch.ops.kernels.avg_pool2d(x, [g.kh, g.kw], [g.stride_h, g.stride_w], [g.pad_h, g.pad_w],
                                               g.ceil_mode, g.count_include_pad, g.divisor, channels_last)
    elif torch.is_grad_enabled() and x.requires_grad:
        out = apply_function(AvgPool2dFunction, x, g, channels_last)
    else:  # nothing to differentiate: the kernel without autograd's bookkeeping
        out = avg_pool2d_output(x, g, channels_last)
    return out.squeeze(0) if unbatched else out


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
    return _max_pool(input, g, return_indices)


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
    return _avg_pool(input, g)


@planned
def adaptive_avg_pool2d(input: torch.Tensor, output_size: int | Sequence[int | None]) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.adaptive_avg_pool2d``.

    input ``(N, C, H, W)`` or ``(C, H, W)``; ``output_size`` ``(P, Q)`` or one int, ``None`` keeping the
    input's size. Output row ``p`` averages rows ``[floor(p*H/P), ceil((p+1)*H/P))``. Output size 1 (global
    average pooling) is one reduction per plane.
    """
    if not isinstance(input, torch.Tensor):
        raise AttributeError(f"'{type(input).__name__}' object has no attribute 'size'")
    check_pool_input(input, "adaptive_avg_pool2d")
    g = adaptive_pool2d_geometry(input.shape, output_size, "adaptive_avg_pool2d")
    return _avg_pool(input, g)


@planned
def adaptive_max_pool2d(
    input: torch.Tensor, output_size: int | Sequence[int | None], return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.adaptive_max_pool2d``.

    input ``(N, C, H, W)`` or ``(C, H, W)``; returns ``(N, C, P, Q)`` (or ``(C, P, Q)``), and with
    ``return_indices`` the int64 flat indices ``h*W + w`` of the maxima.
    """
    if not isinstance(input, torch.Tensor):
        raise AttributeError(f"'{type(input).__name__}' object has no attribute 'size'")
    check_pool_input(input, "adaptive_max_pool2d")
    g = adaptive_pool2d_geometry(input.shape, output_size, "adaptive_max_pool2d")
    return _max_pool(input, g, bool(return_indices))
