"""Launchers for the shared reductions: bias gradients and the final sum of split-K partials."""

from __future__ import annotations

import functools

import torch
import triton.language as tl

from ..autotune import layout_of, select_config, tunable
from ..jit.reduce import channel_sum_kernel, split_sum_kernel
from ..launch import (
    KernelConfig,
    KernelSpace,
    VariantLimit,
    batch_chunks,
    batch_rows,
    cdiv,
    closest_config,
    kernel_strides,
    launch,
    register_space,
)

_WIDE_SUM_TILE = KernelConfig.of(BLOCK_PIX=32, BLOCK_C=64, num_warps=4)
# float16 on the 32 x 64 tile leaves an 8-byte stack frame on sm_90 with Triton 3.6: it keeps to the others.
_FLOAT16_SUM = VariantLimit(
    "float16",
    applies=lambda constexprs: True,
    allows=lambda config: config != _WIDE_SUM_TILE,
    dtypes=frozenset({torch.float16}),
)
CHANNEL_SUM = register_space(KernelSpace(
    name="channel_sum_kernel",
    kernel=channel_sum_kernel,
    configs=[
        KernelConfig.of(BLOCK_PIX=128, BLOCK_C=16, num_warps=4),
        KernelConfig.of(BLOCK_PIX=64, BLOCK_C=32, num_warps=4),
        _WIDE_SUM_TILE,
    ],
    limits=(_FLOAT16_SUM,),
    values=("ACC_DTYPE",),
    counts=lambda a, grid: {"pixel blocks per split": a["PIX_PER_SPLIT"] // a["BLOCK_PIX"], "images": a["N"]},
))
SPLIT_SUM = register_space(KernelSpace(
    name="split_sum_kernel",
    kernel=split_sum_kernel,
    configs=[KernelConfig.of(BLOCK=1024, num_warps=4)],
    wide_configs=[KernelConfig.of(BLOCK=256, num_warps=4)],  # float64 spills with 1024 on sm_80
    counts=lambda a, grid: {"splits": a["SPLIT"]},
))


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype of every reduction: float64 for float64 problems, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tl_acc_dtype(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32


def multiprocessor_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device; a small number for the interpreter."""
    if device.type == "cuda":
        return _cuda_multiprocessors(device.index if device.index is not None else torch.cuda.current_device())
    return 2


@functools.cache
def _cuda_multiprocessors(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def choose_split(independent_programs: int, reduction_length: int, block: int, device: torch.device) -> int:
    """How many splits of a long reduction keep the GPU busy: about four waves of programs in all, and
    at least eight blocks of the reduction per split."""
    target = 4 * multiprocessor_count(device)
    wanted = cdiv(target, max(independent_programs, 1))
    return max(1, min(wanted, cdiv(reduction_length, 8 * block), 256))


def sum_splits(partial: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out.view(-1)[i] = partial[:, i].sum()`` for a contiguous ``(SPLIT, out.numel())`` buffer."""
    numel = out.numel()
    if numel == 0:
        return out
    assert partial.is_contiguous() and out.is_contiguous()
    config = SPLIT_SUM.for_dtype(out.dtype, tf32=False)[0]
    grid = (cdiv(numel, config["BLOCK"]),)
    launch(SPLIT_SUM, grid, (partial, out, partial.shape[0], numel), config, out.dtype)
    return out


@tunable
def channel_sum(x: torch.Tensor) -> torch.Tensor:
    """``x (N, C, H, W) -> (C,)``: the sum over batch and pixels (a bias gradient), in x's dtype. The batch is
    cut into chunks whose ``N * H * W`` stays 32-bit (the kernel's pixel index); their partial sums go to one
    buffer that the split sum reduces."""
    N, C, H, W = x.shape
    out = torch.empty(C, dtype=x.dtype, device=x.device)
    if C == 0:
        return out
    channels_last = x.stride(1) == 1 and C > 1
    variant = {"ACC_DTYPE": tl_acc_dtype(x.dtype)}
    default = closest_config(CHANNEL_SUM.for_dtype(x.dtype, False, variant), BLOCK_C=64 if channels_last else 16)
    config = select_config(CHANNEL_SUM, x.dtype, layout_of(x), {"PIX": N * H * W, "C": C}, default, variant)
    c_blocks = cdiv(C, config["BLOCK_C"])
    chunks = batch_chunks(N, H * W)
    split = choose_split(c_blocks * len(chunks), cdiv(N * H * W, len(chunks)), config["BLOCK_PIX"], x.device)
    partial = torch.empty((len(chunks) * split, C), dtype=acc_dtype(x.dtype), device=x.device)
    for index, (n0, n1) in enumerate(chunks):
        xs = batch_rows(x, n0, n1)
        npix = (n1 - n0) * H * W
        pix_per_split = cdiv(cdiv(max(npix, 1), split), config["BLOCK_PIX"]) * config["BLOCK_PIX"]
        launch(CHANNEL_SUM, (c_blocks, split),
               (xs, partial[index * split:(index + 1) * split], n1 - n0, C, H, W, pix_per_split, *kernel_strides(xs)),
               config, x.dtype, **variant)
    return sum_splits(partial, out)
