"""The implicit-GEMM convolutions' block configurations and default tile choice, for every rank.

A convolution's forward, input gradient and weight gradient are each one GEMM (rows x columns, reduced over a
depth); the 2-D and 3-D launchers pick their tiles here. Every tile compiles without register spills for sm_90
and sm_80 with no integer specialisation (odd channel counts and strides): ``python -m kernels.aot``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..autotune import select_config
from ..launch import KernelConfig, KernelSpace, VariantAxis, closest_config, pow2_at_least, tf32_enabled

# Tensor-core tiles for float16, bfloat16 and TF32.
GEMM_TILES = [
    KernelConfig.of(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, num_warps=8, num_stages=3),
    KernelConfig.of(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, num_warps=4, num_stages=3),
    KernelConfig.of(BLOCK_M=64, BLOCK_N=32, BLOCK_K=16, num_warps=4, num_stages=2),
    KernelConfig.of(BLOCK_M=64, BLOCK_N=16, BLOCK_K=16, num_warps=4, num_stages=2),
]
# Smaller tiles for IEEE float32 and float64, which have no 16-bit tensor-core path.
WIDE_TILES = [
    KernelConfig.of(BLOCK_M=32, BLOCK_N=32, BLOCK_K=16, num_warps=4, num_stages=2),
    KernelConfig.of(BLOCK_M=32, BLOCK_N=16, BLOCK_K=16, num_warps=4, num_stages=2),
]


def pick_tiles(space: KernelSpace, dtype: torch.dtype, rows: int, cols: int, depth: int, layout: str = "nchw",
               variant: dict | None = None) -> KernelConfig:
    """The tuned tiles of a ``rows x cols`` GEMM reduced over ``depth`` (``kernels.autotune``), else the
    default heuristic: tile sides near the GEMM's rows, columns and reduction depth (powers of two).
    ``variant``: the launch's variant constexprs (epilogue flags, ``VEC``), which may limit the tiles."""
    configs = space.for_dtype(dtype, tf32_enabled(dtype), variant)
    default = closest_config(
        configs,
        BLOCK_M=pow2_at_least(rows, 16, 128),
        BLOCK_N=pow2_at_least(cols, 16, 128),
        BLOCK_K=pow2_at_least(depth, 16, 32),
    )
    return select_config(space, dtype, layout, {"M": rows, "N": cols, "K": depth}, default, variant)


# The flat reduction (``FLAT`` of the forward and weight-gradient kernels, ``kernels.jit.conv2d``): below this
# many channels per group (the smallest BLOCK_K), a reduction step per tap fills few of a block's lanes. A
# crossed axis: each epilogue combination it allows is compiled and tested with both loops.
FLAT_CHANNELS = 16
FLAT = VariantAxis("FLAT", (False, True))


def flat_valid(variant: Mapping[str, Any]) -> bool:
    """The flat reduction runs in the general variant (``VEC == 1``), with an epilogue that reads no residual
    and stores no pre-activation (those keep the tap loop: their extra tiles leave no registers for its 2-D
    addresses)."""
    return not variant["FLAT"] or (variant.get("VEC", 1) == 1 and not variant.get("HAS_RESIDUAL")
                                   and not variant.get("STORE_PREACT"))


def flat_reduction(channels_per_group: int, taps: int, unit: int = 1) -> bool:
    """Whether a convolution's forward and weight gradient flatten their reduction over (c, taps): more than one
    tap and fewer channels per group than the smallest channel block, in the general variant (an RGB stem: 3
    channels, where the tap loop would fill 3 of each 16 or 32 reduction lanes)."""
    return unit == 1 and channels_per_group < FLAT_CHANNELS and taps > 1
