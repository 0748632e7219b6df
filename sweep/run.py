"""The path every run takes: validate → dataset → folds → task per fold → record on disk.

:func:`run_job` never raises for a failing run: the failure is recorded (``status``
``failed`` or ``diverged``, ``error``) and the record returned, so a sweep goes on and its
tables show the failure. The caller decides what a failure means for the process.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from sweep.config import SweepConfigError, fingerprint, flatten, validate
from sweep.data import load_dataset
from sweep.records import HISTORY, atomic_write, history_csv, versions, write_record, write_text
from sweep.splits import make_folds
from sweep.tasks import Fitted, get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Where a run writes and how the launcher knows it."""

    dir: Path
    num: int | None = None
    overrides: list[str] = field(default_factory=list)


def primary_metric(cfg: DictConfig, record: dict[str, Any]) -> float:
    """The value named by ``task.metric`` in ``record`` (NaN if the run produced none)."""
    value = record.get(cfg.task.metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


def run_job(cfg: DictConfig, job: Job) -> dict[str, Any]:
    """Run the config in ``cfg`` and write its record (and history, model) into ``job.dir``; return the record."""
    job.dir.mkdir(parents=True, exist_ok=True)
    flat = flatten(cfg)
    record: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "fingerprint": fingerprint(flat),
        "job_num": job.num,
        "overrides": job.overrides,
        "output_dir": str(job.dir),
        "seed": cfg.get("seed"),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **flat,
    }
    start = time.perf_counter()
    try:
        validate(cfg)
        fits = _fit_folds(cfg)
        record |= _metrics(fits)
        record["status"] = "diverged" if any(fit.diverged for _, fit in fits) else "completed"
        if record["status"] == "diverged":
            record["error"] = "loss became NaN or inf; training stopped"
        _write_outputs(job.dir, fits)
    except SweepConfigError as error:
        record["error"] = f"SweepConfigError: {error}"
    except Exception as error:
        log.debug("run failed", exc_info=True)
        log.error("%s: %s", type(error).__name__, error)
        record["error"] = f"{type(error).__name__}: {error}"
    record["fit_time_s"] = record.get("fit_time_s", math.nan)
    record["elapsed_s"] = round(time.perf_counter() - start, 4)
    record["versions"] = versions()
    write_record(job.dir, record)
    return record


def _fit_folds(cfg: DictConfig) -> list[tuple[int | None, Fitted]]:
    """Train a fresh model on each fold the ``validation`` node selects; every fold starts from the same seed."""
    from sweep.backend import reset, seed_everything

    data = load_dataset(cfg.dataset)
    task = get_task(cfg.task.name)
    fits = []
    for fold in make_folds(cfg.validation, data.y):
        if cfg.task.name == "classify":
            reset()
            seed_everything(cfg.seed)
        start = time.perf_counter()
        fit = task(cfg, data.x[fold.train], data.y[fold.train], data.x[fold.val], data.y[fold.val])
        fit.metrics["fit_time_s"] = time.perf_counter() - start
        fits.append((fold.index, fit))
        if fit.diverged:
            break
    return fits


def _metrics(fits: list[tuple[int | None, Fitted]]) -> dict[str, Any]:
    """One fold: its metrics. Several (``validation.fold=null``): their mean, plus each fold's under ``fold_metrics``."""
    if len(fits) == 1:
        return dict(fits[0][1].metrics)
    names = list(fits[0][1].metrics)
    out: dict[str, Any] = {name: float(np.mean([fit.metrics[name] for _, fit in fits])) for name in names}
    out["fit_time_s"] = float(sum(fit.metrics["fit_time_s"] for _, fit in fits))
    out["fold_metrics"] = [{"fold": index, **fit.metrics} for index, fit in fits]
    return out


def _write_outputs(job_dir: Path, fits: list[tuple[int | None, Fitted]]) -> None:
    """Write the history (a ``fold`` column when several folds ran) and each fit's artifacts, atomically."""
    several = len(fits) > 1
    history = [{"fold": index, **row} if several else row for index, fit in fits for row in fit.history]
    if history:
        write_text(job_dir / HISTORY, history_csv(history))
    for index, fit in fits:
        for name, write in fit.artifacts.items():
            path = Path(name)
            filename = f"{path.stem}_fold{index}{path.suffix}" if several else name
            atomic_write(job_dir / filename, write)
