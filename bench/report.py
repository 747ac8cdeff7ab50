"""The performance targets, checked against committed GPU data: ``python -m bench.report``.

Prints each target with the measured value and PASS / FALL SHORT, per GPU data file, and writes the same as a
markdown table to ``bench/plots/targets.md``, followed by the host-time table of ``bench.host``'s data
(``bench/results/host/``), and by the whole networks' images/s of ``bench.models``
(``bench/results/models/``). With no GPU data it says "no GPU data yet". ``--smoke`` evaluates
the interpreter smoke data instead (into ``plots/smoke/``), every verdict "NOT TIMINGS".
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from . import models, traffic
from .run import PLOTS, RESULTS, geomean


@dataclass(frozen=True)
class Target:
    """A geometric mean (``worst``: the minimum) of ``metric`` over the rows of ``suite`` in ``mode`` (bf16,
    channels_last), at least ``threshold``; ``stride1_3x3`` keeps the stride-1 3x3 layers only,
    ``min_mbytes`` the layers moving more than that many MB per pass, ``global_pool`` the global (1x1
    output) pooling layers only and ``not_global`` the others."""

    name: str
    suite: str
    mode: str
    metric: str
    threshold: float
    stride1_3x3: bool = False
    dtype: str = "bf16"
    layout: str = "channels_last"
    worst: bool = False
    min_mbytes: float = 0.0
    global_pool: bool = False
    not_global: bool = False


TARGETS: tuple[Target, ...] = (
    Target("dense conv fwd, ResNet-50, speedup over cuDNN", "resnet50", "fwd", "speedup_vs_eager", 1.1),
    Target("dense conv fwd, ResNet-50 stride-1 3x3, fraction of GEMM rate", "resnet50", "fwd", "frac_gemm", 0.75,
           stride1_3x3=True),
    Target("dense conv fwd+bwd, ResNet-50, speedup over cuDNN", "resnet50", "fwd+bwd", "speedup_vs_eager", 1.0),
    Target("depthwise fwd+bwd, speedup over cuDNN", "depthwise", "fwd+bwd", "speedup_vs_eager", 2.0),
    Target("depthwise fwd+bwd, fraction of copy bandwidth", "depthwise", "fwd+bwd", "frac_copy", 0.8),
    Target("transposed fwd, speedup over cuDNN", "transposed", "fwd", "speedup_vs_eager", 1.3),
    Target("pooling fwd+bwd, fraction of copy bandwidth", "pooling", "fwd+bwd", "frac_copy", 0.8),
    # depthwise and pooling at the memory roofline: the roofline floor is max(bytes / copy, flop / fp32 FMA rate)
    Target("depthwise fwd+bwd, speedup over cuDNN (roofline work)", "depthwise", "fwd+bwd", "speedup_vs_eager", 1.5),
    Target("depthwise fwd+bwd, slowest layer vs cuDNN", "depthwise", "fwd+bwd", "speedup_vs_eager", 1.0,
           worst=True),
    Target("depthwise fwd+bwd, worst fraction of the roofline floor", "depthwise", "fwd+bwd", "frac_floor", 0.6,
           worst=True),
    Target("pooling fwd over 20 MB, worst fraction of copy bandwidth", "pooling", "fwd", "frac_copy", 0.6,
           worst=True, min_mbytes=20, not_global=True),
    Target("pooling bwd over 20 MB, worst fraction of copy bandwidth", "pooling", "bwd", "frac_copy", 0.6,
           worst=True, min_mbytes=20, not_global=True),
    Target("global average pooling fwd, slowest vs cuDNN", "pooling", "fwd", "speedup_vs_eager", 1.0,
           worst=True, global_pool=True),
)


def _is_global(row: dict) -> bool:
    size = row["kwargs"].get("output_size")
    return row["op"] == "adaptive_avg_pool2d" and size in (1, [1, 1], (1, 1))


def selected(target: Target, rows: list[dict]) -> list[dict]:
    """The rows a target is judged on."""
    picked = [r for r in rows if (r["suite"], r["mode"], r["dtype"], r["layout"])
              == (target.suite, target.mode, target.dtype, target.layout)]
    if target.stride1_3x3:
        picked = [r for r in picked if r["weight"][-2:] == [3, 3] and r["kwargs"].get("stride", 1) == 1]
    if target.min_mbytes:  # (bytes of the row's passes together; one pass per pooling mode but fwd+bwd)
        picked = [r for r in picked if r["bytes"] > target.min_mbytes * 1e6]
    if target.global_pool or target.not_global:
        picked = [r for r in picked if _is_global(r) == target.global_pool]
    return picked


def graph_metric(metric: str) -> str:
    """The name of ``metric`` computed from the CUDA-graph timings (``speedup_vs_eager`` ->
    ``speedup_graph_vs_eager``, ``frac_copy`` -> ``frac_copy_graph``)."""
    return metric.replace("speedup_vs_", "speedup_graph_vs_") if metric.startswith("speedup") else metric + "_graph"


def _verdict(value: float | None, threshold: float, timings: bool) -> str:
    if value is None:
        return "NO DATA"
    if not timings:
        return "NOT TIMINGS"
    return "PASS" if value >= threshold else "FALL SHORT"


def has_targets(data: dict) -> bool:
    """Whether any target is set on a suite of the dataset (the 1-D and 3-D suites have none yet)."""
    suites = {r["suite"] for r in data["rows"]}
    return not suites or any(t.suite in suites for t in TARGETS)


def evaluate(data: dict) -> list[dict]:
    """One result per target: measured value (None without rows), layer count, verdict; and the same from
    the CUDA-graph timings (``graph_value``, ``graph_verdict``: GPU time, the host's launch work taken out)."""
    timings = bool(data["meta"].get("timings"))
    out = []
    for t in TARGETS:
        rows = selected(t, data["rows"])
        values = [r[t.metric] for r in rows if r.get(t.metric)]
        graph_values = [r[graph_metric(t.metric)] for r in rows if r.get(graph_metric(t.metric))]
        total = min if t.worst else geomean
        value = total(values) if values else None
        graph_value = total(graph_values) if graph_values else None
        out.append({"target": t, "value": value, "layers": len(values),
                    "verdict": _verdict(value, t.threshold, timings), "graph_value": graph_value,
                    "graph_verdict": _verdict(graph_value, t.threshold, timings)})
    return out


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if metric.startswith("speedup") else f"{100 * value:.0f}%"


def markdown(datasets: list[dict]) -> str:
    """The targets table of every dataset, markdown."""
    if not datasets:
        return "# Performance targets\n\nno GPU data yet\n"
    parts = ["# Performance targets", "",
             "Geometric mean over the suite's layers (the minimum for the worst-layer targets), bf16, "
             "channels_last; baseline torch eager (cuDNN, `cudnn.benchmark=True`); ceilings measured in the same "
             "run (bf16 GEMM, fp32 FMA, device copy). "
             "*measured*: `triton.testing.do_bench` of each call as a user makes it (host work included: a "
             "layer whose GPU time is below our Python launch work is timed at that work); *GPU time*: the same "
             "calls captured in a CUDA graph and replayed (`do_bench_cudagraph`), for ours and torch alike, so the "
             "kernels are compared without the host.", ""]
    for data in datasets:
        meta = data["meta"]
        c = meta["ceilings"]
        path = ", conv2d's Hopper path on (KERNELS_HOPPER_TMA=1)" if meta.get("hopper_tma") else ""
        tag = f", {meta['tag']}" if meta.get("tag") else ""
        parts += [f"## {meta['gpu']}{path}{tag} ({meta['date'][:10]}, torch {meta['torch']}, triton "
                  f"{meta['triton']})", "",
                  f"Measured ceilings: GEMM {c['gemm_tflops']:.1f} TFLOP/s, copy {c['copy_gbps']:.0f} GB/s"
                  + ("" if meta.get("timings") else " (**not timings: interpreter smoke pass**)"), ""]
        if not has_targets(data):
            parts += [f"No targets for its suites ({', '.join(dict.fromkeys(r['suite'] for r in data['rows']))}): "
                      "see their plots.", ""]
            continue
        parts += ["| target | required | measured | layers | verdict | GPU time (graphs) | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for res in evaluate(data):
            t = res["target"]
            parts.append(f"| {t.name} | {_value(t.metric, t.threshold)} | {_value(t.metric, res['value'])} | "
                         f"{res['layers']} | {res['verdict']} | {_value(t.metric, res['graph_value'])} | "
                         f"{res['graph_verdict']} |")
        parts.append("")
    return "\n".join(parts)


def host_markdown(datasets: list[dict]) -> str:
    """The host-time table of every ``bench.host`` dataset, markdown ("" when there is none)."""
    if not datasets:
        return ""
    parts = ["# Host time per call", "",
             "`python -m bench.host`: bf16 channels_last, the call as a user makes it. *recorded*: its wall time "
             "with our launches recorded instead of run (the package's Python; median, best of 5 trials), judged "
             "against the host-path targets. *floor*: the same call's floor with the same tensors (inference: the "
             "output's allocation; training: a forward and backward through a Python `torch.autograd.Function` "
             "that saves the inputs and allocates the output and the gradients), on the same machine. On a GPU: "
             "the call as made minus the same call replayed from a CUDA graph, for ours and torch (cuDNN).", ""]
    for data in datasets:
        meta = data["meta"]
        parts += [f"## {meta['cpu']}, {meta['gpu']} ({meta['date'][:10]}, torch {meta['torch']}, triton "
                  f"{meta['triton']})", "", f"autograd floor (fwd+bwd): {meta['autograd_floor_us']:.1f} µs", "",
                  "| call | mode | recorded (µs) | floor (µs) | recorded / floor | target (µs) | verdict | "
                  "GPU: ours as called − graph (µs) | GPU: torch as called − graph (µs) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in data["rows"]:
            target = "-" if r["target_us"] is None else f"≤ {r['target_us']:.0f}"
            verdict = "-" if r["meets_target"] is None else ("PASS" if r["meets_target"] else "FALL SHORT")
            gpu = [f"{r[k]:.1f}" if r.get(k) is not None else "-" for k in ("ours_overhead_us", "eager_overhead_us")]
            floor = (f"{r['floor_us']:.1f} | {r['vs_floor']:.2f}x" if r.get("floor_us") is not None
                     else "- | -")  # (data from before the per-call floor)
            parts.append(f"| {r['case']} | {r['mode']} | {r['recorded_us']:.1f} | {floor} | {target} | {verdict} | "
                         f"{gpu[0]} | {gpu[1]} |")
        parts.append("")
    return "\n".join(parts)


def _ips(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def models_markdown(datasets: list[dict]) -> str:
    """The images/s table of every ``bench.models`` dataset, markdown ("" when there is none)."""
    if not datasets:
        return ""
    parts = ["# Whole networks", "",
             "`python -m bench.models`: images/s of each network converted by `kernels.convert(model, "
             "fuse_activations=True)` (*ours*) against the torch model (*eager*: cuDNN), each also under "
             "`torch.compile(mode=\"max-autotune\")` and captured in one CUDA graph (*graphs*); *infer*: eval mode "
             "without autograd, *train*: forward, loss, backward and SGD step. *ours / eager*: the ratio of "
             "images/s. A dash: not measured, or failed (the JSON has the error).", ""]
    for data in datasets:
        meta, rows = data["meta"], data["rows"]
        variants = [v for v in models.VARIANTS if any(r["variant"] == v for r in rows)]
        dtype = rows[0].get("dtype", "") if rows else ""
        parts += [f"## {meta['gpu']} ({meta['date'][:10]}, torch {meta['torch']}, torchvision "
                  f"{meta.get('torchvision', '?')}, triton {meta['triton']}; {dtype} channels_last)"
                  + ("" if meta.get("timings") else " — **not timings: interpreter smoke pass**"), "",
                  "| network | batch | mode | " + " | ".join(variants) + " | ours / eager |",
                  "|---|---|---|" + "---|" * len(variants) + "---|"]
        keys = dict.fromkeys((r["network"], r["batch"], r["mode"]) for r in rows)
        order = sorted(keys, key=lambda k: (k[1], list(models.NETWORKS).index(k[0]) if k[0] in models.NETWORKS
                                            else len(models.NETWORKS), models.MODES.index(k[2])))
        for network, batch, mode in order:
            ips = {r["variant"]: r.get("images_per_s") for r in rows
                   if (r["network"], r["batch"], r["mode"]) == (network, batch, mode)}
            ratio = ips["ours"] / ips["eager"] if ips.get("ours") and ips.get("eager") else None
            parts.append(f"| {network} | {batch} | {mode} | " + " | ".join(_ips(ips.get(v)) for v in variants)
                         + f" | {'-' if ratio is None else f'{ratio:.2f}x'} |")
        parts.append("")
    return "\n".join(parts)


def load_host(results_dir: Path) -> list[dict]:
    """The ``bench.host`` datasets under ``results_dir/host``."""
    return [json.loads(p.read_text()) for p in sorted((results_dir / "host").glob("*.json"))]


def load(results_dir: Path, smoke: bool) -> list[dict]:
    """The datasets of ``results_dir`` (GPU timings only) or of its ``smoke/`` folder."""
    folder = results_dir / "smoke" if smoke else results_dir
    datasets = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [d for d in datasets if smoke or d["meta"].get("timings")]


def main(argv: list[str] | None = None) -> Path:
    """Command line; returns the path of the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="evaluate the interpreter smoke data")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--plots-dir", type=Path, default=PLOTS)
    args = parser.parse_args(argv)
    datasets = load(args.results_dir, args.smoke)
    if not datasets:
        print("no GPU data yet" if not args.smoke else "no smoke data: run python -m bench.run first")
    for data in datasets:
        print(f"{data['meta']['gpu']} ({data['meta']['date'][:10]}):")
        for res in evaluate(data) if has_targets(data) else []:
            t = res["target"]
            print(f"  {t.name:62s} >= {_value(t.metric, t.threshold):>6s}  measured "
                  f"{_value(t.metric, res['value']):>6s}  {res['verdict']:10s}  GPU time (graphs) "
                  f"{_value(t.metric, res['graph_value']):>6s}  {res['graph_verdict']}")
    out = (args.plots_dir / "smoke" if args.smoke else args.plots_dir) / "targets.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    host = "" if args.smoke else host_markdown(load_host(args.results_dir))
    whole = models_markdown(models.load(args.results_dir, args.smoke))
    moved = "" if args.smoke else traffic.markdown(traffic.load(args.results_dir / traffic.TRAFFIC.name))
    out.write_text(markdown(datasets) + "".join("\n" + part for part in (host, whole, moved) if part))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
