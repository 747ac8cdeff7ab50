"""kernels.conv2d against torch.nn.functional.conv2d: forward and the input, weight and bias gradients.

The sweep is a hand-picked list of cases covering each value of each parameter (kernel sizes, strides,
paddings, dilations, groups, bias, odd spatial sizes) in varied combinations rather than their product;
targeted tests follow for dtypes, layouts, views, zero-size batches, unbatched inputs and gradcheck.
Shapes are small because without a GPU the kernels run through Triton's interpreter.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import kernels
from kernels.shapes import ConvGeometry, as_pair, conv2d_geometry, conv_output_size

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")
Pair = int | tuple[int, int]


@dataclass(frozen=True)
class Case:
    N: int
    C: int
    K: int
    H: int
    W: int
    kernel: Pair
    stride: Pair | list[int] = 1
    padding: Pair | str = 0
    dilation: Pair = 1
    groups: int = 1
    bias: bool = True

    @property
    def id(self) -> str:
        def fmt(v) -> str:
            return "x".join(map(str, v)) if isinstance(v, tuple | list) else str(v)

        kind = "dense" if self.groups == 1 else f"g{self.groups}"
        if self.groups > 1 and self.groups == self.C:
            kind = "dw" if self.K == self.C else f"dw{self.K // self.C}x"
        return (
            f"{kind}-n{self.N}c{self.C}k{self.K}-{self.H}x{self.W}-r{fmt(self.kernel)}-s{fmt(self.stride)}"
            f"-p{fmt(self.padding)}-d{fmt(self.dilation)}{'-bias' if self.bias else ''}"
        )

    def tensors(self, dtype: torch.dtype = torch.float32):
        r, s = as_pair(self.kernel, "kernel")
        x = torch.randn(self.N, self.C, self.H, self.W, dtype=dtype, device=DEVICE)
        w = torch.randn(self.K, self.C // self.groups, r, s, dtype=dtype, device=DEVICE)
        b = torch.randn(self.K, dtype=dtype, device=DEVICE) if self.bias else None
        return x, w, b

    @property
    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


CASES = [
    # dense, every kernel size
    Case(2, 4, 6, 7, 9, 3, padding=1),
    Case(2, 8, 4, 5, 11, 1, bias=False),
    Case(1, 3, 5, 8, 8, 1, stride=2),
    Case(2, 3, 4, 9, 10, 5, stride=(1, 2), padding=2),
    Case(1, 2, 3, 11, 9, 7, padding=3, bias=False),
    Case(2, 2, 4, 11, 10, 7, stride=3),
    Case(1, 3, 4, 10, 11, 2, stride=3, padding=1),
    # non-square kernels
    Case(2, 4, 4, 6, 7, (1, 3), padding=(0, 1)),
    Case(1, 4, 6, 7, 9, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), bias=False),
    Case(2, 3, 2, 9, 5, (5, 1), stride=(1, 3), padding=(2, 0)),
    # dilation
    Case(2, 4, 4, 9, 9, 3, padding=2, dilation=2),
    Case(1, 3, 2, 11, 10, 3, stride=2, padding=1, dilation=3, bias=False),
    Case(1, 2, 2, 11, 11, 3, stride=(3, 2), padding=(1, 2), dilation=(2, 3)),
    # padding larger than the kernel's reach: border outputs see padding only (bias alone)
    Case(1, 2, 3, 5, 5, 3, padding=3),
    Case(2, 3, 2, 6, 7, 3, padding="valid"),
    # 'same', symmetric and asymmetric (even kernel, or even total d*(k-1) made odd)
    Case(2, 4, 4, 7, 9, 3, padding="same"),
    Case(1, 3, 4, 9, 11, 5, padding="same", dilation=2, bias=False),
    Case(1, 2, 3, 7, 8, 4, padding="same"),
    Case(2, 3, 2, 8, 7, (2, 4), padding="same", dilation=(3, 1)),
    Case(1, 2, 2, 6, 6, 2, padding="same", dilation=(1, 3), bias=False),
    # groups
    Case(2, 8, 4, 7, 7, 3, padding=1, groups=2),
    Case(1, 8, 8, 9, 11, 5, stride=2, padding=2, groups=4, bias=False),
    Case(2, 4, 6, 10, 9, 3, stride=(1, 3), padding=(2, 1), dilation=(2, 1), groups=2),
    # depthwise, and depthwise with a channel multiplier
    Case(2, 4, 4, 8, 9, 3, padding=1, groups=4),
    Case(1, 6, 6, 11, 9, 5, stride=2, padding=2, groups=6, bias=False),
    Case(1, 4, 4, 7, 8, 4, padding="same", groups=4),
    Case(2, 3, 6, 7, 9, 3, padding=1, groups=3),
    Case(1, 4, 8, 9, 8, (3, 2), stride=(2, 1), dilation=2, padding="valid", groups=4, bias=False),
    Case(2, 2, 6, 5, 7, 1, stride=2, groups=2),
    # degenerate extents: 1x1 output, single row, single output channel, single input channel
    Case(2, 4, 6, 5, 5, 5),
    Case(1, 3, 2, 3, 3, 3, stride=2),
    Case(2, 3, 4, 1, 11, (1, 3), padding=(0, 1)),
    Case(2, 5, 1, 7, 7, 3),
    Case(2, 1, 4, 9, 9, 3, stride=2, padding=1),
    # enough rows and reduction length to span several blocks
    Case(2, 8, 8, 11, 11, 3, padding=1),
    Case(1, 16, 24, 6, 6, 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_conv2d_float32(case: Case, check_conv2d):
    x, w, b = case.tensors(torch.float32)
    check_conv2d(x, w, b, **case.kwargs)


DTYPE_CASES = [
    Case(2, 4, 6, 7, 9, 3, padding=1),
    Case(1, 8, 4, 7, 7, 3, stride=2, padding=1, groups=2, bias=False),
    Case(2, 4, 4, 8, 9, 3, padding=1, groups=4),
    Case(1, 3, 6, 7, 9, 3, padding=1, groups=3),
    Case(1, 2, 3, 11, 11, 3, stride=(3, 2), padding=(1, 2), dilation=(2, 3)),
    Case(1, 3, 2, 8, 7, (2, 4), padding="same", dilation=(3, 1), bias=False),
]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("case", DTYPE_CASES, ids=lambda c: c.id)
def test_conv2d_dtypes(case: Case, dtype: torch.dtype, check_conv2d):
    x, w, b = case.tensors(dtype)
    check_conv2d(x, w, b, **case.kwargs)


def test_default_arguments(check_conv2d):
    x, w, _ = Case(2, 3, 4, 6, 7, 3).tensors()
    check_conv2d(x, w)


def test_positional_and_keyword_arguments(forbid_torch_conv, assert_close):
    x, w, b = Case(1, 4, 4, 9, 8, 3, groups=2).tensors()
    expected = F.conv2d(x.double(), w.double(), b.double(), (2, 1), (1, 2), (1, 2), 2)
    with forbid_torch_conv():
        positional = kernels.conv2d(x, w, b, (2, 1), (1, 2), (1, 2), 2)
        keywords = kernels.conv2d(input=x, weight=w, bias=b, stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                  groups=2)
    assert_close(positional, expected, torch.float32, "positional")
    assert_close(keywords, expected, torch.float32, "keywords")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=[2, 1], padding=[1, 2], dilation=[2, 1]),
        dict(stride=(2,), padding=(1,), dilation=(2,)),
        dict(stride=torch.Size([1, 2]), padding=(0, 1)),
    ],
    ids=["lists", "one-element-tuples", "torch-size"],
)
def test_argument_forms(kwargs, check_conv2d):
    x, w, b = Case(1, 2, 3, 9, 8, 3).tensors()
    check_conv2d(x, w, b, grads=False, **kwargs)


@pytest.mark.parametrize(
    "grads",
    [(True, False, False), (False, True, False), (False, False, True), (False, True, True),
     (False, False, False)],
    ids=["input-only", "weight-only", "bias-only", "weight-and-bias", "none"],
)
def test_partial_requires_grad(grads, check_conv2d):
    x, w, b = Case(2, 4, 4, 7, 6, 3, stride=2, padding=1, groups=2).tensors()
    check_conv2d(x, w, b, grads=grads, stride=2, padding=1, groups=2)


def test_no_grad_mode(forbid_torch_conv, assert_close):
    x, w, b = Case(1, 3, 4, 7, 7, 3).tensors()
    x.requires_grad_()
    w.requires_grad_()
    with torch.no_grad(), forbid_torch_conv():
        out = kernels.conv2d(x, w, b, padding=1)
    assert not out.requires_grad
    expected = F.conv2d(x.detach().double(), w.detach().double(), b.double(), padding=1)
    assert_close(out, expected, torch.float32)


def test_tf32_flag_float32_accuracy(forbid_torch_conv, assert_close):
    """With TF32 allowed, float32 may lose precision on a GPU, but not beyond TF32's."""
    x, w, b = Case(2, 8, 4, 7, 7, 3).tensors()
    expected = F.conv2d(x.double(), w.double(), b.double(), padding=1)
    torch.backends.cudnn.allow_tf32 = True
    with forbid_torch_conv():
        out = kernels.conv2d(x, w, b, padding=1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=5e-3, atol=5e-3 * expected.abs().max().item())


# --- asymmetric 'same' padding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel, dilation",
    [(4, 1), (2, 1), (2, 3), ((4, 2), (1, 3)), ((2, 3), (3, 2))],
    ids=["k4", "k2", "k2-d3", "k4x2-d1x3", "k2x3-d3x2"],
)
def test_same_padding_asymmetric(kernel, dilation, check_conv2d):
    """An odd total padding d*(k-1) puts the extra row/column at the bottom/right, as torch does."""
    case = Case(1, 3, 4, 8, 7, kernel, padding="same", dilation=dilation)
    x, w, b = case.tensors()
    out = check_conv2d(x, w, b, **case.kwargs)
    assert out.shape[-2:] == x.shape[-2:]
    geometry = conv2d_geometry(x.shape, w.shape, b.shape, 1, "same", dilation, 1)
    r, s = as_pair(kernel, "kernel")
    dh, dw = as_pair(dilation, "dilation")
    assert (geometry.pad_h, geometry.pad_w) == (dh * (r - 1) // 2, dw * (s - 1) // 2)


# --- batch and rank -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [Case(0, 4, 6, 7, 9, 3, padding=1), Case(0, 4, 8, 5, 6, 3, stride=2, groups=4)],
    ids=["dense", "depthwise-x2"],
)
def test_empty_batch(case: Case, check_conv2d, time_limit):
    x, w, b = case.tensors()
    with time_limit(120):
        out = check_conv2d(x, w, b, **case.kwargs)
    assert out.shape[0] == 0
    # no contribution at all: the weight and bias gradients are zeros, not garbage
    assert torch.equal(w.grad, torch.zeros_like(w))
    assert torch.equal(b.grad, torch.zeros_like(b))


@pytest.mark.parametrize(
    "case",
    [Case(1, 4, 6, 7, 9, 3, stride=2, padding=1),
     Case(1, 4, 8, 6, 7, 3, padding="same", groups=4, bias=False)],
    ids=["dense", "depthwise-x2"],
)
def test_unbatched_input(case: Case, check_conv2d):
    x, w, b = case.tensors()
    out = check_conv2d(x[0].clone(), w, b, **case.kwargs)
    assert out.dim() == 3


# --- memory formats and views ---------------------------------------------------------------------------

CL = torch.channels_last


@pytest.mark.parametrize("case", [
    Case(2, 4, 6, 7, 9, 3, padding=1),
    Case(2, 8, 4, 6, 7, 3, stride=2, groups=2, bias=False),
    Case(1, 4, 8, 7, 8, 3, padding="same", groups=4),
    Case(2, 1, 4, 6, 7, 3, padding=1),
], ids=["dense", "groups2", "depthwise-x2", "one-input-channel"])
@pytest.mark.parametrize("x_cl, w_cl", [(True, False), (False, True), (True, True)],
                         ids=["input-cl", "weight-cl", "both-cl"])
def test_channels_last(case: Case, x_cl: bool, w_cl: bool, check_conv2d):
    x, w, b = case.tensors()
    if x_cl:
        x = x.to(memory_format=CL)
    if w_cl:
        w = w.to(memory_format=CL)
    out = check_conv2d(x, w, b, **case.kwargs)
    # (torch's CUDA convolutions give float64 outputs contiguous; check_conv2d holds us to that)
    assert out.is_contiguous(memory_format=CL) or (out.is_cuda and out.dtype == torch.float64)


VIEWS = {
    # name: (leaf shape, view of the leaf handed to conv2d as input (N, 4, 7, 9))
    "spatial-slice": ((2, 4, 14, 10), lambda t: t[:, :, ::2, 1:]),
    "channel-slice": ((2, 6, 7, 9), lambda t: t[:, 1:5]),
    "batch-slice": ((3, 4, 7, 9), lambda t: t[1:]),
    "transposed-hw": ((2, 4, 9, 7), lambda t: t.transpose(2, 3)),
    "permuted-nc": ((4, 2, 7, 9), lambda t: t.transpose(0, 1)),
    "expanded-batch": ((1, 4, 7, 9), lambda t: t.expand(2, -1, -1, -1)),
    "channels-last-slice": ((2, 4, 14, 9), lambda t: t.contiguous(memory_format=CL)[:, :, ::2]),
}


@pytest.mark.parametrize("view", list(VIEWS), ids=str)
def test_noncontiguous_input(view: str, check_conv2d):
    shape, fn = VIEWS[view]
    x = torch.randn(shape, device=DEVICE)
    assert fn(x).shape[1:] == (4, 7, 9)
    w = torch.randn(6, 2, 3, 3, device=DEVICE)
    b = torch.randn(6, device=DEVICE)
    check_conv2d(x, w, b, x_view=fn, stride=(1, 2), padding=1, groups=2)


WEIGHT_VIEWS = {
    # name: (leaf shape, view of the leaf handed to conv2d as weight (6, 4, 3, 2))
    "transposed-rs": ((6, 4, 2, 3), lambda t: t.transpose(2, 3)),
    "out-channel-slice": ((12, 4, 3, 2), lambda t: t[::2]),
    "in-channel-slice": ((6, 5, 3, 2), lambda t: t[:, 1:]),
    "expanded-out": ((1, 4, 3, 2), lambda t: t.expand(6, -1, -1, -1)),
}


@pytest.mark.parametrize("view", list(WEIGHT_VIEWS), ids=str)
def test_noncontiguous_weight(view: str, check_conv2d):
    shape, fn = WEIGHT_VIEWS[view]
    w = torch.randn(shape, device=DEVICE)
    assert fn(w).shape == (6, 4, 3, 2)
    x = torch.randn(2, 4, 7, 9, device=DEVICE)
    b = torch.randn(6, device=DEVICE)
    check_conv2d(x, w, b, w_view=fn, stride=2, padding=(1, 0))


@pytest.mark.parametrize("groups", [1, 4], ids=["dense", "depthwise"])
def test_noncontiguous_bias(groups: int, check_conv2d):
    x = torch.randn(2, 4, 7, 9, device=DEVICE)
    w = torch.randn(4, 4 // groups, 3, 3, device=DEVICE)
    b = torch.randn(8, device=DEVICE)
    check_conv2d(x, w, b, b_view=lambda t: t[1::2], padding=1, groups=groups)


def test_noncontiguous_depthwise(check_conv2d):
    x = torch.randn(2, 9, 7, 6, device=DEVICE)
    w = torch.randn(8, 1, 3, 5, device=DEVICE)
    check_conv2d(x, w, x_view=lambda t: t[:, :, ::2].transpose(2, 3)[:, 1:],
                 w_view=lambda t: t.transpose(2, 3)[:, :, 1:4], padding=1, groups=8)


UPSTREAM_VIEWS = {
    # name: (input in channels_last, the upstream gradient (2, 6, 7, 9) as a view of a fresh tensor)
    "nchw-out-nhwc-grad": (False, lambda: torch.randn(2, 7, 9, 6, device=DEVICE).permute(0, 3, 1, 2)),
    "nhwc-out-nchw-grad": (True, lambda: torch.randn(2, 6, 7, 9, device=DEVICE)),
    "sliced-grad": (False, lambda: torch.randn(2, 6, 7, 18, device=DEVICE)[..., ::2]),
    "expanded-grad": (True, lambda: torch.randn(1, 6, 7, 9, device=DEVICE).expand(2, -1, -1, -1)),
}


@pytest.mark.parametrize("view", list(UPSTREAM_VIEWS), ids=str)
@pytest.mark.parametrize("groups", [1, 2, 6], ids=["dense", "groups2", "depthwise"])
def test_noncontiguous_upstream_gradient(view: str, groups: int, forbid_torch_conv, assert_close):
    """The upstream gradient's layout need not match the output's (autograd hands it over as it comes)."""
    input_cl, make_grad = UPSTREAM_VIEWS[view]
    x, w, b = Case(2, 6, 6, 7, 9, 3, groups=groups).tensors()
    if input_cl:
        x = x.contiguous(memory_format=CL)
    twins = [t.double().requires_grad_() for t in (x, w, b)]
    for t in (x, w, b):
        t.requires_grad_()
    with forbid_torch_conv():
        out = kernels.conv2d(x, w, b, padding=1, groups=groups)
    ref = F.conv2d(*twins, padding=1, groups=groups)
    grad_out = make_grad()
    assert grad_out.shape == out.shape
    with forbid_torch_conv():
        out.backward(grad_out)
    ref.backward(grad_out.double())
    for t, twin, name in zip((x, w, b), twins, ("input", "weight", "bias"), strict=True):
        assert_close(t.grad, twin.grad, torch.float32, f"grad of {name}")


# --- gradcheck ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case, fast",
    [
        (Case(1, 2, 2, 3, 4, 2), False),
        (Case(2, 3, 4, 5, 6, 3, padding=1), True),
        (Case(1, 4, 4, 5, 5, 3, padding=1, groups=2), True),
        (Case(1, 2, 3, 7, 8, 2, stride=(2, 3), padding=(1, 2), dilation=(2, 1)), True),
        (Case(1, 3, 3, 5, 6, 3, padding=1, groups=3), True),
        (Case(2, 2, 4, 5, 4, (3, 2), stride=2, dilation=(1, 2), groups=2), True),
        (Case(1, 2, 2, 5, 6, 4, padding="same"), True),
    ],
    ids=["dense-full", "dense", "groups2", "strided-dilated", "depthwise", "depthwise-x2-strided",
         "same-asym"],
)
def test_gradcheck(case: Case, fast: bool):
    x, w, b = (t.requires_grad_() for t in case.tensors(torch.float64))
    fn = lambda x, w, b: kernels.conv2d(x, w, b, **case.kwargs)
    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=fast)


# --- shape arithmetic of kernels.shapes against torch's output shapes -----------------------------------


def _torch_output_shape(x_shape, w_shape, **kwargs) -> tuple[int, ...]:
    x = torch.zeros(x_shape, dtype=torch.float64)
    w = torch.zeros(w_shape, dtype=torch.float64)
    return tuple(F.conv2d(x, w, **kwargs).shape)


@pytest.mark.parametrize("case", CASES + DTYPE_CASES, ids=lambda c: c.id)
def test_geometry_of_cases(case: Case):
    x, w, b = case.tensors(torch.float64)
    g = conv2d_geometry(x.shape, w.shape, None if b is None else b.shape, **case.kwargs)
    assert isinstance(g, ConvGeometry)
    assert (g.N, g.K, g.P, g.Q) == _torch_output_shape(x.shape, w.shape, **case.kwargs)
    assert (g.C, g.H, g.W, g.R, g.S, g.groups) == (case.C, case.H, case.W, *w.shape[2:], case.groups)
    assert g.channels_per_group == case.C // case.groups
    assert g.filters_per_group == case.K // case.groups
    assert g.is_depthwise == (case.groups == case.C)
    assert g.flops == 2 * g.N * g.K * (case.C // case.groups) * g.R * g.S * g.P * g.Q


def test_geometry_grid():
    """Every combination of a few sizes, kernels, strides, paddings and dilations that torch accepts."""
    checked = 0
    paddings = (0, 1, 2, "same", "valid")
    for size, k, s, p, d in itertools.product((1, 2, 5, 8), (1, 2, 3, 4), (1, 2, 3), paddings, (1, 2, 3)):
        if p == "same" and s != 1:
            continue
        x_shape, w_shape = (1, 1, size, size + 1), (1, 1, k, k)
        try:
            expected = _torch_output_shape(x_shape, w_shape, stride=s, padding=p, dilation=d)
        except RuntimeError:
            with pytest.raises(RuntimeError):
                conv2d_geometry(x_shape, w_shape, None, s, p, d, 1)
            continue
        g = conv2d_geometry(x_shape, w_shape, None, s, p, d, 1)
        assert (g.P, g.Q) == expected[2:], (size, k, s, p, d)
        pad = p if isinstance(p, int) else 0 if p == "valid" else d * (k - 1) // 2
        assert (g.pad_h, g.pad_w) == (pad, pad)
        assert (g.stride_h, g.stride_w, g.dil_h, g.dil_w) == (s, s, d, d)
        checked += 1
    assert checked > 200


@pytest.mark.parametrize(
    "size, kernel, stride, pad_total, dilation, expected",
    [(7, 3, 1, 2, 1, 7), (7, 3, 2, 2, 1, 4), (8, 3, 2, 0, 1, 3), (11, 3, 3, 2, 3, 3), (5, 5, 1, 0, 1, 1),
     (7, 4, 1, 3, 1, 7), (1, 1, 3, 0, 1, 1), (10, 2, 3, 2, 1, 4)],
)
def test_conv_output_size(size, kernel, stride, pad_total, dilation, expected):
    assert conv_output_size(size, kernel, stride, pad_total, dilation) == expected
    if pad_total % 2 == 0:
        shape = _torch_output_shape((1, 1, size, 1), (1, 1, kernel, 1), stride=stride,
                                    padding=(pad_total // 2, 0), dilation=dilation)
        assert shape[2] == expected


@pytest.mark.parametrize(
    "value, expected",
    [(3, (3, 3)), ((1, 2), (1, 2)), ([2, 1], (2, 1)), ((4,), (4, 4)), (torch.Size([1, 3]), (1, 3))],
)
def test_as_pair(value, expected):
    assert as_pair(value, "stride") == expected


@pytest.mark.parametrize("value", [(1, 2, 3), ()], ids=["three", "empty"])
def test_as_pair_wrong_length(value):
    with pytest.raises(RuntimeError):
        F.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 1, 1), stride=value)
    with pytest.raises(RuntimeError):
        as_pair(value, "stride")


@pytest.mark.parametrize("value", [1.0, 2.5, True, "1", None, (1.0, 2)], ids=repr)
def test_as_pair_wrong_type(value):
    with pytest.raises(TypeError):
        F.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 1, 1), stride=value)
    with pytest.raises(TypeError):
        as_pair(value, "stride")


# --- launchers write every element of their outputs ----------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        Case(2, 4, 6, 7, 9, 3, padding=1),
        Case(1, 4, 4, 9, 10, 2, stride=3, padding=1, groups=2),
        Case(1, 2, 3, 11, 8, 1, stride=(3, 2)),
        Case(2, 4, 8, 7, 8, 3, stride=2, padding=1, groups=4),
    ],
    ids=["dense", "grouped-stride-above-kernel", "1x1-strided", "depthwise-x2-strided"],
)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_launchers_overwrite_poisoned_outputs(case: Case, channels_last: bool, assert_close):
    """Outputs start as NaN: an element the launcher forgets to write (for instance an input pixel that no
    output reads, when the stride exceeds the kernel) stays NaN."""
    from kernels.ops.conv2d import conv2d_forward, conv2d_input_grad

    x, w, b = (t.double() if t is not None else None for t in case.tensors())
    fmt = CL if channels_last else torch.contiguous_format
    g = conv2d_geometry(x.shape, w.shape, None if b is None else b.shape, **case.kwargs)
    out = torch.full((g.N, g.K, g.P, g.Q), float("nan"), dtype=x.dtype).contiguous(memory_format=fmt)
    conv2d_forward(x, w, b, g, out)
    assert_close(out, F.conv2d(x, w, b, **case.kwargs), torch.float64, "forward")

    grad_out = torch.randn(g.N, g.K, g.P, g.Q, dtype=x.dtype)
    grad_in = torch.full(x.shape, float("nan"), dtype=x.dtype).contiguous(memory_format=fmt)
    conv2d_input_grad(grad_out, w, g, grad_in)
    x_ref = x.clone().requires_grad_()
    F.conv2d(x_ref, w, b, **case.kwargs).backward(grad_out)
    assert_close(grad_in, x_ref.grad, torch.float64, "grad of input")


# --- zero input channels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x_shape, w_shape, bias, kwargs",
    [
        ((2, 0, 5, 5), (4, 0, 3, 3), False, {}),
        ((2, 0, 5, 5), (4, 0, 3, 3), True, dict(padding=1)),
        ((2, 0, 7, 7), (4, 0, 3, 3), True, dict(groups=2, stride=2)),
        ((2, 0, 7, 6), (6, 0, 2, 2), True, dict(groups=3, padding="same")),
        ((0, 0, 7, 7), (4, 0, 3, 3), True, {}),
        ((0, 7, 7), (4, 0, 3, 3), True, dict(dilation=2)),
    ],
    ids=["plain", "bias-padded", "grouped-strided", "grouped-same", "zero-batch", "unbatched-dilated"],
)
def test_zero_input_channels_like_torch(x_shape, w_shape, bias, kwargs, forbid_torch_conv):
    """Torch gives an input without channels an output without channels, ``(N, 0, P, Q)`` whatever the weight's
    count of filters, and zero gradients for input, weight and bias; so does kernels.conv2d."""
    leaves = [torch.randn(x_shape, device=DEVICE), torch.randn(w_shape, device=DEVICE)]
    leaves += [torch.randn(w_shape[0], device=DEVICE)] if bias else []
    ours = [t.clone().requires_grad_() for t in leaves]
    theirs = [t.clone().requires_grad_() for t in leaves]
    with forbid_torch_conv():
        out = kernels.conv2d(*ours, **kwargs)
    ref = F.conv2d(*theirs, **kwargs)
    assert (out.shape, out.dtype, out.device) == (ref.shape, ref.dtype, ref.device)
    grad = torch.randn_like(ref)
    with forbid_torch_conv():
        out.backward(grad)
    ref.backward(grad)
    for name, mine, twin in zip(("input", "weight", "bias"), ours, theirs, strict=False):
        assert mine.grad is not None and twin.grad is not None, name
        assert (mine.grad.shape, mine.grad.dtype) == (twin.grad.shape, twin.grad.dtype), name
        assert torch.equal(mine.grad, twin.grad), name
    with torch.no_grad(), forbid_torch_conv():
        assert kernels.conv2d(*leaves, **kwargs).shape == ref.shape
