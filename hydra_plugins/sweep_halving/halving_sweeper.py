"""``hydra/sweeper=halving``: successive halving over the grid the command line lists, rung by rung through the launcher.

Every config of the grid (its folds together: ``validation.fold=0,1,2,3,4`` gives each
config five jobs, ``validation.fold=null`` one job training every fold) trains at the first
rung for a few epochs; after each rung the best ``1/factor`` by the fold mean of
``task.metric`` go on to ``factor`` times the epochs, continuing from where they ended
(``trainer.warm_start`` names the job dir of their previous rung), up to ``trainer.epochs``.
What to train and who goes on is :mod:`sweep.halving`; here the rungs are launched, each
as one batch of ordinary jobs, so every launcher runs them (the default one trains a rung's
jobs as populations) and a rerun of the same command reuses every rung already recorded.

No ``from __future__ import annotations``: Hydra's plugin scan runs the module outside
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hydra_plugins.sweep_grid.grid_sweeper import GridSweeper

log = logging.getLogger(__name__)

EPOCHS = "trainer.epochs"


@dataclass
class HalvingSweeperConf:
    """``factor``: a rung keeps ``1/factor`` of its configs and the next trains ``factor`` times the epochs; ``min_resources``: the first rung's epochs (default: as scikit-learn's ``"exhaust"``).

    ``n_candidates``: instead of the grid, draw this many configs (``interval``, ``tag(log, interval)``,
    ``choice``, lists, ``range``), as ``HalvingRandomSearchCV`` does; ``seed`` fixes the draws.
    """

    _target_: str = "hydra_plugins.sweep_halving.halving_sweeper.HalvingSweeper"
    factor: float = 3.0
    min_resources: Optional[int] = None
    n_candidates: Optional[int] = None  # random search: this many configs drawn from the overrides' distributions
    seed: int = 0  # of the draws
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="halving", node=HalvingSweeperConf, provider="sweep")


class HalvingSweeper(GridSweeper):
    """The grid sweeper's jobs, launched as successive-halving rungs."""

    def __init__(
        self, factor: float = 3.0, min_resources: Optional[int] = None, n_candidates: Optional[int] = None, seed: int = 0, params: Optional[Dict[str, str]] = None
    ) -> None:
        super().__init__(max_batch_size=None, params=params)
        self.factor = factor
        self.min_resources = min_resources
        self.n_candidates = n_candidates
        self.seed = seed

    def configs(self, arguments: List[str]) -> Dict[tuple, List[List[str]]]:
        """The search's configs (overrides, folds and epochs left out), each with its jobs' overrides (one per fold)."""
        from sweep.halving import config_of, sample

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        _refuse(self.config, overrides)
        overrides = [o for o in overrides if o.get_key_element() != EPOCHS]
        jobs = sample(overrides, self.n_candidates, self.seed) if self.n_candidates else self.split_arguments(overrides, None)[0]
        configs: Dict[tuple, List[List[str]]] = {}
        for job in dict.fromkeys(map(tuple, jobs)):  # a config drawn twice is trained once
            configs.setdefault(tuple(config_of(list(job))), []).append(list(job))
        return configs

    def sweep(self, arguments: List[str]) -> Any:
        """Launch every rung in turn; write ``halving.json``; return each rung's job returns."""
        from sweep.config import SweepConfigError, refuse
        from sweep.halving import Rung, Search, fold_mean, schedule, survivors, write_rungs
        from sweep.results import greater_is_better

        assert self.config is not None and self.launcher is not None
        configs = self.configs(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        metric = str(self.config.task.metric)
        try:
            budgets = schedule(len(configs), self.factor, int(self.config.trainer.epochs), self.min_resources)
        except SweepConfigError as error:
            refuse(str(error))
        log.info(f"Halving {len(configs)} configs (factor {self.factor:g}) over rungs of {budgets} epochs, by fold-mean {metric}")
        alive, previous, returns, next_idx = list(configs), {}, [], 0
        search = Search(metric, self.factor, [])
        for k, budget in enumerate(budgets):
            batch = [[*job, f"trainer.epochs={budget}", *_warm(previous.get(tuple(job)))] for config in alive for job in configs[config]]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=next_idx)
            next_idx += len(batch)
            returns.append(results)
            by_job = {tuple(job): result for job, result in zip((job for config in alive for job in configs[config]), results)}
            previous = {job: str(result.hydra_cfg.hydra.runtime.output_dir) for job, result in by_job.items()}
            scores = [fold_mean([_value(by_job[tuple(job)]) for job in configs[config]]) for config in alive]
            last = k == len(budgets) - 1
            kept = [] if last else survivors(scores, self.factor, greater_is_better(metric))
            search.rungs.append(Rung(k, budget, [list(config) for config in alive], scores, kept))
            write_rungs(sweep_dir, search)
            alive = [config for config, keep in zip(alive, kept) if keep]
            if not last:
                log.info(f"Rung {k} ({budget} epochs): {len(alive)} of {len(kept)} configs go on")
        return returns


def _refuse(config: Any, overrides: List[Any]) -> None:
    """One line, before anything trains, for a search halving cannot run: no epochs to halve, or the epochs swept."""
    from sweep.config import refuse

    if config.hydra.sweeper.get("n_candidates") is not None and config.hydra.sweeper.n_candidates < 1:
        refuse(f"hydra.sweeper.n_candidates={config.hydra.sweeper.n_candidates}: must be at least 1 (or null: the grid)")
    if config.task.name != "classify":
        refuse(f"hparams_search=halving: task={config.task.name} has no epochs to halve over (task=classify has)")
    swept = next((o.get_key_element() for o in overrides if o.is_sweep_override() and o.get_key_element() in (EPOCHS, "trainer.warm_start")), None)
    if swept is not None:
        refuse(f"{swept}: halving sets it at each rung; give trainer.epochs one value, the last rung's")


def _warm(job_dir: Optional[str]) -> List[str]:
    """The override continuing a job from its previous rung's dir (none at the first rung)."""
    return [] if job_dir is None else [f"trainer.warm_start={Path(job_dir).absolute()}"]


def _value(result: Any) -> float:
    """A job's metric (NaN for a job that raised: Hydra keeps the exception for ``return_value``)."""
    try:
        value = result.return_value
    except Exception:  # noqa: BLE001  the job's own record says why
        return float("nan")
    return float(value) if isinstance(value, (int, float)) else float("nan")
