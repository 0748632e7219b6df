"""``hydra/launcher=vectorized``: Hydra's basic launcher, except that sweep's jobs that can train together do.

The jobs of a launch are composed as the basic launcher composes them (with sweep's default
``hydra/sweeper=grid``, each is a copy of a template: :mod:`sweep.compose_once`). Those that are
sweep runs and differ only in :data:`sweep.population.VECTORIZABLE` keys (equal
:func:`sweep.population.group_key`) are trained as populations of at most
``max_population`` members, each in one TensorFlow graph; every member's per-fold results
are handed to :func:`sweep.run.precompute`. Then every job runs through Hydra's
``run_job`` in order, exactly as under ``hydra/launcher=basic``: its job dir, ``.hydra/``
files, log, callbacks and ``JobReturn`` are Hydra's, and sweep's task function writes the
record, history and model as usual, from the population's results instead of training.

A job that cannot join a population (another app's, ``group_key`` ``None``, a group of
one, a completed record already in the sweep, a duplicate config) trains on its own as
usual; so does every member of a population that raised (logged as a warning).

This module is imported whenever Hydra starts (it scans ``hydra_plugins``): sweep's
training code is imported only when a population trains. No ``from __future__ import
annotations``: Hydra's scan runs the module outside ``sys.modules``, where dataclasses
cannot resolve string annotations.
"""

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)

#: Top-level keys every sweep config has: jobs of other apps always run one by one.
SWEEP_KEYS = ("dataset", "model", "optimizer", "regularizer", "validation", "trainer", "task")


@dataclass
class VectorizedLauncherConf:
    """``hydra/launcher=vectorized``: at most ``max_population`` jobs train in one graph (bounds its memory)."""

    _target_: str = "hydra_plugins.sweep_vectorized.vectorized_launcher.VectorizedLauncher"
    max_population: int = 64


ConfigStore.instance().store(group="hydra/launcher", name="vectorized", node=VectorizedLauncherConf, provider="sweep")


@dataclass(frozen=True)
class Member:
    """A sweep job that may join a population: its task config (no ``hydra`` node) and its run's identity."""

    index: int  # position in the launch
    cfg: DictConfig
    fingerprint: str
    reusable: bool  # a completed record of this config is already in the sweep


class VectorizedLauncher(Launcher):
    """Runs jobs one by one in this process like Hydra's basic launcher, training sweep's groupable jobs as populations first."""

    def __init__(self, max_population: int = 64) -> None:
        super().__init__()
        if max_population < 1:
            raise ValueError(f"hydra.launcher.max_population={max_population}: must be a positive integer")
        self.max_population = max_population
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Compose every job, plan its populations, then run the jobs in order, training each population before its first member."""
        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, populations of up to {self.max_population}")
        configs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            configs.append(sweep_config)
        chunks = plan(members(configs), self.max_population)
        trained: set[int] = set()
        runs: list[JobReturn] = []
        try:
            for position, (overrides, sweep_config) in enumerate(zip(job_overrides, configs)):
                log.info(f"\t#{initial_job_idx + position} : {' '.join(filter_overrides(overrides))}")
                chunk = chunks.get(position)
                if chunk is not None and id(chunk) not in trained:
                    trained.add(id(chunk))
                    train(chunk, sweep_config, self.max_population)
                    configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
                runs.append(
                    run_job(
                        hydra_context=self.hydra_context,
                        task_function=self.task_function,
                        config=sweep_config,
                        job_dir_key="hydra.sweep.dir",
                        job_subdir_key="hydra.sweep.subdir",
                    )
                )
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        finally:
            from sweep.run import precompute

            for chunk in {id(chunk): chunk for chunk in chunks.values()}.values():
                for member in chunk:  # results no job took (the sweep was interrupted, or the task is not sweep's)
                    precompute(member.fingerprint, None)
        return runs


def members(configs: Sequence[DictConfig]) -> list[Member]:
    """The sweep jobs among ``configs`` (each composed with its ``hydra`` node), with fingerprints and whether they are reusable.

    A config that is not a sweep run, or whose fingerprint cannot be computed (it is then
    left to fail on its own, with its message), is left out.
    """
    if not any(all(key in config for key in SWEEP_KEYS) for config in configs):
        return []
    from sweep.config import fingerprint, flatten
    from sweep.run import Job, reusable

    found = []
    saved = HydraConfig.instance().cfg
    try:
        for index, config in enumerate(configs):
            if not all(key in config for key in SWEEP_KEYS):
                continue
            HydraConfig.instance().set_config(config)  # for ${hydra:...} in the job's config and dirs
            try:
                cfg = task_config(config)
                fprint = fingerprint(flatten(cfg))
                job = Job(Path(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)).absolute(), index, [], Path(str(config.hydra.sweep.dir)))
                found.append(Member(index, cfg, fprint, reusable(fprint, job)))
            except Exception as error:  # noqa: BLE001  the job reports it when it runs
                log.debug("job #%d runs on its own: %s", index, error)
    finally:
        HydraConfig.instance().cfg = saved  # type: ignore[assignment]
    return found


def task_config(config: DictConfig) -> DictConfig:
    """``config`` without its ``hydra`` node: what the task function receives."""
    cfg = copy.deepcopy(config)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


def plan(candidates: Sequence[Member], max_population: int) -> dict[int, list[Member]]:
    """Each job's population (its position -> the members), for the candidates that train with others.

    Candidates with equal :func:`sweep.population.group_key` form a group, in job order;
    reusable and duplicate configs are left out (the run reuses the first's record); a
    group is split into the fewest near-equal chunks of at most ``max_population``.
    Chunks of one member are left out.
    """
    if not candidates:
        return {}
    from sweep.population import group_key

    groups: dict[str, list[Member]] = {}
    seen: set[str] = set()
    for member in candidates:
        if member.reusable or member.fingerprint in seen:
            continue
        seen.add(member.fingerprint)
        key = group_key(member.cfg)
        if key is not None:
            groups.setdefault(key, []).append(member)
    chunks: dict[int, list[Member]] = {}
    for group in groups.values():
        n_chunks = math.ceil(len(group) / max_population)
        for part in range(n_chunks):
            chunk = group[part * len(group) // n_chunks : (part + 1) * len(group) // n_chunks]
            if len(chunk) > 1:
                chunks |= {member.index: chunk for member in chunk}
    return chunks


def train(chunk: Sequence[Member], sweep_config: DictConfig, max_population: int) -> None:
    """Train ``chunk`` as one population (at most ``max_population`` config x fold members at a time) and hand each member's per-fold results to :func:`sweep.run.precompute`.

    If the population raises, nothing is handed over: its jobs train on their own.
    """
    from sweep.population import fit_population
    from sweep.run import precompute
    from sweep.scaling import apply_threads

    apply_threads(chunk[0].cfg, sweep_config.hydra.launcher)
    start = time.perf_counter()
    try:
        results = fit_population([member.cfg for member in chunk], max_population=max_population)
    except Exception:  # noqa: BLE001  a failed population must not sink the sweep
        log.warning("population of %d jobs failed; they run one by one", len(chunk), exc_info=True)
        return
    elapsed = time.perf_counter() - start
    log.info("trained a population of %d jobs in %.1fs", len(chunk), elapsed)
    for member, fits in zip(chunk, results, strict=True):
        share_time(fits, elapsed / len(chunk))
        precompute(member.fingerprint, fits)


def share_time(fits: list[tuple[int | None, Any]], seconds: float) -> None:
    """Give folds without a ``fit_time_s`` metric an equal share of their member's ``seconds``."""
    for _, fit in fits:
        fit.metrics.setdefault("fit_time_s", seconds / len(fits))
