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
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hydra_plugins.sweep_grid.grid_sweeper import GridSweeper, end

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


@dataclass
class HyperbandSweeperConf:
    """Hyperband's brackets of successive halving (Li et al.): ``factor`` as halving's, each bracket's configs drawn with ``seed`` plus its number."""

    _target_: str = "hydra_plugins.sweep_halving.halving_sweeper.HyperbandSweeper"
    factor: float = 3.0
    seed: int = 0
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="hyperband", node=HyperbandSweeperConf, provider="sweep")

#: A bracket to run: its configs (each with its jobs' overrides, one per fold) and its rungs' (configs kept, epochs).
Bracket = Tuple[Dict[tuple, List[List[str]]], List[Tuple[int, int]]]


class HalvingSweeper(GridSweeper):
    """The grid sweeper's jobs (or ``n_candidates`` drawn ones), launched as successive-halving rungs."""

    NAME = "halving"  # its hparams_search preset, in messages
    DRAW = "hydra.sweeper.n_candidates=N"

    def __init__(
        self, factor: float = 3.0, min_resources: Optional[int] = None, n_candidates: Optional[int] = None, seed: int = 0, params: Optional[Dict[str, str]] = None
    ) -> None:
        super().__init__(max_batch_size=None, params=params)
        self.factor = factor
        self.min_resources = min_resources
        self.n_candidates = n_candidates
        self.seed = seed
        self.next_idx = 0

    def brackets(self, overrides: List[Any]) -> List[Bracket]:
        """One bracket: every config of the grid or drawn, on :func:`sweep.halving.halving_plan`'s rungs."""
        from sweep.halving import halving_plan
        from sweep.search_space import sample

        assert self.config is not None
        jobs = sample(overrides, self.n_candidates, self.seed) if self.n_candidates else self.split_arguments(overrides, None)[0]
        configs = _configs(jobs)
        return [(configs, halving_plan(len(configs), self.factor, int(self.config.trainer.epochs), self.min_resources))]

    def sweep(self, arguments: List[str]) -> Any:
        """Run every bracket's rungs in turn; write ``halving.json``; return each rung's job returns."""
        from sweep.config import SweepConfigError, refuse
        from sweep.halving import Search

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        _refuse(self.config, overrides, self.NAME)
        try:
            brackets = self.brackets([o for o in overrides if o.get_key_element() != EPOCHS])
        except SweepConfigError as error:
            refuse(str(error))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        search = Search(str(self.config.task.metric), self.factor, [])
        try:
            return [results for b, bracket in enumerate(brackets) for results in self.halve(b, *bracket, search, sweep_dir)]
        finally:
            end(self.launcher)  # its trainer process served every rung

    def halve(self, bracket: int, configs: Dict[tuple, List[List[str]]], plan: List[Tuple[int, int]], search: Any, sweep_dir: Path) -> List[Any]:
        """One bracket's rungs: launch the alive configs' jobs, score them on fold means, keep the next rung's count."""
        from sweep.halving import Rung, fold_mean, survivors, write_rungs
        from sweep.progress import job_dir
        from sweep.results import greater_is_better

        assert self.launcher is not None
        log.info(f"Halving {len(configs)} configs over rungs of {[epochs for _, epochs in plan]} epochs, by fold-mean {search.metric}")
        alive, previous, returns = list(configs), {}, []
        for k, (_, budget) in enumerate(plan):
            jobs = [job for config in alive for job in configs[config]]
            batch = [[*job, f"{EPOCHS}={budget}", *_warm(previous.get(tuple(job)))] for job in jobs]
            if k == 0:  # later rungs are these jobs with other epochs and a warm start
                self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=self.next_idx)
            self.next_idx += len(batch)
            returns.append(results)
            by_job = dict(zip(map(tuple, jobs), results))
            previous = {job: job_dir(result) for job, result in by_job.items()}
            scores = [fold_mean([_value(by_job[tuple(job)]) for job in configs[config]]) for config in alive]
            kept = survivors(scores, plan[k + 1][0], greater_is_better(search.metric)) if k + 1 < len(plan) else []
            search.rungs.append(Rung(k, budget, [list(config) for config in alive], scores, kept, bracket))
            write_rungs(sweep_dir, search)
            alive = [config for config, keep in zip(alive, kept) if keep]
            if kept:
                log.info(f"Rung {k} ({budget} epochs): {len(alive)} of {len(kept)} configs go on")
        return returns


class HyperbandSweeper(HalvingSweeper):
    """Hyperband: brackets of successive halving from many configs at few epochs to few at all of them, each bracket's configs drawn anew."""

    NAME = "hyperband"

    def __init__(self, factor: float = 3.0, seed: int = 0, params: Optional[Dict[str, str]] = None) -> None:
        super().__init__(factor=factor, seed=seed, params=params)

    def brackets(self, overrides: List[Any]) -> List[Bracket]:
        """:func:`sweep.halving.hyperband`'s brackets, bracket ``b`` drawing its configs with ``seed + b``."""
        from sweep.halving import hyperband
        from sweep.search_space import sample

        assert self.config is not None
        plans = hyperband(self.factor, int(self.config.trainer.epochs))
        return [(_configs(sample(overrides, plan[0][0], self.seed + b)), plan) for b, plan in enumerate(plans)]


def _configs(jobs: List[List[str]]) -> Dict[tuple, List[List[str]]]:
    """Jobs grouped by config (:func:`sweep.halving.config_of`: their overrides but folds); a config drawn twice is trained once."""
    from sweep.halving import config_of

    configs: Dict[tuple, List[List[str]]] = {}
    for job in dict.fromkeys(map(tuple, jobs)):
        configs.setdefault(tuple(config_of(list(job))), []).append(list(job))
    return configs


def _refuse(config: Any, overrides: List[Any], name: str) -> None:
    """One line, before anything trains, for a search halving cannot run: no epochs to halve, or the epochs swept."""
    from sweep.config import refuse

    if config.hydra.sweeper.get("n_candidates") is not None and config.hydra.sweeper.n_candidates < 1:
        refuse(f"hydra.sweeper.n_candidates={config.hydra.sweeper.n_candidates}: must be at least 1 (or null: the grid)")
    if config.task.name not in ("classify", "regress"):
        refuse(f"hparams_search={name}: task={config.task.name} has no epochs to halve over (task=classify and task=regress have)")
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
