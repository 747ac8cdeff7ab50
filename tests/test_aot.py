"""Ahead-of-time compile check: every kernel, with every configuration it may be launched with, compiles for
sm_90 and sm_80 without spills, within shared memory, and on tensor cores where it must (no GPU needed).

One test per kernel (and one for the op cases themselves), so that the test workers share the compiles; each
compiles in one process of its own. The SASS is read once per kernel and dtype (the verdicts come from the
resource usage and the PTX; every SASS read checks the PTX rule)."""

import difflib
import functools
import re

import pytest
import triton

from kernels import aot

pytestmark = pytest.mark.aot

needs_cuobjdump = pytest.mark.skipif(not aot.cuobjdump_path().exists(),
                                     reason="Triton's NVIDIA backend tools not installed")
ARCHS = (90, 80)


@functools.cache
def _records() -> aot.Recorded:
    return aot.collect_records()


def test_every_op_case_records_and_launches_every_kernel() -> None:
    recorded = _records()
    assert not recorded.errors, "\n".join(f"{where}:\n{error}" for where, error in recorded.errors)
    assert not aot.missing_spaces(recorded.records)


@needs_cuobjdump
@pytest.mark.parametrize("kernel", list(aot.SPACES))
def test_kernel_compiles_for_sm90_and_sm80(kernel: str) -> None:
    rows = aot.check(archs=ARCHS, kernels=[kernel], workers=1, sass="kernel", recorded=_records())
    assert {r.arch for r in rows if r.arch} >= {90} and any(r.kernel == kernel for r in rows), "nothing compiled"
    failures = [r for r in rows if r.failed]
    if failures:
        pytest.fail(f"{len(failures)} failing rows:\n{aot.format_failures(failures)}", pytrace=False)


def test_declared_variants_are_planned() -> None:
    """The variants compiled come from the kernels' spaces, not from the op cases: every covering variant of
    every space is planned for every declared dtype, including those no op case launches (max pooling
    without indices, fused epilogues without a residual or without a stored pre-activation)."""
    records = _records().records
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


def report_triton_version(text: str) -> str | None:
    """The Triton version a SASS report (``bench/results/sass.md``) was made with."""
    found = re.search(r"\(Triton ([^;)\s]+)", text)
    return found.group(1) if found else None


@needs_cuobjdump
def test_the_committed_main_loop_report_is_todays() -> None:
    """``bench/results/sass.md`` (the benchmark layers' kernels compiled for sm_90 as a GPU specialises them,
    with their main loops' instruction mix) is what today's kernels compile to, so that a change of address
    arithmetic, vector width or registers shows in review. Compiled code depends on Triton's version: the
    report is compared only under the Triton it was made with (the GPU machine's; ``.ci/gpu-stack`` runs it)."""
    from bench import sass

    committed = sass.REPORT.read_text() if sass.REPORT.exists() else ""
    made_with = report_triton_version(committed)
    if made_with != triton.__version__:
        pytest.skip(f"bench/results/sass.md was made with Triton {made_with}, this is Triton "
                    f"{triton.__version__}: compared under the same version only (.ci/gpu-stack does)")
    report = sass.build()
    if report != committed:
        diff = "\n".join(list(difflib.unified_diff(committed.splitlines(), report.splitlines(), "committed",
                                                   "today", lineterm="", n=0))[:40])
        pytest.fail(f"bench/results/sass.md is not today's: regenerate it with python -m bench.sass\n{diff}",
                    pytrace=False)


def test_report_version_is_read() -> None:
    assert report_triton_version("`python -m bench.sass` (Triton 3.6.0; bf16 channels_last") == "3.6.0"
