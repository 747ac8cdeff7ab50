"""The GPU session's plumbing, without a GPU: its steps' commands, the dry run, the archive it returns."""

from __future__ import annotations

import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

from bench import gpu_session

STEPS = ["tests", "tune", "bench", "bench_nd", "hopper", "host", "models", "models_compile", "plots"]


def test_the_gpu_session_fits_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented steps run in order, their default limits fit in the session's deadline, the 2-D and the
    1-D/3-D benchmark steps each pick their family, and every step's reserve leaves the later steps their
    limits."""
    steps: list[tuple[str, list[str], float, float]] = []

    def step(self, name, argv, limit, reserve_s=0.0, raw_log=None):
        steps.append((name, argv, limit, reserve_s))
        return gpu_session.StepResult(name, "ok")

    monkeypatch.setattr(gpu_session.Session, "step", step)
    args = gpu_session.parse_args([])
    assert gpu_session.run_session(args, tmp_path, {"gpu": "test", "torch": "-", "triton": "-", "python": "-"}) == 0
    limits = {name: limit for name, _, limit, _ in steps}
    assert sum(limits.values()) <= gpu_session.DEADLINE_S == args.deadline_s
    names = list(limits)
    assert names == STEPS
    for i, (_, _, limit, reserve) in enumerate(steps):
        assert reserve <= sum(limits[n] for n in names[i + 1:]) and limit + reserve <= gpu_session.DEADLINE_S
    argv = {name: " ".join(cmd) for name, cmd, _, _ in steps}
    assert "--family 2d" in argv["bench"] and "--family 1d --family 3d" in argv["bench_nd"]
    assert "--tag nd" in argv["bench_nd"]
    assert (tmp_path / gpu_session.SUMMARY).is_file()


def test_a_dry_run_stubs_only_the_gpu_parts() -> None:
    real = gpu_session.steps(gpu_session.parse_args([]))
    dry = gpu_session.steps(gpu_session.parse_args(["--dry-run"]))
    assert dry["tests"][0] == [*real["tests"][0], "--collect-only"]
    assert dry["tune"][0] == [*real["tune"][0], "--dry-run"]
    assert "--maxfail" not in " ".join(real["tests"][0])  # every failure is reported
    for name in STEPS[2:]:
        assert dry[name] == real[name]


def test_the_archive_holds_what_the_run_wrote(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    old = root / "bench" / "results" / "old.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    past = time.time() - 3600
    os.utime(old, (past, past))
    session = gpu_session.Session(root, deadline_s=60)
    (root / "autotune_configs").mkdir()
    (root / "autotune_configs" / "gpu.json").write_text("{}")
    (root / "bench" / "plots").mkdir()
    (root / "bench" / "plots" / "a.png").write_bytes(b"png")
    result = session.step("echo", [sys.executable, "-c", "print('hello')"], 30)
    assert result.status == "ok" and not result.failed
    target = gpu_session.archive(session, tmp_path / "out")
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
    assert names == {"autotune_configs/gpu.json", "bench/plots/a.png", "bench/results/gpu_session.log"}
    assert "echo| hello" in (tmp_path / "out" / "gpu_session.log").read_text()


def test_a_failing_step_is_reported(tmp_path: Path) -> None:
    session = gpu_session.Session(tmp_path, deadline_s=60)
    result = session.step("boom", [sys.executable, "-c", "raise SystemExit(3)"], 30)
    assert result.status == "rc 3" and result.failed
    session.skip("later", "--skip")
    assert not session.results[-1].failed


@pytest.mark.skipif(gpu_session.on_gpu(), reason="the dry run is for machines without a GPU")
def test_dry_run_of_the_tuner_and_plots(tmp_path: Path) -> None:
    """The dry run in a copy of the tree: the tuner checks its arguments, the plots are drawn from the committed
    data, and the archive comes back with the summary."""
    skip = [a for name in STEPS if name not in ("tune", "plots") for a in ("--skip", name)]
    assert gpu_session.main(["--dry-run", "--out", str(tmp_path), *skip]) == 0
    with tarfile.open(tmp_path / gpu_session.ARCHIVE) as tar:
        names = set(tar.getnames())
    assert {"bench/results/gpu_session.log", "bench/results/gpu_session.json", "bench/plots/targets.md"} <= names
    log = (tmp_path / "gpu_session.log").read_text()
    assert "layer runs would be tuned" in log and "every step passed" in log
