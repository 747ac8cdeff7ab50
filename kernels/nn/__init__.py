"""Modules that subclass their torch.nn twins and run this package's kernels."""

from .conv import Conv2d, ConvTranspose2d
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "Conv2d", "ConvTranspose2d", "MaxPool2d"]
