"""Reductions shared by the convolution family: per-channel sums (bias gradients) and split-K sums."""

import triton
import triton.language as tl


@triton.jit
def channel_sum_kernel(
    x_ptr, partial_ptr,
    N, C, H, W, PIX_PER_SPLIT,
    sxn, sxc, sxh, sxw,
    ACC_DTYPE: tl.constexpr, BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``partial[split, c] = sum over the split's share of (n, h, w) of x[n, c, h, w]`` for ``x (N, C, H, W)``.

    ``partial`` is a contiguous ``(SPLIT, C)`` buffer in ``ACC_DTYPE``.
    Grid: ``(cdiv(C, BLOCK_C), SPLIT)``.
    """
    pid_c = tl.program_id(0)
    split = tl.program_id(1)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    x_cols = x_ptr + offs_c.to(tl.int64) * sxc
    npix = N * H * W
    pix_start = split * PIX_PER_SPLIT
    acc = tl.zeros((BLOCK_PIX, BLOCK_C), dtype=ACC_DTYPE)
    for pix0 in range(pix_start, pix_start + PIX_PER_SPLIT, BLOCK_PIX):
        offs_pix = pix0 + tl.arange(0, BLOCK_PIX)
        pix_mask = offs_pix < npix
        n_idx = offs_pix // (H * W)
        hw = offs_pix % (H * W)
        pix_offs = n_idx.to(tl.int64) * sxn + (hw // W).to(tl.int64) * sxh + (hw % W).to(tl.int64) * sxw
        tile = tl.load(x_cols[None, :] + pix_offs[:, None], mask=pix_mask[:, None] & c_mask[None, :], other=0.0)
        acc += tile.to(ACC_DTYPE)
    total = tl.sum(acc, axis=0)
    tl.store(partial_ptr + split.to(tl.int64) * C + offs_c, total, mask=c_mask)


@triton.jit
def split_sum_kernel(partial_ptr, out_ptr, SPLIT, NUMEL, BLOCK: tl.constexpr):
    """``out[i] = sum_s partial[s, i]`` for a contiguous ``(SPLIT, NUMEL)`` buffer, cast to out's dtype.

    Grid: ``(cdiv(NUMEL, BLOCK),)``.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < NUMEL
    ptrs = partial_ptr + offs
    acc = tl.load(ptrs, mask=mask, other=0.0)
    for _ in range(1, SPLIT):
        ptrs += NUMEL
        acc += tl.load(ptrs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)
