"""The ops registered with ``torch.library`` (namespace ``kernels``), for ``torch.compile``: an index.

Each op is registered beside the autograd it shares with the eager path, in ``kernels.autograd``: it takes
tensors and plain ints only (the functional entry points resolve their arguments first), has a fake
implementation giving the real op's shapes and strides, and an autograd formula made of further ops, so
``torch.compile(..., fullgraph=True)`` traces a network of ``kernels.nn`` modules without a graph break. The
functional entry points route through them while compiling (``torch.compiler.is_compiling()``).
"""

from __future__ import annotations

from .autograd.conv import CONV_OPS
from .autograd.epilogue import activation_backward_op
from .autograd.pool import POOL_OPS
from .autograd.reduce import channel_sum_op

__all__ = ["OPS"]

OPS = (
    *CONV_OPS[2].all(), channel_sum_op, activation_backward_op, *CONV_OPS[3].all(),
    *POOL_OPS[2].all(), *POOL_OPS[3].all(),
)
