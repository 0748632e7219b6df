"""The sweep's side of ``hydra/launcher=joblib``: Hydra's joblib launch, and what to do when a worker dies.

Jobs run as in hydra-joblib-launcher (the same ``Parallel`` settings, loky processes,
Hydra's ``execute_job``); their results are collected as they arrive. When the pool breaks
because a worker died, the witnesses (:mod:`hydra_plugins.sweep_joblib._watch`) say which
job that worker was running: it is recorded ``failed`` here, in the sweep's process (its
worker is gone), with the signal that killed it, and its job returns NaN like any failed
run of a multirun. Every job without a result, including those the broken pool's other
workers were running, then runs again in a fresh pool; jobs that had completed reuse
their records. A worker that died between jobs fails no job: the unfinished ones run again,
up to :data:`MAX_UNEXPLAINED_BREAKS` times in a row; then the pool's error is raised.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.sweep_joblib._watch import KILLED, RUNNING, execute

log = logging.getLogger(__name__)

#: After a break, how long the witnesses of the jobs in progress may take to mark theirs.
WITNESS_WAIT_S = 10.0

#: Breaks in a row with no job to blame (a worker that died between jobs) before the launch gives up.
MAX_UNEXPLAINED_BREAKS = 2

#: loky's ``TerminatedWorkerError`` names the exit codes of the dead workers: ``{SIGKILL(-9)}``.
EXIT_CODES = re.compile(r"exit codes of the workers are \{([^}]*)\}")


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Run the jobs in joblib workers; a job whose worker dies is recorded failed and the others run on.

    Each job's line is printed as its result arrives (:mod:`sweep.progress`).
    """
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed

    from sweep.progress import current

    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    joblib_cfg = {**launcher.joblib, "backend": "loky"}  # Hydra's choice: threads do not suit Hydra's jobs
    process_joblib_cfg(joblib_cfg)
    log.info("Joblib.Parallel(%s) is launching %d jobs", ",".join(f"{k}={v}" for k, v in joblib_cfg.items()), len(job_overrides))
    log.info("Launching jobs, sweep output dir : %s", sweep_dir)
    todo = {initial_job_idx + i: list(overrides) for i, overrides in enumerate(job_overrides)}
    for idx, overrides in todo.items():
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))

    state = Singleton.get_state()
    done: dict[int, JobReturn] = {}
    unexplained = 0
    while todo:
        since = time.time()
        args = (launcher.hydra_context, launcher.config, launcher.task_function, state)
        jobs = [delayed(execute)(idx, overrides, *args) for idx, overrides in todo.items()]
        try:
            for idx, ret in Parallel(**joblib_cfg, return_as="generator_unordered")(jobs):
                done[idx] = ret
                del todo[idx]
                current().report(ret)
        except BrokenProcessPool as broken:
            killed = killed_jobs(sweep_dir, since)
            unexplained = 0 if killed else unexplained + 1
            if unexplained > MAX_UNEXPLAINED_BREAKS:
                raise
            why = death(broken)
            for marker, note in killed:
                done[note["job_num"]] = fail(marker, note, why, sweep_dir)
                todo.pop(note["job_num"], None)
                log.warning("#%s %s: %s; recorded failed", note["job_num"], " ".join(note["overrides"]), why)
                current().report(done[note["job_num"]])
            if not killed:
                log.warning("%s between jobs", why)
            log.warning("running the %d unfinished job(s) again in a new pool", len(todo))
    return [done[idx] for idx in sorted(done)]


def killed_jobs(sweep_dir: Path, since: float) -> list[tuple[Path, dict[str, Any]]]:
    """The jobs started since ``since`` whose worker died by itself (:data:`KILLED`), with their notes.

    Waits (at most :data:`WITNESS_WAIT_S`) until no job is marked running by a live witness,
    then removes the other marks: those of the workers loky killed, and of jobs that had
    written their record before their worker died.
    """
    deadline = time.monotonic() + WITNESS_WAIT_S
    notes = _notes(sweep_dir, since)
    while any(path.name == RUNNING and _alive(note["witness_pid"]) for path, note in notes):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
        notes = _notes(sweep_dir, since)
    killed = []
    for path, note in notes:
        if path.name == KILLED and not _recorded_itself(path.parent, note):
            killed.append((path, note))
        else:  # a survivor, or a job whose record was written before its worker died: it runs again (reused)
            path.unlink(missing_ok=True)
    return killed


def _recorded_itself(job_dir: Path, note: dict[str, Any]) -> bool:
    """Whether the job of ``note`` wrote its record before its worker died."""
    record = job_dir / "result.json"
    return record.is_file() and record.stat().st_mtime >= note["started"]


def _notes(sweep_dir: Path, since: float) -> list[tuple[Path, dict[str, Any]]]:
    """Every :data:`RUNNING` and :data:`KILLED` note under ``sweep_dir`` written since ``since``."""
    found = []
    for path in [*sweep_dir.rglob(RUNNING), *sweep_dir.rglob(KILLED)]:
        try:
            note = json.loads(path.read_text())
        except (OSError, ValueError):  # renamed or removed meanwhile: seen on the next look
            continue
        if note.get("started", 0) >= since:
            found.append((path, note))
    return found


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def death(broken: BaseException) -> str:
    """How the worker died, from loky's message: ``worker process killed by SIGKILL (out of memory?)``."""
    match = EXIT_CODES.search(str(broken))
    names = sorted({code.split("(")[0] for code in match.group(1).split(", ")}) if match else []
    if len(names) == 1 and names[0].startswith("SIG"):
        return f"worker process killed by {names[0]}" + (" (out of memory?)" if names[0] == "SIGKILL" else "")
    return "worker process died" + (f" (exit codes {match.group(1)})" if match else "")


def fail(marker: Path, note: dict[str, Any], error: str, sweep_dir: Path) -> JobReturn:
    """Record the job of ``note`` failed with ``error``; its result, NaN."""
    from sweep.run import Job, record_failure

    job_dir = marker.parent
    cfg = OmegaConf.create(note["config"])
    job = Job(job_dir, note["job_num"], note["overrides"], sweep_dir)
    record_failure(cfg, job, error, note["started"], elapsed_s=marker.stat().st_mtime - note["started"])
    marker.unlink()
    hydra_yaml = job_dir / ".hydra" / "hydra.yaml"
    hydra_cfg = OmegaConf.load(hydra_yaml) if hydra_yaml.is_file() else None
    name = OmegaConf.select(hydra_cfg, "hydra.job.name") if isinstance(hydra_cfg, DictConfig) else None
    return JobReturn(
        overrides=note["overrides"],
        cfg=cfg,
        hydra_cfg=hydra_cfg,
        working_dir=str(job_dir),
        task_name=name,
        status=JobStatus.COMPLETED,  # as the app returns for a failed run of a multirun: the sweep goes on
        _return_value=math.nan,
    )
