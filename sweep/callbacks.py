"""Hydra callbacks: at the end of a multirun, write the sweep's tables and print its ranked summary.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. The tables are read back
from the records on disk, so failed jobs show up in them and any launcher works.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ResultsTable(Callback):
    """Write ``results.csv``, ``results.parquet`` and ``summary.csv`` at the sweep root; print the top ``top`` configs.

    With ``plot``, the figures of :func:`sweep.plots.plot_sweep` are written there too.
    A problem with the tables is logged, never raised: the runs are on disk whatever happens,
    and ``sweep-results <sweep dir> --write`` builds the tables again.
    """

    def __init__(self, top: int = 10, plot: bool = False) -> None:
        self.top = top
        self.plot = plot

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sweep.results import format_summary, load, write_tables

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            summary = write_tables(sweep_dir)
            print(f"\nResults: {sweep_dir}\n{format_summary(summary, self.top)}", flush=True)
            if self.plot and not summary.empty:
                from sweep.plots import plot_sweep

                plot_sweep(load(sweep_dir), summary, sweep_dir)
        except Exception as error:  # the sweep itself is done and recorded
            log.error("results tables for %s not written: %s: %s", sweep_dir, type(error).__name__, error)
