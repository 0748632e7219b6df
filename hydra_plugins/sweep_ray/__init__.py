"""sweep's Ray launchers: ``hydra/launcher=ray`` (join a cluster) and ``ray_local`` (a private Ray on loopback).

:class:`RayLauncher` is hydra-ray-launcher's ``RayLauncher`` that connects to Ray before
the first job, so a cluster that is not there (``hydra.launcher.ray.init.address=auto``
with nothing running) ends the command with one line naming the launcher and the address.

Ray turns ``127.0.0.1`` into the machine's network address so that other nodes could join,
and its processes then talk over that address. :class:`LocalRayLauncher` starts Ray in its
single-machine mode (the one Ray uses on macOS and Windows:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), so the Ray it starts uses 127.0.0.1 throughout.
It is set in this process before Ray is imported, and Ray's processes inherit it.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one stays light.
Without hydra-ray-launcher (the ``ray`` extra) both presets say in one line how to install it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher

from hydra_plugins.sweep_joblib import own_preset

try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _PluginLauncher
except ImportError:  # the ray extra is not installed
    _PluginLauncher = None

#: Ray's switch between cluster mode (its default on Linux) and single-machine mode on loopback.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

own_preset("ray")  # conf/hydra/launcher/ray.yaml: the plugin's fields, sweep's launcher


if _PluginLauncher is not None:

    class RayLauncher(_PluginLauncher):
        """hydra-ray-launcher's ``RayLauncher``; no cluster at the configured address is one line on stderr and exit 1."""

        #: The ``hydra/launcher`` choice this class is selected by, for messages.
        choice = "ray"

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            self.connect()
            return super().launch(job_overrides, initial_job_idx)

        def connect(self) -> None:
            """Start or join Ray as the plugin would (it then finds Ray running); exit with one line if it cannot."""
            from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

            from sweep.config import refuse

            try:
                start_ray(self.ray_cfg.init)
            except ConnectionError as error:
                address = self.ray_cfg.init.get("address")
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                refuse(
                    f"hydra/launcher={self.choice}: no Ray cluster at hydra.launcher.ray.init.address={address} "
                    f"({reason}); start one with `ray start --head`, or use hydra/launcher=ray_local or joblib"
                )

else:

    class RayLauncher(Launcher):  # type: ignore[no-redef]
        """Stands in for hydra-ray-launcher's launcher when the ray extra is missing: one line saying how to install it."""

        choice = "ray"

        def __init__(self, **config: Any) -> None:
            from sweep.config import refuse

            refuse(f"hydra/launcher={self.choice} needs the ray extra: pip install 'sweep[ray]' (-e '.[ray]' in a checkout)")

        def setup(self, **kwargs: Any) -> None:  # abstract in Launcher; never called, __init__ exits
            raise NotImplementedError

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            raise NotImplementedError  # abstract in Launcher; never called, __init__ exits


class LocalRayLauncher(RayLauncher):
    """:class:`RayLauncher` starting Ray in single-machine mode on 127.0.0.1."""

    choice = "ray_local"

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        os.environ[SINGLE_MACHINE_ENV] = "0"
        if "ray._private.ray_constants" in sys.modules:  # Ray imported earlier in this process
            sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False
        return super().launch(job_overrides, initial_job_idx)
