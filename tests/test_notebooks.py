"""Execute every course notebook in ``notebooks/`` and fail on any error, so that they never rot.

Each notebook is executed from a temporary copy (the committed file is left as it is), in a Jupyter kernel
started with this interpreter, with a time limit per cell. The kernel's working directory is ``notebooks/``,
as when a reader opens a notebook there; the notebooks write no files. Without a GPU the kernels run
through Triton's interpreter; the notebooks keep their sizes small enough for that. Skipped when nbformat,
nbclient, ipykernel or matplotlib are not installed (the ``notebooks`` extra).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300
KERNEL_NAME = "python3-kernels-under-test"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec that starts this very interpreter, found ahead of any installed ``python3`` spec."""
    data_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(data_dir))
        mp.setenv("MPLBACKEND", "Agg")
        yield KERNEL_NAME


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 7, f"expected the seven course notebooks, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, kernel_name: str, tmp_path: Path) -> None:
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name}: {err}", pytrace=False)
