"""Fused epilogues: ``act(conv + bias) + residual`` and ``act(conv + bias + residual)`` in one kernel, for
conv2d (dense, grouped, depthwise) and conv_transpose2d, forward and backward, against torch in float64."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE

import kernels
from kernels.ops.epilogue import ACTIVATIONS, Epilogue

F64 = torch.float64

TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda z: z,
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2),
    "gelu": F.gelu,
    "silu": F.silu,
}
RESIDUAL_MODES = ("none", "after", "before")

# (op, input shape, weight shape, has bias, keyword arguments)
GEOMETRIES = {
    "dense": ("conv2d", (2, 4, 7, 6), (6, 4, 3, 3), True, {"padding": 1, "stride": (2, 1)}),
    "grouped": ("conv2d", (2, 4, 6, 6), (6, 2, 3, 3), False, {"padding": 1, "groups": 2}),
    "depthwise": ("conv2d", (2, 4, 6, 7), (8, 1, 3, 3), True, {"padding": 1, "groups": 4}),
    "transposed": ("conv_transpose2d", (2, 4, 4, 3), (4, 6, 3, 3), True,
                   {"stride": 2, "padding": 1, "output_padding": 1}),
    "transposed depthwise": ("conv_transpose2d", (2, 4, 4, 5), (4, 1, 3, 3), True, {"padding": 1, "groups": 4}),
}


def _reference(op: str, x, w, b, residual, activation: str, mode: str, **kwargs) -> torch.Tensor:
    conv = F.conv2d if op == "conv2d" else F.conv_transpose2d
    act = TORCH_ACTIVATIONS[activation]
    z = conv(x, w, b, **kwargs)
    if mode == "before":
        return act(z + residual)
    if mode == "after":
        return act(z) + residual
    return act(z)


def _run_case(geometry: str, activation: str, mode: str, dtype: torch.dtype = F64,
              channels_last: bool = False, forbid=None, assert_close=None) -> None:
    op, x_shape, w_shape, has_bias, kwargs = GEOMETRIES[geometry]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(x_shape, dtype=dtype, device=DEVICE).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(w_shape, dtype=dtype, device=DEVICE).requires_grad_()
    b = torch.randn(w_shape[0] if op == "conv2d" else w_shape[1] * kwargs.get("groups", 1), dtype=dtype,
                    device=DEVICE).requires_grad_() if has_bias else None
    with torch.no_grad():
        out_shape = _reference(op, x.to(F64), w.to(F64), None if b is None else b.to(F64), None, "none", "none",
                               **kwargs).shape
    residual = None
    if mode != "none":
        residual = torch.randn(out_shape, dtype=dtype, device=DEVICE).requires_grad_()
    leaves = [t for t in (x, w, b, residual) if t is not None]
    twins = [t.detach().to(F64).requires_grad_() for t in leaves]
    tx, tw = twins[0], twins[1]
    tb = twins[2] if b is not None else None
    tr = twins[-1] if residual is not None else None

    with forbid():
        out = getattr(kernels, op)(x, w, b, **kwargs, activation=None if activation == "none" else activation,
                                   negative_slope=0.2, residual=residual,
                                   residual_before_activation=mode == "before")
    ref = _reference(op, tx, tw, tb, tr, activation, mode, **kwargs)
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close(out, ref, dtype, "output")
    grad = torch.randn(ref.shape, dtype=dtype, device=DEVICE)
    with forbid():
        got = torch.autograd.grad(out, leaves, grad)
    expected = torch.autograd.grad(ref, twins, grad.to(F64))
    names = ["input", "weight", "bias", "residual"] if b is not None else ["input", "weight", "residual"]
    for name, g, e in zip(names, got, expected, strict=False):
        assert g.dtype == dtype
        assert_close(g, e, dtype, f"grad of {name}")


@pytest.mark.parametrize("mode", RESIDUAL_MODES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_every_activation_and_residual(activation: str, mode: str, forbid_torch_conv, assert_close) -> None:
    _run_case("dense", activation, mode, forbid=forbid_torch_conv, assert_close=assert_close)


@pytest.mark.parametrize("mode", RESIDUAL_MODES)
@pytest.mark.parametrize("geometry", ["grouped", "depthwise", "transposed", "transposed depthwise"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_other_convolutions(geometry: str, activation: str, mode: str, forbid_torch_conv, assert_close) -> None:
    _run_case(geometry, activation, mode, forbid=forbid_torch_conv, assert_close=assert_close)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("geometry", ["dense", "depthwise", "transposed"])
def test_low_precision(geometry: str, dtype: torch.dtype, forbid_torch_conv, assert_close) -> None:
    _run_case(geometry, "gelu", "after", dtype, forbid=forbid_torch_conv, assert_close=assert_close)


@pytest.mark.parametrize("geometry", ["dense", "depthwise", "transposed"])
def test_channels_last_input_with_strided_residual(geometry: str, forbid_torch_conv, assert_close) -> None:
    """channels_last output, NCHW / sliced residual: the residual is read correctly whatever its strides."""
    _run_case(geometry, "leaky_relu", "before", channels_last=True, forbid=forbid_torch_conv,
              assert_close=assert_close)
    op, x_shape, w_shape, _, kwargs = GEOMETRIES[geometry]
    x = torch.randn(x_shape, dtype=F64, device=DEVICE).contiguous(memory_format=torch.channels_last)
    w = torch.randn(w_shape, dtype=F64, device=DEVICE)
    plain = getattr(kernels, op)(x, w, None, **kwargs)
    wide = torch.randn(plain.shape[0], plain.shape[1] * 2, *plain.shape[2:], dtype=F64, device=DEVICE)
    residual = wide[:, ::2]  # neither NCHW- nor NHWC-contiguous
    out = getattr(kernels, op)(x, w, None, **kwargs, activation="relu", residual=residual)
    # torch's layout (on CUDA, float64 convolutions give contiguous outputs)
    assert out.is_contiguous(memory_format=torch.channels_last) == getattr(F, op)(x, w, None, **kwargs).is_contiguous(
        memory_format=torch.channels_last)
    assert_close(out, F.relu(plain) + residual, F64, "output")


@pytest.mark.parametrize(("activation", "before", "fast"), [("gelu", True, False), ("silu", False, True)])
def test_gradcheck_float64(activation: str, before: bool, fast: bool) -> None:
    x = torch.randn(1, 2, 4, 3, dtype=F64, device=DEVICE, requires_grad=True)
    w = torch.randn(2, 2, 2, 2, dtype=F64, device=DEVICE, requires_grad=True)
    b = torch.randn(2, dtype=F64, device=DEVICE, requires_grad=True)
    r = torch.randn(1, 2, 4, 3, dtype=F64, device=DEVICE, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b, r: kernels.conv2d(x, w, b, padding="same", activation=activation, residual=r,
                                          residual_before_activation=before),
        (x, w, b, r), fast_mode=fast)


def test_unbatched_and_empty_batch(assert_close) -> None:
    x = torch.randn(4, 5, 5, dtype=F64, device=DEVICE)
    w = torch.randn(6, 4, 3, 3, dtype=F64, device=DEVICE)
    r = torch.randn(6, 3, 3, dtype=F64, device=DEVICE)
    out = kernels.conv2d(x, w, activation="silu", residual=r)
    assert_close(out, F.silu(F.conv2d(x, w)) + r, F64, "unbatched")
    empty = torch.randn(0, 4, 5, 5, dtype=F64, device=DEVICE, requires_grad=True)
    out = kernels.conv2d(empty, w, activation="gelu", residual=torch.randn(0, 6, 3, 3, dtype=F64, device=DEVICE))
    assert out.shape == (0, 6, 3, 3)
    out.sum().backward()
    assert empty.grad.shape == empty.shape


def test_nan_propagates_through_the_activation() -> None:
    """torch's relu keeps NaN (receptive fields are found by following NaNs)."""
    x = torch.zeros(1, 1, 5, 5, dtype=F64, device=DEVICE)
    x[0, 0, 2, 2] = float("nan")
    w = torch.ones(1, 1, 3, 3, dtype=F64, device=DEVICE)
    for activation in ("relu", "leaky_relu"):
        out = kernels.conv2d(x, w, padding=1, activation=activation)
        assert torch.equal(out.isnan(), F.conv2d(x, w, padding=1).isnan())


def test_what_the_backward_keeps() -> None:
    """relu reads its derivative off the output unless a residual is added after it; gelu stores its input."""
    assert Epilogue("relu").grad_from_output
    assert Epilogue("relu", has_residual=True, residual_before_activation=True).grad_from_output
    assert not Epilogue("relu", has_residual=True).grad_from_output
    assert not Epilogue("leaky_relu", negative_slope=-0.5).grad_from_output
    assert Epilogue("gelu").needs_preact(True) and not Epilogue("gelu").needs_preact(False)
    x = torch.randn(1, 2, 4, 4, dtype=F64, device=DEVICE)
    w = torch.randn(3, 2, 3, 3, dtype=F64, device=DEVICE)
    with torch.no_grad():
        out = kernels.conv2d(x, w, activation="gelu")
    torch.testing.assert_close(out, F.gelu(F.conv2d(x, w)))


def test_negative_leaky_slope(assert_close) -> None:
    x = torch.randn(1, 2, 5, 5, dtype=F64, device=DEVICE, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=F64, device=DEVICE)
    out = kernels.conv2d(x, w, activation="leaky_relu", negative_slope=-0.5)
    x64 = x.detach().clone().requires_grad_()
    ref = F.leaky_relu(F.conv2d(x64, w), -0.5)
    assert_close(out, ref, F64, "output")
    out.sum().backward()
    ref.sum().backward()
    assert_close(x.grad, x64.grad, F64, "grad")


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_residual_before_activation_without_a_residual(op: str, assert_close) -> None:
    """``residual_before_activation=True`` with no residual is the plain activation (as the module's default
    with no residual passed), in inference and in training."""
    x = torch.randn(2, 4, 5, 6, dtype=F64, device=DEVICE, requires_grad=True)
    w = torch.randn((3, 4, 3, 3) if op == "conv2d" else (4, 3, 3, 3), dtype=F64, device=DEVICE)
    out = getattr(kernels, op)(x, w, activation="relu", residual_before_activation=True)
    with torch.no_grad():
        inference = getattr(kernels, op)(x, w, activation="relu", residual_before_activation=True)
    x64 = x.detach().clone().requires_grad_()
    ref = F.relu(getattr(F, op)(x64, w))
    assert_close(out, ref, F64, "output")
    assert_close(inference, ref, F64, "inference output")
    out.sum().backward()
    ref.sum().backward()
    assert_close(x.grad, x64.grad, F64, "grad")


def test_errors() -> None:
    x = torch.randn(1, 2, 5, 5, device=DEVICE)
    w = torch.randn(3, 2, 3, 3, device=DEVICE)
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.conv2d(x, w, activation="tanh")
    with pytest.raises(RuntimeError, match="residual of shape"):
        kernels.conv2d(x, w, residual=torch.randn(1, 3, 5, 5, device=DEVICE))
    with pytest.raises(RuntimeError, match="residual of dtype|expected residual of dtype"):
        kernels.conv2d(x, w, residual=torch.randn(1, 3, 3, 3, dtype=F64, device=DEVICE))
    with pytest.raises(TypeError, match="residual must be a Tensor"):
        kernels.conv_transpose2d(x, w.transpose(0, 1), residual=3.0)
    with pytest.raises(TypeError, match="negative_slope"):
        kernels.conv2d(x, w, activation="leaky_relu", negative_slope="0.1")
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.nn.Conv2d(2, 3, 3, activation="swish")


def test_modules(assert_close) -> None:
    conv = kernels.nn.Conv2d(4, 4, 3, padding=1, activation="relu", residual_before_activation=True).to(DEVICE, F64)
    up = kernels.nn.ConvTranspose2d(4, 2, 2, stride=2, activation="leaky_relu", negative_slope=0.3).to(DEVICE, F64)
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(up, torch.nn.ConvTranspose2d)
    assert "activation='relu'" in repr(conv) and "negative_slope=0.3" in repr(up)
    assert set(conv.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 4, 5, 5, dtype=F64, device=DEVICE)
    y = conv(x, residual=x)
    assert_close(y, F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1) + x), F64, "Conv2d")
    skip = torch.randn(2, 2, 10, 10, dtype=F64, device=DEVICE)
    z = up(y, residual=skip)
    assert_close(z, F.leaky_relu(F.conv_transpose2d(y, up.weight, up.bias, stride=2), 0.3) + skip, F64,
                 "ConvTranspose2d")
    plain = kernels.nn.Conv2d(4, 4, 3)
    assert plain.activation is None and "activation" not in repr(plain)



def test_heavy_epilogue_keeps_to_small_tiles() -> None:
    """Storing the pre-activation and reading a residual spills on the large tensor-core tiles: that variant's
    configurations exclude them everywhere (launcher, autotuner, ahead-of-time check), and launch refuses
    them."""
    from kernels.launch import launch, recording
    from kernels.ops.conv2d import DGRAD, FWD

    heavy = {"STORE_PREACT": True, "HAS_RESIDUAL": True}
    for space, tag, largest in ((FWD, "+unaligned+preact+residual", 64 * 32),
                                (DGRAD, "+unaligned+epilogue+heavy-epilogue", 64 * 16)):
        allowed = space.for_dtype(torch.float16, False, heavy)
        assert allowed and all(c["BLOCK_M"] * c["BLOCK_N"] <= largest for c in allowed)
        assert len(allowed) < len(space.for_dtype(torch.float16, False, {"STORE_PREACT": True}))
        assert space.variant_tag(heavy) == tag
        assert space.variant_tag({"VEC": 16}) == "" and space.variant_tag({**heavy, "VEC": 16}) == ""
    large = max(FWD.configs, key=lambda c: c["BLOCK_M"] * c["BLOCK_N"])
    launched = {**heavy, "HAS_BIAS": False, "ACTIVATION": "gelu", "RESIDUAL_BEFORE_ACT": False, "VEC": 1,
                "FLAT": False, "R": 3, "S": 3, "PRECISION": "ieee", "ACC_DTYPE": None, "NEGATIVE_SLOPE": 0.0}
    with pytest.raises(ValueError, match="not allowed"):
        launch(FWD, (1,), (), large, torch.float16, **launched)

    x = torch.randn(2, 64, 16, 16, dtype=torch.float16, device=DEVICE, requires_grad=True)
    w = torch.randn(64, 64, 3, 3, dtype=torch.float16, device=DEVICE, requires_grad=True)
    with recording() as launches:
        kernels.conv2d(x, w, padding=1, activation="gelu", residual=torch.randn(2, 64, 16, 16,
                       dtype=torch.float16, device=DEVICE))
    (record,) = [r for r in launches if r.space is FWD]
    assert record.constexprs["STORE_PREACT"] and record.constexprs["HAS_RESIDUAL"]
