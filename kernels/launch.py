"""Block configurations as data, and the one place where kernels are launched.

Each Triton kernel of the package has a :class:`KernelSpace`: the block configurations it may be launched
with. Launchers pick one of them (a heuristic today; tuned winners per GPU later) and call :func:`launch`.
Because every launch passes through :func:`launch`, the ahead-of-time check (``kernels.aot``) can record
the real argument types of each kernel and compile it with every configuration in its space.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ._runtime import INTERPRETING


@dataclass(frozen=True)
class KernelConfig:
    """Compile-time block sizes of one launch, plus Triton's ``num_warps`` and ``num_stages``."""

    blocks: tuple[tuple[str, int], ...]
    num_warps: int = 4
    num_stages: int = 2

    @staticmethod
    def of(num_warps: int = 4, num_stages: int = 2, **blocks: int) -> KernelConfig:
        return KernelConfig(tuple(sorted(blocks.items())), num_warps, num_stages)

    @functools.cached_property
    def _sizes(self) -> dict[str, int]:
        return dict(self.blocks)

    def __getitem__(self, name: str) -> int:
        return self._sizes[name]

    def as_kwargs(self) -> dict[str, int]:
        return {**dict(self.blocks), "num_warps": self.num_warps, "num_stages": self.num_stages}


@dataclass(frozen=True)
class VariantLimit:
    """When ``applies(constexprs)`` holds for a launch (of a problem in one of ``dtypes``; None: any), only
    configurations with ``allows(config)`` may run."""

    name: str
    applies: Callable[[Mapping[str, Any]], bool]
    allows: Callable[[KernelConfig], bool]
    dtypes: frozenset[torch.dtype] | None = None

    def applies_to(self, constexprs: Mapping[str, Any], dtype: torch.dtype | None) -> bool:
        return (self.dtypes is None or dtype is None or dtype in self.dtypes) and self.applies(constexprs)


@dataclass(frozen=True)
class VariantAxis:
    """A constexpr of a kernel that selects a code path (a flag, an activation, the aligned unit), with every
    value its launchers may pass, lightest first. A ``crossed`` axis is compiled and tested in combination
    with every value of the other crossed axes; an axis that is not crossed (the activation: elementwise code
    at the end) takes its heaviest (and, in the tests, its lightest) value in those combinations, and its other
    values are varied alone, with the other axes at their heaviest values
    (:meth:`KernelSpace.covering_variants`)."""

    name: str
    values: tuple
    crossed: bool = True


Variant = tuple[tuple[str, Any], ...]  # (axis name, value) for each axis of a space, in the space's order


@dataclass
class KernelSpace:
    """The configurations a kernel may be launched with, and the variants (constexpr code paths) it has.

    ``uses_dot``: the kernel is built on ``tl.dot`` and must use tensor cores for 16-bit inputs.
    ``hopper_path``: a kernel written for sm_90's tensor memory accelerator and warpgroup MMA: compiled for
    sm_90 it must load with TMA (``UTMALDG``) and multiply with ``HGMMA`` (the ahead-of-time check).
    ``wide_dtypes``: configurations for float32 without TF32 and for float64, whose tiles must be smaller
    to fit in registers (no tensor cores there). Empty means ``configs`` serve every dtype.
    ``limits``: configurations that variants of the kernel (told apart by their launch constexprs) may not
    use; heavy variants (e.g. a fused epilogue with two extra tiles) are kept to the tiles that compile
    without spills. Launchers, the autotuner and the ahead-of-time check all see the same list through
    :meth:`for_dtype`, and :func:`launch` refuses a configuration that is not allowed.

    Variants, declared here beside the kernel so that nothing launches an undeclared one: ``axes`` are the
    constexprs that select code paths, ``valid(variant, dtype, tf32)`` says which combinations the launchers
    can produce for a problem dtype (None: all), ``values`` names the remaining constexprs, whose values come
    from the problem (sizes, the dtype) rather than choosing code. :func:`launch` refuses a launch whose
    constexprs are not a valid variant; the ahead-of-time check compiles :meth:`covering_variants` and the
    coverage tests run each of them. ``counts(args, grid)`` (named launch arguments: runtime, constexprs and
    block sizes) gives what a launch iterates over besides the grid axes: loop trip counts and the factors of
    a grid axis that enumerates several things (groups, stride phases, splits). A launch exercises the kernel
    when every grid axis and every count is at least 2.
    """

    name: str
    kernel: Any
    configs: list[KernelConfig]
    uses_dot: bool = False
    hopper_path: bool = False
    wide_configs: list[KernelConfig] = field(default_factory=list)
    limits: tuple[VariantLimit, ...] = ()
    axes: tuple[VariantAxis, ...] = ()
    valid: Callable[[Mapping[str, Any], torch.dtype, bool], bool] | None = None
    values: tuple[str, ...] = ()
    counts: Callable[[Mapping[str, Any], tuple[int, ...]], Mapping[str, int]] | None = None
    _filtered: dict[tuple, tuple[KernelConfig, ...]] = field(default_factory=dict, init=False, repr=False,
                                                            compare=False)
    _checked: set[tuple] = field(default_factory=set, init=False, repr=False, compare=False)

    def for_dtype(self, dtype: torch.dtype, tf32: bool, constexprs: Mapping[str, Any] | None = None
                  ) -> tuple[KernelConfig, ...]:
        """The configurations for this dtype (and, given its constexprs, this variant of the kernel).
        Memoised per (wide or not, limits applying): launchers ask on every call, and spaces are constants."""
        wide = dtype == torch.float64 or (dtype == torch.float32 and not (tf32 and self.uses_dot))
        limits = self.applying_limits(constexprs, dtype)
        key = (wide, tuple(limit.name for limit in limits))
        found = self._filtered.get(key)
        if found is None:
            configs = self.wide_configs if (wide and self.wide_configs) else self.configs
            for limit in limits:
                configs = [c for c in configs if limit.allows(c)]
            found = self._filtered[key] = tuple(configs)
        return found

    def applying_limits(self, constexprs: Mapping[str, Any] | None, dtype: torch.dtype | None = None
                        ) -> list[VariantLimit]:
        """The limits that apply to a launch with these constexprs (and, given, this problem dtype)."""
        if constexprs is None:
            return []
        return [limit for limit in self.limits if limit.applies_to(constexprs, dtype)]

    def variant_tag(self, constexprs: Mapping[str, Any] | None, dtype: torch.dtype | None = None) -> str:
        """``"+name"`` for each limit that applies to this variant: variants with other candidates keep
        their own tuning records."""
        return "".join(f"+{limit.name}" for limit in self.applying_limits(constexprs, dtype))

    def variant_of(self, constexprs: Mapping[str, Any]) -> Variant:
        """The variant of a launch: its value of each axis."""
        return tuple((axis.name, constexprs[axis.name]) for axis in self.axes)

    def is_valid(self, variant: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> bool:
        """Whether the launchers can produce this variant for a problem of this dtype."""
        return self.valid is None or self.valid(variant, dtype, tf32)

    def check_variant(self, constexprs: Mapping[str, Any], dtype: torch.dtype, tf32: bool) -> None:
        """Raise unless ``constexprs`` are exactly a valid variant's axes plus the declared value constexprs
        (memoised: :func:`launch` asks on every launch)."""
        key = (dtype, tf32, *constexprs.items())
        if key in self._checked:
            return
        names = {axis.name for axis in self.axes}
        unknown = set(constexprs) - names - set(self.values)
        missing = names - set(constexprs)
        if unknown or missing:
            raise ValueError(f"{self.name}: constexprs {sorted(unknown)} are not declared as variant axes or "
                             f"values, and axes {sorted(missing)} are missing")
        for axis in self.axes:
            if constexprs[axis.name] not in axis.values:
                raise ValueError(f"{self.name}: {axis.name}={constexprs[axis.name]!r} is not a declared value "
                                 f"{axis.values}")
        if not self.is_valid(constexprs, dtype, tf32):
            raise ValueError(f"{self.name}: variant {dict(self.variant_of(constexprs))} is not declared valid "
                             f"for {dtype} (tf32={tf32})")
        self._checked.add(key)

    def variants(self, dtype: torch.dtype, tf32: bool) -> list[Variant]:
        """Every valid variant for this dtype: the product of the axes' values, filtered."""
        names = [axis.name for axis in self.axes]
        out = []
        for values in itertools.product(*(axis.values for axis in self.axes)):
            variant = tuple(zip(names, values, strict=True))
            if self.is_valid(dict(variant), dtype, tf32):
                out.append(variant)
        return out

    def covering_variants(self, dtype: torch.dtype, tf32: bool, lightest: bool = True) -> list[Variant]:
        """The variants that are tested (and, without the lightest, compiled ahead of time): every valid
        combination of the crossed axes with the heaviest valid values of the other axes (and, with
        ``lightest``, with their lightest too), and each value of every other axis with the heaviest valid
        values of the rest. Heaviest: the largest sum of value positions (values are declared lightest first).
        The lightest combinations matter for the index arithmetic of the plain code paths, not for registers."""
        every = self.variants(dtype, tf32)
        if not every:
            return []

        def weight(variant: Variant) -> int:
            return sum(axis.values.index(value) for axis, (_, value) in zip(self.axes, variant, strict=True))

        def heaviest(matching: list[Variant]) -> Variant | None:
            return max(matching, key=weight) if matching else None

        crossed = [i for i, axis in enumerate(self.axes) if axis.crossed]
        chosen: dict[Variant, None] = {}
        for key in dict.fromkeys(tuple(v[i] for i in crossed) for v in every):
            matching = [v for v in every if tuple(v[i] for i in crossed) == key]
            if lightest:
                chosen[min(matching, key=weight)] = None
            chosen[heaviest(matching)] = None
        for i, axis in enumerate(self.axes):
            if not axis.crossed:
                for value in axis.values:
                    found = heaviest([v for v in every if v[i][1] == value])
                    if found is not None:
                        chosen[found] = None
        return list(chosen)


SPACES: dict[str, KernelSpace] = {}

# Largest dynamic shared memory per block, per compute capability (the opt-in limit Triton checks at load time):
# what the autotuner prunes tiles by, and what the ahead-of-time compile check holds every tile to.
SHARED_LIMIT: dict[int, int] = {80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}


def register_space(space: KernelSpace) -> KernelSpace:
    SPACES[space.name] = space
    return space


@dataclass
class LaunchRecord:
    """One launch seen by :func:`recording`: the kernel's space, its runtime arguments and constexprs, the
    problem's dtype, TF32, the grid and the configuration."""

    space: KernelSpace
    args: tuple
    constexprs: dict[str, Any]
    dtype: torch.dtype
    tf32: bool
    grid: tuple[int, ...] = ()
    config: KernelConfig | None = None

    @property
    def variant(self) -> Variant:
        return self.space.variant_of(self.constexprs)

    def named_arguments(self) -> dict[str, Any]:
        """Every kernel parameter by name: the runtime arguments, the constexprs and the block sizes."""
        names = list(getattr(self.space.kernel, "arg_names", ()))
        named = dict(zip(names, self.args, strict=False))
        named.update(self.constexprs)
        if self.config is not None:
            named.update(self.config.blocks)
        return named

    def counts(self) -> dict[str, int]:
        """Each grid axis's program count and the space's ``counts`` (loops, grid factors) of this launch."""
        out = {f"grid axis {i}": n for i, n in enumerate(self.grid)}
        if self.space.counts is not None:
            out.update(self.space.counts(self.named_arguments(), self.grid))
        return out


_recorder: list[LaunchRecord] | None = None
_DIRECT = not INTERPRETING  # compiled kernels can be launched directly (see :class:`DirectLauncher`)
_record_and_run = False


@dataclass
class LaunchWatch:
    """The launches made inside :func:`watching` (made as usual, also recorded here); ``running`` is true
    while a kernel runs, so that a dispatch mode watching the same call can tell the kernel's own tensor
    traffic (the interpreter's) from the call's."""

    records: list[LaunchRecord] = field(default_factory=list)
    running: bool = False


_watches: list[LaunchWatch] = []


@contextmanager
def watching() -> Iterator[LaunchWatch]:
    """Note every launch made inside, without changing what happens to it (``kernels.call_plans``)."""
    watch = LaunchWatch()
    _watches.append(watch)
    try:
        yield watch
    finally:
        _watches.remove(watch)


@contextmanager
def recording(run: bool = False) -> Iterator[list[LaunchRecord]]:
    """Record launches instead of running them (the ahead-of-time compile check), or, with ``run``, record
    them and run them too (the coverage tests)."""
    global _recorder, _record_and_run
    previous = _recorder, _record_and_run
    _recorder, _record_and_run = [], run
    try:
        yield _recorder
    finally:
        _recorder, _record_and_run = previous


def launch(
    space: KernelSpace,
    grid: Sequence[int] | Callable,
    args: tuple,
    config: KernelConfig,
    dtype: torch.dtype,
    tf32: bool = False,
    **constexprs: Any,
) -> None:
    """Launch ``space.kernel[grid](*args, **constexprs, **config)``, or record it under :func:`recording`.

    ``dtype`` is the dtype of the problem (the one that selects the configuration family).
    """
    space.check_variant(constexprs, dtype, tf32)
    for limit in space.applying_limits(constexprs, dtype):
        if not limit.allows(config):
            raise ValueError(f"{space.name}: configuration {config} is not allowed for {limit.name} launches")
    launch_checked(space, grid, args, config, dtype, tf32, constexprs)


def launch_checked(space: KernelSpace, grid: Sequence[int], args: tuple, config: KernelConfig, dtype: torch.dtype,
                   tf32: bool, constexprs: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> Any:
    """:func:`launch` without its checks of the variant and configuration, for a launch repeated from a plan
    whose first launch passed them; still recorded or watched. ``options``: ``constexprs`` and the
    configuration's keyword arguments merged (a plan keeps them ready). Returns what Triton's launch returns
    (the compiled kernel when compiled, which :func:`direct_launcher` takes), None when only recorded."""
    if _recorder is not None or _watches:
        record = LaunchRecord(space, args, dict(constexprs), dtype, tf32, tuple(grid), config)
        for watch in _watches:
            watch.records.append(record)
        if _recorder is not None:
            _recorder.append(record)
            if not _record_and_run:
                return
        for watch in _watches:
            watch.running = True
        try:
            return space.kernel[tuple(grid)](*args, **constexprs, **config.as_kwargs())
        finally:
            for watch in _watches:
                watch.running = False
    if options is None:
        options = {**constexprs, **config.as_kwargs()}
    return space.kernel[grid](*args, **options)


# --------------------------------------------------------------------------------------------------------
# Compiled kernels launched directly: ``kernel[grid](...)`` (Triton's ``JITFunction.run``) binds and
# specialises every argument, builds a cache key and looks the compiled kernel up on every call, about 10 µs.
# A planned launch repeats the same kernel with the same scalars; only its tensors change. After its first
# ordinary launch it calls the compiled kernel's own launcher, as ``JITFunction.run`` does at its end:
#     compiled.run(grid_x, grid_y, grid_z, stream, compiled.function, compiled.packed_metadata,
#                  launch_metadata, enter_hook, exit_hook, *every_parameter_in_order)
# (the same call in Triton 3.6 and 3.9; constexprs are passed in their places and skipped by the launcher).


def pack_arguments(kernel: Any, args: Sequence[Any], options: Mapping[str, Any]) -> list[Any]:
    """Every parameter of ``kernel`` in its signature's order, as Triton's binder hands them to the compiled
    kernel's launcher: the positional ``args``, then each remaining parameter from ``options`` (constexprs,
    block sizes) or its default. Compile options (``num_warps``, ``num_stages``...) are not parameters."""
    parameters = list(inspect.signature(kernel.fn).parameters.values())  # (Triton binds by this signature)
    packed = list(args)
    for parameter in parameters[len(args):]:
        if parameter.name in options:
            packed.append(options[parameter.name])
        elif parameter.default is not parameter.empty:
            packed.append(parameter.default)
        else:
            raise TypeError(f"{getattr(kernel, '__name__', kernel)}: no value for parameter {parameter.name!r}")
    return packed


@dataclass
class DirectLauncher:
    """One planned launch through its compiled kernel's launcher: the full argument list of its first launch
    with the tensors' places listed, and which of those tensors were 16-byte aligned (Triton compiled the
    kernel for that: a tensor that is aligned differently goes the ordinary way again)."""

    run: Callable[..., Any]
    function: Any
    metadata: Any
    grid: tuple[int, int, int]
    arguments: list[Any]
    tensor_positions: tuple[int, ...]
    aligned: tuple[bool, ...]
    device: int

    def accepts(self, tensors: Sequence[torch.Tensor]) -> bool:
        """Whether the compiled kernel was specialised for these tensors (alignment) on this device."""
        for t, aligned in zip(tensors, self.aligned, strict=True):
            if (t.data_ptr() & 15 == 0) != aligned:
                return False
        return _current_device() == self.device

    def __call__(self, tensors: Sequence[torch.Tensor]) -> None:
        """Launch with these tensors in the first launch's tensors' places."""
        arguments = self.arguments.copy()
        for position, t in zip(self.tensor_positions, tensors, strict=True):
            arguments[position] = t
        grid_x, grid_y, grid_z = self.grid
        self.run(grid_x, grid_y, grid_z, _current_stream(self.device), self.function, self.metadata, None, None,
                 None, *arguments)


def direct_launcher(space: KernelSpace, grid: Sequence[int], args: Sequence[Any], options: Mapping[str, Any],
                    compiled: Any) -> DirectLauncher | None:
    """The direct launcher of a launch whose ordinary call returned ``compiled``, or None when launches
    must go the ordinary way (interpreted, recorded or watched, Triton's launch hooks set)."""
    if not direct_launches_allowed() or compiled is None or not hasattr(compiled, "packed_metadata"):
        return None
    positions = tuple(i for i, a in enumerate(args) if isinstance(a, torch.Tensor))
    arguments = pack_arguments(space.kernel, args, options)
    for i in positions:
        arguments[i] = None  # (the launcher keeps no tensor alive)
    padded = (*grid, 1, 1)[:3]
    return DirectLauncher(compiled.run, compiled.function, compiled.packed_metadata, padded, arguments, positions,
                          tuple(args[i].data_ptr() & 15 == 0 for i in positions), _current_device())


def direct_launches_allowed() -> bool:
    """Compiled kernels, and nobody recording or watching launches or hooking Triton's."""
    return _DIRECT and _recorder is None and not _watches and not _launch_hooks_set()


def _launch_hooks_set() -> bool:
    """Whether a profiler hooked Triton's launches. Triton 3.6 and 3.9 keep each hook as a chain of calls
    (``HookChain``, never None; empty when nothing hooked), older versions as one callable or None."""
    runtime = _triton_runtime_knobs()
    if runtime is None:
        return False
    return any(hook is not None and bool(getattr(hook, "calls", True))
               for hook in (runtime.launch_enter_hook, runtime.launch_exit_hook))


@functools.cache
def _triton_runtime_knobs() -> Any:
    try:
        from triton import knobs
    except ImportError:
        return None
    return knobs.runtime


# the current CUDA device and its current stream, as Triton's driver asks torch for them
_current_device: Callable[[], int] = getattr(torch._C, "_cuda_getDevice", torch.cuda.current_device)
_current_stream: Callable[[int], int] = getattr(torch._C, "_cuda_getCurrentRawStream",
                                                lambda device: torch.cuda.current_stream(device).cuda_stream)


@dataclass(frozen=True)
class LaunchPlan:
    """What a launcher worked out for one problem, kept for the next call of the same problem: the grid,
    the runtime arguments after the tensors, the configuration, whether TF32 is on, and the constexprs.
    Only the tensors (their data) change from call to call."""

    grid: tuple[int, ...]
    scalars: tuple
    config: KernelConfig
    tf32: bool
    constexprs: Mapping[str, Any]


class PlanCache:
    """Launch plans of one launcher, by problem key (a key holds everything the plan depends on: shapes,
    strides, dtypes, device, variant flags and the autotuner's decisions generation). Bounded: cleared when
    full, as a workload has few distinct problems."""

    def __init__(self, limit: int = 4096) -> None:
        self.plans: dict[tuple, LaunchPlan] = {}
        self.limit = limit

    def get(self, key: tuple | None) -> LaunchPlan | None:
        return None if key is None else self.plans.get(key)

    def put(self, key: tuple | None, plan: LaunchPlan) -> None:
        if key is None:
            return
        if len(self.plans) >= self.limit:
            self.plans.clear()
        self.plans[key] = plan


def tf32_enabled(dtype: torch.dtype) -> bool:
    """TF32 for float32 convolutions exactly when cuDNN would use it."""
    return dtype == torch.float32 and bool(torch.backends.cudnn.allow_tf32)


def dot_precision(dtype: torch.dtype) -> str:
    """``input_precision`` for ``tl.dot``: 'tf32' when allowed for float32, else 'ieee'."""
    return "tf32" if tf32_enabled(dtype) else "ieee"


def cdiv(a: int, b: int) -> int:
    """Ceiling division of host integers. (``triton.cdiv`` is a constexpr function now, several times slower
    to call from host code, and launchers call this on every launch.)"""
    return -(-a // b)


def pow2_at_least(n: int, low: int, high: int) -> int:
    """Smallest power of two >= n, clamped to [low, high]."""
    p = low
    while p < n and p < high:
        p *= 2
    return p


def closest_config(configs: Sequence[KernelConfig], **wanted: int) -> KernelConfig:
    """The configuration whose block sizes are closest (in log2 distance) to ``wanted`` (memoised: launchers
    ask this on every call)."""
    return _closest_config(tuple(configs), tuple(wanted.items()))


@functools.lru_cache(maxsize=4096)
def _closest_config(configs: tuple[KernelConfig, ...], wanted: tuple[tuple[str, int], ...]) -> KernelConfig:
    def distance(cfg: KernelConfig) -> float:
        return sum(abs(math.log2(cfg[k]) - math.log2(max(v, 1))) for k, v in wanted)

    return min(configs, key=distance)


INDEX_LIMIT = 2**31 - 1


def batch_rows(t: torch.Tensor | None, n0: int, n1: int) -> torch.Tensor | None:
    """``t[n0:n1]`` (None stays None); ``t`` itself when that is all of it, since a view costs microseconds of
    host time on every launch and one chunk is the ordinary case."""
    if t is None or (n0 == 0 and n1 == t.shape[0]):
        return t
    return t[n0:n1]


def kernel_strides(t: torch.Tensor) -> tuple[int, ...]:
    """``t``'s strides for a kernel's address arithmetic, 0 for each dimension of size 1 (its index is always
    0, so its stride is never used). A 1-D convolution's ``(N, C, 1, L)`` view has a height stride of 1 (so
    that torch does not take a channels-innermost tensor for channels_last); passed as it is, Triton would
    specialise it as the constant 1, and ``row * 1`` would hide that a channel vector starts at a multiple
    of 8 elements. 0 gets the divisibility hint instead, and the loads their vector width."""
    return tuple(0 if size == 1 else stride for size, stride in zip(t.shape, t.stride(), strict=True))


def bias_stride(bias: torch.Tensor | None) -> int:
    """The element stride of a ``(K,)`` bias; 0 without one (the kernels then never read it)."""
    return 0 if bias is None else bias.stride(0)


def batch_chunks(batch: int, items_per_sample: int, limit: int = INDEX_LIMIT) -> list[tuple[int, int]]:
    """Split ``range(batch)`` into ``(start, stop)`` chunks whose flattened index ``batch * items_per_sample``
    stays below ``limit``, so kernels can keep 32-bit pixel indices (memory offsets are 64-bit anyway).
    One chunk in every ordinary case."""
    per_chunk = max(1, limit // max(items_per_sample, 1))
    return [(start, min(start + per_chunk, batch)) for start in range(0, max(batch, 1), per_chunk)]
