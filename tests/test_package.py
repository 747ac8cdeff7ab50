"""The package as a user installs it: a wheel built from this checkout, installed outside the source tree,
imports, finds the tuned configurations it ships and computes a convolution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "kernels").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert "kernels.autotune_configs" in listed


def test_the_distribution_name_is_our_own() -> None:
    """``kernels`` on the package index is another project: ours is distributed as ``triton-convpool``."""
    tomllib = pytest.importorskip("tomllib")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == "triton-convpool"


CHECK = """
import pathlib, torch, torch.nn.functional as F
import kernels
from kernels.autotune import config_dir
assert pathlib.Path(kernels.__file__).parents[1] == pathlib.Path({site!r}), kernels.__file__
tuned = config_dir()
assert tuned.parts[-2:] == ("kernels", "autotune_configs"), tuned
assert (tuned / "nvidia-h200.json").is_file() and (tuned / "README.md").is_file()
x, w = torch.randn(2, 3, 6, 5), torch.randn(4, 3, 3, 3)
torch.testing.assert_close(kernels.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)
print("installed package ok")
"""


def test_the_wheel_installs_and_ships_the_tuned_configurations(tmp_path: Path) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("triton_convpool-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("KERNELS_AUTOTUNE_DIR", None)
    done = subprocess.run([sys.executable, "-c", CHECK.format(site=str(site))], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installed package ok" in done.stdout


def test_ci_runs_the_readme_test_command() -> None:
    """``.ci/run`` runs the README's test command verbatim (after its venv lines), so what a newcomer runs is
    what CI checks; each README command has one ``pip install``."""
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2, commands
    assert all(line.count("pip install") == 1 for line in commands), commands
    (test_command,) = [line for line in commands if "pytest" in line]
    after_venv = test_command.split(". .venv/bin/activate && ", 1)[1]
    assert after_venv in (ROOT / ".ci" / "run").read_text().splitlines()
