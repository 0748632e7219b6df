"""The ``sweep`` command: Hydra composes the config, :func:`sweep.run.run_job` runs and records it.

Returns the run's ``task.metric`` as a float so Hydra sweepers (Optuna) can optimise
it. A single run that fails exits non-zero with a one-line message; in a multirun the
failure is recorded, NaN returned and the sweep goes on. A completed run of the same
config already in the sweep dir is reused, not retrained.

SIGTERM is turned into ``KeyboardInterrupt``, like Ctrl-C: the run in progress leaves no
record (its temporary files are removed), finished records stay, and the command exits
with one line saying how to resume. The signal is also remembered, and every job checks
it before it starts: a library that swallows the ``KeyboardInterrupt`` (Keras' metric
set-up has bare ``except:`` clauses), or Python itself when the signal lands in a weakref
callback, cannot make the sweep run on.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import sys
from pathlib import Path
from types import FrameType

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import sweep.backend  # noqa: F401  (quiet TensorFlow before anything imports it)
from sweep.config import SweepConfigError, config_dir
from sweep.run import Job, Trained, primary_metric, run_job
from sweep.scaling import apply_threads
from sweep.sweep_dir import held, release

log = logging.getLogger("sweep")

#: The name of the signal that asked this process to stop, once one has.
_stopped_by: str | None = None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def run(cfg: DictConfig, trained: Trained | None = None) -> float:
    """Run one composed config; return the metric (NaN unless completed).

    A single run logs ``overrides -> metric (time)``; in a multirun, the sweep's process
    prints each job's line as it finishes, with the sweep's progress (:mod:`sweep.progress`).
    ``trained``: the job's training, when sweep's launcher trained it with other jobs.
    """
    stop_if_asked()
    hydra_cfg = HydraConfig.get()
    try:
        apply_threads(cfg, hydra_cfg.get("launcher"))
    except SweepConfigError:
        pass  # run_job's check refuses the same value: the job is recorded failed, with the message
    overrides = list(hydra_cfg.overrides.task)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if multirun else None
    job = Job(Path(hydra_cfg.runtime.output_dir), hydra_cfg.job.get("num"), overrides, sweep_dir)
    record = run_job(cfg, job, trained)
    value = primary_metric(cfg, record)
    if record["status"] == "completed":
        if not multirun:
            how = "reused" if "reused_from" in record else f"{record['elapsed_s']:.1f}s"
            log.info("%s -> %s=%.4f (%s)", " ".join(overrides) or "(defaults)", cfg.task.metric, value, how)
    elif multirun:
        return math.nan
    else:
        print(f"sweep: {record['status']}: {record['error']}", file=sys.stderr)
        sys.exit(1)
    return value if math.isfinite(value) else math.nan


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global _stopped_by
    _stopped_by = signal.Signals(signum).name
    raise KeyboardInterrupt(_stopped_by)


def _unraisable(unraisable: "sys.UnraisableHookArgs") -> None:
    """Python's hook for exceptions it cannot raise, minus the stop signal's: it is remembered and raised at the next job.

    A signal landing while a weakref callback or ``__del__`` runs makes the handler's
    ``KeyboardInterrupt`` unraisable, and Python would print it as ``Exception ignored ... Traceback``.
    """
    if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and _stopped_by is not None):
        sys.__unraisablehook__(unraisable)


def stop_if_asked() -> None:
    """Raise ``KeyboardInterrupt`` again if SIGINT or SIGTERM arrived, even if its first one was swallowed."""
    if _stopped_by is not None:
        raise KeyboardInterrupt(_stopped_by)


def main() -> None:
    """The console entry point: :func:`run` with SIGTERM handled like Ctrl-C, and a one-line message when interrupted.

    The process is about to exit when it returns, so it leaves the garbage collector off
    with every object frozen: the interpreter's final collections over Hydra's, pandas' and
    scikit-learn's ~1M objects cost 0.4 s and free nothing the exit would not.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _unraisable
    try:
        _run_until_stopped()
    finally:
        release()
        gc.disable()
        gc.freeze()


def _run_until_stopped() -> None:
    """:func:`run`; when interrupted, one line saying how to resume, and exit ``128 + signal``."""
    try:
        run()
        stop_if_asked()
    except KeyboardInterrupt as interrupt:
        name = str(interrupt) or "SIGINT"
        claim = held()
        resume = f"; rerun the same command with hydra.sweep.dir={claim.dir} to resume" if claim is not None else ""
        print(f"sweep: interrupted by {name}; finished runs are kept{resume}", file=sys.stderr)
        sys.exit(128 + getattr(signal, name, signal.SIGINT))


if __name__ == "__main__":
    main()
