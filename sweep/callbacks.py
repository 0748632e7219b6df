"""Hydra callbacks: a multirun holds its sweep dir while it runs; at its end, the sweep's tables, ranked summary and failures.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``. The tables are read back
from the records on disk, so failed jobs show up in them and any launcher works.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Where the end of a sweep writes its viewers, inside the sweep dir.
TENSORBOARD_DIR = "tensorboard"
REPORT_HTML = "report.html"


def this_run(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs this sweep run trained or reused (``sweep_run``), not those earlier runs of its dir left there."""
    from sweep.sweep_dir import held

    claim = held()
    if claim is None or runs.empty or "sweep_run" not in runs:
        return runs
    return runs[runs["sweep_run"] == claim.run.token]


class SweepDir(Callback):
    """A multirun claims its sweep dir before any job starts (:func:`sweep.sweep_dir.claim`) and says where it is.

    A second sweep into a dir that a live sweep holds, or a dir that cannot be written, is
    refused with one line. A single run checks that its run dir can be written.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from sweep.config import SweepConfigError, refuse
        from sweep.sweep_dir import claim

        where = str(config.hydra.sweep.dir)
        try:
            claim(Path(where))
        except SweepConfigError as error:
            refuse(str(error))
        print(f"Sweep dir: {where} (to resume it, rerun the same command with hydra.sweep.dir={where})", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sweep.sweep_dir import release

        release()

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from sweep.config import refuse

        where = Path(str(config.hydra.run.dir))
        try:
            where.mkdir(parents=True, exist_ok=True)
            (where / ".sweep-write-check").touch()
            (where / ".sweep-write-check").unlink()
        except OSError as error:
            refuse(f"hydra.run.dir={where}: cannot write there ({error.strerror or error})")


class ResultsTable(Callback):
    """Write ``results.csv``, ``results.parquet`` and ``summary.csv`` at the sweep root; print the top ``top`` configs.

    The last lines count this sweep run's runs by status (:func:`this_run`: a failure left
    in the dir by an earlier run does not count), with the sweep's time since it started
    (:mod:`sweep.progress`, whose count of finished jobs starts then). If any failed (raised)
    and the config's ``fail_on_error`` is true, the command then exits 1; diverged runs never count.
    With ``plot``, the figures of :func:`sweep.plots.plot_sweep` are written too; with
    ``tensorboard``, TensorBoard's HParams dashboard into ``<sweep dir>/tensorboard``; with
    ``html``, the page of :func:`sweep.viewers.html.write_report` as ``<sweep dir>/report.html``.
    A problem with the tables is logged, never raised: the runs are on disk whatever happens,
    and ``sweep-results <sweep dir> --write`` builds the tables again.
    """

    def __init__(self, top: int = 10, plot: bool = False, tensorboard: bool = False, html: bool = False) -> None:
        self.top = top
        self.plot = plot
        self.tensorboard = tensorboard
        self.html = html

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Start the sweep's progress: its count of finished jobs and its clock."""
        from sweep.progress import start

        start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from sweep.progress import current
        from sweep.results import format_summary, load, write_tables

        sweep_dir = Path(config.hydra.sweep.dir)
        statuses: list[str] = []
        try:
            runs = load(sweep_dir)
            statuses = list(this_run(runs)["status"])
            summary = write_tables(sweep_dir, runs=runs)
            print(f"\nResults: {sweep_dir}\n{format_summary(summary, self.top)}", flush=True)
            if not summary.empty:
                self._views(runs, summary, sweep_dir)
        except Exception as error:  # the sweep itself is done and recorded
            log.error("results tables for %s not written: %s: %s", sweep_dir, type(error).__name__, error)
        print(current().totals(statuses), flush=True)
        if "failed" in statuses:
            print(f"failed runs: see the error column of {sweep_dir / 'results.csv'} and each job's log", flush=True)
            if config.get("fail_on_error", True):
                sys.exit(1)

    def _views(self, runs: pd.DataFrame, summary: pd.DataFrame, sweep_dir: Path) -> None:
        if self.plot:
            from sweep.plots import plot_sweep

            plot_sweep(runs, summary, sweep_dir)
        if self.tensorboard:
            from sweep.viewers.tensorboard import write_tensorboard

            write_tensorboard(runs, sweep_dir / TENSORBOARD_DIR)
            print(f"TensorBoard: tensorboard --logdir {sweep_dir / TENSORBOARD_DIR}", flush=True)
        if self.html:
            from sweep.viewers.html import write_report

            print(f"Report: {write_report(runs, summary, sweep_dir / REPORT_HTML)}", flush=True)
