"""The path every run takes: reuse? → check (config, dataset, folds) → task per fold → record on disk.

:func:`run_job` never raises for a failing run: the failure is recorded (``status``
``failed`` or ``diverged``, ``error``; the traceback goes to the job's log file) and the
record returned, so a sweep goes on and its tables show the failure. The caller decides
what a failure means for the process. Only an interruption (``KeyboardInterrupt``)
propagates, leaving no record, so the run is redone on resume.

Resume: a completed record whose fingerprint equals the config's, in the job's dir or in
any dir of the same sweep, is reused instead of training again (copied, with its
artifacts, when it lives elsewhere). Failed and diverged records are never reused.

A launcher that trains several configs at once (``hydra/launcher=vectorized``) hands each
run its results through :func:`precompute`; the run then records them as its own.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from sweep.config import SweepConfigError, fingerprint, flatten, validate
from sweep.data import Dataset, load_dataset
from sweep.records import (
    HISTORY,
    RECORD,
    atomic_write,
    find_records,
    history_csv,
    read_record,
    versions,
    write_record,
    write_text,
)
from sweep.splits import Fold, make_folds
from sweep.tasks import Fitted
from sweep.tasks import fit as fit_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Where a run writes and how the launcher knows it."""

    dir: Path
    num: int | None = None
    overrides: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None  # a multirun's root: its completed records may be reused


def primary_metric(cfg: DictConfig, record: dict[str, Any]) -> float:
    """The value named by ``task.metric`` in ``record`` (NaN if the run produced none)."""
    value = record.get(cfg.task.metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


def check(cfg: DictConfig) -> tuple[Dataset, list[Fold]]:
    """Everything that can be wrong before training: ranges, dataset file, folds, cluster count.

    Raises :class:`SweepConfigError` naming the key or file; returns the dataset and folds to train on.
    """
    validate(cfg)
    data = load_dataset(cfg.dataset)
    folds = make_folds(cfg.validation, data.y)
    n_clusters = cfg.model.get("n_clusters")
    smallest = min(len(fold.train) for fold in folds)
    if n_clusters is not None and n_clusters > smallest:
        raise SweepConfigError(f"model.n_clusters={n_clusters}: more clusters than the {smallest} training rows")
    return data, folds


def run_job(cfg: DictConfig, job: Job) -> dict[str, Any]:
    """Run the config in ``cfg`` and write its record (and history, model) into ``job.dir``; return the record.

    A completed record of the same config already in the sweep is reused instead (the
    returned record then has ``reused_from``).
    """
    job.dir.mkdir(parents=True, exist_ok=True)
    flat = flatten(cfg)
    fprint = fingerprint(flat)
    reused = reuse(fprint, job)
    if reused is not None:
        log.info("reused completed run %s (fingerprint %s)", reused["reused_from"], fprint)
        return reused
    ahead = _precomputed.pop(fprint, None)
    if ahead is not None:
        log.info("trained ahead by the launcher, with other jobs as one population; recording its results")
    _discard(job.dir)
    record: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "fingerprint": fprint,
        "job_num": job.num,
        "overrides": job.overrides,
        "output_dir": str(job.dir),
        "seed": cfg.get("seed"),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **flat,
    }
    start = time.perf_counter()
    try:
        fits = ahead if ahead is not None else _fit_folds(cfg, *check(cfg))  # a population checked its members
        record |= _metrics(fits)
        record["artifacts"] = _write_outputs(job.dir, fits)
        record["status"] = "diverged" if any(fit.diverged for _, fit in fits) else "completed"
        if record["status"] == "diverged":
            record["error"] = "loss became NaN or inf; training stopped"
    except SweepConfigError as error:
        record["error"] = f"SweepConfigError: {error}"
    except Exception as error:
        _log_traceback_to_files()
        record["error"] = f"{type(error).__name__}: {error}"
    record["fit_time_s"] = record.get("fit_time_s", math.nan)
    record["elapsed_s"] = round(time.perf_counter() - start, 4)
    record["versions"] = versions()
    write_record(job.dir, record)
    if job.sweep_dir is not None and record["status"] == "completed":
        _completed_index(Path(job.sweep_dir)).setdefault(fprint, []).append(job.dir)
    return record


#: Per-fold results of configs trained ahead of their job (a population), by fingerprint; see :func:`precompute`.
_precomputed: dict[str, list[tuple[int | None, Fitted]]] = {}


def precompute(fprint: str, fits: list[tuple[int | None, Fitted]] | None) -> None:
    """Give the next :func:`run_job` of the config with fingerprint ``fprint`` its per-fold results (``None``: take them back).

    ``fits`` is what :func:`_fit_folds` would have returned; that run records them
    (metrics, history, artifacts) instead of training. Each is taken once.
    """
    if fits is None:
        _precomputed.pop(fprint, None)
    else:
        _precomputed[fprint] = fits


def reusable(fprint: str, job: Job) -> bool:
    """Whether :func:`reuse` would find a completed record for ``fprint`` (nothing is copied)."""
    candidates = [job.dir]
    if job.sweep_dir is not None:
        candidates += _completed_index(Path(job.sweep_dir)).get(fprint, [])
    return any(_completed(source, fprint) is not None for source in candidates)


def reuse(fprint: str, job: Job) -> dict[str, Any] | None:
    """The completed record with fingerprint ``fprint`` in ``job.dir`` or elsewhere in ``job.sweep_dir``, now in ``job.dir``.

    A record in ``job.dir`` is left untouched; one from another dir is copied in with its
    artifacts (``output_dir``, ``job_num``, ``overrides`` set to this job's, ``reused_from``
    to where it came from). ``None`` when there is none to reuse.
    """
    candidates = [job.dir]
    if job.sweep_dir is not None:
        candidates += [d for d in _completed_index(Path(job.sweep_dir)).get(fprint, []) if d != job.dir]
    for source in candidates:
        record = _completed(source, fprint)
        if record is None:
            continue
        if source != job.dir:
            for name in record.get("artifacts", []):
                atomic_write(job.dir / name, lambda tmp, name=name: shutil.copyfile(source / name, tmp))
            if _completed(source, fprint) != record:  # rewritten while we copied: train instead
                continue
            record |= {"output_dir": str(job.dir), "job_num": job.num, "overrides": job.overrides}
            record["reused_from"] = str(source)
            write_record(job.dir, record)
        return record | {"reused_from": record.get("reused_from", str(source))}
    return None


def _completed(job_dir: Path, fprint: str) -> dict[str, Any] | None:
    """The record in ``job_dir`` if it is completed, has fingerprint ``fprint`` and all its artifacts exist."""
    try:
        record = read_record(job_dir / RECORD)
    except (OSError, ValueError):
        return None
    whole = all((job_dir / name).is_file() for name in record.get("artifacts", []))
    return record if record.get("status") == "completed" and record.get("fingerprint") == fprint and whole else None


#: ``(sweep dir, {fingerprint: [dirs holding a completed record]})``, scanned once per sweep and process.
_index: tuple[Path, dict[str, list[Path]]] | None = None


def _completed_index(sweep_dir: Path) -> dict[str, list[Path]]:
    """Completed records under ``sweep_dir`` by fingerprint: scanned at this process's first job of the sweep.

    :func:`run_job` adds the records it completes; other processes' later records are not
    seen (a joblib worker misses its siblings'), which costs a retrain, never a wrong reuse:
    entries are re-checked before use. One scan per sweep keeps resume linear in its size.
    """
    global _index
    if _index is None or _index[0] != sweep_dir:
        found: dict[str, list[Path]] = {}
        for path in find_records(sweep_dir) if sweep_dir.is_dir() else []:
            try:
                record = read_record(path)
            except (OSError, ValueError):
                continue
            if record.get("status") == "completed":
                found.setdefault(str(record.get("fingerprint")), []).append(path.parent)
        _index = (sweep_dir, found)
    return _index[1]


def _discard(job_dir: Path) -> None:
    """Remove a record (and the artifacts it lists) that this run will replace, the record first, and stray temporary files.

    From here until the new record is written, the dir holds no record, so neither a
    table nor a resume can take a stale or half-written run for this one.
    """
    try:
        old = read_record(job_dir / RECORD)
    except (OSError, ValueError):
        old = {}
    (job_dir / RECORD).unlink(missing_ok=True)
    for name in old.get("artifacts", []):
        (job_dir / name).unlink(missing_ok=True)
    for leftover in job_dir.glob(".tmp-*"):  # from a run killed outright (SIGKILL) mid-write
        leftover.unlink(missing_ok=True)


def _log_traceback_to_files() -> None:
    """Write the exception being handled, with its traceback, to the log files only (Hydra's job log), not the console."""
    entry = log.makeRecord(log.name, logging.ERROR, __file__, 0, "run failed", (), sys.exc_info())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(entry)


def _fit_folds(cfg: DictConfig, data: Dataset, folds: list[Fold]) -> list[tuple[int | None, Fitted]]:
    """Train a fresh model on each of ``folds`` (:func:`sweep.tasks.fit`); every fold starts from the same seed."""
    fits = []
    for fold in folds:
        fitted = fit_task(cfg, data.x[fold.train], data.y[fold.train], data.x[fold.val], data.y[fold.val])
        fits.append((fold.index, fitted))
        if fitted.diverged:
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


def _write_outputs(job_dir: Path, fits: list[tuple[int | None, Fitted]]) -> list[str]:
    """Write the history (a ``fold`` column when several folds ran) and each fit's artifacts, atomically; return their names."""
    several = len(fits) > 1
    history = [{"fold": index, **row} if several else row for index, fit in fits for row in fit.history]
    written = []
    if history:
        write_text(job_dir / HISTORY, history_csv(history))
        written.append(HISTORY)
    for index, fit in fits:
        for name, write in fit.artifacts.items():
            path = Path(name)
            filename = f"{path.stem}_fold{index}{path.suffix}" if several else name
            atomic_write(job_dir / filename, write)
            written.append(filename)
    return written
