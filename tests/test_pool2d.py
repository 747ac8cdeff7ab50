"""The pooling functions against torch: forward values, indices, output layout and gradients.

Inputs are fresh random numbers (seeded per test by ``conftest``). Max pooling is exact, so outputs and
indices must equal torch's; averages and gradients are compared with torch evaluated in float64 on the
same (already rounded) inputs, at the dtype's tolerance. Torch's own pooling operators are forbidden while
our functions run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import kernels  # (decides the runtime before the kernel modules are imported)
from kernels.functional.pool2d import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from kernels.launch import recording
from kernels.ops.pool2d import AVG_BWD, AVG_FWD, GLOBAL_AVG, MAX_BWD, MAX_FWD

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")

# Relative to the reference's largest magnitude (and elementwise): our own rounding only, since the
# reference is float64 on the same rounded inputs.
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOLERANCES[dtype]
    expected = expected.detach().to(torch.float64)
    scale = expected.abs().max().item() if expected.numel() else 1.0
    torch.testing.assert_close(actual.detach().to(torch.float64), expected, rtol=tol, atol=tol * max(scale, 1e-6),
                               equal_nan=True, msg=lambda m: f"{what} ({dtype}): {m}")

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


class _ForbidTorchPooling(TorchDispatchMode):
    """Fail when one of torch's pooling operators runs."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "pool" in func._schema.name:
            raise AssertionError(f"kernels fell back to torch's pooling ({func._schema.name})")
        return func(*args, **(kwargs or {}))


OURS = {
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    "adaptive_avg_pool2d": adaptive_avg_pool2d,
    "adaptive_max_pool2d": adaptive_max_pool2d,
}


def _layout(t: torch.Tensor) -> tuple[bool, bool]:
    cl = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    return t.is_contiguous(), cl


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def check_pool(op: str, x: torch.Tensor, *args, view: Callable[[torch.Tensor], torch.Tensor] = _identity,
               grad: bool = True, **kwargs) -> tuple:
    """Compare ``kernels' op(view(x), *args, **kwargs)`` with torch's (in float64 on the same values, on the
    CPU: torch's CUDA avg_pool2d backward is wrong for channels_last inputs with padding in some releases,
    pytorch/pytorch#188344): output values, shape, dtype, memory format, indices (exactly) and the input
    gradient for one random upstream gradient. Returns (ours, torch's) outputs."""
    dtype = x.dtype
    x.requires_grad_(grad)
    twin = x.detach().to("cpu", torch.float64, copy=True).requires_grad_(grad)
    before = x.detach().clone()
    with _ForbidTorchPooling():
        out = OURS[op](view(x), *args, **kwargs)
    ref = getattr(F, op)(view(twin), *args, **kwargs)
    if isinstance(ref, tuple):
        (out, idx), (ref, ref_idx) = out, ref
        assert idx.dtype == torch.int64 and idx.shape == ref_idx.shape
        assert torch.equal(idx.cpu(), ref_idx), f"indices differ:\n{idx}\n{ref_idx}"
        assert _layout(idx) == _layout(ref_idx), f"index layout {idx.stride()} vs torch's {ref_idx.stride()}"
    assert out.dtype == dtype and out.device == x.device
    assert out.shape == ref.shape, f"shape {tuple(out.shape)}, torch gives {tuple(ref.shape)}"
    assert _layout(out) == _layout(ref), f"layout: strides {out.stride()}, torch's {ref.stride()}"
    if op.endswith("max_pool2d"):
        torch.testing.assert_close(out.cpu().double(), ref.to(dtype).double(), rtol=0, atol=0, equal_nan=True)
    else:
        _assert_close(out, ref, dtype, "output")
    if grad:
        assert out.requires_grad
        grad_out = torch.randn(ref.shape, dtype=dtype, device=x.device)
        with _ForbidTorchPooling():
            out.backward(grad_out)
        ref.backward(grad_out.to("cpu", torch.float64))
        assert x.grad is not None and x.grad.dtype == dtype and x.grad.shape == x.shape
        _assert_close(x.grad, twin.grad, dtype, "grad of input")
    torch.testing.assert_close(x.detach(), before, rtol=0, atol=0, equal_nan=True, msg="input was modified")
    return out, ref


def _randn(*shape: int, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype, device=DEVICE)
    if channels_last:
        t = t.contiguous(memory_format=torch.channels_last)
    return t


# --------------------------------------------------------------------------------------------------------
# Option sweeps (float32, NCHW, odd sizes)

MAX_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=2, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=1, padding=1, dilation=2),
    dict(kernel_size=(3, 2), stride=(1, 3), padding=(1, 1), dilation=(2, 3), ceil_mode=True),
    dict(kernel_size=4, stride=3, padding=2, ceil_mode=True),
    dict(kernel_size=(1, 5), stride=(1, 1), padding=(0, 2)),
    dict(kernel_size=2, stride=1, padding=1, dilation=3),        # windows half in the padding
    dict(kernel_size=[3], stride=[2], padding=[1], dilation=[1]),
]


@pytest.mark.parametrize("kwargs", MAX_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("return_indices", [True, False])
def test_max_pool2d_options(kwargs: dict, return_indices: bool) -> None:
    check_pool("max_pool2d", _randn(2, 3, 9, 11), return_indices=return_indices, **kwargs)


AVG_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 4), stride=(3, 2), padding=(1, 2), ceil_mode=True),
    dict(kernel_size=(2, 4), stride=(3, 2), padding=(1, 2), ceil_mode=True, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, divisor_override=5),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=-2),
    dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(5, 1), stride=None, padding=(2, 0)),
]


@pytest.mark.parametrize("kwargs", AVG_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_avg_pool2d_options(kwargs: dict) -> None:
    check_pool("avg_pool2d", _randn(2, 3, 9, 11), **kwargs)


ADAPTIVE_SIZES = [1, 2, (3, 4), (4, 3), (5, 7), (None, 3), (2, None), (9, 11), (12, 15), (1, 11), [3, 1]]


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES, ids=str)
def test_adaptive_avg_pool2d_sizes(output_size) -> None:
    check_pool("adaptive_avg_pool2d", _randn(2, 3, 9, 11), output_size)


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES, ids=str)
@pytest.mark.parametrize("return_indices", [True, False])
def test_adaptive_max_pool2d_sizes(output_size, return_indices: bool) -> None:
    check_pool("adaptive_max_pool2d", _randn(2, 3, 9, 11), output_size, return_indices=return_indices)


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("output_size", [0, (0, 3), (2, 0)], ids=str)
def test_adaptive_empty_output(op: str, output_size) -> None:
    x = _randn(2, 3, 5, 6).requires_grad_()
    out = OURS[op](x, output_size)
    ref = getattr(F, op)(x.detach(), output_size)
    assert out.shape == ref.shape
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# --------------------------------------------------------------------------------------------------------
# Dtypes, layouts, batch shapes

OP_ARGS = [
    ("max_pool2d", (3,), dict(stride=2, padding=1, return_indices=True)),
    ("avg_pool2d", (3,), dict(stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ("adaptive_avg_pool2d", ((3, 4),), {}),
    ("adaptive_avg_pool2d", (1,), {}),
    ("adaptive_max_pool2d", ((3, 4),), dict(return_indices=True)),
]
OP_IDS = ["max", "avg", "adaptive_avg", "global_avg", "adaptive_max"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_dtypes(op: str, args: tuple, kwargs: dict, dtype: torch.dtype) -> None:
    check_pool(op, _randn(2, 5, 8, 7, dtype=dtype), *args, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_channels_last(op: str, args: tuple, kwargs: dict, dtype: torch.dtype) -> None:
    """channels_last in, channels_last out (as torch), with channel-wide tiles; many channels."""
    x = _randn(2, 40, 7, 6, dtype=dtype, channels_last=True)
    out, _ = check_pool(op, x, *args, **kwargs)
    if out.shape[-2:] != (1, 1):
        assert out.is_contiguous(memory_format=torch.channels_last)
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [True, False])
def test_tiles_follow_layout(channels_last: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Channel-wide tiles for channels_last tensors, pixel-wide ones (one channel) for NCHW; every
    configuration comes from the kernel's registered space."""
    import kernels.ops.pool2d as ops

    seen = []

    def spy(space, grid, args, config, dtype, **constexprs):
        seen.append((space, config))

    monkeypatch.setattr(ops, "launch", spy)
    x = _randn(2, 64, 6, 6, channels_last=channels_last).requires_grad_()
    (max_pool2d(x, 2).sum() + avg_pool2d(x, 2).sum() + adaptive_avg_pool2d(x, 1).sum()).backward()
    assert {space.name for space, _ in seen} == {s.name for s in (MAX_FWD, MAX_BWD, AVG_FWD, AVG_BWD, GLOBAL_AVG)}
    for space, config in seen:
        assert config in space.configs
        assert (config["BLOCK_C"] > 1) == channels_last


VIEWS = {
    "slice": lambda t: t[:, 1:, ::2, 1:],                       # no contiguous layout at all
    "transpose_hw": lambda t: t.transpose(2, 3),
    "channels_last_slice": lambda t: t.permute(0, 2, 3, 1)[:, :, 1:].permute(0, 3, 1, 2),
    "expand": lambda t: t[:, :1].expand(-1, 3, -1, -1),
}


@pytest.mark.parametrize("view", list(VIEWS), ids=str)
@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_non_contiguous(op: str, args: tuple, kwargs: dict, view: str) -> None:
    x = _randn(2, 4, 10, 9)
    if view == "channels_last_slice":
        x = x.contiguous(memory_format=torch.channels_last)
    check_pool(op, x, *args, view=VIEWS[view], **kwargs)


@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_unbatched(op: str, args: tuple, kwargs: dict) -> None:
    out, _ = check_pool(op, _randn(3, 7, 8), *args, **kwargs)
    assert (out[0] if isinstance(out, tuple) else out).dim() == 3


def test_unbatched_permuted() -> None:
    """An unbatched input laid out (H, W, C) still gives torch's contiguous output."""
    x = _randn(7, 8, 3)
    check_pool("max_pool2d", x, 2, view=lambda t: t.permute(2, 0, 1), return_indices=True)
    check_pool("avg_pool2d", _randn(7, 8, 3), 2, view=lambda t: t.permute(2, 0, 1))


@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_batch_zero(op: str, args: tuple, kwargs: dict) -> None:
    check_pool(op, _randn(0, 3, 8, 7), *args, **kwargs)


def test_adaptive_avg_zero_channels() -> None:
    """Torch allows C == 0 for adaptive average pooling."""
    x = _randn(2, 0, 5, 5)
    out = adaptive_avg_pool2d(x, 2)
    assert out.shape == F.adaptive_avg_pool2d(x, 2).shape


def test_batch_chunks_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny index limit the launchers split the batch; results are unchanged."""
    import kernels.ops.pool2d as ops
    from kernels import launch as launch_mod

    def small_chunks(batch: int, items: int, limit: int = 40):
        return launch_mod.batch_chunks(batch, items, limit)

    monkeypatch.setattr(ops, "batch_chunks", small_chunks)
    x = _randn(5, 2, 7, 8)
    for op, args, kwargs in OP_ARGS:
        check_pool(op, x.clone(), *args, **kwargs)


# --------------------------------------------------------------------------------------------------------
# Special values

@pytest.mark.parametrize("op", ["max_pool2d", "adaptive_max_pool2d"])
def test_max_nan_propagates(op: str) -> None:
    x = _randn(2, 3, 8, 9)
    x[0, 0, 1, 1] = float("nan")
    x[0, 0, 1, 2] = float("nan")                 # two NaNs in one window: torch reports the last one
    x[1, 2, 5, 7] = float("nan")
    x[1, 1, 0, 0] = float("nan")
    args = (3,) if op == "max_pool2d" else ((3, 4),)
    kwargs = dict(stride=2, padding=1) if op == "max_pool2d" else {}
    out, ref = check_pool(op, x, *args, return_indices=True, **kwargs)
    assert torch.isnan(out).any()
    assert torch.equal(torch.isnan(out).cpu(), torch.isnan(ref))


@pytest.mark.parametrize("op", ["avg_pool2d", "adaptive_avg_pool2d"])
def test_avg_nan_propagates(op: str) -> None:
    x = _randn(2, 3, 8, 9)
    x[0, 1, 3, 4] = float("nan")
    args = (3,) if op == "avg_pool2d" else ((3, 4),)
    out = OURS[op](x, *args)
    ref = getattr(F, op)(x, *args)
    assert torch.equal(torch.isnan(out), torch.isnan(ref)) and torch.isnan(out).any()
    torch.testing.assert_close(out, ref, equal_nan=True)


@pytest.mark.parametrize("op", ["max_pool2d", "adaptive_max_pool2d"])
def test_max_minus_inf(op: str) -> None:
    """All -inf planes, -inf mixed with padding: the index is the window's first in-bounds pixel."""
    x = _randn(2, 3, 7, 8)
    x[0] = float("-inf")
    x[1, :, ::2] = float("-inf")
    if op == "max_pool2d":
        for kwargs in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                       dict(kernel_size=2, stride=1, padding=1, dilation=3)):
            check_pool(op, x.clone(), return_indices=True, **kwargs)
    else:
        check_pool(op, x, (3, 5), return_indices=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", ["max_pool2d", "adaptive_max_pool2d"])
def test_max_ties(op: str, dtype: torch.dtype) -> None:
    """Many equal values: the first maximum in scan order wins and gets the whole gradient."""
    x = torch.randint(0, 3, (2, 3, 8, 9), device=DEVICE).to(dtype)
    args = (3,) if op == "max_pool2d" else ((3, 4),)
    kwargs = dict(stride=1, padding=1) if op == "max_pool2d" else {}
    check_pool(op, x, *args, return_indices=True, **kwargs)


def _saved_by(fn: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
    """The tensors autograd saves while ``fn`` runs."""
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return saved


@pytest.mark.parametrize(("op", "args", "kwargs"), [
    ("max_pool2d", (3,), dict(stride=2, padding=1)),
    ("max_pool2d", ((3, 2),), dict(stride=(1, 3), padding=(1, 1), dilation=(2, 3), ceil_mode=True)),
    ("max_pool2d", (2,), dict(stride=1, padding=1, dilation=3)),
    ("max_pool2d", (16,), dict(stride=3, padding=8)),                     # 16 x 16 = 256 positions: one byte
    ("adaptive_max_pool2d", ((4, 3),), {}),
], ids=["3x3s2", "dilated-ceil", "dilation3", "16x16", "adaptive"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_saves_one_byte_per_output(op: str, args: tuple, kwargs: dict, channels_last: bool) -> None:
    """Without ``return_indices`` the backward needs only where the maximum is inside its window: one byte per
    output (not torch's eight), and the gradient is still torch's, ties and all."""
    x = torch.randint(0, 4, (2, 3, 11, 13), device=DEVICE).to(torch.float64)  # ties in every window
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out, _ = check_pool(op, x, *args, **kwargs)
    saved = _saved_by(lambda: OURS[op](x.detach().requires_grad_(), *args, **kwargs))
    assert [(t.dtype, t.shape) for t in saved if not t.is_floating_point()] == [(torch.uint8, out.shape)]


def test_max_wide_windows_save_flat_indices() -> None:
    """A window over more than 256 positions does not fit a byte: int64 flat indices are saved instead."""
    for args in [(17, 3, 8), ((16, 17), 3, 8), ((9, 8), 3, 4, (2, 2))]:  # 289, 272, 17 x 15 = 255 positions
        x = _randn(1, 2, 19, 20)
        check_pool("max_pool2d", x, *args)
        saved = _saved_by(lambda: max_pool2d(x.detach().requires_grad_(), *args))  # noqa: B023
        want = torch.int64 if args[0] != (9, 8) else torch.uint8
        assert [t.dtype for t in saved if not t.is_floating_point()] == [want], args


def test_max_window_in_padding_index() -> None:
    """A window whose taps all fall outside the input (dilation): -inf with torch's (out-of-plane) index.
    No gradient: torch's own backward would write out of bounds for it."""
    x = _randn(1, 2, 2, 8)
    out, _ = check_pool("max_pool2d", x, 2, 1, 1, 3, return_indices=True, grad=False)
    assert torch.isinf(out).all()


# --------------------------------------------------------------------------------------------------------
# gradcheck (float64)


def _distinct(*shape: int) -> torch.Tensor:
    """Values spaced well apart in random order: no ties within any window."""
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n, device=DEVICE).to(torch.float64) * 0.5).reshape(shape)


GRADCHECKS = {
    "max": lambda t: max_pool2d(t, 3, 2, 1, ceil_mode=True),
    "max_dilated": lambda t: max_pool2d(t, 2, 1, 1, dilation=2),
    "avg": lambda t: avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg_divisor": lambda t: avg_pool2d(t, 2, 1, 1, divisor_override=3),
    "adaptive_avg": lambda t: adaptive_avg_pool2d(t, (3, 2)),
    "global_avg": lambda t: adaptive_avg_pool2d(t, 1),
    "adaptive_max": lambda t: adaptive_max_pool2d(t, (3, 2)),
}


@pytest.mark.parametrize("name", list(GRADCHECKS))
def test_gradcheck(name: str) -> None:
    x = _distinct(1, 2, 5, 6).requires_grad_()
    assert torch.autograd.gradcheck(GRADCHECKS[name], (x,), fast_mode=True)


def test_spaces_launched() -> None:
    """Each op family launches through its registered space (what the AOT check compiles)."""
    x = _randn(2, 3, 6, 6).requires_grad_()
    with recording() as launches:
        y, _ = max_pool2d(x, 2, return_indices=True)
        z = avg_pool2d(x, 2)
        u = adaptive_avg_pool2d(x, 1)
        (y.sum() + z.sum() + u.sum()).backward()
    names = {r.space.name for r in launches}
    assert names == {s.name for s in (MAX_FWD, MAX_BWD, AVG_FWD, AVG_BWD, GLOBAL_AVG)}
    for r in launches:
        assert 2 <= len(r.space.configs) <= 4
