"""The path every run takes: reuse? → check (config, dataset, folds) → task per fold → record on disk.

:func:`run_job` never raises for a failing run: the failure is recorded (``status``
``failed`` or ``diverged``, ``error``; the traceback goes to the job's log file) and the
record returned, so a sweep goes on and its tables show the failure. The caller decides
what a failure means for the process. Only an interruption (``KeyboardInterrupt``)
propagates, leaving no record, so the run is redone on resume.

Resume: a whole completed run of the config anywhere in the sweep dir is reused instead of
training again, and no finished run of another config is lost (:mod:`sweep.resume`). Failed
and diverged records are never reused.

A launcher that trains several configs at once (``hydra/launcher=vectorized``, the default)
calls :func:`train` for them and hands each run its :class:`Trained` results; the run then
records them as its own.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from sweep.config import CLUSTER_COUNTS, SweepConfigError, fingerprint, flatten, validate
from sweep.data import Dataset, load_dataset
from sweep.engines import LOSS_BOUND, LOSS_GROWTH, Fitted, Member, fit_members
from sweep.records import HISTORY, artifact_sizes, atomic_write, history_csv, timestamp, versions, write_record, write_text
from sweep.resume import completed, prepare, set_aside, whole_run
from sweep.splits import Fold, make_folds
from sweep.sweep_dir import Job, SweepRun, current_run, records_lock
from sweep.warm_start import started

log = logging.getLogger(__name__)

#: The longest first line of an error kept in a record (the job's log has all of it).
MAX_ERROR_CHARS = 300


def primary_metric(cfg: DictConfig, record: dict[str, Any]) -> float:
    """The value named by ``task.metric`` in ``record`` (NaN if the run produced none)."""
    value = record.get(cfg.task.metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


def check(cfg: DictConfig) -> tuple[Dataset, list[Fold]]:
    """Everything that can be wrong before training: ranges, dataset file, folds, cluster count.

    Raises :class:`SweepConfigError` naming the key or file; returns the dataset and folds to train on.
    """
    validate(cfg)
    data = load_dataset(cfg.dataset, regression=cfg.task.name == "regress")
    folds = make_folds(cfg.validation, data.y)
    smallest = min(len(fold.train) for fold in folds)
    for key in CLUSTER_COUNTS:
        count = cfg.model.get(key)
        if count is not None and count > smallest:
            raise SweepConfigError(f"model.{key}={count}: more clusters than the {smallest} training rows")
    return data, folds


class Trained(NamedTuple):
    """A config's training done: its dataset, and ``(fold index, Fitted)`` per fold it trained."""

    data: Dataset
    fits: list[tuple[int | None, Fitted]]


def train(
    cfgs: list[DictConfig], checked: list[tuple[Dataset, list[Fold]]], max_population: int = 64, job_dir: Path | None = None
) -> list[Trained]:
    """Train every fold of every config (``checked`` is each one's :func:`check`) through :func:`sweep.engines.fit_members` at once.

    Each config's folds after its first diverged one are left out of its results (those trained
    alone are not even trained: :func:`sweep.engines.fit_members`). ``job_dir``: the one config's
    job dir, where its callbacks write (``None`` for a population: the graph runs no callbacks).
    A config's ``trainer.timeout_s`` counts from here, for all its folds.
    """
    members = []
    for cfg, (data, folds) in zip(cfgs, checked):
        deadline = _deadline(cfg)
        fresh = [
            Member(cfg, data.x, data.y, fold.train, fold.val, fold.index, out_dir=job_dir, classes=data.classes, deadline=deadline)
            for fold in folds
        ]
        members += started(cfg, fresh)
    fitted = iter(fit_members(members, max_population))
    out = []
    for data, folds in checked:
        fits = [(fold.index, next(fitted)) for fold in folds]
        end = next((i + 1 for i, (_, fit) in enumerate(fits) if fit.diverged), len(fits))
        out.append(Trained(data, fits[:end]))
    return out


def _deadline(cfg: DictConfig) -> float | None:
    """When the training of ``cfg``'s job must stop (``trainer.timeout_s`` from now), as ``time.monotonic()``; ``None``: never."""
    seconds = cfg.trainer.get("timeout_s")
    return None if seconds is None else time.monotonic() + seconds


def run_job(cfg: DictConfig, job: Job, trained: Trained | None = None) -> dict[str, Any]:
    """Run the config in ``cfg`` and write its record (and history, model) into ``job.dir``; return the record.

    ``trained``: its training, done by the launcher with other jobs' (:func:`train`); without
    it, the job checks and trains its config itself. A completed record of the same config
    already in the sweep is reused instead (the returned record then has ``reused_from``). A
    record of another config in ``job.dir`` is moved aside (:data:`sweep.sweep_dir.KEPT`), never deleted.
    """
    job.dir.mkdir(parents=True, exist_ok=True)
    flat = flatten(cfg)
    fprint = fingerprint(flat)
    run = current_run(job.sweep_dir) if job.sweep_dir is not None else None
    reused = prepare(fprint, flat, job, run)
    if reused is not None:
        log.info("reused completed run %s (fingerprint %s)", reused["reused_from"], fprint)
        return reused
    if trained is not None:
        log.info("trained by the launcher with other jobs; recording its results")
    record = _new_record(job, flat, fprint, run, datetime.now(timezone.utc))
    start = time.perf_counter()
    try:
        data, fits = trained if trained is not None else train([cfg], [check(cfg)], job_dir=job.dir)[0]
        record |= data.about() | _metrics(fits)
        record["artifacts"] = artifact_sizes(job.dir, _write_outputs(job.dir, fits, data))
        record["status"] = "diverged" if any(fit.diverged for _, fit in fits) else "completed"
        if record["status"] == "diverged":
            record["error"] = f"loss diverged: NaN or inf, or above {LOSS_BOUND:g} or {LOSS_GROWTH:g} x its first epoch's"
    except (Exception, SystemExit) as error:  # SystemExit: user code called sys.exit(); this job fails, the sweep goes on
        _log_traceback_to_files()
        record["error"] = one_line(error)
    record["fit_time_s"] = record.get("fit_time_s", math.nan)
    record["elapsed_s"] = round(time.perf_counter() - start, 4)
    record["versions"] = versions()
    write_record(job.dir, record)
    if record["status"] == "completed":
        completed(fprint, job)
    return record


def _new_record(job: Job, flat: dict[str, Any], fprint: str, run: SweepRun | None, started: datetime) -> dict[str, Any]:
    """The record of a run of config ``flat`` in ``job`` before anything is known of its outcome: failed, no error yet."""
    return {
        "status": "failed",
        "error": None,
        "fingerprint": fprint,
        "job_num": job.num,
        "overrides": job.overrides,
        "output_dir": str(job.dir),
        "sweep_run": run.token if run is not None else None,
        "seed": flat.get("seed"),
        "started_at": timestamp(started),
        **flat,
    }


def record_failure(cfg: DictConfig, job: Job, error: str, started: float, elapsed_s: float) -> dict[str, Any]:
    """Write the failed record of a run whose process died before it could write one (its launcher writes it); return it.

    Another config's record in ``job.dir`` is set aside first; a whole completed run of this
    config already there (written or reused before the process died) is kept and returned.
    """
    flat = flatten(cfg)
    fprint = fingerprint(flat)
    run = current_run(job.sweep_dir) if job.sweep_dir is not None else None
    with records_lock(job.sweep_dir, run):
        set_aside(fprint, job)
        done, _ = whole_run(job.dir, fprint, flat)
        if done is not None:
            return done
        record = _new_record(job, flat, fprint, run, datetime.fromtimestamp(started, timezone.utc))
        record |= {"error": error, "fit_time_s": math.nan, "elapsed_s": round(elapsed_s, 4), "versions": versions()}
        write_record(job.dir, record)
    return record


def one_line(error: BaseException) -> str:
    """``"<type>: <first line of the message>"``, saying how many more lines the job's log holds.

    Hydra's ``InstantiationException`` names the target on its first line and the error
    the target raised on the next: both are kept, the target's error as its own one line.
    """
    lines = _message_lines(error)
    more = f" [{len(lines) - 1} more lines in the job's log]" if len(lines) > 1 else ""
    return f"{type(error).__name__}: {lines[0][:MAX_ERROR_CHARS]}{more}"


def _message_lines(error: BaseException) -> list[str]:
    cause = error.__cause__
    if isinstance(error, InstantiationException) and cause is not None:
        head, inner = str(error).splitlines()[0].rstrip(":"), _message_lines(cause)
        return [f"{head}: {type(cause).__name__}: {inner[0]}", *inner[1:]]
    return [line.strip() for line in str(error).splitlines() if line.strip()] or [""]


def _log_traceback_to_files() -> None:
    """Write the exception being handled, with its traceback, to the log files only (Hydra's job log), not the console."""
    entry = log.makeRecord(log.name, logging.ERROR, __file__, 0, "run failed", (), sys.exc_info())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(entry)


def _metrics(fits: list[tuple[int | None, Fitted]]) -> dict[str, Any]:
    """One fold: its metrics. Several (``validation.fold=null``): their mean, plus each fold's under ``fold_metrics``.

    Either way with how it was trained (``trained_by``) and the rows it was fitted and scored
    on (``n_train_rows``, ``n_val_rows``: the smallest fold's when there are several).
    """
    unsupported = next((fit.graph_unsupported for _, fit in fits if fit.graph_unsupported), None)
    resumed = min(fit.resumed_epochs for _, fit in fits)
    about = {
        "trained_by": "; ".join(dict.fromkeys(fit.trained_by for _, fit in fits)),
        "population_size": max(fit.population_size for _, fit in fits),
        **({"graph_unsupported": unsupported} if unsupported else {}),
        **({"resumed_epochs": resumed} if resumed else {}),
        "n_train_rows": min(fit.n_train_rows for _, fit in fits),
        "n_val_rows": min(fit.n_val_rows for _, fit in fits),
    }
    if len(fits) == 1:
        return dict(fits[0][1].metrics) | about
    names = list(fits[0][1].metrics)
    out: dict[str, Any] = {name: float(np.mean([fit.metrics[name] for _, fit in fits])) for name in names}
    out["fit_time_s"] = float(sum(fit.metrics["fit_time_s"] for _, fit in fits))
    out["fold_metrics"] = [
        {"fold": index, **fit.metrics, "n_train_rows": fit.n_train_rows, "n_val_rows": fit.n_val_rows} for index, fit in fits
    ]
    return out | about


def _write_outputs(job_dir: Path, fits: list[tuple[int | None, Fitted]], data: Dataset) -> list[str]:
    """Write the history (a ``fold`` column when several folds ran), each fit's artifacts and, beside a saved model,
    the dataset's (:meth:`sweep.data.Dataset.artifacts`), atomically; return their names."""
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
    if any(fit.artifacts for _, fit in fits):
        for name, write in data.artifacts().items():
            atomic_write(job_dir / name, write)
            written.append(name)
    return written
