"""The benchmark pipeline end to end: the smoke pass (interpreter on a machine without a GPU) writes its
data into a temporary folder, the plots and the targets table are drawn from it; the suites' work counts
against hand-computed values; the streaming loop the benchmarks share."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")

import kernels  # noqa: E402
from bench import plot, report, run  # noqa: E402
from bench.loop import stream_rows  # noqa: E402
from kernels.autotune.suites import SMOKE_3D, SUITES_1D, SUITES_3D, Layer  # noqa: E402

META_FIELDS = {"date", "torch", "triton", "gpu", "driver", "timings", "smoke", "ceilings", "skipped"}
ROW_FIELDS = {"suite", "layer", "op", "kind", "dtype", "layout", "mode", "flop", "bytes", "intensity",
              "ours_ms", "eager_ms", "ours_tflops", "ours_gbps", "speedup_vs_eager", "frac_gemm", "frac_copy"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    results, plots = root / "results", root / "plots"
    data = run.main(["--smoke", "--dtype", "bf16", "--layout", "channels_last", "--results-dir", str(results)])
    return data, results, plots


def _cpu_gap(row: dict, impl: str) -> bool:
    """Without a GPU, a torch CPU kernel missing in bf16 (avg_pool3d's) fails eager: allowed, and ours failing
    the same way too."""
    error = row.get(f"{impl}_error", "")
    return not run.on_gpu() and error.startswith("NotImplementedError") and "BFloat16" in error


def test_smoke_data(smoke: tuple[Path, Path, Path]) -> None:
    """Every layer of every suite whose ops ``kernels`` has (2-D and 1-D; 3-D once its ops exist), every mode,
    with the work columns and, for depthwise and pooling rows, the roofline floor."""
    data_path, results, _ = smoke
    assert data_path == results / "smoke" / "smoke.json"
    data = json.loads(data_path.read_text())
    meta, rows = data["meta"], data["rows"]
    assert META_FIELDS <= set(meta)
    assert meta["smoke"] is True
    if not run.on_gpu():
        assert meta["timings"] is False
    assert meta["ceilings"]["gemm_tflops"] > 0 and meta["ceilings"]["copy_gbps"] > 0
    table = run.registry(smoke=True)
    suites = run.runnable_suites(smoke=True)
    assert {"wav2vec2", "mamba", "hifigan", "pool1d"} <= set(suites)
    assert meta["suites_without_ops"] == [s for s in table if s not in suites]
    assert {r["layer"] for r in rows} == {lay.name for s in suites for lay in table[s]}
    assert {r["mode"] for r in rows} == set(run.MODES)
    for row in rows:
        assert ROW_FIELDS <= set(row), row["layer"]
        assert row["flop"] > 0 and row["bytes"] > 0, row
        assert (row["floor_ms"] is not None) == (row["kind"] in ("depthwise", "pool")), row
        for impl in ("ours", "eager"):
            assert _cpu_gap(row, impl) or (f"{impl}_error" not in row and row[f"{impl}_ms"] > 0), row


def test_smoke_plots_and_targets(smoke: tuple[Path, Path, Path]) -> None:
    _, results, plots = smoke
    drawn = plot.main(["--smoke", "--results-dir", str(results), "--plots-dir", str(plots)])
    names = {p.name for p in drawn}
    for suite in ("resnet50", "resnet18", "depthwise", "transposed", "pooling", "wav2vec2", "mamba", "hifigan",
                  "pool1d"):
        assert any(n.endswith(f"_{suite}_speedup.png") for n in names), suite
    assert any(n.endswith("_roofline.png") for n in names)
    assert any(n.endswith("_scaling.png") for n in names)
    for path in drawn:
        assert path.parent == plots / "smoke" and path.stat().st_size > 1000
    table = report.main(["--smoke", "--results-dir", str(results), "--plots-dir", str(plots)]).read_text()
    verdicts = table.count("NOT TIMINGS |") if not run.on_gpu() else len(report.TARGETS)
    assert verdicts == len([t for t in report.TARGETS if not t.min_mbytes])  # (no smoke layer is 20 MB)


def test_smoke_data_3d(smoke: tuple[Path, Path, Path]) -> None:
    """Once ``kernels`` has the 3-D ops, the smoke pass covers the 3-D suites: every layer, ours and eager."""
    missing = run.missing_ops([lay for layers in SMOKE_3D.values() for lay in layers])
    if missing:
        pytest.skip(f"kernels has no {', '.join(missing)} yet")
    rows = [r for r in json.loads(smoke[0].read_text())["rows"] if r["suite"] in SMOKE_3D]
    assert {r["layer"] for r in rows} == {lay.name for layers in SMOKE_3D.values() for lay in layers}
    assert {r["kind"] for r in rows} == {"dense", "transposed", "pool"}
    for row in rows:
        assert row["flop"] > 0 and (row["floor_ms"] is not None) == (row["kind"] == "pool"), row
        for impl in ("ours", "eager"):
            assert _cpu_gap(row, impl) or (f"{impl}_error" not in row and row[f"{impl}_ms"] > 0), row


def _layer(table: dict[str, list[Layer]], suite: str, name: str) -> Layer:
    return next(lay for lay in table[suite] if lay.name == name)


# (suite, layer) -> (flop, bf16 bytes) of one pass, by hand: convolutions 2·N·K·C/g·taps·outputs and
# input + weight + output elements; pooling window elements per output and input + output elements.
HAND_COUNTS_1D = {
    # (8, 512, 3199) k3 s2 -> (8, 512, 1599)
    ("wav2vec2", "w2v_conv1_k3s2_3199"): (2 * 8 * 512 * 512 * 3 * 1599,
                                          2 * (8 * 512 * 3199 + 512 * 512 * 3 + 8 * 512 * 1599)),
    # depthwise (8, 1536, 2048) k4 padding 3 -> (8, 1536, 2051)
    ("mamba", "mamba130m_dw4_L2048"): (2 * 8 * 1536 * 4 * 2051, 2 * (8 * 1536 * 2048 + 1536 * 4 + 8 * 1536 * 2051)),
    # transposed (16, 512, 32) k16 s8 p4 -> (16, 256, 256): the convolution it transposes has output (16, 512, 32)
    ("hifigan", "hifigan_up1_k16s8"): (2 * 16 * 512 * 256 * 16 * 32,
                                       2 * (16 * 512 * 32 + 512 * 256 * 16 + 16 * 256 * 256)),
    # max k4 on (32, 128, 7981) -> 1995
    ("pool1d", "m5_max4_7981"): (32 * 128 * 1995 * 4, 2 * 32 * 128 * (7981 + 1995)),
    # avg k4 s2 p2 on (16, 1, 8192) -> (8192 + 4 - 4) // 2 + 1 = 4097
    ("pool1d", "hifigan_msd_avg4s2_8192"): (16 * 4097 * 4, 2 * 16 * (8192 + 4097)),
}
HAND_COUNTS_3D = {
    # (8, 3, 16, 112, 112) 3x7x7 s(1, 2, 2) p(1, 3, 3) -> (8, 64, 16, 56, 56)
    ("r3d18", "stem_3x7x7s122"): (2 * 8 * 64 * 3 * 147 * 16 * 56 * 56,
                                  2 * (8 * 3 * 16 * 112 * 112 + 64 * 3 * 147 + 8 * 64 * 16 * 56 * 56)),
    # 1x1x1 s2 (8, 64, 16, 56, 56) -> (8, 128, 8, 28, 28)
    ("r3d18", "layer2_down_1x1x1s2"): (2 * 8 * 128 * 64 * 8 * 28 * 28,
                                       2 * (8 * 64 * 16 * 56 * 56 + 128 * 64 + 8 * 128 * 8 * 28 * 28)),
    # transposed 2x2x2 s2 (2, 64, 32^3) -> (2, 32, 64^3)
    ("unet3d", "up1_2x2x2s2_32"): (2 * 2 * 64 * 32 * 8 * 32**3, 2 * (2 * 64 * 32**3 + 64 * 32 * 8 + 2 * 32 * 64**3)),
    # max 1x2x2 on (8, 64, 16, 112, 112) -> (8, 64, 16, 56, 56)
    ("pool3d", "c3d_max1x2x2_112"): (8 * 64 * 16 * 56 * 56 * 4, 2 * 8 * 64 * (16 * 112 * 112 + 16 * 56 * 56)),
    # avg 2x7x7 stride 1 on (8, 1024, 8, 7, 7) -> (8, 1024, 7, 1, 1)
    ("pool3d", "i3d_avg2x7x7_7"): (8 * 1024 * 7 * 98, 2 * 8 * 1024 * (8 * 49 + 7)),
    # global average of (8, 512, 2, 7, 7)
    ("pool3d", "r3d18_global_avg_7"): (8 * 512 * 98, 2 * 8 * 512 * (98 + 1)),
}


@pytest.mark.parametrize(("table", "counts"), [(SUITES_1D, HAND_COUNTS_1D), (SUITES_3D, HAND_COUNTS_3D)],
                         ids=["1d", "3d"])
def test_work_of_the_1d_and_3d_suites(table: dict[str, list[Layer]], counts: dict) -> None:
    for (suite, name), (flop, nbytes) in counts.items():
        layer = _layer(table, suite, name)
        assert run.work(layer, torch.bfloat16) == (flop, nbytes), name
        assert run.work(layer, torch.float32) == (flop, 2 * nbytes), name
    assert run.kind(_layer(SUITES_1D, "mamba", "mamba130m_dw4_L2048")) == "depthwise"
    assert run.kind(_layer(SUITES_3D, "unet3d", "up1_2x2x2s2_32")) == "transposed"
    assert run.passes(_layer(SUITES_3D, "r3d18", "stem_3x7x7s122"), "fwd+bwd") == 3
    assert run.passes(_layer(SUITES_1D, "pool1d", "m5_max4_7981"), "fwd+bwd") == 2


def test_wav2vec2_lengths_and_every_suite_layer_matches_torch() -> None:
    """The encoder's lengths chain (16000 samples to 49 frames), and every 1-D and 3-D layer's output is the
    shape torch gives (on the meta device: nothing computed)."""
    lengths = [lay.input_shape[-1] for lay in SUITES_1D["wav2vec2"]]
    assert lengths == [16000, 3199, 1599, 799, 399, 199, 99]
    for table in (SUITES_1D, SUITES_3D):
        for layer in (lay for layers in table.values() for lay in layers):
            args = [torch.empty(shape, device="meta") for shape in (layer.input_shape, layer.weight_shape) if shape]
            out = getattr(torch.nn.functional, layer.op)(*args, **layer.kwargs)
            if run.kind(layer) != "pool":
                x_elements, _, y_elements = run.conv_sizes(run.conv_geometry(layer))
                transposed = layer.op.startswith("conv_transpose")
                assert out.numel() == (x_elements if transposed else y_elements), layer.name


def test_nd_pool_work_agrees_with_the_2d_helpers() -> None:
    """:func:`bench.run.pool_work` (any rank; the 3-D pooling rows) counts every 2-D pooling layer as
    ``kernels.pool_shapes`` does."""
    for layer in (lay for layers in run.registry().values() for lay in layers if lay.op.endswith("pool2d")):
        assert run.pool_work(layer.input_shape, layer.op, layer.kwargs, 2) == run.work(layer, torch.bfloat16)


def test_layouts_put_channels_innermost() -> None:
    x3, x4, x5 = (run.in_layout(torch.randn(shape), "channels_last") for shape in
                  ((2, 3, 5), (2, 3, 4, 5), (2, 3, 2, 4, 5)))
    assert x3.shape == (2, 3, 5) and x3.stride() == (15, 1, 3)
    assert x4.is_contiguous(memory_format=torch.channels_last)
    assert x5.is_contiguous(memory_format=torch.channels_last_3d)
    assert run.in_layout(torch.randn(2, 3, 5), "nchw").is_contiguous()


def test_a_missing_op_is_left_out_by_default_and_recorded_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ops are looked up on ``kernels`` when a layer runs: without one, its suites are not run by default,
    and a layer of it records our AttributeError while torch's side is measured."""
    monkeypatch.delattr(kernels, "max_pool1d")
    assert run.missing_ops(run.registry(smoke=True)["pool1d"]) == ["max_pool1d"]
    assert "pool1d" not in run.runnable_suites(smoke=True) and "mamba" in run.runnable_suites(smoke=True)
    layer = Layer("tiny_max", "max_pool1d", (1, 2, 8), (), {"kernel_size": 2})
    (row,) = run.measure(layer, "fp32", "channels_last", ["fwd"], False, {"gemm_tflops": 1.0, "copy_gbps": 1.0})
    assert row["ours_ms"] is None and row["ours_error"].startswith("AttributeError") and "max_pool1d" in row[
        "ours_error"]
    assert row["eager_ms"] > 0 and "eager_error" not in row


class _Clock:
    """A clock that each job moves on by ten seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_shared_loop_stops_at_the_budget_and_keeps_the_rows(tmp_path: Path) -> None:
    clock = _Clock()

    def measure(job: str):
        for i in range(2):
            yield {"job": job, "i": i}
        clock.now += 10.0

    out = tmp_path / "data.json"
    rows = stream_rows(["a", "b", "c"], measure, out, {"gpu": "none"}, start=0.0, budget_s=15.0,
                       describe=lambda job: f"job {job}", unit="jobs", clock=clock)
    data = json.loads(out.read_text())
    assert rows == data["rows"] == [{"job": j, "i": i} for j in "ab" for i in range(2)]
    assert data["meta"] == {"gpu": "none", "interrupted": False, "skipped": ["job c"], "elapsed_s": 20.0}


@pytest.mark.parametrize("each_row", [False, True])
def test_the_shared_loop_writes_partial_rows_when_interrupted(tmp_path: Path, each_row: bool) -> None:
    """An interrupt in the middle of a job writes every row measured so far (the job's own too), marked
    interrupted; between rows the file holds what was written after each job (or each row)."""
    out = tmp_path / "data.json"
    seen: list[list[dict]] = []

    def measure(job: str):
        yield {"job": job, "i": 0}
        seen.append(json.loads(out.read_text())["rows"] if out.exists() else [])
        if job == "b":
            raise KeyboardInterrupt
        yield {"job": job, "i": 1}

    with pytest.raises(KeyboardInterrupt):
        stream_rows(["a", "b", "c"], measure, out, {}, start=0.0, budget_s=None, describe=str, unit="jobs",
                    write_each_row=each_row)
    data = json.loads(out.read_text())
    assert data["rows"] == [{"job": "a", "i": 0}, {"job": "a", "i": 1}, {"job": "b", "i": 0}]
    assert data["meta"]["interrupted"] is True and data["meta"]["skipped"] == []
    assert [len(rows) for rows in seen] == ([1, 3] if each_row else [0, 2])


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


def test_a_tagged_dataset_without_targets_is_reported_and_drawn_apart() -> None:
    """The 1-D/3-D step's data (``<gpu>-nd.json``): its plots carry the tag, and the targets report names its
    suites instead of a table of targets it has no rows for."""
    meta = {"gpu": "NVIDIA H200", "date": "2025-01-01T00:00:00", "torch": "t", "triton": "t", "timings": True,
            "tag": "nd", "ceilings": {"gemm_tflops": 1.0, "copy_gbps": 1.0}}
    rows = [{"suite": "mamba", "layer": "x", "mode": "fwd+bwd", "dtype": "bf16", "layout": "channels_last"}]
    assert plot._slug(meta) == "nvidia-h200-nd"
    text = report.markdown([{"meta": meta, "rows": rows}])
    assert "## NVIDIA H200, nd (2025-01-01" in text and "No targets for its suites (mamba)" in text
    assert "| target |" not in text


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
    assert all(r["floor_us"] > 0 and r["vs_floor"] == r["recorded_us"] / r["floor_us"] for r in data["rows"])
    assert [r["meets_target"] for r in data["rows"][:2]] == [True, False]
    table = report.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "plots")]).read_text()
    assert "| tiny conv | fwd+bwd |" in table and "FALL SHORT" in table and "PASS" in table


def test_whole_networks_smoke_pass(tmp_path: Path) -> None:
    """``bench.models`` without a GPU: every network, both modes, eager, ours and (inference) optimized (the tiny
    widths, float32), each converted network agreeing with eager; then its plot and its table in the targets report."""
    from bench import models

    out = models.main(["--smoke", "--results-dir", str(tmp_path)])
    assert out == tmp_path / "models" / "smoke" / "smoke.json"
    data = json.loads(out.read_text())
    assert data["meta"]["smoke"] is True and data["meta"]["graphs"] is False
    rows = data["rows"]
    assert [(r["network"], r["mode"], r["variant"]) for r in rows] == [
        (n, m, v) for n in models.NETWORKS for m in models.MODES for v in models.SMOKE_VARIANTS
        if m == "infer" or v not in models.INFERENCE_ONLY]
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
