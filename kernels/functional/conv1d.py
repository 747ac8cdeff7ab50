"""``kernels.conv1d`` and ``kernels.conv_transpose1d``: drop-ins for their ``torch.nn.functional`` namesakes,
run as views of the 2-D ops with ``H = 1``.

The input ``(N, C, L)`` is viewed as ``(N, C, 1, L)`` (unbatched ``(C, L)`` as ``(C, 1, L)``), the weight
``(K, C/groups, k)`` as ``(K, C/groups, 1, k)``, each option ``x`` becomes ``(1, x)`` (padding ``(0, x)``), and the
result's dim -2 is squeezed away: no copies, and autograd, double backward and ``torch.compile`` come from the
2-D ops. Arguments are checked first in 1-D terms, with the exception types and messages of torch's 1-D
functions (``kernels.shapes`` holds the shared checks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..autocast import autocast_inputs
from ..shapes import (
    PaddingArg,
    _check_convolution,
    _conv2d_type_error,
    _int_like,
    _same_padding,
    check_conv_arguments,
    check_conv_tensors,
    check_tensor_arguments,
    conv_transpose2d_output_size,
    int_arg,
    int_list,
)
from .conv2d import conv2d
from .conv_transpose2d import conv_transpose2d

__all__ = ["conv1d", "conv_transpose1d"]


def _ints(value: object, name: str, op: str) -> tuple[int, ...]:
    """A ``tuple of ints`` argument of a 1-D op: an int is one value, a sequence keeps its length."""
    values = int_list(value, name, op)
    return values[:1] if _int_like(value) else values


def _check_rank(input: torch.Tensor, op: str) -> tuple[int, ...]:
    """The batched ``(N, C, L)`` shape of a 2-D or 3-D input; another rank raises torch's message."""
    if input.dim() not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input to {op}, but got input of size: "
                           f"{list(input.shape)}")
    return tuple(input.shape) if input.dim() == 3 else (1, *input.shape)


def _lift(t: torch.Tensor | None) -> torch.Tensor | None:
    """``(..., L) -> (..., 1, L)``: a view whose H stride is 1, so that a channels-innermost ``(N, C, L)`` tensor
    does not look channels_last to the 2-D op. torch's CPU 1-D convolutions return contiguous outputs and input
    gradients whatever the layout of their operands; with this view the 2-D op does too."""
    return None if t is None else t.unsqueeze(-1).transpose(-1, -2)


def _parse_parameters(stride: object, padding: object, dilation: object, groups: object) -> None:
    """conv1d's stride, padding, dilation and groups parsed as torch does (a TypeError for a wrong type)."""
    _ints(stride, "stride", "conv1d")
    if not isinstance(padding, str):
        _ints(padding, "padding", "conv1d")
    _ints(dilation, "dilation", "conv1d")
    int_arg(groups, "groups", "conv1d")


def _check_conv1d(input: object, weight: object, bias: object, stride: object, padding: object,
                  dilation: object, groups: object) -> tuple[tuple[int, ...], PaddingArg, tuple[int, ...], int]:
    """torch's conv1d checks, in its order; returns the 2-D stride, padding, dilation and groups."""
    check_conv_arguments("conv1d", input, weight, bias, stride, padding, dilation, groups, _parse_parameters)
    try:
        s = _ints(stride, "stride", "conv1d")
        p = padding if isinstance(padding, str) else _ints(padding, "padding", "conv1d")
        d = _ints(dilation, "dilation", "conv1d")
        g = int_arg(groups, "groups", "conv1d")
    except TypeError:
        tensors = ["Tensor"] * (2 if bias is None else 3)
        raise _conv2d_type_error(tensors, stride, padding, dilation, groups, "conv1d") from None
    shape = _check_rank(input, "conv1d")
    bias_shape = None if bias is None else tuple(bias.shape)
    extra = None
    if p == "valid":
        p = (0,)
    elif p == "same":
        p, extra = _same_padding(shape, tuple(weight.shape), s, d, g)
    elif isinstance(p, str):
        raise RuntimeError(f"Invalid padding string: '{p}'")
    s, p_checked, d, _ = _check_convolution(shape, tuple(weight.shape), bias_shape, s, p, d, g, (0,), False, extra)
    check_conv_tensors("conv1d", input, weight, bias)
    return (1, s[0]), ("same" if padding == "same" else (0, p_checked[0])), (1, d[0]), g


@autocast_inputs("conv")
def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    *,
    activation: str | None = None,
    negative_slope: float = 0.01,
    residual: torch.Tensor | None = None,
    residual_before_activation: bool = False,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.conv1d``, with :func:`kernels.conv2d`'s optional fused epilogue.

    input ``(N, C, L)`` or unbatched ``(C, L)``; weight ``(K, C/groups, k)``; bias ``(K,)``; padding an int, a
    1-tuple, ``'same'`` or ``'valid'``. Returns ``(N, K, Lout)`` (or ``(K, Lout)``), contiguous whatever the operands'
    layout, as torch's CPU conv1d gives it. Runs :func:`kernels.conv2d` on views with ``H = 1``.
    """
    s, p, d, g = _check_conv1d(input, weight, bias, stride, padding, dilation, groups)
    out = conv2d(_lift(input), _lift(weight), bias, s, p, d, g, activation=activation,
                 negative_slope=negative_slope, residual=_lift(residual),
                 residual_before_activation=residual_before_activation)
    return out.squeeze(-2)


@autocast_inputs("conv")
def conv_transpose1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
    *,
    activation: str | None = None,
    negative_slope: float = 0.01,
    residual: torch.Tensor | None = None,
    residual_before_activation: bool = False,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.conv_transpose1d``, with :func:`kernels.conv2d`'s optional epilogue.

    input ``(N, Cin, L)`` or unbatched ``(Cin, L)``; weight ``(Cin, Cout/groups, k)``; bias ``(Cout,)``. Returns
    ``(N, Cout, Lout)`` with ``Lout = (L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``. Runs
    :func:`kernels.conv_transpose2d` on views with ``H = 1``.
    """
    op = "conv_transpose1d"
    check_tensor_arguments(op, input, weight, bias)
    s, p, out_p = (_ints(v, n, op) for v, n in ((stride, "stride"), (padding, "padding"),
                                                 (output_padding, "output_padding")))
    g = int_arg(groups, "groups", op)
    d = _ints(dilation, "dilation", op)
    shape = _check_rank(input, op)
    s, p, d, out_p = _check_convolution(shape, tuple(weight.shape), None if bias is None else tuple(bias.shape),
                                        s, p, d, g, out_p, True)
    check_conv_tensors(op, input, weight, bias)
    length = conv_transpose2d_output_size(shape[2], weight.shape[2], s[0], p[0], out_p[0], d[0])
    if length < 1 and weight.shape[2] >= 1 and d[0] >= 1 and out_p[0] < max(s[0], d[0]):
        raise RuntimeError(f"Given input size per channel: [{shape[2]}]. Calculated output size per channel: "
                           f"[{length}]. Output size is too small")
    out = conv_transpose2d(_lift(input), _lift(weight), bias, (1, s[0]), (0, p[0]), (0, out_p[0]), g,
                           (1, d[0]), activation=activation, negative_slope=negative_slope,
                           residual=_lift(residual), residual_before_activation=residual_before_activation)
    return out.squeeze(-2)
