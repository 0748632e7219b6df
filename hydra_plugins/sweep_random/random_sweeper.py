"""``hydra/sweeper=random``: ``n_trials`` configs drawn from the command line's sweep syntax, launched as the grid's jobs are.

``optimizer.lr=tag(log,interval(1e-4,1e-1))`` is drawn log-uniformly, ``interval(0,0.6)``
uniformly, a list, ``choice(...)`` or ``range(...)`` uniformly among its values
(:func:`sweep.search_space.sample`); ``validation.fold`` is never drawn, so every config
trains each fold listed and ranks on their mean. The same ``seed`` draws the same configs,
so a rerun of the same command resumes the same sweep. Everything else is the grid
sweeper's: the jobs are composed from a template, launched in batches of
``max_batch_size`` (all at once by default, so sweep's default launcher trains them as
populations) and recorded like any sweep's.

No ``from __future__ import annotations``: Hydra's plugin scan runs the module outside
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from hydra_plugins.sweep_grid.grid_sweeper import GridSweeper


@dataclass
class RandomSweeperConf:
    """``n_trials`` configs (each with every fold listed), drawn with ``seed``; ``max_batch_size`` jobs launched at a time (``null``: all)."""

    _target_: str = "hydra_plugins.sweep_random.random_sweeper.RandomSweeper"
    n_trials: int = 10
    seed: int = 0
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="random", node=RandomSweeperConf, provider="sweep")


class RandomSweeper(GridSweeper):
    """The grid sweeper, launching ``n_trials`` drawn configs instead of every combination (a config drawn twice, once)."""

    def __init__(self, n_trials: int = 10, seed: int = 0, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.n_trials = n_trials
        self.seed = seed

    def split_arguments(self, overrides: List[Any], max_batch_size: Optional[int]) -> List[List[List[str]]]:  # type: ignore[override]
        """The drawn configs' jobs, in batches of ``max_batch_size`` (Hydra's :meth:`BasicSweeper.sweep` launches each)."""
        from sweep.config import refuse
        from sweep.search_space import sample

        if self.n_trials < 1:
            refuse(f"hydra.sweeper.n_trials={self.n_trials}: must be at least 1")
        return list(self.split_overrides_to_chunks(sample(overrides, self.n_trials, self.seed), max_batch_size))
