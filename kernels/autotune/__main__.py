"""Command line of the autotuner.

``python -m kernels.autotune tune --suite resnet50 [--suite pooling] [--dtype bf16] [--layout nchw] [--out DIR]``
    runs every layer of the suites (``kernels/autotune/suites.py``) forward and backward with online tuning on, so each
    kernel they launch is timed with every configuration of its pruned space on the real shapes; prints a
    progress line per layer and a summary table, and merges the timings into the GPU's file. Needs a GPU.

``python -m kernels.autotune check [--arch 90] [--arch 80] [--kernel NAME] [--workers N]``
    compiles every kernel with every configuration of its space ahead of time, without a GPU, and prints
    registers, shared memory, spills and tensor-core instructions (``kernels.aot``); non-zero exit on a
    compile failure, a spill, shared memory over the limit or a missing tensor-core path.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import kernels

from . import TuneResult, config_dir, enable_tuning, results, save
from .store import config_id, file_name
from .suites import POOL_SUITES, SUITES

DTYPES: dict[str, tuple[torch.dtype, bool]] = {
    "bf16": (torch.bfloat16, False),
    "fp16": (torch.float16, False),
    "fp32": (torch.float32, False),  # TF32 off
    "tf32": (torch.float32, True),  # float32 with TF32 on (tl.dot kernels only)
}
LAYOUTS = ("channels_last", "nchw")


def _suites() -> dict[str, list]:
    """The layer suites (``kernels/autotune/suites.py``: convolutions and pooling)."""
    return {**SUITES, **POOL_SUITES}


def _layer_call(layer, dtype: torch.dtype, channels_last: bool) -> Callable[[], None]:
    """Forward and backward of one suite layer on CUDA tensors (with a bias, so its gradient is tuned too)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(layer.input_shape, dtype=dtype, device="cuda").to(memory_format=fmt).requires_grad_()
    op = getattr(kernels, layer.op)
    args: tuple = (x,)
    if layer.weight_shape:
        w = torch.randn(layer.weight_shape, dtype=dtype, device="cuda").to(memory_format=fmt).requires_grad_()
        groups = layer.kwargs.get("groups", 1)
        out_channels = w.shape[0] if layer.op == "conv2d" else w.shape[1] * groups
        b = torch.randn(out_channels, dtype=dtype, device="cuda").requires_grad_()
        args = (x, w, b)
    extras = _epilogue_kwargs(layer, op, args, fmt)

    def call() -> None:
        out = op(*args, **layer.kwargs, **extras)
        out = out[0] if isinstance(out, tuple) else out
        out.backward(torch.randn_like(out))

    return call


def _epilogue_kwargs(layer, op: Callable, args: tuple, fmt: torch.memory_format) -> dict:
    """The fused-epilogue keywords of a suite layer (``Layer.epilogue``), with a residual tensor if it has one."""
    epilogue = dict(getattr(layer, "epilogue", {}) or {})
    if not epilogue:
        return {}
    if epilogue.pop("residual", False):
        with torch.no_grad():
            shape = op(*args, **layer.kwargs).shape
        epilogue["residual"] = torch.randn(shape, dtype=args[0].dtype, device="cuda").to(memory_format=fmt)
    return epilogue


def _short(config_text: str) -> str:
    return config_text.replace("BLOCK_", "")


def summary_table(rows: Sequence[TuneResult]) -> str:
    """One line per tuned key: the default's time, the winner's, the speedup."""
    header = ("kernel", "dtype", "layout", "bucket", "default", "ms", "best", "ms", "speedup")
    body = []
    for r in rows:
        kernel, dtype, layout, bucket = r.key.split("|")
        speed = f"x{r.default_ms / r.best_ms:.2f}" if r.default_ms and r.best_ms else "-"
        body.append((kernel, dtype, layout, bucket, _short(config_id(r.default)),
                     f"{r.default_ms:.4f}" if r.default_ms is not None else "-",
                     _short(config_id(r.best)) if r.best else "-",
                     f"{r.best_ms:.4f}" if r.best_ms is not None else "-", speed))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total}"


def tune(suites: Sequence[str], dtypes: Sequence[str], layouts: Sequence[str], out: Path | None,
         dry_run: bool = False) -> int:
    """Tune every kernel over the suites' layers; write the GPU's file. Returns the exit status. ``dry_run``:
    check the arguments and list the layer runs, tune nothing (no GPU needed)."""
    table = _suites()
    unknown = [s for s in suites if s not in table]
    if unknown:
        known = sorted(table)
        print(f"kernels.autotune tune: unknown suite(s) {unknown}; known: {known}", file=sys.stderr)
        return 2
    jobs = [(suite, layer, d, lay) for suite in suites for layer in table[suite] for d in dtypes for lay in layouts]
    if dry_run:
        for suite, layer, dname, layout in jobs:
            print(f"{suite}/{layer.name} {dname} {layout}")
        print(f"dry run: {len(jobs)} layer runs would be tuned; the file would go to {out or config_dir()}")
        return 0
    if kernels.INTERPRETING or not torch.cuda.is_available():
        print("kernels.autotune tune: no CUDA GPU here (the kernels run through Triton's interpreter), and "
              "tuning measures GPU timings. Run it on the GPU to tune; `python -m kernels.autotune check` "
              "works without one.", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name()
    print(f"tuning {len(jobs)} layer runs on {gpu}")
    enable_tuning(True)
    saved_tf32 = torch.backends.cudnn.allow_tf32
    start = time.perf_counter()
    failures = 0
    try:
        for i, (suite, layer, dname, layout) in enumerate(jobs, 1):
            dtype, tf32 = DTYPES[dname]
            torch.backends.cudnn.allow_tf32 = tf32
            before, t0 = len(results()), time.perf_counter()
            status = ""
            try:
                _layer_call(layer, dtype, layout == "channels_last")()
                torch.cuda.synchronize()
            except Exception as exc:  # noqa: BLE001  (reported, the other layers go on)
                failures += 1
                status = f"  FAILED: {type(exc).__name__}: {str(exc)[:120]}"
            print(f"{_bar(i, len(jobs))} {suite}/{layer.name} {dname} {layout}: "
                  f"{len(results()) - before} keys tuned, {time.perf_counter() - t0:.1f} s{status}", flush=True)
    finally:
        torch.backends.cudnn.allow_tf32 = saved_tf32
        enable_tuning(False)
        written = save(out)
    print()
    print(summary_table(results()))
    target = written[0] if written else (out or config_dir()) / file_name(gpu)
    print(f"\n{len(results())} keys tuned in {time.perf_counter() - start:.0f} s; "
          f"{'wrote ' + str(target) if written else 'nothing new to write'}"
          f"{f'; {failures} layer runs failed' if failures else ''}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":  # every option goes to the ahead-of-time check
        from .. import aot

        return aot.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m kernels.autotune", description=__doc__.split("\n\n")[0],
                                     epilog="check [--arch 90|80 ...] [--kernel NAME ...] [--workers N]: "
                                            "ahead-of-time compile check of every kernel and configuration "
                                            "(no GPU needed; see python -m kernels.aot --help)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="compile every kernel x configuration for sm_90/sm_80 (no GPU)")
    p = commands.add_parser("tune", help="tune every kernel over a suite of network layers (needs a GPU)")
    p.add_argument("--suite", action="append", required=True, help="suite of kernels/autotune/suites.py (repeatable)")
    p.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="repeatable; default bf16")
    p.add_argument("--layout", action="append", choices=LAYOUTS, help="repeatable; default both")
    p.add_argument("--out", type=Path, help="directory of the per-GPU files (default: autotune_configs/)")
    p.add_argument("--dry-run", action="store_true", help="check the arguments, list the layer runs, tune nothing")
    args = parser.parse_args(argv)
    return tune(args.suite, args.dtype or ["bf16"], args.layout or list(LAYOUTS), args.out, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
