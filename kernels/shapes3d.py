"""Shape arithmetic and argument checks of the 3-D convolutions (``conv3d``, ``conv_transpose3d``).

The checks are the dimension-generic ones of :mod:`kernels.shapes` (torch's order, type and wording); this
module adds the 3-D geometry and the 5-D layouts. Notation (CUTLASS's): input ``(N, C, D, H, W)``, weight
``(K, C // groups, T, R, S)``, output ``(N, K, Z, P, Q)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from .shapes import (
    ConvBackendError,
    GroupedChannels,
    PaddingArg,
    _check_convolution,
    _conv2d_type_error,
    _int_like,
    _same_padding,
    conv_output_size,
    conv_transpose2d_output_size,
    int_arg,
    int_list,
    memoised_check,
    strides_like_channels_last,
)


class Window3d:
    """The per-axis window tuples of every 3-D geometry (convolution and pooling) from its ``_d``/``_h``/``_w``
    fields (which the dataclass declares)."""

    @property
    def stride(self) -> tuple[int, int, int]:
        return self.stride_d, self.stride_h, self.stride_w

    @property
    def padding(self) -> tuple[int, int, int]:
        return self.pad_d, self.pad_h, self.pad_w

    @property
    def dilation(self) -> tuple[int, int, int]:
        return self.dil_d, self.dil_h, self.dil_w


@dataclass(frozen=True)
class ConvGeometry3d(GroupedChannels, Window3d):
    """Everything a 3-D convolution kernel needs to know about the problem.

    Input ``(N, C, D, H, W)``, weight ``(K, C // groups, T, R, S)``, output ``(N, K, Z, P, Q)``.
    ``pad_d``/``pad_h``/``pad_w`` are the front/top/left padding; the back/bottom/right padding is implied by
    ``Z``/``P``/``Q`` (it differs only for ``padding='same'`` with an odd total).
    """

    N: int
    C: int
    D: int
    H: int
    W: int
    K: int
    T: int
    R: int
    S: int
    Z: int
    P: int
    Q: int
    stride_d: int
    stride_h: int
    stride_w: int
    pad_d: int
    pad_h: int
    pad_w: int
    dil_d: int
    dil_h: int
    dil_w: int
    groups: int
    rank: ClassVar[int] = 3  # (spatial axes)

    @property
    def input_shape(self) -> tuple[int, int, int, int, int]:
        return self.N, self.C, self.D, self.H, self.W

    @property
    def weight_shape(self) -> tuple[int, int, int, int, int]:
        return self.K, self.channels_per_group, self.T, self.R, self.S

    @property
    def output_size(self) -> tuple[int, int, int]:
        """The output's spatial size ``(Z, P, Q)``."""
        return self.Z, self.P, self.Q

    @property
    def flops(self) -> int:
        """Multiply-adds times two of one forward pass: 2·N·K·(C/groups)·T·R·S·Z·P·Q."""
        return 2 * self.N * self.K * self.channels_per_group * self.T * self.R * self.S * self.Z * self.P * self.Q


def int_triple_list(value: object, name: str, op: str) -> tuple[int, ...]:
    """A ``tuple of ints`` argument of a 3-D op: an int (or 0-dim integer tensor) becomes three values, as
    torch's argument parser repeats it (so a weight of another rank is told about three values); a sequence
    stays as it is (the checks reject a wrong length)."""
    if type(value) is int or (_int_like(value) and not isinstance(value, tuple | list | torch.Size)):
        return (int(value),) * 3
    return int_list(value, name, op)


def check_batched_5d(input_shape: Sequence[int], op: str) -> None:
    """torch's error for an input that is neither unbatched 4-D nor batched 5-D (after unbatched inputs were
    given their batch dimension)."""
    if len(input_shape) != 5:
        raise RuntimeError(f"Expected 4D (unbatched) or 5D (batched) input to {op}, but got input of size: "
                           f"{list(input_shape)}")


def _kernel_size_error(T: int, R: int, S: int) -> ConvBackendError:
    return ConvBackendError(f"kernel size should be greater than zero, but got kernel_depth: {T} kernel_height: {R} "
                            f"kernel_width: {S}")


@memoised_check
def conv3d_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None = None,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> ConvGeometry3d:
    """Check conv3d arguments as torch does, in its order, and return the problem's geometry.

    ``input_shape`` is batched ``(N, C, D, H, W)``: the caller unsqueezes an unbatched input first. A value
    that torch's backends reject raises :class:`~kernels.shapes.ConvBackendError`.
    """
    op = "conv3d"
    tensors = ["Tensor"] * (2 if bias_shape is None else 3)
    try:
        s = int_triple_list(stride, "stride", op)
        p = padding if isinstance(padding, str) else int_triple_list(padding, "padding", op)
        d = int_triple_list(dilation, "dilation", op)
        groups = int_arg(groups, "groups", op)
    except TypeError:
        raise _conv2d_type_error(tensors, stride, padding, dilation, groups, op) from None
    check_batched_5d(input_shape, op)
    extra: tuple[int, ...] = (0, 0, 0)
    if p == "valid":
        p = (0,)
    elif p == "same":
        p, extra = _same_padding(input_shape, weight_shape, s, d, groups)
    elif isinstance(p, str):
        raise RuntimeError(f"Invalid padding string: '{p}'")
    s, p, d, _ = _check_convolution(input_shape, weight_shape, bias_shape, s, p, d, groups, (0,), False, extra)
    N, C, D, H, W = (int(v) for v in input_shape)
    K, _, T, R, S = (int(v) for v in weight_shape)
    if min(d) == 0 and N and C:  # torch sends an empty input to no backend
        raise ConvBackendError("non-positive dilation is not supported")
    if (T < 1 or R < 1 or S < 1) and C:
        raise _kernel_size_error(T, R, S)
    Z = conv_output_size(D, T, s[0], 2 * p[0] + extra[0], d[0])
    P = conv_output_size(H, R, s[1], 2 * p[1] + extra[1], d[1])
    Q = conv_output_size(W, S, s[2], 2 * p[2] + extra[2], d[2])
    return ConvGeometry3d(N, C, D, H, W, K, T, R, S, Z, P, Q, *s, *p, *d, groups)


@memoised_check
def conv_transpose3d_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> ConvGeometry3d:
    """Check conv_transpose3d arguments as torch does and return the geometry of the convolution it transposes.

    A transposed convolution of ``x (N, Cin, Din, Hin, Win)`` with ``weight (Cin, Cout/groups, T, R, S)`` is
    the input gradient of a convolution whose input is the transposed output ``(N, Cout, Dout, Hout, Wout)``
    and whose output is ``x``: the returned geometry has ``C, D, H, W = Cout, Dout, Hout, Wout`` and
    ``K, Z, P, Q = Cin, Din, Hin, Win``.
    """
    op = "conv_transpose3d"
    s, p, out_p, d = (int_triple_list(v, n, op) for v, n in ((stride, "stride"), (padding, "padding"),
                                                             (output_padding, "output_padding"),
                                                             (dilation, "dilation")))
    groups = int_arg(groups, "groups", op)
    check_batched_5d(input_shape, op)
    s, p, d, out_p = _check_convolution(input_shape, weight_shape, bias_shape, s, p, d, groups, out_p, True)
    N, Cin, D, H, W = (int(v) for v in input_shape)
    _, Cout_g, T, R, S = (int(v) for v in weight_shape)
    if T < 1 or R < 1 or S < 1:
        raise _kernel_size_error(T, R, S)
    if N:  # torch sends an empty input to no backend, so makes none of these checks
        if min(d) == 0:
            raise ConvBackendError(f"dilation should be greater than zero, but got dilation_depth: {d[0]}, "
                                   f"dilation_height: {d[1]}, dilation_width: {d[2]}")
        if Cout_g == 0:
            raise ConvBackendError(
                f"non-empty 5D (batch mode) tensor expected for input, but got: {list(weight_shape)}")
        if any(o >= st and o >= dl for o, st, dl in zip(out_p, s, d, strict=True)):
            raise ConvBackendError(
                "output padding must be smaller than either stride or dilation, but got "
                f"output_padding_depth: {out_p[0]} output_padding_height: {out_p[1]} output_padding_width: "
                f"{out_p[2]} stride_depth: {s[0]} stride_height: {s[1]} stride_width: {s[2]} dilation_depth: "
                f"{d[0]} dilation_height: {d[1]} dilation_width: {d[2]}"
            )
    Dout = conv_transpose2d_output_size(D, T, s[0], p[0], out_p[0], d[0])
    Hout = conv_transpose2d_output_size(H, R, s[1], p[1], out_p[1], d[1])
    Wout = conv_transpose2d_output_size(W, S, s[2], p[2], out_p[2], d[2])
    if Dout < 1 or Hout < 1 or Wout < 1:
        raise ConvBackendError(
            f"Given input size per channel: ({D} x {H} x {W}). Calculated output size per channel: "
            f"({Dout} x {Hout} x {Wout}). Output size is too small"
        )
    return ConvGeometry3d(N, Cout_g * groups, Dout, Hout, Wout, Cin, T, R, S, D, H, W, *s, *p, *d, groups)


def prefers_channels_last_3d(*tensors: torch.Tensor | None) -> bool:
    """Torch's rule for a 3-D convolution's output layout: channels_last_3d when an operand's strides are."""
    return any(t is not None and t.dim() == 5 and strides_like_channels_last(t) for t in tensors)


def conv3d_output_channels_last(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Torch's rule for a 3-D convolution's (or transposed convolution's) output layout: channels_last_3d when
    the input's or the weight's strides are, except in float64, where torch gives contiguous (on CUDA, and on
    the CPU, whose float64 3-D convolution has no channels_last_3d path)."""
    if torch.float64 in (x.dtype, weight.dtype):
        return False
    return prefers_channels_last_3d(x, weight)
