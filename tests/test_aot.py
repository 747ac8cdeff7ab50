"""Ahead-of-time compile check: every kernel, with every configuration it may be launched with, compiles for
sm_90 and sm_80 without spills, within shared memory, and on tensor cores where it must (no GPU needed)."""

import difflib

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


def test_declared_variants_are_planned() -> None:
    """The variants compiled come from the kernels' spaces, not from the op cases: every covering variant of
    every space is planned for every declared dtype, including those no op case launches (max pooling
    without indices, fused epilogues without a residual or without a stored pre-activation)."""
    records = aot.collect_records().records
    planned, rows = aot.plan(records, (90,))
    assert not rows, [r.problems for r in rows]
    jobs: dict[str, list[dict]] = {}
    for entry in planned:
        jobs.setdefault(entry.job.kernel, []).append(dict(entry.job.signature.constexprs))
    for name, space in aot.SPACES.items():
        for variant in (v for v in aot.DTYPE_VARIANTS if v.declared):
            for declared in space.covering_variants(variant.dtype, variant.tf32 and space.uses_dot,
                                                    lightest=False):
                assert any(all(c.get(k) == v for k, v in declared) for c in jobs[name]), (name, variant, declared)
    recorded = {(r.space.name, r.variant) for r in records}
    assert (("max_pool2d_fwd_kernel", (("ADAPTIVE", False), ("INDEX", "none"))) not in recorded
            and any(c["INDEX"] == "none" for c in jobs["max_pool2d_fwd_kernel"]))


@pytest.mark.skipif(not aot.cuobjdump_path().exists(), reason="Triton's NVIDIA backend tools not installed")
def test_the_committed_main_loop_report_is_todays() -> None:
    """``bench/results/sass.md`` (the benchmark layers' kernels compiled for sm_90 as a GPU specialises them,
    with their main loops' instruction mix) is what today's kernels compile to, so that a change of address
    arithmetic, vector width or registers shows in review."""
    from bench import sass

    report = sass.build()
    committed = sass.REPORT.read_text() if sass.REPORT.exists() else ""
    if report != committed:
        diff = "\n".join(list(difflib.unified_diff(committed.splitlines(), report.splitlines(), "committed",
                                                   "today", lineterm="", n=0))[:40])
        pytest.fail(f"bench/results/sass.md is not today's: regenerate it with python -m bench.sass\n{diff}",
                    pytrace=False)
