"""The main job, one command: ``python -m bench.main``.

On a GPU: the whole GPU session (``bench.gpu_session``: tests with compiled kernels, autotuning, the
benchmarks, the plots and the targets table, each step time-limited); files to commit land under
``bench/results/``, ``bench/plots/`` and ``autotune_configs/``. Without a GPU: the plots and the targets
table from the committed results, then the interpreter smoke passes of the layer suites and of the whole
networks (data written, plots drawn, targets evaluated, all marked as not timings) under
``bench/results/smoke/``, ``bench/results/models/smoke/`` and ``bench/plots/smoke/``.
"""

from __future__ import annotations

import sys

from . import gpu_session, models, plot, report, run


def main() -> int:
    """Entry point; returns the exit status."""
    if run.on_gpu():
        return gpu_session.main([])
    print("No GPU: drawing the committed GPU data, then the interpreter smoke pass (not timings).")
    plot.main([])
    report.main([])
    run.main([])
    models.main([])
    plot.main(["--smoke"])
    report.main(["--smoke"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
