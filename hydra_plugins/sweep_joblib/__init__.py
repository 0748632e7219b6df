"""sweep's joblib launcher for ``hydra/launcher=joblib``: a worker killed outright fails its job, not the sweep.

Hydra's joblib launcher runs jobs in loky worker processes. When one is killed (SIGKILL from
the out-of-memory killer, a segfault), loky kills the other workers and the whole sweep
ends with ``TerminatedWorkerError``: the other jobs in progress are lost, none of the rest
run and no tables are written. :class:`JoblibLauncher` (``conf/hydra/launcher/joblib.yaml``,
the plugin's fields) runs the same jobs the same way and, when the pool breaks, records the
job whose worker died as ``failed`` (``worker process killed by SIGKILL (out of memory?)``),
then runs the rest again in a fresh pool; completed jobs are reused by fingerprint. A worker
that died between jobs fails no job; the interrupted ones run again.

Which job's worker died is known exactly, not guessed (:mod:`hydra_plugins.sweep_joblib._watch`):
each worker has a *witness*, a tiny child process that knows the job in progress. loky kills
a broken pool's surviving workers together with their children, witnesses first, so only the
witness of a worker that died by itself outlives it, and it marks that job's dir.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one stays light.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _PluginLauncher
from omegaconf import DictConfig


def own_preset(name: str) -> None:
    """Let sweep's ``conf/hydra/launcher/<name>.yaml`` stand alone: drop the plugin's ConfigStore schema of that name.

    Hydra finds the preset first (the app's config dir comes before the ConfigStore) but
    would also check it against a schema of the same name and warn, on every run, that this
    matching is deprecated. Without the schema the preset is the plugin's fields as YAML.
    """
    ConfigStore.instance().repo.get("hydra", {}).get("launcher", {}).pop(f"{name}.yaml", None)


own_preset("joblib")


class JoblibLauncher(_PluginLauncher):
    """hydra-joblib-launcher's ``JoblibLauncher`` that survives a killed worker (:mod:`hydra_plugins.sweep_joblib._launch`)."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_plugins.sweep_joblib._watch import Watched

        super().setup(hydra_context=hydra_context, task_function=Watched(task_function), config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.sweep_joblib._launch import launch

        return launch(self, job_overrides, initial_job_idx)
