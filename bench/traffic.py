"""Whole-network memory traffic, computed on the CPU: ``python -m bench.traffic``

For one inference forward of each network of ``bench.models`` (batch 32, 224x224, bf16 channels_last), the number
of kernel launches and the bytes they move, for torch eager and for the model after ``kernels.optimize``:

* **eager**: every ATen op that computes (not views, allocations or copies of metadata) counts as a launch,
  run on the ``meta`` device; its bytes are the sizes of its tensor inputs and outputs.
* **optimized**: our launches, recorded instead of run (``kernels.launch.recording``), each moving the sizes
  of its tensor arguments; plus the ATen ops the optimized graph still runs itself (the classifier, the
  adds and activations that did not fuse), counted as for eager.

A tensor argument counts once per launch, read or written (ours: each storage once, as a launcher passes one
tensor again for an absent operand): the proxy of what a launch moves through memory
(a convolution re-reads parts of its input from cache; BatchNorm, ReLU and the residual add each read and
write a whole activation). Until a GPU times the networks, this is the whole-network traffic they are judged
by. Writes ``bench/results/traffic.json``; ``python -m bench.report`` puts the table into the targets report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import kernels
from kernels.launch import recording

from .models import NETWORKS, build
from .run import RESULTS, environment

TRAFFIC = RESULTS / "traffic.json"
# ATen ops that move no data of their own (metadata, allocation)
_FREE = ("empty", "empty_strided", "empty_like", "view", "_unsafe_view", "as_strided", "t", "transpose", "permute",
         "expand", "alias", "detach", "unsqueeze", "squeeze", "reshape", "slice", "select", "split", "flatten",
         "lift_fresh", "_to_copy", "zeros_like", "new_empty", "new_empty_strided")


def _launch_bytes(args: tuple) -> int:
    """The bytes of a launch's tensor arguments, each storage once (a launcher passes one tensor again as the
    placeholder of an absent operand, such as the indices max pooling does not save)."""
    seen = {}
    for a in args:
        if isinstance(a, torch.Tensor):
            seen[(a.data_ptr(), a.numel(), a.dtype)] = a.numel() * a.element_size()
    return sum(seen.values())


def _bytes(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, list | tuple):
        return sum(_bytes(v) for v in value)
    return 0


class _CountOps(TorchDispatchMode):
    """Counts the computing ATen ops and the bytes of their tensor inputs and outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.launches = 0
        self.bytes = 0
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func._schema.name.removeprefix("aten::")
        if name not in _FREE and not getattr(func, "is_view", False):
            self.launches += 1
            self.bytes += _bytes(list(args)) + _bytes(list((kwargs or {}).values())) + _bytes(out)
            self.ops[name] = self.ops.get(name, 0) + 1
        return out


def _model(name: str, dtype: torch.dtype, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(name).to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()


def eager_traffic(name: str, batch: int, side: int, dtype: torch.dtype) -> dict:
    """Launches and bytes of the torch model's forward, counted on the ``meta`` device."""
    model = _model(name, dtype, "meta")
    x = torch.empty(batch, 3, side, side, dtype=dtype, device="meta").to(memory_format=torch.channels_last)
    counter = _CountOps()
    with torch.no_grad(), counter:
        model(x)
    return {"launches": counter.launches, "bytes": counter.bytes, "ops": counter.ops}


def optimized_traffic(name: str, batch: int, side: int, dtype: torch.dtype) -> dict:
    """Launches and bytes of ``kernels.optimize``'s model: our launches recorded (not run) on the CPU, and the
    ATen ops it still runs (which do run, on uninitialised values)."""
    model = _model(name, dtype, "cpu")
    example = torch.randn(1, 3, side, side, dtype=dtype).to(memory_format=torch.channels_last)
    optimized = kernels.optimize(model, (example,), inplace=True)
    x = torch.empty(batch, 3, side, side, dtype=dtype).to(memory_format=torch.channels_last)
    counter = _CountOps()
    with torch.no_grad(), recording() as launches, counter:
        optimized(x)
    ours = sum(_launch_bytes(r.args) for r in launches)
    report = optimized.optimize_report
    return {"launches": len(launches) + counter.launches, "bytes": ours + counter.bytes,
            "our_launches": len(launches), "our_bytes": ours, "torch_ops": counter.ops,
            "folded": len(report.folded), "fused": len(report.fused)}


def measure(name: str = "resnet50", batch: int = 32, side: int = 224, dtype: torch.dtype = torch.bfloat16) -> dict:
    """One row: eager's and the optimized model's launches and bytes, and their ratios."""
    eager = eager_traffic(name, batch, side, dtype)
    optimized = optimized_traffic(name, batch, side, dtype)
    return {"network": name, "batch": batch, "input": [batch, 3, side, side], "dtype": str(dtype).removeprefix(
        "torch."), "layout": "channels_last", "eager": eager, "optimized": optimized,
        "launch_ratio": optimized["launches"] / eager["launches"], "byte_ratio": optimized["bytes"] / eager["bytes"]}


def markdown(data: dict) -> str:
    """The traffic table, markdown ("" without rows)."""
    if not data.get("rows"):
        return ""
    meta = data["meta"]
    parts = ["# Whole-network memory traffic (computed on the CPU)", "",
             "`python -m bench.traffic`: one inference forward; launches and the bytes of their tensor arguments, "
             "for torch eager (ATen ops on the meta device) and for `kernels.optimize` (BatchNorm folded, residual "
             "and activation fused; our launches recorded, plus the ATen ops it still runs). A proxy until a GPU "
             f"times the networks (torch {meta['torch']}, {meta['date'][:10]}).", "",
             "| network | input | dtype | eager launches | eager GB | optimized launches | optimized GB | "
             "launches | bytes |", "|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        e, o = r["eager"], r["optimized"]
        parts.append(f"| {r['network']} | {'x'.join(map(str, r['input']))} | {r['dtype']} | {e['launches']} | "
                     f"{e['bytes'] / 1e9:.2f} | {o['launches']} | {o['bytes'] / 1e9:.2f} | "
                     f"{r['launch_ratio']:.0%} | {r['byte_ratio']:.0%} |")
    return "\n".join(parts) + "\n"


def load(path: Path = TRAFFIC) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> Path:
    """Command line; returns the JSON path."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", action="append", choices=list(NETWORKS), help="repeatable; default all")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--out", type=Path, default=TRAFFIC)
    args = parser.parse_args(argv)
    rows = []
    for name in args.network or list(NETWORKS):
        row = measure(name, args.batch, args.side)
        rows.append(row)
        print(f"{name}: eager {row['eager']['launches']} launches, {row['eager']['bytes'] / 1e9:.2f} GB; "
              f"optimized {row['optimized']['launches']} launches, {row['optimized']['bytes'] / 1e9:.2f} GB "
              f"({row['byte_ratio']:.0%} of eager's bytes)")
    env = environment()
    meta = {k: env[k] for k in ("date", "torch", "triton") if k in env}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
