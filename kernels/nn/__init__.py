"""Modules that subclass their torch.nn twins and run this package's kernels."""

from .conv import Conv2d, ConvTranspose2d

__all__ = ["Conv2d", "ConvTranspose2d"]
