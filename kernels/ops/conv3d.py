"""conv3d: the launchers of the implicit-GEMM kernels (forward, input gradient, weight gradient).

Layers, as for conv2d: ``kernels.jit.conv3d`` holds the Triton kernels; this module picks block
configurations, allocates outputs and launches; ``kernels.autograd.conv`` builds the autograd Functions and
the registered ops from these launchers, and ``kernels.functional.conv3d`` is the public entry point.
Depthwise problems (one input channel per group) go to the direct kernels of ``kernels.ops.depthwise3d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..autotune import layout_of, tunable
from ..jit.conv3d import conv3d_dgrad_kernel, conv3d_fwd_kernel, conv3d_wgrad_kernel
from ..launch import (
    KernelSpace,
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
from ..shapes import empty_nd
from ..shapes3d import ConvGeometry3d, conv3d_output_channels_last
from .depthwise3d import depthwise3d_dgrad, depthwise3d_fwd, depthwise3d_wgrad
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

# With TF32, the 128x64 tile keeps too few registers for the three-dimensional index arithmetic: it spills 8-40
# bytes on sm_90/sm_80, so TF32 launches keep to the tiles of at most 64x64 outputs (float32 problems only reach
# these tiles with TF32 on; without it they take the wide tiles).
_TF32 = VariantLimit(
    "tf32",
    applies=lambda constexprs: True,
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 64,
    dtypes=frozenset({torch.float32}),
)

# The input-gradient kernel with a bias (the transposed convolution's forward; a gradient has none) spills 8-32
# bytes on sm_90 with the 64x64 and 128x64 tiles: there it keeps to the tiles of at most 64x32 outputs.
_DGRAD_BIAS = VariantLimit(
    "bias",
    applies=lambda constexprs: bool(constexprs.get("HAS_BIAS")),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
)

# A fused epilogue that both reads a residual tile and stores the pre-activation tile needs more registers than
# the 128x64 and 64x64 tiles have left: there the forward keeps to the tiles of at most 64x32 outputs.
_PREACT_AND_RESIDUAL = VariantLimit(
    "preact+residual",
    applies=lambda constexprs: bool(constexprs.get("STORE_PREACT")) and bool(constexprs.get("HAS_RESIDUAL")),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
)
# The input-gradient kernel (the transposed convolution's forward) needs more registers for any epilogue that
# reads a residual or stores the pre-activation: it keeps to the tiles of at most 64x32 outputs there, and with
# a residual and the pre-activation, or a residual and gelu or silu, to those of at most 64x16.
_DGRAD_EPILOGUE = VariantLimit(
    "epilogue",
    applies=lambda constexprs: bool(constexprs.get("STORE_PREACT")) or bool(constexprs.get("HAS_RESIDUAL")),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
)
_DGRAD_HEAVY = VariantLimit(
    "heavy-epilogue",
    applies=lambda constexprs: (bool(constexprs.get("HAS_RESIDUAL"))
                                and (bool(constexprs.get("STORE_PREACT"))
                                     or constexprs.get("ACTIVATION") in ("gelu", "silu"))),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 16,
)

_GEMM_VALUES = ("T", "R", "S", "PRECISION", "ACC_DTYPE")
_EPILOGUE_GEMM_VALUES = (*_GEMM_VALUES, *EPILOGUE_VALUES)
_EPILOGUE = (VariantAxis("HAS_BIAS", (False, True)), *EPILOGUE_AXES)


def _epilogue_valid(variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
    return epilogue_variant_valid(variant)


def _taps(a: Mapping[str, Any]) -> dict[str, int]:
    return {"depth taps": a["T"], "row taps": a["R"], "column taps": a["S"]}


def _fwd_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    if a["FLAT"]:
        return {"reduction blocks": cdiv(a["CG"] * a["T"] * a["R"] * a["S"], a["BLOCK_K"])}
    return {**_taps(a), "channel blocks": cdiv(a["CG"], a["BLOCK_K"])}


def _dgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    phases = a["stride_d"] * a["stride_h"] * a["stride_w"]
    return {**_taps(a), "filter blocks": cdiv(a["KG"], a["BLOCK_K"]), "depth phases": a["stride_d"],
            "row phases": a["stride_h"], "column phases": a["stride_w"], "groups": grid[2] // phases}


def _wgrad_counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    if a["FLAT"]:
        return {"pixel blocks per split": a["PIX_PER_SPLIT"] // a["BLOCK_K"], "splits": a["SPLIT"],
                "groups": grid[2], "filter tiles": cdiv(a["KG"], a["BLOCK_M"]),
                "column tiles": cdiv(a["CG"] * a["T"] * a["R"] * a["S"], a["BLOCK_N"])}
    return {**_taps(a), "pixel blocks per split": a["PIX_PER_SPLIT"] // a["BLOCK_K"], "splits": a["SPLIT"],
            "groups": grid[2] // a["SPLIT"], "filter tiles": cdiv(a["KG"], a["BLOCK_M"]),
            "channel tiles": cdiv(a["CG"], a["BLOCK_N"])}


def _gemm_space(name: str, kernel, axes: tuple[VariantAxis, ...], counts, limits: tuple[VariantLimit, ...] = (),
                valid=None, values: tuple[str, ...] = _GEMM_VALUES) -> KernelSpace:
    return register_space(KernelSpace(name, kernel, list(GEMM_TILES), uses_dot=True,
                                      wide_configs=list(WIDE_TILES), limits=(_TF32, *limits), axes=axes,
                                      valid=valid, values=values, counts=counts))


# TF32 with an epilogue that reads a residual or computes gelu or silu spills 32-56 bytes on sm_80 at 64x64: the
# forward keeps to tiles of at most 64x32 outputs there. In float64, the input gradient with a residual and the
# stored pre-activation spills 16 bytes at 32x32 on sm_80: it keeps to 32x16.
_TF32_EPILOGUE = VariantLimit(
    "tf32-epilogue",
    applies=lambda constexprs: (bool(constexprs.get("HAS_RESIDUAL")) or bool(constexprs.get("STORE_PREACT"))
                                or constexprs.get("ACTIVATION") in ("gelu", "silu")),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
    dtypes=frozenset({torch.float32}),
)
_WIDE_DGRAD_HEAVY = VariantLimit(
    "float64-preact+residual",
    applies=lambda constexprs: bool(constexprs.get("STORE_PREACT")) and bool(constexprs.get("HAS_RESIDUAL")),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 32 * 16,
    dtypes=frozenset({torch.float64}),
)

# gelu and silu in the forward's epilogue: the 16-bit 128x64 and 64x64 tiles spill 8-16 bytes on sm_90 with
# Triton 3.8, and float64's 32x32 tile with Triton 3.6; the forward keeps to 64x32 (16-bit) and 32x16 (float64)
# there.
_CURVED = VariantLimit(
    "curved",
    applies=lambda constexprs: constexprs.get("ACTIVATION") in ("gelu", "silu"),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 64 * 32,
    dtypes=frozenset({torch.float16, torch.bfloat16}),
)
_WIDE_CURVED = VariantLimit(
    "float64-curved",
    applies=lambda constexprs: constexprs.get("ACTIVATION") in ("gelu", "silu"),
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 32 * 16,
    dtypes=frozenset({torch.float64}),
)
# float64's weight gradient spills 8 bytes at 32x32 on sm_90 with Triton 3.6: it keeps to 32x16.
_WIDE_WGRAD = VariantLimit(
    "float64",
    applies=lambda constexprs: True,
    allows=lambda config: config["BLOCK_M"] * config["BLOCK_N"] <= 32 * 16,
    dtypes=frozenset({torch.float64}),
)

# The flat reduction runs in 16-bit dtypes only: in float32 and float64 LLVM packs the 2-D masks of the forward
# and the weight gradient into boolean vectors whose shuffles leave an 8-byte stack frame in sm_90 compiles
# (the ahead-of-time check); those dtypes keep the tap loop.
_FLAT_DTYPES = (torch.float16, torch.bfloat16)


def _flat_dtype_valid(variant: Mapping[str, Any], dtype: torch.dtype) -> bool:
    return flat_valid(variant) and (not variant["FLAT"] or dtype in _FLAT_DTYPES)


def _fwd_valid(variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
    return _epilogue_valid(variant, dtype, tf32) and _flat_dtype_valid(variant, dtype)


FWD = _gemm_space("conv3d_fwd_kernel", conv3d_fwd_kernel, (*_EPILOGUE, FLAT), _fwd_counts,
                  (_PREACT_AND_RESIDUAL, _TF32_EPILOGUE, _CURVED, _WIDE_CURVED), _fwd_valid, _EPILOGUE_GEMM_VALUES)
DGRAD = _gemm_space("conv3d_dgrad_kernel", conv3d_dgrad_kernel, _EPILOGUE, _dgrad_counts,
                    (_DGRAD_BIAS, _DGRAD_EPILOGUE, _DGRAD_HEAVY, _WIDE_DGRAD_HEAVY), _epilogue_valid,
                    _EPILOGUE_GEMM_VALUES)
WGRAD = _gemm_space("conv3d_wgrad_kernel", conv3d_wgrad_kernel, (FLAT,), _wgrad_counts, (_WIDE_WGRAD,),
                    valid=lambda variant, dtype, tf32: _flat_dtype_valid(variant, dtype))


def _common_constexprs(g: ConvGeometry3d, dtype: torch.dtype) -> dict:
    return {"T": g.T, "R": g.R, "S": g.S, "PRECISION": dot_precision(dtype), "ACC_DTYPE": tl_acc_dtype(dtype)}


def _conv_params(g: ConvGeometry3d) -> tuple[int, ...]:
    return (*g.stride, *g.padding, *g.dilation)


@tunable
def conv3d_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: ConvGeometry3d,
                   out: torch.Tensor, epilogue: Epilogue = PLAIN, residual: torch.Tensor | None = None,
                   preact: torch.Tensor | None = None) -> torch.Tensor:
    """``out (N, K, Z, P, Q) = conv3d(x (N, C, D, H, W), weight (K, C/groups, T, R, S)) + bias``, then
    ``epilogue`` (``residual`` and ``preact``, with out's strides, are its extra input and output); out is
    overwritten."""
    if g.is_depthwise:
        depthwise3d_fwd(x, weight, bias, g, out, epilogue, residual, preact)
        return out
    CG, KG = g.channels_per_group, g.filters_per_group
    zpq = g.Z * g.P * g.Q
    flat = (flat_reduction(CG, g.T * g.R * g.S) and residual is None and preact is None
            and x.dtype in _FLAT_DTYPES)
    variant = {"HAS_BIAS": bias is not None, **epilogue_arguments(epilogue, out, residual, preact)[1], "FLAT": flat}
    config = pick_tiles(FWD, x.dtype, g.N * zpq, KG, CG * g.T * g.R * g.S, layout_of(x), variant)
    tf32 = tf32_enabled(x.dtype)
    constexprs = {**variant, **_common_constexprs(g, x.dtype)}
    for n0, n1 in batch_chunks(g.N, zpq):
        rows = (n1 - n0) * zpq
        if rows == 0 or g.K == 0:
            continue
        xs, ys = batch_rows(x, n0, n1), batch_rows(out, n0, n1)
        extra, _ = epilogue_arguments(epilogue, ys, batch_rows(residual, n0, n1), batch_rows(preact, n0, n1))
        grid = (cdiv(rows, config["BLOCK_M"]), cdiv(KG, config["BLOCK_N"]), g.groups)
        scalars = (n1 - n0, g.D, g.H, g.W, g.Z, g.P, g.Q, CG, KG, *kernel_strides(xs), *kernel_strides(weight),
                   *kernel_strides(ys), bias_stride(bias), *_conv_params(g))
        launch(FWD, grid, (xs, weight, bias if bias is not None else xs, ys, *extra, *scalars), config, x.dtype,
               tf32, **constexprs)
    return out


@tunable
def conv3d_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, g: ConvGeometry3d, grad_in: torch.Tensor,
                      bias: torch.Tensor | None = None, epilogue: Epilogue = PLAIN,
                      residual: torch.Tensor | None = None, preact: torch.Tensor | None = None) -> torch.Tensor:
    """``grad_in (N, C, D, H, W)`` of a conv3d from ``grad_out (N, K, Z, P, Q)``; grad_in is overwritten.

    Also the forward of the transposed convolution, which adds ``bias (C,)`` and may fuse an ``epilogue``
    (``residual`` and ``preact`` with grad_in's strides).
    """
    if g.is_depthwise:
        depthwise3d_dgrad(grad_out, weight, g, grad_in, bias, epilogue, residual, preact)
        return grad_in
    CG, KG = g.channels_per_group, g.filters_per_group
    dp, hp, wp = cdiv(g.D, g.stride_d), cdiv(g.H, g.stride_h), cdiv(g.W, g.stride_w)
    per_sample = dp * hp * wp
    variant = {"HAS_BIAS": bias is not None, **epilogue_arguments(epilogue, grad_in, residual, preact)[1]}
    config = pick_tiles(DGRAD, grad_out.dtype, g.N * per_sample, CG, KG * g.T * g.R * g.S,
                         layout_of(grad_out), variant)
    tf32 = tf32_enabled(grad_out.dtype)
    constexprs = {**variant, **_common_constexprs(g, grad_out.dtype)}
    for n0, n1 in batch_chunks(g.N, per_sample):
        rows = (n1 - n0) * per_sample
        if rows == 0 or CG == 0:
            continue
        dys, dxs = batch_rows(grad_out, n0, n1), batch_rows(grad_in, n0, n1)
        extra, _ = epilogue_arguments(epilogue, dxs, batch_rows(residual, n0, n1), batch_rows(preact, n0, n1))
        grid = (cdiv(rows, config["BLOCK_M"]), cdiv(CG, config["BLOCK_N"]),
                g.groups * g.stride_d * g.stride_h * g.stride_w)
        scalars = (n1 - n0, g.D, g.H, g.W, g.Z, g.P, g.Q, CG, KG, dp, hp, wp, *kernel_strides(dys),
                   *kernel_strides(weight), *kernel_strides(dxs), bias_stride(bias), *_conv_params(g))
        launch(DGRAD, grid, (dys, weight, bias if bias is not None else dys, dxs, *extra, *scalars), config,
               grad_out.dtype, tf32, **constexprs)
    return grad_in


@tunable
def conv3d_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, g: ConvGeometry3d) -> torch.Tensor:
    """``grad_weight (K, C/groups, T, R, S)`` of a conv3d from ``grad_out (N, K, Z, P, Q)`` and
    ``x (N, C, D, H, W)``, contiguous. Split-K over output pixels into a float32/float64 buffer, summed in a
    fixed order (deterministic)."""
    if g.is_depthwise:
        return depthwise3d_wgrad(grad_out, x, g)
    CG, KG = g.channels_per_group, g.filters_per_group
    grad_w = torch.empty((g.K, CG, g.T, g.R, g.S), dtype=x.dtype, device=x.device)
    if grad_w.numel() == 0:
        return grad_w
    zpq = g.Z * g.P * g.Q
    chunks = batch_chunks(g.N, zpq)
    taps = g.T * g.R * g.S
    # columns (c, t, r, s) in one launch axis, else (channel, tap) on two
    flat = flat_reduction(CG, taps) and x.dtype in _FLAT_DTYPES
    cols, taps = (CG * taps, 1) if flat else (CG, taps)
    config = pick_tiles(WGRAD, x.dtype, KG, cols, g.N * zpq, layout_of(x), {"FLAT": flat})
    tf32 = tf32_enabled(x.dtype)
    tiles = cdiv(KG, config["BLOCK_M"]) * cdiv(cols, config["BLOCK_N"])
    split = choose_split(tiles * taps * g.groups, g.N * zpq, config["BLOCK_K"], x.device)
    partial = torch.empty((len(chunks) * split, *grad_w.shape), dtype=acc_dtype(x.dtype), device=x.device)
    constexprs = {**_common_constexprs(g, x.dtype), "FLAT": flat}
    for index, (n0, n1) in enumerate(chunks):
        npix = (n1 - n0) * zpq
        pix_per_split = cdiv(cdiv(max(npix, 1), split), config["BLOCK_K"]) * config["BLOCK_K"]
        dys, xs = batch_rows(grad_out, n0, n1), batch_rows(x, n0, n1)
        grid = (tiles, split, g.groups) if flat else (tiles, taps, g.groups * split)
        scalars = (n1 - n0, g.D, g.H, g.W, g.Z, g.P, g.Q, CG, KG, g.K, pix_per_split, split, *kernel_strides(dys),
                   *kernel_strides(xs), *_conv_params(g))
        launch(WGRAD, grid, (dys, xs, partial[index * split:(index + 1) * split], *scalars), config, x.dtype,
               tf32, **constexprs)
    return sum_splits(partial.view(partial.shape[0], -1), grad_w)


def conv3d_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  residual: torch.Tensor | None, g: ConvGeometry3d, epilogue: Epilogue = PLAIN,
                  channels_last: bool | None = None, store_preact: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A new ``(N, K, Z, P, Q)`` output of conv3d with its fused epilogue (layout: ``channels_last``
    (channels_last_3d), None for torch's rule), and the pre-activation beside it when ``store_preact`` (else
    None)."""
    if channels_last is None:
        channels_last = conv3d_output_channels_last(x, weight)
    out = empty_nd((g.N, g.K, g.Z, g.P, g.Q), x, channels_last)
    preact = torch.empty_like(out) if store_preact else None
    residual = None if residual is None else with_strides_of(residual, out)
    conv3d_forward(x, weight, bias, g, out, epilogue, residual, preact)
    return out, preact


def input_grad(grad_out: torch.Tensor, weight: torch.Tensor, g: ConvGeometry3d, channels_last: bool
               ) -> torch.Tensor:
    """A new ``(N, C, D, H, W)`` tensor (channels_last_3d or contiguous): the input gradient of a conv3d."""
    grad_in = empty_nd((g.N, g.C, g.D, g.H, g.W), grad_out, channels_last)
    return conv3d_input_grad(grad_out, weight, g, grad_in)


def conv_transpose3d_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            residual: torch.Tensor | None, g: ConvGeometry3d, epilogue: Epilogue = PLAIN,
                            channels_last: bool | None = None, store_preact: bool = False
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A new ``(N, C_out, D_out, H_out, W_out)`` output of conv_transpose3d of ``x (N, C_in, D, H, W)`` by
    ``weight (C_in, C_out/groups, T, R, S)``: the input gradient of the convolution ``g`` that it transposes,
    with ``x`` as that convolution's output gradient and ``bias (C_out,)`` and ``epilogue`` fused; the
    pre-activation beside it when ``store_preact`` (else None)."""
    if channels_last is None:
        channels_last = conv3d_output_channels_last(x, weight)
    out = empty_nd((g.N, g.C, g.D, g.H, g.W), x, channels_last)
    preact = torch.empty_like(out) if store_preact else None
    residual = None if residual is None else with_strides_of(residual, out)
    conv3d_input_grad(x, weight, g, out, bias, epilogue, residual, preact)
    return out, preact
