"""Autograd, defined once per op for both eager calls and ``torch.compile``.

Each module ``kernels.autograd.X`` holds op ``X``'s autograd: what its forward saves (one setup, called by the
eager ``torch.autograd.Function``'s forward and by the registered op's ``setup_context``), its backward
formula (one function of the saved tensors, ``needs_input_grad``, the op's static parameters and the output
gradients), the eager Functions, and the op registered with ``torch.library`` (namespace ``kernels``, with
its fake implementation) for ``torch.compile``.

A backward formula is written against a small "passes" object, the building blocks it is made of (a
convolution, an input gradient, a weight gradient, a channel sum, an activation's backward, a pooling
backward). Each family of ops has three implementations of its passes:

* launchers: plain calls of the plan builders in ``kernels.ops`` (an eager backward that is not recorded:
  the fastest, and the one a call plan traces and replays, see ``kernels.call_plans``);
* recorded: the differentiable Functions, while autograd records the backward (``create_graph=True``), so
  that gradients of gradients work;
* registered: the ``torch.ops.kernels`` ops, for the backward traced while compiling (no double backward
  there, as ``torch.compile`` has none).
"""

from __future__ import annotations

from typing import TypeVar

import torch

P = TypeVar("P")


def eager_passes(launchers: P, recorded: P) -> P:
    """The passes an eager backward runs: ``recorded`` while autograd records the backward being computed
    (``create_graph=True``: its pieces must be differentiable Functions), else ``launchers``. Grad mode is off
    inside an unrecorded backward, and the launchers are then called directly, without the per-Function
    bookkeeping (tens of microseconds of host time each)."""
    return recorded if torch.is_grad_enabled() else launchers
