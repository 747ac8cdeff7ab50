"""conv2d: the launchers of the implicit-GEMM kernels (forward, input gradient, weight gradient).

Layers: ``kernels.jit.conv2d`` holds the Triton kernels; this module picks block configurations, allocates
outputs and launches; ``kernels.autograd.conv`` builds the autograd Functions and the registered op from
these launchers, and ``kernels.functional.conv2d`` is the public entry point. Depthwise problems (one input
channel per group) go to the direct kernels of ``kernels.ops.depthwise``; stride-1 16-bit NHWC forwards, when
the Hopper path is on, to ``kernels.ops.conv2d_hopper``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..autotune import decisions_generation, layout_of, tunable
from ..jit.conv2d import conv2d_dgrad_kernel, conv2d_fwd_kernel, conv2d_wgrad_kernel
from ..launch import (
    KernelConfig,
    KernelSpace,
    LaunchPlan,
    PlanCache,
    VariantAxis,
    VariantLimit,
    batch_chunks,
    batch_rows,
    bias_stride,
    cdiv,
    dot_precision,
    kernel_strides,
    launch,
    register_space,
    tf32_enabled,
)
from ..shapes import ConvGeometry, conv_output_channels_last, empty_nd
from . import conv2d_hopper as hopper
from .depthwise import depthwise_dgrad, depthwise_fwd, depthwise_wgrad
from .epilogue import (
    EPILOGUE_AXES,
    EPILOGUE_VALUES,
    PLAIN,
    Epilogue,
    epilogue_arguments,
    epilogue_variant_valid,
    with_strides_of,
)
from .gemm_tiles import FLAT, GEMM_TILES, WIDE_TILES, flat_reduction, flat_valid, pick_tiles
from .reduce import acc_dtype, choose_split, sum_splits, tl_acc_dtype

# Large tiles, launched only by the aligned variant (VEC == 16, see kernels.jit.conv2d): with unit channel strides
# and divisibility known they compile without spills; in the general variant they spill hundreds of bytes.
_ALIGNED_TILES = [
    KernelConfig.of(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, num_warps=8, num_stages=3),
    KernelConfig.of(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, num_warps=4, num_stages=3),
]


_UNALIGNED = VariantLimit(
    "unaligned",
    applies=lambda constexprs: constexprs.get("VEC", 1) == 1,
    allows=lambda config: config not in _ALIGNED_TILES,
)
# A fused epilogue that both reads a residual tile and stores the pre-activation tile needs more registers than
# the general variant's 128x64 and 64x64 tiles have left (they spill 8-104 bytes on sm_80/sm_90): there it
# keeps to the tiles of at most 64x32 outputs. The aligned variant compiles clean with every tile.
_PREACT_AND_RESIDUAL = VariantLimit(
    "preact+residual",
    applies=lambda constexprs: (bool(constexprs.get("STORE_PREACT")) and bool(constexprs.get("HAS_RESIDUAL"))
                                and constexprs.get("VEC", 1) == 1),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
)


# The flat forward in float64 spills 8 bytes on sm_90 at 32x32 (the wide tiles' largest): it keeps to 32x16.
_FLAT_FLOAT64 = VariantLimit(
    "flat-float64",
    applies=lambda constexprs: bool(constexprs.get("FLAT")),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 32 * 16,
    dtypes=frozenset({torch.float64}),
)
# The flat forward with TF32 leaves an 8-byte stack frame on sm_90 with Triton 3.8 on the 64x32 and 64x16 tiles
# (3x3 kernels): it keeps to the 64x64 and 128x64 ones.
_FLAT_TF32 = VariantLimit(
    "flat-tf32",
    applies=lambda constexprs: bool(constexprs.get("FLAT")) and constexprs.get("PRECISION") == "tf32",
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] >= 64 * 64,
    dtypes=frozenset({torch.float32}),
)
# The TF32 forward reading a residual leaves an 8-byte stack frame on sm_80 with Triton 3.8 on the 64x32 tile:
# it keeps off that tile.
_TF32_RESIDUAL = VariantLimit(
    "tf32-residual",
    applies=lambda constexprs: bool(constexprs.get("HAS_RESIDUAL")) and constexprs.get("PRECISION") == "tf32",
    allows=lambda config: not (config["BLOCK_M"] == 64 and config["BLOCK_N"] == 32),
    dtypes=frozenset({torch.float32}),
)
# The TF32 weight gradient of the general tap loop spills 8 bytes on sm_80 at 64x32 with a 1x1 kernel (Triton
# 3.9), and 16 bytes at 64x64 (Triton 3.8): it keeps off those tiles (found when the compile check first
# compiled a 1x1 TF32 weight gradient).
_TF32_WGRAD = VariantLimit(
    "tf32-wgrad",
    applies=lambda constexprs: constexprs.get("VEC", 1) == 1 and not constexprs.get("FLAT"),
    allows=lambda config: not (config["BLOCK_M"] == 64 and config["BLOCK_N"] in (32, 64)),
    dtypes=frozenset({torch.float32}),
)

ALIGN = 16  # the unit of the aligned variant

# Variant axes. VEC lists the aligned unit first: the general variant (VEC == 1) is the heavier one. FLAT: the
# reduction flattened over (c, r, s) for a few channels per group (kernels.jit.conv2d, ops.gemm_tiles).
_VEC = VariantAxis("VEC", (ALIGN, 1))
_EPILOGUE_AXES = (VariantAxis("HAS_BIAS", (False, True)), *EPILOGUE_AXES, _VEC)
_GEMM_VALUES = ("R", "S", "PRECISION", "ACC_DTYPE")


def _aligned_dtype_valid(variant: Mapping[str, Any], dtype: torch.dtype) -> bool:
    return variant["VEC"] == 1 or dtype in (torch.float16, torch.bfloat16)


def _epilogue_gemm_valid(variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
    return _aligned_dtype_valid(variant, dtype) and epilogue_variant_valid(variant)


def _fwd_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    if a["FLAT"]:
        return {"reduction blocks": cdiv(a["CG"] * a["R"] * a["S"], a["BLOCK_K"])}
    return {"taps": a["R"] * a["S"], "channel blocks": cdiv(a["CG"] * a["VEC"], a["BLOCK_K"])}


def _dgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    phases = a["stride_h"] * a["stride_w"]
    return {"taps": a["R"] * a["S"], "filter blocks": cdiv(a["KG"] * a["VEC"], a["BLOCK_K"]),
            "row phases": a["stride_h"], "column phases": a["stride_w"], "groups": grid[2] // phases}


def _wgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    if a["FLAT"]:
        return {"pixel blocks per split": a["PIX_PER_SPLIT"] // a["BLOCK_K"], "splits": a["SPLIT"],
                "groups": grid[2], "filter tiles": cdiv(a["KG"], a["BLOCK_M"]),
                "column tiles": cdiv(a["CG"] * a["R"] * a["S"], a["BLOCK_N"])}
    return {"pixel blocks per split": a["PIX_PER_SPLIT"] // a["BLOCK_K"], "splits": a["SPLIT"],
            "groups": grid[2] // a["SPLIT"], "filter tiles": cdiv(a["KG"] * a["VEC"], a["BLOCK_M"]),
            "channel tiles": cdiv(a["CG"] * a["VEC"], a["BLOCK_N"])}


# The input-gradient kernel (also the transposed convolution's forward) in the general variant needs more
# registers for any epilogue that reads a residual or stores the pre-activation: its 128x64 and 64x64 tiles
# spill 8-72 bytes on sm_80/sm_90 there, and with a residual and the pre-activation, or a residual and gelu or
# silu, its 64x32 tile too (found by the ahead-of-time check of every declared variant).
_DGRAD_EPILOGUE = VariantLimit(
    "epilogue",
    applies=lambda constexprs: ((bool(constexprs.get("STORE_PREACT")) or bool(constexprs.get("HAS_RESIDUAL")))
                                and constexprs.get("VEC", 1) == 1),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
)
_DGRAD_HEAVY = VariantLimit(
    "heavy-epilogue",
    applies=lambda constexprs: (bool(constexprs.get("HAS_RESIDUAL")) and constexprs.get("VEC", 1) == 1
                                and (bool(constexprs.get("STORE_PREACT"))
                                     or constexprs.get("ACTIVATION") in ("gelu", "silu"))),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 16,
)


def _gemm_space(name: str, kernel, limits: tuple[VariantLimit, ...], axes: tuple[VariantAxis, ...], valid,
                values: tuple[str, ...], counts) -> KernelSpace:
    return register_space(KernelSpace(name, kernel, GEMM_TILES + _ALIGNED_TILES, uses_dot=True,
                                      wide_configs=list(WIDE_TILES), limits=limits, axes=axes, valid=valid,
                                      values=values, counts=counts))


FWD = _gemm_space("conv2d_fwd_kernel", conv2d_fwd_kernel,
                  (_UNALIGNED, _PREACT_AND_RESIDUAL, _FLAT_FLOAT64, _FLAT_TF32, _TF32_RESIDUAL),
                  (*_EPILOGUE_AXES, FLAT),
                  lambda variant, dtype, tf32: _epilogue_gemm_valid(variant, dtype, tf32) and flat_valid(variant),
                  (*_GEMM_VALUES, *EPILOGUE_VALUES), _fwd_counts)
DGRAD = _gemm_space("conv2d_dgrad_kernel", conv2d_dgrad_kernel,
                    (_UNALIGNED, _DGRAD_EPILOGUE, _DGRAD_HEAVY), _EPILOGUE_AXES, _epilogue_gemm_valid,
                    (*_GEMM_VALUES, *EPILOGUE_VALUES), _dgrad_counts)
WGRAD = _gemm_space("conv2d_wgrad_kernel", conv2d_wgrad_kernel, (_UNALIGNED, _TF32_WGRAD), (_VEC, FLAT),
                    lambda variant, dtype, tf32: _aligned_dtype_valid(variant, dtype) and flat_valid(variant),
                    _GEMM_VALUES, _wgrad_counts)


def _vector_unit(dtype: torch.dtype, counts: tuple[int, ...], *tensors: torch.Tensor) -> int:
    """``ALIGN`` when the aligned kernel variant applies (``kernels.jit.conv2d``): a 16-bit dtype, each 4-D
    tensor's channel axis (dim 1) contiguous, and its other strides (those of dimensions longer than 1) and
    ``counts`` multiples of ``ALIGN`` that stay 32-bit; else 1. (TF32 stays general: its aligned 128x64x64
    tiles spill, and even a 64x32 tile keeps an 8-byte stack frame on sm_90.)"""
    if dtype not in (torch.float16, torch.bfloat16) or any(c % ALIGN for c in counts):
        return 1
    for t in tensors:
        shape, strides = t.shape, t.stride()
        if shape[1] > 1 and strides[1] != 1:
            return 1
        for dim in (0, 2, 3):
            if shape[dim] > 1 and (strides[dim] % ALIGN or strides[dim] >= 2**31):
                return 1
    return ALIGN


def _kernel_strides(t: torch.Tensor, unit: int) -> tuple[int, ...]:
    """The four strides a kernel gets (0 for a dimension of size 1: ``kernels.launch.kernel_strides``), in the
    aligned variant the non-channel ones divided by the unit (the kernel multiplies them back; it takes the
    channel stride as 1)."""
    n, c, h, w = kernel_strides(t)
    if unit == 1:
        return n, c, h, w
    return n // unit, 1, h // unit, w // unit


def _common_constexprs(g: ConvGeometry, dtype: torch.dtype) -> dict:
    return {"R": g.R, "S": g.S, "PRECISION": dot_precision(dtype), "ACC_DTYPE": tl_acc_dtype(dtype)}


def _conv_params(g: ConvGeometry) -> tuple[int, ...]:
    return (g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w)


_FWD_PLANS, _DGRAD_PLANS, _WGRAD_PLANS = PlanCache(), PlanCache(), PlanCache()


def _plan_key(chunks: list[tuple[int, int]], g: ConvGeometry, epilogue: Epilogue,
              *tensors: torch.Tensor | bool | None) -> tuple | None:
    """The launch-plan key of a problem: geometry, epilogue, each tensor's strides (None for an absent one;
    flags as they are), the first one's dtype and device, TF32, and the autotuner's decisions generation.
    None, so no plan is used or kept, while configuration choices are in flux and when the batch is split
    into several chunks (plans hold one launch)."""
    generation = decisions_generation()
    if generation is None or len(chunks) != 1:
        return None
    first = tensors[0]
    described = tuple(t.stride() if isinstance(t, torch.Tensor) else t for t in tensors)
    return (generation, g, epilogue, first.dtype, first.device, tf32_enabled(first.dtype), described)


@tunable
def conv2d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: ConvGeometry,
                   out: torch.Tensor, epilogue: Epilogue = PLAIN, residual: torch.Tensor | None = None,
                   preact: torch.Tensor | None = None) -> torch.Tensor:
    """``out (N, K, P, Q) = conv2d(x (N, C, H, W), weight (K, C/groups, R, S)) + bias``, then ``epilogue``
    (``residual`` and ``preact``, with out's strides, are its extra input and output); out is overwritten."""
    if g.is_depthwise:
        depthwise_fwd(x, weight, bias, g, out, epilogue, residual, preact)
        return out
    if hopper.applies(x, weight, g, out):
        return hopper.conv2d_forward_tma(x, weight, bias, g, out, epilogue, residual, preact)
    chunks = batch_chunks(g.N, g.P * g.Q)
    key = _plan_key(chunks, g, epilogue, x, weight, bias, out, residual is not None, preact is not None)
    plan = _FWD_PLANS.get(key)
    if plan is not None:
        tensors = (x, weight, bias if bias is not None else x, out, *epilogue_arguments(epilogue, out, residual,
                                                                                         preact)[0])
        launch(FWD, plan.grid, (*tensors, *plan.scalars), plan.config, x.dtype, plan.tf32, **plan.constexprs)
        return out
    CG, KG = g.channels_per_group, g.filters_per_group
    unit = _vector_unit(x.dtype, (CG, KG), x, weight, out)
    flat = flat_reduction(CG, g.R * g.S, unit) and residual is None and preact is None
    variant = {**epilogue_arguments(epilogue, out, residual, preact)[1], "VEC": unit, "FLAT": flat,
               "PRECISION": dot_precision(x.dtype)}
    config = pick_tiles(FWD, x.dtype, g.N * g.P * g.Q, KG, CG * g.R * g.S, layout_of(x), variant)
    tf32 = tf32_enabled(x.dtype)
    for n0, n1 in chunks:
        rows = (n1 - n0) * g.P * g.Q
        if rows == 0 or g.K == 0:
            continue
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        extra, fused = epilogue_arguments(epilogue, ys, batch_rows(residual, n0, n1),
                                          batch_rows(preact, n0, n1))
        grid = (cdiv(rows, config["BLOCK_M"]), cdiv(KG, config["BLOCK_N"]), g.groups)
        tensors = (xs, weight, bias if bias is not None else xs, ys, *extra)
        scalars = (n1 - n0, g.H, g.W, g.P, g.Q, CG // unit, KG // unit,
                   *_kernel_strides(xs, unit), *_kernel_strides(weight, unit), *_kernel_strides(ys, unit),
                   bias_stride(bias), *_conv_params(g))
        constexprs = {"HAS_BIAS": bias is not None, **_common_constexprs(g, x.dtype), **fused, "VEC": unit,
                      "FLAT": flat}
        launch(FWD, grid, (*tensors, *scalars), config, x.dtype, tf32, **constexprs)
        _FWD_PLANS.put(key, LaunchPlan(grid, scalars, config, tf32, constexprs))
    return out


@tunable
def conv2d_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, g: ConvGeometry,
                      grad_in: torch.Tensor, bias: torch.Tensor | None = None, epilogue: Epilogue = PLAIN,
                      residual: torch.Tensor | None = None, preact: torch.Tensor | None = None) -> torch.Tensor:
    """``grad_in (N, C, H, W)`` of a conv2d from ``grad_out (N, K, P, Q)``; grad_in is overwritten.

    Also the forward of the transposed convolution, which adds ``bias (C,)`` and may fuse an ``epilogue``
    (``residual`` and ``preact`` with grad_in's strides).
    """
    if g.is_depthwise:
        depthwise_dgrad(grad_out, weight, g, grad_in, bias, epilogue, residual, preact)
        return grad_in
    hp, wp = cdiv(g.H, g.stride_h), cdiv(g.W, g.stride_w)
    chunks = batch_chunks(g.N, hp * wp)
    key = _plan_key(chunks, g, epilogue, grad_out, weight, bias, grad_in, residual is not None, preact is not None)
    plan = _DGRAD_PLANS.get(key)
    if plan is not None:
        tensors = (grad_out, weight, bias if bias is not None else grad_out, grad_in,
                   *epilogue_arguments(epilogue, grad_in, residual, preact)[0])
        launch(DGRAD, plan.grid, (*tensors, *plan.scalars), plan.config, grad_out.dtype, plan.tf32,
               **plan.constexprs)
        return grad_in
    CG, KG = g.channels_per_group, g.filters_per_group
    unit = _vector_unit(grad_out.dtype, (CG, KG), grad_out, weight, grad_in)
    variant = {**epilogue_arguments(epilogue, grad_in, residual, preact)[1], "VEC": unit}
    config = pick_tiles(DGRAD, grad_out.dtype, g.N * hp * wp, CG, KG * g.R * g.S, layout_of(grad_out), variant)
    tf32 = tf32_enabled(grad_out.dtype)
    for n0, n1 in chunks:
        rows = (n1 - n0) * hp * wp
        if rows == 0 or CG == 0:
            continue
        dys, dxs = batch_rows(grad_out, n0, n1), batch_rows(grad_in, n0, n1)
        extra, fused = epilogue_arguments(epilogue, dxs, batch_rows(residual, n0, n1),
                                          batch_rows(preact, n0, n1))
        grid = (cdiv(rows, config["BLOCK_M"]), cdiv(CG, config["BLOCK_N"]),
                g.groups * g.stride_h * g.stride_w)
        tensors = (dys, weight, bias if bias is not None else dys, dxs, *extra)
        scalars = (n1 - n0, g.H, g.W, g.P, g.Q, CG // unit, KG // unit, hp, wp,
                   *_kernel_strides(dys, unit), *_kernel_strides(weight, unit), *_kernel_strides(dxs, unit),
                   bias_stride(bias), *_conv_params(g))
        constexprs = {"HAS_BIAS": bias is not None, **_common_constexprs(g, grad_out.dtype), **fused, "VEC": unit}
        launch(DGRAD, grid, (*tensors, *scalars), config, grad_out.dtype, tf32, **constexprs)
        _DGRAD_PLANS.put(key, LaunchPlan(grid, scalars, config, tf32, constexprs))
    return grad_in


@tunable
def conv2d_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, g: ConvGeometry) -> torch.Tensor:
    """``grad_weight (K, C/groups, R, S)`` of a conv2d from ``grad_out (N, K, P, Q)`` and ``x (N, C, H, W)``."""
    if g.is_depthwise:
        return depthwise_wgrad(grad_out, x, g)
    CG, KG = g.channels_per_group, g.filters_per_group
    grad_w = torch.empty((g.K, CG, g.R, g.S), dtype=x.dtype, device=x.device)
    if grad_w.numel() == 0:
        return grad_w
    chunks = batch_chunks(g.N, g.P * g.Q)
    key = _plan_key(chunks, g, PLAIN, grad_out, x)
    plan = _WGRAD_PLANS.get(key)
    if plan is not None:
        split = plan.grid[1] if plan.constexprs["FLAT"] else plan.grid[2] // g.groups
        partial = torch.empty((split, *grad_w.shape), dtype=acc_dtype(x.dtype), device=x.device)
        launch(WGRAD, plan.grid, (grad_out, x, partial, *plan.scalars), plan.config, x.dtype, plan.tf32,
               **plan.constexprs)
        return sum_splits(partial.view(split, -1), grad_w)
    unit = _vector_unit(x.dtype, (CG, KG), grad_out, x)
    flat = flat_reduction(CG, g.R * g.S, unit)  # columns (c, r, s) in one launch axis, else (channel, tap) on two
    cols, taps = (CG * g.R * g.S, 1) if flat else (CG, g.R * g.S)
    config = pick_tiles(WGRAD, x.dtype, KG, cols, g.N * g.P * g.Q, layout_of(x), {"VEC": unit, "FLAT": flat})
    tf32 = tf32_enabled(x.dtype)
    tiles = cdiv(KG, config["BLOCK_M"]) * cdiv(cols, config["BLOCK_N"])
    split = choose_split(tiles * taps * g.groups, g.N * g.P * g.Q, config["BLOCK_K"], x.device)
    partial = torch.empty((len(chunks) * split, *grad_w.shape), dtype=acc_dtype(x.dtype), device=x.device)
    for index, (n0, n1) in enumerate(chunks):
        npq = (n1 - n0) * g.P * g.Q
        pix_per_split = cdiv(cdiv(max(npq, 1), split), config["BLOCK_K"]) * config["BLOCK_K"]
        dys, xs = batch_rows(grad_out, n0, n1), batch_rows(x, n0, n1)
        grid = (tiles, split, g.groups) if flat else (tiles, taps, g.groups * split)
        scalars = (n1 - n0, g.H, g.W, g.P, g.Q, CG // unit, KG // unit, g.K, pix_per_split, split,
                   *_kernel_strides(dys, unit), *_kernel_strides(xs, unit), *_conv_params(g))
        constexprs = {**_common_constexprs(g, x.dtype), "VEC": unit, "FLAT": flat}
        launch(WGRAD, grid, (dys, xs, partial[index * split:(index + 1) * split], *scalars), config, x.dtype, tf32,
               **constexprs)
        _WGRAD_PLANS.put(key, LaunchPlan(grid, scalars, config, tf32, constexprs))
    return sum_splits(partial.view(partial.shape[0], -1), grad_w)


def conv2d_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None,
                  g: ConvGeometry, epilogue: Epilogue = PLAIN, channels_last: bool | None = None,
                  store_preact: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A new ``(N, K, P, Q)`` output of conv2d with its fused epilogue (layout: ``channels_last``, None for
    torch's rule), and the pre-activation beside it when ``store_preact`` (else None)."""
    if channels_last is None:
        channels_last = conv_output_channels_last(x, weight)
    out = empty_nd((g.N, g.K, g.P, g.Q), x, channels_last)
    preact = torch.empty_like(out) if store_preact else None
    residual = None if residual is None else with_strides_of(residual, out)
    conv2d_forward(x, weight, bias, g, out, epilogue, residual, preact)
    return out, preact


def input_grad(grad_out: torch.Tensor, weight: torch.Tensor, g: ConvGeometry, channels_last: bool) -> torch.Tensor:
    """A new ``(N, C, H, W)`` tensor (channels_last or contiguous): the input gradient of a conv2d."""
    grad_in = empty_nd((g.N, g.C, g.H, g.W), grad_out, channels_last)
    return conv2d_input_grad(grad_out, weight, g, grad_in)
