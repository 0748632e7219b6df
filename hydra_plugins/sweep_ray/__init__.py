"""sweep's Ray launcher for ``hydra/launcher=ray_local``: a private Ray on this machine, on loopback only.

Ray turns ``127.0.0.1`` into the machine's network address so that other nodes could join,
and its processes then talk over that address. :class:`LocalRayLauncher` is hydra-ray-launcher's
``RayLauncher`` with Ray's single-machine mode on (the one Ray uses on macOS and Windows:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), so the Ray it starts uses 127.0.0.1 throughout.
It is set in this process before Ray is imported, and Ray's processes inherit it.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one stays light
and defines nothing unless hydra-ray-launcher (the ``ray`` extra) is installed.
"""

from __future__ import annotations

import os

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _PluginLauncher
except ImportError:  # the ray extra is not installed
    _PluginLauncher = None

#: Ray's switch between cluster mode (its default on Linux) and single-machine mode on loopback.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

if _PluginLauncher is not None:
    import sys
    from collections.abc import Sequence

    from hydra.core.utils import JobReturn

    class LocalRayLauncher(_PluginLauncher):
        """hydra-ray-launcher's ``RayLauncher``, starting Ray in single-machine mode on 127.0.0.1."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            os.environ[SINGLE_MACHINE_ENV] = "0"
            if "ray._private.ray_constants" in sys.modules:  # Ray imported earlier in this process
                sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False
            return super().launch(job_overrides, initial_job_idx)
