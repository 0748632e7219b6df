"""``hydra/sweeper=sweep_optuna``: an Optuna study asked in batches of ``n_jobs`` trials, each batch launched as the grid's jobs are.

Each trial is one job: job ``n`` is trial ``n``, recorded like any sweep's, so the tables,
resume and every launcher work as for a grid (the default launcher trains a batch as one
population). A trial is told its record's ``objectives`` (``task.metric`` by default), each
optimized in its ``direction`` (by default the metric's own: accuracy up, loss and time
down); a failed or diverged run is a failed trial and the study goes on. The study lives in
``storage`` (by default the sweep dir's Optuna journal), so a rerun of the same command
continues it up to ``n_trials``. What to ask and how to tell is :mod:`sweep.search`.

No ``from __future__ import annotations``: Hydra's plugin scan runs the module outside
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.sweep_grid.grid_sweeper import GridSweeper, end

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    """A study of ``n_trials`` trials (``n_jobs`` launched at a time) drawn by ``sampler`` over ``params`` and the command line's sweep syntax."""

    _target_: str = "hydra_plugins.sweep_optuna.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sweeper instantiates the sampler itself, seeded for the study's next trial
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    objectives: Optional[List[str]] = None  # record fields to optimize; null: [task.metric]
    direction: Any = None  # maximize | minimize, or one per objective; null: each metric's own direction
    study_name: str = "sweep"
    storage: Optional[str] = None  # null: <sweep dir>/optuna.journal; a journal file; or a database URL (sqlite:///optuna.db)
    n_trials: int = 20
    n_jobs: int = 2
    max_failure_rate: float = 1.0  # a batch with a larger share of failed trials ends the study
    params: Optional[Dict[str, str]] = None
    custom_search_space: Optional[str] = None  # a function (cfg, trial) suggesting more params, e.g. sweep.search.l2_or_none


ConfigStore.instance().store(group="hydra/sweeper", name="sweep_optuna", node=OptunaSweeperConf, provider="sweep")


class OptunaSweeper(GridSweeper):
    """Optuna's ask-and-tell loop around the grid sweeper's launcher (jobs composed from a template)."""

    def __init__(self, sampler: Any = None, objectives: Optional[List[str]] = None, direction: Any = None, study_name: str = "sweep",
                 storage: Optional[str] = None, n_trials: int = 20, n_jobs: int = 2, max_failure_rate: float = 1.0,
                 params: Optional[Dict[str, str]] = None, custom_search_space: Optional[str] = None) -> None:  # fmt: skip
        super().__init__(max_batch_size=None, params=params)
        self.sampler = sampler
        self.objectives = list(objectives) if objectives else None
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.extend = instantiate({"_target_": custom_search_space, "_partial_": True}) if custom_search_space else None

    def sweep(self, arguments: List[str]) -> None:
        """Ask, launch and tell, batch by batch, until the study has ``n_trials`` trials; then write its best trials."""
        from sweep import search
        from sweep.config import refuse
        from sweep.progress import current

        assert self.config is not None and self.launcher is not None
        lines = [f"{key}={value}" for key, value in (self.params or {}).items()] + list(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            search.refuse_data_sweeps(lines)
            space, fixed = search.search_space(lines)
            objectives = self.objectives or [str(self.config.task.metric)]
            study = search.open_study(self.storage, self.study_name, self._directions(objectives), sweep_dir)
        except search.SweepConfigError as error:
            refuse(str(error))
        study.sampler = self._sampler(search.finished(study), space)
        current().total = max(self.n_trials - search.finished(study), 0)  # the trials this run asks for
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        retried = search.retry_interrupted(study)
        if retried:
            log.info(f"trials {retried} were cut off by a killed sweep: asked again with the same params")
        try:
            self._optimize(study, space, fixed, objectives)
        finally:
            end(self.launcher)
        if search.write_results(study, objectives, sweep_dir) is None:
            print(search.no_trial_completed(self.n_trials, search.finished(study)), file=sys.stderr, flush=True)

    def _optimize(self, study: Any, space: Dict[str, Any], fixed: List[str], objectives: List[str]) -> None:
        from sweep import search
        from sweep.config import refuse
        from sweep.progress import job_dir

        while (size := min(self.n_jobs, self.n_trials - search.finished(study))) > 0:
            try:
                trials = [study.ask(space) for _ in range(size)]
            except ImportError as error:  # a sampler whose model needs a package not installed (GPSampler: torch)
                refuse(f"hydra.sweeper.sampler: {type(study.sampler).__name__} cannot sample: {error}")
            for trial in trials:
                if self.extend is not None:
                    self.extend(self.config, trial)
            batch = [[f"{key}={value}" for key, value in trial.params.items()] + fixed for trial in trials]
            self.validate_batch_is_legal(batch)
            assert [t.number for t in trials] == list(range(trials[0].number, trials[0].number + size)), "one process asks"
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            failed = 0
            for trial, ret in zip(trials, returns):
                why = search.tell(study, trial, Path(job_dir(ret)), objectives)
                if why is not None:
                    failed += 1
                    log.warning(f"trial {trial.number} failed: {why}")
            if failed / size > self.max_failure_rate:
                print(f"sweep: {failed} of {size} trials failed (hydra.sweeper.max_failure_rate={self.max_failure_rate}); the study stops", file=sys.stderr)
                return

    def _sampler(self, done: int, space: Dict[str, Any]) -> Any:
        """The configured sampler; a continued study's seeded one gets ``seed + done``, so it does not draw its first trials again.

        The same command continued gives the same trials; they are not those of one uninterrupted
        study. Optuna's ``GridSampler`` without a ``search_space`` gets the sweep's lists and ranges.
        """
        from sweep import search
        from sweep.config import refuse

        config = OmegaConf.to_container(self.sampler, resolve=True) if OmegaConf.is_config(self.sampler) else dict(self.sampler or {})
        if done and config.get("seed") is not None:
            config["seed"] = int(config["seed"]) + done
        if config.get("_target_") == "optuna.samplers.GridSampler" and config.get("search_space") is None:
            try:
                config["search_space"] = search.grid(space)
            except search.SweepConfigError as error:
                refuse(str(error))
            self.n_trials = min(self.n_trials, math.prod(len(values) for values in config["search_space"].values()))
        try:
            return instantiate(config)
        except Exception as error:  # noqa: BLE001  Hydra's InstantiationException names the target and the cause
            from sweep.config import refuse

            refuse(f"hydra.sweeper.sampler: {str(error).splitlines()[0]}")

    def _directions(self, objectives: List[str]) -> List[str]:
        """``direction`` as one per objective; by default each metric's own (:func:`sweep.results.greater_is_better`)."""
        from sweep.config import refuse
        from sweep.results import greater_is_better

        if self.direction is None:
            return ["maximize" if greater_is_better(o) else "minimize" for o in objectives]
        given = [self.direction] if isinstance(self.direction, str) else [str(d) for d in self.direction]
        if len(given) != len(objectives) or not set(given) <= {"maximize", "minimize"}:
            refuse(f"hydra.sweeper.direction={given}: give maximize or minimize for each of the objectives {objectives}")
        return given
