"""Call plans (``kernels.call_plans``): the second call of an inference problem repeats the first call's
allocations and launches and runs nothing else of the package (no argument checks, no geometry, no
configuration lookup, no launch planning); it gives bitwise the first call's result; and no plan serves a
call that differs in anything its behaviour depended on."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE
from torch.utils._python_dispatch import TorchDispatchMode

import kernels
from kernels import autotune, call_plans
from kernels import launch as launch_module
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


def _name(fn: Callable) -> str:
    return f"{Path(fn.__code__.co_filename).relative_to(PACKAGE).with_suffix('')}.{fn.__name__}"


# what a planned call may run besides the plan and the launch: the parts of its key (the autotuner's
# generation and the process-wide switches)
KEY_PARTS = {"autotune/__init__.decisions_generation", "autotune/__init__._requested",
             *(_name(switch) for switch in call_plans.KEY_SWITCHES)}


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
    assert others <= KEY_PARTS, sorted(others)
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
    assert others <= KEY_PARTS, sorted(others)


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


# --------------------------------------------------------------------------------------------------------
# Compiled kernels launched directly (``kernels.launch.DirectLauncher``)


def test_packed_arguments_are_what_triton_binds() -> None:
    """Every recorded launch of the ops, packed for a compiled kernel's launcher: exactly the kernel's
    parameters in its signature's order, each with the value Python's own binding of the call gives it."""
    with recording() as records:
        for make, ours, _ in (*CALLS.values(), *TRAINING.values()):
            leaves = [None if t is None else t.requires_grad_() for t in make()]
            out = ours(*leaves)
            out = out[0] if isinstance(out, tuple) else out
            torch.autograd.grad(out, [t for t in leaves if t is not None], torch.ones_like(out))
    assert len({r.space.name for r in records}) >= 10
    for r in records:
        kernel = r.space.kernel
        options = {**r.constexprs, **r.config.as_kwargs()}
        packed = launch_module.pack_arguments(kernel, r.args, options)
        signature = inspect.signature(kernel.fn)
        bound = signature.bind(*r.args, **{k: v for k, v in options.items() if k in signature.parameters})
        bound.apply_defaults()
        assert list(kernel.arg_names) == list(bound.arguments)
        assert len(packed) == len(bound.arguments)
        for name, got, want in zip(bound.arguments, packed, bound.arguments.values(), strict=True):
            assert got is want, (r.space.name, name)


class _CompiledStandIn:
    """What a compiled kernel offers the direct launcher, with its launcher running the interpreted kernel:
    ``run(grid_x, grid_y, grid_z, stream, function, metadata, launch_metadata, enter, exit, *arguments)``."""

    def __init__(self, space: launch_module.KernelSpace, calls: list[str]) -> None:
        self.space, self.calls = space, calls
        self.function, self.packed_metadata = object(), object()

    def run(self, grid_x, grid_y, grid_z, stream, function, metadata, launch_metadata, enter, exit, *arguments):
        assert (stream, function, metadata) == (_STREAM, self.function, self.packed_metadata)
        assert launch_metadata is None and enter is None and exit is None
        self.calls.append(self.space.name)
        self.space.kernel[(grid_x, grid_y, grid_z)](*arguments)  # every parameter, positionally


_STREAM = 4242


@pytest.fixture
def compiled_stand_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Launches go as with compiled kernels: Triton's launch returns a compiled kernel (a stand-in whose
    launcher runs the interpreted kernel) and planned launches may go directly. The list collects the
    direct launches."""
    calls: list[str] = []
    ordinary = launch_module.launch_checked

    def launch_checked(space, *args, **kwargs):
        ordinary(space, *args, **kwargs)
        return _CompiledStandIn(space, calls)

    monkeypatch.setattr(launch_module, "launch_checked", launch_checked)
    monkeypatch.setattr(launch_module, "_DIRECT", True)
    monkeypatch.setattr(launch_module, "_current_device", lambda: 0)
    monkeypatch.setattr(launch_module, "_current_stream", lambda device: _STREAM)
    return calls


@pytest.mark.parametrize("name", ["conv2d bias", "conv2d gelu + residual NHWC", "max_pool2d indices",
                                  "conv_transpose2d"])
def test_direct_launches_from_the_third_call(name: str, compiled_stand_in: list[str]) -> None:
    """Training calls of one problem: the first is watched, the second replays through Triton's launch and
    keeps each compiled kernel, the third and later launch every kernel directly, with arguments that give
    torch's results (so they were packed right)."""
    make, ours, theirs = TRAINING[name]
    for step in range(4):
        leaves = [t.requires_grad_() for t in make()]
        compiled_stand_in.clear()
        out = ours(*leaves)
        grad = torch.randn_like(out)
        got = (out, *torch.autograd.grad(out, leaves, grad))
        assert bool(compiled_stand_in) == (step >= 2), f"call {step + 1}: direct launches {compiled_stand_in}"
        twins = [t.detach().double().requires_grad_() for t in leaves]
        ref = theirs(*twins)
        expected = (ref, *torch.autograd.grad(ref, twins, grad.double()))
        for a, e in zip(got, expected, strict=True):
            torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-4 * e.abs().max().item())


def test_direct_launches_leave_nothing_to_the_ordinary_path(compiled_stand_in: list[str]) -> None:
    """From the third call of an inference problem, every launch is direct: none goes through Triton's
    launch (``launch_checked``), and the direct launches are the first call's launches."""
    make, ours, _ = CALLS["conv2d bf16 NHWC aligned fused relu"]
    args = make()
    with torch.no_grad():
        with recording(run=True) as first:
            ours(*args)
        ours(*args)
        compiled_stand_in.clear()
        ordinary = []
        original = launch_module.launch_checked
        try:
            launch_module.launch_checked = lambda *a, **k: ordinary.append(a[0].name) or original(*a, **k)
            ours(*args)
        finally:
            launch_module.launch_checked = original
    assert ordinary == [] and compiled_stand_in == [r.space.name for r in first]


def test_a_tensor_aligned_otherwise_goes_the_ordinary_way(compiled_stand_in: list[str]) -> None:
    """Triton compiles a kernel for its pointers' 16-byte alignment: an input with the same shape and strides
    but a misaligned address (a view 2 bytes into its storage) takes Triton's launch, and is right."""
    w = _t(6, 4, 3, 3)
    with torch.no_grad():
        for _ in range(3):
            kernels.conv2d(_t(2, 4, 7, 6), w, padding=1)
        storage = torch.randn(2 * 4 * 7 * 6 + 1, device=DEVICE)
        x = storage[1:].view(2, 4, 7, 6)
        compiled_stand_in.clear()
        out = kernels.conv2d(x, w, padding=1)
    assert compiled_stand_in == []
    torch.testing.assert_close(out, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled kernels need a GPU")
def test_on_a_gpu_the_third_call_does_not_enter_triton() -> None:
    """With compiled kernels, the third call of a training problem runs no ``JITFunction.run`` (Triton's
    binder, specialisation and cache lookup), and gives bitwise the second call's results."""
    from triton.runtime.jit import JITFunction

    x, w, b = (_t(8, 16, 14, 14, dtype=torch.bfloat16, channels_last=True).requires_grad_(),
               _t(32, 16, 3, 3, dtype=torch.bfloat16, channels_last=True).requires_grad_(),
               _t(32, dtype=torch.bfloat16).requires_grad_())
    grad = torch.randn(8, 32, 14, 14, device=DEVICE, dtype=torch.bfloat16).contiguous(memory_format=CL)
    results = []
    runs = []
    original = JITFunction.run

    def counted(self, *args, **kwargs):
        runs.append(self)
        return original(self, *args, **kwargs)

    for _ in range(3):
        runs.clear()
        JITFunction.run = counted
        try:
            out = kernels.conv2d(x, w, b, padding=1, activation="relu")
            results.append((out, *torch.autograd.grad(out, (x, w, b), grad)))
        finally:
            JITFunction.run = original
    assert runs == []
    for a, e in zip(results[2], results[1], strict=True):
        assert torch.equal(a, e)


class _AtenOps(TorchDispatchMode):
    """The aten ops run inside (their names)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.name()))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", list(TRAINING))
def test_a_planned_training_call_only_allocates(name: str) -> None:
    """Forward and backward of a planned training call run no torch computation (no zero fill for the
    gradient of max pooling's indices, no copy): only allocations, views and the launches."""
    make, ours, _ = TRAINING[name]
    leaves = [t.requires_grad_() for t in make()]
    with recording():
        for _ in range(3):
            out = ours(*leaves)
            grad = torch.ones_like(out)
            with _AtenOps() as ops:
                torch.autograd.grad(ours(*leaves), leaves, grad)
    allowed = {"aten::empty_strided", "aten::as_strided", "aten::detach", "aten::empty.memory_format"}
    assert set(ops.names) <= allowed, sorted(set(ops.names) - allowed)


@pytest.mark.parametrize("return_indices", [False, True])
def test_max_pool_backward_fills_no_index_gradient(return_indices: bool) -> None:
    """The ordinary (first) call too: autograd hands max pooling's backward no int64 zeros for the gradient
    of its indices (the Function does not materialise gradients)."""
    x = _t(2, 3, 9, 8).requires_grad_()
    with recording():
        out = kernels.max_pool2d(x, 3, 2, 1, return_indices=return_indices)
        out = out[0] if return_indices else out
        with _AtenOps() as ops:
            torch.autograd.grad(out, (x,), torch.ones_like(out))
    assert not {"aten::zeros", "aten::zero_", "aten::fill_"} & set(ops.names), ops.names


def test_a_plan_made_with_the_hopper_path_off_does_not_serve_it_on() -> None:
    """The Hopper path's switch is part of the key: the same problem launches the pointer kernel with the
    path off and the TMA kernel with it on, each from its own plan."""
    from kernels.ops.conv2d_hopper import hopper_tma

    x = _t(2, 16, 6, 5, dtype=torch.bfloat16, channels_last=True)
    w = _t(16, 16, 3, 3, dtype=torch.bfloat16, channels_last=True)
    kernels_seen = []
    with torch.no_grad():
        for enabled in (False, True, False, True):
            with hopper_tma(enabled), recording(run=True) as launches:
                out = kernels.conv2d(x, w, padding=1)
            kernels_seen.append([r.space.name for r in launches])
            expected = F.conv2d(x.double(), w.double(), padding=1)
            torch.testing.assert_close(out.double(), expected, rtol=2e-2, atol=2e-2 * expected.abs().max().item())
    assert kernels_seen == [["conv2d_fwd_kernel"], ["conv2d_fwd_tma_kernel"]] * 2
    assert _plan_count(kernels.conv2d) == 2
