"""sweep's Ray launchers: ``hydra/launcher=ray`` (join a cluster) and ``ray_local`` (a private Ray on loopback).

:class:`RayLauncher` is hydra-ray-launcher's ``RayLauncher`` that connects to Ray before
the first job, so a cluster that is not there (``hydra.launcher.ray.init.address=auto``
with nothing running) ends the command with one line naming the launcher and the address.

Ray turns ``127.0.0.1`` into the machine's network address so that other nodes could join,
and its processes then talk over that address. :class:`LocalRayLauncher` starts Ray in its
single-machine mode (the one Ray uses on macOS and Windows:
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), so the Ray it starts uses 127.0.0.1 throughout.
It is set in this process before Ray is imported, and Ray's processes inherit it.

Jobs are collected as they finish (``ray.wait``), each line printed then (:mod:`sweep.progress`).
When stdout is not a terminal, the job output Ray forwards has no colour codes
(``RAY_COLOR_PREFIX=0``). A Ray that starts a cluster of its own turns token authentication on
and warns that it did, unless ``RAY_AUTH_MODE`` chooses: the launcher chooses the same mode
(``token``) first, so Ray is silent about it. A mode or colour set by the user is kept.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one stays light.
Without hydra-ray-launcher (the ``ray`` extra) both presets say in one line how to install it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
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
#: Ray's authentication mode (``token``, ``disabled``); unset, a cluster Ray starts gets tokens, with a warning.
AUTH_MODE_ENV = "RAY_AUTH_MODE"
#: ``0``: the job output Ray forwards is prefixed without colour codes.
COLOR_PREFIX_ENV = "RAY_COLOR_PREFIX"

log = logging.getLogger(__name__)

own_preset("ray")  # conf/hydra/launcher/ray.yaml: the plugin's fields, sweep's launcher


if _PluginLauncher is not None:

    class RayLauncher(_PluginLauncher):
        """hydra-ray-launcher's ``RayLauncher``; no cluster at the configured address is one line on stderr and exit 1."""

        #: The ``hydra/launcher`` choice this class is selected by, for messages.
        choice = "ray"

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            """The plugin's launch, on Ray joined or started first; the results are collected as the jobs finish."""
            self.connect()
            return launch_on_ray(self, job_overrides, initial_job_idx)

        def connect(self) -> None:
            """Start or join Ray as the plugin would (it then finds Ray running); exit with one line if it cannot."""
            from sweep.config import refuse

            if not sys.stdout.isatty():
                os.environ.setdefault(COLOR_PREFIX_ENV, "0")
            try:
                choose_token_auth(self.ray_cfg.init.get("address"))
                from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

                start_ray(self.ray_cfg.init)
            except ConnectionError as error:
                address = self.ray_cfg.init.get("address")
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                refuse(
                    f"hydra/launcher={self.choice}: no Ray cluster at hydra.launcher.ray.init.address={address} "
                    f"({reason}); start one with `ray start --head`, or use hydra/launcher=ray_local or joblib"
                )

    def choose_token_auth(address: Any) -> None:
        """Choose token authentication for a cluster Ray is about to start, as ``ray.init`` would by itself, so it does not warn.

        Only when no mode is set and ``address`` (``None``, ``local``, ``auto``) resolves, as Ray
        resolves it, to no running cluster; Ray's own helper sets the mode for this process and
        the cluster's. A cluster joined is left to its own mode; so is a Ray without these helpers.
        """
        if AUTH_MODE_ENV in os.environ or address not in (None, "local", "auto"):
            return
        try:
            from ray._private.authentication.authentication_token_setup import _enable_token_auth
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # another Ray: it may warn
            return
        if canonicalize_bootstrap_address(address) is None:
            _enable_token_auth()

    def launch_on_ray(launcher: RayLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """hydra-ray-launcher's launch (Ray already started), reporting each job as it finishes; the returns in job order."""
        import ray
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals
        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray
        from omegaconf import open_dict

        from sweep.progress import current

        setup_globals()
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
        sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Ray Launcher is launching {len(job_overrides)} jobs, sweep output dir: {sweep_dir}")
        pending = {}
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"job_id_for_{idx}"
                sweep_config.hydra.job.num = idx
            job = launch_job_on_ray(launcher.hydra_context, launcher.ray_cfg.remote, sweep_config, launcher.task_function, Singleton.get_state())
            pending[job] = idx
        done: dict[int, JobReturn] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for job in ready:
                done[pending.pop(job)] = ret = ray.get(job)
                current().report(ret)
        return [done[idx] for idx in sorted(done)]

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
