"""Whole networks end to end: ``python -m bench.models``.

Real model definitions — torchvision's ResNet-50, MobileNetV3-Large, EfficientNet-B0 and ConvNeXt-Tiny, and
a UNet (:class:`UNet`, transposed convolutions and concatenated skips: torchvision's segmentation networks
have no transposed convolution) — each measured in images per second for inference (``infer``: eval mode,
no autograd) and for a full training step (``train``: forward, cross-entropy loss, backward, SGD step with
momentum), bf16 channels_last, batch 32 and 128, in these variants:

* ``eager``: the torch model (cuDNN, ``cudnn.benchmark=True``);
* ``compile``: ``torch.compile(torch model, mode="max-autotune")``;
* ``ours``: the model converted by ``kernels.convert(model, fuse_activations=True)``, called as is;
* ``ours_compile``: ``torch.compile`` (same mode) of the converted model;
* ``ours_graphs``: the converted model's forward (``infer``) or whole training step (``train``) captured in
  one CUDA graph and replayed;
* ``eager_graphs``: the same capture of the torch model (the fair partner of ``ours_graphs``);
* ``optimized`` (inference only): ``kernels.optimize(model, (x,))``, BatchNorm folded and the residual add and
  activation fused into the convolutions; ``optimized_graphs``: it captured in one CUDA graph.

Every variant starts from the same weights; the output (``infer``) or the first loss (``train``) of each is
compared with eager's (``rel_err_vs_eager``). Data: ``bench/results/models/<gpu>[-<tag>].json`` (``meta`` as
in ``bench.run``, one row per network, batch, mode and variant); a failing variant records its error and the
run goes on; ``--budget-s`` stops starting new (network, batch) groups, and an interrupt writes what was
measured. ``python -m bench.plot`` and ``python -m bench.report`` draw and tabulate it.

Without a GPU (or with ``--smoke``) it is the smoke pass: tiny widths (the same definitions, see
:func:`build`), batch 2 at 16x16 (ConvNeXt 32x32, the UNet 8x8), float32 channels_last, ``eager`` and
``ours`` only, one call each, no CUDA graphs; written to ``bench/results/models/smoke/smoke.json``, marked
``"timings": false``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import kernels

from .loop import stream_rows
from .run import RESULTS, environment, on_gpu

MODELS_RESULTS = RESULTS / "models"
MODES = ("infer", "train")
VARIANTS = ("eager", "compile", "ours", "ours_compile", "ours_graphs", "eager_graphs", "optimized", "optimized_graphs")
SMOKE_VARIANTS = ("eager", "ours", "optimized")
INFERENCE_ONLY = ("optimized", "optimized_graphs")  # (BatchNorm folded: no training step)
BATCHES = (32, 128)
COMPILE_MODE = "max-autotune"
CLASSES = 10


def _double_conv(c_in: int, c_out: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.ReLU(inplace=True),
        torch.nn.Conv2d(c_out, c_out, 3, padding=1), torch.nn.ReLU(inplace=True))


class UNet(torch.nn.Module):
    """The UNet of Ronneberger et al. (2015) with padded 3x3 convolutions: ``depth`` levels of two
    3x3 convolution + ReLU pairs going down through 2x2 max pooling, back up through 2x2 stride-2 transposed
    convolutions whose outputs are concatenated with the skip of their level, and a 1x1 convolution to
    per-pixel class scores. Input sides must be multiples of ``2**depth``."""

    def __init__(self, in_channels: int = 3, classes: int = CLASSES, width: int = 64, depth: int = 4) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = torch.nn.ModuleList(
            _double_conv(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True))
        self.pool = torch.nn.MaxPool2d(2)
        self.up = torch.nn.ModuleList(
            torch.nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.decode = torch.nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = torch.nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class scores ``(N, classes, H, W)``."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, block in zip(self.up, self.decode, strict=True):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def _resnet50(tiny: bool) -> torch.nn.Module:
    from torchvision.models import resnet50
    from torchvision.models.resnet import Bottleneck, ResNet

    if not tiny:
        return resnet50()

    class NarrowBottleneck(Bottleneck):
        """torchvision's bottleneck with expansion 1 instead of 4 (ResNet hard-codes its stage widths)."""

        expansion = 1

    # tiny: one bottleneck per stage, inner widths 8..64, stage outputs 64..512 (not 256..2048)
    return ResNet(NarrowBottleneck, [1, 1, 1, 1], num_classes=CLASSES, width_per_group=8)


def _mobilenet_v3_large(tiny: bool) -> torch.nn.Module:
    from torchvision.models import mobilenet_v3_large

    return mobilenet_v3_large(width_mult=0.1, num_classes=CLASSES) if tiny else mobilenet_v3_large()


def _efficientnet_b0(tiny: bool) -> torch.nn.Module:
    from torchvision.models import efficientnet_b0
    from torchvision.models.efficientnet import EfficientNet, MBConvConfig

    if not tiny:
        return efficientnet_b0()
    # EfficientNet-B0's stages (expand ratio, kernel, stride, in, out, layers) at width 1/10, depth 1/4
    stages = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
              (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    setting = [MBConvConfig(*stage, width_mult=0.1, depth_mult=0.25) for stage in stages]
    return EfficientNet(setting, dropout=0.2, num_classes=CLASSES)


def _convnext_tiny(tiny: bool) -> torch.nn.Module:
    from torchvision.models import convnext_tiny
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    if not tiny:
        return convnext_tiny()
    # ConvNeXt-Tiny's four stages (96..768 channels, 3-3-9-3 blocks) at 8..64 channels, one block each
    setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1),
               CNBlockConfig(64, None, 1)]
    return ConvNeXt(setting, stochastic_depth_prob=0.1, num_classes=CLASSES)


def _unet(tiny: bool) -> torch.nn.Module:
    return UNet(width=4, depth=3) if tiny else UNet()


@dataclass(frozen=True)
class Network:
    """A benchmarked network: ``make(tiny)`` builds it (full size, or tiny widths for the interpreter);
    ``segment``: its output is per-pixel class scores, else one row of scores per image; ``tiny_side``: the
    input side of the smoke pass and the CPU tests, as small as the tiny network takes (the interpreter's
    time grows with the pixels; ConvNeXt's stem strides by 4)."""

    name: str
    make: Callable[[bool], torch.nn.Module]
    segment: bool = False
    tiny_side: int = 16


NETWORKS: dict[str, Network] = {n.name: n for n in (
    Network("resnet50", _resnet50),
    Network("mobilenet_v3_large", _mobilenet_v3_large),
    Network("efficientnet_b0", _efficientnet_b0),
    Network("convnext_tiny", _convnext_tiny, tiny_side=32),
    Network("unet", _unet, segment=True, tiny_side=8),
)}


def build(name: str, tiny: bool = False) -> torch.nn.Module:
    """The torch model ``name`` of :data:`NETWORKS` (float32, random weights); ``tiny``: the same definition
    at small widths (and, where the constructor allows, depths) for the interpreter and the CPU tests."""
    return NETWORKS[name].make(tiny)


def loss_of(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the scores ``out`` (per image, or per pixel for a segmentation network), in float32."""
    return F.cross_entropy(out.float(), target)


def _targets(network: Network, batch: int, side: int, device: str) -> torch.Tensor:
    shape = (batch, side, side) if network.segment else (batch,)
    return torch.randint(0, CLASSES, shape, device=device)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _rel_err(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.detach().double(), reference.detach().double()
    return float((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30))


def _capture(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """``fn`` warmed up on a side stream and captured in a CUDA graph; returns its replay. The whole-network
    capture recipe of the CUDA graphs notes in torch's documentation (the optimizer step captured too)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    torch.cuda.synchronize()
    return graph.replay


def _prepare(base: torch.nn.Module, variant: str, mode: str, x: torch.Tensor,
             target: torch.Tensor) -> tuple[Callable[[], object], torch.Tensor, float]:
    """``(timed call, first result, its wall-clock ms)`` of one variant: the first result is the output
    (``infer``) or the loss of the first training step (``train``), computed with the RNG seeded (dropout,
    stochastic depth)."""
    model = copy.deepcopy(base)
    if variant.startswith("ours"):
        kernels.convert(model, fuse_activations=True)
    if variant in INFERENCE_ONLY:
        model = kernels.optimize(model.eval(), (x,), inplace=True)
    model.train(mode == "train")
    fn: Callable[[torch.Tensor], torch.Tensor] = model
    if variant.endswith("compile"):
        torch._dynamo.reset()  # a fresh compile, not a recompile counted against the previous models' limit
        fn = torch.compile(model, mode=COMPILE_MODE)
    if mode == "infer":
        def call() -> torch.Tensor:
            with torch.no_grad():
                return fn(x)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def call() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(fn(x), target)
            loss.backward()
            optimizer.step()
            return loss.detach()
    torch.manual_seed(0)
    start = time.perf_counter()
    first = call()
    first_ms = (time.perf_counter() - start) * 1e3
    return (_capture(call) if variant.endswith("graphs") else call), first, first_ms


def _time_ms(call: Callable[[], object], first_ms: float, rep_ms: float) -> float:
    """Median milliseconds per call: ``triton.testing.do_bench`` on a GPU (after three warm-up calls, which
    compile what ``torch.compile`` and ``cudnn.benchmark`` compile); in the interpreter, ``first_ms``, the
    wall-clock time of the one call already made (not a timing)."""
    if not on_gpu():
        return first_ms
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    return float(triton.testing.do_bench(call, warmup=rep_ms / 4, rep=rep_ms, return_mode="median"))


def measure(name: str, batch: int, modes: list[str], variants: list[str], *, smoke: bool, dtype: torch.dtype,
            rep_ms: float = 200.0) -> Iterator[dict]:
    """One row per (mode, variant) of network ``name`` at ``batch``, each yielded as soon as measured; a failing
    variant records its error. ``speedup_vs_eager`` needs eager measured first in its mode."""
    network = NETWORKS[name]
    device = "cuda" if on_gpu() else "cpu"
    side = network.tiny_side if smoke else 224
    fmt = torch.channels_last
    torch.manual_seed(0)
    try:
        base = build(name, tiny=smoke).to(device=device, dtype=dtype, memory_format=fmt)
    except Exception as exc:  # noqa: BLE001  (e.g. torchvision missing: recorded, the other networks go on)
        for mode in modes:
            for variant in variants:
                yield {"network": name, "batch": batch, "mode": mode, "variant": variant, "ms": None,
                       "images_per_s": None, "error": _error(exc)}
        return
    report = kernels.convert(copy.deepcopy(base), fuse_activations=True)
    conversion = {"converted": len(report.converted), "kept": len(report.kept), "fused": len(report.fused)}
    x = torch.randn(batch, 3, side, side, device=device, dtype=dtype).to(memory_format=fmt)
    target = _targets(network, batch, side, device)
    for mode in modes:
        reference: torch.Tensor | None = None
        eager_ips: float | None = None
        for variant in variants:
            if mode == "train" and variant in INFERENCE_ONLY:
                continue
            row: dict = {"network": name, "batch": batch, "mode": mode, "variant": variant,
                         "input": [batch, 3, side, side], "dtype": str(dtype).removeprefix("torch."),
                         "layout": "channels_last", **conversion}
            try:
                call, first, first_ms = _prepare(base, variant, mode, x, target)
                if variant == "eager":
                    reference = first
                row["rel_err_vs_eager"] = _rel_err(first, reference) if reference is not None else None
                row["ms"] = _time_ms(call, first_ms, rep_ms)
                row["images_per_s"] = batch / row["ms"] * 1e3
                if variant == "eager":
                    eager_ips = row["images_per_s"]
            except Exception as exc:  # noqa: BLE001  (recorded; the other variants go on)
                row.update(ms=None, images_per_s=None, error=_error(exc))
            finally:
                call = first = None
                if on_gpu():
                    torch.cuda.synchronize()
                    torch.cuda.empty_cache()
            ips = row["images_per_s"]
            row["speedup_vs_eager"] = ips / eager_ips if ips and eager_ips else None
            yield row


def default_out(results_dir: Path, meta: dict, tag: str | None) -> Path:
    """``<results>/models/<gpu>[-<tag>].json`` for GPU timings, ``<results>/models/smoke/smoke.json`` else."""
    if meta["smoke"]:
        return results_dir / "models" / "smoke" / "smoke.json"
    slug = meta["gpu"].lower().replace(" ", "-")
    return results_dir / "models" / f"{slug}{'-' + tag if tag else ''}.json"


def run(networks: list[str], batches: list[int], modes: list[str], variants: list[str], *, smoke: bool = False,
        budget_s: float | None = None, results_dir: Path = RESULTS, out: Path | None = None,
        tag: str | None = None, rep_ms: float = 200.0) -> Path:
    """Measure every (batch, network) group, the first batch first, stopping at ``budget_s`` (the rest listed
    as skipped); the JSON is rewritten after each row. Returns its path."""
    start = time.perf_counter()
    smoke = smoke or not on_gpu()
    dtype = torch.bfloat16
    if smoke:
        dtype, batches = torch.float32, [2]
        variants = [v for v in variants if v in SMOKE_VARIANTS]
        print("smoke pass: tiny widths, batch 2 at 8x8 to 32x32, float32, eager and ours only; not timings")
    if on_gpu():
        torch.backends.cudnn.benchmark = True
    unknown = [n for n in networks if n not in NETWORKS]
    if unknown:
        raise SystemExit(f"unknown network(s) {unknown}; known: {sorted(NETWORKS)}")
    meta = environment()
    try:
        import torchvision

        meta["torchvision"] = torchvision.__version__
    except Exception as exc:  # noqa: BLE001
        meta["torchvision"] = f"not importable ({_error(exc)})"
    meta.update({"smoke": smoke, "graphs": any(v.endswith("graphs") for v in variants), "budget_s": budget_s,
                 "compile_mode": COMPILE_MODE, "variants": variants, "modes": modes, "batches": batches,
                 "optimizer": "SGD(lr=1e-3, momentum=0.9)",
                 "timer": "triton.testing.do_bench median" if on_gpu() else "one wall-clock call (interpreter)"})
    out = out or default_out(results_dir, meta, tag)
    out.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(b, n) for b in batches for n in networks]

    def echo(job: tuple[int, str], row: dict) -> None:
        batch, name = job
        ips = row["images_per_s"]
        print(f"{name:20s} b{batch:<4d} {row['mode']:5s} {row['variant']:13s} "
              f"{f'{ips:10.1f} img/s' if ips else '    failed    '}"
              f"{'  ' + row['error'] if row.get('error') else ''}", flush=True)

    stream_rows(jobs, lambda job: measure(job[1], job[0], modes, variants, smoke=smoke, dtype=dtype, rep_ms=rep_ms),
                out, meta, start=start, budget_s=budget_s, describe=lambda job: f"{job[1]} batch {job[0]}",
                unit="(network, batch) groups", echo=echo, write_each_row=True)
    return out


def load(results_dir: Path = RESULTS, smoke: bool = False) -> list[dict]:
    """The whole-network datasets, one per GPU (the files of one GPU merged, the newest row of each
    (network, batch, mode, variant) kept), or the smoke data."""
    folder = results_dir / "models" / ("smoke" if smoke else "")
    datasets = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if smoke:
        return datasets
    merged: dict[str, dict] = {}
    for data in sorted((d for d in datasets if d["meta"].get("timings")), key=lambda d: d["meta"]["date"]):
        into = merged.setdefault(data["meta"]["gpu"], {"meta": data["meta"], "rows": {}})
        into["meta"] = data["meta"]
        for row in data["rows"]:
            into["rows"][(row["network"], row["batch"], row["mode"], row["variant"])] = row
    return [{"meta": d["meta"], "rows": list(d["rows"].values())} for d in merged.values()]


def main(argv: list[str] | None = None) -> Path:
    """Command line; returns the JSON path."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", action="append", choices=sorted(NETWORKS), help="repeatable; default all")
    parser.add_argument("--batch", action="append", type=int, help=f"repeatable; default {BATCHES}")
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable; default both")
    parser.add_argument("--variant", action="append", choices=VARIANTS,
                        help="repeatable; default all (the two torch.compile ones take minutes each to compile)")
    parser.add_argument("--smoke", action="store_true", help="the tiny interpreter pass (always so without a GPU)")
    parser.add_argument("--budget-s", type=float, help="stop starting new (network, batch) groups after this")
    parser.add_argument("--rep-ms", type=float, default=200.0, help="timing budget per call (do_bench rep)")
    parser.add_argument("--tag", help="file name suffix: <gpu>-<tag>.json (runs of one GPU are merged)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="default bench/results")
    parser.add_argument("--out", type=Path, help="write the JSON to this file instead")
    args = parser.parse_args(argv)
    return run(args.network or list(NETWORKS), args.batch or list(BATCHES), args.mode or list(MODES),
               args.variant or list(VARIANTS),
               smoke=args.smoke, budget_s=args.budget_s, results_dir=args.results_dir, out=args.out, tag=args.tag,
               rep_ms=args.rep_ms)


if __name__ == "__main__":
    main()
