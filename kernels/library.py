"""The Triton ops registered with ``torch.library`` (namespace ``kernels``), for ``torch.compile``.

Each op takes tensors and plain ints only (the functional entry points resolve their arguments first), has a
fake implementation giving the real op's shapes and strides, and an autograd formula made of further ops, so
``torch.compile(..., fullgraph=True)`` traces a network of ``kernels.nn`` modules without a graph break.

Ops: ``conv2d``, ``conv2d_input_grad``, ``conv2d_weight_grad``, ``channel_sum``, ``conv_transpose2d``, the
fused-epilogue forms ``conv2d_fused`` and ``conv_transpose2d_fused`` with ``activation_backward``,
``max_pool2d``, ``max_pool2d_backward``, ``avg_pool2d``, ``avg_pool2d_backward``, ``adaptive_avg_pool2d``,
``adaptive_avg_pool2d_backward``, ``adaptive_max_pool2d``, ``adaptive_max_pool2d_backward``. The functional
entry points route through them while compiling (``torch.compiler.is_compiling()``); eager calls keep the
``torch.autograd.Function`` path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .ops.conv2d import conv2d_forward, conv2d_input_grad, conv2d_weight_grad
from .ops.epilogue import Epilogue, activation_backward, with_strides_of
from .ops.pool2d import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .ops.reduce import channel_sum
from .pool_shapes import PoolGeometry, adaptive_pool2d_geometry, avg_pool2d_geometry, max_pool2d_geometry
from .shapes import ConvGeometry, conv_output_channels_last, empty_4d, prefers_channels_last

__all__ = ["OPS"]

NAMESPACE = "kernels"


def _conv_geometry(input_size: Sequence[int], weight_size: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int], dilation: Sequence[int], groups: int,
                   output_size: Sequence[int]) -> ConvGeometry:
    """The geometry of a conv2d with top/left ``padding`` and output ``(P, Q)`` already resolved."""
    N, C, H, W = input_size
    K, _, R, S = weight_size
    P, Q = output_size
    return ConvGeometry(N, C, H, W, K, R, S, P, Q, stride[0], stride[1], padding[0], padding[1],
                        dilation[0], dilation[1], groups)


# --------------------------------------------------------------------------------------------------------
# conv2d


@torch.library.custom_op(f"{NAMESPACE}::conv2d", mutates_args=())
def conv2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Sequence[int],
              padding: Sequence[int], dilation: Sequence[int], groups: int,
              output_size: Sequence[int]) -> torch.Tensor:
    """``(N, K, P, Q)`` conv2d of batched ``x``; ``padding`` is top/left, ``output_size`` is ``(P, Q)``."""
    g = _conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    out = empty_4d((g.N, g.K, g.P, g.Q), x, conv_output_channels_last(x, weight))
    return conv2d_forward(x, weight, bias, g, out)


@conv2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, output_size):
    shape = (x.shape[0], weight.shape[0], *output_size)
    return empty_4d(shape, x, conv_output_channels_last(x, weight))


@torch.library.custom_op(f"{NAMESPACE}::conv2d_input_grad", mutates_args=())
def conv2d_input_grad_op(grad_out: torch.Tensor, weight: torch.Tensor, input_size: Sequence[int],
                         stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
                         channels_last: bool) -> torch.Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of a conv2d's input from ``grad_out (N, K, P, Q)``."""
    g = _conv_geometry(input_size, weight.shape, stride, padding, dilation, groups, grad_out.shape[2:])
    grad_in = empty_4d(tuple(input_size), grad_out, channels_last)
    return conv2d_input_grad(grad_out, weight, g, grad_in)


@conv2d_input_grad_op.register_fake
def _(grad_out, weight, input_size, stride, padding, dilation, groups, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


@torch.library.custom_op(f"{NAMESPACE}::conv2d_weight_grad", mutates_args=())
def conv2d_weight_grad_op(grad_out: torch.Tensor, x: torch.Tensor, weight_size: Sequence[int],
                          stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                          groups: int) -> torch.Tensor:
    """Gradient ``(K, C/groups, R, S)`` (``weight_size``) of a conv2d's weight, contiguous."""
    g = _conv_geometry(x.shape, weight_size, stride, padding, dilation, groups, grad_out.shape[2:])
    return conv2d_weight_grad(grad_out, x, g).contiguous()


@conv2d_weight_grad_op.register_fake
def _(grad_out, x, weight_size, stride, padding, dilation, groups):
    return x.new_empty(tuple(weight_size))


@torch.library.custom_op(f"{NAMESPACE}::channel_sum", mutates_args=())
def channel_sum_op(x: torch.Tensor) -> torch.Tensor:
    """``x (N, C, H, W) -> (C,)``: the sum over batch and pixels (a bias gradient)."""
    return channel_sum(x)


@channel_sum_op.register_fake
def _(x):
    return x.new_empty((x.shape[1],))


def _conv2d_setup(ctx, inputs, output) -> None:
    x, weight, _, stride, padding, dilation, groups, _ = inputs
    ctx.save_for_backward(x, weight)
    ctx.params = (list(stride), list(padding), list(dilation), groups)
    ctx.x_channels_last = prefers_channels_last(x)


def _conv2d_grads(ctx, x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor) -> tuple:
    """The input, weight and bias gradients of a conv2d (None where not needed)."""
    stride, padding, dilation, groups = ctx.params
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = grad_w = grad_b = None
    if need_x:
        grad_x = conv2d_input_grad_op(grad_out, weight, list(x.shape), stride, padding, dilation, groups,
                                      ctx.x_channels_last)
    if need_w:
        grad_w = conv2d_weight_grad_op(grad_out, x, list(weight.shape), stride, padding, dilation, groups)
    if need_b:
        grad_b = channel_sum_op(grad_out)
    return grad_x, grad_w, grad_b


def _conv2d_backward(ctx, grad_out: torch.Tensor):
    x, weight = ctx.saved_tensors
    return *_conv2d_grads(ctx, x, weight, grad_out), None, None, None, None, None


conv2d_op.register_autograd(_conv2d_backward, setup_context=_conv2d_setup)


# --------------------------------------------------------------------------------------------------------
# conv_transpose2d: the input gradient of the convolution it transposes (kernels.ops.conv_transpose2d)


@torch.library.custom_op(f"{NAMESPACE}::conv_transpose2d", mutates_args=())
def conv_transpose2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: Sequence[int],
                        padding: Sequence[int], dilation: Sequence[int], groups: int,
                        output_size: Sequence[int]) -> torch.Tensor:
    """``(N, Cout, Hout, Wout)`` transposed convolution of batched ``x (N, Cin, H, W)`` with ``weight (Cin,
    Cout/groups, R, S)``; ``output_size`` is ``(Hout, Wout)`` with output_padding already resolved."""
    shape = (x.shape[0], weight.shape[1] * groups, *output_size)
    g = _conv_geometry(shape, weight.shape, stride, padding, dilation, groups, x.shape[2:])
    out = empty_4d(shape, x, conv_output_channels_last(x, weight))
    return conv2d_input_grad(x, weight, g, out, bias)


@conv_transpose2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation, groups, output_size):
    shape = (x.shape[0], weight.shape[1] * groups, *output_size)
    return empty_4d(shape, x, conv_output_channels_last(x, weight))


def _conv_transpose2d_setup(ctx, inputs, output) -> None:
    x, weight, _, stride, padding, dilation, groups, _ = inputs
    ctx.save_for_backward(x, weight)
    ctx.params = (list(stride), list(padding), list(dilation), groups)


def _conv_transpose2d_grads(ctx, x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor) -> tuple:
    """The input, weight and bias gradients of a conv_transpose2d (None where not needed)."""
    stride, padding, dilation, groups = ctx.params
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = grad_w = grad_b = None
    if need_x:
        grad_x = conv2d_op(grad_out, weight, None, stride, padding, dilation, groups, list(x.shape[2:]))
    if need_w:
        grad_w = conv2d_weight_grad_op(x, grad_out, list(weight.shape), stride, padding, dilation, groups)
    if need_b:
        grad_b = channel_sum_op(grad_out)
    return grad_x, grad_w, grad_b


def _conv_transpose2d_backward(ctx, grad_out: torch.Tensor):
    x, weight = ctx.saved_tensors
    return *_conv_transpose2d_grads(ctx, x, weight, grad_out), None, None, None, None, None


conv_transpose2d_op.register_autograd(_conv_transpose2d_backward, setup_context=_conv_transpose2d_setup)


# --------------------------------------------------------------------------------------------------------
# Fused epilogues: each op returns (out, preact); preact is empty (0 elements) when the backward reads act'
# from the output or has no activation, and when ``store_preact`` is false (no gradient wanted).


def _epilogue(activation: str, negative_slope: float, residual: torch.Tensor | None,
              residual_before_activation: bool) -> Epilogue:
    return Epilogue(activation, negative_slope, residual is not None, residual_before_activation)


def _preact_for(out: torch.Tensor, epilogue: Epilogue, store_preact: bool) -> torch.Tensor:
    """The pre-activation output of a fused op: like ``out`` when the backward needs it, else empty."""
    return torch.empty_like(out) if epilogue.needs_preact(store_preact) else out.new_empty((0,))


@torch.library.custom_op(f"{NAMESPACE}::conv2d_fused", mutates_args=())
def conv2d_fused_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    residual: torch.Tensor | None, stride: Sequence[int], padding: Sequence[int],
                    dilation: Sequence[int], groups: int, output_size: Sequence[int], activation: str,
                    negative_slope: float, residual_before_activation: bool, store_preact: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """conv2d with a fused epilogue (``kernels.ops.epilogue``): ``(out, preact)``."""
    g = _conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
    epilogue = _epilogue(activation, negative_slope, residual, residual_before_activation)
    out = empty_4d((g.N, g.K, g.P, g.Q), x, conv_output_channels_last(x, weight))
    preact = _preact_for(out, epilogue, store_preact)
    conv2d_forward(x, weight, bias, g, out, epilogue, None if residual is None else with_strides_of(residual, out),
                   preact if preact.numel() else None)
    return out, preact


@conv2d_fused_op.register_fake
def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, activation, negative_slope,
      residual_before_activation, store_preact):
    out = empty_4d((x.shape[0], weight.shape[0], *output_size), x, conv_output_channels_last(x, weight))
    return out, _preact_for(out, _epilogue(activation, negative_slope, residual, residual_before_activation),
                               store_preact)


@torch.library.custom_op(f"{NAMESPACE}::conv_transpose2d_fused", mutates_args=())
def conv_transpose2d_fused_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                              residual: torch.Tensor | None, stride: Sequence[int], padding: Sequence[int],
                              dilation: Sequence[int], groups: int, output_size: Sequence[int], activation: str,
                              negative_slope: float, residual_before_activation: bool, store_preact: bool
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """conv_transpose2d with a fused epilogue: ``(out, preact)``."""
    shape = (x.shape[0], weight.shape[1] * groups, *output_size)
    g = _conv_geometry(shape, weight.shape, stride, padding, dilation, groups, x.shape[2:])
    epilogue = _epilogue(activation, negative_slope, residual, residual_before_activation)
    out = empty_4d(shape, x, conv_output_channels_last(x, weight))
    preact = _preact_for(out, epilogue, store_preact)
    conv2d_input_grad(x, weight, g, out, bias, epilogue,
                      None if residual is None else with_strides_of(residual, out), preact if preact.numel() else None)
    return out, preact


@conv_transpose2d_fused_op.register_fake
def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, activation, negative_slope,
      residual_before_activation, store_preact):
    out = empty_4d((x.shape[0], weight.shape[1] * groups, *output_size), x, conv_output_channels_last(x, weight))
    return out, _preact_for(out, _epilogue(activation, negative_slope, residual, residual_before_activation),
                               store_preact)


@torch.library.custom_op(f"{NAMESPACE}::activation_backward", mutates_args=())
def activation_backward_op(grad_out: torch.Tensor, saved: torch.Tensor, activation: str,
                           negative_slope: float) -> torch.Tensor:
    """``grad_out * act'(saved)`` in ``saved``'s layout."""
    return activation_backward(grad_out, saved, Epilogue(activation, negative_slope))


@activation_backward_op.register_fake
def _(grad_out, saved, activation, negative_slope):
    return torch.empty_like(saved)


def _fused_setup(ctx, inputs, output) -> None:
    x, weight, _, _, stride, padding, dilation, groups, _, activation, slope, before, _ = inputs
    out, preact = output
    ctx.epilogue = _epilogue(activation, slope, inputs[3], before)
    saved = None
    if ctx.epilogue.activation != "none":
        saved = preact if preact.numel() else out
    ctx.save_for_backward(x, weight, saved)
    ctx.params = (list(stride), list(padding), list(dilation), groups)
    ctx.x_channels_last = prefers_channels_last(x)


def _fused_pre_grads(ctx, grad_out: torch.Tensor, saved: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    epilogue: Epilogue = ctx.epilogue
    grad_pre = grad_out
    if saved is not None:
        grad_pre = activation_backward_op(grad_out, saved, epilogue.activation, epilogue.negative_slope)
    grad_res = None
    if epilogue.has_residual and ctx.needs_input_grad[3]:
        grad_res = grad_pre if epilogue.residual_before_activation else grad_out
    return grad_pre, grad_res


def _conv2d_fused_backward(ctx, grad_out: torch.Tensor, _grad_preact: torch.Tensor | None):
    x, weight, saved = ctx.saved_tensors
    grad_pre, grad_res = _fused_pre_grads(ctx, grad_out, saved)
    return *_conv2d_grads(ctx, x, weight, grad_pre), grad_res, *([None] * 9)


def _conv_transpose2d_fused_backward(ctx, grad_out: torch.Tensor, _grad_preact: torch.Tensor | None):
    x, weight, saved = ctx.saved_tensors
    grad_pre, grad_res = _fused_pre_grads(ctx, grad_out, saved)
    return *_conv_transpose2d_grads(ctx, x, weight, grad_pre), grad_res, *([None] * 9)


conv2d_fused_op.register_autograd(_conv2d_fused_backward, setup_context=_fused_setup)
conv_transpose2d_fused_op.register_autograd(_conv_transpose2d_fused_backward, setup_context=_fused_setup)


# --------------------------------------------------------------------------------------------------------
# Pooling. Inputs are batched (N, C, H, W); ``channels_last`` is the layout of every output.


def _max_geometry(shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool) -> PoolGeometry:
    return max_pool2d_geometry(tuple(shape), list(kernel_size), list(stride), list(padding), list(dilation),
                               ceil_mode)


@torch.library.custom_op(f"{NAMESPACE}::max_pool2d", mutates_args=())
def max_pool2d_op(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  dilation: Sequence[int], ceil_mode: bool, channels_last: bool
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Max pooling: the output ``(N, C, P, Q)`` and the int64 flat indices ``h*W + w`` of the maxima."""
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    out = empty_4d(g.output_shape, x, channels_last)
    indices = empty_4d(g.output_shape, x, channels_last, torch.int64)
    max_pool2d_forward(x, g, out, indices)
    return out, indices


@max_pool2d_op.register_fake
def _(x, kernel_size, stride, padding, dilation, ceil_mode, channels_last):
    g = _max_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return empty_4d(g.output_shape, x, channels_last), empty_4d(g.output_shape, x, channels_last, torch.int64)


@torch.library.custom_op(f"{NAMESPACE}::max_pool2d_backward", mutates_args=())
def max_pool2d_backward_op(grad_out: torch.Tensor, indices: torch.Tensor, input_size: Sequence[int],
                           kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                           dilation: Sequence[int], ceil_mode: bool, channels_last: bool) -> torch.Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of max pooling from ``grad_out`` and the saved indices."""
    g = _max_geometry(input_size, kernel_size, stride, padding, dilation, ceil_mode)
    grad_in = empty_4d(tuple(input_size), grad_out, channels_last)
    max_pool2d_backward(grad_out, indices, g, grad_in)
    return grad_in


@max_pool2d_backward_op.register_fake
def _(grad_out, indices, input_size, kernel_size, stride, padding, dilation, ceil_mode, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


def _max_pool2d_setup(ctx, inputs, output) -> None:
    x, *params = inputs
    ctx.save_for_backward(output[1])
    ctx.input_size = list(x.shape)
    ctx.params = params


def _max_pool2d_grad(ctx, grad_out: torch.Tensor, _grad_indices: torch.Tensor | None):
    (indices,) = ctx.saved_tensors
    grad_in = max_pool2d_backward_op(grad_out, indices, ctx.input_size, *ctx.params)
    return grad_in, None, None, None, None, None, None


max_pool2d_op.register_autograd(_max_pool2d_grad, setup_context=_max_pool2d_setup)


def _avg_geometry(shape: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                  padding: Sequence[int], ceil_mode: bool, count_include_pad: bool, divisor: int) -> PoolGeometry:
    return avg_pool2d_geometry(tuple(shape), list(kernel_size), list(stride), list(padding), ceil_mode,
                               count_include_pad, divisor or None)


@torch.library.custom_op(f"{NAMESPACE}::avg_pool2d", mutates_args=())
def avg_pool2d_op(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                  ceil_mode: bool, count_include_pad: bool, divisor: int, channels_last: bool) -> torch.Tensor:
    """Average pooling ``(N, C, P, Q)``; ``divisor`` is ``divisor_override`` (0: none)."""
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    out = empty_4d(g.output_shape, x, channels_last)
    avg_pool2d_forward(x, g, out)
    return out


@avg_pool2d_op.register_fake
def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last):
    g = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    return empty_4d(g.output_shape, x, channels_last)


@torch.library.custom_op(f"{NAMESPACE}::avg_pool2d_backward", mutates_args=())
def avg_pool2d_backward_op(grad_out: torch.Tensor, input_size: Sequence[int], kernel_size: Sequence[int],
                           stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                           count_include_pad: bool, divisor: int, channels_last: bool) -> torch.Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of average pooling."""
    g = _avg_geometry(input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor)
    grad_in = empty_4d(tuple(input_size), grad_out, channels_last)
    avg_pool2d_backward(grad_out, g, grad_in)
    return grad_in


@avg_pool2d_backward_op.register_fake
def _(grad_out, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


def _avg_pool2d_setup(ctx, inputs, output) -> None:
    x, *params = inputs
    ctx.input_size = list(x.shape)
    ctx.params = params


def _avg_pool2d_grad(ctx, grad_out: torch.Tensor):
    grad_in = avg_pool2d_backward_op(grad_out, ctx.input_size, *ctx.params)
    return grad_in, None, None, None, None, None, None, None


avg_pool2d_op.register_autograd(_avg_pool2d_grad, setup_context=_avg_pool2d_setup)


def _adaptive_geometry(shape: Sequence[int], output_size: Sequence[int]) -> PoolGeometry:
    return adaptive_pool2d_geometry(tuple(shape), list(output_size), "adaptive_avg_pool2d")


@torch.library.custom_op(f"{NAMESPACE}::adaptive_avg_pool2d", mutates_args=())
def adaptive_avg_pool2d_op(x: torch.Tensor, output_size: Sequence[int], channels_last: bool) -> torch.Tensor:
    """Adaptive average pooling to ``output_size (P, Q)``."""
    g = _adaptive_geometry(x.shape, output_size)
    out = empty_4d(g.output_shape, x, channels_last)
    avg_pool2d_forward(x, g, out)
    return out


@adaptive_avg_pool2d_op.register_fake
def _(x, output_size, channels_last):
    return empty_4d((x.shape[0], x.shape[1], *output_size), x, channels_last)


@torch.library.custom_op(f"{NAMESPACE}::adaptive_avg_pool2d_backward", mutates_args=())
def adaptive_avg_pool2d_backward_op(grad_out: torch.Tensor, input_size: Sequence[int], channels_last: bool
                                    ) -> torch.Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of adaptive average pooling to ``grad_out``'s size."""
    g = _adaptive_geometry(input_size, grad_out.shape[2:])
    grad_in = empty_4d(tuple(input_size), grad_out, channels_last)
    avg_pool2d_backward(grad_out, g, grad_in)
    return grad_in


@adaptive_avg_pool2d_backward_op.register_fake
def _(grad_out, input_size, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


def _adaptive_setup(ctx, inputs, output) -> None:
    x, _, channels_last = inputs
    ctx.input_size = list(x.shape)
    ctx.channels_last = channels_last


def _adaptive_grad(ctx, grad_out: torch.Tensor):
    return adaptive_avg_pool2d_backward_op(grad_out, ctx.input_size, ctx.channels_last), None, None


adaptive_avg_pool2d_op.register_autograd(_adaptive_grad, setup_context=_adaptive_setup)


@torch.library.custom_op(f"{NAMESPACE}::adaptive_max_pool2d", mutates_args=())
def adaptive_max_pool2d_op(x: torch.Tensor, output_size: Sequence[int], channels_last: bool
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive max pooling to ``output_size (P, Q)``: the output and the int64 flat indices ``h*W + w``."""
    g = adaptive_pool2d_geometry(tuple(x.shape), list(output_size), "adaptive_max_pool2d")
    out = empty_4d(g.output_shape, x, channels_last)
    indices = empty_4d(g.output_shape, x, channels_last, torch.int64)
    max_pool2d_forward(x, g, out, indices)
    return out, indices


@adaptive_max_pool2d_op.register_fake
def _(x, output_size, channels_last):
    shape = (x.shape[0], x.shape[1], *output_size)
    return empty_4d(shape, x, channels_last), empty_4d(shape, x, channels_last, torch.int64)


@torch.library.custom_op(f"{NAMESPACE}::adaptive_max_pool2d_backward", mutates_args=())
def adaptive_max_pool2d_backward_op(grad_out: torch.Tensor, indices: torch.Tensor, input_size: Sequence[int],
                                    channels_last: bool) -> torch.Tensor:
    """Gradient ``(N, C, H, W)`` (``input_size``) of adaptive max pooling from the saved indices."""
    g = adaptive_pool2d_geometry(tuple(input_size), list(grad_out.shape[2:]), "adaptive_max_pool2d")
    grad_in = empty_4d(tuple(input_size), grad_out, channels_last)
    max_pool2d_backward(grad_out, indices, g, grad_in)
    return grad_in


@adaptive_max_pool2d_backward_op.register_fake
def _(grad_out, indices, input_size, channels_last):
    return empty_4d(tuple(input_size), grad_out, channels_last)


def _adaptive_max_setup(ctx, inputs, output) -> None:
    x, _, channels_last = inputs
    ctx.save_for_backward(output[1])
    ctx.input_size = list(x.shape)
    ctx.channels_last = channels_last


def _adaptive_max_grad(ctx, grad_out: torch.Tensor, _grad_indices: torch.Tensor | None):
    (indices,) = ctx.saved_tensors
    return adaptive_max_pool2d_backward_op(grad_out, indices, ctx.input_size, ctx.channels_last), None, None


adaptive_max_pool2d_op.register_autograd(_adaptive_max_grad, setup_context=_adaptive_max_setup)

OPS = (
    conv2d_op, conv2d_input_grad_op, conv2d_weight_grad_op, channel_sum_op, conv_transpose2d_op,
    conv2d_fused_op, conv_transpose2d_fused_op, activation_backward_op,
    max_pool2d_op, max_pool2d_backward_op,
    avg_pool2d_op, avg_pool2d_backward_op, adaptive_avg_pool2d_op, adaptive_avg_pool2d_backward_op,
    adaptive_max_pool2d_op, adaptive_max_pool2d_backward_op,
)
