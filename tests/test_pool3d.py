"""The 3-D pooling functions against torch: forward values, indices, output layout, gradients (and their
gradients), argument errors, and the registered ops under opcheck and torch.compile (torch's own sample
inputs: ``test_torch_samples.py``).

Inputs are fresh random numbers (seeded per test by ``conftest``). Max pooling is exact, so outputs and
indices must equal torch's; averages and gradients are compared with torch evaluated in float64 on the same
(already rounded) inputs, at the dtype's tolerance. Torch's own pooling operators are forbidden while our
functions run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, _assert_close
from torch.utils._python_dispatch import TorchDispatchMode
from torch_errors import assert_raises_like_torch

from kernels import library
from kernels.functional.pool3d import adaptive_avg_pool3d, adaptive_max_pool3d, avg_pool3d, max_pool3d
from kernels.launch import recording
from kernels.ops.pool3d import AVG_BWD, AVG_FWD, GLOBAL_AVG, MAX_BWD, MAX_FWD, MAX_GATHER
from kernels.pool_shapes3d import adaptive_pool3d_geometry, max_pool3d_geometry, pool3d_bytes

P3 = library.POOL_OPS[3]  # (the registered 3-D pooling ops)

F64 = torch.float64
CL3 = torch.channels_last_3d

OURS = {
    "max_pool3d": max_pool3d,
    "avg_pool3d": avg_pool3d,
    "adaptive_avg_pool3d": adaptive_avg_pool3d,
    "adaptive_max_pool3d": adaptive_max_pool3d,
}


class _ForbidTorchPooling(TorchDispatchMode):
    """Fail when one of torch's pooling operators runs."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "pool" in func._schema.name:
            raise AssertionError(f"kernels fell back to torch's pooling ({func._schema.name})")
        return func(*args, **(kwargs or {}))


def _layout(t: torch.Tensor) -> tuple[bool, bool]:
    return t.is_contiguous(), t.dim() == 5 and t.is_contiguous(memory_format=CL3)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def check_pool(op: str, x: torch.Tensor, *args, view: Callable[[torch.Tensor], torch.Tensor] = _identity,
               grad: bool = True, **kwargs) -> tuple:
    """Compare ``kernels' op(view(x), *args, **kwargs)`` with torch's (float64 on the CPU, same values): output
    values, shape, dtype and layout, indices (exactly, and their layout), and the input gradient (values and
    layout) for one random upstream gradient. Returns (ours, torch's) outputs."""
    dtype = x.dtype
    x.requires_grad_(grad)
    twin = x.detach().to("cpu", F64, copy=True).requires_grad_(grad)
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
    if op.endswith("max_pool3d"):
        torch.testing.assert_close(out.cpu().double(), ref.to(dtype).double(), rtol=0, atol=0, equal_nan=True)
    else:
        _assert_close(out, ref, dtype, "output")
    if grad:
        grad_out = torch.randn(ref.shape, dtype=dtype, device=x.device)
        with _ForbidTorchPooling():
            out.backward(grad_out)
        ref.backward(grad_out.to("cpu", F64))
        assert x.grad is not None and x.grad.dtype == dtype and x.grad.shape == x.shape
        _assert_close(x.grad, twin.grad, dtype, "grad of input")
        if x.grad.dim() == 5:
            assert _layout(x.grad) == _layout(twin.grad), f"grad layout {x.grad.stride()} vs {twin.grad.stride()}"
    torch.testing.assert_close(x.detach(), before, rtol=0, atol=0, equal_nan=True, msg="input was modified")
    return out, ref


def _randn(*shape: int, dtype: torch.dtype = F64, channels_last: bool = False) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=CL3) if channels_last else t


def _ties(*shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Few distinct values: ties in every window."""
    return torch.randint(0, 3, shape, device=DEVICE).to(dtype)


# --------------------------------------------------------------------------------------------------------
# Option sweeps (float64, NCDHW, odd sizes, ties)

MAX_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3, 1), stride=(1, 2, 1), padding=(1, 0, 0)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2, 2), stride=(1, 3, 2), padding=(1, 1, 0), dilation=(2, 1, 3), ceil_mode=True),
    dict(kernel_size=2, stride=1, padding=1, dilation=3),        # windows half in the padding
    dict(kernel_size=[3], stride=[2], padding=[1], dilation=[1]),
]


def _ids(k: dict) -> str:
    return ",".join(f"{a}={b}" for a, b in k.items())


@pytest.mark.parametrize("kwargs", MAX_CASES, ids=_ids)
@pytest.mark.parametrize("return_indices", [True, False])
def test_max_pool3d_options(kwargs: dict, return_indices: bool) -> None:
    check_pool("max_pool3d", _ties(2, 2, 5, 6, 7), return_indices=return_indices, **kwargs)


AVG_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 4, 3), stride=(3, 2, 1), padding=(1, 2, 1), ceil_mode=True, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, divisor_override=5),
    dict(kernel_size=(2, 3, 2), stride=(2, 2, 1), padding=(1, 1, 0), ceil_mode=True, divisor_override=-2),
]


@pytest.mark.parametrize("kwargs", AVG_CASES, ids=_ids)
def test_avg_pool3d_options(kwargs: dict) -> None:
    check_pool("avg_pool3d", _randn(2, 2, 5, 6, 7), **kwargs)


ADAPTIVE_SIZES = [1, 2, (3, 4, 2), (None, 3, 5), (5, 6, 7), (7, 9, 11), (1, 6, 1)]


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES, ids=str)
def test_adaptive_avg_pool3d_sizes(output_size) -> None:
    check_pool("adaptive_avg_pool3d", _randn(2, 2, 5, 6, 7), output_size)


@pytest.mark.parametrize("output_size", ADAPTIVE_SIZES, ids=str)
def test_adaptive_max_pool3d_sizes(output_size) -> None:
    check_pool("adaptive_max_pool3d", _ties(2, 2, 5, 6, 7), output_size, return_indices=True)


@pytest.mark.parametrize("op", ["adaptive_avg_pool3d", "adaptive_max_pool3d"])
def test_adaptive_empty_output(op: str) -> None:
    x = _randn(2, 3, 4, 5, 3).requires_grad_()
    out = OURS[op](x, (0, 2, 2))
    assert out.shape == getattr(F, op)(x.detach(), (0, 2, 2)).shape
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# --------------------------------------------------------------------------------------------------------
# Dtypes, layouts, batch shapes

OP_ARGS = [
    ("max_pool3d", (3,), dict(stride=2, padding=1, return_indices=True)),
    ("avg_pool3d", (3,), dict(stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ("adaptive_avg_pool3d", ((2, 3, 2),), {}),
    ("adaptive_avg_pool3d", (1,), {}),
    ("adaptive_max_pool3d", ((2, 3, 2),), dict(return_indices=True)),
]
OP_IDS = ["max", "avg", "adaptive_avg", "global_avg", "adaptive_max"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_dtypes(op: str, args: tuple, kwargs: dict, dtype: torch.dtype) -> None:
    check_pool(op, _randn(2, 3, 4, 5, 6, dtype=dtype), *args, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_channels_last_3d(op: str, args: tuple, kwargs: dict, dtype: torch.dtype) -> None:
    """channels_last_3d in (channel-wide tiles, many channels): torch's output layout (channels_last_3d for
    max_pool3d, contiguous for the others) and an input gradient in the input's layout."""
    x = _randn(2, 20, 4, 5, 4, dtype=dtype, channels_last=True)
    check_pool(op, x, *args, **kwargs)
    assert x.grad.is_contiguous(memory_format=CL3)


@pytest.mark.parametrize("channels_last", [True, False])
def test_tiles_follow_layout(channels_last: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Channel-wide tiles for channels_last_3d tensors, voxel-wide ones for NCDHW; every configuration comes
    from the kernel's registered space. (float32: float64 average-pool gradients keep to channel-wide tiles.)"""
    import kernels.ops.pool3d as ops

    seen = []

    def spy(space, grid, args, config, dtype, **constexprs):
        seen.append((space, config))

    monkeypatch.setattr(ops, "launch", spy)
    x = _randn(2, 32, 3, 4, 4, dtype=torch.float32, channels_last=channels_last).requires_grad_()
    (max_pool3d(x, 2).sum() + avg_pool3d(x, 2).sum() + adaptive_avg_pool3d(x, 1).sum()).backward()
    assert {space.name for space, _ in seen} == {s.name for s in (MAX_FWD, MAX_BWD, AVG_FWD, AVG_BWD, GLOBAL_AVG)}
    for space, config in seen:
        assert config in space.configs
        if space is not AVG_FWD:  # (avg pooling's output is contiguous, as torch's)
            assert (config["BLOCK_C"] > 1) == channels_last, space.name


VIEWS = {
    "slice": lambda t: t[:, 1:, ::2, 1:, :-1],                   # no contiguous layout at all
    "transpose_hw": lambda t: t.transpose(3, 4),
    "channels_last_slice": lambda t: t.permute(0, 2, 3, 4, 1)[:, :, 1:].permute(0, 4, 1, 2, 3),
    "expand": lambda t: t[:, :1].expand(-1, 3, -1, -1, -1),
}


@pytest.mark.parametrize("view", list(VIEWS), ids=str)
@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_non_contiguous(op: str, args: tuple, kwargs: dict, view: str) -> None:
    x = _randn(2, 4, 7, 6, 5)
    if view == "channels_last_slice":
        x = x.contiguous(memory_format=CL3)
    check_pool(op, x, *args, view=VIEWS[view], **kwargs)


@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_unbatched(op: str, args: tuple, kwargs: dict) -> None:
    out, _ = check_pool(op, _randn(3, 4, 5, 6), *args, **kwargs)
    assert (out[0] if isinstance(out, tuple) else out).dim() == 4


@pytest.mark.parametrize(("op", "args", "kwargs"), OP_ARGS, ids=OP_IDS)
def test_batch_zero(op: str, args: tuple, kwargs: dict) -> None:
    check_pool(op, _randn(0, 3, 4, 5, 4), *args, **kwargs)


def test_batch_chunks_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny index limit the launchers split the batch (32-bit voxel indices); results are unchanged."""
    import kernels.ops.pool3d as ops
    from kernels import launch as launch_mod

    def small_chunks(batch: int, items: int, limit: int = 100):
        return launch_mod.batch_chunks(batch, items, limit)

    monkeypatch.setattr(ops, "batch_chunks", small_chunks)
    x = _randn(3, 2, 4, 5, 6)
    for op, args, kwargs in OP_ARGS:
        check_pool(op, x.clone(), *args, **kwargs)


def test_global_avg_strided_volume() -> None:
    """Global average pooling over a volume whose voxels do not follow each other in memory."""
    check_pool("adaptive_avg_pool3d", _randn(2, 3, 6, 5, 8), 1, view=lambda t: t[:, :, ::2, 1:, ::3])
    check_pool("adaptive_avg_pool3d", _randn(2, 3, 1, 1, 1), 1)


# --------------------------------------------------------------------------------------------------------
# Special values


@pytest.mark.parametrize("op", ["max_pool3d", "adaptive_max_pool3d"])
def test_max_nan_propagates(op: str) -> None:
    x = _randn(2, 2, 5, 6, 5)
    x[0, 0, 1, 1, 1] = float("nan")
    x[0, 0, 1, 1, 2] = float("nan")             # two NaNs in one window: torch reports the last one
    x[1, 1, 4, 5, 4] = float("nan")
    args = (3,) if op == "max_pool3d" else ((2, 3, 2),)
    kwargs = dict(stride=2, padding=1) if op == "max_pool3d" else {}
    out, ref = check_pool(op, x, *args, return_indices=True, **kwargs)
    assert torch.isnan(out).any() and torch.equal(torch.isnan(out).cpu(), torch.isnan(ref))


@pytest.mark.parametrize("op", ["max_pool3d", "adaptive_max_pool3d"])
def test_max_minus_inf(op: str) -> None:
    """All -inf volumes, -inf mixed with padding: the index is the window's first in-bounds voxel."""
    x = _randn(2, 2, 5, 6, 5)
    x[0] = float("-inf")
    x[1, :, ::2] = float("-inf")
    if op == "max_pool3d":
        check_pool(op, x, 3, 2, 1, ceil_mode=True, return_indices=True)
    else:
        check_pool(op, x, (2, 3, 4), return_indices=True)


# --------------------------------------------------------------------------------------------------------
# gradcheck and gradgradcheck (float64, tiny shapes)


def _distinct(*shape: int) -> torch.Tensor:
    """Values spaced well apart in random order: no ties within any window."""
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n, device=DEVICE).to(F64) * 0.5).reshape(shape)


GRADCHECKS = {
    "max": lambda t: max_pool3d(t, 3, 2, 1, ceil_mode=True),
    "max_dilated": lambda t: max_pool3d(t, 2, 1, 1, dilation=(2, 1, 2)),
    "avg": lambda t: avg_pool3d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg_divisor": lambda t: avg_pool3d(t, 2, 1, 1, divisor_override=3),
    "adaptive_avg": lambda t: adaptive_avg_pool3d(t, (2, 3, 2)),
    "global_avg": lambda t: adaptive_avg_pool3d(t, 1),
    "adaptive_max": lambda t: adaptive_max_pool3d(t, (2, 3, 2)),
}


@pytest.mark.parametrize("name", list(GRADCHECKS))
def test_gradcheck_and_gradgradcheck(name: str) -> None:
    x = _distinct(1, 1, 3, 4, 3).requires_grad_()
    assert torch.autograd.gradcheck(GRADCHECKS[name], (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(GRADCHECKS[name], (x,), fast_mode=True)


def test_double_backward_launches_gather() -> None:
    """Max pooling's double backward runs the gather kernel (the gradient of its backward)."""
    x = _distinct(1, 2, 3, 4, 3).requires_grad_()
    with recording(run=True) as launches:
        torch.autograd.gradgradcheck(GRADCHECKS["max"], (x,), fast_mode=True)
    assert MAX_GATHER.name in {r.space.name for r in launches}


def test_deterministic_backward() -> None:
    """The backward gathers (no atomics): two runs give bitwise equal gradients."""
    x = _randn(1, 3, 4, 3, 4, dtype=torch.float32, channels_last=True).requires_grad_()
    grads = []
    for _ in range(2):
        x.grad = None
        (max_pool3d(x, 2, 1, 1) * 1.5 + avg_pool3d(x, 2, 1, 1)).sum().backward()
        grads.append(x.grad.clone())
    assert torch.equal(grads[0], grads[1])


# --------------------------------------------------------------------------------------------------------
# Argument errors against torch (CPU wording)

S = (2, 3, 5, 5, 5)
BAD = [
    ("max_pool3d", S, (0,), {}), ("max_pool3d", S, (-1, 1), {}), ("max_pool3d", S, ((0, 2, 2), 1), {}),
    ("max_pool3d", S, (2, 0), {}), ("max_pool3d", S, (2, -1), {}), ("max_pool3d", S, (3, 1, 2), {}),
    ("max_pool3d", S, (3, 1, 2), dict(dilation=2)), ("max_pool3d", S, (3, 1, -1), {}),
    ("max_pool3d", S, (3, 1, 0, 0), {}), ("max_pool3d", S, ((2, 2),), {}), ("max_pool3d", S, ((),), {}),
    ("max_pool3d", S, (2, (1, 1)), {}), ("max_pool3d", S, (2, 1, (0, 0)), {}), ("max_pool3d", S, (2, 1, 0, (1, 1)), {}),
    ("max_pool3d", S, (2.0,), {}), ("max_pool3d", S, (True,), {}), ("max_pool3d", S, (2, 1, 0, 1.0), {}),
    ("max_pool3d", S, ((2.0, 2, 2),), {}), ("max_pool3d", S, (2,), dict(ceil_mode=1, return_indices=True)),
    ("max_pool3d", S, (2,), dict(padding=None)), ("max_pool3d", (5, 5, 5), (2,), {}),
    ("max_pool3d", (1, 1, 1, 5, 5, 5), (2,), {}), ("max_pool3d", (2, 0, 5, 5, 5), (2,), {}),
    ("max_pool3d", (0, 5, 5, 5), (2,), {}), ("max_pool3d", (2, 3, 2, 2, 2), (3,), {}),
    ("max_pool3d", (2, 3, 1, 6, 6), (2, 1, 1, 3), {}), ("max_pool3d", "not a tensor", (2,), {}),
    ("max_pool3d", "not a tensor", (2,), dict(return_indices=True)),
    ("max_pool3d", S, ((3, 3, 3), (1, 0, 1), (0, -1, 0)), {}), ("max_pool3d", S, ((-1, 3, 3), 1, (1, 0, 0)), {}),
    ("avg_pool3d", S, (0,), {}), ("avg_pool3d", S, ((0, 2, 2), 1), {}), ("avg_pool3d", S, (2, -1), {}),
    ("avg_pool3d", S, (3, 1, 2), {}), ("avg_pool3d", S, (3, 1, -1), {}),
    ("avg_pool3d", S, (3, 1, 1), dict(divisor_override=0)), ("avg_pool3d", S, (3, 1, 1), dict(divisor_override=2.0)),
    ("avg_pool3d", S, (3, 1, 1), dict(divisor_override=True)), ("avg_pool3d", S, (3,), dict(count_include_pad=1)),
    ("avg_pool3d", S, ((2, 2),), {}), ("avg_pool3d", S, (2, (1, 1)), {}), ("avg_pool3d", S, (2, 2, ()), {}),
    ("avg_pool3d", S, ("a",), {}), ("avg_pool3d", (), (2,), {}), ("avg_pool3d", (5, 5), (2,), {}),
    ("avg_pool3d", (2, 0, 5, 5, 5), (2,), {}), ("avg_pool3d", (0, 5, 5, 5), (2,), {}),
    ("avg_pool3d", (2, 3, 2, 2, 2), (3, 1, 1), {}), ("avg_pool3d", (2, 0, 5, 5, 5), (2,), dict(divisor_override=0)),
    ("avg_pool3d", "not a tensor", (2,), {}),
    ("avg_pool3d", S, (2,), dict(divisor_override=1.0, count_include_pad=1)),
    ("adaptive_avg_pool3d", S, (-1,), {}), ("adaptive_avg_pool3d", S, ((2, -3, 2),), {}),
    ("adaptive_avg_pool3d", S, ((1, 2),), {}), ("adaptive_avg_pool3d", S, ([2],), {}),
    ("adaptive_avg_pool3d", S, (None,), {}), ("adaptive_avg_pool3d", S, (2.0,), {}),
    ("adaptive_avg_pool3d", S, ((2.0, 2, 2),), {}), ("adaptive_avg_pool3d", S, (True,), {}),
    ("adaptive_avg_pool3d", (5, 5, 5), (2,), {}), ("adaptive_avg_pool3d", (5, 5, 5), ((1, 2, 3),), {}),
    ("adaptive_avg_pool3d", (1, 1, 1, 5, 5, 5), (2,), {}), ("adaptive_avg_pool3d", (2, 0, 5, 5, 5), (2,), {}),
    ("adaptive_avg_pool3d", (0, 3, 5, 5, 0), (2,), {}), ("adaptive_avg_pool3d", (2, 0, 5, 5, 5), (-1,), {}),
    ("adaptive_avg_pool3d", "not a tensor", (2,), {}), ("adaptive_avg_pool3d", (3, 5, 5, 5), (torch.tensor(2),), {}),
    ("adaptive_max_pool3d", S, (-1,), {}), ("adaptive_max_pool3d", (3, 5, 5, 5), ((1, -3, -2),), {}),
    ("adaptive_max_pool3d", S, ((1, 2),), {}), ("adaptive_max_pool3d", S, ((2.0, 2, 2),), {}),
    ("adaptive_max_pool3d", (5, 5, 5), ((1, 2),), {}), ("adaptive_max_pool3d", (2, 0, 5, 5, 5), (-1,), {}),
    ("adaptive_max_pool3d", (2, 3, 0, 5, 5), (2,), {}), ("adaptive_max_pool3d", S, (True,), {}),
    ("adaptive_max_pool3d", "not a tensor", (2, True), {}), ("adaptive_max_pool3d", S, ((1, 2, None, 3),), {}),
]


def _bad_id(case) -> str:
    op, shape, args, kwargs = case
    return f"{op}-{shape}-{args}-{kwargs}".replace(" ", "")


@pytest.mark.parametrize("case", BAD, ids=[_bad_id(c) for c in BAD])
def test_bad_input_raises_like_torch(case) -> None:
    op, shape, args, kwargs = case
    x = torch.randn(shape, device=DEVICE) if isinstance(shape, tuple) else shape
    assert_raises_like_torch(getattr(F, op), OURS[op], x, *args, **kwargs)


GOOD = [
    ("max_pool3d", (2, 3, 5, 5, 5), (2, ()), {}), ("max_pool3d", (2, 3, 5, 5, 5), ([2], [1]), {}),
    ("max_pool3d", (1, 1, 5, 5, 5), (torch.tensor(3), 1, 1), {}), ("avg_pool3d", (2, 3, 5, 5, 5), (2, None), {}),
    ("avg_pool3d", (2, 3, 2, 2, 2), (2, 1, 1), dict(ceil_mode=True)),
    ("adaptive_avg_pool3d", (0, 5, 5, 5), (2,), {}), ("adaptive_max_pool3d", (0, 3, 5, 5, 5), (2,), {}),
    ("adaptive_avg_pool3d", (3, 5, 5, 5), ((None, None, None),), {}),
    ("adaptive_max_pool3d", (3, 5, 5, 5), (torch.Size([3, 2, 4]),), {}),
]


@pytest.mark.parametrize("case", GOOD, ids=[_bad_id(c) for c in GOOD])
def test_unusual_but_valid_arguments(case) -> None:
    op, shape, args, kwargs = case
    x = torch.randn(shape, device=DEVICE)
    torch.testing.assert_close(OURS[op](x, *args, **kwargs), getattr(F, op)(x, *args, **kwargs))


@pytest.mark.parametrize("op", list(OURS))
def test_integer_input_rejected(op: str) -> None:
    with pytest.raises(NotImplementedError):
        OURS[op](torch.randint(0, 5, (2, 3, 4, 4, 4), device=DEVICE), 2)


def test_geometry_helpers() -> None:
    g = max_pool3d_geometry((2, 3, 5, 6, 7), 3, 2, 1)
    assert g.output_shape == (2, 3, 3, 3, 4) and g.cover == (2, 2, 2) and g.window_extent == (3, 3, 3)
    a = adaptive_pool3d_geometry((3, 5, 6, 7), (2, None, 3), "adaptive_avg_pool3d")
    assert a.output_shape == (1, 3, 2, 6, 3) and not a.is_global
    assert adaptive_pool3d_geometry((1, 3, 5, 6, 7), 1, "adaptive_avg_pool3d").is_global
    assert pool3d_bytes(g, F64, indices=True) == 6 * 210 * 8 + 6 * 36 * 8 + 6 * 36 * 8


# --------------------------------------------------------------------------------------------------------
# Registered ops: opcheck, torch.compile


def _t(*shape: int, grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, device=DEVICE, requires_grad=grad)


def _opcheck_cases() -> list[tuple[object, tuple]]:
    x = _t(1, 2, 3, 4, 3)
    x_cl = _t(1, 2, 3, 4, 3).detach().to(memory_format=CL3).requires_grad_()
    idx = torch.zeros(1, 2, 1, 2, 1, dtype=torch.int64, device=DEVICE)
    gy = _t(1, 2, 1, 2, 1, grad=False)
    shape = [1, 2, 3, 4, 3]
    return [
        (P3.max_pool, (x, [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False, False, False, False)),
        (P3.max_pool, (x_cl, [3, 3, 3], [2, 2, 2], [1, 1, 1], [1, 1, 1], True, True, True, True)),
        (P3.max_pool_backward, (gy, idx, shape, [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False, False)),
        (P3.avg_pool, (x, [3, 3, 3], [2, 2, 2], [1, 1, 1], True, False, 0, False, False)),
        (P3.avg_pool_backward, (_t(1, 2, 2, 3, 2, grad=False), shape, [3, 3, 3], [2, 2, 2], [1, 1, 1],
                                          True, False, 0, False)),
        (P3.adaptive_avg_pool, (x, [2, 3, 2], False, False)),
        (P3.adaptive_avg_pool, (x_cl, [1, 1, 1], True, True)),
        (P3.adaptive_avg_pool_backward, (_t(1, 2, 2, 3, 2, grad=False), shape, True)),
        (P3.adaptive_max_pool, (x_cl, [2, 3, 2], True, False, True)),
        (P3.adaptive_max_pool_backward, (gy, idx, shape, False)),
    ]


OPCHECK = _opcheck_cases()


@pytest.mark.parametrize("case", range(len(OPCHECK)))
def test_opcheck(case: int) -> None:
    op, args = _opcheck_cases()[case]
    torch.library.opcheck(op, args)


def test_every_pool3d_op_is_checked() -> None:
    mine = {op for op in library.OPS if "pool3d" in op._name}
    assert {op for op, _ in OPCHECK} == mine and len(mine) == 8


def _network(x: torch.Tensor, fns: dict) -> torch.Tensor:
    y, _ = fns["max_pool3d"](x, 2, 1, 1, return_indices=True)
    z = fns["avg_pool3d"](y, 2, 1, count_include_pad=False) + fns["adaptive_max_pool3d"](y, (2, 3, 2)).sum()
    return fns["adaptive_avg_pool3d"](z, (1, 2, 1)) + fns["adaptive_avg_pool3d"](z, 1)


def test_compile_fullgraph_matches_torch() -> None:
    """torch.compile(fullgraph=True) through the registered ops: forward and input gradient as torch's."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda t: _network(t, OURS), fullgraph=True, backend="aot_eager", dynamic=False)
    x = _randn(2, 2, 4, 5, 4, channels_last=True)
    ours_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    with recording(run=True) as launches:
        out = compiled(ours_x)
    expected = _network(ref_x, {name: getattr(F, name) for name in OURS})
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)
    assert {MAX_FWD.name, AVG_FWD.name, GLOBAL_AVG.name} <= {r.space.name for r in launches}
