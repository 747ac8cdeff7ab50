"""Everything a lent GPU session does, in one call of under 9 minutes: ``python -m bench.gpu_session``.

**On the GPU machine**, from the repository root (nothing to install there: it has Python 3.12, torch 2.11,
torchvision 0.26, Triton 3.6, pytest, pytest-xdist, matplotlib, numpy and hypothesis, the stack
``.ci/gpu-stack`` checks in CI; only the working tree travels, no ignored path)::

    PYTHONUNBUFFERED=1 python -m bench.gpu_session --out "$OUT"

with a time limit of 600 s for the command. It leaves under ``$OUT`` (``--out``) three files to bring back:
``gpu_session.tar.gz`` (every file the run wrote under ``bench/results/``, ``bench/plots/`` and
``autotune_configs/``, paths relative to the repository root: unpack it there with ``tar xzf`` and commit),
``gpu_session.log`` (every step's output, timestamped) and ``gpu_session.json`` (GPU, versions, date, each
step's status and time). ``--dry-run`` rehearses all of it on a CPU (``.ci/gpu-stack`` does, in CI).

Steps, each under its own time limit (on expiry it gets SIGINT, so the tuner saves its file and the
benchmark writes the rows it has, then SIGKILL 20 s later); a step that ends early leaves its time to the
next, and the later steps keep their share when one overruns:

1. ``tests`` (150 s): the test suite with compiled kernels, ``pytest -q -n 14 --tb=short -rfEs``, every failure
   reported (no early stop); its raw output also goes to ``bench/results/gpu_tests.log``. Deselected: the
   notebooks, ``tests/test_bench.py`` (the benchmark steps supersede its smoke passes) and the ahead-of-time
   compile check (no GPU needed, CI runs it). Tests needing a package the machine lacks (``expecttest``)
   skip with the reason. (The suite took 78 s on an H200 with 16 cores before the coverage cases came.)
2. ``tune`` (60 s): ``python -m kernels.autotune tune`` over the conv and pooling suites, bf16
   channels_last; writes ``autotune_configs/<gpu>.json``.
3. ``bench`` (85 s): ``python -m bench.run --family 2d``, every 2-D suite, bf16 channels_last first, then the
   other dtypes and layouts until its budget (the limit less 15 s) is spent, each call timed as called and
   from CUDA-graph replays against cuDNN in the same run; writes ``bench/results/<gpu>.json``.
4. ``bench_nd`` (35 s): the same for the 1-D and 3-D suites (wav2vec 2.0's encoder, Mamba's depthwise
   conv1d, HiFi-GAN's up-convolutions, 1-D pooling; R3D-18, a 3D UNet, 3-D pooling), bf16 channels_last,
   ``fwd+bwd`` only; writes ``bench/results/<gpu>-nd.json``.
5. ``hopper`` (40 s): the ResNet-50, fused and scaling forwards (bf16 channels_last) with conv2d's Hopper
   path on (``KERNELS_HOPPER_TMA=1``: TMA operands, warpgroup MMA); writes
   ``bench/results/<gpu>-hopper-tma.json``, to set beside the pointer kernel's rows of step 3.
6. ``host`` (30 s): ``python -m bench.host``, host time per call and as called minus graph, ours and cuDNN's;
   writes ``bench/results/host/<gpu>.json``.
7. ``models`` (40 s): ``python -m bench.models``, whole networks in images/s, inference and training step,
   eager / ours / each in a CUDA graph, batch 32 then 128 until the budget; writes
   ``bench/results/models/<gpu>.json``.
8. ``models_compile`` (45 s): ResNet-50 inference at batch 32, eager, ``torch.compile`` of the converted
   model and ``torch.compile(mode="max-autotune")`` of torch's; writes
   ``bench/results/models/<gpu>-compile.json``.
9. ``plots`` (15 s): ``python -m bench.plot`` and ``python -m bench.report``; writes ``bench/plots/``.

The limits add up to the deadline (150 + 60 + 85 + 35 + 40 + 30 + 40 + 45 + 15 = 500 s of 510 s; a minute of
the 10 is left for the archive and the copy back). ``--compile`` also times ``torch.compile(mode=
"max-autotune")`` in steps 3 and 4 (tens of seconds per layer shape: give them more with ``--bench-s``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .run import environment, on_gpu

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 510.0  # the whole session: a 9-minute call, less a minute for the archive and copying back
WRITES = ("bench/results", "bench/plots", "autotune_configs")  # what a run may write, relative to the root
ARCHIVE = "gpu_session.tar.gz"
LOG = "bench/results/gpu_session.log"
TEST_LOG = "bench/results/gpu_tests.log"
SUMMARY = "bench/results/gpu_session.json"


def _stamp(start: float) -> str:
    now = datetime.datetime.now().strftime("%H:%M:%S")
    return f"[{now} +{time.perf_counter() - start:6.1f}s]"


@dataclass
class StepResult:
    """How one step ended: ``status`` is ok, ``rc N``, ``TIMED OUT (partial)`` or ``SKIPPED (...)``."""

    name: str
    status: str
    seconds: float = 0.0
    returncode: int | None = None

    @property
    def failed(self) -> bool:
        return self.status != "ok" and not self.status.startswith("SKIPPED (--skip)")


class Session:
    """Runs steps under time limits in ``root``, echoing their output with timestamps to stdout and the log."""

    def __init__(self, root: Path, deadline_s: float) -> None:
        self.root = root
        self.start = time.perf_counter()
        self.wall_start = time.time()
        self.deadline_s = deadline_s
        log_path = root / LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("w")
        self.results: list[StepResult] = []

    def say(self, text: str) -> None:
        """One timestamped line to stdout and the log."""
        line = f"{_stamp(self.start)} {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def left(self) -> float:
        """Seconds left before the session's deadline."""
        return self.deadline_s - (time.perf_counter() - self.start)

    def skip(self, name: str, why: str) -> None:
        self.say(f"SKIPPED {name}: {why}")
        self.results.append(StepResult(name, f"SKIPPED ({why})"))

    def step(self, name: str, argv: list[str], limit_s: float, reserve_s: float = 0.0, raw_log: Path | None = None
             ) -> StepResult:
        """Run ``argv`` for at most ``limit_s`` (less when the deadline, minus ``reserve_s`` kept for later
        steps, is nearer); on expiry SIGINT (the step saves what it has), SIGKILL 20 s later. ``raw_log``: the
        step's output, unprefixed, also goes there."""
        limit = min(limit_s, self.left() - reserve_s)
        if limit < 10:
            self.skip(name, f"{max(limit, 0):.0f} s left for it")
            return self.results[-1]
        self.say(f"START {name} (limit {limit:.0f} s): {' '.join(argv)}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, start_new_session=True)
        raw = raw_log.open("w") if raw_log else None

        def pump() -> None:
            for line in proc.stdout:
                self.say(f"  {name}| {line.rstrip()}")
                if raw:
                    raw.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.say(f"TIME LIMIT {name}: SIGINT (the step saves what it has)")
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.say(f"TIME LIMIT {name}: SIGKILL")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(timeout=5)
        if raw:
            raw.close()
        took = time.perf_counter() - t0
        status = "TIMED OUT (partial)" if timed_out else ("ok" if proc.returncode == 0 else f"rc {proc.returncode}")
        self.say(f"END {name}: {status} after {took:.0f} s")
        result = StepResult(name, status, round(took, 1), proc.returncode)
        self.results.append(result)
        return result

    def written(self) -> list[Path]:
        """The files under :data:`WRITES` created or changed since the session started."""
        out = []
        for top in WRITES:
            for path in sorted((self.root / top).rglob("*")):
                if path.is_file() and path.stat().st_mtime >= self.wall_start - 1:
                    out.append(path)
        return out


def copy_tree(dest: Path) -> Path:
    """The project's files (tracked and untracked, not ignored) copied under ``dest``: the dry run's tree."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", ".venv*", ".ci-venv*", "__pycache__"))
        return dest
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def steps(args: argparse.Namespace) -> dict[str, tuple[list[str], float]]:
    """Each step's command and time limit, in order. In a dry run the GPU-only parts are stubbed: the tests
    are collected, not run, and the tuner checks its arguments and lists its layer runs."""
    py = sys.executable
    suites = ["resnet50", "resnet18", "depthwise", "transposed", "fused", "pooling"]
    tests = [py, "-m", "pytest", "-q", "tests", "-p", "no:cacheprovider", "--tb=short", "-rfEs",
             "--ignore=tests/test_bench.py", "--ignore=tests/test_aot.py", "--ignore-glob=*notebook*",
             *(["-n", args.workers] if args.workers != "0" else [])]
    tune = [py, "-m", "kernels.autotune", "tune", *(a for s in suites for a in ("--suite", s)),
            "--dtype", "bf16", "--layout", "channels_last"]
    compile_flag = ["--compile"] if args.compile else []
    return {
        "tests": ([*tests, "--collect-only"] if args.dry_run else tests, args.tests_s),
        "tune": ([*tune, "--dry-run"] if args.dry_run else tune, args.tune_s),
        "bench": ([py, "-m", "bench.run", "--family", "2d", "--budget-s", str(max(args.bench_s - 15, 10)),
                   *compile_flag], args.bench_s),
        "bench_nd": ([py, "-m", "bench.run", "--family", "1d", "--family", "3d", "--dtype", "bf16", "--layout",
                      "channels_last", "--mode", "fwd+bwd", "--tag", "nd", "--budget-s",
                      str(max(args.bench_nd_s - 12, 10)), *compile_flag], args.bench_nd_s),
        "hopper": (["env", "KERNELS_HOPPER_TMA=1", py, "-m", "bench.run", "--suite", "resnet50", "--suite", "fused",
                    "--suite", "scaling", "--dtype", "bf16", "--layout", "channels_last", "--mode", "fwd",
                    "--budget-s", str(max(args.hopper_s - 20, 10))], args.hopper_s),
        "host": ([py, "-m", "bench.host"], args.host_s),
        "models": ([py, "-m", "bench.models", "--batch", "32", "--batch", "128",
                    *(a for v in ("eager", "ours", "ours_graphs", "eager_graphs", "optimized", "optimized_graphs")
                      for a in ("--variant", v)),
                    "--rep-ms", "100", "--budget-s", str(max(args.models_s - 15, 10))], args.models_s),
        "models_compile": ([py, "-m", "bench.models", "--network", "resnet50", "--batch", "32", "--mode", "infer",
                            *(a for v in ("eager", "ours_compile", "compile") for a in ("--variant", v)),
                            "--rep-ms", "100", "--tag", "compile"], args.models_compile_s),
        "plots": ([py, "-c", "from bench import plot, report; plot.main([]); report.main([])"], args.plots_s),
    }


def archive(session: Session, out: Path) -> Path:
    """Everything the run wrote (:meth:`Session.written`, the log and summary included) as one compressed
    archive under ``out``, with paths relative to the repository root; the log and summary beside it too."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / ARCHIVE
    files = session.written()
    with tarfile.open(target, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(session.root)))
    for name in (LOG, SUMMARY):
        if (session.root / name).exists():
            shutil.copy2(session.root / name, out / Path(name).name)
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The session's options (step time limits in seconds, the deadline, where the archive goes, dry run)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests-s", type=float, default=150)
    parser.add_argument("--tune-s", type=float, default=60)
    parser.add_argument("--bench-s", type=float, default=85)
    parser.add_argument("--bench-nd-s", type=float, default=35)
    parser.add_argument("--hopper-s", type=float, default=40)
    parser.add_argument("--host-s", type=float, default=30)
    parser.add_argument("--models-s", type=float, default=40)
    parser.add_argument("--models-compile-s", type=float, default=45)
    parser.add_argument("--plots-s", type=float, default=15)
    parser.add_argument("--deadline-s", type=float, default=DEADLINE_S)
    parser.add_argument("--workers", default="14", help="pytest -n (0: no xdist)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (max-autotune)")
    parser.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                        help=f"where {ARCHIVE} (every file the run wrote), the log and the summary go "
                             "(default: $OUT when set; else nothing is archived)")
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU, in a copy of the tree: every step with its GPU-only parts stubbed")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["tests", "tune", "bench", "bench_nd", "hopper", "host", "models", "models_compile",
                                 "plots"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line; exit status 0 when every step ran and passed."""
    args = parse_args(argv)
    if args.dry_run:
        with tempfile.TemporaryDirectory(prefix="gpu-session-dry-run-") as scratch:
            return run_session(args, copy_tree(Path(scratch)), environment())
    if not on_gpu():
        print("no GPU here: this session needs one (python -m bench.main runs the smoke pass instead; "
              "--dry-run rehearses the session on the CPU)")
        return 2
    return run_session(args, ROOT, environment())


def run_session(args: argparse.Namespace, root: Path, meta: dict) -> int:
    """Every step in ``root``, then the summary (``bench/results/gpu_session.json``) and the archive."""
    session = Session(root, args.deadline_s)
    session.say(f"{'DRY RUN (GPU-only parts stubbed) ' if args.dry_run else ''}on {meta['gpu']}: torch "
                f"{meta['torch']}, Triton {meta['triton']}, Python {meta['python']}; tree {root}")
    planned = steps(args)
    names = list(planned)
    for i, (name, (argv, limit)) in enumerate(planned.items()):
        if name in args.skip:
            session.skip(name, "--skip")
            continue
        # later steps keep half of their limits (the first two), or all of them, from an overrunning step
        later = sum(planned[n][1] * (0.5 if n in ("tune", "bench") and name in ("tests", "tune") else 1.0)
                    for n in names[i + 1:] if n not in args.skip)
        session.step(name, argv, limit, reserve_s=later, raw_log=root / TEST_LOG if name == "tests" else None)
    summary = {"meta": meta, "dry_run": args.dry_run, "deadline_s": args.deadline_s,
               "seconds": round(time.perf_counter() - session.start, 1),
               "steps": [vars(r) for r in session.results]}
    (root / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    session.say("summary: " + "; ".join(f"{r.name}: {r.status}, {r.seconds:.0f} s" for r in session.results))
    failed = [r.name for r in session.results if r.failed]
    session.say(f"failed steps: {', '.join(failed)}" if failed else "every step passed")
    files = session.written()
    session.say(f"{len(files)} files written: " + " ".join(str(p.relative_to(root)) for p in files))
    if args.out is not None:
        target = archive(session, args.out)
        session.say(f"archived to {target} ({target.stat().st_size / 1e6:.2f} MB); unpack it in the repository "
                    f"root: tar xzf {ARCHIVE}")
    session.log.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
