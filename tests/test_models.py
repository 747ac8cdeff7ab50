"""Real model definitions converted whole: torchvision's ResNet-50, MobileNetV3-Large, EfficientNet-B0 and
ConvNeXt-Tiny, and the benchmark's UNet, at tiny widths (``bench.models.build(name, tiny=True)``), in
float64 and in training mode (batch statistics, dropout and stochastic depth with the RNG seeded alike): the
converted model's output, input gradient, every parameter gradient and the batch-norm running statistics
equal the unconverted model's, and torch's convolution never runs in the converted one.

The tolerance is 1e-7 of each tensor's largest magnitude (at least 1e-9 of the largest parameter gradient, for
gradients that are zero up to rounding, such as a batch norm's bias before another batch norm; 1e-12 for the
running statistics): in training
mode the last stages' batch norms normalise two values per channel (batch 2, 1x1), which amplifies rounding
differences by orders of magnitude; in eval mode the two models agree to 1e-16.

torchvision is required: without it this module fails to import, so the run fails (it is not skipped).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torchvision  # noqa: F401  (required: an ImportError here must fail the run, not skip it)

import kernels
from bench.models import NETWORKS, build

_CANDIDATES = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d,
               torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)


TOL = 1e-7


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str, floor: float = 0.0) -> None:
    scale = expected.detach().abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual.detach().double(), expected.detach().double(), rtol=TOL,
                               atol=TOL * scale + floor, msg=lambda m: f"{what}: {m}")


def _run(model: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor | None, seed: int) -> torch.Tensor:
    """Forward (and backward of ``grad``) with the RNG at ``seed`` for dropout and stochastic depth."""
    torch.manual_seed(seed)
    out = model(x)
    if grad is not None:
        out.backward(grad)
    return out


@pytest.mark.parametrize("name", list(NETWORKS))
def test_converted_network_matches_torch(name: str, forbid_torch_conv: Callable, time_limit: Callable) -> None:
    torch.manual_seed(0)
    reference = build(name, tiny=True).double().to(memory_format=torch.channels_last).train()
    model = copy.deepcopy(reference)
    candidates = [n for n, m in reference.named_modules() if type(m) in _CANDIDATES]
    report = kernels.convert(model, fuse_activations=True)
    assert report.converted == candidates and not report.kept, str(report)
    if name == "unet":  # its 3x3 convolutions are followed by ReLU in one nn.Sequential
        blocks = len(reference.down) + len(reference.decode)
        assert len(report.fused) == 2 * blocks and {a for _, a in report.fused} == {"relu"}

    side = NETWORKS[name].tiny_side
    x = torch.randn(2, 3, side, side, dtype=torch.float64).to(memory_format=torch.channels_last)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    seed = int(torch.randint(0, 2**31, ()).item())
    expected = _run(reference, x_ref, None, seed)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    with time_limit(240), forbid_torch_conv():
        out = _run(model, x_ours, grad, seed)

    _close(out, expected, "output")
    _close(x_ours.grad, x_ref.grad, "input gradient")
    ours = dict(model.named_parameters())
    floor = 1e-9 * max(p.grad.abs().max().item() for p in reference.parameters())
    for pname, p in reference.named_parameters():
        assert ours[pname].grad is not None, f"no gradient for {pname}"
        _close(ours[pname].grad, p.grad, f"gradient of {pname}", floor)
    buffers = dict(model.named_buffers())
    for bname, b in reference.named_buffers():
        _close(buffers[bname], b, f"buffer {bname}", 1e-12)  # (means of batch-normalised values are ~0)
