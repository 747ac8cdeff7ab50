"""Measure a suite of layers: our kernels against torch (cuDNN), written as JSON under bench/results/.

``python -m bench.run --suite resnet50 --dtype bf16 --layout channels_last --mode fwd``. On a machine
without a GPU it runs the tiny smoke layers through Triton's interpreter instead and marks the data
``"timings": false``: it proves the pipeline works, it measures nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import kernels
from kernels.shapes import conv2d_geometry, conv_transpose2d_geometry

from .suites import SMOKE, SUITES, Layer

RESULTS = Path(__file__).resolve().parent / "results"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
OPS = {
    "conv2d": (kernels.conv2d, F.conv2d),
    "conv_transpose2d": (kernels.conv_transpose2d, F.conv_transpose2d),
}


def on_gpu() -> bool:
    return torch.cuda.is_available() and not kernels.INTERPRETING


def environment() -> dict:
    """What produced the data: GPU, driver, versions, date."""
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "timings": on_gpu(),
    }
    if on_gpu():
        meta["gpu"] = torch.cuda.get_device_name()
        meta["cuda"] = torch.version.cuda
        try:
            meta["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            meta["driver"] = "unknown"
    else:
        meta["gpu"] = "none (Triton interpreter on the CPU)"
    return meta


def work(layer: Layer) -> tuple[float, float]:
    """(flops, compulsory bytes per element size) of one forward pass of ``layer``."""
    if layer.op == "conv2d":
        g = conv2d_geometry(layer.input_shape, layer.weight_shape, None, **layer.kwargs)
    else:
        g = conv_transpose2d_geometry(layer.input_shape, layer.weight_shape, None, **layer.kwargs)
    elements = g.N * g.C * g.H * g.W + g.K * g.channels_per_group * g.R * g.S + g.N * g.K * g.P * g.Q
    return float(g.flops), float(elements)


def _timer(fn: Callable[[], object]) -> float:
    """Median milliseconds: triton's do_bench on a GPU, a few wall-clock runs in the interpreter."""
    if on_gpu():
        return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure(layer: Layer, dtype: torch.dtype, channels_last: bool, mode: str) -> dict:
    device = "cuda" if on_gpu() else "cpu"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(layer.input_shape, dtype=dtype, device=device).to(memory_format=fmt)
    w = torch.randn(layer.weight_shape, dtype=dtype, device=device).to(memory_format=fmt)
    x.requires_grad_(mode != "fwd")
    w.requires_grad_(mode != "fwd")
    ours, theirs = OPS[layer.op]
    flops, elements = work(layer)
    passes = 1 if mode == "fwd" else 3
    row = {"layer": layer.name, "op": layer.op, "input": list(layer.input_shape), "weight": list(layer.weight_shape),
           **{k: v for k, v in layer.kwargs.items()}, "dtype": str(dtype).removeprefix("torch."),
           "layout": "channels_last" if channels_last else "nchw", "mode": mode,
           "flop": flops * passes, "bytes": elements * x.element_size() * passes}
    for name, fn in (("ours", ours), ("torch", theirs)):
        if mode == "fwd":
            def call(fn=fn):
                with torch.no_grad():
                    return fn(x, w, **layer.kwargs)
        else:
            grad = torch.randn_like(fn(x, w, **layer.kwargs))

            def call(fn=fn, grad=grad):
                x.grad = w.grad = None
                fn(x, w, **layer.kwargs).backward(grad)
        row[f"{name}_ms"] = _timer(call)
    row["speedup_vs_torch"] = row["torch_ms"] / row["ours_ms"]
    row["ours_tflops"] = row["flop"] / row["ours_ms"] / 1e9
    row["ours_gbps"] = row["bytes"] / row["ours_ms"] / 1e6
    return row


def run(suites: list[str], dtypes: list[str], layouts: list[str], modes: list[str], out: Path | None) -> Path:
    torch.backends.cudnn.benchmark = True
    table = SUITES if on_gpu() else SMOKE
    if not on_gpu():
        print("No GPU: running the smoke layers through Triton's interpreter; the data is marked as not timings.")
        dtypes, layouts, modes = dtypes[:1], layouts[:1], modes[:1]
    rows = []
    for suite in suites:
        for layer in table[suite]:
            for dtype in dtypes:
                for layout in layouts:
                    for mode in modes:
                        row = {"suite": suite, **measure(layer, DTYPES[dtype], layout == "channels_last", mode)}
                        rows.append(row)
                        print(f"{suite:10s} {layer.name:20s} {dtype:5s} {layout:13s} {mode:7s} "
                              f"ours {row['ours_ms']:9.3f} ms  torch {row['torch_ms']:9.3f} ms  "
                              f"x{row['speedup_vs_torch']:.2f}")
    meta = environment()
    if out is None:
        stem = "smoke" if not meta["timings"] else meta["gpu"].lower().replace(" ", "-")
        out = RESULTS / ("smoke" if not meta["timings"] else "") / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES))
    parser.add_argument("--dtype", action="append", choices=sorted(DTYPES))
    parser.add_argument("--layout", action="append", choices=["channels_last", "nchw"])
    parser.add_argument("--mode", action="append", choices=["fwd", "fwd+bwd"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.suite or sorted(SUITES), args.dtype or ["bf16"], args.layout or ["channels_last", "nchw"],
        args.mode or ["fwd", "fwd+bwd"], args.out)


if __name__ == "__main__":
    main()
