"""Everything a lent GPU session does, in one call well inside 10 minutes: ``python -m bench.gpu_session``.

Steps, each under its own time limit (on expiry it gets SIGINT, so the tuner saves its file and the
benchmark writes the rows it has, then SIGKILL 20 s later):

1. ``tests``: ``pytest --maxfail=25 -q tests -p no:cacheprovider -n 14`` with compiled kernels (show every
   failure it can, not stop at one; the notebook tests, ``tests/test_bench.py``, whose smoke passes the
   benchmark steps supersede, and the ahead-of-time compile check, which needs no GPU and runs in CI,
   deselected; the coverage cases of conv2d's Hopper path run its TMA kernel compiled) — 170 s (the suite
   took 78 s on an H200 with 16 cores before the coverage cases of
   ``tests/test_coverage.py`` came: about 200 more, each compiling its kernels in one configuration);
2. ``tune``: ``python -m kernels.autotune tune`` over the conv and pooling suites, bf16 channels_last —
   60 s; writes ``autotune_configs/``;
3. ``bench``: ``python -m bench.run`` over every 2-D suite, bf16 channels_last first, then the other dtypes
   and layouts until its budget (the limit less 15 s: the step ran 5 s past its budget, imports included) is
   spent, each call timed as called and from CUDA-graph replays — 90 s (on an H200 bf16 channels_last took
   69 s of budget, ceilings included, and bf16 nchw 52 s more: 75 s holds bf16 channels_last);
   writes ``bench/results/<gpu>.json``;
4. ``bench_nd``: the same for the 1-D and 3-D suites whose ops ``kernels`` has (wav2vec 2.0's encoder, Mamba's
   depthwise convolution, HiFi-GAN's up-convolutions, 1-D pooling; R3D-18, a 3D UNet, 3-D pooling), bf16
   channels_last, ``fwd+bwd`` only (a third of the three modes' time), budget the limit less 12 s — 35 s
   (about half a second a layer: the 21 layers of 1-D, then the 3-D ones until the budget is spent; ``--bench-nd-s``
   gives it more); writes ``bench/results/<gpu>-nd.json``;
5. ``hopper``: the same for the ResNet-50, fused and scaling suites' forwards (bf16 channels_last) with
   conv2d's Hopper path switched on (``KERNELS_HOPPER_TMA=1``: TMA operands, warpgroup MMA; default tiles)
   — 45 s; writes ``bench/results/<gpu>-hopper-tma.json``, to set beside the pointer kernel's rows of step 3;
6. ``host``: ``python -m bench.host``, host time per call recorded and as called minus graph, ours and
   cuDNN's — 35 s; writes ``bench/results/host/<gpu>.json``;
7. ``models``: ``python -m bench.models``, whole networks (ResNet-50, MobileNetV3-Large, EfficientNet-B0,
   ConvNeXt-Tiny, UNet) in images/s, inference and training step, eager / ours / each captured in a CUDA
   graph, batch 32 for every network first, then batch 128, until its budget is spent — 40 s; writes
   ``bench/results/models/<gpu>.json``;
8. ``models_compile``: the compile baselines of the whole networks, kept small: ResNet-50 only, batch 32,
   inference, eager then ``torch.compile`` of the converted model then ``torch.compile(mode="max-autotune")``
   of the torch model — 50 s (max-autotune of a whole ResNet-50 may not finish in it: the rows measured
   are kept; ``--models-compile-s`` gives it more); writes ``bench/results/models/<gpu>-compile.json``;
9. ``plots``: ``python -m bench.plot`` and ``python -m bench.report`` — 15 s; writes ``bench/plots/``.

In steps 3 and 4 ``torch.compile(mode="max-autotune")`` is off: its compile takes tens of seconds per layer
shape, which the budget cannot hold; ``--compile`` turns it on (give the bench steps more time with
``--bench-s`` and ``--bench-nd-s``).
The default limits add up to the session's deadline (170 + 60 + 90 + 35 + 45 + 35 + 40 + 50 + 15 = 540 s); a
step that ends early leaves its time to the next.
The log, with timestamps, goes to ``bench/results/gpu_session.log``. Steps that did not run are listed
at the end.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .run import RESULTS

DEADLINE_S = 540.0  # the whole session, leaving a minute of the 10 for start-up and copying files back


def _stamp(start: float) -> str:
    now = datetime.datetime.now().strftime("%H:%M:%S")
    return f"[{now} +{time.perf_counter() - start:6.1f}s]"


class Session:
    """Runs steps under time limits, echoing their output with timestamps to stdout and the log."""

    def __init__(self, log_path: Path, deadline_s: float) -> None:
        self.start = time.perf_counter()
        self.deadline_s = deadline_s
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("w")
        self.summary: list[str] = []

    def say(self, text: str) -> None:
        """One timestamped line to stdout and the log."""
        line = f"{_stamp(self.start)} {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def left(self) -> float:
        """Seconds left before the session's deadline."""
        return self.deadline_s - (time.perf_counter() - self.start)

    def step(self, name: str, argv: list[str], limit_s: float, reserve_s: float = 0.0) -> int | None:
        """Run ``argv`` for at most ``limit_s`` (less when the deadline, minus ``reserve_s`` kept for later
        steps, is nearer). Returns its exit status, or None when skipped for lack of time."""
        limit = min(limit_s, self.left() - reserve_s)
        if limit < 10:
            self.say(f"SKIPPED {name}: {max(limit, 0):.0f} s left for it")
            self.summary.append(f"{name}: SKIPPED (no time left)")
            return None
        self.say(f"START {name} (limit {limit:.0f} s): {' '.join(argv)}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)

        def pump() -> None:
            for line in proc.stdout:
                self.say(f"  {name}| {line.rstrip()}")

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
        took = time.perf_counter() - t0
        status = "TIMED OUT (partial)" if timed_out else ("ok" if proc.returncode == 0 else f"rc {proc.returncode}")
        self.say(f"END {name}: {status} after {took:.0f} s")
        self.summary.append(f"{name}: {status}, {took:.0f} s")
        return proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Command line; exit status 0 when every step ran and passed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests-s", type=float, default=170)
    parser.add_argument("--tune-s", type=float, default=60)
    parser.add_argument("--bench-s", type=float, default=90)
    parser.add_argument("--bench-nd-s", type=float, default=35)
    parser.add_argument("--hopper-s", type=float, default=45)
    parser.add_argument("--host-s", type=float, default=35)
    parser.add_argument("--models-s", type=float, default=40)
    parser.add_argument("--models-compile-s", type=float, default=50)
    parser.add_argument("--plots-s", type=float, default=15)
    parser.add_argument("--deadline-s", type=float, default=DEADLINE_S)
    parser.add_argument("--workers", default="14", help="pytest -n (0: no xdist)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (max-autotune)")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["tests", "tune", "bench", "bench_nd", "hopper", "host", "models", "models_compile",
                                 "plots"])
    args = parser.parse_args(argv)

    from .run import on_gpu

    if not on_gpu():
        print("no GPU here: this session needs one (python -m bench.main runs the smoke pass instead)")
        return 2
    py = sys.executable
    session = Session(RESULTS / "gpu_session.log", args.deadline_s)
    whole = args.models_s + args.models_compile_s  # the two whole-network steps
    after_bench = args.bench_nd_s + args.hopper_s + args.host_s + whole + args.plots_s
    later = {"tests": args.tune_s / 2 + args.bench_s / 2 + after_bench, "tune": args.bench_s / 2 + after_bench,
             "bench": after_bench, "bench_nd": args.hopper_s + args.host_s + whole + args.plots_s,
             "hopper": args.host_s + whole + args.plots_s, "host": whole + args.plots_s,
             "models": args.models_compile_s + args.plots_s, "models_compile": args.plots_s, "plots": 0.0}
    suites = ["resnet50", "resnet18", "depthwise", "transposed", "fused", "pooling"]
    steps = {
        "tests": [py, "-m", "pytest", "--maxfail=25", "-q", "tests", "-p", "no:cacheprovider",
                  "--ignore=tests/test_bench.py", "--ignore=tests/test_aot.py", "--ignore-glob=*notebook*",
                  "-k", "not notebook",
                  *(["-n", args.workers] if args.workers != "0" else [])],
        "tune": [py, "-m", "kernels.autotune", "tune", *(a for s in suites for a in ("--suite", s)),
                 "--dtype", "bf16", "--layout", "channels_last"],
        "bench": [py, "-m", "bench.run", "--family", "2d", "--budget-s", str(max(args.bench_s - 15, 10)),
                  *(["--compile"] if args.compile else [])],
        "bench_nd": [py, "-m", "bench.run", "--family", "1d", "--family", "3d", "--dtype", "bf16", "--layout",
                     "channels_last", "--mode", "fwd+bwd", "--tag", "nd", "--budget-s",
                     str(max(args.bench_nd_s - 12, 10)), *(["--compile"] if args.compile else [])],
        "hopper": ["env", "KERNELS_HOPPER_TMA=1", py, "-m", "bench.run", "--suite", "resnet50", "--suite", "fused",
                   "--suite", "scaling", "--dtype", "bf16", "--layout", "channels_last", "--mode", "fwd",
                   "--budget-s", str(max(args.hopper_s - 20, 10))],
        "host": [py, "-m", "bench.host"],
        "models": [py, "-m", "bench.models", "--batch", "32", "--batch", "128",
                   *(a for v in ("eager", "ours", "ours_graphs", "eager_graphs") for a in ("--variant", v)),
                   "--rep-ms", "100", "--budget-s", str(max(args.models_s - 15, 10))],
        "models_compile": [py, "-m", "bench.models", "--network", "resnet50", "--batch", "32", "--mode", "infer",
                           *(a for v in ("eager", "ours_compile", "compile") for a in ("--variant", v)),
                           "--rep-ms", "100", "--tag", "compile"],
        "plots": [py, "-c", "from bench import plot, report; plot.main([]); report.main([])"],
    }
    limits = {"tests": args.tests_s, "tune": args.tune_s, "bench": args.bench_s, "bench_nd": args.bench_nd_s,
              "hopper": args.hopper_s, "host": args.host_s, "models": args.models_s,
              "models_compile": args.models_compile_s, "plots": args.plots_s}
    failed = False
    for name, cmd in steps.items():
        if name in args.skip:
            session.say(f"SKIPPED {name}: --skip")
            session.summary.append(f"{name}: SKIPPED (--skip)")
            continue
        rc = session.step(name, cmd, limits[name], reserve_s=later[name])
        failed |= rc != 0
    session.say("summary: " + "; ".join(session.summary))
    session.say("files to commit: bench/results/ (with models/) bench/plots/ autotune_configs/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
