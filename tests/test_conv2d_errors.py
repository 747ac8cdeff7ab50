"""Bad arguments make kernels.conv2d raise what torch.nn.functional.conv2d raises: type and message.

Each case is run through torch first; ours must raise the same type (a subclass is accepted) with the same
message, compared as ``torch_errors.assert_raises_like_torch`` describes. Where the mistake is in the shapes or
the convolution parameters, ``kernels.shapes.conv2d_geometry`` must raise that type too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch_errors import assert_raises_like_torch

import kernels
from kernels.shapes import conv2d_geometry

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")


def _t(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, device=DEVICE).to(dtype)


def _call(input=None, weight=None, bias=None, **kwargs) -> dict:
    return dict(input=_t(2, 4, 7, 7) if input is None else input,
                weight=_t(6, 4, 3, 3) if weight is None else weight, bias=bias, **kwargs)


# name: (arguments, whether the mistake is one conv2d_geometry sees from the shapes and parameters)
ERROR_CASES: dict[str, tuple[Callable[[], dict], bool]] = {
    "input-rank-1": (lambda: _call(input=_t(7)), True),
    "input-rank-2": (lambda: _call(input=_t(4, 7)), True),
    "input-rank-5": (lambda: _call(input=_t(1, 2, 4, 7, 7)), True),
    "weight-rank-3": (lambda: _call(weight=_t(6, 4, 3)), True),
    "weight-rank-5": (lambda: _call(weight=_t(6, 4, 3, 3, 1)), True),
    "weight-rank-3-unbatched-input": (lambda: _call(input=_t(4, 7, 7), weight=_t(6, 4, 3)), True),
    "channel-mismatch": (lambda: _call(weight=_t(6, 3, 3, 3)), True),
    "channel-mismatch-unbatched": (lambda: _call(input=_t(5, 7, 7)), True),
    "groups-not-dividing-in-channels": (
        lambda: _call(input=_t(2, 5, 7, 7), weight=_t(6, 2, 3, 3), groups=2), True),
    "groups-not-dividing-out-channels": (lambda: _call(weight=_t(5, 2, 3, 3), groups=2), True),
    "depthwise-out-not-multiple": (lambda: _call(weight=_t(6, 1, 3, 3), groups=4), True),
    "groups-0": (lambda: _call(groups=0), True),
    "groups-negative": (lambda: _call(groups=-1), True),
    "stride-0": (lambda: _call(stride=0), True),
    "stride-negative": (lambda: _call(stride=-1), True),
    "stride-tuple-with-0": (lambda: _call(stride=(1, 0)), True),
    "dilation-0": (lambda: _call(dilation=0), True),
    "dilation-negative": (lambda: _call(dilation=-1), True),
    "dilation-tuple-with-0": (lambda: _call(dilation=(2, 0)), True),
    "padding-negative": (lambda: _call(padding=-1), True),
    "padding-tuple-negative": (lambda: _call(padding=(0, -1)), True),
    "same-with-stride-2": (lambda: _call(padding="same", stride=2), True),
    "same-with-stride-1x2": (lambda: _call(padding="same", stride=(1, 2)), True),
    "padding-string-invalid": (lambda: _call(padding="full"), True),
    "padding-string-uppercase": (lambda: _call(padding="SAME"), True),
    "kernel-bigger-than-input": (lambda: _call(input=_t(1, 4, 2, 2)), True),
    "kernel-bigger-than-input-width": (lambda: _call(input=_t(1, 4, 7, 2), padding=(1, 0)), True),
    "dilated-kernel-bigger-than-input": (lambda: _call(input=_t(1, 4, 4, 4), dilation=2), True),
    "dilated-kernel-bigger-than-padded": (lambda: _call(input=_t(1, 4, 4, 4), dilation=3, padding=1), True),
    "zero-output-channels": (lambda: _call(weight=_t(0, 4, 3, 3)), True),
    "zero-kernel-height": (lambda: _call(weight=_t(6, 4, 0, 3)), True),
    "zero-height-input": (lambda: _call(input=_t(2, 4, 0, 7)), True),
    "zero-height-input-padded": (lambda: _call(input=_t(2, 4, 0, 7), padding=2), True),
    "bias-wrong-length": (lambda: _call(bias=_t(5)), True),
    "bias-2d": (lambda: _call(bias=_t(6, 1)), True),
    "stride-3-tuple": (lambda: _call(stride=(1, 1, 1)), True),
    "padding-3-tuple": (lambda: _call(padding=(1, 1, 1)), True),
    "dilation-3-tuple": (lambda: _call(dilation=(1, 1, 1)), True),
    "stride-empty-tuple": (lambda: _call(stride=()), True),
    "stride-float": (lambda: _call(stride=1.5), True),
    "stride-float-integral": (lambda: _call(stride=2.0), True),
    "stride-float-in-tuple": (lambda: _call(stride=(1.0, 2)), True),
    "padding-float": (lambda: _call(padding=1.0), True),
    "dilation-float": (lambda: _call(dilation=2.0), True),
    "groups-float": (lambda: _call(groups=1.0), True),
    "groups-bool": (lambda: _call(groups=True), True),
    "stride-bool": (lambda: _call(stride=True), True),
    "stride-str": (lambda: _call(stride="1"), True),
    "stride-none": (lambda: _call(stride=None), True),
    "dtype-input-float32-weight-float64": (lambda: _call(weight=_t(6, 4, 3, 3, dtype=torch.float64)), False),
    "dtype-input-float16-weight-float32": (lambda: _call(input=_t(2, 4, 7, 7, dtype=torch.float16)), False),
    "dtype-input-bfloat16-weight-float16": (
        lambda: _call(input=_t(2, 4, 7, 7, dtype=torch.bfloat16), weight=_t(6, 4, 3, 3, dtype=torch.float16)),
        False),
    "dtype-input-float32-bias-float64": (lambda: _call(bias=_t(6, dtype=torch.float64)), False),
    "dtype-input-float16-bias-float32": (
        lambda: _call(input=_t(2, 4, 7, 7, dtype=torch.float16), weight=_t(6, 4, 3, 3, dtype=torch.float16),
                      bias=_t(6)),
        False),
    "dtype-input-float32-bias-float64-padding-same": (
        lambda: _call(bias=_t(6, dtype=torch.float64), padding="same"), False),
    "dtype-input-bfloat16-weight-float32-bias-float32": (
        lambda: _call(input=_t(2, 4, 7, 7, dtype=torch.bfloat16), bias=_t(6)), False),
    "weight-rank-2": (lambda: _call(weight=_t(6, 4)), True),
    "weight-rank-5-lists": (lambda: _call(weight=_t(6, 4, 3, 3, 1), stride=[1], padding=[0], dilation=[1]), True),
    "weight-rank-5-same": (lambda: _call(weight=_t(6, 4, 3, 3, 1), padding="same"), True),
    "weight-rank-2-valid": (lambda: _call(weight=_t(6, 4), padding="valid"), True),
    "groups-0-same": (lambda: _call(padding="same", stride=2, groups=0), True),
    "same-with-stride-3-tuple": (lambda: _call(padding="same", stride=(1, 1, 1)), True),
    "same-with-negative-dilation": (lambda: _call(padding="same", dilation=-1), True),
    "valid-with-dilation-3-tuple": (lambda: _call(padding="valid", dilation=(1, 1, 1)), True),
    "dilation-0-and-groups-not-dividing": (lambda: _call(dilation=0, groups=5), True),
    "zero-channels-kernel-too-big": (lambda: _call(input=_t(2, 0, 7, 7), weight=_t(6, 0, 9, 3)), True),
    "zero-batch-zero-height": (lambda: _call(input=_t(0, 4, 0, 7)), True),
    "stride-float-and-input-rank-5": (lambda: _call(input=_t(1, 2, 4, 7, 7), stride=1.5), True),
    "input-not-tensor": (lambda: _call(input=[[1.0]]), False),
    "weight-not-tensor": (lambda: _call(weight=3.0), False),
    "bias-not-tensor": (lambda: _call(bias=[0.0] * 6), False),
}


def _torch_exception(kwargs: dict) -> type[BaseException]:
    try:
        F.conv2d(**kwargs)
    except Exception as exc:  # the type is what is compared
        return type(exc)
    raise AssertionError(f"torch accepted {kwargs}: not an error case")


@pytest.mark.parametrize("name", list(ERROR_CASES), ids=str)
def test_same_exception_type_as_torch(name: str):
    make, geometric = ERROR_CASES[name]
    kwargs = make()
    assert_raises_like_torch(F.conv2d, kernels.conv2d, **kwargs)
    expected = _torch_exception(kwargs)
    if geometric and all(isinstance(kwargs[k], torch.Tensor) for k in ("input", "weight")):
        x, w, b = kwargs["input"], kwargs["weight"], kwargs["bias"]
        x_shape = (1, *x.shape) if x.dim() == 3 else x.shape
        with pytest.raises(expected):
            conv2d_geometry(x_shape, w.shape, None if b is None else b.shape, kwargs.get("stride", 1),
                            kwargs.get("padding", 0), kwargs.get("dilation", 1), kwargs.get("groups", 1))


NON_FLOAT = [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]


@pytest.mark.parametrize("dtype", NON_FLOAT, ids=str)
def test_non_float_dtypes_raise(dtype: torch.dtype):
    """torch computes some of these on the CPU (int64, complex64); our kernels take floating types only."""
    x = _t(2, 4, 7, 7).to(dtype)
    w = _t(6, 4, 3, 3).to(dtype)
    with pytest.raises(RuntimeError):
        kernels.conv2d(x, w)
    with pytest.raises(RuntimeError):
        kernels.conv2d(x, w, _t(6).to(dtype), padding=1)


def test_mixed_float_dtypes_raise_even_when_shapes_are_wrong_too():
    """Both mistakes at once: torch reports the shapes first, and so does ours."""
    kwargs = _call(input=_t(2, 5, 7, 7), weight=_t(6, 4, 3, 3, dtype=torch.float64))
    assert_raises_like_torch(F.conv2d, kernels.conv2d, **kwargs)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((0, 4, 7, 7), (6, 4, 3, 3), dict(padding=1)),
        ((0, 4, 7, 9), (4, 2, 3, 2), dict(stride=2, groups=2)),
        ((0, 4, 5, 5), (8, 1, 3, 3), dict(padding="same", groups=4)),
    ],
    ids=["dense", "grouped", "depthwise-x2"],
)
def test_zero_batch_no_crash_or_hang(x_shape, w_shape, kwargs, time_limit):
    x = _t(*x_shape).requires_grad_()
    w = _t(*w_shape).requires_grad_()
    b = _t(w_shape[0]).requires_grad_()
    expected = F.conv2d(x.detach(), w.detach(), b.detach(), **kwargs)
    with time_limit(120):
        out = kernels.conv2d(x, w, b, **kwargs)
        assert out.shape == expected.shape
        out.backward(torch.randn_like(out))
    assert x.grad.shape == x.shape
    assert torch.equal(w.grad, torch.zeros_like(w))
    assert torch.equal(b.grad, torch.zeros_like(b))
