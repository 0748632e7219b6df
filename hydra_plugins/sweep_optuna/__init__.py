"""sweep's Optuna sweeper for Hydra (``hparams_search=optuna``); see :mod:`sweep.search`.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one stays light
and defines nothing unless hydra-optuna-sweeper (the ``optuna`` extra) is installed.
"""

from __future__ import annotations

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as _PluginSweeper
except ImportError:  # the optuna extra is not installed
    _PluginSweeper = None

if _PluginSweeper is not None:
    import logging
    from typing import Any

    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    class OptunaSweeper(_PluginSweeper):
        """hydra-optuna-sweeper's ``OptunaSweeper``: NaN results become failed trials, fold sweeps are refused, trials composed from a template (:class:`ComposeOnce`), a study without a completed trial ends in one line."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Optuna imports alembic, which logs every plugin it sets up at INFO.
            logging.getLogger("alembic").setLevel(logging.WARNING)
            super().__init__(*args, **kwargs)

        def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
            from sweep.compose_once import composing_once
            from sweep.search import NanAsFailure

            super().setup(hydra_context=composing_once(hydra_context), task_function=task_function, config=config)
            self.sweeper.launcher = NanAsFailure(self.sweeper.launcher)

        def sweep(self, arguments: list[str]) -> None:
            """The plugin's study; one line, not a traceback, when no trial completed (the tables still follow)."""
            import sys

            from sweep.search import no_trial_completed, refuse_data_sweeps

            params = self.sweeper.params or {}
            refuse_data_sweeps([f"{key}={value}" for key, value in params.items()] + list(arguments))
            trials = self.sweeper.launcher
            try:
                super().sweep(arguments)
            except ValueError as error:  # Optuna's study.best_trial, when no trial completed
                if trials.completed or "No trials are completed" not in str(error):
                    raise
                print(no_trial_completed(self.sweeper.n_trials, trials.failed), file=sys.stderr, flush=True)
