"""The benchmark layers' kernels compiled for sm_90 as a GPU specialises them, with the instruction mix of
their main loops: the speed proxy that needs no GPU. ``python -m bench.sass [--out bench/results/sass.md]``

Every layer of the benchmark suites, 2-D, 1-D and 3-D (bf16, channels_last, forward and backward) is called
with its launches recorded (nothing runs, no GPU needed; configurations: the heuristic default, as without
tuned files). Each launch is compiled the way Triton's runtime compiles it for those arguments (an integer
equal to 1 becomes a constant, one divisible by 16 gets the divisibility hint, pointers their alignment), and
its SASS is read (``kernels.sass``): registers, spills, shared memory, and per trip of the main loop the
matrix instructions, TMA loads, asynchronous copies, global loads with their widest vector, shared loads,
and the integer/address instructions around them. The dense suites are recorded a second time with conv2d's
Hopper path switched on (TMA operands, warpgroup MMA). The report, committed at ``bench/results/sass.md``,
lists every launch of every layer; ``tests/test_aot.py`` recompiles and checks that it is today's, so a change
of a kernel's address arithmetic or vector width shows in review. Compiling the ahead-of-time check's worst
case (nothing specialised) is ``python -m kernels.aot``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from kernels import aot
from kernels.autotune.suites import POOL_SUITES, SUITES, SUITES_1D, SUITES_3D, Layer
from kernels.launch import LaunchRecord, recording
from kernels.ops.conv2d_hopper import hopper_tma
from kernels.sass import LoopMix

from .run import RESULTS, _call, _functions, in_layout

REPORT = RESULTS / "sass.md"
ARCH = 90
SUITE_NAMES = ("resnet50", "depthwise", "transposed", "fused", "pooling", *SUITES_1D, *SUITES_3D)
HOPPER_SUITES = ("resnet50", "fused")  # again with conv2d's Hopper path switched on


@dataclass(frozen=True)
class LayerLaunch:
    """One recorded launch of a layer (``pass_index``: its place among the layer's launches); ``suite`` is the
    report's section."""

    suite: str
    layer: str
    pass_index: int
    record: LaunchRecord


def _empty(shape: tuple[int, ...], channels_last: bool = True) -> torch.Tensor:
    """A bf16 tensor in the benchmarks' channels_last layout (``bench.run.in_layout``), never written: no
    kernel runs under recording."""
    t = torch.empty(shape, dtype=torch.bfloat16)
    return (in_layout(t, "channels_last") if channels_last else t).requires_grad_()


def layer_launches(suites: tuple[str, ...] = SUITE_NAMES, hopper: bool = False) -> list[LayerLaunch]:
    """Every launch of every layer of ``suites``, forward and backward, recorded (with conv2d's Hopper path
    switched on when ``hopper``)."""
    registry: dict[str, list[Layer]] = {**SUITES, **POOL_SUITES, **SUITES_1D, **SUITES_3D}
    out = []
    for suite in suites:
        section = f"{suite}, Hopper path on (KERNELS_HOPPER_TMA=1)" if hopper else suite
        for layer in registry[suite]:
            x = _empty(layer.input_shape)
            args: tuple = (x,)
            if layer.weight_shape:
                w = _empty(layer.weight_shape, len(layer.weight_shape) > 3)  # (as bench.run's weights)
                args = (x, w)
            if layer.epilogue.get("residual"):
                with torch.no_grad(), recording():
                    shape = getattr(torch.nn.functional, layer.op)(x.detach()[:0], w.detach(), **layer.kwargs).shape
                args = (*args, _empty((x.shape[0], *shape[1:])))
            with recording() as records, hopper_tma(hopper):
                call = _call(_functions(layer, False)["ours"], args, layer.kwargs, "fwd+bwd")
                records.clear()
                call()
            out += [LayerLaunch(section, layer.name, i, r) for i, r in enumerate(records)]
    return out


@dataclass(frozen=True)
class Compiled:
    regs: int | None
    spill: int | None
    shared: int | None
    loop: LoopMix | None
    error: str = ""


def compile_launches(launches: list[LayerLaunch], workers: int | None = None) -> list[Compiled]:
    """Each launch compiled for sm_90 as specialised at run time (identical compiles done once)."""
    jobs: dict[tuple, aot.CompileJob] = {}
    keys = []
    for launch in launches:
        r = launch.record
        job = aot.CompileJob(r.space.name, aot.signature_of(r, r.config, specialise=True), r.config, ARCH)
        keys.append(job.key())
        jobs.setdefault(job.key(), job)
    order = list(jobs)
    results = dict(zip(order, aot._run_jobs([jobs[k] for k in order], workers or os.cpu_count() or 1),
                       strict=True))
    out = []
    for key in keys:
        res = results[key]
        if "error" in res:
            out.append(Compiled(None, None, None, None, res["error"].strip().splitlines()[-1][:160]))
        else:
            out.append(Compiled(res["regs"], res["spill"], res["shared"], res["loop"]))
    return out


def report(launches: list[LayerLaunch], compiled: list[Compiled]) -> str:
    """The markdown report."""
    import triton

    lines = ["# The benchmark layers' kernels as compiled for sm_90", "",
             f"`python -m bench.sass` (Triton {triton.__version__}; bf16 channels_last, forward and backward; "
             "configurations: the heuristic default; each launch compiled as Triton specialises its arguments). "
             "Per trip of the main loop: instructions, matrix instructions, TMA loads (UTMALDG), asynchronous "
             "copies (LDGSTS), global loads with the widest vector in bits, shared loads, integer/address "
             "instructions (per matrix instruction), uniform-datapath instructions.", ""]
    suite = None
    for launch, c in zip(launches, compiled, strict=True):
        if launch.suite != suite:
            suite = launch.suite
            lines += ["", f"## {suite}", "", "| layer | # | kernel | config | regs | spill | shared | main loop |",
                      "|---|---|---|---|---|---|---|---|"]
        r = launch.record
        loop = c.error and f"compile failed: {c.error}" or (c.loop.label() if c.loop else "no loop")
        lines.append(f"| {launch.layer} | {launch.pass_index} | {r.space.name} | {aot.config_label(r.config)} | "
                     f"{c.regs if c.regs is not None else '-'} | {c.spill if c.spill is not None else '-'} | "
                     f"{c.shared if c.shared is not None else '-'} | {loop} |")
    return "\n".join(lines) + "\n"


def build(workers: int | None = None) -> str:
    """Record, compile and report."""
    launches = layer_launches() + layer_launches(HOPPER_SUITES, hopper=True)
    return report(launches, compile_launches(launches, workers))


def main(argv: list[str] | None = None) -> Path:
    """Command line; returns the path written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--workers", type=int, default=None, help="compile processes (default: CPU count)")
    args = parser.parse_args(argv)
    text = build(args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
