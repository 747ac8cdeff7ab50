"""When a backward runs its pieces as differentiable Functions and when it calls the launchers directly."""

from __future__ import annotations

import torch


def backward_is_recorded() -> bool:
    """True while autograd records the backward being computed (``create_graph=True``, for gradients of
    gradients): its pieces must then be differentiable Functions. Otherwise grad mode is off inside a
    backward, and the same launchers are called directly, without the per-Function bookkeeping (tens of
    microseconds of host time each)."""
    return torch.is_grad_enabled()
