"""Call plans: a call of a problem seen before is a key, a lookup, its allocations and its launches.

The first call of a public op with given arguments runs the ordinary path (argument checks, geometry,
configuration choice, launch plans) while :func:`planned` watches it: every aten op it runs and every
kernel launch it makes. When all it did was allocate fresh tensors, take views, and launch kernels on those
and on its own tensor arguments (no copy, no torch computation), that trace is kept under the call's key. A
later call with the same key allocates the same tensors, takes the same views and repeats the same launches
with its own tensors in their places: no checks, no geometry, no configuration lookup, no launch planning.

An inference call's trace is a :class:`CallPlan`. A training call, which enters one autograd Function with
the call's own tensors (through :func:`apply_function`), becomes a :class:`TrainingPlan`: later calls replay
the forward inside :class:`_Replay`, an autograd Function that saves what the original Function saved; its
backward runs the original Function's backward on a rebuilt ctx the first time for each gradient signature,
watched, and replays that trace afterwards. A gradient of gradients (``create_graph``) recomputes through
the ordinary op, so it stays exact.

The key holds everything the first call's behaviour depended on: each argument's type and value, and for
tensors their shape, strides, dtype, device and ``requires_grad``, and which arguments are the same tensor;
grad mode, TF32 for float32 convolutions, the autotuner's decisions generation and the switches in
:data:`KEY_SWITCHES`. Calls are never planned
while torch.compile traces, under autocast (which casts the arguments), or while the autotuner's choices
are in flux. An argument that is not a tensor, None, a number, a string or a tuple/list/torch.Size of
those makes the call unplanned (the ordinary path runs every time).

Not planned (the key is kept as unplannable, the ordinary path runs): calls that copy or compute with torch,
training calls whose Function gets a view or copy of an argument (unbatched inputs) or one tensor twice, and
calls that return something else than the Function's outputs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        for v in value:  # (kernel sizes, strides, paddings, all ints: the usual case, keyed as they are)
            if type(v) is not int:
                break
        else:
            return (kind, tuple(value))
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
    parts = [generation, torch.is_grad_enabled(), _tf32_allowed(), *[switch() for switch in KEY_SWITCHES]]
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


# Process-wide switches that change which kernels a call launches (conv2d's Hopper path): part of every key.
KEY_SWITCHES: list[Callable[[], Any]] = []


# ``torch.backends.cudnn.allow_tf32`` without the attribute machinery, where torch has it
_tf32_allowed = getattr(torch._C, "_get_cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32)


_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", None)


def _autocast_on() -> bool:
    return True if _any_autocast is None else bool(_any_autocast())


# --------------------------------------------------------------------------------------------------------
# Traces: what a watched call did, as a table of tensors (its inputs, fresh allocations, views of either)
# and launches whose tensor arguments are entries of that table.

# An entry of a trace's tensor table: ("input", i) the i-th input; ("new", shape, stride, dtype, device) a
# fresh allocation; ("view", entry, shape, stride, offset) a view of an earlier entry, its storage offset
# relative to that entry's.
Entry = tuple


@dataclass(frozen=True)
class _LaunchTemplate:
    """One launch of a trace: its arguments with the constants in place and the tensors listed as
    ``(position, entry)``, and everything else as the first launch had it."""

    space: launch_module.KernelSpace
    grid: tuple[int, ...]
    constants: tuple
    tensor_slots: tuple[tuple[int, int], ...]
    config: launch_module.KernelConfig
    dtype: torch.dtype
    tf32: bool
    constexprs: dict[str, Any]
    options: dict[str, Any]


@dataclass(frozen=True)
class Trace:
    """A watched call that only allocated, viewed and launched: its tensor table, its launches, and the
    entries of its results (None for a result that is None). ``direct``: each launch's
    :class:`~kernels.launch.DirectLauncher` once its compiled kernel is known (None before, and always under
    the interpreter)."""

    entries: tuple[Entry, ...]
    launches: tuple[_LaunchTemplate, ...]
    results: tuple[int | None, ...]
    direct: list[launch_module.DirectLauncher | None] = dataclasses.field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        self.direct.extend([None] * (len(self.launches) - len(self.direct)))

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Repeat the call on these inputs; returns the whole tensor table."""
        table: list[torch.Tensor] = []
        for entry in self.entries:
            kind = entry[0]
            if kind == "input":
                table.append(inputs[entry[1]])
            elif kind == "new":
                table.append(torch.empty_strided(entry[1], entry[2], dtype=entry[3], device=entry[4]))
            else:
                base = table[entry[1]]
                table.append(base.as_strided(entry[2], entry[3], base.storage_offset() + entry[4]))
        direct_allowed = launch_module.direct_launches_allowed()
        for n, t in enumerate(self.launches):
            direct = self.direct[n]
            if direct_allowed and direct is not None:
                tensors = [table[i] for _, i in t.tensor_slots]
                if direct.accepts(tensors):
                    direct(tensors)
                    continue
            args = list(t.constants)
            for pos, i in t.tensor_slots:
                args[pos] = table[i]
            compiled = launch_module.launch_checked(t.space, t.grid, tuple(args), t.config, t.dtype, t.tf32,
                                                    t.constexprs, t.options)
            if direct_allowed and direct is None:
                self.direct[n] = launch_module.direct_launcher(t.space, t.grid, args, t.options, compiled)
        return table

    def outputs(self, table: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
        return tuple(None if i is None else table[i] for i in self.results)


class _Watch(TorchDispatchMode):
    """Builds the tensor table of a call from the aten ops it runs (allocations, views; anything else marks
    the call as doing more), the kernels' own traffic under the interpreter aside; and notes the first
    autograd Function the call applies (:func:`apply_function`)."""

    def __init__(self, launches: launch_module.LaunchWatch, inputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.launches = launches
        self.objects: list[torch.Tensor] = list(inputs)
        self.entries: list[Entry] = [("input", i) for i in range(len(inputs))]
        self.other = False
        self.applied: tuple[type, tuple, tuple] | None = None

    def find(self, value: torch.Tensor) -> int | None:
        """The entry of a tensor: the very object, else (another Python object for the same tensor, as autograd
        hands out) the latest entry with its address, shape, strides and dtype (the latest: an address freed
        during the call may have been given to a later allocation)."""
        for i, t in enumerate(self.objects):
            if value is t:
                return i
        for i in range(len(self.objects) - 1, -1, -1):
            t = self.objects[i]
            if (t.data_ptr() == value.data_ptr() and t.shape == value.shape and t.stride() == value.stride()
                    and t.dtype == value.dtype):
                return i
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.launches.running:
            return out
        name = str(func.name())
        if name in _ALLOCATIONS and isinstance(out, torch.Tensor):
            self.objects.append(out)
            self.entries.append(("new", tuple(out.shape), out.stride(), out.dtype, out.device))
        elif name == "aten::detach" and self.entries[-1][0] == "new" and args[0] is self.objects[-1]:
            self.objects[-1] = out  # how a factory's result leaves a dispatch mode: the caller gets this one
        elif (getattr(func, "is_view", False) and isinstance(out, torch.Tensor) and args
              and isinstance(args[0], torch.Tensor) and (base := self.find(args[0])) is not None):
            self.objects.append(out)
            self.entries.append(("view", base, tuple(out.shape), out.stride(),
                                 out.storage_offset() - args[0].storage_offset()))
        else:
            self.other = True
        return out

    def trace(self, results: tuple) -> Trace | None:
        """The trace of what was watched, or None when the call did more than allocate, view and launch, or
        a launch or result is a tensor the table does not hold."""
        if self.other:
            return None
        templates = []
        for record in self.launches.records:
            constants, slots = [], []
            for pos, value in enumerate(record.args):
                if isinstance(value, torch.Tensor):
                    index = self.find(value)
                    if index is None:
                        return None
                    slots.append((pos, index))
                    constants.append(None)
                else:
                    constants.append(value)
            options = {**record.constexprs, **record.config.as_kwargs()}
            templates.append(_LaunchTemplate(record.space, record.grid, tuple(constants), tuple(slots),
                                             record.config, record.dtype, record.tf32, dict(record.constexprs),
                                             options))
        result_entries = []
        for r in results:
            index = None if r is None else self.find(r)
            if r is not None and index is None:
                return None
            result_entries.append(index)
        return Trace(tuple(self.entries), tuple(templates), tuple(result_entries))


@contextmanager
def _watching(inputs: list[torch.Tensor]) -> Iterator[_Watch]:
    with launch_module.watching() as launches, _Watch(launches, inputs) as watch:
        _WATCHES.append(watch)
        try:
            yield watch
        finally:
            _WATCHES.pop()


_WATCHES: list[_Watch] = []


def apply_function(function: type[torch.autograd.Function], *args: Any) -> Any:
    """``function.apply(*args)``, noted by a watching call plan: the public ops enter their autograd Function
    through this, so that a training call can be planned (:class:`TrainingPlan`)."""
    result = function.apply(*args)
    if _WATCHES and _WATCHES[-1].applied is None:
        _WATCHES[-1].applied = (function, args, result if isinstance(result, tuple) else (result,))
    return result


# --------------------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class CallPlan:
    """An inference call: its trace, and whether it returns a tuple."""

    trace: Trace
    returns_tuple: bool

    def run(self, tensors: list[torch.Tensor]) -> Any:
        """Repeat the call for these tensor arguments (in the order the key saw them)."""
        outputs = self.trace.outputs(self.trace.run(tensors))
        return outputs if self.returns_tuple else outputs[0]


class _Context:
    """What an autograd Function's backward reads of its ctx, rebuilt for a planned call: the saved tensors,
    ``needs_input_grad`` and the attributes its forward set."""

    def __init__(self, saved: tuple, needs_input_grad: tuple[bool, ...], attributes: dict[str, Any]) -> None:
        self.__dict__.update(attributes)
        self.saved_tensors = saved
        self.needs_input_grad = needs_input_grad


@dataclass
class TrainingPlan:
    """A call that entered one autograd Function with the call's own tensors: the forward's trace, which
    entries the Function saved, its ctx attributes, where each of its tensor arguments is among the call's
    tensors, and which outputs were not differentiable. The backward is planned on its first run for each
    gradient signature (``backward_traces``; None: not plannable, the Function's own backward then runs)."""

    function: type[torch.autograd.Function]
    tensor_arguments: tuple[int | None, ...]  # for each Function argument: its call-tensor index, or None
    trace: Trace  # its results are the Function's outputs
    saved: tuple[int | None, ...]
    attributes: dict[str, Any]
    non_differentiable: tuple[int, ...]
    output_layouts: tuple[tuple, ...]  # each output's (shape, strides, dtype, device)
    returned: tuple[int, ...]  # which of the Function's outputs the call returns
    returns_tuple: bool
    ordinary: Callable[..., Any]  # the op's ordinary path (a double backward recomputes through it)
    call: tuple  # the call's arguments and keywords, tensors replaced by their index
    backward_traces: dict[tuple, Trace | None] = dataclasses.field(default_factory=dict)

    def run(self, tensors: list[torch.Tensor]) -> Any:
        outputs = _Replay.apply(self, *tensors)
        returned = tuple(outputs[i] for i in self.returned)
        return returned if self.returns_tuple else returned[0]

    def rebuild_call(self, tensors: tuple) -> tuple[tuple, dict]:
        args, kwargs = self.call
        fill = (lambda v: tensors[v[1]] if type(v) is tuple and len(v) == 2 and v[0] is _TENSOR else v)
        return tuple(fill(a) for a in args), {k: fill(v) for k, v in kwargs.items()}


_TENSOR = object()


class _Replay(torch.autograd.Function):
    """A planned training call: the forward repeats the trace, the backward the Function's backward."""

    @staticmethod
    def forward(ctx, plan: TrainingPlan, *tensors: torch.Tensor):
        table = plan.trace.run(list(tensors))
        outputs = plan.trace.outputs(table)
        saved = [table[i] for i in plan.saved if i is not None]
        ctx.plan = plan
        ctx.tensor_count = len(tensors)
        ctx.save_for_backward(*tensors, *saved)
        ctx.mark_non_differentiable(*(outputs[i] for i in plan.non_differentiable))
        ctx.set_materialize_grads(False)  # (no zeros for the gradient of an index output: see backward)
        return outputs

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None):
        plan: TrainingPlan = ctx.plan
        grads = _materialized(plan, grads)
        unpacked = ctx.saved_tensors
        tensors, stored = unpacked[:ctx.tensor_count], iter(unpacked[ctx.tensor_count:])
        needs = ctx.needs_input_grad[1:]
        if torch.is_grad_enabled():  # a gradient of gradients: recompute through the ordinary op and its graph
            return (None, *_recompute(plan, tensors, grads, needs))
        saved = tuple(None if i is None else next(stored) for i in plan.saved)
        fn_needs = tuple(False if i is None else needs[i] for i in plan.tensor_arguments)
        key = (fn_needs, tuple(None if g is None else (g.shape, g.stride(), g.dtype) for g in grads))
        inputs = [t for t in saved if t is not None] + [g for g in grads if g is not None]
        trace = plan.backward_traces.get(key, _UNPLANNABLE)
        if trace is None or trace is _UNPLANNABLE:
            context = _Context(saved, fn_needs, plan.attributes)
            if trace is None:
                fn_grads = plan.function.backward(context, *grads)
            else:
                with _watching(inputs) as watch:
                    fn_grads = plan.function.backward(context, *grads)
                plan.backward_traces[key] = watch.trace(tuple(fn_grads))
        else:
            fn_grads = trace.outputs(trace.run(inputs))
        out: list[torch.Tensor | None] = [None] * len(tensors)
        for index, grad in zip(plan.tensor_arguments, fn_grads, strict=False):
            if index is not None and grad is not None:
                out[index] = grad
        return (None, *out)


def _materialized(plan: TrainingPlan, grads: tuple) -> tuple:
    """The gradients autograd would hand the Function's backward, but None (not zeros) for its
    non-differentiable outputs (max pooling's indices), which no backward reads: a zero fill of an int64
    tensor per call saved."""
    if all(g is not None for g in grads):
        return grads
    filled = []
    for i, g in enumerate(grads):
        if g is None and i not in plan.non_differentiable:
            shape, stride, dtype, device = plan.output_layouts[i]
            g = torch.empty_strided(shape, stride, dtype=dtype, device=device).zero_()
        filled.append(g)
    return tuple(filled)


def _recompute(plan: TrainingPlan, tensors: tuple, grads: tuple, needs: tuple[bool, ...]) -> list:
    """Gradients of a planned call, recomputed through the ordinary op so that they are differentiable
    (``grads``: one per output of the Function; those the call returns are the ones that can be non-zero)."""
    args, kwargs = plan.rebuild_call(tensors)
    with torch.enable_grad():
        result = plan.ordinary(*args, **kwargs)
    outputs = result if isinstance(result, tuple) else (result,)
    returned_grads = [grads[i] for i in plan.returned]
    pairs = [(o, g) for o, g in zip(outputs, returned_grads, strict=True) if o.requires_grad and g is not None]
    wanted = [t for t, need in zip(tensors, needs, strict=True) if need]
    found = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], create_graph=True,
                                     allow_unused=True))
    return [next(found) if need else None for need in needs]


def _saved_entry(watch: _Watch, value: torch.Tensor | None) -> int | None | object:
    """The table entry of a tensor the Function saved, None for None, else ``_UNPLANNABLE``."""
    if value is None:
        return None
    index = watch.find(value)
    return _UNPLANNABLE if index is None else index


def _make_plan(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any], tensors: list[torch.Tensor],
               watch: _Watch, result: Any) -> CallPlan | TrainingPlan | None:
    """The plan of a watched call, or None (see the module docstring)."""
    outputs = result if isinstance(result, tuple) else (result,)
    if not all(isinstance(r, torch.Tensor) for r in outputs):
        return None
    if not any(r.requires_grad for r in outputs):
        trace = watch.trace(outputs)
        return None if trace is None else CallPlan(trace, isinstance(result, tuple))
    if watch.applied is None:
        return None
    function, fn_args, fn_outputs = watch.applied
    node = next((o.grad_fn for o in fn_outputs if o.requires_grad), None)
    if node is None or getattr(type(node), "_forward_cls", None) is not function:
        return None
    returned = tuple(next((i for i, o in enumerate(fn_outputs) if o is r), -1) for r in outputs)
    if -1 in returned:
        return None  # (the call returns something else than the Function's outputs: a view of one)
    trace = watch.trace(fn_outputs)
    if trace is None:
        return None
    tensor_arguments = []
    for a in fn_args:
        index = None
        if isinstance(a, torch.Tensor):
            index = next((i for i, t in enumerate(tensors) if t is a), None)
            if index is None:
                return None  # (a view or copy of an argument enters the Function: not planned)
        tensor_arguments.append(index)
    if len({i for i in tensor_arguments if i is not None}) < sum(i is not None for i in tensor_arguments):
        return None  # (one tensor twice: its gradients would have to be added)
    saved = tuple(_saved_entry(watch, t) for t in node.saved_tensors)
    if _UNPLANNABLE in saved:
        return None
    attributes = dict(vars(node))
    if any(isinstance(v, torch.Tensor) for v in attributes.values()):
        return None  # (a tensor kept on ctx, not saved: it would be the first call's in every replay)
    non_differentiable = tuple(i for i, o in enumerate(fn_outputs) if not o.requires_grad)
    call = (tuple(_placeholder(a, tensors) for a in args), {k: _placeholder(v, tensors) for k, v in kwargs.items()})
    layouts = tuple((tuple(o.shape), o.stride(), o.dtype, o.device) for o in fn_outputs)
    return TrainingPlan(function, tuple(tensor_arguments), trace, saved, attributes, non_differentiable, layouts,
                        returned, isinstance(result, tuple), fn, call)


def _placeholder(value: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return (_TENSOR, next(i for i, t in enumerate(tensors) if t is value))
    return value


class PlanStore:
    """The call plans of one op, by key (None for a call that turned out unplannable). Bounded: cleared when
    full, as a workload has few distinct problems."""

    def __init__(self, limit: int = 4096) -> None:
        self.plans: dict[tuple, CallPlan | TrainingPlan | None] = {}
        self.limit = limit
        STORES.append(self)

    def put(self, key: tuple, plan: CallPlan | TrainingPlan | None) -> None:
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
        with _watching(tensors) as watch:
            result = fn(*args, **kwargs)
        store.put(key, _make_plan(fn, args, kwargs, tensors, watch, result))
        return result

    call.plans = store  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
