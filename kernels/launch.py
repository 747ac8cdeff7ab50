"""Block configurations as data, and the one place where kernels are launched.

Each Triton kernel of the package has a :class:`KernelSpace`: the block configurations it may be launched
with. Launchers pick one of them (a heuristic today; tuned winners per GPU later) and call :func:`launch`.
Because every launch passes through :func:`launch`, the ahead-of-time check (``kernels.aot``) can record
the real argument types of each kernel and compile it with every configuration in its space.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch


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
    """When ``applies(constexprs)`` holds for a launch, only configurations with ``allows(config)`` may run."""

    name: str
    applies: Callable[[Mapping[str, Any]], bool]
    allows: Callable[[KernelConfig], bool]


@dataclass
class KernelSpace:
    """The configurations a kernel may be launched with.

    ``uses_dot``: the kernel is built on ``tl.dot`` and must use tensor cores for 16-bit inputs.
    ``wide_dtypes``: configurations for float32 without TF32 and for float64, whose tiles must be smaller
    to fit in registers (no tensor cores there). Empty means ``configs`` serve every dtype.
    ``limits``: configurations that variants of the kernel (told apart by their launch constexprs) may not
    use; heavy variants (e.g. a fused epilogue with two extra tiles) are kept to the tiles that compile
    without spills. Launchers, the autotuner and the ahead-of-time check all see the same list through
    :meth:`for_dtype`, and :func:`launch` refuses a configuration that is not allowed.
    """

    name: str
    kernel: Any
    configs: list[KernelConfig]
    uses_dot: bool = False
    wide_configs: list[KernelConfig] = field(default_factory=list)
    limits: tuple[VariantLimit, ...] = ()
    _filtered: dict[tuple, tuple[KernelConfig, ...]] = field(default_factory=dict, init=False, repr=False,
                                                            compare=False)

    def for_dtype(self, dtype: torch.dtype, tf32: bool, constexprs: Mapping[str, Any] | None = None
                  ) -> tuple[KernelConfig, ...]:
        """The configurations for this dtype (and, given its constexprs, this variant of the kernel).
        Memoised per (wide or not, limits applying): launchers ask on every call, and spaces are constants."""
        wide = dtype == torch.float64 or (dtype == torch.float32 and not (tf32 and self.uses_dot))
        limits = self.applying_limits(constexprs)
        key = (wide, tuple(limit.name for limit in limits))
        found = self._filtered.get(key)
        if found is None:
            configs = self.wide_configs if (wide and self.wide_configs) else self.configs
            for limit in limits:
                configs = [c for c in configs if limit.allows(c)]
            found = self._filtered[key] = tuple(configs)
        return found

    def applying_limits(self, constexprs: Mapping[str, Any] | None) -> list[VariantLimit]:
        return [] if constexprs is None else [limit for limit in self.limits if limit.applies(constexprs)]

    def variant_tag(self, constexprs: Mapping[str, Any] | None) -> str:
        """``"+name"`` for each limit that applies to this variant: variants with other candidates keep
        their own tuning records."""
        return "".join(f"+{limit.name}" for limit in self.applying_limits(constexprs))


SPACES: dict[str, KernelSpace] = {}


def register_space(space: KernelSpace) -> KernelSpace:
    SPACES[space.name] = space
    return space


@dataclass
class LaunchRecord:
    """One launch seen by :func:`recording`: the kernel's space, its runtime arguments and constexprs."""

    space: KernelSpace
    args: tuple
    constexprs: dict[str, Any]
    dtype: torch.dtype
    tf32: bool


_recorder: list[LaunchRecord] | None = None


@contextmanager
def recording() -> Iterator[list[LaunchRecord]]:
    """Record launches instead of running them (for the ahead-of-time compile check)."""
    global _recorder
    previous, _recorder = _recorder, []
    try:
        yield _recorder
    finally:
        _recorder = previous


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
    for limit in space.applying_limits(constexprs):
        if not limit.allows(config):
            raise ValueError(f"{space.name}: configuration {config} is not allowed for {limit.name} launches")
    if _recorder is not None:
        _recorder.append(LaunchRecord(space, args, dict(constexprs), dtype, tf32))
        return
    space.kernel[tuple(grid)](*args, **constexprs, **config.as_kwargs())


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


def batch_chunks(batch: int, items_per_sample: int, limit: int = INDEX_LIMIT) -> list[tuple[int, int]]:
    """Split ``range(batch)`` into ``(start, stop)`` chunks whose flattened index ``batch * items_per_sample``
    stays below ``limit``, so kernels can keep 32-bit pixel indices (memory offsets are 64-bit anyway).
    One chunk in every ordinary case."""
    per_chunk = max(1, limit // max(items_per_sample, 1))
    return [(start, min(start + per_chunk, batch)) for start in range(0, max(batch, 1), per_chunk)]
