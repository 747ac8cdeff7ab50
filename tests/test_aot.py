"""Ahead-of-time compile check: every kernel, with every configuration it may be launched with, compiles for
sm_90 and sm_80 without spills, within shared memory, and on tensor cores where it must (no GPU needed)."""

import pytest

from kernels import aot

pytestmark = pytest.mark.aot


@pytest.mark.skipif(not aot.cuobjdump_path().exists(), reason="Triton's NVIDIA backend tools not installed")
def test_every_kernel_compiles_for_sm90_and_sm80() -> None:
    rows = aot.check(archs=(90, 80))
    assert any(r.arch == 90 for r in rows) and any(r.arch == 80 for r in rows), "nothing was compiled"
    failures = [r for r in rows if r.failed]
    if failures:
        pytest.fail(f"{len(failures)} failing rows:\n{aot.format_failures(failures)}", pytrace=False)
