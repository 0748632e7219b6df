"""A sweep's finished runs, found by fingerprint wherever they sit in the sweep dir, and never lost.

Before a job trains, :func:`prepare` settles its dir under the sweep's records lock
(:func:`sweep.sweep_dir.records_lock`, so jobs in other processes see each other's moves):

1. a record of another config in the job's dir is moved aside to ``kept/<fingerprint>/``
   (:func:`set_aside`): it stays in every table and is reused when its config comes back;
2. a whole completed run of this config is reused (:func:`reuse`): in place, or moved in from
   wherever an earlier run of the sweep dir left it (another job dir, ``kept/``), or copied
   from a job of this same run (a duplicate config of the grid);
3. otherwise this config's stale records are removed (:func:`clear`): a failed, diverged or
   incomplete one in the job's dir or kept aside, which the run about to start supersedes.

A record is reused only when it is completed, its config values match the config (not only
its fingerprint) and its artifacts have their recorded sizes; otherwise the log says why.
Records carry the token of the sweep run that wrote or last reused them (``sweep_run``), which
tells an earlier run's record (moved) from this run's (copied).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from sweep.config import UNFINGERPRINTED
from sweep.records import MOVED, RECORD, artifact_problem, atomic_write, find_records, move_record, read_record, versions, write_record
from sweep.sweep_dir import KEPT, Job, SweepRun, kept_dirs, new_kept_dir, records_lock

log = logging.getLogger(__name__)

Record = dict[str, Any]


def prepare(fprint: str, flat: dict[str, Any], job: Job, run: SweepRun | None) -> Record | None:
    """Settle ``job.dir`` for a run of config ``flat`` (fingerprint ``fprint``): the reused record, or ``None`` to train.

    In a dir that held no record when the sweep run began (``run.fresh``) this takes no lock
    (:func:`sweep.sweep_dir.records_lock`).
    """
    token = run.token if run is not None else None
    if job.sweep_dir is not None:
        _completed_index(Path(job.sweep_dir))  # the first scan reads every record: outside the lock
    with records_lock(job.sweep_dir, run):
        set_aside(fprint, job)
        reused = reuse(fprint, job, flat, token)
        if reused is None:
            clear(fprint, job)
    return reused


def completed(fprint: str, job: Job) -> None:
    """Note that ``job.dir`` now holds a completed run of ``fprint``, for this process's later jobs."""
    if job.sweep_dir is not None:
        _completed_index(Path(job.sweep_dir)).setdefault(fprint, []).append(job.dir.resolve())


def reusable(fprint: str, job: Job, flat: dict[str, Any]) -> bool:
    """Whether :func:`reuse` would find a whole completed run of this config (nothing is moved or copied)."""
    return any(whole_run(source, fprint, flat)[0] is not None for source in _sources(fprint, job))


def reuse(fprint: str, job: Job, flat: dict[str, Any], run: str | None) -> Record | None:
    """The whole completed run of this config found in the sweep, now in ``job.dir`` (with ``reused_from``); ``None`` if none.

    In a sweep run (``run``), a record reused in place is stamped with the run, so that a
    duplicate job of the same run copies it instead of moving it away.
    """
    here = job.dir.resolve()
    for source in _sources(fprint, job):
        record, why = whole_run(source, fprint, flat)
        if why is not None:
            log.info("not reusing the run in %s: %s", source, why)
        if record is None:
            continue
        if source != here:
            record = _bring(source, record, job, run)
            if record is None:
                continue
        elif run is not None and record.get("sweep_run") != run:
            record["sweep_run"] = run
            write_record(job.dir, record)
        _note_versions(record)
        return record | {"reused_from": record.get("reused_from", str(source))}
    return None


def whole_run(job_dir: Path, fprint: str, flat: dict[str, Any]) -> tuple[Record | None, str | None]:
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
    changed = next((key for key, value in flat.items() if key not in UNFINGERPRINTED and not recorded_as(record.get(key), value)), None)
    if changed is not None:
        return None, f"its {changed}={record.get(changed)!r} is not this config's {flat[changed]!r} (its fingerprint is stale)"
    problem = artifact_problem(job_dir, record)
    return (None, problem) if problem else (record, None)


def set_aside(fprint: str, job: Job) -> None:
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
        _relocate(_completed_index(Path(job.sweep_dir)), old["fingerprint"], job.dir.resolve(), dest.resolve())


def clear(fprint: str, job: Job) -> None:
    """Remove this config's records that the run about to start supersedes: a stale one in ``job.dir``, failed ones kept aside."""
    for stale in kept_dirs(_kept_root(job), fprint):
        discard(stale)
        shutil.rmtree(stale, ignore_errors=True)
    discard(job.dir)


def discard(job_dir: Path) -> None:
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


def _sources(fprint: str, job: Job) -> list[Path]:
    """Where a record of ``fprint`` may be: the job's dir, the sweep's kept records, other job dirs of the sweep (resolved)."""
    found = [job.dir.resolve()]
    if job.sweep_dir is not None:
        sweep_dir = Path(job.sweep_dir)
        found += [d.resolve() for d in kept_dirs(sweep_dir, fprint)] + _completed_index(sweep_dir).get(fprint, [])
    return list(dict.fromkeys(found))


def _kept_root(job: Job) -> Path:
    """Where records set aside from ``job.dir`` go: the sweep dir's ``kept/``, or the run dir's own for a single run."""
    return Path(job.sweep_dir) if job.sweep_dir is not None else job.dir


def recorded_as(recorded: Any, value: Any) -> bool:
    """Whether a value read back from a record's JSON is the config's ``value``."""
    return json.dumps(recorded, sort_keys=True, default=str) == json.dumps(value, sort_keys=True, default=str)


def _bring(source: Path, record: Record, job: Job, run: str | None) -> Record | None:
    """Move (or copy, for this run's own duplicate) the run in ``source`` into ``job.dir``; ``None`` if it changed meanwhile."""
    here = job.dir.resolve()
    index = _completed_index(Path(job.sweep_dir)) if job.sweep_dir is not None else {}
    if run is not None and record.get("sweep_run") != run:
        move_record(source, job.dir)
        _relocate(index, record["fingerprint"], source, here)
        if source.parent.name == KEPT:
            shutil.rmtree(source, ignore_errors=True)
    else:
        for name in record.get("artifacts", []):
            atomic_write(job.dir / name, lambda tmp, name=name: shutil.copyfile(source / name, tmp))
        if read_record(source / RECORD) != record:  # rewritten while we copied: train instead
            return None
        index.setdefault(record["fingerprint"], []).append(here)
    record |= {"output_dir": str(job.dir), "job_num": job.num, "overrides": job.overrides}
    record |= {"reused_from": str(source), "sweep_run": run}
    write_record(job.dir, record)
    (job.dir / MOVED).unlink(missing_ok=True)
    return record


def _relocate(index: dict[str, list[Path]], fprint: str, old: Path, new: Path) -> None:
    """Record in ``index`` that the completed run of ``fprint`` in ``old`` is now in ``new``."""
    index[fprint] = [d for d in index.get(fprint, []) if d != old] + [new]


def _note_versions(record: Record) -> None:
    """Log when a reused run was trained under another major version of TensorFlow, Keras or scikit-learn."""
    then, now = record.get("versions") or {}, versions()
    for name in ("tensorflow", "keras", "scikit-learn"):
        old, new = str(then.get(name, "")), str(now.get(name, ""))
        if old and new and old.split(".")[0] != new.split(".")[0]:
            log.warning("reused run %s was trained with %s %s; %s %s is installed now", record.get("output_dir"), name, old, name, new)


#: ``(sweep dir, {fingerprint: [resolved dirs holding a completed record]})``, scanned once per sweep and process.
_index: tuple[Path, dict[str, list[Path]]] | None = None


def _completed_index(sweep_dir: Path) -> dict[str, list[Path]]:
    """Completed records under ``sweep_dir`` by fingerprint: scanned at this process's first job of the sweep.

    Later jobs of this process add and move entries; other processes' later records are not
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
                found.setdefault(str(record.get("fingerprint")), []).append(path.parent.resolve())
        _index = (sweep_dir, found)
    return _index[1]
