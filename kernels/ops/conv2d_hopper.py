"""conv2d's Hopper path: the stride-1 forward with both operands loaded by TMA and multiplied by warpgroup MMA
(``conv2d_fwd_tma_kernel`` in ``kernels.jit.conv2d``).

It applies to 16-bit NHWC inputs with KRSC (channels_last) weights, ``groups == 1``, stride 1 (any padding
and dilation), input and output channel counts that are multiples of 8 (an output with channel stride 1 and
other strides multiples of 8), on an sm_90 GPU or under the interpreter, and only
while switched on: ``KERNELS_HOPPER_TMA=1`` in the environment when the package is imported, or
:func:`hopper_tma` in code (part of every call plan's key). It is off by default until GPU measurements say
when it is faster than the pointer kernel (``python -m bench.gpu_session`` measures both). The TMA
descriptors are made on the device, from the pointers, shapes and strides the launch passes, so a launch is
plain arguments that a call plan can repeat; Triton then needs a scratch allocator for them, which this
module sets on the first launch on a GPU (torch's caching allocator).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from .._runtime import INTERPRETING
from ..autotune import layout_of, select_config
from ..call_plans import KEY_SWITCHES
from ..jit.conv2d import conv2d_fwd_tma_kernel
from ..launch import (
    KernelConfig,
    KernelSpace,
    VariantAxis,
    VariantLimit,
    cdiv,
    closest_config,
    launch,
    register_space,
)
from ..shapes import ConvGeometry
from .epilogue import EPILOGUE_AXES, EPILOGUE_VALUES, Epilogue, epilogue_arguments, epilogue_variant_valid

_SIXTEEN_BIT = (torch.float16, torch.bfloat16)

# BLOCK_H x BLOCK_W output pixels (BLOCK_H == 1: a row of pixels, whose box the MMA reads straight from shared
# memory; BLOCK_H > 1 suits small images, at the cost of an operand reshaped through registers) by BLOCK_N
# filters, BLOCK_K channels per step.
_TILES = [
    KernelConfig.of(BLOCK_H=1, BLOCK_W=128, BLOCK_N=128, BLOCK_K=64, num_warps=8, num_stages=3),
    KernelConfig.of(BLOCK_H=8, BLOCK_W=16, BLOCK_N=128, BLOCK_K=64, num_warps=8, num_stages=3),
    KernelConfig.of(BLOCK_H=8, BLOCK_W=16, BLOCK_N=64, BLOCK_K=64, num_warps=4, num_stages=4),
    KernelConfig.of(BLOCK_H=8, BLOCK_W=8, BLOCK_N=128, BLOCK_K=64, num_warps=4, num_stages=4),
    KernelConfig.of(BLOCK_H=1, BLOCK_W=64, BLOCK_N=128, BLOCK_K=64, num_warps=4, num_stages=4),
    KernelConfig.of(BLOCK_H=8, BLOCK_W=8, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3),
]

# An epilogue that reads a residual, stores the pre-activation or computes gelu/silu needs more registers than
# a 128x128 tile leaves (the output's offsets are 64-bit per element): it spills 16-640 bytes on sm_90 there
# (the ahead-of-time check), so those variants keep to tiles of at most 128x64 outputs.
_HEAVY_EPILOGUE = VariantLimit(
    "heavy-epilogue",
    applies=lambda constexprs: (bool(constexprs.get("HAS_RESIDUAL")) or bool(constexprs.get("STORE_PREACT"))
                                or constexprs.get("ACTIVATION") in ("gelu", "silu")),
    allows=lambda config: config["BLOCK_H"] * config["BLOCK_W"] * config["BLOCK_N"] <= 128 * 64,
)


def _counts(a: Mapping[str, Any], grid: tuple[int, ...]) -> dict[str, int]:
    return {"taps": a["R"] * a["S"], "channel blocks": cdiv(a["C"], a["BLOCK_K"]), "images": a["N"],
            "tile rows": cdiv(a["P"], a["BLOCK_H"]), "tile columns": cdiv(a["Q"], a["BLOCK_W"])}


FWD_TMA = register_space(KernelSpace(
    "conv2d_fwd_tma_kernel", conv2d_fwd_tma_kernel, _TILES, uses_dot=True, hopper_path=True,
    limits=(_HEAVY_EPILOGUE,),
    axes=(VariantAxis("HAS_BIAS", (False, True)), *EPILOGUE_AXES),
    valid=lambda variant, dtype, tf32: dtype in _SIXTEEN_BIT and epilogue_variant_valid(variant),
    values=("R", "S", *EPILOGUE_VALUES), counts=_counts,
))

_override: list[bool] = []


@contextlib.contextmanager
def hopper_tma(enabled: bool) -> Iterator[None]:
    """Inside, the Hopper path is on (or off) whatever the environment says."""
    _override.append(enabled)
    try:
        yield
    finally:
        _override.pop()


_FROM_ENVIRONMENT = os.environ.get("KERNELS_HOPPER_TMA", "0") == "1"


def hopper_tma_enabled() -> bool:
    """Whether the Hopper path is switched on: :func:`hopper_tma`, else ``KERNELS_HOPPER_TMA=1`` (as it was
    when the package was imported)."""
    return _override[-1] if _override else _FROM_ENVIRONMENT


KEY_SWITCHES.append(hopper_tma_enabled)  # (a call planned with the path off is not replayed with it on)


@functools.cache
def _is_hopper(device: torch.device) -> bool:
    return torch.cuda.get_device_capability(device)[0] == 9


def _dense_nhwc(t: torch.Tensor) -> bool:
    """``t (A, B, C, D)`` laid out as a contiguous ``(A, C, D, B)`` (channels_last; the stride of a dimension
    of size 1 does not matter), 16-byte aligned."""
    a, b, c, d = t.shape
    dense = (c * d * b, 1, d * b, b)
    return (all(size == 1 or stride == want for size, stride, want in zip(t.shape, t.stride(), dense, strict=True))
            and t.data_ptr() % 16 == 0)


def applies(x: torch.Tensor, weight: torch.Tensor, g: ConvGeometry, out: torch.Tensor) -> bool:
    """Whether the Hopper path is on and serves this forward (see the module docstring)."""
    if not hopper_tma_enabled() or x.dtype not in _SIXTEEN_BIT or g.groups != 1:
        return False
    if (g.stride_h, g.stride_w) != (1, 1) or g.C % 8 or g.K % 8 or not g.N * g.P * g.Q * g.K:
        return False
    if g.H * g.W * g.C >= 2**31 or g.K * g.R * g.S * g.C >= 2**31:  # (the descriptors' strides are 32-bit)
        return False
    if not (_dense_nhwc(x) and _dense_nhwc(weight)) or out.stride(1) != 1 or any(out.stride(d) % 8 for d in (0, 2, 3)):
        return False
    return INTERPRETING or (x.is_cuda and _is_hopper(x.device))


def _pick(g: ConvGeometry, dtype: torch.dtype, layout: str, variant: dict) -> KernelConfig:
    """The tuned tiles (``kernels.autotune``), else a heuristic: a row of 128 pixels for wide images, 8x16 or
    8x8 rectangles for narrow ones; 128 filters when there are that many; 64 channels per step."""
    default = closest_config(FWD_TMA.for_dtype(dtype, False, variant),
                             BLOCK_H=1 if g.Q >= 96 else 8, BLOCK_W=128 if g.Q >= 96 else (16 if g.Q > 8 else 8),
                             BLOCK_N=128 if g.K >= 128 else 64, BLOCK_K=64 if g.C >= 64 else 32)
    problem = {"H": g.P, "W": g.Q, "N": g.K, "K": g.C}
    return select_config(FWD_TMA, dtype, layout, problem, default, variant)


@functools.cache
def _set_scratch_allocator() -> None:
    """Device-made TMA descriptors live in a per-launch scratch buffer that Triton asks an allocator for."""
    import triton

    def allocate(size: int, alignment: int, stream: int | None) -> torch.Tensor:
        return torch.empty(size, dtype=torch.int8, device="cuda")

    triton.set_allocator(allocate)


def conv2d_forward_tma(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: ConvGeometry,
                       out: torch.Tensor, epilogue: Epilogue, residual: torch.Tensor | None,
                       preact: torch.Tensor | None) -> torch.Tensor:
    """``out (N, K, P, Q)`` = the conv2d of ``x`` and ``weight`` + bias, then ``epilogue``, by the Hopper path
    (:func:`applies` must hold); out is overwritten."""
    extra, fused = epilogue_arguments(epilogue, out, residual, preact)
    variant = {"HAS_BIAS": bias is not None, **fused}
    config = _pick(g, x.dtype, layout_of(x), variant)
    if x.is_cuda:
        _set_scratch_allocator()
    grid = (g.N * cdiv(g.P, config["BLOCK_H"]) * cdiv(g.Q, config["BLOCK_W"]), cdiv(g.K, config["BLOCK_N"]))
    args = (x, weight, bias if bias is not None else x, out, *extra,
            g.N, g.H, g.W, g.C, g.P, g.Q, g.K, out.stride(0) // 8, out.stride(2) // 8, out.stride(3) // 8,
            0 if bias is None else bias.stride(0), g.pad_h, g.pad_w, g.dil_h, g.dil_w)
    launch(FWD_TMA, grid, args, config, x.dtype, False, R=g.R, S=g.S, **variant)
    return out
