"""How many threads one job may use, so that parallel workers x threads <= cores.

The ``threads`` key of the config decides, in the process that runs the job:

* ``auto`` (the default) derives the count from the launcher in ``hydra.launcher``:

  - ``basic`` (one job at a time, in the sweep's own process): no limit, every core;
  - ``joblib``: ``cores // n_jobs`` (``n_jobs=-1``, the plugin's default, is one worker per
    core, so one thread each);
  - ``ray``: the CPUs each task reserves, ``hydra.launcher.ray.remote.num_cpus`` (Ray's
    default is 1, and Ray runs as many tasks at once as the cluster has CPUs);
  - ``submitit_slurm`` / ``submitit_local``: ``hydra.launcher.cpus_per_task``, else
    ``SLURM_CPUS_PER_TASK``, else 1 (submitit_local starts every job at once);
  - any other launcher: no limit.

* a positive integer: that many threads, whatever the launcher;
* ``null``: leave every library at its default.

The limit applies to TensorFlow's intra- and inter-op pools (before its first op) and to
the BLAS and OpenMP pools of NumPy and scikit-learn (through threadpoolctl); the usual
environment variables are set as well, for libraries loaded later and for child processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from sweep.config import check_threads

log = logging.getLogger(__name__)

# hydra/launcher=ray starts Ray from the sweep's process: no usage reports unless the user opts in.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

#: Environment variables read by OpenMP, the BLAS libraries, numexpr and TensorFlow when they start.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def cores() -> int:
    """The CPUs this process may use (CPU affinity and cgroup quotas counted, as joblib counts them)."""
    import joblib

    return max(int(joblib.cpu_count()), 1)


def resolve_threads(setting: Any, launcher: Mapping[str, Any] | None, n_cores: int) -> tuple[int | None, str]:
    """The thread count for ``threads=setting`` under the ``hydra.launcher`` node ``launcher``, and why.

    Returns ``(None, reason)`` when the libraries' defaults should stay; raises
    :class:`sweep.config.SweepConfigError` for a setting :func:`sweep.config.check_threads` refuses.
    """
    check_threads(setting)
    if setting is None:
        return None, "threads=null: library defaults"
    if setting != "auto":
        return setting, f"threads={setting}"

    launcher = launcher or {}
    if "n_jobs" in launcher:  # hydra/launcher=joblib
        n_jobs = launcher.get("n_jobs")
        workers = n_cores if n_jobs is None else n_jobs if n_jobs > 0 else max(n_cores + 1 + n_jobs, 1)
        return max(n_cores // workers, 1), f"joblib: {workers} workers on {n_cores} cores"
    if "ray" in launcher:  # hydra/launcher=ray (or ray_local)
        remote = (launcher.get("ray") or {}).get("remote") or {}
        num_cpus = remote.get("num_cpus") or 1
        return max(int(num_cpus), 1), f"ray: {num_cpus} CPU(s) reserved per task"
    if "cpus_per_task" in launcher:  # hydra/launcher=submitit_slurm or submitit_local
        cpus = launcher.get("cpus_per_task") or os.environ.get("SLURM_CPUS_PER_TASK") or 1
        return max(int(cpus), 1), f"submitit: {cpus} CPU(s) per task"
    return None, "one job at a time: every core"


def limit_threads(threads: int | None) -> None:
    """Cap TensorFlow, BLAS and OpenMP at ``threads`` threads in this process (None: change nothing)."""
    if threads is None:
        return
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    from sweep.backend import limit_tf_threads

    threadpool_limits(limits=threads)
    limit_tf_threads(threads)


def apply_threads(cfg: Mapping[str, Any], launcher: Mapping[str, Any] | None) -> int | None:
    """Resolve ``cfg.threads`` against ``launcher``, apply it, log it and return it."""
    n_cores = cores()
    threads, why = resolve_threads(cfg.get("threads", "auto"), launcher, n_cores)
    limit_threads(threads)
    log.log(logging.INFO if threads is not None else logging.DEBUG, "threads: %s (%s)", threads or "default", why)
    return threads
