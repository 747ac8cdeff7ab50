"""kernels.autotune: buckets, pruning, lookup order, the per-GPU file (missing, corrupt, foreign, concurrent
writes), no timing on the hot path unless asked, online tuning (with a fake timer) and the command line."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE

import kernels
from kernels import autotune
from kernels.autotune import AutotuneWarning, bucket, prune, select_config, shared_memory_estimate, store
from kernels.autotune.__main__ import main as cli_main
from kernels.launch import KernelConfig, KernelSpace
from kernels.ops import conv2d as conv2d_ops
from kernels.ops.conv2d import FWD as CONV_FWD

GPU = "Test GPU 80GB"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tuned_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private directory of tuned files, the file of GPU ``GPU`` in use, tuning off, fresh state."""
    monkeypatch.setenv(autotune.ENV_DIR, str(tmp_path))
    monkeypatch.setenv(autotune.ENV_GPU, GPU)
    monkeypatch.delenv(autotune.ENV_TUNE, raising=False)
    monkeypatch.delenv(autotune.ENV_SAVE, raising=False)
    autotune.reset()
    yield tmp_path
    autotune.reset()


def _file(directory: Path) -> Path:
    return directory / store.file_name(GPU)


def _write(directory: Path, entries: dict, triton_version: str | None = None) -> Path:
    version = store.versions()["triton"] if triton_version is None else triton_version
    data = {"format": store.FORMAT, "gpu": GPU, "entries": {
        key: {store.config_id(c): {"ms": ms, "triton": version, "torch": "2.0", "config": store.config_to_json(c)}
              for c, ms in timings}
        for key, timings in entries.items()}}
    path = _file(directory)
    path.write_text(json.dumps(data))
    return path


def _autotune_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, AutotuneWarning)]


# A tl.dot kernel's space (not registered: the package's own spaces change as kernels are tuned), a GEMM
# problem and the configurations that survive pruning for it.
FWD = KernelSpace("gemm_kernel", None, [
    KernelConfig.of(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, num_warps=8, num_stages=3),
    KernelConfig.of(BLOCK_M=128, BLOCK_N=64, BLOCK_K=32, num_warps=8, num_stages=3),
    KernelConfig.of(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, num_warps=4, num_stages=3),
    KernelConfig.of(BLOCK_M=64, BLOCK_N=32, BLOCK_K=32, num_warps=4, num_stages=2),
    KernelConfig.of(BLOCK_M=32, BLOCK_N=16, BLOCK_K=16, num_warps=2, num_stages=2),
], uses_dot=True)
PROBLEM = {"M": 4096, "N": 64, "K": 576}
KEY = f"gemm_kernel|float16|nchw|{bucket(PROBLEM)}"
CANDIDATES = prune(FWD.for_dtype(torch.float16, False), PROBLEM)
DEFAULT = CANDIDATES[-1]
FAST, SLOW = CANDIDATES[0], CANDIDATES[1]


def test_bucket_rounds_each_dimension_up_to_a_power_of_two() -> None:
    assert bucket({"M": 1000, "N": 64, "K": 577}) == "K=1024,M=1024,N=64"
    assert bucket({"N": 1, "C": 0, "PIX": 3}) == "C=0,N=1,PIX=4"
    assert autotune.parse_bucket(bucket(PROBLEM)) == {"K": 1024, "M": 4096, "N": 64}
    assert KEY.endswith("K=1024,M=4096,N=64")


def test_prune_drops_oversized_blocks_and_configs_over_the_shared_memory_budget() -> None:
    configs = FWD.configs
    small = prune(configs, {"M": 50, "N": 20, "K": 40})
    assert small and all(c["BLOCK_M"] <= 64 and c["BLOCK_N"] <= 32 and c["BLOCK_K"] <= 64 for c in small)
    assert CANDIDATES == FWD.configs[1:]  # BLOCK_N=128 > 64 is pruned
    # everything too large: the least oversized survive, never nothing
    tiny = prune(configs, {"M": 1, "N": 1, "K": 1})
    assert tiny and all(c["BLOCK_M"] == min(x["BLOCK_M"] for x in configs) for c in tiny)
    # shared memory: num_stages * (BM*BK + BK*BN) * 2 bytes for float16
    big = {"M": 1 << 20, "N": 1 << 12, "K": 1 << 12}
    smem = lambda c: shared_memory_estimate(FWD, c, torch.float16)
    budget = 40 * 1024
    kept = prune(configs, big, budget, smem)
    assert kept and all(smem(c) <= budget for c in kept)
    assert any(smem(c) > budget for c in configs), "the budget should prune something"
    assert prune(configs, big, 0, smem) == []
    assert prune(configs, big) == configs


def test_lookup_order_exact_then_nearest_bucket_then_default(tuned_dir: Path) -> None:
    near = {"M": 2048, "N": 64, "K": 576}  # one step from PROBLEM's bucket
    far = {"M": 256, "N": 64, "K": 576}
    _write(tuned_dir, {
        KEY: [(SLOW, 1.0), (FAST, 0.5), (KernelConfig.of(BLOCK_M=999, BLOCK_N=1, BLOCK_K=1), 0.1)],
        f"gemm_kernel|float16|nchw|{bucket(near)}": [(SLOW, 0.2), (FAST, 0.3)],
        f"gemm_kernel|float16|nchw|{bucket(far)}": [(FAST, 0.2), (SLOW, 0.3)],
    })
    # exact key: the fastest config still in the space (the unknown, faster one is ignored)
    assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == FAST
    # no exact key: the nearest stored bucket's winner
    assert select_config(FWD, torch.float16, "nchw", {"M": 1500, "N": 64, "K": 576}, DEFAULT) == SLOW
    assert select_config(FWD, torch.float16, "nchw", {"M": 300, "N": 64, "K": 576}, DEFAULT) == FAST
    # other layout or dtype: nothing stored, the default
    assert select_config(FWD, torch.float16, "channels_last", PROBLEM, DEFAULT) == DEFAULT
    assert select_config(FWD, torch.bfloat16, "nchw", PROBLEM, DEFAULT) == DEFAULT
    # a stored winner pruned for this problem (BLOCK_N too large for N=8) is not used
    narrow = {"M": 4096, "N": 8, "K": 576}
    assert not {FAST, SLOW} & set(prune(FWD.for_dtype(torch.float16, False), narrow))
    assert select_config(FWD, torch.float16, "nchw", narrow, DEFAULT) == DEFAULT


def test_lookup_reads_the_file_once_and_caches_decisions(tuned_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tuned_dir, {KEY: [(FAST, 0.5)]})
    loads = []
    original = store.load_with_warning
    monkeypatch.setattr(store, "load_with_warning", lambda path: loads.append(path) or original(path))
    for m in range(1, 200):
        select_config(FWD, torch.float16, "nchw", {"M": m * 37, "N": 64, "K": 576}, DEFAULT)
    assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == FAST
    assert len(loads) == 1
    monkeypatch.setattr(store, "load_with_warning", lambda path: pytest.fail("file read again"))
    monkeypatch.setattr(autotune, "prune", lambda *a, **k: pytest.fail("lookup redone"))
    assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == FAST


@pytest.mark.parametrize("content", ["{not json", '{"format": 99, "entries": {}}', "[1, 2]", None])
def test_corrupt_missing_or_other_format_file_gives_one_warning_and_the_defaults(tuned_dir: Path, content) -> None:
    if content is not None:
        _file(tuned_dir).write_text(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for m in (100, 1000, 10000):
            assert select_config(FWD, torch.float16, "nchw", {"M": m, "N": 64, "K": 64}, DEFAULT) == DEFAULT
    messages = _autotune_warnings(caught)
    assert len(messages) == 1 and str(_file(tuned_dir)) in messages[0] and "default" in messages[0]


def test_timings_of_another_triton_version_are_used_with_one_line(tuned_dir: Path) -> None:
    """A GPU tuned under another Triton keeps its winners (still checked against today's space), with one
    informational line; where this Triton timed a key too, only its own timings count."""
    path = _write(tuned_dir, {KEY: [(FAST, 0.5), (SLOW, 1.0)]}, triton_version="2.0.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == FAST
        assert select_config(FWD, torch.float16, "nchw", {"M": 8, "N": 8, "K": 8}, DEFAULT) != FAST  # (too large)
    messages = _autotune_warnings(caught)
    assert len(messages) == 1 and "Triton 2.0.0" in messages[0] and "used" in messages[0]
    autotune.reset()
    store.write(path, GPU, {KEY: {store.config_id(SLOW): store.timing(SLOW, 2.0)}})  # this Triton's own timing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == SLOW
    assert _autotune_warnings(caught) == []


def test_a_foreign_winner_no_longer_in_the_space_is_not_used(tuned_dir: Path) -> None:
    gone = KernelConfig.of(BLOCK_M=256, BLOCK_N=256, BLOCK_K=128, num_warps=8, num_stages=5)
    _write(tuned_dir, {KEY: [(gone, 0.1), (FAST, 0.5)]}, triton_version="2.0.0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == FAST


def test_adding_a_config_keeps_the_other_timings(tuned_dir: Path) -> None:
    path = _file(tuned_dir)
    store.write(path, GPU, {KEY: {store.config_id(SLOW): store.timing(SLOW, 1.0)}})
    store.write(path, GPU, {KEY: {store.config_id(FAST): store.timing(FAST, 0.5)}})
    data = json.loads(path.read_text())
    assert data["format"] == store.FORMAT and data["gpu"] == GPU
    assert set(data["entries"][KEY]) == {store.config_id(SLOW), store.config_id(FAST)}
    entry = data["entries"][KEY][store.config_id(FAST)]
    assert entry["ms"] == 0.5 and entry["triton"] and entry["torch"] and entry["config"]["blocks"]
    assert select_config(FWD, torch.float16, "nchw", PROBLEM, DEFAULT) == FAST


def test_writing_replaces_a_corrupt_file_but_not_one_of_another_format(tmp_path: Path) -> None:
    path = tmp_path / store.file_name(GPU)
    path.write_text("{truncated")
    with pytest.warns(AutotuneWarning, match="replacing"):
        store.write(path, GPU, {KEY: {store.config_id(FAST): store.timing(FAST, 0.5)}})
    assert list(json.loads(path.read_text())["entries"]) == [KEY]
    path.write_text('{"format": 2, "entries": {}}')
    with pytest.raises(ValueError, match="format"):
        store.write(path, GPU, {KEY: {store.config_id(FAST): store.timing(FAST, 0.5)}})
    assert json.loads(path.read_text())["format"] == 2


def _writer(path: str, tag: str, count: int) -> None:
    config = KernelConfig.of(BLOCK=64)
    for i in range(count):
        store.write(Path(path), GPU, {f"k|{tag}|nchw|N={i}": {store.config_id(config): store.timing(config, i)}})


def test_concurrent_writers_merge_into_one_valid_file(tmp_path: Path) -> None:
    path = tmp_path / store.file_name(GPU)
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    procs = [context.Process(target=_writer, args=(str(path), tag, 15)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = json.loads(path.read_text())["entries"]
    assert len(entries) == 30 and {k.split("|")[1] for k in entries} == {"a", "b"}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def _conv_and_pool() -> None:
    x = torch.randn(1, 4, 6, 6, requires_grad=True, device=DEVICE)
    w = torch.randn(8, 4, 3, 3, requires_grad=True, device=DEVICE)
    b = torch.randn(8, requires_grad=True, device=DEVICE)
    kernels.conv2d(x, w, b, padding=1).sum().backward()
    kernels.max_pool2d(x, 2).sum().backward()


def test_no_timing_on_the_hot_path_unless_asked(tuned_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import triton.testing

    def forbidden(*args, **kwargs):
        raise AssertionError("a configuration was timed")

    monkeypatch.setattr(autotune, "_bench", forbidden)
    monkeypatch.setattr(triton.testing, "do_bench", forbidden)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _conv_and_pool()
    assert not autotune.tuning_enabled() and autotune.results() == []
    if not kernels.INTERPRETING:
        return
    # asked for where it cannot time (the interpreter): one warning, the defaults, still no timing
    monkeypatch.setenv(autotune.ENV_TUNE, "1")
    autotune.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _conv_and_pool()
        _conv_and_pool()
    messages = [m for m in _autotune_warnings(caught) if "online tuning" in m]
    assert len(messages) == 1 and "GPU" in messages[0]
    assert autotune.results() == []


def _spy_launch(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, KernelConfig]]:
    seen: list[tuple[str, KernelConfig]] = []
    real = conv2d_ops.launch

    def spy(space, grid, args, config, *rest, **kwargs):
        seen.append((space.name, config))
        return real(space, grid, args, config, *rest, **kwargs)

    monkeypatch.setattr(conv2d_ops, "launch", spy)
    return seen


# A conv2d problem (float32, TF32 off) whose GEMM is large enough to keep every configuration of the space.
CONV_X, CONV_W = (2, 16, 8, 8), (128, 16, 3, 3)
CONV_PROBLEM = {"M": 2 * 8 * 8, "N": 128, "K": 16 * 9}
# the general variant's keys carry its limit's tag (KernelSpace.variant_tag)
CONV_KEY = f"conv2d_fwd_kernel+unaligned|float32|nchw|{bucket(CONV_PROBLEM)}"


def _conv_candidates() -> list[KernelConfig]:
    candidates = prune(CONV_FWD.for_dtype(torch.float32, False, {"VEC": 1}), CONV_PROBLEM)
    if len(candidates) < 2:
        pytest.skip("conv2d's float32 space has a single configuration for this problem")
    return candidates


@pytest.mark.filterwarnings("ignore::kernels.autotune.AutotuneWarning")
def test_launcher_uses_the_stored_winner(tuned_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = torch.randn(CONV_X, device=DEVICE), torch.randn(CONV_W, device=DEVICE)
    seen = _spy_launch(monkeypatch)
    kernels.conv2d(x, w, padding=1)
    default = seen[-1][1]
    other = next(c for c in _conv_candidates() if c != default)
    _write(tuned_dir, {CONV_KEY: [(default, 2.0), (other, 1.0)]})
    autotune.reset()
    out = kernels.conv2d(x, w, padding=1)
    assert seen[-1] == ("conv2d_fwd_kernel", other)
    torch.testing.assert_close(out, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore::kernels.autotune.AutotuneWarning")
def test_online_tuning_times_the_pruned_candidates_and_saves(tuned_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = torch.randn(CONV_X, device=DEVICE), torch.randn(CONV_W, device=DEVICE)
    candidates = _conv_candidates()
    winner = candidates[-1]
    timed: list[KernelConfig] = []

    def fake_bench(fn) -> float:
        fn()
        config = autotune._state.forced["conv2d_fwd_kernel"]
        timed.append(config)
        return 0.5 if config == winner else 1.0 + len(timed)

    monkeypatch.setattr(autotune, "_can_time", lambda: True)
    monkeypatch.setattr(autotune, "_bench", fake_bench)
    autotune.enable_tuning(True)
    with torch.no_grad():
        out = kernels.conv2d(x, w, padding=1)
    torch.testing.assert_close(out, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
    assert set(candidates) <= set(timed)
    (result,) = autotune.results()
    assert result.key == CONV_KEY and result.best == winner
    seen = _spy_launch(monkeypatch)
    with torch.no_grad():
        kernels.conv2d(x, w, padding=1)  # tuned: no new timing
    assert seen == [("conv2d_fwd_kernel", winner)] and len(autotune.results()) == 1
    (path,) = autotune.save()
    assert path == _file(tuned_dir)
    autotune.reset()  # a new process: tuning off, the file gives the winner
    monkeypatch.setattr(autotune, "_bench", lambda fn: pytest.fail("timed with tuning off"))
    kernels.conv2d(x, w, padding=1)
    assert seen[-1] == ("conv2d_fwd_kernel", winner)


def test_suites_name_real_ops_and_the_pooling_smoke_layers_run() -> None:
    from kernels.autotune.suites import POOL_SMOKE, POOL_SUITES, SMOKE, SUITES

    for table in (SUITES, POOL_SUITES, SMOKE, POOL_SMOKE):
        for layers in table.values():
            assert all(callable(getattr(kernels, layer.op)) for layer in layers)
    for layer in POOL_SMOKE["pooling"]:
        x = torch.randn(layer.input_shape, device=DEVICE)
        op = getattr(kernels, layer.op)
        torch.testing.assert_close(op(x, **layer.kwargs), getattr(F, layer.op)(x, **layer.kwargs))


@pytest.mark.skipif(not kernels.INTERPRETING, reason="a GPU is here")
def test_tune_without_a_gpu_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["tune", "--suite", "resnet50"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_check_rejects_an_unknown_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check", "--arch", "90", "--kernel", "no_such_kernel"]) == 1
    assert "no such registered space" in capsys.readouterr().out


@pytest.mark.aot
def test_check_compiles_one_kernel_for_sm90_without_a_gpu() -> None:
    from kernels import aot

    if not aot.cuobjdump_path().exists():
        pytest.skip("Triton's NVIDIA backend tools not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "kernels.autotune", "check", "--arch", "90", "--kernel",
                           "split_sum_kernel", "--workers", "1"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    header = done.stdout.splitlines()[0]
    assert all(col in header for col in ("regs", "shared", "spill", "tensor core"))
    assert "split_sum_kernel" in done.stdout and "sm_90" in done.stdout
