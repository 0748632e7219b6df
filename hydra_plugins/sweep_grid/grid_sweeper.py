"""``hydra/sweeper=grid``: Hydra's basic sweeper, composing jobs through :class:`sweep.compose_once.ComposeOnce`.

The same command line, the same batches and jobs in the same order as
``hydra/sweeper=basic``; every launcher (basic, joblib, ray, submitit, vectorized)
composes the jobs through the sweeper's loader, so each composes a job from a template in
about 6 ms instead of about 70 (``benchmarks`` measures the per-job overhead).
``hydra/sweeper=basic`` is still there to compare with.

No ``from __future__ import annotations``: Hydra's plugin scan runs the module outside
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class GridSweeperConf:
    """As ``hydra/sweeper=basic``: ``max_batch_size`` jobs launched at a time (``null``: all), ``params`` swept like command-line overrides."""

    _target_: str = "hydra_plugins.sweep_grid.grid_sweeper.GridSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="sweep")


class GridSweeper(BasicSweeper):
    """Hydra's :class:`BasicSweeper` whose launcher (and batch validation) composes jobs with :class:`ComposeOnce`."""

    DRAW = "hparams_search=random hydra.sweeper.n_trials=N"  # how to draw from an interval instead, in messages

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Hydra's setup, composing once; the launcher's launches are counted by the sweep's progress (:class:`sweep.progress.Counted`)."""
        from sweep.compose_once import composing_once  # not at Hydra's plugin scan: sweep's configs are its own app's
        from sweep.progress import Counted

        super().setup(hydra_context=composing_once(hydra_context), task_function=task_function, config=config)
        self.launcher = Counted(self.launcher)  # type: ignore[assignment]

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        """Hydra's next batch; before the first, the sweep's progress learns how many jobs the batches hold."""
        from sweep.progress import current

        if self.batch_index == 0 and self.overrides is not None:
            current().total = sum(map(len, self.overrides))
        return super().get_job_batch()

    def sweep(self, arguments: List[str]) -> Any:
        """Hydra's batches, one launch each; then the launcher's trainer process, kept from batch to batch, is ended."""
        try:
            return super().sweep(arguments)
        finally:
            end(self.launcher)

    def split_arguments(self, overrides: List[Any], max_batch_size: Optional[int]) -> List[List[List[str]]]:  # type: ignore[override]
        """Hydra's batches of every combination of ``overrides``; an interval, which no grid can list, is refused in one line."""
        from sweep.config import refuse

        interval = next((o for o in overrides if o.is_sweep_override() and not o.is_discrete_sweep()), None)
        if interval is not None:
            line = interval.input_line or interval.get_key_element()
            refuse(f"{line}: a grid lists values and cannot sweep an interval; draw from it with {self.DRAW}")
        return BasicSweeper.split_arguments(overrides, max_batch_size)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Raise the composition error of the first job of ``batch`` that cannot be composed, before any job runs.

        As Hydra's sweepers do, but each distinct value is tried once per set of group
        choices instead of composing every job (:meth:`ComposeOnce.check`).
        """
        from sweep.compose_once import ComposeOnce

        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        assert isinstance(loader, ComposeOnce)
        for overrides in batch:
            loader.check(self.config, list(overrides))


def end(launcher: Any) -> None:
    """Let a launcher that keeps work between launches (sweep's vectorized one: its trainer process) end it."""
    close = getattr(launcher, "close", None)
    if callable(close):
        close()
