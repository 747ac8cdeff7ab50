"""Shape arithmetic and argument checks of the 3-D pooling family (``max_pool3d``, ``avg_pool3d``,
``adaptive_avg_pool3d``, ``adaptive_max_pool3d``), shared by the launchers and the tests.

Every check raises the exception type that ``torch.nn.functional`` raises on the CPU for the same mistake, in
torch's order and with its wording. The per-axis window rules are the 2-D ones of :mod:`kernels.pool_shapes`
(:func:`~kernels.pool_shapes.pool_output_size`, :func:`~kernels.pool_shapes.adaptive_window`), applied to
depth, rows and columns. Notation: input ``(N, C, D, H, W)``, output ``(N, C, T, P, Q)``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from .pool_shapes import (
    _check_bool,
    _int_like,
    adaptive_max_cover,
    adaptive_max_window,
    pool_output_size,
    window_max_cover,
)
from .shapes import memoised_check
from .shapes3d import Window3d

IntTriple = int | Sequence[int]


@dataclass(frozen=True)
class PoolGeometry3d(Window3d):
    """Everything a 3-D pooling kernel needs: input ``(N, C, D, H, W)``, output ``(N, C, T, P, Q)``.

    For max/avg pooling, window ``(t, p, q)`` reads depth ``t*stride_d - pad_d + r*dil_d`` (``r < kd``) and
    rows and columns likewise. For adaptive pooling (``adaptive``), ``kd``/``kh``/``kw`` bound the adaptive
    window lengths, stride and padding are 0 and dilation 1. ``divisor`` is avg pooling's
    ``divisor_override`` (0: none). ``cover_*`` bound the number of windows that contain one input element per
    axis (the backward gathers).
    """

    N: int
    C: int
    D: int
    H: int
    W: int
    T: int
    P: int
    Q: int
    kd: int
    kh: int
    kw: int
    stride_d: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_d: int = 0
    pad_h: int = 0
    pad_w: int = 0
    dil_d: int = 1
    dil_h: int = 1
    dil_w: int = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor: int = 0
    adaptive: bool = False
    rank: ClassVar[int] = 3  # (spatial axes)

    @property
    def cover(self) -> tuple[int, int, int]:
        """Upper bounds on the windows containing one input element: depth, rows, columns."""
        if self.adaptive:
            return (adaptive_max_cover(self.D, self.T), adaptive_max_cover(self.H, self.P),
                    adaptive_max_cover(self.W, self.Q))
        return (window_max_cover(self.kd, self.stride_d, self.dil_d),
                window_max_cover(self.kh, self.stride_h, self.dil_h),
                window_max_cover(self.kw, self.stride_w, self.dil_w))

    @property
    def window_extent(self) -> tuple[int, int, int]:
        """Depth, rows and columns one window spans, dilation gaps included (adaptive: the length bounds)."""
        if self.adaptive:
            return self.kd, self.kh, self.kw
        return (self.dil_d * (self.kd - 1) + 1, self.dil_h * (self.kh - 1) + 1, self.dil_w * (self.kw - 1) + 1)

    @property
    def kernel(self) -> tuple[int, int, int]:
        return self.kd, self.kh, self.kw

    def saved_index_dtype(self, return_indices: bool) -> torch.dtype:
        """The dtype of max pooling's saved maxima: torch's int64 flat indices ``(d*H + h)*W + w`` (the 3-D
        kernels have no in-window positions)."""
        return torch.int64

    @property
    def is_global(self) -> bool:
        """One window over the whole volume (global pooling): the reduction kernel applies."""
        return self.adaptive and self.T == 1 and self.P == 1 and self.Q == 1

    @property
    def input_shape(self) -> tuple[int, int, int, int, int]:
        return (self.N, self.C, self.D, self.H, self.W)

    @property
    def output_shape(self) -> tuple[int, int, int, int, int]:
        return (self.N, self.C, self.T, self.P, self.Q)


def pool3d_bytes(g: PoolGeometry3d, dtype: torch.dtype, *, indices: bool = False) -> int:
    """Bytes moved through memory by one pass, forward or backward: ``N*C*(D*H*W + T*P*Q) * itemsize``, plus
    ``N*C*T*P*Q * 8`` when int64 indices are written or read (max pooling)."""
    item = torch.empty((), dtype=dtype).element_size()
    planes = g.N * g.C
    outputs = planes * g.T * g.P * g.Q
    return planes * g.D * g.H * g.W * item + outputs * item + (outputs * 8 if indices else 0)


# --------------------------------------------------------------------------------------------------------
# Argument parsing


def _ints(value: object, name: str, parser: str) -> tuple[int, ...]:
    """A ``tuple of ints`` argument as torch's argument parser reads it: an int stays one value (the checks
    repeat it), a sequence of ints stays as it is; another type raises its TypeError."""
    if _int_like(value):
        return (operator.index(value),)
    if isinstance(value, torch.Size | tuple | list):
        for pos, v in enumerate(value):
            if not _int_like(v):
                raise TypeError(f"{parser}(): argument '{name}' must be tuple of ints, but found element of type "
                                f"{type(v).__name__} at pos {pos}")
        return tuple(operator.index(v) for v in value)
    raise TypeError(f"{parser}(): argument '{name}' must be tuple of ints, not {type(value).__name__}")


_TRIPLE_RULES = {
    "max_pool3d": {
        "kernel_size": "kernel_size must either be a single int, or a tuple of three ints",
        "stride": "stride must either be omitted, a single int, or a tuple of three ints",
        "padding": "padding must either be a single int, or a tuple of three ints",
        "dilation": "dilation must be either a single int, or a tuple of three ints",
    },
    "avg_pool3d": {
        "kernel_size": "kernel_size must be a single int, or a tuple of three ints",
        "stride": "stride must be omitted, a single int, or a tuple of three ints",
        "padding": "padding must be a single int, or a tuple of three ints",
    },
}


def _triple(items: tuple[int, ...], name: str, op: str) -> tuple[int, int, int]:
    if len(items) == 1:
        return (items[0], items[0], items[0])
    if len(items) == 3:
        return (items[0], items[1], items[2])
    raise RuntimeError(f"{op}: {_TRIPLE_RULES[op][name]}")


def _half_truncated(value: int) -> int:
    """``value / 2`` rounded toward zero (C++'s integer division, which torch's checks use)."""
    return value // 2 if value >= 0 else -((-value) // 2)


def _axis_output(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """torch's ``pooling_output_shape``: its checks of one axis, then the output length."""
    if stride == 0:
        raise RuntimeError("stride should not be zero")
    if pad < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {pad}")
    if pad > _half_truncated((kernel - 1) * dilation + 1):
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pad}, "
                           f"kernel_size={kernel} and dilation={dilation}")
    return pool_output_size(size, kernel, stride, pad, dilation, ceil_mode)


def _check_rank(shape: Sequence[int]) -> None:
    if len(shape) not in (4, 5):
        raise RuntimeError("non-empty 4D or 5D (batch mode) tensor expected for input")


def _shape_check(shape: Sequence[int], k: Sequence[int], s: Sequence[int], p: Sequence[int], d: Sequence[int],
                 out: Sequence[int], fn_name: str, check_input_size: bool) -> None:
    """torch's ``pool3d_shape_check``, in its order."""
    if min(k) <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kT: {k[0]} kH: {k[1]} kW: {k[2]}")
    if min(s) <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dT: {s[0]} dH: {s[1]} dW: {s[2]}")
    if min(d) <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationT: {d[0]} dilationH: {d[1]} "
                           f"dilationW: {d[2]}")
    dims = len(shape)
    for i in range(dims):
        if dims == 5 and i == 0:
            continue  # the batch may be empty
        if shape[i] <= 0:
            raise RuntimeError(f"{fn_name}: Expected input's non-batch dimensions to have positive length, but input "
                               f"has a shape of {list(shape)} and non-batch dimension {shape[i]} has length zero!")
    D, H, W = (int(v) for v in shape[-3:])
    if check_input_size and (D < k[0] or H < k[1] or W < k[2]):
        raise RuntimeError(f"input image (T: {D} H: {H} W: {W}) smaller than kernel size (kT: {k[0]} kH: {k[1]} "
                           f"kW: {k[2]})")
    if k[0] // 2 < p[0] or k[2] // 2 < p[2] or k[1] // 2 < p[1]:
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got kT: {k[0]} "
                           f"kW: {k[2]} kH: {k[1]} padT: {p[0]} padW: {p[2]} padH: {p[1]}")
    if min(out) < 1:
        C = int(shape[-4])
        raise RuntimeError(f"Given input size: ({C}x{D}x{H}x{W}). Calculated output size: "
                           f"({C}x{out[0]}x{out[1]}x{out[2]}). Output size is too small")


def _batch_and_sizes(shape: Sequence[int]) -> tuple[int, int, int, int, int]:
    N = int(shape[0]) if len(shape) == 5 else 1
    C, D, H, W = (int(v) for v in shape[-4:])
    return N, C, D, H, W


@memoised_check
def max_pool3d_geometry(shape: Sequence[int], kernel_size: IntTriple, stride: IntTriple | None = None,
                        padding: IntTriple = 0, dilation: IntTriple = 1, ceil_mode: bool = False,
                        return_indices: bool = False) -> PoolGeometry3d:
    """Check ``max_pool3d`` arguments for an input of ``shape`` (4-D or 5-D) as torch does on the CPU
    (``return_indices``: torch's TypeErrors then name ``max_pool3d_with_indices``)."""
    op = "max_pool3d"
    parser = "max_pool3d_with_indices" if return_indices else op
    k_items = _ints(kernel_size, "kernel_size", parser)
    s_items = None if stride is None else _ints(stride, "stride", parser)
    p_items = _ints(padding, "padding", parser)
    d_items = _ints(dilation, "dilation", parser)
    _check_bool(ceil_mode, "ceil_mode", parser)
    k = _triple(k_items, "kernel_size", op)
    s = k if not s_items else _triple(s_items, "stride", op)
    p = _triple(p_items, "padding", op)
    d = _triple(d_items, "dilation", op)
    _check_rank(shape)
    N, C, D, H, W = _batch_and_sizes(shape)
    out = tuple(_axis_output(size, *axis, ceil_mode) for size, axis in zip((D, H, W), zip(k, s, p, d, strict=True),
                                                                             strict=True))
    _shape_check(shape, k, s, p, d, out, "max_pool3d_with_indices_out_cpu_template()", False)
    return PoolGeometry3d(N, C, D, H, W, *out, *k, *s, *p, *d, ceil_mode)


@memoised_check
def avg_pool3d_geometry(shape: Sequence[int], kernel_size: IntTriple, stride: IntTriple | None = None,
                        padding: IntTriple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None) -> PoolGeometry3d:
    """Check ``avg_pool3d`` arguments for an input of ``shape`` (4-D or 5-D) as torch does on the CPU."""
    op = "avg_pool3d"
    k_items = _ints(kernel_size, "kernel_size", op)
    s_items = None if stride is None else _ints(stride, "stride", op)
    p_items = _ints(padding, "padding", op)
    _check_bool(ceil_mode, "ceil_mode", op)
    _check_bool(count_include_pad, "count_include_pad", op)
    if divisor_override is not None and (isinstance(divisor_override, bool) or not _int_like(divisor_override)):
        raise TypeError(f"{op}(): argument 'divisor_override' must be int, not {type(divisor_override).__name__}")
    k = _triple(k_items, "kernel_size", op)
    s = k if not s_items else _triple(s_items, "stride", op)
    p = _triple(p_items, "padding", op)
    _check_rank(shape)
    if divisor_override is not None and operator.index(divisor_override) == 0:
        raise RuntimeError("divisor must be not zero")
    N, C, D, H, W = _batch_and_sizes(shape)
    out = tuple(_axis_output(size, kk, ss, pp, 1, ceil_mode) for size, kk, ss, pp in zip((D, H, W), k, s, p,
                                                                                           strict=True))
    _shape_check(shape, k, s, p, (1, 1, 1), out, "avg_pool3d()", True)
    divisor = 0 if divisor_override is None else operator.index(divisor_override)
    return PoolGeometry3d(N, C, D, H, W, *out, *k, *s, *p, 1, 1, 1, ceil_mode, count_include_pad, divisor)


def adaptive_output_size3d(shape: Sequence[int], output_size: object, op: str) -> tuple[int, ...]:
    """``output_size`` as torch.nn.functional hands it to the op: an int repeated three times, a sequence
    with ``None`` entries taking the input's trailing sizes (``_list_with_default``), checked as the argument
    parser does."""
    if isinstance(output_size, bool):
        raise TypeError(f"{op}(): argument 'output_size' (position 2) must be tuple of ints, not bool")
    if _int_like(output_size) and not isinstance(output_size, torch.Tensor):
        return (operator.index(output_size),) * 3
    if isinstance(output_size, torch.Tensor) and output_size.dim() == 0:
        raise TypeError("len() of a 0-d tensor")
    if not hasattr(output_size, "__len__"):
        raise TypeError(f"object of type '{type(output_size).__name__}' has no len()")
    items = list(output_size)  # type: ignore[call-overload]
    if len(shape) <= len(items):
        raise ValueError(f"Input dimension should be at least {len(items) + 1}")
    items = [int(d) if v is None else v for v, d in zip(items, shape[len(shape) - len(items):], strict=True)]
    return _ints(items, "output_size", op)


@memoised_check
def adaptive_pool3d_geometry(shape: Sequence[int], output_size: object, op: str) -> PoolGeometry3d:
    """Check adaptive pooling arguments (``op``: 'adaptive_avg_pool3d' or 'adaptive_max_pool3d') in torch's
    order: the average checks the output size before the input, the maximum after."""
    items = adaptive_output_size3d(shape, output_size, op)
    dims = len(shape)

    def check_input() -> None:
        if dims not in (4, 5):
            sep = ":" if op == "adaptive_max_pool3d" else ""
            raise RuntimeError(f"{op}(): Expected 4D or 5D tensor, but got{sep} {list(shape)}")
        for i in range(1, dims):
            if shape[i] == 0:
                raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch dimensions, but "
                                   f"input has sizes {list(shape)} with dimension {i} being empty")

    if op == "adaptive_max_pool3d":
        check_input()
    if len(items) != 3:
        if op == "adaptive_avg_pool3d":
            raise RuntimeError("adaptive_avg_pool3d: output_size must be 3")
        raise RuntimeError("adaptive_max_pool3d(): internal error: output_size.size() must be 3")
    T, P, Q = items
    if min(T, P, Q) < 0:
        if op == "adaptive_avg_pool3d":
            raise RuntimeError("adaptive_avg_pool3d: elements of output_size must be greater than or equal to 0 "
                               f"but received {{{T}, {P},{Q}}}")
        first = next(v for v in (T, P, Q) if v < 0)
        raise RuntimeError(f"Trying to create tensor with negative dimension {first}: "
                           f"{[*list(shape[:-3]), T, P, Q]}")
    if op == "adaptive_avg_pool3d":
        check_input()
    N, C, D, H, W = _batch_and_sizes(shape)
    for size, out in ((D, T), (H, P), (W, Q)):
        if (size + 1) * (out + 1) >= 2**31:
            raise RuntimeError(f"{op}: input size {D}x{H}x{W} times output size {T}x{P}x{Q} is too large for this "
                               "implementation's 32-bit window arithmetic")
    return PoolGeometry3d(N, C, D, H, W, T, P, Q, adaptive_max_window(D, T), adaptive_max_window(H, P),
                          adaptive_max_window(W, Q), 0, 0, 0, adaptive=True)
