"""Call plans (``kernels.call_plans``): the second call of an inference problem repeats the first call's
allocations and launches and runs nothing else of the package (no argument checks, no geometry, no
configuration lookup, no launch planning); it gives bitwise the first call's result; and no plan serves a
call that differs in anything its behaviour depended on."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE

import kernels
from kernels import autotune, call_plans
from kernels.launch import recording

CL = torch.channels_last
PACKAGE = Path(kernels.__file__).parent


def _t(*shape: int, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=CL) if channels_last and t.dim() == 4 else t


# name: (our call, torch's call) on fresh tensors
CALLS: dict[str, tuple[Callable[[], tuple], Callable, Callable]] = {
    "conv2d": (lambda: (_t(2, 4, 7, 6), _t(6, 4, 3, 3), _t(6)), lambda x, w, b: kernels.conv2d(x, w, b, padding=1),
               lambda x, w, b: F.conv2d(x, w, b, padding=1)),
    "conv2d bf16 NHWC aligned fused relu": (
        lambda: (_t(2, 16, 6, 5, dtype=torch.bfloat16, channels_last=True),
                 _t(32, 16, 3, 3, dtype=torch.bfloat16, channels_last=True), _t(32, dtype=torch.bfloat16)),
        lambda x, w, b: kernels.conv2d(x, w, b, padding=1, activation="relu"),
        lambda x, w, b: F.relu(F.conv2d(x, w, b, padding=1))),
    "depthwise stride 2": (lambda: (_t(2, 4, 9, 8), _t(8, 1, 3, 3), None),
                           lambda x, w, b: kernels.conv2d(x, w, stride=2, padding=1, groups=4),
                           lambda x, w, b: F.conv2d(x, w, stride=2, padding=1, groups=4)),
    "conv_transpose2d": (lambda: (_t(2, 4, 5, 4), _t(4, 3, 3, 3), _t(3)),
                         lambda x, w, b: kernels.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)),
    "max_pool2d indices": (lambda: (_t(2, 3, 9, 8),), lambda x: kernels.max_pool2d(x, 3, 2, 1, return_indices=True),
                           lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True)),
    "avg_pool2d NHWC": (lambda: (_t(2, 3, 9, 8, channels_last=True),), lambda x: kernels.avg_pool2d(x, 3, 2, 1),
                        lambda x: F.avg_pool2d(x, 3, 2, 1)),
    "adaptive_avg_pool2d global": (lambda: (_t(2, 3, 7, 6),), lambda x: kernels.adaptive_avg_pool2d(x, 1),
                                   lambda x: F.adaptive_avg_pool2d(x, 1)),
    "adaptive_max_pool2d": (lambda: (_t(2, 3, 8, 7),), lambda x: kernels.adaptive_max_pool2d(x, (3, 2)),
                            lambda x: F.adaptive_max_pool2d(x, (3, 2))),
}


def _as_tuple(out) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _package_functions_called(fn: Callable[[], object]) -> set[str]:
    """The package's functions that run during ``fn()`` (file stem and function name)."""
    seen: set[str] = set()

    def profile(frame, event, arg):
        if event == "call":
            path = Path(frame.f_code.co_filename)
            if PACKAGE in path.parents:
                seen.add(f"{path.relative_to(PACKAGE).with_suffix('')}.{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.parametrize("name", list(CALLS))
def test_second_call_repeats_the_first_and_runs_nothing_else(name: str) -> None:
    make, ours, theirs = CALLS[name]
    first_args = make()
    with torch.no_grad():
        first = _as_tuple(ours(*first_args))
        args = make()  # fresh tensors, same shapes and strides: the plan serves them
        with recording() as first_launches:
            ours(*args)
        with recording():  # (the kernels' own code, which the interpreter runs, is not what is looked for)
            called = _package_functions_called(lambda: ours(*args))
        with recording(run=True) as replayed:
            second = _as_tuple(ours(*args))
        again = _as_tuple(ours(*first_args))
    # nothing of the checks, the geometry, the autotuner's lookup or the launchers: the plan, the launch and
    # the autotuner's generation number (part of the key)
    others = {f for f in called if f.split(".")[0] not in ("call_plans", "launch")}
    assert others <= {"autotune/__init__.decisions_generation", "autotune/__init__._requested"}, sorted(others)
    assert {"call_plans.run", "launch.launch_checked"} <= called and "launch.launch" not in called
    assert [(r.space.name, r.grid, r.config, r.constexprs) for r in replayed] == \
        [(r.space.name, r.grid, r.config, r.constexprs) for r in first_launches]
    for a, b in zip(again, first, strict=True):
        assert a.stride() == b.stride() and a.dtype == b.dtype
        assert torch.equal(a, b), "the planned call differs from the first"
    reference = _as_tuple(theirs(*(None if t is None else t.double() for t in args)))
    for got, want in zip(second, reference, strict=True):
        if got.is_floating_point():
            torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=2e-2 * want.abs().max().item())
        else:
            assert torch.equal(got, want)


def _plan_count(op) -> int:
    return sum(plan is not None for plan in op.plans.plans.values())


def test_no_plan_serves_another_problem() -> None:
    x, w = _t(2, 4, 7, 6), _t(6, 4, 3, 3)
    with torch.no_grad():
        kernels.conv2d(x, w, padding=1)
        assert _plan_count(kernels.conv2d) == 1
        kernels.conv2d(x, w, padding=1)
        assert _plan_count(kernels.conv2d) == 1
        for other in (lambda: kernels.conv2d(x.contiguous(memory_format=CL), w, padding=1),  # strides
                      lambda: kernels.conv2d(x.double(), w.double(), padding=1),  # dtype
                      lambda: kernels.conv2d(x, w, padding=2),  # an argument
                      lambda: kernels.conv2d(x, w, padding=(1, 1)),  # its form
                      lambda: kernels.conv2d(x[:1], w, padding=1)):  # a shape
            before = _plan_count(kernels.conv2d)
            other()
            assert _plan_count(kernels.conv2d) == before + 1
        torch.backends.cudnn.allow_tf32 = True  # (the conftest fixture restores it)
        kernels.conv2d(x, w, padding=1)
        assert _plan_count(kernels.conv2d) == 7
        autotune.reset()  # the autotuner's decisions may have changed: a new key
        kernels.conv2d(x, w, padding=1)
        assert _plan_count(kernels.conv2d) == 8


def test_wrong_arguments_still_raise_after_a_plan() -> None:
    """A float stride has another key than the int one: the ordinary path runs, and raises as torch."""
    x, w = _t(2, 4, 7, 6), _t(6, 4, 3, 3)
    with torch.no_grad():
        kernels.conv2d(x, w, stride=1)
        with pytest.raises(TypeError):
            kernels.conv2d(x, w, stride=1.0)
        with pytest.raises(RuntimeError, match="expected input"):
            kernels.conv2d(_t(2, 5, 7, 6), w, stride=1)


@pytest.mark.parametrize("case", ["residual with other strides", "autocast", "unbatched training"])
def test_calls_that_are_not_planned(case: str) -> None:
    """Calls that do more than allocate, view and launch (a copy), whose arguments are changed on the way in
    (autocast), or whose result is a view of the autograd Function's output take the ordinary path every
    time, with the same results."""
    x, w = _t(2, 4, 7, 6), _t(6, 4, 3, 3)
    if case == "residual with other strides":
        residual = _t(2, 6, 7, 6, channels_last=True)
        with torch.no_grad():
            outs = [kernels.conv2d(x, w, padding=1, residual=residual) for _ in range(2)]
        assert list(kernels.conv2d.plans.plans.values()) == [None]
    elif case == "autocast":
        with torch.no_grad(), torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            outs = [kernels.conv2d(x, w, padding=1) for _ in range(2)]
        assert outs[0].dtype == torch.bfloat16 and not kernels.conv2d.plans.plans
    else:
        w.requires_grad_()
        outs = [kernels.conv2d(x[0], w, padding=1) for _ in range(2)]
        assert all(o.grad_fn is not None for o in outs)
        assert list(kernels.conv2d.plans.plans.values()) == [None]
    assert torch.equal(outs[0], outs[1])


def test_unbatched_inference_is_planned() -> None:
    """Views are part of a plan: an unbatched call's unsqueeze and squeeze are repeated."""
    w = _t(6, 4, 3, 3)
    with torch.no_grad():
        for _ in range(3):
            x = _t(4, 7, 6)
            out = kernels.conv2d(x, w, padding=1)
            torch.testing.assert_close(out, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
    (plan,) = kernels.conv2d.plans.plans.values()
    assert isinstance(plan, call_plans.CallPlan) and out.dim() == 3


def test_modules_use_the_plans() -> None:
    conv = kernels.nn.Conv2d(4, 6, 3, padding=1).to(DEVICE)
    x = _t(2, 4, 7, 6)
    with torch.no_grad():
        first, second = conv(x), conv(x)
    assert torch.equal(first, second) and _plan_count(kernels.conv2d) == 1
    call_plans.clear()
    assert not kernels.conv2d.plans.plans


def test_a_tensor_passed_twice_is_part_of_the_key() -> None:
    """conv2d(x, w, residual=x) and conv2d(x2, w, residual=r) have the same shapes and strides, but the
    first reads one tensor twice: its plan must not serve the second."""
    x, w = _t(2, 4, 6, 5), _t(4, 4, 3, 3)
    with torch.no_grad():
        kernels.conv2d(x, w, padding=1, residual=x)
        x2, r = _t(2, 4, 6, 5), _t(2, 4, 6, 5)
        out = kernels.conv2d(x2, w, padding=1, residual=r)
    expected = F.conv2d(x2.double(), w.double(), padding=1) + r.double()
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert _plan_count(kernels.conv2d) == 2


# name: (tensors, our op, torch's op); every tensor requires grad
TRAINING: dict[str, tuple[Callable[[], tuple], Callable, Callable]] = {
    "conv2d bias": (lambda: (_t(2, 4, 7, 6), _t(6, 4, 3, 3), _t(6)), lambda x, w, b: kernels.conv2d(x, w, b, padding=1),
                    lambda x, w, b: F.conv2d(x, w, b, padding=1)),
    "conv2d gelu + residual NHWC": (
        lambda: (_t(2, 4, 7, 6, channels_last=True), _t(6, 4, 3, 3), _t(2, 6, 7, 6, channels_last=True)),
        lambda x, w, r: kernels.conv2d(x, w, padding=1, activation="gelu", residual=r),
        lambda x, w, r: F.gelu(F.conv2d(x, w, padding=1)) + r),
    "conv2d relu, grouped, stride 2": (
        lambda: (_t(2, 4, 9, 8), _t(6, 2, 3, 3), _t(6)),
        lambda x, w, b: kernels.conv2d(x, w, b, stride=2, padding=1, groups=2, activation="relu"),
        lambda x, w, b: F.relu(F.conv2d(x, w, b, stride=2, padding=1, groups=2))),
    "depthwise x2": (lambda: (_t(2, 4, 7, 6), _t(8, 1, 3, 3)), lambda x, w: kernels.conv2d(x, w, padding=1, groups=4),
                     lambda x, w: F.conv2d(x, w, padding=1, groups=4)),
    "conv_transpose2d": (lambda: (_t(2, 4, 5, 4), _t(4, 3, 3, 3), _t(3)),
                         lambda x, w, b: kernels.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)),
    "max_pool2d indices": (lambda: (_t(2, 3, 9, 8),), lambda x: kernels.max_pool2d(x, 3, 2, 1, return_indices=True)[0],
                           lambda x: F.max_pool2d(x, 3, 2, 1)),
    "avg_pool2d": (lambda: (_t(2, 3, 9, 8, channels_last=True),), lambda x: kernels.avg_pool2d(x, 3, 2, 1),
                   lambda x: F.avg_pool2d(x, 3, 2, 1)),
    "adaptive_max_pool2d": (lambda: (_t(2, 3, 8, 7),), lambda x: kernels.adaptive_max_pool2d(x, (3, 2)),
                            lambda x: F.adaptive_max_pool2d(x, (3, 2))),
}


def _op_of(name: str):
    return {"conv_transpose2d": kernels.conv_transpose2d, "max_pool2d indices": kernels.max_pool2d,
            "avg_pool2d": kernels.avg_pool2d, "adaptive_max_pool2d": kernels.adaptive_max_pool2d}.get(
        name, kernels.conv2d)


@pytest.mark.parametrize("name", list(TRAINING))
def test_training_calls_are_planned_and_match_torch(name: str) -> None:
    """Forward and backward, four times on fresh tensors of one problem: the first call takes the ordinary
    path, the second replays the forward and plans the backward, the later ones replay both. Every output
    and gradient matches torch."""
    make, ours, theirs = TRAINING[name]
    for step in range(4):
        leaves = [t.requires_grad_() for t in make()]
        out = ours(*leaves)
        grad = torch.randn_like(out)
        got = torch.autograd.grad(out, leaves, grad)
        twins = [t.detach().double().requires_grad_() for t in leaves]
        ref = theirs(*twins)
        expected = torch.autograd.grad(ref, twins, grad.double())
        for what, a, e in zip(("output", *(f"grad {i}" for i in range(len(leaves)))), (out, *got), (ref, *expected),
                              strict=True):
            torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-4 * e.abs().max().item(),
                                       msg=lambda m, what=what, step=step: f"call {step + 1}, {what}: {m}")
    (plan,) = _op_of(name).plans.plans.values()
    assert isinstance(plan, call_plans.TrainingPlan)
    assert list(plan.backward_traces.values()) and all(t is not None for t in plan.backward_traces.values())


def test_planned_training_call_runs_nothing_else() -> None:
    x, w, b = _t(2, 4, 7, 6).requires_grad_(), _t(6, 4, 3, 3).requires_grad_(), _t(6).requires_grad_()
    grad = torch.randn(2, 6, 7, 6, device=DEVICE)
    for _ in range(2):
        torch.autograd.grad(kernels.conv2d(x, w, b, padding=1), (x, w, b), grad)
    with recording():
        called = _package_functions_called(lambda: torch.autograd.grad(kernels.conv2d(x, w, b, padding=1),
                                                                       (x, w, b), grad))
    others = {f for f in called if f.split(".")[0] not in ("call_plans", "launch")}
    assert others <= {"autotune/__init__.decisions_generation", "autotune/__init__._requested"}, sorted(others)


def test_gradient_of_gradients_through_a_planned_call() -> None:
    """A double backward (a gradient penalty) after the call is planned recomputes through the ordinary op,
    so the gradients stay differentiable and match torch."""
    x, w = _t(2, 3, 6, 5, dtype=torch.float64).requires_grad_(), _t(4, 3, 3, 3, dtype=torch.float64).requires_grad_()
    for _ in range(3):  # planned forward and backward by the third call
        (gx,) = torch.autograd.grad(kernels.conv2d(x, w, padding=1, activation="relu").square().sum(), (x,),
                                    create_graph=True)
        (ours,) = torch.autograd.grad(gx.square().sum(), (w,))
    (gx_ref,) = torch.autograd.grad(F.relu(F.conv2d(x, w, padding=1)).square().sum(), (x,), create_graph=True)
    (expected,) = torch.autograd.grad(gx_ref.square().sum(), (w,))
    torch.testing.assert_close(ours, expected)
    assert isinstance(next(iter(kernels.conv2d.plans.plans.values())), call_plans.TrainingPlan)
