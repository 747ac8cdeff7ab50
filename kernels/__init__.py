"""Triton kernels for convolution and pooling, drop-in replacements for torch.nn.functional.

``kernels.conv2d`` has the signature of ``torch.nn.functional.conv2d`` (likewise ``conv_transpose2d``, the
pooling functions, the 1-D family, which runs on the 2-D kernels with ``H = 1``, and the 3-D family, which has
its own kernels); ``kernels.nn.Conv2d``
subclasses ``torch.nn.Conv2d``. Without a CUDA device the kernels run through Triton's interpreter (see
``kernels._runtime``), which must be decided before any kernel module is imported: keep that import first.
"""

from ._runtime import INTERPRETING  # noqa: I001  (must precede every module that defines a kernel)
from . import nn
from .convert import ConversionReport, convert
from .functional.conv1d import conv1d, conv_transpose1d
from .functional.conv2d import conv2d
from .functional.conv3d import conv3d, conv_transpose3d
from .functional.conv_transpose2d import conv_transpose2d
from .functional.pool1d import adaptive_avg_pool1d, adaptive_max_pool1d, avg_pool1d, max_pool1d
from .functional.pool2d import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from .functional.pool3d import adaptive_avg_pool3d, adaptive_max_pool3d, avg_pool3d, max_pool3d
from .receptive_field import ReceptiveField, receptive_field
from .optimize import optimize

__all__ = [
    "INTERPRETING",
    "ConversionReport",
    "ReceptiveField",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "convert",
    "nn",
    "optimize",
    "receptive_field",
]
__version__ = "0.1.0"
