"""Host time per call: the Python in front of the GPU, for a few representative calls. ``python -m bench.host``

Each case is a layer of the suites, bf16 channels_last, called as a user calls it (inference under
``torch.no_grad``; training as ``torch.autograd.grad(op(...), inputs, grad)``), measured two ways:

* **recorded** (any machine): the call's median wall time with our kernel launches recorded instead of run,
  the best of several trials — the package's own Python per call once the call is planned (the first calls
  are made before timing). On the CPU this runs without a GPU: nothing is launched.
* beside each, ``floor_us``: the same call's floor with the same tensors — inference: allocating the
  output; training: a forward and backward through a Python autograd Function that saves the call's inputs,
  allocates an output like ours and, in backward, a gradient like each input (torch's own cost for any such
  call, which every training call of ours, one Function, pays too); ``vs_floor``: recorded / floor. (The
  older ``autograd_floor_us`` of one 12.8 MB tensor stays in the metadata.)
* **on a GPU**, for ours and for torch (cuDNN) alike: the call as made (``triton.testing.do_bench``) minus
  the same call replayed from a CUDA graph — the host's cost as the GPU sees it.

Targets (the host path's, on the kind of CPU the project is developed on; reported, never asserted in tests):
conv2d forward ≤ 12 µs, its forward+backward ≤ 50 µs, depthwise forward ≤ 12 µs, max pooling forward ≤ 8 µs.
Writes ``bench/results/host/<machine>.json``; ``python -m bench.report`` puts it into the targets table.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import kernels
from kernels.launch import recording

from .run import RESULTS, _call, environment, graph_timer, host_time, on_gpu, timer

HOST_RESULTS = RESULTS / "host"


@dataclass(frozen=True)
class HostCase:
    """One call: ``op(*tensors, **kwargs)`` for ours (``kernels``) and torch's (``F``) twin; every tensor is
    bf16 channels_last (4-D) and takes part in training calls. ``targets``: µs per mode, recorded."""

    name: str
    op: str
    shapes: tuple[tuple[int, ...], ...]
    kwargs: dict = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)


CASES: tuple[HostCase, ...] = (
    HostCase("conv2d 3x3, ResNet-50 res4", "conv2d", ((32, 256, 14, 14), (256, 256, 3, 3), (256,)),
             {"padding": 1}, {"fwd": 12.0, "fwd+bwd": 50.0}),
    HostCase("depthwise 7x7, ConvNeXt", "conv2d", ((32, 96, 56, 56), (96, 1, 7, 7)), {"padding": 3, "groups": 96},
             {"fwd": 12.0}),
    HostCase("max_pool2d 3x3/2, ResNet stem", "max_pool2d", ((32, 64, 112, 112),),
             {"kernel_size": 3, "stride": 2, "padding": 1}, {"fwd": 8.0}),
    HostCase("conv_transpose2d 2x2/2, UNet", "conv_transpose2d", ((32, 128, 28, 28), (128, 64, 2, 2)),
             {"stride": 2}),
    HostCase("global average pool, ResNet-50 head", "adaptive_avg_pool2d", ((32, 2048, 7, 7),), {"output_size": 1}),
)
MODES = ("fwd", "fwd+bwd")


def _tensors(case: HostCase, device: str) -> tuple[torch.Tensor, ...]:
    made = []
    for shape in case.shapes:
        t = torch.randn(shape, dtype=torch.bfloat16, device=device)
        made.append((t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t).requires_grad_())
    return tuple(made)


def call_of(fn: Callable, tensors: tuple[torch.Tensor, ...], kwargs: dict, mode: str) -> Callable[[], object]:
    """The measured closure, ``bench.run``'s: an inference call, or a forward and backward (the output that
    sizes its gradient is computed with the launches only recorded off a GPU: no kernel runs on the CPU)."""
    with recording(run=on_gpu()):
        return _call(fn, tensors, kwargs, mode)


def recorded_us(call: Callable[[], object], reps: int = 200, trials: int = 5) -> float:
    """µs per call with our launches recorded, not run (``bench.run.host_time``, the best of ``trials``); the
    first calls, which plan the problem and its backward, are not timed."""
    with recording():
        for _ in range(3):
            call()
    return min(host_time(call, reps) for _ in range(trials)) * 1e3


class _AllocateOnly(torch.autograd.Function):
    """A Python autograd Function that saves its input, allocates its output and its gradient, and does
    nothing else: what any forward+backward through a Python Function costs at least."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.empty_like(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.empty_like(x)


class _AllocateLike(torch.autograd.Function):
    """Saves its inputs, allocates an output like ``like`` and, in backward, a gradient like each input: the
    floor of a training call through a Python autograd Function with a given call's tensors."""

    @staticmethod
    def forward(ctx, like: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*inputs)
        return torch.empty_like(like)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (None, *(torch.empty_like(t) for t in ctx.saved_tensors))


def floor_call(tensors: tuple[torch.Tensor, ...], out: torch.Tensor, mode: str) -> Callable[[], object]:
    """The floor of a call with ``tensors`` whose output is like ``out``: allocating the output (inference), or
    a forward and backward through :class:`_AllocateLike` (training, as ``bench.run._call`` makes it)."""
    like = out.detach()
    if mode == "fwd":
        return lambda: torch.empty_like(like)
    return _call(lambda *inputs: _AllocateLike.apply(like, *inputs), tensors, {}, mode)


def autograd_floor_us() -> float:
    """µs of ``torch.autograd.grad(_AllocateOnly.apply(x), x, grad)``: torch's own floor for a training call
    through a Python autograd Function, on this machine."""
    device = "cuda" if on_gpu() else "cpu"
    x = torch.randn(32, 64, 56, 56, dtype=torch.bfloat16, device=device, requires_grad=True)
    grad = torch.randn_like(x)
    return recorded_us(lambda: torch.autograd.grad(_AllocateOnly.apply(x), (x,), grad))


def measure(case: HostCase, mode: str) -> dict:
    """One row: the recorded host time and its target; on a GPU, as called minus graph for ours and torch."""
    device = "cuda" if on_gpu() else "cpu"
    tensors = _tensors(case, device)
    ours = call_of(getattr(kernels, case.op), tensors, case.kwargs, mode)
    with torch.no_grad(), recording(run=on_gpu()):
        out = getattr(kernels, case.op)(*tensors, **case.kwargs)
    target = case.targets.get(mode)
    row: dict = {"case": case.name, "op": case.op, "mode": mode, "shapes": [list(s) for s in case.shapes],
                 "kwargs": case.kwargs, "recorded_us": recorded_us(ours), "target_us": target,
                 "floor_us": recorded_us(floor_call(tensors, out, mode))}
    row["vs_floor"] = row["recorded_us"] / row["floor_us"]
    row["meets_target"] = None if target is None else row["recorded_us"] <= target
    if on_gpu():
        for impl, fn in (("ours", getattr(kernels, case.op)), ("eager", getattr(F, case.op))):
            called = timer(call_of(fn, tensors, case.kwargs, mode))
            graph = graph_timer(lambda fn=fn: call_of(fn, tensors, case.kwargs, mode))
            row[f"{impl}_called_us"], row[f"{impl}_graph_us"] = called * 1e3, graph * 1e3
            row[f"{impl}_overhead_us"] = (called - graph) * 1e3
    return row


def machine() -> str:
    """The CPU's model name (what the recorded numbers depend on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def run(out: Path | None = None, cases: tuple[HostCase, ...] = CASES) -> Path:
    """Measure every case in both modes; returns the JSON path written."""
    meta = {**environment(), "cpu": machine(), "autograd_floor_us": autograd_floor_us()}
    print(f"torch.autograd floor (a Python Function that only allocates), fwd+bwd: "
          f"{meta['autograd_floor_us']:.1f} µs", flush=True)
    rows = []
    for case in cases:
        for mode in MODES:
            row = measure(case, mode)
            rows.append(row)
            target = "" if row["target_us"] is None else f"  (target {row['target_us']:.0f} µs)"
            gpu = (f"  GPU: as called - graph {row['ours_overhead_us']:.1f} µs ours, "
                   f"{row['eager_overhead_us']:.1f} µs torch") if "ours_overhead_us" in row else ""
            print(f"{case.name:36s} {mode:8s} recorded {row['recorded_us']:7.1f} µs, floor {row['floor_us']:6.1f} µs "
                  f"(x{row['vs_floor']:.2f}){target}{gpu}", flush=True)
    name = _slug(meta["gpu"]) if on_gpu() else _slug(meta["cpu"])
    out = out or HOST_RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return out


def main(argv: list[str] | None = None) -> Path:
    """Command line; returns the JSON path written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/host/)")
    return run(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
