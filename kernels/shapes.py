"""Shape arithmetic and argument checks, shared by the launchers, the modules and the tests.

Every check raises the exception type that ``torch.nn.functional`` raises for the same mistake, with a
message in the same words where that helps a user search for it.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
PaddingArg = int | Sequence[int] | str
Result = TypeVar("Result")


def _plain_value(value: object) -> bool:
    """An argument a memoised check may key on: None, a str, a bool, an int, or a tuple (or torch.Size) of
    ints that are not bools (the cache is typed, so ``True`` and ``1`` are told apart at the top level).
    Lists, floats and anything else take the unmemoised path, so that every wrong argument still reaches
    the check that rejects it."""
    if value is None or type(value) in (int, bool, str):
        return True
    return type(value) in (tuple, torch.Size) and all(type(v) is int for v in value)


def memoised_check(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Memoise a pure shape check over plain arguments: launchers run it on every call with the same few
    argument sets, and its Python costs more than the rest of a launch. A check that raises is not
    memoised (the next call raises again); its result must be immutable. While torch.compile traces, the
    check runs unmemoised (dynamo traces through it and would warn about the cache)."""
    cached = functools.lru_cache(maxsize=4096, typed=True)(fn)

    @functools.wraps(fn)
    def check(*args: object, **kwargs: object) -> Result:
        if not kwargs and not torch.compiler.is_compiling() and all(_plain_value(a) for a in args):
            return cached(*args)
        return fn(*args, **kwargs)

    return check


def as_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(1, 2) -> (1, 2)``; anything else raises as torch does."""
    if isinstance(value, bool):
        raise TypeError(f"conv2d(): argument '{name}' must be tuple of ints, not bool")
    if isinstance(value, numbers.Integral):
        return (int(value), int(value))
    if isinstance(value, torch.Size | tuple | list):
        items = tuple(value)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise TypeError(f"conv2d(): argument '{name}' must be tuple of ints, but found {items}")
        if len(items) == 1:
            return (int(items[0]), int(items[0]))
        if len(items) == 2:
            return (int(items[0]), int(items[1]))
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of 2 values to match the convolution "
            f"dimensions, but got {name}={list(items)}"
        )
    raise TypeError(f"conv2d(): argument '{name}' must be tuple of ints, not {type(value).__name__}")


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of a convolution along one axis: ``floor((size + pad_total - dilation*(kernel-1) - 1)
    / stride) + 1``, where ``pad_total`` is the sum of the padding on both sides."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    """Everything a conv2d kernel needs to know about the problem.

    Input ``(N, C, H, W)``, weight ``(K, C // groups, R, S)``, output ``(N, K, P, Q)``. ``pad_h``/``pad_w``
    are the top/left padding; bottom/right padding is implied by ``P``/``Q`` (it differs from the top one
    only for ``padding='same'`` with an odd total).
    """

    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    P: int
    Q: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    dil_h: int
    dil_w: int
    groups: int

    @property
    def channels_per_group(self) -> int:
        return self.C // self.groups

    @property
    def filters_per_group(self) -> int:
        return self.K // self.groups

    @property
    def is_depthwise(self) -> bool:
        """One input channel per group: each filter sees a single channel (channel multiplier K // C)."""
        return self.C // self.groups == 1 and self.groups == self.C

    @property
    def flops(self) -> int:
        """Multiply-adds times two of one forward pass: 2·N·K·(C/groups)·R·S·P·Q."""
        return 2 * self.N * self.K * self.channels_per_group * self.R * self.S * self.P * self.Q


def _padding_pair(padding: PaddingArg, kernel: tuple[int, int], dilation: tuple[int, int],
                  stride: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return ((top, bottom), (left, right)) padding."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            pads = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return pads[0], pads[1]
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    ph, pw = as_pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise RuntimeError("negative padding is not supported")
    return (ph, ph), (pw, pw)


def check_float_tensors(op: str, **tensors: torch.Tensor | None) -> None:
    """Same dtype, a floating dtype we support, and one device, as torch's convolutions require."""
    from ._runtime import check_device

    named = {name: t for name, t in tensors.items() if t is not None}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(t).__name__}")
    first_name, first = next(iter(named.items()))
    for name, t in named.items():
        if t.dtype != first.dtype:
            raise RuntimeError(
                f"{first_name.capitalize()} type ({first.dtype}) and {name} type ({t.dtype}) should be the same"
            )
    if first.dtype not in FLOAT_DTYPES:
        raise RuntimeError(f"{op}: \"{op}\" not implemented for '{first.dtype}'")
    check_device(*named.values())


def _check_stride_dilation_groups(stride: int | Sequence[int], dilation: int | Sequence[int], groups: int,
                                  op: str) -> tuple[tuple[int, int], tuple[int, int]]:
    s = as_pair(stride, "stride")
    d = as_pair(dilation, "dilation")
    if not isinstance(groups, int) or isinstance(groups, bool):
        raise TypeError(f"{op}(): argument 'groups' must be int, not {type(groups).__name__}")
    if min(s) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(d) <= 0:
        raise RuntimeError("non-positive dilation is not supported")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    return s, d


def _check_ranks(input_shape: Sequence[int], weight_shape: Sequence[int], op: str) -> None:
    if len(input_shape) != 4:
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to {op}, but got input of size: {list(input_shape)}"
        )
    if 0 in tuple(input_shape[2:]) and input_shape[0] != 0 and input_shape[1] != 0:
        raise RuntimeError(
            f"Only zero batch or zero channel inputs are supported, but got input shape: {list(input_shape)}"
        )
    if len(weight_shape) != 4:
        raise RuntimeError(
            f"weight should have 4 dimensions (out_channels, in_channels/groups, kH, kW), but got weight of "
            f"size {list(weight_shape)}"
        )


@memoised_check
def conv2d_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None = None,
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> ConvGeometry:
    """Check conv2d arguments as torch does and return the problem's geometry.

    ``input_shape`` is batched ``(N, C, H, W)``: the caller unsqueezes an unbatched input first.
    """
    _check_ranks(input_shape, weight_shape, "conv2d")
    s, d = _check_stride_dilation_groups(stride, dilation, groups, "conv2d")
    N, C, H, W = (int(v) for v in input_shape)
    K, Cg, R, S = (int(v) for v in weight_shape)
    if K < 1:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but got weight of "
            f"size {list(weight_shape)} instead"
        )
    if K % groups != 0:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight "
            f"of size [{list(weight_shape)}] instead"
        )
    if C != Cg * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight_shape)}, expected input{list(input_shape)} to "
            f"have {Cg * groups} channels, but got {C} channels instead"
        )
    if R < 1 or S < 1:
        raise RuntimeError(f"kernel size should be greater than zero, but got weight of size {list(weight_shape)}")
    if bias_shape is not None and tuple(bias_shape) != (K,):
        raise RuntimeError(
            f"Given weight of size {list(weight_shape)}, expected bias to be 1-dimensional with {K} elements, "
            f"but got bias of size {list(bias_shape)} instead"
        )
    (pt, pb), (pl, pr) = _padding_pair(padding, (R, S), d, s)
    padded_h, padded_w = H + pt + pb, W + pl + pr
    eff_r, eff_s = d[0] * (R - 1) + 1, d[1] * (S - 1) + 1
    if padded_h < eff_r or padded_w < eff_s:
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded_h} x {padded_w}). Kernel size: ({eff_r} x "
            f"{eff_s}). Kernel size can't be greater than actual input size"
        )
    P = conv_output_size(H, R, s[0], pt + pb, d[0])
    Q = conv_output_size(W, S, s[1], pl + pr, d[1])
    return ConvGeometry(N, C, H, W, K, R, S, P, Q, s[0], s[1], pt, pl, d[0], d[1], groups)


def conv_transpose2d_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int,
                                 dilation: int) -> int:
    """Output length of a transposed convolution along one axis:
    ``(size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


@memoised_check
def conv_transpose2d_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> ConvGeometry:
    """Check conv_transpose2d arguments as torch does and return the geometry of the convolution it
    transposes.

    A transposed convolution of ``x (N, Cin, Hin, Win)`` with ``weight (Cin, Cout/groups, R, S)`` is the
    input gradient of a convolution whose input is the transposed output ``(N, Cout, Hout, Wout)`` and whose
    output is ``x``. The returned geometry describes that convolution: ``C, H, W = Cout, Hout, Wout``,
    ``K, P, Q = Cin, Hin, Win``.
    """
    _check_ranks(input_shape, weight_shape, "conv_transpose2d")
    if isinstance(padding, str):
        raise TypeError("conv_transpose2d(): argument 'padding' must be tuple of ints, not str")
    s, d = _check_stride_dilation_groups(stride, dilation, groups, "conv_transpose2d")
    pad = as_pair(padding, "padding")
    out_pad = as_pair(output_padding, "output_padding")
    if min(pad) < 0:
        raise RuntimeError("negative padding is not supported")
    if min(out_pad) < 0:
        raise RuntimeError("negative output_padding is not supported")
    if any(op >= st and op >= dl for op, st, dl in zip(out_pad, s, d, strict=True)):
        raise RuntimeError(
            "output padding must be smaller than either stride or dilation, but got "
            f"output_padding_height: {out_pad[0]} output_padding_width: {out_pad[1]} stride_height: {s[0]} "
            f"stride_width: {s[1]} dilation_height: {d[0]} dilation_width: {d[1]}"
        )
    N, Cin, H, W = (int(v) for v in input_shape)
    Cin_w, Cout_g, R, S = (int(v) for v in weight_shape)
    if Cin_w < 1 or Cin_w % groups != 0:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight "
            f"of size [{list(weight_shape)}] instead"
        )
    if Cin != Cin_w:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight_shape)}, expected input{list(input_shape)} to have "
            f"{Cin_w} channels, but got {Cin} channels instead"
        )
    if R < 1 or S < 1:
        raise RuntimeError(f"kernel size should be greater than zero, but got weight of size {list(weight_shape)}")
    Cout = Cout_g * groups
    if bias_shape is not None and tuple(bias_shape) != (Cout,):
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight_shape)}, expected bias to be 1-dimensional with "
            f"{Cout} elements, but got bias of size {list(bias_shape)} instead"
        )
    Hout = conv_transpose2d_output_size(H, R, s[0], pad[0], out_pad[0], d[0])
    Wout = conv_transpose2d_output_size(W, S, s[1], pad[1], out_pad[1], d[1])
    if Hout < 1 or Wout < 1:
        raise RuntimeError(
            f"Given input size per channel: ({H} x {W}). Calculated output size per channel: ({Hout} x {Wout}). "
            "Output size is too small"
        )
    return ConvGeometry(N, Cout, Hout, Wout, Cin, R, S, H, W, s[0], s[1], pad[0], pad[1], d[0], d[1], groups)


def _strides_like_channels_last(t: torch.Tensor) -> bool:
    """Torch's test of whether a 4-D tensor's strides order its dimensions as N, H, W, C (innermost C)."""
    sizes, strides = t.shape, t.stride()
    if strides[1] == 0:
        return False
    bound = 0
    for dim in (1, 3, 2, 0):
        if sizes[dim] == 0 or strides[dim] < bound:
            return False
        if dim == 0 and bound == strides[1]:
            return False
        bound = strides[dim] * (sizes[dim] if sizes[dim] > 1 else 1)
    return True


def prefers_channels_last(*tensors: torch.Tensor | None) -> bool:
    """Torch's rule for a convolution's output layout: channels_last when an operand's strides are."""
    return any(t is not None and t.dim() == 4 and _strides_like_channels_last(t) for t in tensors)


def conv_output_channels_last(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Torch's rule for a convolution's (or transposed convolution's) output layout: channels_last when the
    input's or the weight's strides are, except in float64 on CUDA, where torch's rule gives contiguous."""
    if x.is_cuda and torch.float64 in (x.dtype, weight.dtype):
        return False
    return prefers_channels_last(x, weight)


def empty_4d(shape: Sequence[int], like: torch.Tensor, channels_last: bool, dtype: torch.dtype | None = None
             ) -> torch.Tensor:
    """An uninitialised ``(N, C, H, W)`` tensor on ``like``'s device in the requested layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(tuple(shape), dtype=dtype or like.dtype, device=like.device, memory_format=fmt)
