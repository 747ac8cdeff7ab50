"""The batch-chunk path that keeps flattened pixel indices below 2**31 on huge tensors.

Tensors that large do not fit a test, so the limit is lowered: the launchers then split the batch exactly as
they would past 2**31, and the results must not change.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

import kernels
import kernels.ops.conv2d as conv_ops
import kernels.ops.reduce as reduce_ops
from kernels.launch import batch_chunks, recording


def test_batch_chunks_cover_the_batch_below_the_limit():
    assert batch_chunks(10, 7, limit=20) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert batch_chunks(3, 5) == [(0, 3)]
    assert batch_chunks(0, 5) == [(0, 0)]
    for start, stop in batch_chunks(1000, 333, limit=2000):
        assert (stop - start) * 333 <= 2000


@pytest.mark.parametrize("groups,stride", [(1, 1), (2, 2)])
def test_conv2d_split_into_batch_chunks_matches_torch(monkeypatch, assert_close, groups, stride):
    monkeypatch.setattr(conv_ops, "batch_chunks", functools.partial(batch_chunks, limit=40))
    x = torch.randn(5, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    out = kernels.conv2d(x, w, b, stride=stride, padding=1, groups=groups)
    ref = F.conv2d(x, w, b, stride=stride, padding=1, groups=groups)
    assert_close(out, ref, torch.float64, "output")
    grad = torch.randn_like(ref)
    ours = torch.autograd.grad(out, (x, w, b), grad)
    theirs = torch.autograd.grad(ref, (x, w, b), grad)
    for name, a, e in zip(("input", "weight", "bias"), ours, theirs, strict=True):
        assert_close(a, e, torch.float64, f"grad of {name}")


def test_bias_gradient_split_into_batch_chunks(monkeypatch, assert_close):
    """The bias gradient's channel sum keeps ``N * H * W`` 32-bit per launch: past the limit it launches once per
    batch chunk, into one buffer of partial sums."""
    monkeypatch.setattr(reduce_ops, "batch_chunks", functools.partial(batch_chunks, limit=100))
    x = torch.randn(7, 5, 6, 7, dtype=torch.float64)
    with recording(run=True) as launches:
        total = reduce_ops.channel_sum(x)
    assert sum(r.space.name == "channel_sum_kernel" for r in launches) == 4  # 42 pixels a sample, 2 a chunk
    assert_close(total, x.sum((0, 2, 3)), torch.float64, "channel sum")
