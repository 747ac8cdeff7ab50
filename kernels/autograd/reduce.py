"""The channel sum (a bias gradient): its differentiable Function and its registered op."""

from __future__ import annotations

import torch

from ..ops.reduce import channel_sum


class ChannelSumFunction(torch.autograd.Function):
    """:func:`kernels.ops.reduce.channel_sum` as a differentiable op (a bias gradient that can itself be
    differentiated): its gradient broadcasts ``(C,)`` back over ``(N, C, H, W)`` as a view."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.input_shape = x.shape
        return channel_sum(x)

    @staticmethod
    def backward(ctx, grad_sum: torch.Tensor) -> torch.Tensor:
        return grad_sum.view(1, -1, 1, 1).expand(ctx.input_shape)


@torch.library.custom_op("kernels::channel_sum", mutates_args=())
def channel_sum_op(x: torch.Tensor) -> torch.Tensor:
    """``x (N, C, H, W) -> (C,)``: the sum over batch and pixels (a bias gradient)."""
    return channel_sum(x)


@channel_sum_op.register_fake
def _(x):
    return x.new_empty((x.shape[1],))
