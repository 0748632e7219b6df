"""The grid sweeper (sweep's default) composes each set of group choices once, and every job is still Hydra's own config.

``sweep.compose_once.ComposeOnce`` wraps Hydra's config loader. These tests compose the
same jobs with Hydra's loader and with it, and compare the whole configs (``hydra`` node
included), the errors, and what ``sweep -m`` writes under either sweeper; and they run
Hydra's own launcher and batched-sweeper suites (Hydra's test apps: group sweeps, custom
resolvers, strict-mode errors, batches) with ``hydra/sweeper=grid``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite
from hydra.types import RunMode
from joblib.externals import cloudpickle
from omegaconf import DictConfig, OmegaConf

from conftest import QUICK, records_under, run_sweep
from sweep.compose_once import ComposeOnce
from sweep.config import config_dir


@pytest.mark.usefixtures("hydra_default_version_base")
@pytest.mark.filterwarnings("ignore:Future Hydra versions will no longer change working directory")
@pytest.mark.parametrize(
    ("launcher_name", "overrides"), [("basic", ["hydra/sweeper=grid"]), ("vectorized", ["hydra/sweeper=grid"])]
)
class TestGridSweeperWithHydrasLauncherSuite(LauncherTestSuite):
    """Hydra's launcher suite, its jobs composed by the grid sweeper's loader."""


@pytest.mark.usefixtures("hydra_default_version_base")
@pytest.mark.filterwarnings("ignore:Future Hydra versions will no longer change working directory")
@pytest.mark.parametrize(("launcher_name", "overrides"), [("basic", ["hydra/sweeper=grid", "hydra.sweeper.max_batch_size=2"])])
class TestGridSweeperBatches(BatchedSweeperTestSuite):
    """Hydra's batched-sweeper suite: 6 jobs over a group and a value, in batches of 2."""


@pytest.mark.slow
@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [({}, ["-m", "hydra/sweeper=grid"])])
class TestGridSweeperIntegration(IntegrationTestSuite):
    """Hydra's integration suite: its test apps run in subprocesses with ``-m hydra/sweeper=grid``."""


class Counting:
    """Hydra's loader, counting the configs it composes (everything is delegated to it)."""

    def __init__(self, loader) -> None:  # noqa: ANN001
        self.loader, self.composed = loader, 0

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        self.composed += 1
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str):  # noqa: ANN204
        if name == "loader":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.loader, name)


@pytest.fixture
def hydra_loader() -> Iterator:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def master(loader, *hydra_overrides: str) -> DictConfig:  # noqa: ANN001
    """The multirun's own config, as ``sweep -m`` composes it before its jobs."""
    return loader.load_configuration("config", ["hydra.sweep.dir=multirun", *hydra_overrides], RunMode.MULTIRUN)


def composed(loader, master_config: DictConfig, overrides: list[str]) -> str:  # noqa: ANN001
    """The whole job config as YAML (flags included), or the error composing it raised."""
    try:
        cfg = loader.load_sweep_config(master_config, overrides)
    except ConfigCompositionException as error:
        return f"{type(error).__name__}: {error} <- {error.__cause__!r}"
    return OmegaConf.to_yaml(cfg) + f"struct={OmegaConf.is_struct(cfg)} readonly={OmegaConf.is_readonly(cfg.hydra)}"


GRID = [
    ["model=mlp", "model=cnn"],
    ["optimizer.lr=0.1", "optimizer.lr=1e-3"],
    ["validation=kfold"],
    ["validation.fold=0", "validation.fold=3"],
    ["seed=1", "seed=abc"],  # abc is not an int: both loaders must refuse it the same way
    ["regularizer.dropout=0.5", "regularizer.dropout=null"],
]


def test_every_job_of_a_grid_is_the_config_hydra_composes(hydra_loader) -> None:  # noqa: ANN001
    spy = Counting(hydra_loader)
    fast = ComposeOnce(spy)
    root = master(hydra_loader, "hydra/launcher=joblib", "hydra.sweep.subdir=job_${hydra.job.num}")  # read, not resolved
    jobs = [list(job) for job in itertools.product(*GRID)]
    for job in jobs:
        assert composed(fast, root, job) == composed(hydra_loader, root, job), job
    # Hydra composed one template per set of group choices (2 models); the rest were copies.
    # Jobs whose value is refused fail when set on the copy: they compose nothing more.
    assert spy.composed == 2


@pytest.mark.parametrize(
    "overrides",
    [
        ["+trainer.note=1", "optimizer.lr=0.1"],  # an addition
        ["~seed", "optimizer.lr=0.1"],  # a deletion
        ["optimizer={lr: 0.2}", "optimizer.lr=0.1"],  # a dict value, merged
        ["trainer.epochs=3", "hydra.job.chdir=true"],  # a hydra value
    ],
)
def test_jobs_with_other_overrides_are_composed_by_hydra_and_equal_too(hydra_loader, overrides) -> None:  # noqa: ANN001
    spy = Counting(hydra_loader)
    fast = ComposeOnce(spy)
    root = master(hydra_loader)
    for _ in range(2):
        assert composed(fast, root, overrides) == composed(hydra_loader, root, overrides)
    plain = all("=" in o and o[0] not in "+~" and "{" not in o for o in overrides)
    assert spy.composed == (1 if plain else 2)


def test_checking_a_batch_tries_each_value_once_and_refuses_what_hydra_refuses(hydra_loader) -> None:  # noqa: ANN001
    spy = Counting(hydra_loader)
    fast = ComposeOnce(spy)
    root = master(hydra_loader)
    for lr, fold in itertools.product(["0.1", "0.01"], range(5)):
        fast.check(root, [f"optimizer.lr={lr}", "validation=kfold", f"validation.fold={fold}"])
    assert spy.composed == 1
    with pytest.raises(ConfigCompositionException, match="validation.fold=x"):
        fast.check(root, ["optimizer.lr=0.1", "validation=kfold", "validation.fold=x"])
    with pytest.raises(ConfigCompositionException):
        hydra_loader.load_sweep_config(root, ["optimizer.lr=0.1", "validation=kfold", "validation.fold=x"])


def test_the_loader_travels_to_launcher_workers_without_its_templates(hydra_loader) -> None:  # noqa: ANN001
    spy = Counting(hydra_loader)
    fast = ComposeOnce(spy)
    root = master(hydra_loader)
    size = len(cloudpickle.dumps(fast))
    fast.load_sweep_config(root, ["seed=3"])
    assert len(cloudpickle.dumps(fast)) == size  # as joblib sends it to a worker: no templates in it
    for seed in (4, 5):  # a worker unpickles a copy for every job; the copies share the sweep's templates
        copy = cloudpickle.loads(cloudpickle.dumps(fast))
        assert composed(copy, root, [f"seed={seed}"]) == composed(hydra_loader, root, [f"seed={seed}"])
        assert copy.loader.composed == spy.composed == 1  # the copy's own Hydra loader composed nothing
    other_sweep = ComposeOnce(spy)
    other_sweep.load_sweep_config(root, ["seed=3"])
    assert spy.composed == 2


@pytest.mark.slow
def test_the_grid_sweeper_writes_what_hydras_basic_sweeper_writes(tmp_path: Path) -> None:
    grid = ["-m", "optimizer.lr=0.01,0.001", "regularizer=l2,dropout", *QUICK]
    run_sweep(*grid, "hydra.sweep.dir=grid", cwd=tmp_path)
    run_sweep(*grid, "hydra/sweeper=basic", "hydra.sweep.dir=basic", cwd=tmp_path)
    drop = {"output_dir", "started_at", "elapsed_s", "fit_time_s", "sweep_run"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in records_under(tmp_path / "grid")] == [
        {k: v for k, v in r.items() if k not in drop} for r in records_under(tmp_path / "basic")
    ]
    for job in range(4):
        for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
            ours, hydras = (_hydra_file(tmp_path / sweep / str(job) / ".hydra" / name) for sweep in ("grid", "basic"))
            assert ours == hydras, (job, name)


def _hydra_file(path: Path) -> object:
    """A job's ``.hydra`` file, without what differs between the two sweeps by construction (sweeper, sweep dir)."""
    content = OmegaConf.to_container(OmegaConf.load(path))
    if isinstance(content, dict) and "hydra" in content:
        hydra = content["hydra"]
        for node, key in [(hydra, "sweeper"), (hydra["sweep"], "dir"), (hydra["overrides"], "hydra"), (hydra["runtime"], "output_dir")]:
            del node[key]
        del hydra["runtime"]["choices"]["hydra/sweeper"]
    return content
