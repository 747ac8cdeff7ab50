"""Tuned block configurations: persisted per GPU model, looked up at launch time, optionally tuned online.

Every launcher computes its heuristic pick (the documented default) and asks :func:`select_config`, which
returns, in this order:

1. the configuration being timed, while online tuning times the candidates of this kernel;
2. the decision already made in this process for the same problem (an in-memory cache: after the first
   launch of a problem, a lookup is a dictionary access, with no file I/O);
3. the fastest timed configuration for the problem's exact key (kernel, dtype, layout, shape bucket),
   among the configurations still in the kernel's space and not pruned for this problem (timings tuned in
   this process first, then the GPU's file);
4. when online tuning is on: the default now, and the candidates are timed right after this launch;
5. the fastest configuration of the nearest bucket with the same kernel, dtype and layout;
6. the default.

Shape bucket: each problem dimension rounded up to a power of two (``M=1000`` -> ``M=1024``), written
``"K=512,M=1024,N=64"`` (names sorted). The nearest bucket is the stored one with the smallest sum of
``|log2|`` differences over the dimensions (buckets with other dimension names never match).

Problem dimensions are named after the blocks that tile them: a dimension ``X`` bounds block ``BLOCK_X``.
:func:`prune` drops the configurations whose blocks are larger than the problem needs, and those whose
estimated shared memory is over the GPU's budget, before anything is timed or looked up.

Files: ``autotune_configs/<gpu>.json`` beside the package in a source checkout, or the copy shipped inside
an installed package (:func:`config_dir`; ``KERNELS_AUTOTUNE_DIR`` to use another directory), ``<gpu>``
from ``torch.cuda.get_device_name`` (``KERNELS_AUTOTUNE_GPU`` to use another GPU's file). Online tuning is
off unless ``KERNELS_AUTOTUNE=1`` or :func:`enable_tuning`; its timings are kept in memory and written by
:func:`save` (or at exit with ``KERNELS_AUTOTUNE_SAVE=1`` / ``save_at_exit=True``); tune from one thread at a
time. Nothing is read or timed when the package is imported.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from .._runtime import INTERPRETING
from ..launch import SHARED_LIMIT, KernelConfig, KernelSpace, tf32_enabled
from . import store
from .store import AutotuneWarning

__all__ = [
    "AutotuneWarning",
    "TuneResult",
    "bucket",
    "config_dir",
    "decisions_generation",
    "enable_tuning",
    "layout_of",
    "prune",
    "reset",
    "results",
    "save",
    "select_config",
    "tunable",
    "tuning_enabled",
]

ENV_TUNE = "KERNELS_AUTOTUNE"
ENV_SAVE = "KERNELS_AUTOTUNE_SAVE"
ENV_DIR = "KERNELS_AUTOTUNE_DIR"
ENV_GPU = "KERNELS_AUTOTUNE_GPU"

F = TypeVar("F", bound=Callable[..., Any])

# --------------------------------------------------------------------------------------------------------
# Buckets, layouts, pruning


def _pow2_ceil(n: int) -> int:
    return 0 if n <= 0 else 1 << (int(n) - 1).bit_length()


def bucket(problem: Mapping[str, int]) -> str:
    """The shape bucket of a problem: each dimension rounded up to a power of two, names sorted.

    ``bucket({"M": 1000, "N": 64, "K": 576}) == "K=1024,M=1024,N=64"``.
    """
    return ",".join(f"{name}={_pow2_ceil(value)}" for name, value in sorted(problem.items()))


def parse_bucket(text: str) -> dict[str, int]:
    """Inverse of :func:`bucket`."""
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        out[name] = int(value)
    return out


def bucket_distance(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """Sum of ``|log2|`` differences of two buckets; infinite when their dimension names differ."""
    if a.keys() != b.keys():
        return math.inf
    return sum(abs(math.log2(max(a[k], 0.5)) - math.log2(max(b[k], 0.5))) for k in a)


def layout_of(t: torch.Tensor) -> str:
    """``"channels_last"`` when the channels of a 4-D or 5-D tensor are contiguous (channels_last,
    channels_last_3d), else ``"nchw"``: the layout key of tuned configurations."""
    return "channels_last" if t.dim() in (4, 5) and t.shape[1] > 1 and t.stride(1) == 1 else "nchw"


def dtype_key(space: KernelSpace, dtype: torch.dtype) -> str:
    """``float16``, ``bfloat16``, ``float32``, ``float64``; ``float32+tf32`` for ``tl.dot`` kernels with TF32 on."""
    name = str(dtype).removeprefix("torch.")
    return f"{name}+tf32" if space.uses_dot and tf32_enabled(dtype) else name


def shared_memory_estimate(space: KernelSpace, config: KernelConfig, dtype: torch.dtype) -> int:
    """Bytes of shared memory a configuration needs: the pipelined operand tiles of a ``tl.dot`` kernel
    (``num_stages * (BLOCK_M*BLOCK_K + BLOCK_K*BLOCK_N)`` elements, ``BLOCK_M = BLOCK_H*BLOCK_W`` for a
    rectangle of pixels); 0 for the other kernels."""
    blocks = dict(config.blocks)
    if "BLOCK_H" in blocks and "BLOCK_W" in blocks:  # (a rectangle of output pixels: the GEMM's rows)
        blocks["BLOCK_M"] = blocks["BLOCK_H"] * blocks["BLOCK_W"]
    if not space.uses_dot or not {"BLOCK_M", "BLOCK_N", "BLOCK_K"} <= blocks.keys():
        return 0
    m, n, k = blocks["BLOCK_M"], blocks["BLOCK_N"], blocks["BLOCK_K"]
    item = torch.empty((), dtype=dtype).element_size()
    return max(config.num_stages, 1) * (m * k + k * n) * item


def prune(configs: Iterable[KernelConfig], problem: Mapping[str, int], smem_budget: int | None = None,
          smem_bytes: Callable[[KernelConfig], int] | None = None) -> list[KernelConfig]:
    """The configurations worth timing for ``problem``, in their original order.

    Drops those whose estimated shared memory (``smem_bytes``) is over ``smem_budget``, then those with a
    block larger than the problem needs: ``BLOCK_X`` over the power of two at or above dimension ``X``.
    When every configuration is too large, the least oversized ones are kept. Empty only when nothing fits
    the budget.
    """
    configs = list(configs)
    if smem_budget is not None and smem_bytes is not None:
        configs = [c for c in configs if smem_bytes(c) <= smem_budget]

    def excess(config: KernelConfig) -> float:
        total = 0.0
        for name, size in config.blocks:
            dim = name.removeprefix("BLOCK_")
            if name != dim and dim in problem:
                total += max(0.0, math.log2(size) - math.log2(max(_pow2_ceil(problem[dim]), 1)))
        return total

    if not configs:
        return []
    scores = [excess(c) for c in configs]
    least = min(scores)
    return [c for c, s in zip(configs, scores, strict=True) if s == least]


# --------------------------------------------------------------------------------------------------------
# State


@dataclass
class _Pending:
    """A key that online tuning should time once the current launcher call returns."""

    space: KernelSpace
    key: str
    candidates: list[KernelConfig]
    default: KernelConfig


@dataclass
class TuneResult:
    """One key timed by online tuning: every candidate's milliseconds, the default's, the winner."""

    key: str
    default: KernelConfig
    default_ms: float | None
    best: KernelConfig | None
    best_ms: float | None
    timings: dict[str, float]


@dataclass
class _State:
    requested: bool | None = None  # online tuning asked for; None: environment not read yet
    refused: bool = False  # the "cannot tune here" warning was given
    chosen: dict[tuple, KernelConfig] = field(default_factory=dict)  # decisions of this process
    files: dict[str, dict[str, store.Timings]] = field(default_factory=dict)  # gpu -> loaded entries
    session: dict[str, dict[str, store.Timings]] = field(default_factory=dict)  # gpu -> tuned here
    gpus: dict[int, str | None] = field(default_factory=dict)
    budgets: dict[int, int | None] = field(default_factory=dict)
    forced: dict[str, KernelConfig] | None = None  # space name -> config being timed
    probe: list[_Pending] | None = None  # collecting untuned keys during a tunable call
    busy: bool = False  # inside a tunable call's tuning
    results: list[TuneResult] = field(default_factory=list)
    save_at_exit: bool = False
    atexit_registered: bool = False


_state = _State()


def reset() -> None:
    """Forget every cached decision, loaded file and in-memory timing; re-read the environment."""
    global _state
    _state = _State()
    _decisions_changed()


_generation = 0


def _decisions_changed() -> None:
    global _generation
    _generation += 1


def decisions_generation() -> int | None:
    """A number that changes whenever a configuration chosen earlier may no longer hold (a reset, tuning
    switched on or off, new timings); None while choices are in flux (online tuning asked for, or a
    configuration being timed). Launchers reuse a launch plan only under the generation it was made in."""
    if _state.forced is not None or _state.probe is not None or _requested():
        return None
    return _generation


def config_dir() -> Path:
    """Where the per-GPU files live: ``$KERNELS_AUTOTUNE_DIR``; else ``autotune_configs/`` beside the package
    in a source checkout (or an editable install); else, in an installed wheel, the copy shipped inside the
    package (``kernels/autotune_configs/``)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "autotune_configs"
    return checkout if checkout.is_dir() else package / "autotune_configs"


def _device_index() -> int:
    """The CUDA device launches go to; -1 under the interpreter."""
    return -1 if INTERPRETING else torch.cuda.current_device()


def _gpu_name(device: int) -> str | None:
    if device not in _state.gpus:
        name = os.environ.get(ENV_GPU) or None
        if name is None and device >= 0:
            name = torch.cuda.get_device_name(device)
        _state.gpus[device] = name
    return _state.gpus[device]


def _smem_budget(device: int) -> int | None:
    """The GPU's opt-in shared memory per block; no limit under the interpreter."""
    if device not in _state.budgets:
        budget = None
        if device >= 0:
            props = torch.cuda.get_device_properties(device)
            budget = getattr(props, "shared_memory_per_block_optin", None)
            if not budget:
                budget = SHARED_LIMIT.get(props.major * 10 + props.minor)
        _state.budgets[device] = budget
    return _state.budgets[device]


def _file_entries(gpu: str) -> dict[str, store.Timings]:
    if gpu not in _state.files:
        _state.files[gpu] = store.load_with_warning(config_dir() / store.file_name(gpu))
    return _state.files[gpu]


def _requested() -> bool:
    if _state.requested is None:
        _state.requested = os.environ.get(ENV_TUNE, "0") not in ("", "0")
        if _state.requested and os.environ.get(ENV_SAVE, "0") not in ("", "0"):
            _arm_save_at_exit()
    return _state.requested


def _can_time() -> bool:
    """Configurations can be timed: kernels are compiled for a visible GPU."""
    return not INTERPRETING and torch.cuda.is_available()


def tuning_enabled() -> bool:
    """Online tuning is asked for (``KERNELS_AUTOTUNE=1`` or :func:`enable_tuning`) and possible here.

    Asked for without a GPU (under the interpreter): one warning, and False.
    """
    if not _requested():
        return False
    if not _can_time():
        if not _state.refused:
            _state.refused = True
            warnings.warn("kernels.autotune: online tuning needs a CUDA GPU; the kernels run through Triton's "
                          "interpreter here, so the default configurations are used", AutotuneWarning,
                          stacklevel=2)
        return False
    return True


def _arm_save_at_exit() -> None:
    _state.save_at_exit = True
    if not _state.atexit_registered:
        _state.atexit_registered = True
        atexit.register(_save_at_exit)


def _save_at_exit() -> None:
    if _state.save_at_exit and _state.session:
        save()


def enable_tuning(on: bool = True, save_at_exit: bool = False) -> None:
    """Switch online tuning on or off for this process (overrides ``KERNELS_AUTOTUNE``).

    With ``save_at_exit`` the timings are merged into the GPU's file when the process exits.
    """
    _state.requested = bool(on)
    _state.chosen.clear()
    _decisions_changed()
    if on and save_at_exit:
        _arm_save_at_exit()


def results() -> list[TuneResult]:
    """Every key timed by online tuning in this process, in order."""
    return list(_state.results)


def save(directory: Path | str | None = None) -> list[Path]:
    """Merge the timings tuned in this process into each GPU's file (atomically); returns the files."""
    out = []
    base = Path(directory) if directory is not None else config_dir()
    for gpu, entries in _state.session.items():
        if entries:
            path = base / store.file_name(gpu)
            store.write(path, gpu, entries)
            _state.files.pop(gpu, None)  # re-read on next use
            out.append(path)
    return out


# --------------------------------------------------------------------------------------------------------
# Lookup


def _timings(gpu: str | None) -> dict[str, store.Timings]:
    if gpu is None:
        return {}
    session = _state.session.get(gpu)
    entries = _file_entries(gpu)
    return store.merge(entries, session) if session else entries


def _winner(timings: store.Timings, candidates: list[KernelConfig]) -> KernelConfig | None:
    """The fastest timed configuration among ``candidates``."""
    by_id = {store.config_id(c): c for c in candidates}
    timed = [(t["ms"], cid) for cid, t in timings.items() if cid in by_id and math.isfinite(t["ms"])]
    return by_id[min(timed)[1]] if timed else None


def _nearest(table: dict[str, store.Timings], prefix: str, problem_bucket: str,
             candidates: list[KernelConfig]) -> KernelConfig | None:
    """The winner of the nearest stored bucket (with a timed candidate) under ``prefix``."""
    wanted = parse_bucket(problem_bucket)
    ranked = []
    for key in table:
        if key.startswith(prefix):
            d = bucket_distance(wanted, parse_bucket(key[len(prefix):]))
            if math.isfinite(d):
                ranked.append((d, key))
    for _, key in sorted(ranked):
        found = _winner(table[key], candidates)
        if found is not None:
            return found
    return None


def select_config(space: KernelSpace, dtype: torch.dtype, layout: str, problem: dict[str, int],
                  default: KernelConfig, variant: Mapping[str, Any] | None = None) -> KernelConfig:
    """The configuration to launch ``space``'s kernel with on ``problem`` (see the module docstring).

    ``layout``: ``"nchw"`` or ``"channels_last"`` (:func:`layout_of`); ``problem``: dimension name -> extent,
    a dimension ``X`` bounding block ``BLOCK_X``; ``default``: the launcher's heuristic pick (allowed for the
    variant); ``variant``: the launch's constexprs, when the space restricts configurations by variant
    (``KernelSpace.allows``). A variant shares its timings with the others; only its candidates differ.
    """
    forced = _state.forced
    if forced is not None and space.name in forced:
        return forced[space.name]
    tf32 = space.uses_dot and tf32_enabled(dtype)
    device = _device_index()
    memo = (device, space.name, space.variant_tag(variant, dtype), dtype, tf32, layout, tuple(problem.items()), default)
    found = _state.chosen.get(memo)
    if found is not None:
        return found
    return _select(space, dtype, tf32, layout, problem, default, device, memo, variant)


def _select(space: KernelSpace, dtype: torch.dtype, tf32: bool, layout: str, problem: dict[str, int],
            default: KernelConfig, device: int, memo: tuple, variant: Mapping[str, Any] | None = None
            ) -> KernelConfig:
    tuning = tuning_enabled()
    candidates = prune(space.for_dtype(dtype, tf32, variant), problem, _smem_budget(device),
                       lambda c: shared_memory_estimate(space, c, dtype))
    prefix = f"{space.name}{space.variant_tag(variant, dtype)}|{dtype_key(space, dtype)}|{layout}|"
    key = prefix + bucket(problem)
    table = _timings(_gpu_name(device))
    exact = table.get(key)
    choice = _winner(exact, candidates) if exact else None
    if choice is None and tuning and _state.probe is not None and candidates:
        if all(p.key != key for p in _state.probe):
            _state.probe.append(_Pending(space, key, candidates, default))
        return default
    if choice is None:
        choice = _nearest(table, prefix, bucket(problem), candidates) if table else None
        if choice is None:
            choice = default
        if tuning:  # a later tunable call may still time this key
            return choice
    _state.chosen[memo] = choice
    return choice


# --------------------------------------------------------------------------------------------------------
# Online tuning


def _bench(fn: Callable[[], Any]) -> float:
    """Median milliseconds of ``fn`` on the GPU."""
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median"))


def _recording() -> bool:
    from .. import launch

    return launch._recorder is not None


def tunable(fn: F) -> F:
    """Decorate a launcher so that online tuning, when on, times the untuned keys it selects.

    With tuning off (the default) the wrapper only checks a flag. With it on, the call runs once with the
    current choices while :func:`select_config` collects the keys that have no exact timing; then each such
    key's candidates are timed on the same arguments (``triton.testing.do_bench``), the timings kept in
    memory, and the call runs again with the winners. Launchers must overwrite their outputs (they do), so
    running them more than once changes nothing.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _state.busy or _state.probe is not None or not _requested() or _recording() or not tuning_enabled():
            return fn(*args, **kwargs)
        return _tune_call(fn, args, kwargs)

    return wrapper  # type: ignore[return-value]


def _tune_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    pending: list[_Pending] = []
    _state.probe = pending
    try:
        result = fn(*args, **kwargs)
    finally:
        _state.probe = None
    if not pending:
        return result
    gpu = _gpu_name(_device_index()) or "unknown"
    _state.busy = True
    try:
        for p in pending:
            _tune_key(p, gpu, lambda: fn(*args, **kwargs))
    finally:
        _state.busy = False
    return fn(*args, **kwargs)


def _time_config(space: KernelSpace, config: KernelConfig, run: Callable[[], Any]) -> float | None:
    _state.forced = {space.name: config}
    try:
        return _bench(run)
    except Exception as exc:  # noqa: BLE001  (a configuration that cannot run is skipped)
        warnings.warn(f"kernels.autotune: {space.name} with {store.config_id(config)} failed and is skipped: "
                      f"{type(exc).__name__}: {exc}", AutotuneWarning, stacklevel=2)
        return None
    finally:
        _state.forced = None


def _tune_key(p: _Pending, gpu: str, run: Callable[[], Any]) -> None:
    timings: store.Timings = {}
    plain: dict[str, float] = {}
    for config in p.candidates:
        ms = _time_config(p.space, config, run)
        if ms is not None:
            timings[store.config_id(config)] = store.timing(config, ms)
            plain[store.config_id(config)] = ms
    default_id = store.config_id(p.default)
    default_ms = plain.get(default_id)
    if default_id not in plain:
        default_ms = _time_config(p.space, p.default, run)
    if timings:
        _state.session.setdefault(gpu, {}).setdefault(p.key, {}).update(timings)
    _state.chosen.clear()
    _decisions_changed()
    best = _winner(timings, p.candidates) if timings else None
    _state.results.append(TuneResult(p.key, p.default, default_ms, best,
                                     plain[store.config_id(best)] if best else None, plain))
