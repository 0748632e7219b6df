"""Hydra callbacks: at the end of a multirun, write the sweep's tables, print its ranked summary and its failures.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. The tables are read back
from the records on disk, so failed jobs show up in them and any launcher works.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def status_line(statuses: list[str]) -> str:
    """``"40 runs: 38 completed, 1 failed, 1 diverged"`` (statuses that occur, in that order)."""
    counts = {status: statuses.count(status) for status in ("completed", "failed", "diverged")}
    parts = [f"{n} {status}" for status, n in counts.items() if n or status == "completed"]
    return f"{len(statuses)} run{'' if len(statuses) == 1 else 's'}: " + ", ".join(parts)


class ResultsTable(Callback):
    """Write ``results.csv``, ``results.parquet`` and ``summary.csv`` at the sweep root; print the top ``top`` configs.

    The last lines count the runs by status. If any run failed (raised) and the config's
    ``fail_on_error`` is true, the command then exits 1; diverged runs never count.
    With ``plot``, the figures of :func:`sweep.plots.plot_sweep` are written too.
    A problem with the tables is logged, never raised: the runs are on disk whatever happens,
    and ``sweep-results <sweep dir> --write`` builds the tables again.
    """

    def __init__(self, top: int = 10, plot: bool = False) -> None:
        self.top = top
        self.plot = plot

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sweep.results import format_summary, load, write_tables

        sweep_dir = Path(config.hydra.sweep.dir)
        statuses: list[str] = []
        try:
            runs = load(sweep_dir)
            statuses = list(runs["status"]) if not runs.empty else []
            summary = write_tables(sweep_dir, runs=runs)
            print(f"\nResults: {sweep_dir}\n{format_summary(summary, self.top)}", flush=True)
            if self.plot and not summary.empty:
                from sweep.plots import plot_sweep

                plot_sweep(runs, summary, sweep_dir)
        except Exception as error:  # the sweep itself is done and recorded
            log.error("results tables for %s not written: %s: %s", sweep_dir, type(error).__name__, error)
        print(status_line(statuses), flush=True)
        if "failed" in statuses:
            print(f"failed runs: see the error column of {sweep_dir / 'results.csv'} and each job's log", flush=True)
            if config.get("fail_on_error", True):
                sys.exit(1)
