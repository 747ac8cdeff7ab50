"""Under ``torch.autocast`` our convolutions cast like torch's (pooling keeps the input dtype).

Everything is called through the public entry points (``kernels.conv2d``, ``kernels.conv_transpose2d``, the
``kernels.nn`` modules), so these tests fail if an entry point loses its autocast behaviour.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE

import kernels
from kernels import adaptive_avg_pool2d, avg_pool2d, conv2d, conv_transpose2d, max_pool2d
from kernels.autocast import autocast_inputs

DTYPES = [torch.bfloat16, torch.float16]


def _check(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.dtype == ref.dtype
    scale = ref.double().abs().max().item()
    torch.testing.assert_close(ours.double(), ref.double(), rtol=3e-2, atol=3e-2 * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transposed", [False, True])
def test_conv_casts_like_torch(dtype: torch.dtype, transposed: bool) -> None:
    ours_fn, ref_fn = (conv_transpose2d, F.conv_transpose2d) if transposed else (conv2d, F.conv2d)
    x = torch.randn(2, 4, 6, 6, requires_grad=True, device=DEVICE)
    w = torch.randn(4, 3 if transposed else 4, 3, 3, requires_grad=True, device=DEVICE)
    b = torch.randn(3 if transposed else 4, requires_grad=True, device=DEVICE)
    leaves = (x, w, b)
    with torch.autocast(DEVICE.type, dtype=dtype):
        ref = ref_fn(x, w, b, stride=2, padding=1)
        ours = ours_fn(x, w, bias=b, stride=2, padding=1)
    _check(ours, ref)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, leaves, grad)
    ours_grads = torch.autograd.grad(ours, leaves, grad)
    for g_ours, g_ref in zip(ours_grads, ref_grads, strict=True):
        assert g_ours.dtype == torch.float32
        _check(g_ours, g_ref)


def test_conv_float64_and_disabled_untouched() -> None:
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, device=DEVICE)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        assert conv2d(x, w).dtype == torch.float64 == F.conv2d(x, w).dtype
    x32, w32 = x.float(), w.float()
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=False):
        assert conv2d(x32, w32).dtype == torch.float32
    assert conv2d(x32, w32).dtype == torch.float32


def test_half_input_goes_to_autocast_dtype() -> None:
    x, w = torch.randn(1, 2, 5, 5, dtype=torch.float16, device=DEVICE), torch.randn(3, 2, 3, 3, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        ref = F.conv2d(x, w)
        ours = conv2d(x, w)
    _check(ours, ref)


def test_pooling_keeps_input_dtype() -> None:
    x = torch.randn(1, 2, 6, 6, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        for ours, ref in [(max_pool2d(x, 2), F.max_pool2d(x, 2)), (avg_pool2d(x, 3, 1, 1), F.avg_pool2d(x, 3, 1, 1)),
                          (adaptive_avg_pool2d(x, 2), F.adaptive_avg_pool2d(x, 2))]:
            assert ours.dtype == ref.dtype == torch.float32
            torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("transposed", [False, True])
def test_module_under_autocast(transposed: bool) -> None:
    torch.manual_seed(0)
    if transposed:
        ref_module = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
        module = kernels.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)
    else:
        ref_module = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
        module = kernels.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    module.load_state_dict(ref_module.state_dict())
    ref_module.to(DEVICE), module.to(DEVICE)
    x = torch.randn(1, 3, 5, 5, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        ours, ref = module(x), ref_module(x)
    assert ours.dtype == ref.dtype == torch.bfloat16
    _check(ours, ref)


def test_bad_kind() -> None:
    with pytest.raises(ValueError):
        autocast_inputs("matmul")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_epilogue_residual_is_cast_with_the_inputs(dtype: torch.dtype) -> None:
    """The residual is a floating input like the others: cast to the autocast dtype, its gradient back."""
    x = torch.randn(2, 4, 6, 6, requires_grad=True, device=DEVICE)
    w = torch.randn(4, 4, 3, 3, requires_grad=True, device=DEVICE)
    r = torch.randn(2, 4, 6, 6, requires_grad=True, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=dtype):
        ours = conv2d(x, w, padding=1, activation="relu", residual=r, residual_before_activation=True)
        ref = F.relu(F.conv2d(x, w, padding=1) + r.to(dtype))
    _check(ours, ref)
    grad = torch.randn_like(ref)
    for g_ours, g_ref in zip(torch.autograd.grad(ours, (x, w, r), grad), torch.autograd.grad(ref, (x, w, r), grad),
                             strict=True):
        assert g_ours.dtype == torch.float32
        _check(g_ours, g_ref)
