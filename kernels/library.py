"""The ops registered with ``torch.library`` (namespace ``kernels``), for ``torch.compile``: an index.

Each op is registered beside the autograd it shares with the eager path, in ``kernels.autograd``: it takes
tensors and plain ints only (the functional entry points resolve their arguments first), has a fake
implementation giving the real op's shapes and strides, and an autograd formula made of further ops, so
``torch.compile(..., fullgraph=True)`` traces a network of ``kernels.nn`` modules without a graph break. The
functional entry points route through them while compiling (``torch.compiler.is_compiling()``).
"""

from __future__ import annotations

from .autograd.conv2d import conv2d_input_grad_op, conv2d_op, conv2d_weight_grad_op
from .autograd.conv3d import conv3d_input_grad_op, conv3d_op, conv3d_weight_grad_op, conv_transpose3d_op
from .autograd.conv_transpose2d import conv_transpose2d_op
from .autograd.epilogue import activation_backward_op
from .autograd.pool2d import (
    adaptive_avg_pool2d_backward_op,
    adaptive_avg_pool2d_op,
    adaptive_max_pool2d_backward_op,
    adaptive_max_pool2d_op,
    avg_pool2d_backward_op,
    avg_pool2d_op,
    max_pool2d_backward_op,
    max_pool2d_op,
)
from .autograd.pool3d import (
    adaptive_avg_pool3d_backward_op,
    adaptive_avg_pool3d_op,
    adaptive_max_pool3d_backward_op,
    adaptive_max_pool3d_op,
    avg_pool3d_backward_op,
    avg_pool3d_op,
    max_pool3d_backward_op,
    max_pool3d_op,
)
from .autograd.reduce import channel_sum_op

__all__ = ["OPS"]

OPS = (
    conv2d_op, conv2d_input_grad_op, conv2d_weight_grad_op, channel_sum_op, activation_backward_op,
    conv_transpose2d_op,
    conv3d_op, conv3d_input_grad_op, conv3d_weight_grad_op, conv_transpose3d_op,
    max_pool2d_op, max_pool2d_backward_op, adaptive_max_pool2d_op, adaptive_max_pool2d_backward_op,
    avg_pool2d_op, avg_pool2d_backward_op, adaptive_avg_pool2d_op, adaptive_avg_pool2d_backward_op,
    max_pool3d_op, max_pool3d_backward_op, adaptive_max_pool3d_op, adaptive_max_pool3d_backward_op,
    avg_pool3d_op, avg_pool3d_backward_op, adaptive_avg_pool3d_op, adaptive_avg_pool3d_backward_op,
)
