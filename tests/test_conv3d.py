"""conv3d and conv_transpose3d against torch: outputs, gradients, layouts, views, unbatched and empty inputs,
gradcheck and gradgradcheck, errors, and the registered ops (opcheck and torch.compile); torch's own sample
inputs are run in ``test_torch_samples.py``. Shapes stay tiny: the kernels run in Triton's interpreter
without a GPU."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, _assert_close
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch.utils._python_dispatch import TorchDispatchMode
from torch_errors import assert_raises_like_torch

from kernels.autograd.conv import CONV_OPS
from kernels.functional.conv3d import conv3d, conv_transpose3d
from kernels.launch import batch_chunks, recording
from kernels.ops import conv3d as conv3d_ops
from kernels.shapes3d import conv3d_geometry

C3 = CONV_OPS[3]  # (the registered 3-D convolution ops)

F64 = torch.float64
CL3 = torch.channels_last_3d


def _t(*shape: int, dtype: torch.dtype = F64, grad: bool = False) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, device=DEVICE).requires_grad_(grad)


def _layout(t: torch.Tensor) -> tuple[bool, bool]:
    return t.is_contiguous(), t.dim() == 5 and t.is_contiguous(memory_format=CL3)


def _check(ours: Callable, ref: Callable, *leaves: torch.Tensor | None, view: Callable = lambda *a: a,
           dtype: torch.dtype = F64, layout: bool = True, **kwargs) -> torch.Tensor:
    """``ours(*view(*leaves), **kwargs)`` against ``ref`` on float64 twins: the output (and its layout), and the
    gradients of every leaf that requires one for a random upstream gradient. Torch's convolution must not
    run in ours."""
    twins = [None if t is None else t.detach().to(F64).requires_grad_(t.requires_grad) for t in leaves]
    with _NoTorchConvolution():
        out = ours(*view(*leaves), **kwargs)
    want = ref(*view(*twins), **kwargs)
    _assert_close(out, want, dtype, "output")
    assert out.dtype == leaves[0].dtype
    if layout:
        assert _layout(out) == _layout(want), "output layout differs from torch's"
    wrt = [i for i, t in enumerate(leaves) if t is not None and t.requires_grad]
    if wrt and out.numel():
        grad = torch.randn_like(want)
        with _NoTorchConvolution():
            got = torch.autograd.grad(out, [leaves[i] for i in wrt], grad.to(out.dtype))
        expected = torch.autograd.grad(want, [twins[i] for i in wrt], grad)
        for i, a, e in zip(wrt, got, expected, strict=True):
            _assert_close(a, e, dtype, f"grad of argument {i}")
    return out


class _NoTorchConvolution(TorchDispatchMode):
    """Fail when torch's own convolution runs: the kernels under test must compute the result."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(name in func._schema.name for name in ("convolution", "conv3d", "conv_transpose", "conv_depthwise")):
            raise AssertionError(f"torch's convolution ran ({func._schema.name})")
        return func(*args, **(kwargs or {}))


# --------------------------------------------------------------------------------------------------------
# conv3d

CONV_CASES = {
    "plain": ((2, 3, 4, 5, 6), (4, 3, 2, 3, 2), {}),
    "stride": ((1, 2, 5, 6, 7), (3, 2, 3, 3, 3), {"stride": (2, 3, 2), "padding": 1}),
    "padding": ((1, 2, 3, 4, 5), (3, 2, 2, 3, 3), {"padding": (1, 2, 0)}),
    "dilation": ((1, 2, 5, 6, 6), (2, 2, 2, 3, 2), {"dilation": (2, 1, 3), "padding": (0, 1, 1)}),
    "groups": ((2, 4, 3, 4, 5), (6, 2, 2, 2, 3), {"groups": 2, "padding": 1, "stride": (1, 2, 1)}),
    "depthwise": ((1, 2, 3, 3, 4), (4, 1, 2, 3, 3), {"groups": 2, "padding": 1}),
    "same": ((1, 2, 4, 5, 4), (3, 2, 2, 3, 4), {"padding": "same", "dilation": (1, 2, 1)}),
    "valid": ((1, 2, 4, 5, 4), (3, 2, 2, 3, 2), {"padding": "valid"}),
    "1x1x1 stride": ((2, 3, 3, 4, 5), (4, 3, 1, 1, 1), {"stride": 2}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv3d_matches_torch(name: str, bias: bool) -> None:
    x_shape, w_shape, kwargs = CONV_CASES[name]
    b = _t(w_shape[0], grad=True) if bias else None
    _check(conv3d, F.conv3d, _t(*x_shape, grad=True), _t(*w_shape, grad=True), b, **kwargs)


def _cl3(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous(memory_format=CL3).requires_grad_(t.requires_grad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv3d_channels_last_3d(dtype: torch.dtype) -> None:
    """channels_last_3d operands; the output is channels_last_3d as torch gives it (contiguous in float64)."""
    x, w = _cl3(_t(2, 3, 3, 4, 5, dtype=dtype, grad=True)), _cl3(_t(4, 3, 2, 2, 3, dtype=dtype, grad=True))
    out = _check(conv3d, F.conv3d, x, w, _t(4, dtype=dtype, grad=True), dtype=dtype, layout=dtype == F64,
                 padding=1)
    assert out.is_contiguous(memory_format=CL3) == (dtype != F64)
    x_plain = _t(2, 3, 3, 4, 5, dtype=dtype, grad=True)  # a channels_last_3d weight alone decides it too
    out = _check(conv3d, F.conv3d, x_plain, w, None, dtype=dtype, layout=dtype == F64, stride=2)
    assert out.is_contiguous(memory_format=CL3) == (dtype != F64)


def test_conv3d_views() -> None:
    """Sliced, permuted and expanded operands: every tensor is read through its own five strides."""
    x, w, b = _t(2, 6, 5, 8, 5, grad=True), _t(4, 3, 2, 2, 3, grad=True), _t(6, grad=True)

    def view(x, w, b):
        return x[:, 1:5, :, ::2].transpose(3, 4), w.permute(1, 0, 2, 3, 4), b[::2]

    _check(conv3d, F.conv3d, x, w, b, view=view, padding=(1, 0, 1), stride=(1, 2, 1), layout=False)
    expanded = _t(1, 2, 1, 4, 5, grad=True)
    _check(conv3d, F.conv3d, expanded, _t(3, 2, 1, 2, 2, grad=True), None,
           view=lambda x, w, b: (x.expand(2, 2, 3, 4, 5), w, b), layout=False)


def test_conv3d_unbatched() -> None:
    out = _check(conv3d, F.conv3d, _t(2, 3, 4, 5, grad=True), _t(3, 2, 2, 2, 2, grad=True), _t(3, grad=True),
                 padding=1)
    assert out.dim() == 4


def test_conv3d_empty_batch_and_no_channels() -> None:
    _check(conv3d, F.conv3d, _t(0, 2, 3, 4, 5, grad=True), _t(3, 2, 2, 2, 2, grad=True), _t(3, grad=True))
    x, w = _t(1, 0, 3, 4, 5, grad=True), _t(3, 0, 2, 2, 2, grad=True)
    out = conv3d(x, w)
    assert out.shape == F.conv3d(x.detach(), w.detach()).shape
    out.sum().backward()
    assert x.grad is not None and w.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conv3d_low_precision(dtype: torch.dtype) -> None:
    x, w, b = _t(2, 4, 3, 4, 5, dtype=dtype, grad=True), _t(4, 2, 2, 3, 2, dtype=dtype, grad=True), \
        _t(4, dtype=dtype, grad=True)
    _check(conv3d, F.conv3d, x, w, b, dtype=dtype, padding=1, groups=2)


def test_conv3d_gradcheck_and_gradgradcheck() -> None:
    """Fast mode (random projections of the Jacobians): each full Jacobian would cost hundreds of interpreted
    launches."""
    x, w, b = _t(1, 2, 2, 3, 3, grad=True), _t(2, 1, 2, 2, 2, grad=True), _t(2, grad=True)

    def fn(x, w, b):
        return conv3d(x, w, b, stride=(1, 2, 1), padding=(1, 0, 1), dilation=(1, 1, 2), groups=2)

    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b), fast_mode=True)


def test_conv3d_weight_gradient_is_deterministic() -> None:
    x, w = _t(2, 3, 4, 5, 5, dtype=torch.float32), _t(4, 3, 2, 2, 2, dtype=torch.float32, grad=True)
    grad = torch.randn(2, 4, 3, 4, 4)
    first, second = (torch.autograd.grad(conv3d(x, w), w, grad)[0] for _ in range(2))
    assert torch.equal(first, second)


def test_batch_chunks_keep_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 2**31 flattened pixels the launchers split the batch; with the limit lowered they split it here, and
    every pass (forward, input and weight gradients, the transposed forward) still matches torch."""
    monkeypatch.setattr(conv3d_ops, "batch_chunks", functools.partial(batch_chunks, limit=40))
    with recording(run=True) as launches:
        _check(conv3d, F.conv3d, _t(5, 2, 3, 3, 4, grad=True), _t(3, 2, 2, 2, 2, grad=True), _t(3, grad=True),
               padding=1, stride=(1, 2, 1))
        _check(conv_transpose3d, F.conv_transpose3d, _t(3, 2, 2, 3, 2, grad=True), _t(2, 2, 2, 2, 2), None,
               stride=2)
    for space in ("conv3d_fwd_kernel", "conv3d_dgrad_kernel", "conv3d_wgrad_kernel"):
        assert sum(r.space.name == space for r in launches) >= 3, space


# --------------------------------------------------------------------------------------------------------
# conv_transpose3d

TRANSPOSED_CASES = {
    "plain": ((2, 3, 3, 4, 2), (3, 2, 2, 3, 2), {}),
    "stride output_padding": ((1, 2, 2, 3, 3), (2, 3, 3, 2, 3), {"stride": (2, 3, 2), "padding": 1,
                                                                 "output_padding": (1, 2, 0)}),
    "groups dilation": ((1, 4, 3, 2, 3), (4, 2, 2, 2, 3), {"groups": 2, "dilation": (2, 1, 2),
                                                           "stride": (1, 2, 2), "output_padding": (0, 1, 1)}),
    "padding": ((2, 2, 3, 3, 4), (2, 3, 3, 3, 2), {"padding": (1, 2, 0)}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("name", list(TRANSPOSED_CASES))
def test_conv_transpose3d_matches_torch(name: str, bias: bool) -> None:
    x_shape, w_shape, kwargs = TRANSPOSED_CASES[name]
    groups = kwargs.get("groups", 1)
    b = _t(w_shape[1] * groups, grad=True) if bias else None
    _check(conv_transpose3d, F.conv_transpose3d, _t(*x_shape, grad=True), _t(*w_shape, grad=True), b, **kwargs)


def test_conv_transpose3d_layouts_views_unbatched_empty() -> None:
    x = _cl3(_t(1, 2, 2, 3, 3, dtype=torch.float32, grad=True))
    w = _t(2, 3, 2, 2, 2, dtype=torch.float32, grad=True)
    out = _check(conv_transpose3d, F.conv_transpose3d, x, w, None, dtype=torch.float32, layout=False, stride=2)
    assert out.is_contiguous(memory_format=CL3)
    x = _t(1, 4, 3, 6, 3, grad=True)
    _check(conv_transpose3d, F.conv_transpose3d, x, _t(2, 3, 2, 2, 2, grad=True), None,
           view=lambda x, w, b: (x[:, ::2, :, 1:5].transpose(2, 4), w, b), stride=(2, 1, 2), layout=False)
    assert _check(conv_transpose3d, F.conv_transpose3d, _t(2, 2, 3, 2, grad=True), _t(2, 3, 2, 2, 2, grad=True),
                  _t(3, grad=True), stride=2).dim() == 4
    _check(conv_transpose3d, F.conv_transpose3d, _t(0, 2, 2, 2, 2, grad=True), _t(2, 3, 2, 2, 2, grad=True),
           _t(3, grad=True), stride=2)


def test_conv_transpose3d_gradcheck_and_gradgradcheck() -> None:
    x, w, b = _t(1, 2, 2, 1, 2, grad=True), _t(2, 1, 2, 2, 2, grad=True), _t(2, grad=True)

    def fn(x, w, b):
        return conv_transpose3d(x, w, b, stride=(2, 1, 2), padding=(0, 1, 1), output_padding=(1, 0, 1), groups=2,
                                dilation=(1, 2, 1))

    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b), fast_mode=True)


# --------------------------------------------------------------------------------------------------------
# Errors: the type and wording torch gives

def _x(*shape: int) -> torch.Tensor:
    return _t(*shape, dtype=torch.float32)


CONV_ERRORS = {
    "input not a tensor": (lambda: ("x", _x(3, 2, 2, 2, 2)), {}),
    "stride of a wrong type": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"stride": "a"}),
    "bias dtype": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2), _t(3)), {}),
    "weight dtype": (lambda: (_x(1, 2, 4, 4, 4), _t(3, 2, 2, 2, 2)), {}),
    "input rank 6": (lambda: (_x(1, 2, 4, 4, 4, 4), _x(3, 2, 2, 2, 2)), {}),
    "input rank 3": (lambda: (_x(2, 4, 4), _x(3, 2, 2, 2, 2)), {}),
    "weight rank 4": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2)), {}),
    "channels": (lambda: (_x(1, 3, 4, 4, 4), _x(3, 2, 2, 2, 2)), {}),
    "groups divide filters": (lambda: (_x(1, 4, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"groups": 2}),
    "bias size": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2), _x(4)), {}),
    "kernel too large": (lambda: (_x(1, 2, 2, 4, 4), _x(3, 2, 3, 2, 2)), {}),
    "same with stride": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"padding": "same", "stride": 2}),
    "bad padding string": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"padding": "full"}),
    "negative padding": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"padding": -1}),
    "zero stride": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"stride": 0}),
    "stride of length 2": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"stride": (1, 2)}),
    "zero groups": (lambda: (_x(1, 2, 4, 4, 4), _x(3, 2, 2, 2, 2)), {"groups": 0}),
    "empty spatial": (lambda: (_x(1, 2, 0, 4, 4), _x(3, 2, 1, 2, 2)), {}),
}
TRANSPOSED_ERRORS = {
    "input not a tensor": (lambda: ("x", _x(2, 3, 2, 2, 2)), {}),
    "channels": (lambda: (_x(1, 3, 2, 2, 2), _x(2, 3, 2, 2, 2)), {}),
    "output padding too large": (lambda: (_x(1, 2, 2, 2, 2), _x(2, 3, 2, 2, 2)), {"stride": 2,
                                                                                  "output_padding": 2}),
    "output too small": (lambda: (_x(1, 2, 1, 1, 1), _x(2, 3, 1, 1, 1)), {"padding": 1}),
    "bias size": (lambda: (_x(1, 2, 2, 2, 2), _x(2, 3, 2, 2, 2), _x(2)), {}),
    "weight dtype": (lambda: (_x(1, 2, 2, 2, 2), _t(2, 3, 2, 2, 2)), {}),
    "input rank 6": (lambda: (_x(1, 2, 2, 2, 2, 2), _x(2, 3, 2, 2, 2)), {}),
    "groups": (lambda: (_x(1, 2, 2, 2, 2), _x(2, 3, 2, 2, 2)), {"groups": 3}),
}


@pytest.mark.parametrize("name", list(CONV_ERRORS))
def test_conv3d_errors_like_torch(name: str) -> None:
    make, kwargs = CONV_ERRORS[name]
    assert_raises_like_torch(F.conv3d, conv3d, *make(), **kwargs)


@pytest.mark.parametrize("name", list(TRANSPOSED_ERRORS))
def test_conv_transpose3d_errors_like_torch(name: str) -> None:
    make, kwargs = TRANSPOSED_ERRORS[name]
    assert_raises_like_torch(F.conv_transpose3d, conv_transpose3d, *make(), **kwargs)


def test_geometry_raises_on_shapes_alone() -> None:
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        conv3d_geometry((1, 2, 2, 4, 4), (3, 2, 3, 2, 2))


# --------------------------------------------------------------------------------------------------------
# Fused epilogue: act(conv + bias) + residual, or act(conv + bias + residual)

_ACTIVATIONS = {None: lambda z, slope: z, "relu": lambda z, slope: F.relu(z),
                "leaky_relu": lambda z, slope: F.leaky_relu(z, slope), "gelu": lambda z, slope: F.gelu(z),
                "silu": lambda z, slope: F.silu(z)}


def _fused(torch_op: Callable) -> Callable:
    """torch's convolution followed by the activation and the residual add: the epilogue's reference."""
    def ref(x, w, b, residual, *, activation=None, negative_slope=0.01, residual_before_activation=False, **kw):
        y = torch_op(x, w, b, **kw)
        if residual is not None and residual_before_activation:
            y = y + residual
        y = _ACTIVATIONS[activation](y, negative_slope)
        return y + residual if residual is not None and not residual_before_activation else y
    return ref


def _with_residual(op: Callable) -> Callable:
    return lambda x, w, b, residual, **kw: op(x, w, b, residual=residual, **kw)


# (activation, residual: None / "after" / "before", slope)
EPILOGUES = {
    "relu": ("relu", None, 0.01),
    "gelu + residual": ("gelu", "after", 0.01),
    "silu(+residual)": ("silu", "before", 0.01),
    "leaky_relu 0.2 + residual": ("leaky_relu", "after", 0.2),
    "relu(+residual)": ("relu", "before", 0.01),
    "residual only": (None, "after", 0.01),
}


def _epilogue_kwargs(name: str) -> dict:
    activation, placement, slope = EPILOGUES[name]
    return {"activation": activation, "negative_slope": slope, "residual_before_activation": placement == "before"}


@pytest.mark.parametrize("name", list(EPILOGUES))
def test_conv3d_epilogue_matches_torch(name: str) -> None:
    residual = _t(1, 3, 2, 3, 3, grad=True) if EPILOGUES[name][1] else None
    _check(_with_residual(conv3d), _fused(F.conv3d), _t(1, 2, 3, 4, 4, grad=True), _t(3, 2, 2, 2, 2, grad=True),
           _t(3, grad=True), residual, **_epilogue_kwargs(name))


def test_conv3d_epilogue_channels_last_3d_and_depthwise() -> None:
    x, w = _cl3(_t(1, 2, 3, 3, 4, grad=True)), _t(3, 2, 2, 2, 2, grad=True)
    _check(_with_residual(conv3d), _fused(F.conv3d), x, w, None, _cl3(_t(1, 3, 4, 2, 5, grad=True)),
           padding=(1, 0, 1), activation="gelu")
    _check(_with_residual(conv3d), _fused(F.conv3d), _t(1, 2, 3, 3, 4, grad=True), _t(4, 1, 2, 2, 2, grad=True),
           _t(4, grad=True), _t(1, 4, 2, 2, 3, grad=True), groups=2, activation="leaky_relu", negative_slope=0.1)


@pytest.mark.parametrize("name", ["gelu + residual", "relu(+residual)", "leaky_relu 0.2 + residual"])
def test_conv_transpose3d_epilogue_matches_torch(name: str) -> None:
    groups = 2 if name.startswith("leaky") else 1  # (two groups of one output channel: the depthwise kernels)
    cout = 3 if groups == 1 else 2
    _check(_with_residual(conv_transpose3d), _fused(F.conv_transpose3d), _t(1, 2, 2, 2, 3, grad=True),
           _t(2, cout // groups, 2, 2, 2, grad=True), _t(cout, grad=True), _t(1, cout, 4, 3, 6, grad=True),
           stride=(2, 1, 2), groups=groups, **_epilogue_kwargs(name))


def test_epilogue_unbatched() -> None:
    out = _check(_with_residual(conv3d), _fused(F.conv3d), _t(2, 2, 3, 3, grad=True), _t(3, 2, 2, 2, 2, grad=True),
                 None, _t(3, 1, 2, 2, grad=True), activation="silu")
    assert out.dim() == 4
    out = _check(_with_residual(conv_transpose3d), _fused(F.conv_transpose3d), _t(2, 2, 1, 2, grad=True),
                 _t(2, 3, 2, 2, 2, grad=True), _t(3, grad=True), _t(3, 3, 2, 3, grad=True), activation="relu")
    assert out.dim() == 4


def test_epilogue_gradcheck_and_double_backward() -> None:
    """gelu with a residual (pre-activation stored): gradcheck; relu (read off the output): a second backward
    against torch's; a second backward through gelu raises as in 2-D."""
    x, w, b, r = _t(1, 2, 2, 2, 3, grad=True), _t(2, 2, 2, 2, 2, grad=True), _t(2, grad=True), \
        _t(1, 2, 3, 1, 4, grad=True)

    def fn(activation):
        return lambda x, w, b, r: conv3d(x, w, b, padding=(1, 0, 1), activation=activation, residual=r)

    assert torch.autograd.gradcheck(fn("gelu"), (x, w, b, r), fast_mode=True)
    ref = _fused(F.conv3d)
    grad_x, = torch.autograd.grad(fn("relu")(x, w, b, r).square().sum(), x, create_graph=True)
    want_x, = torch.autograd.grad(ref(x, w, b, r, padding=(1, 0, 1), activation="relu").square().sum(), x,
                                  create_graph=True)
    for got, want in zip(torch.autograd.grad(grad_x.square().sum(), (w, r)),
                         torch.autograd.grad(want_x.square().sum(), (w, r)), strict=True):
        _assert_close(got, want, F64, "double backward")
    grad_x, = torch.autograd.grad(fn("gelu")(x, w, b, r).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through a fused gelu"):
        grad_x.sum().backward()


def test_epilogue_errors() -> None:
    x, w = _x(1, 2, 4, 4, 4), _x(3, 2, 3, 3, 3)
    with pytest.raises(RuntimeError, match=r"conv3d: residual of shape \(1, 3, 4, 4, 4\) does not match the "
                                           r"output shape \(1, 3, 2, 2, 2\)"):
        conv3d(x, w, residual=_x(1, 3, 4, 4, 4))
    with pytest.raises(RuntimeError, match=r"conv3d: expected residual of dtype torch.float32 \(the output's\), "
                                           "got torch.float64"):
        conv3d(x, w, residual=_t(1, 3, 2, 2, 2))
    with pytest.raises(RuntimeError, match=r"conv_transpose3d: residual of shape \(1, 3, 4, 4, 4\) does not "
                                           r"match the output shape \(1, 3, 6, 6, 6\)"):
        conv_transpose3d(x, w.transpose(0, 1), residual=_x(1, 3, 4, 4, 4))
    with pytest.raises(RuntimeError, match=r"conv_transpose3d: expected residual of dtype torch.float32"):
        conv_transpose3d(x, w.transpose(0, 1), residual=_t(1, 3, 6, 6, 6))
    with pytest.raises(RuntimeError, match=r"conv3d: residual of shape \(1, 2, 2, 2\) does not match the output "
                                           r"shape \(3, 2, 2, 2\)"):
        conv3d(x[0], w, residual=_x(1, 2, 2, 2))
    with pytest.raises(ValueError, match="activation must be one of"):
        conv3d(x, w, activation="tanh")
    with pytest.raises(TypeError, match="residual must be a Tensor"):
        conv_transpose3d(x, w.transpose(0, 1), residual=3.0)


# --------------------------------------------------------------------------------------------------------
# Registered ops: opcheck and torch.compile


def _opcheck_cases() -> list[tuple[object, tuple]]:
    x, w, b = _t(1, 2, 3, 4, 4, grad=True), _t(3, 2, 2, 2, 3, grad=True), _t(3, grad=True)
    x_cl = _t(1, 2, 3, 4, 4).contiguous(memory_format=CL3).requires_grad_()
    gy = _t(1, 3, 2, 3, 2)
    conv = ([1, 1, 1], [0, 0, 0], [1, 1, 1], 1)
    plain = ("none", 0.01, False, False)
    return [
        (C3.conv, (x, w, b, None, [1, 2, 1], [1, 1, 0], [1, 1, 1], 1, [4, 3, 2], False, *plain)),
        (C3.conv, (x_cl, w, None, None, *conv, [2, 3, 2], True, *plain)),
        (C3.conv, (x, w, b, _t(1, 3, 2, 3, 2, grad=True), *conv, [2, 3, 2], False, "gelu", 0.01,
                                     False, True)),
        (C3.input_grad, (gy, w.detach(), [1, 2, 3, 4, 4], *conv, False)),
        (C3.weight_grad, (gy, x.detach(), [3, 2, 2, 2, 3], *conv)),
        (C3.conv_transpose, (x, _t(2, 2, 2, 2, 2, grad=True), _t(4, grad=True), None, [2, 2, 2],
                                               [1, 0, 1], [1, 1, 1], 2, [6, 8, 7], False, *plain)),
        (C3.conv_transpose, (x_cl, _t(2, 3, 1, 2, 2, grad=True), None, None, [1, 2, 1],
                                               [0, 0, 0], [1, 1, 1], 1, [3, 8, 5], True, *plain)),
        (C3.conv_transpose, (x, _t(2, 3, 1, 2, 2, grad=True), None, _t(1, 3, 3, 8, 5, grad=True),
                                               [1, 2, 1], [0, 0, 0], [1, 1, 1], 1, [3, 8, 5], False, "leaky_relu",
                                               0.2, True, True)),
    ]


OPCHECKED = {op for op, _ in _opcheck_cases()}


@pytest.mark.parametrize("case", range(len(_opcheck_cases())))
def test_opcheck(case: int) -> None:
    op, args = _opcheck_cases()[case]
    torch.library.opcheck(op, args)


class _Net(torch.nn.Module):
    def __init__(self, ours: bool) -> None:
        super().__init__()
        self.ours = ours
        self.w1, self.b1 = torch.nn.Parameter(torch.randn(4, 2, 2, 2, 2)), torch.nn.Parameter(torch.randn(4))
        self.w2, self.b2 = torch.nn.Parameter(torch.randn(4, 3, 2, 2, 2)), torch.nn.Parameter(torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, up = (conv3d, conv_transpose3d) if self.ours else (F.conv3d, F.conv_transpose3d)
        return up(conv(x, self.w1, self.b1, stride=2, padding=1), self.w2, self.b2, stride=2)


def test_compile_fullgraph_matches_torch() -> None:
    torch._dynamo.reset()
    ours, ref = _Net(True).to(DEVICE, F64), _Net(False).to(DEVICE, F64)
    ref.load_state_dict(ours.state_dict())
    graphs, backward_graphs = [], []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        graphs.append(str(gm.graph))

        def backward(bw, _):
            backward_graphs.append(str(bw.graph))
            return make_boxed_func(bw)

        return aot_autograd(fw_compiler=lambda fw, _: make_boxed_func(fw), bw_compiler=backward)(gm, example_inputs)

    compiled = torch.compile(ours, fullgraph=True, backend=backend, dynamic=False)
    x = _t(2, 2, 4, 5, 4)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, want = compiled(x_ours), ref(x_ref)
    torch.testing.assert_close(out, want)
    assert len(graphs) == 1 and "kernels.conv3d" in graphs[0] and "kernels.conv_transpose3d" in graphs[0]
    grad = torch.randn_like(want)
    out.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_ref.grad)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    for name in ("conv3d_input_grad", "conv3d_weight_grad", "channel_sum", "conv3d.default"):
        assert f"kernels.{name}" in backward_graphs[0], name
