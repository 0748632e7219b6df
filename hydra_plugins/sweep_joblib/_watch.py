"""The worker side of ``hydra/launcher=joblib``: every job runs under the eye of its worker's witness process.

When a job starts, its worker writes :data:`RUNNING` into the job dir (who runs it, its
config and overrides, when it started) and tells its witness the path; when the job ends,
the worker tells the witness and removes the file. The witness, started once per worker,
waits for the worker to close the pipe. If the worker dies with a job in progress, the
witness renames that job's :data:`RUNNING` to :data:`KILLED`, then exits.

When loky finds a dead worker it kills every other worker with its children, the children
first (``kill_process_tree``), so a survivor's witness dies before its worker and marks
nothing: :data:`KILLED` is left only by the worker that died by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf

#: In a job dir while its job runs in a joblib worker.
RUNNING = ".sweep-running"
#: What :data:`RUNNING` becomes when the worker running the job died by itself.
KILLED = ".sweep-killed"

#: The witness: reads the path of the job in progress ("" when none) until its worker closes the pipe.
WITNESS = f"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
current = ""
for line in sys.stdin:
    current = line.strip()
if current:
    killed = os.path.join(os.path.dirname(current), {KILLED!r})
    try:
        os.replace(current, killed)
        os.utime(killed)  # its time is the worker's death
    except OSError:
        pass
"""

_witness: subprocess.Popen | None = None


def witness() -> subprocess.Popen:
    """This worker's witness process, started at its first job (again if it died)."""
    global _witness
    if _witness is None or _witness.poll() is not None:
        _witness = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", WITNESS],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    return _witness


def _tell(line: str) -> None:
    """Send one line to the witness (a witness that is gone only costs the attribution of a death)."""
    try:
        witness().stdin.write(line + "\n")
        witness().stdin.flush()
    except OSError:
        pass


class Watched:
    """The sweep's task function as a joblib worker runs it: :data:`RUNNING` in the job dir while it runs."""

    def __init__(self, task_function: TaskFunction) -> None:
        self.task_function = task_function

    def __call__(self, cfg: DictConfig) -> Any:
        from sweep.records import write_text

        hydra_cfg = HydraConfig.get()
        marker = Path(hydra_cfg.runtime.output_dir) / RUNNING
        note = {
            "worker_pid": os.getpid(),
            "witness_pid": witness().pid,
            "job_num": hydra_cfg.job.num,
            "overrides": list(hydra_cfg.overrides.task),
            "started": time.time(),
            "config": _plain(cfg),
        }
        write_text(marker, json.dumps(note, default=str))
        _tell(str(marker))
        try:
            return self.task_function(cfg)
        finally:
            _tell("")
            marker.unlink(missing_ok=True)


def _plain(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` as plain data, resolved if it can be (a bad interpolation is the job's to report, not the launcher's)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)


def execute(idx: int, *args: Any) -> tuple[int, JobReturn]:
    """Hydra's joblib ``execute_job``, returning the job's index with its result (results arrive in any order)."""
    from hydra_plugins.hydra_joblib_launcher._core import execute_job

    return idx, execute_job(idx, *args)
