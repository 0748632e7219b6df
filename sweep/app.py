"""The ``sweep`` command: Hydra composes the config, :func:`sweep.run.run_job` runs and records it.

Returns the run's ``task.metric`` as a float so Hydra sweepers (Optuna) can optimise
it. A single run that fails exits non-zero with a one-line message; in a multirun the
failure is recorded and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import sweep.backend  # noqa: F401  (quiet TensorFlow before anything imports it)
from sweep.config import config_dir
from sweep.run import Job, primary_metric, run_job
from sweep.scaling import apply_threads

log = logging.getLogger("sweep")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one composed config; log ``overrides -> metric (time)``; return the metric."""
    hydra_cfg = HydraConfig.get()
    apply_threads(cfg, hydra_cfg.get("launcher"))
    overrides = list(hydra_cfg.overrides.task)
    job = Job(Path(hydra_cfg.runtime.output_dir), hydra_cfg.job.get("num"), overrides)
    record = run_job(cfg, job)
    value = primary_metric(cfg, record)
    label = " ".join(overrides) or "(defaults)"
    if record["status"] == "completed":
        log.info("%s -> %s=%.4f (%.1fs)", label, cfg.task.metric, value, record["elapsed_s"])
    elif hydra_cfg.mode == RunMode.MULTIRUN:
        log.warning("%s -> %s: %s (%.1fs)", label, record["status"], record["error"], record["elapsed_s"])
    else:
        print(f"sweep: {record['status']}: {record['error']}", file=sys.stderr)
        sys.exit(1)
    return value if math.isfinite(value) else math.nan


if __name__ == "__main__":
    main()
