"""sweep's SLURM launcher for ``hydra/launcher=slurm``: hydra-submitit-launcher's, refusing in one line where there is no SLURM.

submitit fails deep inside its executor (a ``RuntimeError`` about ``srun``) when SLURM's
commands are missing; :class:`SlurmLauncher` looks for ``sbatch`` before the first job
and ends the command with one line saying what to use instead.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one stays light
and defines nothing unless hydra-submitit-launcher (the ``slurm`` extra) is installed.
"""

from __future__ import annotations

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _PluginLauncher
except ImportError:  # the slurm extra is not installed
    _PluginLauncher = None

if _PluginLauncher is not None:
    import shutil
    from collections.abc import Sequence

    from hydra.core.utils import JobReturn

    class SlurmLauncher(_PluginLauncher):
        """hydra-submitit-launcher's ``SlurmLauncher``; without ``sbatch`` on the PATH, one line on stderr and exit 1."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            if shutil.which("sbatch") is None:
                from sweep.config import refuse

                refuse("hydra/launcher=slurm: sbatch not found: no SLURM here; use hydra/launcher=submitit_local or joblib")
            return super().launch(job_overrides, initial_job_idx)
