"""The 1-D family (``kernels.conv1d``, ``conv_transpose1d``, the 1-D pooling functions and their modules), views
of the 2-D ops with ``H = 1``: outputs, gradients, layouts and errors against torch's 1-D functions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from torch.utils._python_dispatch import TorchDispatchMode
from torch_errors import assert_raises_like_torch

import kernels
from kernels import nn as knn

F64 = torch.float64


def _t(*shape: int, dtype: torch.dtype = F64, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, device=DEVICE).requires_grad_(grad)


class _ForbidTorchOps(TorchDispatchMode):
    """Fail when torch's own convolution or pooling runs."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if any(op in name for op in ("convolution", "conv1d", "conv2d", "conv_transpose", "conv_depthwise", "pool")):
            raise AssertionError(f"kernels fell back to torch ({name})")
        return func(*args, **(kwargs or {}))


def _leaves(*ts: torch.Tensor | None) -> list[torch.Tensor]:
    return [t for t in ts if t is not None and t.requires_grad]


def _compare(ours_fn, ref_fn, tensors: tuple, *args, tol: float = 1e-10, grad_strides: bool = True,
             **kwargs) -> None:
    """Output (values and strides) and the gradients of every tensor requiring one (values, and strides unless
    not ``grad_strides``), ours against torch's."""
    twins = tuple(None if t is None else t.detach().clone().requires_grad_(t.requires_grad) for t in tensors)
    with _ForbidTorchOps():
        out = ours_fn(*tensors, *args, **kwargs)
    ref = ref_fn(*twins, *args, **kwargs)
    outs, refs = (out, ref) if isinstance(out, tuple) else ((out,), (ref,))
    for o, r in zip(outs, refs, strict=True):
        assert o.shape == r.shape and o.dtype == r.dtype
        if r.numel():
            assert o.stride() == r.stride(), (o.stride(), r.stride())
        if r.dtype == torch.int64:
            assert torch.equal(o, r)
        else:
            torch.testing.assert_close(o, r, rtol=tol, atol=tol)
    leaves = _leaves(*tensors)
    if leaves and outs[0].numel():
        grad = torch.randn_like(refs[0])
        with _ForbidTorchOps():
            ours = torch.autograd.grad(outs[0], leaves, grad)
        theirs = torch.autograd.grad(refs[0], _leaves(*twins), grad)
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
            assert not grad_strides or a.stride() == b.stride() or not b.numel(), (a.stride(), b.stride())


# --------------------------------------------------------------------------------------------------------
# conv1d / conv_transpose1d

CONV_CASES = [
    ((2, 4, 17), (6, 4, 3), {}),
    ((2, 4, 17), (6, 4, 3), {"stride": 2, "padding": 1}),
    ((2, 4, 17), (6, 2, 3), {"groups": 2, "dilation": 2, "padding": (2,)}),
    ((2, 4, 16), (6, 4, 4), {"padding": "same", "dilation": 3}),
    ((2, 4, 16), (8, 1, 5), {"groups": 4, "padding": "same"}),  # depthwise, channel multiplier 2
    ((1, 3, 9), (5, 3, 2), {"padding": "valid", "stride": (3,)}),
    ((3, 9), (5, 3, 3), {"padding": 1}),  # unbatched
    ((0, 3, 9), (5, 3, 3), {}),  # empty batch
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs", CONV_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv1d(x_shape, w_shape, kwargs, channels_last) -> None:
    x = _t(*x_shape)
    if channels_last:  # an (N, L, C) tensor seen as (N, C, L)
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    _compare(kernels.conv1d, F.conv1d, (x.requires_grad_(), _t(*w_shape, grad=True), _t(w_shape[0], grad=True)),
             **kwargs)


TRANSPOSED_CASES = [
    ((2, 4, 9), (4, 3, 3), {}),
    ((2, 4, 9), (4, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 4, 9), (4, 2, 4), {"groups": 2, "dilation": 2, "stride": 3, "output_padding": (2,)}),
    ((4, 7), (4, 3, 2), {"stride": 2}),  # unbatched
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs", TRANSPOSED_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_transpose1d(x_shape, w_shape, kwargs, channels_last) -> None:
    x = _t(*x_shape)
    if channels_last:
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    bias = _t(w_shape[1] * kwargs.get("groups", 1), grad=True)
    _compare(kernels.conv_transpose1d, F.conv_transpose1d, (x.requires_grad_(), _t(*w_shape, grad=True), bias),
             **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_conv1d_dtypes(dtype) -> None:
    x, w, b = _t(2, 4, 20, dtype=dtype), _t(6, 4, 3, dtype=dtype), _t(6, dtype=dtype)
    out = kernels.conv1d(x, w, b, padding=1)
    ref = F.conv1d(x.double(), w.double(), b.double(), padding=1)
    assert out.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())
    out = kernels.conv_transpose1d(x, w.transpose(0, 1).contiguous(), None, 2)
    ref = F.conv_transpose1d(x.double(), w.transpose(0, 1).double(), None, 2)
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())


class _Record(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func._schema.name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("op", ["conv1d", "max_pool1d"])
def test_views_not_copies(op) -> None:
    """A 1-D call runs exactly the aten ops of its 2-D twin on the 4-D views, plus the views (no copy)."""
    x, w = _t(2, 9, 4).transpose(1, 2), _t(3, 4, 3)
    def lift(t):  # the H-stride-1 view: conv1d's, and max_pool1d's without gradient nor indices
        return t.unsqueeze(-1).transpose(-1, -2)

    args_1d, args_2d = ((x, w), (lift(x), lift(w))) if op == "conv1d" else ((x, 3), (lift(x), (1, 3)))
    with _Record() as one_d:
        getattr(kernels, op)(*args_1d)
    with _Record() as two_d:
        two = getattr(kernels, op.replace("1d", "2d"))
        (two if op == "conv1d" else two.__wrapped__)(*args_2d)  # max_pool1d does not go through call plans
    views = ("aten::unsqueeze", "aten::transpose", "aten::squeeze")
    assert [n for n in one_d.seen if n not in views] == [n for n in two_d.seen if n not in views]
    assert one_d.seen[-1] == "aten::squeeze"


def test_gradcheck_conv() -> None:
    x, w, b = _t(1, 2, 7, grad=True), _t(3, 2, 3, grad=True), _t(3, grad=True)
    assert torch.autograd.gradcheck(lambda *a: kernels.conv1d(*a, stride=2, padding=1), (x, w, b))
    assert torch.autograd.gradgradcheck(lambda *a: kernels.conv1d(*a, padding=1, dilation=2), (x, w, b))
    wt = _t(2, 3, 3, grad=True)
    assert torch.autograd.gradcheck(lambda *a: kernels.conv_transpose1d(*a, stride=2, output_padding=1), (x, wt, b))


def test_conv1d_epilogue_and_autocast() -> None:
    x, w, b, r = _t(2, 4, 11), _t(6, 4, 3), _t(6), _t(2, 6, 11)
    out = kernels.conv1d(x, w, b, padding=1, activation="relu", residual=r)
    torch.testing.assert_close(out, F.relu(F.conv1d(x, w, b, padding=1)) + r)
    x32, w32 = x.float().requires_grad_(), w.float().requires_grad_()
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        ours = kernels.conv1d(x32, w32)
        ref = F.conv1d(x32.detach(), w32.detach())
    assert ours.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref.float(), rtol=2e-2, atol=5e-2)
    ours.float().sum().backward()
    assert x32.grad.dtype == torch.float32 and w32.grad.dtype == torch.float32


# --------------------------------------------------------------------------------------------------------
# pooling

POOL_CASES = [
    ("max_pool1d", (3,), {}),
    ("max_pool1d", (3,), {"stride": 2, "padding": 1, "dilation": 2}),
    ("max_pool1d", (4,), {"stride": 3, "ceil_mode": True, "return_indices": True}),
    ("max_pool1d", ((2,),), {"padding": (1,), "return_indices": True}),
    ("avg_pool1d", (3,), {}),
    ("avg_pool1d", (3,), {"stride": 2, "padding": 1, "count_include_pad": False}),
    ("avg_pool1d", (4,), {"stride": 3, "padding": 2, "ceil_mode": True}),
    ("adaptive_avg_pool1d", (5,), {}),
    ("adaptive_avg_pool1d", (1,), {}),
    ("adaptive_max_pool1d", (6,), {"return_indices": True}),
    ("adaptive_max_pool1d", (4,), {}),
]


@pytest.mark.parametrize("op,args,kwargs", POOL_CASES)
@pytest.mark.parametrize("shape,channels_last", [((2, 3, 17), False), ((2, 3, 17), True), ((3, 13), False),
                                                 ((0, 3, 9), False)])
@pytest.mark.parametrize("grad", [True, False])
def test_pool1d(op, args, kwargs, shape, channels_last, grad) -> None:
    if shape[0] == 0 and "adaptive" not in op and not grad:
        pytest.skip("covered with grad")
    x = _t(*shape)
    if channels_last:
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    # torch's global average pooling (output size 1) gives a contiguous input gradient for a channels-innermost
    # input; the 2-D global-pooling kernels give it channels_last (values equal)
    global_avg = op == "adaptive_avg_pool1d" and args == (1,)
    _compare(getattr(kernels, op), getattr(F, op), (x.requires_grad_(grad),), *args, grad_strides=not global_avg,
             **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_pool1d_dtypes(dtype) -> None:
    x = _t(2, 3, 20, dtype=dtype)
    for op, args in (("max_pool1d", (3, 2)), ("avg_pool1d", (3, 2, 1)), ("adaptive_avg_pool1d", (7,)),
                     ("adaptive_max_pool1d", (7,))):
        out = getattr(kernels, op)(x, *args)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), getattr(F, op)(x.double(), *args), rtol=1e-2, atol=1e-2)


def test_gradcheck_pool() -> None:
    x = torch.randperm(14, dtype=F64).reshape(1, 2, 7).requires_grad_()  # distinct values: no ties
    assert torch.autograd.gradcheck(lambda t: kernels.max_pool1d(t, 3, 2, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: kernels.max_pool1d(t, 3, 2, 1), (x,))
    assert torch.autograd.gradcheck(lambda t: kernels.avg_pool1d(t, 3, 2, 1, count_include_pad=False), (x,))
    assert torch.autograd.gradcheck(lambda t: kernels.adaptive_avg_pool1d(t, 3), (x,))
    assert torch.autograd.gradcheck(lambda t: kernels.adaptive_max_pool1d(t, 3), (x,))


# --------------------------------------------------------------------------------------------------------
# errors

def _x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, device=DEVICE)


CONV_ERRORS = {
    "input-rank-4": lambda: (_x(2, 4, 7, 7), _x(6, 4, 3)),
    "input-rank-1": lambda: (_x(7), _x(6, 4, 3)),
    "weight-rank-4": lambda: (_x(2, 4, 7), _x(6, 4, 3, 3)),
    "weight-rank-2": lambda: (_x(2, 4, 7), _x(6, 4)),
    "weight-rank-4-unbatched": lambda: (_x(4, 7), _x(6, 4, 3, 3)),
    "channels": lambda: (_x(2, 5, 7), _x(6, 4, 3)),
    "channels-unbatched": lambda: (_x(5, 7), _x(6, 4, 3)),
    "kernel-bigger": lambda: (_x(2, 4, 2), _x(6, 4, 3)),
    "dilated-kernel-bigger": lambda: (_x(2, 4, 4), _x(6, 4, 3), None, 1, 0, 2),
    "zero-length": lambda: (_x(2, 4, 0), _x(6, 4, 3), None, 1, 2),
    "zero-length-unbatched": lambda: (_x(4, 0), _x(6, 4, 3), None, 1, 2),
    "bias-length": lambda: (_x(2, 4, 7), _x(6, 4, 3), _x(5)),
    "bias-dtype": lambda: (_x(2, 4, 7), _x(6, 4, 3), _x(6).double()),
    "weight-dtype": lambda: (_x(2, 4, 7), _x(6, 4, 3).double()),
    "stride-0": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 0),
    "stride-pair": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, (1, 2)),
    "padding-pair": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 1, (1, 1)),
    "padding-negative": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 1, -1),
    "dilation-0": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 1, 0, 0),
    "same-strided": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 2, "same"),
    "padding-string": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 1, "full"),
    "stride-float": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 1.5),
    "groups-0": lambda: (_x(2, 4, 7), _x(6, 4, 3), None, 1, 0, 1, 0),
    "groups-not-dividing": lambda: (_x(2, 4, 7), _x(5, 2, 3), None, 1, 0, 1, 2),
    "weight-not-tensor": lambda: (_x(2, 4, 7), [1.0]),
}


@pytest.mark.parametrize("case", CONV_ERRORS)
def test_conv1d_errors(case) -> None:
    assert_raises_like_torch(F.conv1d, kernels.conv1d, *CONV_ERRORS[case]())


TRANSPOSED_ERRORS = {
    "input-rank-4": lambda: (_x(2, 4, 7, 7), _x(4, 6, 3)),
    "weight-rank-4": lambda: (_x(2, 4, 7), _x(4, 6, 3, 3)),
    "channels": lambda: (_x(2, 5, 7), _x(4, 6, 3)),
    "bias-length": lambda: (_x(2, 4, 7), _x(4, 6, 3), _x(5)),
    "output-padding": lambda: (_x(2, 4, 7), _x(4, 6, 3), None, 1, 0, 1),
    "output-padding-pair": lambda: (_x(2, 4, 7), _x(4, 6, 3), None, 2, 0, (1, 1)),
    "stride-0": lambda: (_x(2, 4, 7), _x(4, 6, 3), None, 0),
    "stride-float": lambda: (_x(2, 4, 7), _x(4, 6, 3), None, 1.5),
    "zero-length": lambda: (_x(2, 4, 0), _x(4, 6, 3)),
}


@pytest.mark.parametrize("case", TRANSPOSED_ERRORS)
def test_conv_transpose1d_errors(case) -> None:
    assert_raises_like_torch(F.conv_transpose1d, kernels.conv_transpose1d, *TRANSPOSED_ERRORS[case]())


def test_conv_transpose1d_output_too_small() -> None:
    """torch's CPU backend (oneDNN) words this one its own way; ours is torch's generic wording."""
    with pytest.raises(RuntimeError, match=r"Given input size per channel: \[1\]\. Calculated output size per "
                                           r"channel: \[-1\]\. Output size is too small"):
        kernels.conv_transpose1d(_x(2, 4, 1), _x(4, 6, 1), padding=1)


POOL_ERRORS = [
    ("max_pool1d", lambda: (_x(2, 4, 7, 7), 2), {}),
    ("max_pool1d", lambda: (_x(2, 4, 7), 2), {"padding": 2}),
    ("max_pool1d", lambda: (_x(2, 4, 7), 2), {"padding": 2, "return_indices": True}),
    ("max_pool1d", lambda: (_x(2, 4, 7).requires_grad_(), 2), {"padding": 2}),
    ("max_pool1d", lambda: (_x(2, 4, 7), 0), {}),
    ("max_pool1d", lambda: (_x(2, 4, 7), 2), {"stride": 0}),
    ("max_pool1d", lambda: (_x(2, 4, 7), 2), {"stride": -1}),
    ("max_pool1d", lambda: (_x(2, 4, 3), 5), {}),
    ("max_pool1d", lambda: (_x(2, 4, 0), 2), {}),
    ("max_pool1d", lambda: (_x(2, 4, 7), (2, 2)), {}),
    ("max_pool1d", lambda: (_x(2, 4, 7), 2.0), {}),
    ("avg_pool1d", lambda: (_x(2, 4, 7, 7), 2), {}),
    ("avg_pool1d", lambda: (_x(2, 4, 7), 2), {"padding": 2}),
    ("avg_pool1d", lambda: (_x(2, 4, 7), (2, 2)), {}),
    ("avg_pool1d", lambda: (_x(2, 4, 7), 2), {"stride": 0}),
    ("avg_pool1d", lambda: (_x(2, 4, 3), 5), {}),
    ("adaptive_avg_pool1d", lambda: (_x(2, 4, 7, 7), 2), {}),
    ("adaptive_avg_pool1d", lambda: (_x(2, 4, 7), -1), {}),
    ("adaptive_avg_pool1d", lambda: (_x(2, 4, 7), (2, 2)), {}),
    ("adaptive_avg_pool1d", lambda: (_x(2, 4, 0), 2), {}),
    ("adaptive_max_pool1d", lambda: (_x(2, 4, 7, 7), 2), {}),
    ("adaptive_max_pool1d", lambda: (_x(2, 4, 7), (2, 2)), {}),
    ("adaptive_max_pool1d", lambda: (_x(2, 4, 0), 2), {}),
    ("adaptive_max_pool1d", lambda: (_x(2, 4, 7), -1), {}),
]


@pytest.mark.parametrize("op,args,kwargs", POOL_ERRORS, ids=[f"{c[0]}-{i}" for i, c in enumerate(POOL_ERRORS)])
def test_pool1d_errors(op, args, kwargs) -> None:
    assert_raises_like_torch(getattr(F, op), getattr(kernels, op), *args(), **kwargs)


# --------------------------------------------------------------------------------------------------------
# modules, convert, compile

@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv1d_module(padding_mode) -> None:
    torch_conv = torch.nn.Conv1d(4, 6, 3, padding=2, dilation=2, padding_mode=padding_mode).double().to(DEVICE)
    ours = knn.Conv1d(4, 6, 3, padding=2, dilation=2, padding_mode=padding_mode).double().to(DEVICE)
    ours.load_state_dict(torch_conv.state_dict())
    assert ours.state_dict().keys() == torch_conv.state_dict().keys() and repr(ours) == repr(torch_conv)
    x = _t(2, 4, 12)
    torch.testing.assert_close(ours(x), torch_conv(x))


def test_conv_transpose1d_module_output_size() -> None:
    ref = torch.nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1).double().to(DEVICE)
    ours = knn.ConvTranspose1d(4, 3, 3, stride=2, padding=1).double().to(DEVICE)
    ours.load_state_dict(ref.state_dict())
    x = _t(2, 4, 7)
    for size in (None, [14], [2, 3, 14]):
        torch.testing.assert_close(ours(x, output_size=size), ref(x, output_size=size))


def test_convert_sequential() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv1d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(8, 8, 3, groups=8, padding="same", padding_mode="reflect"), torch.nn.AvgPool1d(2),
        torch.nn.ConvTranspose1d(8, 4, 2, stride=2), torch.nn.AdaptiveMaxPool1d(5), torch.nn.AdaptiveAvgPool1d(3),
    ).double().to(DEVICE)
    x = _t(2, 3, 16)
    ref = model(x)
    report = kernels.convert(model, fuse_activations=True)
    assert len(report.converted) == 7 and report.fused == [("0", "relu")]
    assert type(model[0]) is knn.Conv1d and type(model[7]) is knn.AdaptiveAvgPool1d
    with _ForbidTorchOps():
        out = model(x)
    torch.testing.assert_close(out, ref)


def test_convert_keeps_unsupported() -> None:
    model = torch.nn.Sequential(torch.nn.ConvTranspose1d(3, 3, 2))
    model[0].padding_mode = "reflect"
    report = kernels.convert(model)
    assert report.converted == [] and "ConvTranspose1d supports only 'zeros'" in report.kept[0][1]


def test_compile() -> None:
    """The 1-D functions inside ``torch.compile(fullgraph=True)``: views around the registered 2-D ops."""
    def f(x, w, b):
        y = F.relu(kernels.conv1d(x, w, b, padding=1))
        y = kernels.max_pool1d(y, 2) + kernels.avg_pool1d(y, 2)
        return kernels.adaptive_avg_pool1d(y, 3)

    torch._dynamo.reset()
    x, w, b = _t(2, 3, 12, grad=True), _t(4, 3, 3, grad=True), _t(4, grad=True)
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(x, w, b)
    ref_in = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    ref = F.adaptive_avg_pool1d(F.max_pool1d(F.relu(F.conv1d(ref_in[0], ref_in[1], ref_in[2], padding=1)), 2)
                                + F.avg_pool1d(F.relu(F.conv1d(ref_in[0], ref_in[1], ref_in[2], padding=1)), 2), 3)
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out.sum(), (x, w, b))
    for a, r in zip(grads, torch.autograd.grad(ref.sum(), ref_in), strict=True):
        torch.testing.assert_close(a, r)
