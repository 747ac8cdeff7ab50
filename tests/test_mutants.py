"""The mutation check's list (``tests/mutants.py``) stays usable as the kernels change: every mutant still
finds its text exactly once and leaves a program that compiles, and every kernel file has mutants. The run
itself (each mutant against the fast tests) is ``python -m tests.mutants``, a documented command."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutants import MUTANTS, ROOT, Mutant


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_applies(mutant: Mutant) -> None:
    path = ROOT / mutant.path
    source = path.read_text()
    mutated = mutant.apply(source)
    assert mutated != source
    compile(mutated, str(path), "exec")
    assert mutant.tests and (ROOT / mutant.tests[0]).exists()


def test_every_kernel_file_has_mutants() -> None:
    files = {str(p.relative_to(ROOT)) for p in (ROOT / "kernels" / "jit").glob("*.py") if p.name != "__init__.py"}
    assert files <= {m.path for m in MUTANTS}, sorted(files - {m.path for m in MUTANTS})
    assert len({m.name for m in MUTANTS}) == len(MUTANTS), "mutant names must be unique"


def test_root_is_the_project() -> None:
    assert (ROOT / "pyproject.toml").exists() and Path(__file__).parent == ROOT / "tests"
