"""Progress a person can read: one line per finished job of a multirun, and its totals at the end.

    [12/40] optimizer.lr=0.01 validation.fold=3 -> val_accuracy=0.9722 (0.1s) · ETA 4s

``k`` counts the finished jobs of the whole sweep, in the order they finish. ``N`` is the
sweep's total when its sweeper knows it (the grid's and the random search's jobs, Optuna's
trials still to run), else the jobs launched so far (halving and Hyperband: it grows rung by
rung). The ETA is the mean wall time per finished job of the current launch times the jobs
left. A job's outcome comes from its record (``result.json``): the ``task.metric`` and the
run's time, ``(reused)`` for a run reused from an earlier one, ``failed: <reason>``.

All of it happens in the sweep's own process: the results callback starts the sweep's
:class:`Progress` (:func:`start`) and prints its :meth:`Progress.totals`; sweep's sweepers
set its total and announce each launch (:class:`Counted`, which also reports the jobs of a
launcher that does not); sweep's launchers report each job as it returns
(:meth:`Progress.report`), so the lines come as the jobs finish.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from sweep.hydra_job import FiledReturn
from sweep.records import before, read_record


class Progress:
    """The count of a sweep's finished jobs, and the lines that say so."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total  # the sweep's jobs, when its sweeper knows them
        self.started = time.time()
        self.done = 0
        self.launched_jobs = 0
        self._launch_started = self.started
        self._launch_done = 0
        self._reported: set[str] = set()

    def launched(self, n: int) -> None:
        """A launch of ``n`` jobs begins: the ETA is timed on its jobs."""
        self.launched_jobs += n
        self._launch_started = time.time()
        self._launch_done = 0

    def report(self, ret: JobReturn) -> None:
        """Print the line of the finished job ``ret``, unless it was reported already."""
        key = job_dir(ret)
        if key in self._reported:
            return
        self._reported.add(key)
        print(self.finished(ret), flush=True)

    def finished(self, ret: JobReturn) -> str:
        """Count ``ret`` as finished; its line: ``[k/N] overrides -> outcome · ETA``."""
        self.done += 1
        self._launch_done += 1
        n = max(self.launched_jobs if self.total is None else self.total, self.done)
        overrides = " ".join(filter_overrides(ret.overrides or [])) or "(defaults)"
        line = f"[{self.done}/{n}] {overrides} -> {self.outcome(ret)}"
        if self.done < n:
            mean = (time.time() - self._launch_started) / self._launch_done
            line += f" · ETA {duration(mean * (n - self.done))}"
        return line

    def outcome(self, ret: JobReturn) -> str:
        """``val_accuracy=0.9722 (0.1s)``, ``... (reused)``, ``failed: <reason>``; another app's job: its return value."""
        if ret.status == JobStatus.FAILED:  # the task function raised; Hydra keeps the exception
            error = ret._return_value
            return f"failed: {type(error).__name__}: {error}"
        record = _record(ret)
        if record is None:
            return repr(ret._return_value)
        if record["status"] != "completed":
            return f"{record['status']}: {record.get('error')}"
        metric = str(OmegaConf.select(ret.cfg, "task.metric", default=record.get("task.metric")))
        value = record.get(metric)
        value = float(value) if isinstance(value, (int, float)) else math.nan
        how = "reused" if self._reused(record) else f"{record.get('elapsed_s', math.nan):.1f}s"
        return f"{metric}={value:.4f} ({how})"

    def _reused(self, record: dict[str, Any]) -> bool:
        """Whether the record is an earlier run's: brought from another dir, or started before this sweep."""
        return "reused_from" in record or before(record.get("started_at"), self.started)

    def totals(self, statuses: Sequence[str]) -> str:
        """``40 runs: 38 completed, 1 failed, 1 diverged in 1m12s``: ``statuses`` counted, and the sweep's time."""
        from sweep.results import status_line

        return f"{status_line(list(statuses))} in {duration(time.time() - self.started)}"


def duration(seconds: float) -> str:
    """``4s``, ``1m12s``, ``2h05m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def job_dir(ret: JobReturn) -> str:
    """The dir the job of ``ret`` ran in (its ``working_dir`` when Hydra's config of it was lost)."""
    if isinstance(ret, FiledReturn):
        return ret.output_dir
    output_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg is not None else None
    return str(output_dir if output_dir is not None else ret.working_dir)


def _record(ret: JobReturn) -> dict[str, Any] | None:
    """The job's ``result.json``; ``None`` when it has none (not a sweep run) or it cannot be read."""
    try:
        return read_record(Path(job_dir(ret)))
    except (OSError, ValueError):
        return None


class Counted:
    """A sweeper's launcher, each launch announced to the sweep's progress; it reports the jobs its launcher did not (Hydra's, submitit's).

    Everything else is the launcher's own (``close``, its fields).
    """

    def __init__(self, launcher: Any) -> None:
        self.launcher = launcher

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        progress = current()
        progress.launched(len(job_overrides))
        returns = self.launcher.launch(job_overrides, initial_job_idx)
        for ret in returns:
            progress.report(ret)
        return returns

    def __getattr__(self, name: str) -> Any:
        return getattr(self.launcher, name)


_current: Progress | None = None


def start() -> Progress:
    """A new sweep's progress, from now."""
    global _current
    _current = Progress()
    return _current


def current() -> Progress:
    """The progress of the sweep in this process (one from now, if none was started)."""
    return _current if _current is not None else start()
