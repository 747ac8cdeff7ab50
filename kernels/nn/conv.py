"""Convolution modules: same constructor, parameters, state_dict and repr as torch.nn, our kernels inside.

Keyword-only extras of the convolution modules (1-D, 2-D and 3-D) fuse an epilogue into the kernel (see
:func:`kernels.conv2d`): ``activation``, ``negative_slope`` and ``residual_before_activation`` in the
constructor, ``residual`` in ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..functional.conv1d import conv1d, conv_transpose1d
from ..functional.conv2d import conv2d
from ..functional.conv3d import conv3d, conv_transpose3d
from ..functional.conv_transpose2d import conv_transpose2d
from ..ops.epilogue import make_epilogue


class _FusedEpilogue:
    """The epilogue settings of a convolution module: the keyword-only constructor extras, their repr, and the
    keyword arguments they give the functional op. Class-level defaults keep modules made by
    :func:`kernels.convert` (which only swaps ``__class__``) plain convolutions."""

    activation: str | None = None
    negative_slope: float = 0.01
    residual_before_activation: bool = False

    def __init__(self, *args: Any, activation: str | None = None, negative_slope: float = 0.01,
                 residual_before_activation: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # (the torch.nn twin's constructor)
        self._set_epilogue(activation, negative_slope, residual_before_activation)

    def _set_epilogue(self, activation: str | None, negative_slope: float, residual_before_activation: bool
                      ) -> None:
        make_epilogue(activation, negative_slope, None, residual_before_activation)  # validates
        self.activation = activation
        self.negative_slope = negative_slope
        self.residual_before_activation = residual_before_activation

    def _epilogue_kwargs(self, residual: torch.Tensor | None) -> dict[str, Any]:
        return {"activation": self.activation, "negative_slope": self.negative_slope, "residual": residual,
                "residual_before_activation": self.residual_before_activation}

    def extra_repr(self) -> str:
        parts = []
        if self.activation is not None:
            parts.append(f"activation={self.activation!r}")
            if self.activation == "leaky_relu":
                parts.append(f"negative_slope={self.negative_slope}")
        if self.residual_before_activation:
            parts.append("residual_before_activation=True")
        return super().extra_repr() + "".join(", " + p for p in parts)


class _Convolution(_FusedEpilogue):
    """The forward of ``Conv1d``/``Conv2d``/``Conv3d``: ``_convolve`` is the functional op. Non-zero padding
    modes pad the input first (as torch does) and convolve without padding."""

    _convolve: Callable[..., torch.Tensor]

    def forward(self, input: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self._conv_forward(input, self.weight, self.bias, residual)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      residual: torch.Tensor | None = None) -> torch.Tensor:
        extras = self._epilogue_kwargs(residual)
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return self._convolve(padded, weight, bias, self.stride, 0, self.dilation, self.groups, **extras)
        return self._convolve(input, weight, bias, self.stride, self.padding, self.dilation, self.groups, **extras)


class _TransposedConvolution(_FusedEpilogue):
    """The forward of ``ConvTranspose1d``/``ConvTranspose2d``/``ConvTranspose3d``: ``_convolve`` is the
    functional op over ``_spatial_dims`` dimensions, named ``_torch_name`` in torch's padding-mode error."""

    _convolve: Callable[..., torch.Tensor]
    _spatial_dims: int
    _torch_name: str

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for {self._torch_name}")
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, self._spatial_dims, self.dilation
        )
        return self._convolve(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                              self.groups, self.dilation, **self._epilogue_kwargs(residual))


class Conv2d(_Convolution, torch.nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward runs Triton kernels. Every ``padding_mode`` is supported: non-zero
    modes pad the input first (as torch does) and convolve without padding.

    ``forward(input, residual=None)``: with the keyword-only constructor extras, the module computes
    ``act(conv(input) + bias) + residual`` (or ``act(conv(input) + bias + residual)``) in one kernel.
    """

    _convolve = staticmethod(conv2d)


class ConvTranspose2d(_TransposedConvolution, torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` whose forward runs Triton kernels. ``output_size`` resolves
    ``output_padding`` exactly as torch does (a strided convolution rounds its output size down, so several
    input sizes map to one output size; ``output_size`` says which one to go back to).

    ``forward(input, output_size=None, residual=None)``; the epilogue extras are those of :class:`Conv2d`.
    """

    _convolve = staticmethod(conv_transpose2d)
    _spatial_dims = 2
    _torch_name = "ConvTranspose2d"


class Conv1d(_Convolution, torch.nn.Conv1d):
    """``torch.nn.Conv1d`` whose forward runs :func:`kernels.conv1d` (the 2-D kernels with ``H = 1``). Every
    ``padding_mode``; the epilogue extras and ``forward(input, residual=None)`` are those of :class:`Conv2d`."""

    _convolve = staticmethod(conv1d)


class ConvTranspose1d(_TransposedConvolution, torch.nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` whose forward runs :func:`kernels.conv_transpose1d`; ``output_size``
    resolves ``output_padding`` as torch does. ``forward(input, output_size=None, residual=None)``."""

    _convolve = staticmethod(conv_transpose1d)
    _spatial_dims = 1
    _torch_name = "ConvTranspose1d"


class Conv3d(_Convolution, torch.nn.Conv3d):
    """``torch.nn.Conv3d`` whose forward runs :func:`kernels.conv3d`. Every ``padding_mode`` is supported:
    non-zero modes pad the input first (as torch does) and convolve without padding. The epilogue extras and
    ``forward(input, residual=None)`` are those of :class:`Conv2d`."""

    _convolve = staticmethod(conv3d)


class ConvTranspose3d(_TransposedConvolution, torch.nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` whose forward runs :func:`kernels.conv_transpose3d`; ``output_size``
    resolves ``output_padding`` as torch does. ``forward(input, output_size=None, residual=None)``; the
    epilogue extras are those of :class:`Conv2d`."""

    _convolve = staticmethod(conv_transpose3d)
    _spatial_dims = 3
    _torch_name = "ConvTranspose3d"
