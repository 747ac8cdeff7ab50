"""Convolution modules: same constructor, parameters, state_dict and repr as torch.nn, our kernels inside."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.conv2d import conv2d
from ..ops.conv_transpose2d import conv_transpose2d


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward runs Triton kernels. Every ``padding_mode`` is supported: non-zero
    modes pad the input first (as torch does) and convolve without padding."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                      ) -> torch.Tensor:
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` whose forward runs Triton kernels. ``output_size`` resolves
    ``output_padding`` exactly as torch does (a strided convolution rounds its output size down, so several
    input sizes map to one output size; ``output_size`` says which one to go back to)."""

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose2d")
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                self.groups, self.dilation)
