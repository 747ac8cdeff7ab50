"""Pooling modules: same constructor, attributes and repr as torch.nn, this package's kernels inside."""

from __future__ import annotations

import torch

from ..functional.pool1d import adaptive_avg_pool1d, adaptive_max_pool1d, avg_pool1d, max_pool1d
from ..functional.pool2d import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from ..functional.pool3d import adaptive_avg_pool3d, adaptive_max_pool3d, avg_pool3d, max_pool3d

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
           "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d"]


class MaxPool2d(torch.nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` whose forward runs :func:`kernels.functional.pool2d.max_pool2d`."""

    def forward(self, input: torch.Tensor):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool2d(torch.nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` whose forward runs :func:`kernels.functional.pool2d.avg_pool2d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d):
    """``torch.nn.AdaptiveAvgPool2d`` whose forward runs :func:`kernels.functional.pool2d.adaptive_avg_pool2d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(torch.nn.AdaptiveMaxPool2d):
    """``torch.nn.AdaptiveMaxPool2d`` whose forward runs :func:`kernels.functional.pool2d.adaptive_max_pool2d`."""

    def forward(self, input: torch.Tensor):
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)


class MaxPool1d(torch.nn.MaxPool1d):
    """``torch.nn.MaxPool1d`` whose forward runs :func:`kernels.functional.pool1d.max_pool1d`."""

    def forward(self, input: torch.Tensor):
        return max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool1d(torch.nn.AvgPool1d):
    """``torch.nn.AvgPool1d`` whose forward runs :func:`kernels.functional.pool1d.avg_pool1d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad)


class AdaptiveAvgPool1d(torch.nn.AdaptiveAvgPool1d):
    """``torch.nn.AdaptiveAvgPool1d`` whose forward runs :func:`kernels.functional.pool1d.adaptive_avg_pool1d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool1d(input, self.output_size)


class AdaptiveMaxPool1d(torch.nn.AdaptiveMaxPool1d):
    """``torch.nn.AdaptiveMaxPool1d`` whose forward runs :func:`kernels.functional.pool1d.adaptive_max_pool1d`."""

    def forward(self, input: torch.Tensor):
        return adaptive_max_pool1d(input, self.output_size, self.return_indices)


class MaxPool3d(torch.nn.MaxPool3d):
    """``torch.nn.MaxPool3d`` whose forward runs :func:`kernels.functional.pool3d.max_pool3d`."""

    def forward(self, input: torch.Tensor):
        return max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool3d(torch.nn.AvgPool3d):
    """``torch.nn.AvgPool3d`` whose forward runs :func:`kernels.functional.pool3d.avg_pool3d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool3d(torch.nn.AdaptiveAvgPool3d):
    """``torch.nn.AdaptiveAvgPool3d`` whose forward runs :func:`kernels.functional.pool3d.adaptive_avg_pool3d`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool3d(input, self.output_size)


class AdaptiveMaxPool3d(torch.nn.AdaptiveMaxPool3d):
    """``torch.nn.AdaptiveMaxPool3d`` whose forward runs :func:`kernels.functional.pool3d.adaptive_max_pool3d`."""

    def forward(self, input: torch.Tensor):
        return adaptive_max_pool3d(input, self.output_size, self.return_indices)
