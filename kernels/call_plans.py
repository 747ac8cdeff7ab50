"""Call plans: the second call of a problem is a key, a lookup, its allocations and its launches.

The first call of a public op with given arguments runs the ordinary path (argument checks, geometry,
configuration choice, launch plans) while :func:`planned` watches it: every aten op it runs and every
kernel launch it makes. When all it did was allocate fresh tensors and launch kernels on those and on its
own tensor arguments (an inference call: nothing to differentiate, no copy, no torch computation), that
trace is kept as a :class:`CallPlan` under the call's key. A later call with the same key allocates the
same tensors and repeats the same launches with its own tensors in their places: no checks, no geometry,
no configuration lookup, no launch planning.

The key holds everything the first call's behaviour depended on: each argument's type and value, and for
tensors their shape, strides, dtype, device and ``requires_grad``, and which arguments are the same tensor;
grad mode, TF32 for float32 convolutions and the autotuner's decisions generation. Calls are never planned
while torch.compile traces, under autocast (which casts the arguments), or while the autotuner's choices
are in flux. An argument that is not a tensor, None, a number, a string or a tuple/list/torch.Size of
those makes the call unplanned (the ordinary path runs every time).

Today that covers inference calls. A call that builds an autograd graph is not planned (its key is kept as
unplannable): training calls keep the launch plans of the launchers (``kernels.launch.LaunchPlan``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import launch as launch_module
from .autotune import decisions_generation

F = TypeVar("F", bound=Callable[..., Any])

# aten ops a plannable call may run besides its launches: allocating fresh, uninitialised tensors
_ALLOCATIONS = frozenset({"aten::empty.memory_format", "aten::empty_strided", "aten::empty_like",
                          "aten::new_empty", "aten::new_empty_strided"})
_PLAIN = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format})
_UNPLANNABLE = object()


def _value_key(value: Any, tensors: list[torch.Tensor]) -> Any:
    """A hashable description of one argument (tensors are also appended to ``tensors``), or
    ``_UNPLANNABLE``."""
    kind = type(value)
    if kind is int:  # (as itself: no other type's key is an int, so 1, 1.0 and True stay apart)
        return value
    if kind is torch.Tensor or isinstance(value, torch.Tensor):
        tensors.append(value)
        return (kind, value.shape, value.stride(), value.dtype, value.device, value.requires_grad)
    if kind in _PLAIN:
        return (kind, value)
    if kind is tuple or kind is list or kind is torch.Size:
        items = tuple(_value_key(v, tensors) for v in value)
        return _UNPLANNABLE if _UNPLANNABLE in items else (kind, items)
    return _UNPLANNABLE


def call_key(args: tuple, kwargs: dict[str, Any]) -> tuple[tuple | None, list[torch.Tensor]]:
    """The key of a call (None when it cannot be planned, see the module docstring) and its tensor
    arguments in the order the key lists them."""
    tensors: list[torch.Tensor] = []
    if torch.compiler.is_compiling() or _autocast_on():
        return None, tensors
    generation = decisions_generation()
    if generation is None:
        return None, tensors
    parts = [generation, torch.is_grad_enabled(), _tf32_allowed()]
    for value in args:
        part = _value_key(value, tensors)
        if part is _UNPLANNABLE:
            return None, tensors
        parts.append(part)
    for name, value in kwargs.items():
        part = _value_key(value, tensors)
        if part is _UNPLANNABLE:
            return None, tensors
        parts.append((name, part))
    if len(tensors) > 1:  # the same tensor passed twice (a residual that is the input) is part of the problem
        ids = [id(t) for t in tensors]
        if len(set(ids)) < len(ids):
            parts.append(tuple(ids.index(i) for i in ids))
    return tuple(parts), tensors


# ``torch.backends.cudnn.allow_tf32`` without the attribute machinery, where torch has it
_tf32_allowed = getattr(torch._C, "_get_cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32)


def _autocast_on() -> bool:
    check = getattr(torch._C, "_is_any_autocast_enabled", None)
    return True if check is None else bool(check())


# A slot says where a launch argument comes from: ("arg", i) the call's i-th tensor argument, ("new", j) the
# j-th allocation, ("value", v) a constant.
Slot = tuple[str, Any]


@dataclass(frozen=True)
class _LaunchTemplate:
    """One launch of a plan: its arguments with the constants in place and the tensors' slots listed as
    ``(position, kind, index)``, and everything else as the first launch had it."""

    space: launch_module.KernelSpace
    grid: tuple[int, ...]
    constants: tuple
    tensor_slots: tuple[tuple[int, str, int], ...]
    config: launch_module.KernelConfig
    dtype: torch.dtype
    tf32: bool
    constexprs: dict[str, Any]
    options: dict[str, Any]

    @staticmethod
    def of(record: launch_module.LaunchRecord, slots: tuple[Slot, ...]) -> _LaunchTemplate:
        constants = tuple(None if kind != "value" else value for kind, value in slots)
        tensor_slots = tuple((pos, kind, i) for pos, (kind, i) in enumerate(slots) if kind != "value")
        options = {**record.constexprs, **record.config.as_kwargs()}
        return _LaunchTemplate(record.space, record.grid, constants, tensor_slots, record.config, record.dtype,
                               record.tf32, dict(record.constexprs), options)


@dataclass(frozen=True)
class CallPlan:
    """A call's allocations ``(shape, strides, dtype, device)``, its launches, and where its result is (one
    tensor, or a tuple of them when ``returns_tuple``)."""

    allocations: tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype, torch.device], ...]
    launches: tuple[_LaunchTemplate, ...]
    result: tuple[Slot, ...]
    returns_tuple: bool

    def run(self, tensors: list[torch.Tensor]) -> Any:
        """Repeat the call for these tensor arguments (in the order the key saw them)."""
        new = [torch.empty_strided(shape, stride, dtype=dtype, device=device)
               for shape, stride, dtype, device in self.allocations]
        sources = {"arg": tensors, "new": new}
        for t in self.launches:
            args = list(t.constants)
            for pos, kind, i in t.tensor_slots:
                args[pos] = sources[kind][i]
            launch_module.launch_checked(t.space, t.grid, tuple(args), t.config, t.dtype, t.tf32, t.constexprs,
                                         t.options)
        outputs = tuple(sources[kind][i] for kind, i in self.result)
        return outputs if self.returns_tuple else outputs[0]


class _Watch(TorchDispatchMode):
    """Notes the tensors each allocation returns, and whether the call ran any other aten op (the kernels'
    own traffic under the interpreter aside)."""

    def __init__(self, launches: launch_module.LaunchWatch) -> None:
        super().__init__()
        self.launches = launches
        self.allocated: list[torch.Tensor] = []
        self.other = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.launches.running:
            return out
        name = str(func.name())
        if name in _ALLOCATIONS and isinstance(out, torch.Tensor):
            self.allocated.append(out)
        elif name == "aten::detach" and self.allocated and args[0] is self.allocated[-1]:
            self.allocated[-1] = out  # how a factory's result leaves a dispatch mode: the caller gets this one
        else:
            self.other = True
        return out


def _slot(value: Any, tensors: list[torch.Tensor], allocated: list[torch.Tensor]) -> Slot | None:
    if isinstance(value, torch.Tensor):
        for i, t in enumerate(tensors):
            if value is t:
                return ("arg", i)
        for j, t in enumerate(allocated):
            if value is t:
                return ("new", j)
        return None
    return ("value", value)


def _make_plan(tensors: list[torch.Tensor], watch: _Watch, result: Any) -> CallPlan | None:
    """The plan of a watched call, or None when it did more than allocate and launch, or returned something
    the plan cannot reproduce (a view, a tensor that requires grad)."""
    if watch.other:
        return None
    allocated = watch.allocated
    templates = []
    for record in watch.launches.records:
        slots = tuple(_slot(a, tensors, allocated) for a in record.args)
        if any(s is None for s in slots):
            return None
        templates.append(_LaunchTemplate.of(record, slots))
    outputs = result if isinstance(result, tuple) else (result,)
    if not all(isinstance(r, torch.Tensor) and not r.requires_grad for r in outputs):
        return None
    result_slots = tuple(_slot(r, tensors, allocated) for r in outputs)
    if any(s is None for s in result_slots):
        return None
    # allocations neither launched on nor returned (a placeholder) are not repeated
    used = sorted({i for t in templates for pos, kind, i in t.tensor_slots if kind == "new"}
                  | {i for kind, i in result_slots if kind == "new"})
    renumber = {old: new for new, old in enumerate(used)}

    def remap(kind: str, i: Any) -> tuple[str, Any]:
        return (kind, renumber[i]) if kind == "new" else (kind, i)

    templates = [dataclasses.replace(t, tensor_slots=tuple((pos, *remap(kind, i)) for pos, kind, i in t.tensor_slots))
                 for t in templates]
    shapes = tuple((tuple(allocated[i].shape), allocated[i].stride(), allocated[i].dtype, allocated[i].device)
                   for i in used)
    return CallPlan(shapes, tuple(templates), tuple(remap(*s) for s in result_slots), isinstance(result, tuple))


class PlanStore:
    """The call plans of one op, by key (None for a call that turned out unplannable). Bounded: cleared when
    full, as a workload has few distinct problems."""

    def __init__(self, limit: int = 4096) -> None:
        self.plans: dict[tuple, CallPlan | None] = {}
        self.limit = limit
        STORES.append(self)

    def put(self, key: tuple, plan: CallPlan | None) -> None:
        if len(self.plans) >= self.limit:
            self.plans.clear()
        self.plans[key] = plan


STORES: list[PlanStore] = []


def clear() -> None:
    """Forget every call plan (the next call of each problem takes the ordinary path again)."""
    for store in STORES:
        store.plans.clear()


def planned(fn: F) -> F:
    """Decorate a public op: its calls are planned as the module docstring says. ``fn.plans`` is its
    :class:`PlanStore`."""
    store = PlanStore()

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        key, tensors = call_key(args, kwargs)
        if key is None:
            return fn(*args, **kwargs)
        plan = store.plans.get(key, _UNPLANNABLE)
        if plan is None:  # seen before, not plannable
            return fn(*args, **kwargs)
        if plan is not _UNPLANNABLE:
            return plan.run(tensors)
        with launch_module.watching() as launches, _Watch(launches) as watch:
            result = fn(*args, **kwargs)
        store.put(key, _make_plan(tensors, watch, result))
        return result

    call.plans = store  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
