"""The main job, one command: ``python -m bench.main``.

On a GPU: the test suite with compiled kernels, the benchmarks, and the plots; files to commit land under
``bench/results/`` and ``bench/plots/``. Without a GPU: the plots from the committed results, then a short
interpreter check (the smoke benchmark pass, data written and plots drawn, marked as not timings).
"""

from __future__ import annotations

import subprocess
import sys

from . import plot, run


def main() -> int:
    if run.on_gpu():
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "tests"], check=False)
        run.main([])
        plot.main([])
        return tests.returncode
    plot.main([])
    run.main([])
    plot.main(["--smoke"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
