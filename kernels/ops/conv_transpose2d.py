"""conv_transpose2d (up-convolution): its forward launcher, built from the conv2d kernels with roles exchanged.

For ``x (N, Cin, H, W)`` and ``weight (Cin, Cout/groups, R, S)``, let ``g`` be the geometry of the
convolution that the transposed one transposes (``kernels.shapes.conv_transpose2d_geometry``). Then:

* forward     = that convolution's input gradient, with ``x`` as the output gradient (+ bias, fused);
* grad-input  = that convolution's forward, applied to the output gradient;
* grad-weight = that convolution's weight gradient with ``x`` as its output gradient and the output
  gradient as its input;
* grad-bias   = the per-channel sum of the output gradient.

The input-gradient kernel works by stride phase, so no zeros are ever inserted between input pixels. The
backward passes are conv2d's launchers (``kernels.autograd.conv`` puts them together).
"""

from __future__ import annotations

import torch

from ..shapes import ConvGeometry, conv_output_channels_last, empty_nd
from .conv2d import conv2d_input_grad
from .epilogue import PLAIN, Epilogue, with_strides_of


def conv_transpose2d_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            residual: torch.Tensor | None, g: ConvGeometry, epilogue: Epilogue = PLAIN,
                            channels_last: bool | None = None, store_preact: bool = False
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A new ``(N, C_out, H_out, W_out)`` output of conv_transpose2d with its fused epilogue (layout:
    ``channels_last``, None for torch's rule), and the pre-activation beside it when ``store_preact`` (else
    None)."""
    if channels_last is None:
        channels_last = conv_output_channels_last(x, weight)
    out = empty_nd((g.N, g.C, g.H, g.W), x, channels_last)
    preact = torch.empty_like(out) if store_preact else None
    residual = None if residual is None else with_strides_of(residual, out)
    conv2d_input_grad(x, weight, g, out, bias, epilogue, residual, preact)
    return out, preact
