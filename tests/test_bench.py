"""The benchmark pipeline end to end: the smoke pass (interpreter on a machine without a GPU) writes its
data into a temporary folder, the plots and the targets table are drawn from it."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from bench import plot, report, run  # noqa: E402
from bench.suites import POOL_SMOKE, SCALING_SMOKE, SMOKE  # noqa: E402

META_FIELDS = {"date", "torch", "triton", "gpu", "driver", "timings", "smoke", "ceilings", "skipped"}
ROW_FIELDS = {"suite", "layer", "op", "kind", "dtype", "layout", "mode", "flop", "bytes", "intensity",
              "ours_ms", "eager_ms", "ours_tflops", "ours_gbps", "speedup_vs_eager", "frac_gemm", "frac_copy"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    results, plots = root / "results", root / "plots"
    data = run.main(["--smoke", "--dtype", "bf16", "--layout", "channels_last", "--results-dir", str(results)])
    return data, results, plots


def test_smoke_data(smoke: tuple[Path, Path, Path]) -> None:
    data_path, results, _ = smoke
    assert data_path == results / "smoke" / "smoke.json"
    data = json.loads(data_path.read_text())
    meta, rows = data["meta"], data["rows"]
    assert META_FIELDS <= set(meta)
    assert meta["smoke"] is True
    if not run.on_gpu():
        assert meta["timings"] is False
    assert meta["ceilings"]["gemm_tflops"] > 0 and meta["ceilings"]["copy_gbps"] > 0
    layers = {lay.name for table in (SMOKE, POOL_SMOKE, SCALING_SMOKE) for suite in table.values() for lay in suite}
    assert {r["layer"] for r in rows} == layers
    assert {r["mode"] for r in rows} == set(run.MODES)
    for row in rows:
        assert ROW_FIELDS <= set(row), row["layer"]
        assert row["ours_ms"] > 0 and row["eager_ms"] > 0, row
        assert "ours_error" not in row and "eager_error" not in row, row


def test_smoke_plots_and_targets(smoke: tuple[Path, Path, Path]) -> None:
    _, results, plots = smoke
    drawn = plot.main(["--smoke", "--results-dir", str(results), "--plots-dir", str(plots)])
    names = {p.name for p in drawn}
    for suite in ("resnet50", "resnet18", "depthwise", "transposed", "pooling"):
        assert any(n.endswith(f"_{suite}_speedup.png") for n in names), suite
    assert any(n.endswith("_roofline.png") for n in names)
    assert any(n.endswith("_scaling.png") for n in names)
    for path in drawn:
        assert path.parent == plots / "smoke" and path.stat().st_size > 1000
    table = report.main(["--smoke", "--results-dir", str(results), "--plots-dir", str(plots)]).read_text()
    verdicts = table.count("NOT TIMINGS |") if not run.on_gpu() else len(report.TARGETS)
    assert verdicts == len([t for t in report.TARGETS if not t.min_mbytes])  # (no smoke layer is 20 MB)


def test_targets_take_worst_layers_and_filter_by_size() -> None:
    """A ``worst`` target is judged on its slowest layer, ``min_mbytes`` keeps the big layers only and
    ``global_pool`` / ``not_global`` split global pooling from windowed pooling."""

    def row(layer: str, op: str, mbytes: float, frac: float, speedup: float, **kwargs) -> dict:
        return {"layer": layer, "suite": "pooling", "mode": "fwd", "dtype": "bf16", "layout": "channels_last",
                "op": op, "kwargs": kwargs, "bytes": mbytes * 1e6, "frac_copy": frac, "frac_copy_graph": frac,
                "speedup_vs_eager": speedup, "speedup_graph_vs_eager": speedup, "weight": []}

    rows = [row("big", "max_pool2d", 60, 0.7, 2.0, kernel_size=3), row("bigger", "max_pool2d", 90, 0.65, 2.0),
            row("small", "max_pool2d", 5, 0.1, 0.5, kernel_size=2),
            row("global", "adaptive_avg_pool2d", 30, 0.2, 0.9, output_size=1)]
    data = {"meta": {"timings": True}, "rows": rows}
    by_name = {r["target"].name: r for r in report.evaluate(data)}
    big = by_name["pooling fwd over 20 MB, worst fraction of copy bandwidth"]
    assert (big["layers"], big["value"], big["verdict"]) == (2, 0.65, "PASS")
    glob = by_name["global average pooling fwd, slowest vs cuDNN"]
    assert (glob["layers"], glob["value"], glob["verdict"]) == (1, 0.9, "FALL SHORT")


def test_no_gpu_data_yet(tmp_path: Path) -> None:
    assert plot.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "plots")]) == []
    table = report.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "plots")])
    assert "no GPU data yet" in table.read_text()


def test_host_times_are_measured_and_reported(tmp_path: Path, monkeypatch) -> None:
    """``bench.host`` measures each case recorded (and planned: the same launches as the first call), writes
    its JSON, and the report renders it with the verdicts against the targets."""
    from bench import host

    quick = functools.partial(host.recorded_us, reps=3, trials=1)
    monkeypatch.setattr(host, "recorded_us", quick)
    cases = (host.HostCase("tiny conv", "conv2d", ((2, 4, 6, 5), (8, 4, 3, 3), (8,)), {"padding": 1},
                           {"fwd": 1e6, "fwd+bwd": 1e-3}),
             host.HostCase("tiny max pool", "max_pool2d", ((2, 4, 6, 5),), {"kernel_size": 2}))
    out = host.run(tmp_path / "host" / "machine.json", cases)
    data = json.loads(out.read_text())
    assert [(r["case"], r["mode"]) for r in data["rows"]] == [(c.name, m) for c in cases for m in host.MODES]
    assert all(r["recorded_us"] > 0 for r in data["rows"]) and data["meta"]["autograd_floor_us"] > 0
    assert [r["meets_target"] for r in data["rows"][:2]] == [True, False]
    table = report.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "plots")]).read_text()
    assert "| tiny conv | fwd+bwd |" in table and "FALL SHORT" in table and "PASS" in table


def test_whole_networks_smoke_pass(tmp_path: Path) -> None:
    """``bench.models`` without a GPU: every network, both modes, eager and ours (the tiny widths, float32),
    each converted network agreeing with eager; then its plot and its table in the targets report."""
    from bench import models

    out = models.main(["--smoke", "--results-dir", str(tmp_path)])
    assert out == tmp_path / "models" / "smoke" / "smoke.json"
    data = json.loads(out.read_text())
    assert data["meta"]["smoke"] is True and data["meta"]["graphs"] is False
    rows = data["rows"]
    assert [(r["network"], r["mode"], r["variant"]) for r in rows] == [
        (n, m, v) for n in models.NETWORKS for m in models.MODES for v in models.SMOKE_VARIANTS]
    for row in rows:
        assert "error" not in row, row
        assert row["batch"] == 2 and row["dtype"] == "float32" and row["images_per_s"] > 0, row
        assert row["converted"] > 0 and row["kept"] == 0, row
        # outputs (infer) or first losses (train) against eager; a training-mode batch norm over two values per
        # channel (the last stages, 1x1) amplifies float32 rounding
        assert row["rel_err_vs_eager"] < (1e-4 if row["mode"] == "infer" else 3e-2), row
    assert {r["fused"] for r in rows if r["network"] == "unet"} == {14}
    if not run.on_gpu():
        assert data["meta"]["timings"] is False

    drawn = plot.main(["--smoke", "--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "plots")])
    assert [p.name for p in drawn] == ["none_models.png"] and drawn[0].stat().st_size > 1000
    table = report.main(["--smoke", "--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "plots")])
    text = table.read_text()
    assert "# Whole networks" in text and "not timings" in text
    assert all(f"| {n} | 2 | train |" in text for n in models.NETWORKS)
