"""Shape arithmetic and argument checks of the 2-D pooling family, shared by the launchers and the tests.

Every check raises the exception type that ``torch.nn.functional`` raises on the CPU for the same mistake,
with torch's wording where that helps a user search for it.

Window conventions (per axis, input length ``H``, output length ``P``):

* max/avg pooling: output ``p`` reads rows ``p*stride - pad + r*dilation`` for ``r < kernel`` (avg has no
  dilation); ``P`` follows :func:`pool_output_size` (torch's rule, ceil_mode included).
* adaptive pooling: output ``p`` reads rows ``[floor(p*H/P), ceil((p+1)*H/P))``
  (:func:`adaptive_window`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ._runtime import TORCH_VERSION
from .shapes import FLOAT_DTYPES, Window2d, memoised_check

_INT_MAX = 2**31 - 1

IntPair = int | Sequence[int]


# --------------------------------------------------------------------------------------------------------
# Arithmetic


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """Output length along one axis, torch's rule: ``floor((size + 2*pad - dilation*(kernel-1) - 1
    [+ stride-1 if ceil_mode]) / stride) + 1``; under ceil_mode a last window that would start in the
    bottom/right padding is dropped."""
    out = (size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def adaptive_window(index: int, size: int, out: int) -> tuple[int, int]:
    """Rows ``[start, end)`` read by adaptive output ``index`` of ``out`` over an input of length ``size``."""
    return (index * size) // out, -((-(index + 1) * size) // out)


def adaptive_max_window(size: int, out: int) -> int:
    """An upper bound (exact in the common cases) on the length of an adaptive window."""
    if out <= 0:
        return 0
    if size % out == 0:
        return size // out
    return -(-size // out) + 1


def adaptive_max_cover(size: int, out: int) -> int:
    """An upper bound (exact in the common cases) on how many adaptive windows contain one input row."""
    if out <= 0:
        return 0
    if size % out == 0 or out % size == 0:
        return -(-out // size)
    return -(-out // size) + 1


def window_max_cover(kernel: int, stride: int, dilation: int = 1) -> int:
    """An upper bound on how many strided windows of effective extent ``dilation*(kernel-1)+1`` contain one
    input row: ``ceil(extent / stride)``."""
    return -(-(dilation * (kernel - 1) + 1) // stride)


@dataclass(frozen=True)
class PoolGeometry(Window2d):
    """Everything a pooling kernel needs: input ``(N, C, H, W)``, output ``(N, C, P, Q)``.

    For max/avg pooling, window ``(p, q)`` reads rows ``p*stride_h - pad_h + r*dil_h`` (``r < kh``) and the
    columns likewise. For adaptive pooling (``adaptive``), ``kh``/``kw`` bound the adaptive window lengths,
    stride and padding are 0 and dilation 1. ``divisor`` is avg pooling's ``divisor_override`` (0: none).
    ``cover_h``/``cover_w`` bound the number of windows that contain one input pixel (the backward gathers).
    """

    N: int
    C: int
    H: int
    W: int
    P: int
    Q: int
    kh: int
    kw: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dil_h: int = 1
    dil_w: int = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor: int = 0
    adaptive: bool = False
    rank: ClassVar[int] = 2  # (spatial axes)

    @property
    def kernel(self) -> tuple[int, int]:
        return self.kh, self.kw

    @property
    def cover_h(self) -> int:
        if self.adaptive:
            return adaptive_max_cover(self.H, self.P)
        return window_max_cover(self.kh, self.stride_h, self.dil_h)

    @property
    def cover_w(self) -> int:
        if self.adaptive:
            return adaptive_max_cover(self.W, self.Q)
        return window_max_cover(self.kw, self.stride_w, self.dil_w)

    @property
    def window_extent(self) -> tuple[int, int]:
        """Rows and columns one window spans, dilation gaps included (adaptive: the length bounds)."""
        if self.adaptive:
            return self.kh, self.kw
        return self.dil_h * (self.kh - 1) + 1, self.dil_w * (self.kw - 1) + 1

    def saved_index_dtype(self, return_indices: bool) -> torch.dtype:
        """The dtype of max pooling's saved maxima: torch's int64 flat indices ``h*W + w`` when they are
        returned, else one byte (uint8) per output holding the position inside the window when a window spans
        at most 256 positions (:func:`kernels.jit.pool2d.max_pool2d_fwd_kernel`), else int64 flat indices."""
        extent_h, extent_w = self.window_extent
        return torch.int64 if return_indices or extent_h * extent_w > 256 else torch.uint8

    @property
    def is_global(self) -> bool:
        """One window over the whole plane (global pooling): the reduction kernels apply."""
        return self.adaptive and self.P == 1 and self.Q == 1

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.P, self.Q)


def pool2d_bytes(g: PoolGeometry, dtype: torch.dtype, *, indices: bool = False, return_indices: bool = False
                 ) -> int:
    """Bytes moved through memory by one pass, forward or backward, for GB/s figures (each kernel reads
    every element of its inputs once and writes every element of its output once).

    Forward: ``N*C*(H*W + P*Q) * itemsize`` (read x, write y) plus ``N*C*P*Q * index_size`` when the maxima
    are saved. Backward: the same count (read grad_out, write grad_in), plus ``N*C*P*Q * index_size`` when the
    saved maxima are read (max pooling). ``index_size``: 8 with ``return_indices`` (int64), else the size of
    :meth:`PoolGeometry.saved_index_dtype` (1 for windows of up to 256 positions).
    """
    item = torch.empty((), dtype=dtype).element_size()
    planes = g.N * g.C
    total = planes * (g.H * g.W + g.P * g.Q) * item
    if indices:
        index = torch.empty((), dtype=g.saved_index_dtype(return_indices)).element_size()
        total += planes * g.P * g.Q * index
    return total


# --------------------------------------------------------------------------------------------------------
# Argument parsing


def _int_like(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.dtype.is_floating_point and value.dtype != torch.bool
    return False


def _pool_ints(value: object, name: str, op: str) -> tuple[int, ...]:
    """A ``tuple of ints`` argument as torch's argument parser reads it: ``3 -> (3, 3)``, a sequence of ints as
    it is; another type raises its TypeError."""
    if _int_like(value):
        v = operator.index(value)
        return (v, v)
    if isinstance(value, torch.Size | tuple | list):
        for pos, v in enumerate(value):
            if not _int_like(v):
                raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, but found element of type "
                                f"{type(v).__name__} at pos {pos}")
        return tuple(operator.index(v) for v in value)
    raise TypeError(f"{op}(): argument '{name}' must be tuple of ints, not {type(value).__name__}")


_PAIR_RULES = {
    "kernel_size": "kernel_size must either be a single int, or a tuple of two ints",
    "stride": "stride must either be omitted, a single int, or a tuple of two ints",
    "padding": "padding must either be a single int, or a tuple of two ints",
    "dilation": "dilation must be either a single int, or a tuple of two ints",
}


def _as_pool_pair(items: tuple[int, ...], name: str, op: str, allow_empty: bool = False) -> tuple[int, int] | None:
    if len(items) == 0 and allow_empty:
        return None
    if len(items) == 1:
        return (items[0], items[0])
    if len(items) == 2:
        return (items[0], items[1])
    raise RuntimeError(f"{op}: {_PAIR_RULES[name]}")


def pool_pair(value: object, name: str, op: str, *, allow_empty: bool = False) -> tuple[int, int] | None:
    """``3 -> (3, 3)``, ``(1, 2) -> (1, 2)``, ``[3] -> (3, 3)``; ``()`` -> None when ``allow_empty``
    (stride: default to the kernel). Wrong types raise TypeError, wrong lengths RuntimeError, as torch."""
    return _as_pool_pair(_pool_ints(value, name, op), name, op, allow_empty)


def _check_bool(value: object, name: str, op: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{op}(): argument '{name}' must be bool, not {type(value).__name__}")


def check_pool_input(input: object, op: str) -> None:
    """A tensor of a floating dtype this package supports, on a device its kernels reach."""
    from ._runtime import check_device

    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if input.dtype not in FLOAT_DTYPES:
        raise NotImplementedError(f"\"{op}\" not implemented for '{input.dtype}' (floating dtypes only)")
    check_device(input)


def _check_window_input(shape: Sequence[int], op: str) -> None:
    """3-D or 4-D, with non-zero sizes except an optional zero batch (max_pool2d, avg_pool2d)."""
    dims = len(shape)
    if dims == 0 and op == "avg_pool2d":
        raise IndexError("Dimension specified as -3 but tensor has no dimensions")
    if dims < 3 and op == "avg_pool2d":
        raise IndexError(f"Dimension out of range (expected to be in range of [{-max(dims, 1)}, "
                         f"{max(dims, 1) - 1}], but got -3)")
    if dims not in (3, 4):
        if op == "max_pool2d":
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                           f"but got:{list(shape)}")
    if any(s == 0 for s in shape[dims - 3:]):
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                           f"but got:{list(shape)}")


WindowArgs = tuple[tuple[int, ...], tuple[int, ...] | None, tuple[int, ...], tuple[int, ...]]


def _parse_window(parser: str, kernel_size: object, stride: object, padding: object, dilation: object,
                  ceil_mode: object) -> WindowArgs:
    """The window arguments' types, checked in torch's order (``parser``: the function its TypeErrors name)."""
    k = _pool_ints(kernel_size, "kernel_size", parser)
    s = None if stride is None else _pool_ints(stride, "stride", parser)
    p = _pool_ints(padding, "padding", parser)
    d = _pool_ints(dilation, "dilation", parser)
    _check_bool(ceil_mode, "ceil_mode", parser)
    return k, s, p, d


def _window_geometry(shape: Sequence[int], op: str, args: WindowArgs, ceil_mode: bool
                     ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Checked (kh, kw, sh, sw, ph, pw, dh, dw) and (N, C, H, W, P, Q), from the parsed ``args``."""
    k = _as_pool_pair(args[0], "kernel_size", op)
    s = None if args[1] is None else _as_pool_pair(args[1], "stride", op, allow_empty=True)
    s = s or k
    p = _as_pool_pair(args[2], "padding", op)
    d = _as_pool_pair(args[3], "dilation", op)
    assert k is not None and s is not None and p is not None and d is not None
    if op == "avg_pool2d" and TORCH_VERSION < (2, 13) and not (
            all(0 < v <= _INT_MAX for v in k) and all(0 <= v <= _INT_MAX for v in s)):
        raise RuntimeError("integer out of range")  # (torch 2.11 and 2.12 check the int casts first)
    _check_window_input(shape, op)
    if s[0] == 0 or s[1] == 0:
        raise RuntimeError("stride should not be zero")
    if min(p) < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {min(p)}")
    for kk, pp, dd in zip(k, p, d, strict=True):
        if kk > 0 and dd > 0 and pp > ((kk - 1) * dd + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
    if min(k) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {k[0]} kW: {k[1]}")
    if min(s) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {s[0]} dW: {s[1]}")
    if min(d) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {d[0]} "
                           f"dilationW: {d[1]}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got "
                           f"padW = {p[1]}, padH = {p[0]}, kW = {k[1]}, kH = {k[0]}")
    N = int(shape[0]) if len(shape) == 4 else 1
    C, H, W = (int(v) for v in shape[-3:])
    P = pool_output_size(H, k[0], s[0], p[0], d[0], ceil_mode)
    Q = pool_output_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    if P < 1 or Q < 1:
        raise RuntimeError(f"Given input size: ({C}x{H}x{W}). Calculated output size: ({C}x{P}x{Q}). "
                           "Output size is too small")
    return (*k, *s, *p, *d), (N, C, H, W, P, Q)


@memoised_check
def max_pool2d_geometry(shape: Sequence[int], kernel_size: IntPair, stride: IntPair | None = None,
                        padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
                        return_indices: bool = False) -> PoolGeometry:
    """Check ``max_pool2d`` arguments for an input of ``shape`` (3-D or 4-D) as torch does (``return_indices``:
    torch's TypeErrors then name ``max_pool2d_with_indices``)."""
    args = _parse_window("max_pool2d_with_indices" if return_indices else "max_pool2d", kernel_size, stride,
                         padding, dilation, ceil_mode)
    (kh, kw, sh, sw, ph, pw, dh, dw), (N, C, H, W, P, Q) = _window_geometry(shape, "max_pool2d", args, ceil_mode)
    return PoolGeometry(N, C, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode)


@memoised_check
def avg_pool2d_geometry(shape: Sequence[int], kernel_size: IntPair, stride: IntPair | None = None,
                        padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None) -> PoolGeometry:
    """Check ``avg_pool2d`` arguments for an input of ``shape`` (3-D or 4-D) as torch does."""
    args = _parse_window("avg_pool2d", kernel_size, stride, padding, 1, ceil_mode)
    _check_bool(count_include_pad, "count_include_pad", "avg_pool2d")
    if divisor_override is not None and (isinstance(divisor_override, bool)
                                         or not isinstance(divisor_override, int)):
        raise TypeError("avg_pool2d(): argument 'divisor_override' must be int, not "
                        f"{type(divisor_override).__name__}")
    (kh, kw, sh, sw, ph, pw, _, _), (N, C, H, W, P, Q) = _window_geometry(shape, "avg_pool2d", args, ceil_mode)
    if divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    return PoolGeometry(N, C, H, W, P, Q, kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode, count_include_pad,
                        divisor_override or 0)


def adaptive_output_size(shape: Sequence[int], output_size: object, op: str) -> tuple[int, int]:
    """``output_size`` as a pair, ``None`` entries taking the input's size (as torch.nn.functional)."""
    if output_size is None or isinstance(output_size, float | str):
        raise TypeError(f"object of type '{type(output_size).__name__}' has no len()")
    if isinstance(output_size, bool):
        raise TypeError(f"{op}(): argument 'output_size' (position 2) must be tuple of ints, not bool")
    if _int_like(output_size):
        v = operator.index(output_size)
        items: tuple = (v, v)
    elif isinstance(output_size, torch.Size | tuple | list):
        items = tuple(output_size)
    else:
        raise TypeError(f"{op}(): argument 'output_size' (position 2) must be tuple of ints, not "
                        f"{type(output_size).__name__}")
    if len(items) != 2:
        if op == "adaptive_avg_pool2d":
            raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
        raise RuntimeError("adaptive_max_pool2d(): internal error: output_size.size() must be 2")
    out = []
    for pos, (v, size) in enumerate(zip(items, shape[-2:], strict=True)):
        if v is None:
            v = int(size)
        elif not _int_like(v):
            raise TypeError(f"{op}(): argument 'output_size' (position 2) must be tuple of ints, but found "
                            f"element of type {type(v).__name__} at pos {pos}")
        out.append(operator.index(v))
    return out[0], out[1]


@memoised_check
def adaptive_pool2d_geometry(shape: Sequence[int], output_size: object, op: str) -> PoolGeometry:
    """Check adaptive pooling arguments (``op``: 'adaptive_avg_pool2d' or 'adaptive_max_pool2d')."""
    dims = len(shape)
    if dims not in (3, 4):
        sep = ":" if op == "adaptive_max_pool2d" else ""
        raise RuntimeError(f"{op}(): Expected 3D or 4D tensor, but got{sep} {list(shape)}")
    first = dims - 2 if op == "adaptive_avg_pool2d" else 1
    for d in range(first, dims):
        if shape[d] == 0:
            raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch dimensions, but "
                               f"input has sizes {list(shape)} with dimension {d} being empty")
    P, Q = adaptive_output_size(shape, output_size, op)
    if P < 0 or Q < 0:
        if op == "adaptive_avg_pool2d":
            raise RuntimeError("adaptive_avg_pool2d: elements of output_size must be greater than or equal "
                               f"to 0 but received {{{P}, {Q}}}")
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(P, Q)}: "
                           f"{[*list(shape[:-2]), P, Q]}")
    N = int(shape[0]) if dims == 4 else 1
    C, H, W = (int(v) for v in shape[-3:])
    if (H + 1) * (P + 1) >= 2**31 or (W + 1) * (Q + 1) >= 2**31:
        raise RuntimeError(f"{op}: input size {H}x{W} times output size {P}x{Q} is too large for this "
                           "implementation's 32-bit window arithmetic")
    return PoolGeometry(N, C, H, W, P, Q, adaptive_max_window(H, P), adaptive_max_window(W, Q),
                        stride_h=0, stride_w=0, adaptive=True)
