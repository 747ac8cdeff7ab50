"""The file of tuned configurations of one GPU model: load, validate, merge, write atomically.

Format (``FORMAT`` 1)::

    {"format": 1, "gpu": "NVIDIA H100 80GB HBM3",
     "entries": {"<kernel>|<dtype>|<layout>|<bucket>": {
         "<config id>": {"ms": 0.123, "triton": "3.9.0", "torch": "2.13.0", "config": {...}}}}}

Each key holds the timing of every configuration tried for it, so a configuration added to a space later
only needs its own timing: the winner is the fastest configuration that is still in the space (and allowed
for the launch's variant and shared memory, as any candidate). Timings taken under another Triton
major.minor are used for a key that has none of this one (a GPU tuned with one Triton keeps its tuning
under another), with one informational line; a key timed under this Triton uses only those timings.
Writers take a lock file, re-read the file, merge their timings in and replace the file atomically, so
concurrent tuning processes lose nothing and never leave a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..launch import KernelConfig

FORMAT = 1
Timings = dict[str, dict[str, Any]]  # config id -> {"ms", "triton", "torch", "config"}


class AutotuneWarning(UserWarning):
    """A tuned-configuration file could not be used (missing, corrupt, other format or versions)."""


def file_name(gpu: str) -> str:
    """``torch.cuda.get_device_name()`` as a file name: lowercased, spaces (and other odd characters) as '-'."""
    return re.sub(r"[^a-z0-9._-]+", "-", gpu.strip().lower()).strip("-") + ".json"


def config_id(config: KernelConfig) -> str:
    """A configuration's identity in the file: its block values, warps and stages."""
    blocks = ",".join(f"{k}={v}" for k, v in config.blocks)
    return f"{blocks},w{config.num_warps},s{config.num_stages}"


def config_to_json(config: KernelConfig) -> dict[str, Any]:
    return {"blocks": dict(config.blocks), "num_warps": config.num_warps, "num_stages": config.num_stages}


def versions() -> dict[str, str]:
    """The Triton and torch versions recorded with each timing."""
    import torch
    import triton

    return {"triton": triton.__version__, "torch": torch.__version__.split("+")[0]}


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass
class Loaded:
    """The usable timings of one file and what was wrong with it."""

    entries: dict[str, Timings] = field(default_factory=dict)
    problem: str | None = None  # why the file is unusable as a whole
    foreign: int = 0  # keys whose timings all come from another Triton major.minor (used all the same)
    foreign_versions: set[str] = field(default_factory=set)


def _valid_timing(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("ms"), int | float)
            and isinstance(value.get("triton"), str))


def _parse(text: str) -> tuple[dict[str, Timings], str | None]:
    """All well-formed entries of a file's text, or the reason the text is not a tuned-configuration file."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return {}, f"not valid JSON ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        return {}, "no 'entries' object"
    if data.get("format") != FORMAT:
        return {}, f"format {data.get('format')!r}, this version reads format {FORMAT}"
    entries: dict[str, Timings] = {}
    for key, timings in data["entries"].items():
        if isinstance(timings, dict):
            good = {cid: t for cid, t in timings.items() if _valid_timing(t)}
            if good:
                entries[key] = good
    return entries, None


def load(path: Path) -> Loaded:
    """Read ``path``; never raises. Per key, the timings of this Triton major.minor, else (counted in
    ``foreign``) those of the others."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Loaded(problem="no such file")
    except OSError as exc:
        return Loaded(problem=f"unreadable ({exc})")
    entries, problem = _parse(text)
    if problem:
        return Loaded(problem=problem)
    ours = major_minor(versions()["triton"])
    out = Loaded()
    for key, timings in entries.items():
        kept = {cid: t for cid, t in timings.items() if major_minor(t["triton"]) == ours}
        if not kept:
            kept = timings
            out.foreign += 1
            out.foreign_versions |= {t["triton"] for t in timings.values()}
        out.entries[key] = kept
    return out


def load_with_warning(path: Path) -> dict[str, Timings]:
    """:func:`load`, with one :class:`AutotuneWarning` when the file is missing or corrupt, or one line saying
    how many keys use timings of another Triton version."""
    loaded = load(path)
    if loaded.problem:
        warnings.warn(f"kernels.autotune: tuned configurations {path} not used: {loaded.problem}; "
                      "using the default heuristic (tune with `python -m kernels.autotune tune`)",
                      AutotuneWarning, stacklevel=3)
    elif loaded.foreign:
        warnings.warn(f"kernels.autotune: {loaded.foreign} tuned keys in {path} were timed with Triton "
                      f"{', '.join(sorted(loaded.foreign_versions))}, not {versions()['triton']}; their winners are "
                      "used (if still in the spaces); re-tune to refresh them", AutotuneWarning, stacklevel=3)
    return loaded.entries


def merge(old: Mapping[str, Timings], new: Mapping[str, Timings]) -> dict[str, Timings]:
    """``old`` with every timing of ``new`` added (a config timed in both: ``new``'s timing wins)."""
    out = {key: dict(timings) for key, timings in old.items()}
    for key, timings in new.items():
        out.setdefault(key, {}).update(timings)
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path.lock`` (POSIX ``flock``; without it, writes stay atomic but may race)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write(path: Path, gpu: str, new: Mapping[str, Timings]) -> dict[str, Timings]:
    """Merge ``new`` into the file at ``path`` under a lock and replace it atomically; returns what was written.

    Entries already in the file (from any version) are kept unless ``new`` times the same config; a corrupt
    file is replaced (with a warning); a file of another format raises ``ValueError`` (it is not ours to drop).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        try:
            old, problem = _parse(path.read_text())
        except OSError:
            old, problem = {}, None
        if problem and problem.startswith("format"):
            raise ValueError(f"{path}: {problem}; not overwritten")
        if problem:
            warnings.warn(f"kernels.autotune: replacing {path} ({problem})", AutotuneWarning, stacklevel=2)
        merged = merge(old, new)
        data = {"format": FORMAT, "gpu": gpu, "entries": {k: merged[k] for k in sorted(merged)}}
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return merged


def timing(config: KernelConfig, ms: float) -> dict[str, Any]:
    """One timing record of ``config``, stamped with the current versions."""
    return {"ms": float(ms), **versions(), "config": config_to_json(config)}
