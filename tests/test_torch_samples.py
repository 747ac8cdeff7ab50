"""torch's own sample inputs of each op (its OpInfo database, the inputs torch tests its own ops with), run
through our op and torch's in float64: outputs (values, strides, indices) and gradients of every input.

Max pooling has hundreds of samples (every combination of its options): at most ``_MAX_SAMPLES`` of an op's
samples, spread evenly, are run. The interpreter's cost of a convolution sample grows with its output's
elements times the filter's taps; torch's largest 3-D samples (a 4x4x4 filter over a 10x11x12 volume, a 4x5x6
transposed filter dilated 4) would take minutes each, so samples costing more than ``_SAMPLE_COST`` are left out.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from op_samples import op_samples

import kernels

pytest.importorskip("expecttest", reason="torch's op database imports expecttest (the test extra)")

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")

OPS = (
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
)
_MAX_SAMPLES = 40  # per op at most, spread evenly over its samples
_SAMPLE_COST = 80_000  # output elements times filter taps


def _detached(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


def _leaves(values: list) -> list[torch.Tensor]:
    return [v for v in values if isinstance(v, torch.Tensor) and v.requires_grad]


@pytest.mark.parametrize("name", OPS)
def test_torch_sample_inputs(name: str) -> None:
    ours_fn, torch_fn = getattr(kernels, name), getattr(F, name)
    samples = op_samples(name, DEVICE, _MAX_SAMPLES)
    run = 0
    for i, sample in enumerate(samples):
        ours_in = [sample.input, *sample.args]
        ref_in = [_detached(v) for v in ours_in]
        ref = torch_fn(*ref_in, **sample.kwargs)
        refs = ref if isinstance(ref, tuple) else (ref,)
        taps = sample.args[0][0, 0].numel() if name.startswith("conv") else 1
        if refs[0].numel() * taps > _SAMPLE_COST:
            continue
        run += 1
        ours = ours_fn(*ours_in, **sample.kwargs)
        outs = ours if isinstance(ours, tuple) else (ours,)
        where = f"{name} sample {i}: input {tuple(sample.input.shape)}, args {sample.args}, kwargs {sample.kwargs}"
        for o, r in zip(outs, refs, strict=True):
            assert o.shape == r.shape and o.dtype == r.dtype, where
            if r.dtype == torch.int64:
                assert torch.equal(o, r), where
            else:
                torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-10, msg=lambda m, where=where: f"{where}: {m}")
        if refs[0].numel() and _leaves(ref_in):
            grad = torch.randn_like(refs[0])
            got = torch.autograd.grad(outs[0], _leaves(ours_in), grad)
            want = torch.autograd.grad(refs[0], _leaves(ref_in), grad)
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10,
                                           msg=lambda m, where=where: f"{where} (gradient): {m}")
    assert run >= min(5, len(samples)), f"{name}: only {run} of {len(samples)} samples within the cost bound"
