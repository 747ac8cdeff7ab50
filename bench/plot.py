"""Draw the performance plots from benchmark data (no GPU needed): ``python -m bench.plot``.

Reads every ``bench/results/*.json`` written on a GPU (``"timings": true``) and draws, per GPU and suite, the
speedup of our kernels over torch per layer, one bar group per (dtype, layout, mode). ``--smoke`` draws the
interpreter smoke data instead, into ``bench/plots/smoke/`` (those bars are not performance).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .run import RESULTS

PLOTS = Path(__file__).resolve().parent / "plots"


def load(smoke: bool) -> list[dict]:
    folder = RESULTS / "smoke" if smoke else RESULTS
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def draw(data: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, rows = data["meta"], data["rows"]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suite in sorted({r["suite"] for r in rows}):
        suite_rows = [r for r in rows if r["suite"] == suite]
        layers = list(dict.fromkeys(r["layer"] for r in suite_rows))
        variants = list(dict.fromkeys((r["dtype"], r["layout"], r["mode"]) for r in suite_rows))
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(layers)), 4))
        width = 0.8 / max(len(variants), 1)
        for i, variant in enumerate(variants):
            values = {r["layer"]: r["speedup_vs_torch"] for r in suite_rows
                      if (r["dtype"], r["layout"], r["mode"]) == variant}
            xs = [j + i * width for j in range(len(layers))]
            ax.bar(xs, [values.get(layer, 0.0) for layer in layers], width, label=" ".join(variant))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers, rotation=30, ha="right")
        ax.set_ylabel("speedup over torch (higher is better)")
        title = f"{suite} on {meta['gpu']} (torch {meta['torch']}, triton {meta['triton']}, {meta['date'][:10]})"
        if not meta.get("timings"):
            title = "NOT TIMINGS (interpreter smoke pass): " + title
        ax.set_title(title, fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        gpu = meta["gpu"].split(" (")[0].lower().replace(" ", "-")
        path = out_dir / f"{gpu}_{suite}_speedup.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="draw the interpreter smoke data")
    args = parser.parse_args(argv)
    datasets = load(args.smoke)
    if not datasets:
        print("no GPU benchmark data committed under bench/results/ yet" if not args.smoke
              else "no smoke data: run python -m bench.run first")
        return []
    written = []
    for data in datasets:
        written += draw(data, PLOTS / "smoke" if args.smoke else PLOTS)
    for path in written:
        print(f"drew {path}")
    return written


if __name__ == "__main__":
    main()
