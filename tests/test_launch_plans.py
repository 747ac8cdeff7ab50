"""Launch plans: the second call of a problem repeats the first call's launches exactly without working
them out again, and a plan never serves another problem (layout, dtype, TF32, the autotuner's state)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICE

import kernels
from kernels import autotune
from kernels.launch import recording
from kernels.ops import conv2d as conv_ops


def _plain(value):
    return ("tensor", tuple(value.shape), value.stride(), value.dtype) if isinstance(value, torch.Tensor) else value


def _launches(fn) -> list[tuple]:
    """What ``fn`` launches (kernel, runtime arguments with tensors described by shape and strides,
    constexprs, configuration), recorded rather than run."""
    with recording() as seen:
        fn()
    return [(r.space.name, tuple(_plain(a) for a in r.args), tuple(sorted(r.constexprs.items()))) for r in seen]


def _clear_plans() -> None:
    for cache in (conv_ops._FWD_PLANS, conv_ops._DGRAD_PLANS, conv_ops._WGRAD_PLANS):
        cache.plans.clear()


def _step(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, **kwargs):
    def run() -> None:
        out = kernels.conv2d(x, w, b, **kwargs)
        torch.autograd.grad(out, (x, w, b), torch.ones_like(out))
    return run


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_plans_repeat_the_first_launches_without_working_them_out(dtype: torch.dtype,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    picks = []
    real = conv_ops.pick_tiles
    monkeypatch.setattr(conv_ops, "pick_tiles", lambda *a, **k: picks.append(a[0].name) or real(*a, **k))
    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    steps = {}
    for name, fmt in layouts.items():
        x = torch.randn(2, 16, 6, 5, dtype=dtype, device=DEVICE).contiguous(memory_format=fmt).requires_grad_()
        w = torch.randn(16, 16, 3, 3, dtype=dtype, device=DEVICE).contiguous(memory_format=fmt).requires_grad_()
        b = torch.randn(16, dtype=dtype, device=DEVICE).requires_grad_()
        steps[name] = _step(x, w, b, padding=1, activation="relu")
    _clear_plans()
    fresh = {name: _launches(step) for name, step in steps.items()}  # each layout's first call makes its plans
    assert len(picks) == 6 and fresh["nchw"] != fresh["channels_last"]
    for _ in range(2):
        for name, step in steps.items():
            picks.clear()
            assert _launches(step) == fresh[name]
            assert picks == []


def test_plans_follow_tf32_and_the_autotuner() -> None:
    x = torch.randn(2, 16, 6, 5, device=DEVICE, requires_grad=True)
    w = torch.randn(16, 16, 3, 3, device=DEVICE, requires_grad=True)
    b = torch.randn(16, device=DEVICE, requires_grad=True)
    step = _step(x, w, b, padding=1)
    _clear_plans()
    ieee = _launches(step)
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        tf32 = _launches(step)
        assert tf32 != ieee and _launches(step) == tf32
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    assert _launches(step) == ieee
    generation = autotune.decisions_generation()
    autotune.reset()
    assert autotune.decisions_generation() != generation
    assert _launches(step) == ieee
