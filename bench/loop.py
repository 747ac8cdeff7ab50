"""The streaming loop of the benchmarks (``bench.run``, ``bench.models``): measure jobs one at a time, keep
every row in a JSON file rewritten as rows come, stop starting jobs when the time budget is spent.

The file is ``{"meta": meta, "rows": rows}``; ``meta`` gains ``interrupted`` (an interrupt stopped the run),
``skipped`` (the jobs the budget left out, described) and ``elapsed_s``. An interrupt (SIGINT, Ctrl-C) writes
the rows measured so far, marked interrupted, and is raised again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

Job = TypeVar("Job")


def stream_rows(jobs: Sequence[Job], measure: Callable[[Job], Iterable[dict]], out: Path, meta: dict, *,
                start: float, budget_s: float | None, describe: Callable[[Job], str], unit: str,
                echo: Callable[[Job, dict], None] = lambda job, row: None, write_each_row: bool = False,
                clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    """Run ``measure(job)`` for each of ``jobs`` in order and return every row it yielded.

    Before each job: when more than ``budget_s`` seconds have passed since ``start`` (a ``clock()`` reading),
    the rest of the jobs are skipped, listed in ``meta["skipped"]`` by ``describe(job)`` and counted in
    ``unit`` on stdout. ``echo(job, row)`` prints each row as it comes. The JSON at ``out`` is rewritten after
    every job (after every row instead with ``write_each_row``), and once more at the end."""
    rows: list[dict] = []
    skipped: list[str] = []

    def write(interrupted: bool = False) -> None:
        meta.update({"interrupted": interrupted, "skipped": skipped, "elapsed_s": clock() - start})
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))

    try:
        for i, job in enumerate(jobs):
            if budget_s is not None and clock() - start > budget_s:
                skipped = [describe(j) for j in jobs[i:]]
                print(f"time budget of {budget_s:.0f} s spent: skipped {len(skipped)} {unit}")
                break
            for row in measure(job):
                rows.append(row)
                echo(job, row)
                if write_each_row:
                    write()
            if not write_each_row:
                write()
    except KeyboardInterrupt:
        write(interrupted=True)
        print(f"interrupted: wrote the {len(rows)} rows measured so far to {out}")
        raise
    write()
    print(f"wrote {out}")
    return rows
