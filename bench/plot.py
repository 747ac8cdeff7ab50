"""Draw the performance plots from benchmark data (no GPU needed): ``python -m bench.plot``.

Reads every ``bench/results/*.json`` written on a GPU (``"timings": true``) and draws, per GPU:

* ``<gpu>_<suite>_speedup.png``: speedup of our kernels over torch eager (cuDNN) per layer, one bar per
  (dtype, layout, mode), with the targets of ``bench.report`` as dashed lines; a black tick on a bar is the
  same speedup from CUDA-graph replays (GPU time, host work taken out), where measured;
* ``<gpu>_roofline.png``: every layer (bf16, channels_last when present) at its arithmetic intensity and
  achieved TFLOP/s, under the measured GEMM ceiling and copy-bandwidth slope;
* ``<gpu>_scaling.png``: time against batch of the scaling suite, ours against torch;
* ``<gpu>_models.png``: whole networks (``bench.models``, data under ``bench/results/models/``): images/s
  per network and variant, one panel per mode and batch.

``--smoke`` draws the interpreter smoke data instead, into ``plots/smoke/`` (those are not performance).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import models
from .report import TARGETS, load
from .run import PLOTS, RESULTS

NOT_TIMINGS = "NOT TIMINGS (interpreter smoke pass): "


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(meta: dict) -> str:
    slug = meta["gpu"].split(" (")[0].lower().replace(" ", "-")
    slug = slug + "-hopper-tma" if meta.get("hopper_tma") else slug
    return f"{slug}-{meta['tag']}" if meta.get("tag") else slug


def _title(what: str, meta: dict) -> str:
    path = ", conv2d's Hopper path on" if meta.get("hopper_tma") else ""
    title = (f"{what}{path}\non {meta['gpu']} (torch {meta['torch']}, triton {meta['triton']}, "
             f"{meta['date'][:10]})")
    return title if meta.get("timings") else NOT_TIMINGS + title


def draw_speedup(data: dict, out_dir: Path) -> list[Path]:
    """Per suite (the scaling suite excepted), speedup bars over torch eager with the target lines."""
    plt = _pyplot()
    meta, rows = data["meta"], [r for r in data["rows"] if r["suite"] != "scaling"]
    written = []
    for suite in sorted({r["suite"] for r in rows}):
        suite_rows = [r for r in rows if r["suite"] == suite]
        layers = list(dict.fromkeys(r["layer"] for r in suite_rows))
        variants = list(dict.fromkeys((r["dtype"], r["layout"], r["mode"]) for r in suite_rows))
        fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.5 * len(layers) * max(len(variants), 2))), 5.0))
        width = 0.8 / max(len(variants), 1)
        drawn_graph_label = False
        for i, variant in enumerate(variants):
            values = {r["layer"]: r.get("speedup_vs_eager") or 0.0 for r in suite_rows
                      if (r["dtype"], r["layout"], r["mode"]) == variant}
            xs = [j + i * width for j in range(len(layers))]
            ax.bar(xs, [values.get(layer, 0.0) for layer in layers], width, label=" ".join(variant))
            graph = {r["layer"]: r["speedup_graph_vs_eager"] for r in suite_rows
                     if (r["dtype"], r["layout"], r["mode"]) == variant and r.get("speedup_graph_vs_eager")}
            if graph:
                ax.scatter([x for x, layer in zip(xs, layers, strict=True) if layer in graph],
                           [graph[layer] for layer in layers if layer in graph], marker="_", s=120, color="black",
                           zorder=3, label=None if drawn_graph_label else "GPU time (CUDA graphs)")
                drawn_graph_label = True
        ax.axhline(1.0, color="black", linewidth=0.8)
        for t in TARGETS:
            if t.suite == suite and t.metric == "speedup_vs_eager":
                ax.axhline(t.threshold, color="red", linestyle={"fwd": "--", "bwd": "-."}.get(t.mode, ":"), linewidth=1,
                           label=f"target {t.mode} {t.dtype} {t.layout}: x{t.threshold:g}")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=30, ha="right")
        ax.set_ylabel("speedup over torch eager / cuDNN (higher is better)")
        ax.set_title(_title(suite, meta), fontsize=8)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = out_dir / f"{_slug(meta)}_{suite}_speedup.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def draw_roofline(data: dict, out_dir: Path) -> Path | None:
    """Every layer of one dtype and layout (bf16 channels_last when present) on the measured roofline."""
    plt = _pyplot()
    meta = data["meta"]
    rows = [r for r in data["rows"] if r.get("ours_tflops") and r["suite"] != "scaling"]
    if not rows:
        return None
    variants = list(dict.fromkeys((r["dtype"], r["layout"]) for r in rows))
    dtype, layout = ("bf16", "channels_last") if ("bf16", "channels_last") in variants else variants[0]
    rows = [r for r in rows if (r["dtype"], r["layout"]) == (dtype, layout)]
    gemm, copy = meta["ceilings"]["gemm_tflops"], meta["ceilings"]["copy_gbps"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    lo = min(r["intensity"] for r in rows) / 2
    hi = max(max(r["intensity"] for r in rows) * 2, 2 * gemm * 1e3 / copy)
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(gemm, copy * x / 1e3) for x in xs], color="black", linewidth=1.2,
            label=f"measured ceilings: bf16 GEMM {gemm:.3g} TFLOP/s, copy {copy:.3g} GB/s")
    markers = {"fwd": "o", "bwd": "s", "fwd+bwd": "^"}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, suite in enumerate(dict.fromkeys(r["suite"] for r in rows)):
        for mode, marker in markers.items():
            pts = [r for r in rows if r["suite"] == suite and r["mode"] == mode]
            if pts:
                ax.scatter([r["intensity"] for r in pts], [r["ours_tflops"] for r in pts], marker=marker,
                           color=colors[i % len(colors)], s=22, label=f"{suite} {mode}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop / compulsory byte)")
    ax.set_ylabel("achieved TFLOP/s (ours)")
    ax.set_title(_title(f"roofline, {dtype} {layout}", meta), fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = out_dir / f"{_slug(meta)}_roofline.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_scaling(data: dict, out_dir: Path) -> Path | None:
    """Time against batch for each base layer of the scaling suite (names ``<base>_b<batch>``), with our
    host time per call two ways: launches recorded (``ours_host``, dash-dotted) and, on a GPU, as called minus
    the CUDA-graph replay (``ours_overhead``, sparse dots). Where the GPU time meets them, the layer is
    launch-bound."""
    plt = _pyplot()
    meta = data["meta"]
    rows = [r for r in data["rows"] if r["suite"] == "scaling"]
    if not rows:
        return None
    bases = list(dict.fromkeys(r["layer"].rsplit("_b", 1)[0] for r in rows))
    fig, axes = plt.subplots(1, len(bases), figsize=(5.5 * len(bases), 4.2), squeeze=False)
    styles = {"ours": "-", "eager": "--", "compile": ":", "ours_host": "-.", "ours_overhead": (0, (1, 3))}
    for ax, base in zip(axes[0], bases, strict=True):
        mine = [r for r in rows if r["layer"].rsplit("_b", 1)[0] == base]
        for variant in dict.fromkeys((r["dtype"], r["layout"], r["mode"]) for r in mine):
            pts = sorted((r for r in mine if (r["dtype"], r["layout"], r["mode"]) == variant),
                         key=lambda r: r["input"][0])
            for impl, style in styles.items():
                xy = [(r["input"][0], r[f"{impl}_ms"]) for r in pts if r.get(f"{impl}_ms")]
                if xy:
                    ax.plot(*zip(*xy, strict=True), linestyle=style, marker="o", markersize=3,
                            label=f"{impl} {' '.join(variant)}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("time (ms, lower is better)")
        ax.set_title(_title(base, meta), fontsize=7)
        ax.legend(fontsize=5)
    fig.tight_layout()
    path = out_dir / f"{_slug(meta)}_scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_models(data: dict, out_dir: Path) -> Path | None:
    """Images/s of each network (bars grouped by network, one per variant), a panel per (mode, batch)."""
    plt = _pyplot()
    meta, rows = data["meta"], data["rows"]
    if not rows:
        return None
    panels = sorted({(r["mode"], r["batch"]) for r in rows}, key=lambda p: (models.MODES.index(p[0]), p[1]))
    networks = [n for n in models.NETWORKS if any(r["network"] == n for r in rows)]
    variants = [v for v in models.VARIANTS if any(r["variant"] == v for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 1.1 * len(networks) * len(panels) + 2), 4.8),
                             squeeze=False)
    width = 0.8 / max(len(variants), 1)
    for ax, (mode, batch) in zip(axes[0], panels, strict=True):
        for i, variant in enumerate(variants):
            ips = {r["network"]: r.get("images_per_s") or 0.0 for r in rows
                   if (r["mode"], r["batch"], r["variant"]) == (mode, batch, variant)}
            ax.bar([j + i * width for j in range(len(networks))], [ips.get(n, 0.0) for n in networks], width,
                   label=variant)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(networks))], networks, rotation=30, ha="right",
                      fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("images/s (higher is better)")
        ax.set_title(f"{mode}, batch {batch}", fontsize=8)
        ax.legend(fontsize=6)
    dtype = rows[0].get("dtype", "")
    fig.suptitle(_title(f"whole networks, {dtype} channels_last", meta), fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{_slug(meta)}_models.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(data: dict, out_dir: Path) -> list[Path]:
    """Every plot of one dataset; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = draw_speedup(data, out_dir)
    written += [p for p in (draw_roofline(data, out_dir), draw_scaling(data, out_dir)) if p]
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    """Command line; returns the paths written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="draw the interpreter smoke data")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="data to read (default bench/results)")
    parser.add_argument("--plots-dir", type=Path, default=PLOTS, help="where PNGs go (default bench/plots)")
    args = parser.parse_args(argv)
    datasets = load(args.results_dir, args.smoke)
    out_dir = args.plots_dir / "smoke" if args.smoke else args.plots_dir
    written = []
    for data in datasets:
        written += draw(data, out_dir)
    for data in models.load(args.results_dir, args.smoke):
        out_dir.mkdir(parents=True, exist_ok=True)
        written += [p for p in (draw_models(data, out_dir),) if p]
    if not written:
        print("no GPU benchmark data under the results folder yet" if not args.smoke
              else "no smoke data: run python -m bench.run first")
    for path in written:
        print(f"drew {path}")
    return written


if __name__ == "__main__":
    main()
