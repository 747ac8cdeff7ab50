"""``kernels.max_pool1d``, ``avg_pool1d``, ``adaptive_avg_pool1d`` and ``adaptive_max_pool1d``: drop-ins for
torch.nn.functional's 1-D pooling, run as views of the 2-D pooling with ``H = 1``.

The input ``(N, C, L)`` is viewed as ``(N, C, 1, L)`` (unbatched ``(C, L)`` as ``(C, 1, L)``), the window
``k`` becomes ``(1, k)``, stride ``(1, s)``, padding ``(0, p)``, dilation ``(1, d)``; the result's dim -2 is
squeezed away. No copies; autograd and ``torch.compile`` come from the 2-D ops. With ``H = 1`` the 2-D flat
index ``h*W + w`` of a maximum is ``w``, torch's 1-D index.

Arguments the 2-D checks refuse (or a shape this view cannot take) are reported with torch's own 1-D exception:
torch's 1-D pooling is run on a ``meta`` copy of the input, which checks without computing (its checks are
device-independent), and what it raises is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..pool_shapes import (
    _int_like,
    adaptive_pool2d_geometry,
    avg_pool2d_geometry,
    check_pool_input,
    max_pool2d_geometry,
)
from .pool import avg_pool, max_pool

__all__ = ["adaptive_avg_pool1d", "adaptive_max_pool1d", "avg_pool1d", "max_pool1d"]

IntArg = int | Sequence[int]


def _one(value: object) -> int:
    """A 1-D op's int option: an int or a 1-sequence of ints (anything else raises, then torch reports it)."""
    if isinstance(value, torch.Size | tuple | list):
        if len(value) != 1:
            raise ValueError("not a single value")
        value = value[0]
    if not _int_like(value):
        raise TypeError("not an int")
    return int(value)


def _shape4(input: torch.Tensor) -> tuple[int, ...]:
    """The 2-D view's shape: ``(N, C, 1, L)`` or ``(C, 1, L)``."""
    if input.dim() not in (2, 3):
        raise ValueError("not a 1-D input")
    return (*input.shape[:-1], 1, input.shape[-1])


def _torch_error(torch_fn: Callable[..., object], input: torch.Tensor, args: tuple, kwargs: dict,
                 ours: Exception) -> Exception:
    """What ``torch_fn`` raises for these arguments (run on a meta copy of ``input`` with its ``requires_grad``:
    torch's 1-D pooling words some checks by that), or ``ours`` when torch accepts them."""
    meta = torch.empty_strided(input.shape, input.stride(), dtype=input.dtype, device="meta")
    meta.requires_grad_(input.requires_grad and input.is_floating_point())
    try:
        torch_fn(meta, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001  (whatever torch raises is what we raise)
        return exc
    return ours


def _lift(input: torch.Tensor, plain: bool) -> torch.Tensor:
    """The 2-D view, dim -2 of size 1 inserted: by ``unsqueeze`` (torch's own view, which keeps a channels-innermost
    layout channels_last), or with H stride 1 when ``plain`` (the 2-D op then gives a contiguous output)."""
    return input.unsqueeze(-1).transpose(-1, -2) if plain else input.unsqueeze(-2)


def max_pool1d(
    input: torch.Tensor,
    kernel_size: IntArg,
    stride: IntArg | None = None,
    padding: IntArg = 0,
    dilation: IntArg = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.max_pool1d``.

    input ``(N, C, L)`` or ``(C, L)``; returns ``(N, C, Lout)`` (or ``(C, Lout)``), and with ``return_indices``
    the int64 positions ``l`` of the maxima. Output layout as torch's CPU op: the input's, except contiguous
    without indices and without gradient (torch's dedicated 1-D kernel).
    """
    return_indices = bool(return_indices)
    check_pool_input(input, "max_pool1d_with_indices" if return_indices else "max_pool1d")
    try:
        k = _one(kernel_size)
        s = k if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) else _one(stride)
        g = max_pool2d_geometry(_shape4(input), (1, k), (1, s), (0, _one(padding)), (1, _one(dilation)),
                                ceil_mode, return_indices)
    except Exception as exc:  # noqa: BLE001
        raise _torch_error(F.max_pool1d, input, (kernel_size, stride, padding, dilation, ceil_mode, return_indices),
                           {}, exc) from None
    plain = not return_indices and not (torch.is_grad_enabled() and input.requires_grad)
    result = max_pool(_lift(input, plain), g, return_indices)
    if return_indices:
        return result[0].squeeze(-2), result[1].squeeze(-2)
    return result.squeeze(-2)


def avg_pool1d(
    input: torch.Tensor,
    kernel_size: IntArg,
    stride: IntArg | None = None,
    padding: IntArg = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.avg_pool1d``.

    input ``(N, C, L)`` or ``(C, L)``; returns ``(N, C, Lout)`` (or ``(C, Lout)``) in the input's layout.
    Accumulates in float32 (float64 for float64 inputs).
    """
    check_pool_input(input, "avg_pool1d")
    try:
        k = _one(kernel_size)
        s = k if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) else _one(stride)
        g = avg_pool2d_geometry(_shape4(input), (1, k), (1, s), (0, _one(padding)), ceil_mode, count_include_pad)
    except Exception as exc:  # noqa: BLE001
        raise _torch_error(F.avg_pool1d, input, (kernel_size, stride, padding, ceil_mode, count_include_pad), {},
                           exc) from None
    return avg_pool(_lift(input, False), g).squeeze(-2)


def _adaptive_size(output_size: object) -> int:
    if isinstance(output_size, torch.Size | tuple | list):
        if len(output_size) != 1:
            raise ValueError("not a single value")
        output_size = output_size[0]
    if not _int_like(output_size):  # (None included: torch's 1-D ops take no None)
        raise TypeError("not an int")
    return int(output_size)


def adaptive_avg_pool1d(input: torch.Tensor, output_size: IntArg) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.adaptive_avg_pool1d``.

    input ``(N, C, L)`` or ``(C, L)``; output ``(N, C, Lout)``: position ``i`` averages
    ``[floor(i*L/Lout), ceil((i+1)*L/Lout))``.
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"adaptive_avg_pool1d(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    check_pool_input(input, "adaptive_avg_pool1d")
    try:
        g = adaptive_pool2d_geometry(_shape4(input), (1, _adaptive_size(output_size)), "adaptive_avg_pool2d")
    except Exception as exc:  # noqa: BLE001
        raise _torch_error(F.adaptive_avg_pool1d, input, (output_size,), {}, exc) from None
    return avg_pool(_lift(input, False), g).squeeze(-2)


def adaptive_max_pool1d(input: torch.Tensor, output_size: IntArg, return_indices: bool = False
                        ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``torch.nn.functional.adaptive_max_pool1d``.

    input ``(N, C, L)`` or ``(C, L)``; returns ``(N, C, Lout)``, and with ``return_indices`` the int64
    positions ``l`` of the maxima.
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"adaptive_max_pool1d(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    return_indices = bool(return_indices)
    check_pool_input(input, "adaptive_max_pool1d")
    try:
        g = adaptive_pool2d_geometry(_shape4(input), (1, _adaptive_size(output_size)), "adaptive_max_pool2d")
    except Exception as exc:  # noqa: BLE001
        raise _torch_error(F.adaptive_max_pool1d, input, (output_size, return_indices), {}, exc) from None
    result = max_pool(_lift(input, False), g, return_indices)
    if return_indices:
        return result[0].squeeze(-2), result[1].squeeze(-2)
    return result.squeeze(-2)
