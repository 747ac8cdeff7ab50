"""Shape arithmetic and argument checks, shared by the launchers, the modules and the tests.

Every check raises the exception type and message that ``torch.nn.functional`` raises for the same mistake,
checking in torch's order. Where torch's CPU and CUDA backends word a check differently, the message follows
the backend of the input's device.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

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


# --------------------------------------------------------------------------------------------------------
# Argument types, parsed as torch's argument parser does. An int is a Python int (not a bool), another
# integral number (NumPy's) or a 0-dim integer tensor; a ``tuple of ints`` is an int (repeated) or a tuple,
# list or torch.Size of ints.


def _int_like(value: object) -> bool:
    if type(value) is int:
        return True
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    """The name torch's argument parser gives the type of ``value``."""
    return "Tensor" if isinstance(value, torch.Tensor) else type(value).__name__


def int_list(value: object, name: str, op: str) -> tuple[int, ...]:
    """A ``tuple of ints`` argument: ``3 -> (3, 3)``, ``[1, 2] -> (1, 2)``, ``[4] -> (4,)``; another type raises
    torch's TypeError for function ``op``."""
    if type(value) is int:
        return (value, value)
    if isinstance(value, tuple | list | torch.Size):
        if all(type(v) is int for v in value):
            return tuple(value)
        if all(_int_like(v) for v in value):
            return tuple(int(v) for v in value)
    elif _int_like(value):
        return (int(value), int(value))
    raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, not {_type_name(value)}")


def int_arg(value: object, name: str, op: str) -> int:
    """An ``int`` argument; another type raises torch's TypeError for function ``op``."""
    if _int_like(value):
        return int(value)
    raise TypeError(f"{op}(): argument '{name}' must be int, not {_type_name(value)}")


def _expand(values: tuple[int, ...], name: str, dim: int) -> tuple[int, ...]:
    """One value per spatial dimension: a single value is repeated, other lengths must be ``dim``."""
    if len(values) == 1:
        return values * dim
    if len(values) != dim:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {dim} values to match the "
                           f"convolution dimensions, but got {name}={list(values)}")
    return values


def as_pair(value: int | Sequence[int], name: str, op: str = "conv2d") -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(1, 2) -> (1, 2)``; ``[4] -> (4, 4)``; anything else raises as torch does (TypeError
    for a wrong type, RuntimeError for a wrong length)."""
    first, second = _expand(int_list(value, name, op), name, 2)
    return first, second


_CONV_OVERLOADS = (
    " * (Tensor input, Tensor weight, Tensor bias = None, tuple of ints stride = 1, tuple of ints padding = 0, "
    "tuple of ints dilation = 1, int groups = 1)\n"
    " * (Tensor input, Tensor weight, Tensor bias = None, tuple of ints stride = 1, str padding = \"valid\", "
    "tuple of ints dilation = 1, int groups = 1)\n"
)


def _conv2d_type_error(tensors: Sequence[str], stride: object, padding: object, dilation: object,
                       groups: object, op: str = "conv2d") -> TypeError:
    """torch's TypeError for conv2d arguments of a wrong type. conv2d has two overloads, so torch lists the types
    it received (``tensors``: those of input, weight and a bias; the others by keyword where not defaults)."""
    params = {"stride": (stride, 1), "padding": (padding, 0), "dilation": (dilation, 1), "groups": (groups, 1)}
    got = [*tensors, *(f"{k}={_type_name(v)}" for k, (v, default) in params.items()
                       if type(v) is not int or v != default)]
    return TypeError(f"{op}() received an invalid combination of arguments - got ({', '.join(got)}), but "
                     f"expected one of:\n{_CONV_OVERLOADS}")


def _conv2d_parameters(tensors: Sequence[str], stride: object, padding: object, dilation: object, groups: object
                       ) -> tuple[tuple[int, ...], tuple[int, ...] | str, tuple[int, ...], int]:
    """conv2d's stride, padding (a string stays one), dilation and groups, parsed as torch does."""
    try:
        return (int_list(stride, "stride", "conv2d"),
                padding if isinstance(padding, str) else int_list(padding, "padding", "conv2d"),
                int_list(dilation, "dilation", "conv2d"), int_arg(groups, "groups", "conv2d"))
    except TypeError:
        raise _conv2d_type_error(tensors, stride, padding, dilation, groups) from None


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of a convolution along one axis: ``floor((size + pad_total - dilation*(kernel-1) - 1)
    / stride) + 1``, where ``pad_total`` is the sum of the padding on both sides."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


class GroupedChannels:
    """What every rank's convolution geometry derives from its channels ``C``, filters ``K`` and ``groups``."""

    C: int
    K: int
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


class Window2d:
    """The per-axis window tuples of every 2-D geometry (convolution and pooling) from its ``_h``/``_w``
    fields (which the dataclass declares)."""

    @property
    def stride(self) -> tuple[int, int]:
        return self.stride_h, self.stride_w

    @property
    def padding(self) -> tuple[int, int]:
        return self.pad_h, self.pad_w

    @property
    def dilation(self) -> tuple[int, int]:
        return self.dil_h, self.dil_w


@dataclass(frozen=True)
class ConvGeometry(GroupedChannels, Window2d):
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
    rank: ClassVar[int] = 2  # (spatial axes)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self.N, self.C, self.H, self.W

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return self.K, self.channels_per_group, self.R, self.S

    @property
    def output_size(self) -> tuple[int, int]:
        """The output's spatial size ``(P, Q)``."""
        return self.P, self.Q

    @property
    def flops(self) -> int:
        """Multiply-adds times two of one forward pass: 2·N·K·(C/groups)·R·S·P·Q."""
        return 2 * self.N * self.K * self.channels_per_group * self.R * self.S * self.P * self.Q


# --------------------------------------------------------------------------------------------------------
# Tensor checks


# the C++ names of dtypes, which torch's conv2d uses in its bias check
_CPP_DTYPE_NAMES = {
    torch.float32: "float", torch.float64: "double", torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16",
    torch.int64: "long int", torch.int32: "int", torch.int16: "short int", torch.int8: "signed char",
    torch.uint8: "unsigned char", torch.bool: "bool", torch.complex64: "c10::complex<float>",
    torch.complex128: "c10::complex<double>",
}


def legacy_type_name(t: torch.Tensor) -> str:
    """A tensor's type as torch's messages name it: ``torch.FloatTensor``, ``torch.cuda.HalfTensor``; bfloat16,
    which has no legacy name, as ``CPUBFloat16Type`` / ``CUDABFloat16Type``."""
    if t.dtype == torch.bfloat16:
        return f"{t.device.type.upper()}BFloat16Type"
    return t.type()


def check_conv_arguments(op: str, input: object, weight: object, bias: object, stride: object, padding: object,
                         dilation: object, groups: object,
                         parse_parameters: Callable[[object, object, object, object], object]) -> None:
    """What torch checks of a convolution's arguments before their shapes: their types (one TypeError for all,
    ``op`` being overloaded), then, unless padding is a string, that bias and input have one dtype; a parameter
    of a wrong type is reported before that (``parse_parameters(stride, padding, dilation, groups)`` raises a
    TypeError for one)."""
    if not (isinstance(input, torch.Tensor) and isinstance(weight, torch.Tensor)
            and (bias is None or isinstance(bias, torch.Tensor))):
        tensors = [_type_name(input), _type_name(weight), *([] if bias is None else [_type_name(bias)])]
        raise _conv2d_type_error(tensors, stride, padding, dilation, groups, op)
    if bias is not None and bias.dtype != input.dtype and not isinstance(padding, str):
        try:
            parse_parameters(stride, padding, dilation, groups)
        except TypeError:
            raise _conv2d_type_error(["Tensor"] * 3, stride, padding, dilation, groups, op) from None
        raise RuntimeError(f"Input type ({_CPP_DTYPE_NAMES.get(input.dtype, input.dtype)}) and bias type "
                           f"({_CPP_DTYPE_NAMES.get(bias.dtype, bias.dtype)}) should be the same")


def check_conv2d_arguments(input: object, weight: object, bias: object, stride: object, padding: object,
                           dilation: object, groups: object) -> None:
    """:func:`check_conv_arguments` for conv2d."""
    check_conv_arguments("conv2d", input, weight, bias, stride, padding, dilation, groups,
                         lambda *parameters: _conv2d_parameters(["Tensor"] * 3, *parameters))


def check_tensor_arguments(op: str, input: object, weight: object, bias: object) -> None:
    """torch's TypeError for a tensor argument of ``op`` (not overloaded) that is not a tensor."""
    for name, value in (("input", input), ("weight", weight), ("bias", bias)):
        if not isinstance(value, torch.Tensor) and not (name == "bias" and value is None):
            raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {_type_name(value)}")


def check_conv_tensors(op: str, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """torch's check of a convolution's tensors once their shapes passed: weight and bias of the input's type
    (dtype and device type; torch's CPU backend, oneDNN, adds a remark on MKLDNN tensors, its CUDA one does not).
    Then what the kernels need: a floating dtype and one device they reach."""
    from ._runtime import check_device

    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dtype != input.dtype or t.is_cuda != input.is_cuda):
            remark = "" if input.is_cuda else f" or input should be a MKLDNN tensor and {name} is a dense tensor"
            raise RuntimeError(f"Input type ({legacy_type_name(input)}) and {name} type ({legacy_type_name(t)}) "
                               f"should be the same{remark}")
    if input.dtype not in FLOAT_DTYPES:
        raise RuntimeError(f"{op}: \"{op}\" not implemented for '{input.dtype}'")
    check_device(input, weight, bias)


# --------------------------------------------------------------------------------------------------------
# Shape checks, in torch's order


class ConvBackendError(RuntimeError):
    """An argument value torch's convolution backends reject, after its shape checks and after checking the
    tensors' types (:func:`check_conv_tensors`), which a caller therefore checks before re-raising this."""


def _rank_error(input_shape: Sequence[int], weight_shape: Sequence[int]) -> RuntimeError:
    k = len(weight_shape)
    sep = " " if len(input_shape) == 3 else ""  # torch's 1-D convolutions put a space before the weight's size
    return RuntimeError(f"Expected {k}-dimensional input for {k}-dimensional weight{sep}{list(weight_shape)}, but got "
                        f"{len(input_shape)}-dimensional input of size {list(input_shape)} instead")


def _check_batched(input_shape: Sequence[int], op: str) -> None:
    if len(input_shape) != 4:
        raise RuntimeError(f"Expected 3D (unbatched) or 4D (batched) input to {op}, but got input of size: "
                           f"{list(input_shape)}")


def _same_padding(input_shape: Sequence[int], weight_shape: Sequence[int], stride: tuple[int, ...],
                  dilation: tuple[int, ...], groups: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """torch's checks for ``padding='same'`` and the padding it implies: top/left, and the extra bottom/right
    padding of an odd total."""
    k = len(weight_shape)
    if k < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if k != len(input_shape):
        raise _rank_error(input_shape, weight_shape)
    dim = k - 2
    for name, values in (("stride", stride), ("dilation", dilation)):
        if len(values) not in (dim, 1):
            raise RuntimeError(f"{name} cannot broadcast to {dim} dimensions")
    if any(v != 1 for v in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    left, extra = [], []
    for i, d in enumerate(_expand(dilation, "dilation", dim)):
        total = d * (weight_shape[i + 2] - 1)
        first = total // 2 if total >= 0 else -(-total // 2)  # C++ division
        left.append(first)
        extra.append(total - 2 * first)
    return tuple(left), tuple(extra)


def _check_convolution(input_shape: Sequence[int], weight_shape: Sequence[int], bias_shape: Sequence[int] | None,
                       stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
                       output_padding: tuple[int, ...], transposed: bool, extra: tuple[int, ...] | None = None
                       ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """torch's checks of a batched convolution up to its choice of a backend, in its order; returns stride,
    padding, dilation and output_padding, one value per spatial dimension. ``extra``: padding added at the
    bottom/right (odd 'same' padding)."""
    dim = len(weight_shape) - 2
    if dim <= 0:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    extra = extra or (0,) * dim
    s, p = _expand(stride, "stride", dim), _expand(padding, "padding", dim)
    d, op = _expand(dilation, "dilation", dim), _expand(output_padding, "output_padding", dim)
    if min(p) < 0:
        raise RuntimeError("negative padding is not supported")
    if min(op) < 0:
        raise RuntimeError("negative output_padding is not supported")
    if min(s) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if min(d) < 0:
        raise RuntimeError("dilation should be greater than zero")
    if len(weight_shape) != len(input_shape):
        raise _rank_error(input_shape, weight_shape)
    w = list(weight_shape)
    if w[0] < groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but got "
                           f"weight of size {w} instead")
    if w[0] % groups != 0:  # torch's message has the doubled brackets
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{w}] instead")
    channels = input_shape[1]
    if not transposed:
        if channels != w[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {w}, expected input{list(input_shape)} to "
                               f"have {w[1] * groups} channels, but got {channels} channels instead")
        if bias_shape is not None and tuple(bias_shape) != (w[0],):
            raise RuntimeError(f"Given weight of size {w}, expected bias to be 1-dimensional with {w[0]} elements, "
                               f"but got bias of size {list(bias_shape)} instead")
        padded = [input_shape[i + 2] + 2 * p[i] + extra[i] for i in range(dim)]
        kernel = [d[i] * (w[i + 2] - 1) + 1 for i in range(dim)]
        if any(a < b for a, b in zip(padded, kernel, strict=True)):
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel "
                               f"size: ({' x '.join(map(str, kernel))}). Kernel size can't be greater than actual "
                               "input size")
    else:
        if channels != w[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {w}, expected input{list(input_shape)} to have "
                               f"{w[0]} channels, but got {channels} channels instead")
        if bias_shape is not None and tuple(bias_shape) != (w[1] * groups,):
            raise RuntimeError(f"Given transposed=1, weight of size {w}, expected bias to be 1-dimensional with "
                               f"{w[1] * groups} elements, but got bias of size {list(bias_shape)} instead")
    if input_shape[0] != 0 and channels != 0 and 0 in tuple(input_shape[2:]):
        # torch's 1-D convolutions view their input as 4-D (H = 1) before this check
        shape = list(input_shape) if dim != 1 else [*input_shape[:2], 1, input_shape[2]]
        raise RuntimeError(f"Only zero batch or zero channel inputs are supported, but got input shape: {shape}")
    return s, p, d, op


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
    """Check conv2d arguments as torch does, in its order, and return the problem's geometry.

    ``input_shape`` is batched ``(N, C, H, W)``: the caller unsqueezes an unbatched input first. Zero input
    channels pass (torch then gives zero output channels, which the caller handles). A value that torch's
    backends reject raises :class:`ConvBackendError`.
    """
    tensors = ["Tensor"] * (2 if bias_shape is None else 3)
    s, p, d, groups = _conv2d_parameters(tensors, stride, padding, dilation, groups)
    _check_batched(input_shape, "conv2d")
    extra: tuple[int, ...] = (0, 0)
    if p == "valid":
        p = (0,)
    elif p == "same":
        p, extra = _same_padding(input_shape, weight_shape, s, d, groups)
    elif isinstance(p, str):
        raise RuntimeError(f"Invalid padding string: '{p}'")
    s, p, d, _ = _check_convolution(input_shape, weight_shape, bias_shape, s, p, d, groups, (0, 0), False, extra)
    N, C, H, W = (int(v) for v in input_shape)
    K, _, R, S = (int(v) for v in weight_shape)
    if min(d) == 0 and N and C:  # torch sends an empty input to no backend
        raise ConvBackendError("non-positive dilation is not supported")
    if (R < 1 or S < 1) and C:  # (nor computes anything without input channels)
        raise ConvBackendError(f"kernel size should be greater than zero, but got kernel_height: {R} kernel_width: {S}")
    P = conv_output_size(H, R, s[0], 2 * p[0] + extra[0], d[0])
    Q = conv_output_size(W, S, s[1], 2 * p[1] + extra[1], d[1])
    return ConvGeometry(N, C, H, W, K, R, S, P, Q, s[0], s[1], p[0], p[1], d[0], d[1], groups)


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
    """Check conv_transpose2d arguments as torch does, in its order, and return the geometry of the convolution
    it transposes (a value that torch's backends reject raises :class:`ConvBackendError`).

    A transposed convolution of ``x (N, Cin, Hin, Win)`` with ``weight (Cin, Cout/groups, R, S)`` is the
    input gradient of a convolution whose input is the transposed output ``(N, Cout, Hout, Wout)`` and whose
    output is ``x``. The returned geometry describes that convolution: ``C, H, W = Cout, Hout, Wout``,
    ``K, P, Q = Cin, Hin, Win``.
    """
    op = "conv_transpose2d"
    s, p, out_p = (int_list(v, n, op) for v, n in ((stride, "stride"), (padding, "padding"),
                                                    (output_padding, "output_padding")))
    groups = int_arg(groups, "groups", op)
    d = int_list(dilation, "dilation", op)
    _check_batched(input_shape, op)
    s, p, d, out_p = _check_convolution(input_shape, weight_shape, bias_shape, s, p, d, groups, out_p, True)
    N, Cin, H, W = (int(v) for v in input_shape)
    _, Cout_g, R, S = (int(v) for v in weight_shape)
    if R < 1 or S < 1:
        raise ConvBackendError(f"kernel size should be greater than zero, but got kernel_height: {R} kernel_width: {S}")
    if N:  # torch sends an empty input to no backend, so makes none of these checks
        if min(d) == 0:
            raise ConvBackendError(f"dilation should be greater than zero, but got dilation_height: {d[0]}, "
                                   f"dilation_width: {d[1]}")
        if Cout_g == 0:
            raise ConvBackendError(f"non-empty 2D or 4D weight tensor expected, but got: {list(weight_shape)}")
        if any(o >= st and o >= dl for o, st, dl in zip(out_p, s, d, strict=True)):
            raise ConvBackendError(
                "output padding must be smaller than either stride or dilation, but got "
                f"output_padding_height: {out_p[0]} output_padding_width: {out_p[1]} stride_height: {s[0]} "
                f"stride_width: {s[1]} dilation_height: {d[0]} dilation_width: {d[1]}"
            )
    Hout = conv_transpose2d_output_size(H, R, s[0], p[0], out_p[0], d[0])
    Wout = conv_transpose2d_output_size(W, S, s[1], p[1], out_p[1], d[1])
    if Hout < 1 or Wout < 1:
        raise ConvBackendError(
            f"Given input size per channel: ({H} x {W}). Calculated output size per channel: ({Hout} x {Wout}). "
            "Output size is too small"
        )
    return ConvGeometry(N, Cout_g * groups, Hout, Wout, Cin, R, S, H, W, s[0], s[1], p[0], p[1], d[0], d[1], groups)


def strides_like_channels_last(t: torch.Tensor) -> bool:
    """Torch's test of whether a 4-D or 5-D tensor's strides order its dimensions as N, (D,) H, W, C (innermost
    C): channels_last or channels_last_3d."""
    sizes, strides = t.shape, t.stride()
    if strides[1] == 0:
        return False
    bound = 0
    for dim in (1, *range(t.dim() - 1, 1, -1), 0):
        if sizes[dim] == 0 or strides[dim] < bound:
            return False
        if dim == 0 and bound == strides[1]:
            return False
        bound = strides[dim] * (sizes[dim] if sizes[dim] > 1 else 1)
    return True


def prefers_channels_last(*tensors: torch.Tensor | None) -> bool:
    """Torch's rule for a convolution's output layout: channels_last when a 4-D operand's strides are."""
    return any(t is not None and t.dim() == 4 and strides_like_channels_last(t) for t in tensors)


def conv_output_channels_last(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Torch's rule for a convolution's (or transposed convolution's) output layout: channels_last when the
    input's or the weight's strides are, except in float64 on CUDA, where torch's rule gives contiguous."""
    if x.is_cuda and torch.float64 in (x.dtype, weight.dtype):
        return False
    return prefers_channels_last(x, weight)


def empty_nd(shape: Sequence[int], like: torch.Tensor, channels_last: bool, dtype: torch.dtype | None = None
             ) -> torch.Tensor:
    """An uninitialised ``(N, C, *spatial)`` tensor on ``like``'s device in the requested layout (channels_last
    for 4-D shapes, channels_last_3d for 5-D ones)."""
    fmt = torch.contiguous_format
    if channels_last:
        fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    return torch.empty(tuple(shape), dtype=dtype or like.dtype, device=like.device, memory_format=fmt)
