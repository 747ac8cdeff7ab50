"""The fused epilogue's part of a convolution's autograd: what its forward saves, and the activation's
backward as a differentiable Function and as a registered op (``kernels.ops.epilogue`` has the launcher)."""

from __future__ import annotations

import torch

from ..ops.epilogue import Epilogue, activation_backward


def saved_for_backward(epilogue: Epilogue, out: torch.Tensor, preact: torch.Tensor | None) -> torch.Tensor | None:
    """The tensor the backward reads ``act'`` from: the pre-activation, the output, or None (no activation)."""
    if epilogue.activation == "none":
        return None
    return preact if preact is not None else out


class ActivationBackward(torch.autograd.Function):
    """:func:`activation_backward` as an op that can be differentiated again. relu and leaky_relu have a
    piecewise-constant ``act'``, so the op is linear in ``grad_out`` and flat in ``saved``: its gradient is
    itself applied to the incoming gradient. gelu and silu would need ``act''``, which no kernel computes: a
    second backward through them raises. ``inputs`` are the convolution's inputs the pre-activation depends
    on; they keep the op in the graph so that such a second backward reaches it (and raises) rather than
    silently leaving the ``act''`` terms out."""

    @staticmethod
    def forward(ctx, grad_out: torch.Tensor, saved: torch.Tensor, epilogue: Epilogue,
                *inputs: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(saved)
        ctx.epilogue = epilogue
        ctx.input_count = len(inputs)
        return activation_backward(grad_out, saved, epilogue)

    @staticmethod
    def backward(ctx, grad_grad_pre: torch.Tensor):
        epilogue: Epilogue = ctx.epilogue
        if epilogue.curved:
            raise RuntimeError(
                f"double backward through a fused {epilogue.activation} epilogue is not supported (it needs the "
                f"activation's second derivative); apply torch.nn.functional.{epilogue.activation} after an "
                "unfused convolution instead")
        (saved,) = ctx.saved_tensors
        grad = ActivationBackward.apply(grad_grad_pre, saved, epilogue) if ctx.needs_input_grad[0] else None
        return grad, None, None, *(None,) * ctx.input_count


@torch.library.custom_op("kernels::activation_backward", mutates_args=())
def activation_backward_op(grad_out: torch.Tensor, saved: torch.Tensor, activation: str,
                           negative_slope: float) -> torch.Tensor:
    """``grad_out * act'(saved)`` in ``saved``'s layout."""
    return activation_backward(grad_out, saved, Epilogue(activation, negative_slope))


@activation_backward_op.register_fake
def _(grad_out, saved, activation, negative_slope):
    return torch.empty_like(saved)
