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

import json
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
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from sweep.config import UNFINGERPRINTED, SweepConfigError, fingerprint, flatten, validate
from sweep.data import Dataset, load_dataset
from sweep.records import (
    HISTORY,
    MOVED,
    RECORD,
    artifact_problem,
    artifact_sizes,
    atomic_write,
    find_records,
    history_csv,
    move_record,
    read_record,
    versions,
    write_record,
    write_text,
)
from sweep.splits import Fold, make_folds
from sweep.sweep_dir import KEPT, current_run, kept_dirs, new_kept_dir, records_lock
from sweep.tasks import Fitted
from sweep.tasks import fit as fit_task

log = logging.getLogger(__name__)

#: The longest first line of an error kept in a record (the job's log has all of it).
MAX_ERROR_CHARS = 300


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
    returned record then has ``reused_from``). A record of another config in ``job.dir``
    is moved aside (:data:`sweep.sweep_dir.KEPT`), never deleted.
    """
    job.dir.mkdir(parents=True, exist_ok=True)
    flat = flatten(cfg)
    fprint = fingerprint(flat)
    run = current_run(job.sweep_dir) if job.sweep_dir is not None else None
    with records_lock(job.sweep_dir):
        _set_aside(fprint, job)
        reused = reuse(fprint, job, flat, run)
        if reused is None:
            _clear(fprint, job)
    if reused is not None:
        log.info("reused completed run %s (fingerprint %s)", reused["reused_from"], fprint)
        return reused
    ahead = _precomputed.pop(fprint, None)
    if ahead is not None:
        log.info("trained ahead by the launcher, with other jobs as one population; recording its results")
    record = _new_record(job, flat, fprint, run, datetime.now(timezone.utc))
    start = time.perf_counter()
    try:
        if ahead is None:
            data, folds = check(cfg)
            fits = _fit_folds(cfg, data, folds)
        else:  # a population checked its members
            data, fits = load_dataset(cfg.dataset), ahead
        record |= _about_data(data) | _metrics(fits)
        record["artifacts"] = artifact_sizes(job.dir, _write_outputs(job.dir, fits))
        record["status"] = "diverged" if any(fit.diverged for _, fit in fits) else "completed"
        if record["status"] == "diverged":
            record["error"] = "loss diverged: NaN or inf, or above 1e10 or 1e6 x its first epoch's (sweep.tasks.exploded)"
    except (Exception, SystemExit) as error:  # SystemExit: user code called sys.exit(); this job fails, the sweep goes on
        _log_traceback_to_files()
        record["error"] = one_line(error)
    record["fit_time_s"] = record.get("fit_time_s", math.nan)
    record["elapsed_s"] = round(time.perf_counter() - start, 4)
    record["versions"] = versions()
    write_record(job.dir, record)
    if job.sweep_dir is not None and record["status"] == "completed":
        _completed_index(Path(job.sweep_dir)).setdefault(fprint, []).append(job.dir)
    return record


def _new_record(job: Job, flat: dict[str, Any], fprint: str, run: str | None, started: datetime) -> dict[str, Any]:
    """The record of a run of config ``flat`` in ``job`` before anything is known of its outcome: failed, no error yet."""
    return {
        "status": "failed",
        "error": None,
        "fingerprint": fprint,
        "job_num": job.num,
        "overrides": job.overrides,
        "output_dir": str(job.dir),
        "sweep_run": run,
        "seed": flat.get("seed"),
        "started_at": started.isoformat(timespec="seconds"),
        **flat,
    }


def record_failure(cfg: DictConfig, job: Job, error: str, started: float, elapsed_s: float) -> dict[str, Any]:
    """Write the failed record of a run whose process died before it could write one (its launcher writes it); return it."""
    flat = flatten(cfg)
    run = current_run(job.sweep_dir) if job.sweep_dir is not None else None
    record = _new_record(job, flat, fingerprint(flat), run, datetime.fromtimestamp(started, timezone.utc))
    record |= {"error": error, "fit_time_s": math.nan, "elapsed_s": round(elapsed_s, 4), "versions": versions()}
    write_record(job.dir, record)
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


def _sources(fprint: str, job: Job) -> list[Path]:
    """Where a record of ``fprint`` may be: the job's dir, the sweep's kept records, other job dirs of the sweep."""
    found = [job.dir]
    if job.sweep_dir is not None:
        found += kept_dirs(Path(job.sweep_dir), fprint) + _completed_index(Path(job.sweep_dir)).get(fprint, [])
    return list(dict.fromkeys(found))


def reusable(fprint: str, job: Job, flat: dict[str, Any]) -> bool:
    """Whether :func:`reuse` would find a completed record for ``fprint`` (nothing is moved or copied)."""
    return any(_reusable(source, fprint, flat)[0] is not None for source in _sources(fprint, job))


def reuse(fprint: str, job: Job, flat: dict[str, Any], run: str | None = None) -> dict[str, Any] | None:
    """The completed record of this config (``fprint``, ``flat``) found in the sweep, now in ``job.dir``; ``None`` if none.

    A record in ``job.dir`` is left untouched. One from an earlier run of the sweep dir
    (another job dir, or kept aside) is moved in with its artifacts, so the dir holds each
    finished run once; one written by this run (``run``: a duplicate config of the grid) is
    copied. A record of this config that cannot be reused is named in the log with the reason.
    """
    for source in _sources(fprint, job):
        record, why = _reusable(source, fprint, flat)
        if why is not None:
            log.info("not reusing the run in %s: %s; training it again", source, why)
        if record is None:
            continue
        if source != job.dir:
            record = _bring(source, record, job, run)
            if record is None:
                continue
        _note_versions(record)
        return record | {"reused_from": record.get("reused_from", str(source))}
    return None


def _reusable(job_dir: Path, fprint: str, flat: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` if ``job_dir`` holds a whole completed run of this config; else ``(None, why)`` (``why`` ``None``: another config's, or none)."""
    try:
        record = read_record(job_dir / RECORD)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as error:
        return None, f"its {RECORD} is unreadable ({error})"
    if record.get("fingerprint") != fprint:
        return None, None
    if record.get("status") != "completed":
        return None, f"it {record.get('status')}"
    changed = next((key for key, value in flat.items() if key not in UNFINGERPRINTED and not _equal(record.get(key), value)), None)
    if changed is not None:
        return None, f"its {changed}={record.get(changed)!r} is not this config's {flat[changed]!r} (its fingerprint is stale)"
    problem = artifact_problem(job_dir, record)
    return (None, problem) if problem else (record, None)


def _equal(recorded: Any, value: Any) -> bool:
    """Whether a value read back from a record's JSON is the config's ``value``."""
    return json.dumps(recorded, sort_keys=True, default=str) == json.dumps(value, sort_keys=True, default=str)


def _bring(source: Path, record: dict[str, Any], job: Job, run: str | None) -> dict[str, Any] | None:
    """Move (or copy, for this run's own duplicate) the run in ``source`` into ``job.dir``; ``None`` if it changed meanwhile."""
    index = _completed_index(Path(job.sweep_dir)) if job.sweep_dir is not None else {}
    if run is not None and record.get("sweep_run") != run:
        move_record(source, job.dir)
        index[record["fingerprint"]] = [d for d in index.get(record["fingerprint"], []) if d != source]
        if source.parent.name == KEPT:
            shutil.rmtree(source, ignore_errors=True)
    else:
        for name in record.get("artifacts", []):
            atomic_write(job.dir / name, lambda tmp, name=name: shutil.copyfile(source / name, tmp))
        if read_record(source / RECORD) != record:  # rewritten while we copied: train instead
            return None
    record |= {"output_dir": str(job.dir), "job_num": job.num, "overrides": job.overrides}
    record |= {"reused_from": str(source), "sweep_run": run}
    write_record(job.dir, record)
    (job.dir / MOVED).unlink(missing_ok=True)
    index.setdefault(record["fingerprint"], []).append(job.dir)
    return record


def _note_versions(record: dict[str, Any]) -> None:
    """Log when a reused run was trained under another major version of TensorFlow, Keras or scikit-learn."""
    then, now = record.get("versions") or {}, versions()
    for name in ("tensorflow", "keras", "scikit-learn"):
        old, new = str(then.get(name, "")), str(now.get(name, ""))
        if old and new and old.split(".")[0] != new.split(".")[0]:
            log.warning("reused run %s was trained with %s %s; %s %s is installed now", record.get("output_dir"), name, old, name, new)


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


def _kept_root(job: Job) -> Path:
    """Where records set aside from ``job.dir`` go: the sweep dir's :data:`KEPT`, or the run dir's own for a single run."""
    return Path(job.sweep_dir) if job.sweep_dir is not None else job.dir


def _set_aside(fprint: str, job: Job) -> None:
    """Move a record of another config than ``fprint`` (any status) out of ``job.dir`` into the kept records."""
    try:
        old = read_record(job.dir / RECORD)
    except (OSError, ValueError):
        return
    if old.get("fingerprint") == fprint:
        return
    dest = new_kept_dir(_kept_root(job), str(old.get("fingerprint")))
    move_record(job.dir, dest)
    log.info("the run of another config in %s was moved to %s", job.dir, dest)
    if job.sweep_dir is not None and old.get("status") == "completed":
        index = _completed_index(Path(job.sweep_dir))
        index[old["fingerprint"]] = [d for d in index.get(old["fingerprint"], []) if d != job.dir] + [dest]


def _clear(fprint: str, job: Job) -> None:
    """Remove this config's records that the run about to start supersedes: a stale one in ``job.dir``, failed ones kept aside."""
    for stale in kept_dirs(_kept_root(job), fprint):
        _discard(stale)
        shutil.rmtree(stale, ignore_errors=True)
    _discard(job.dir)


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
    (job_dir / MOVED).unlink(missing_ok=True)
    for leftover in job_dir.glob(".tmp-*"):  # from a run killed outright (SIGKILL) mid-write
        leftover.unlink(missing_ok=True)


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
    """One fold: its metrics. Several (``validation.fold=null``): their mean, plus each fold's under ``fold_metrics``.

    Either way with how it was trained (``trained_by``) and the rows it was fitted and scored
    on (``n_train_rows``, ``n_val_rows``: the smallest fold's when there are several).
    """
    about = {
        "trained_by": fits[0][1].trained_by,
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


def _about_data(data: Dataset) -> dict[str, Any]:
    """What the record says of the dataset: whether its test split was stratified, the labels behind class indices."""
    about: dict[str, Any] = {"test_split_stratified": data.stratified}
    if data.classes is not None:
        about["classes"] = list(data.classes)
    return about


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
