"""``hydra/launcher=vectorized``: Hydra's launcher suites, and sweep's jobs trained as populations.

Hydra's suites run Hydra's test apps, whose configs are not sweep runs: every job runs
ordinarily there. The grouped path is checked with the suites' own per-job checks
(``verify_dir_outputs``, job numbers, returns) on sweep's app, and end to end against the
basic launcher: same files, same metrics.
"""

from __future__ import annotations

import json
import math
import re
import weakref
from pathlib import Path

import pandas as pd
import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra.test_utils.test_utils import verify_dir_outputs
from omegaconf import open_dict

from hydra_plugins.sweep_vectorized.vectorized_launcher import Results, VectorizedLauncher, batches, candidates, plan
from sweep.config import config_dir, flatten
from sweep.hydra_job import ComposedJob, compose_job

from conftest import records_under, run_sweep
from test_launchers import VOLATILE, compose_with_hydra

#: The issue's 8-job sweep: 2 learning rates x 2 dropout rates x 2 folds, one population.
EIGHT_JOBS = [
    "optimizer.lr=1e-3,1e-2",
    "regularizer.dropout=0,0.5",
    "validation=kfold",
    "validation.fold=0,1",
    "trainer.epochs=2",
]
POPULATION = re.compile(r"trained a population of (\d+) jobs")


def test_hydra_discovers_the_launcher() -> None:
    assert VectorizedLauncher.__name__ in [plugin.__name__ for plugin in Plugins.instance().discover(Launcher)]


@pytest.mark.usefixtures("hydra_default_version_base")
@pytest.mark.filterwarnings("ignore:Future Hydra versions will no longer change working directory")
@pytest.mark.parametrize(("launcher_name", "overrides"), [("vectorized", [])])
class TestVectorizedLauncher(LauncherTestSuite):
    """Hydra's launcher suite (its test apps: every job runs ordinarily)."""


@pytest.mark.slow
@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [({}, ["-m", "hydra/launcher=vectorized"])])
class TestVectorizedLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration suite: its test apps in subprocesses (one job each, so nothing groups)."""


# ----------------------------------------------------------------------------- planning


def _sweep_configs(*jobs: list[str], sweep_dir: Path) -> dict[int, ComposedJob]:
    """Each job composed as the launcher composes it, by its position in the launch."""
    composed = [compose_with_hydra(*overrides, f"hydra.sweep.dir={sweep_dir}") for overrides in jobs]
    return {num: compose_job(num, overrides, config, "hydra.sweep.dir", "hydra.sweep.subdir") for num, (overrides, config) in enumerate(zip(jobs, composed))}


def _chunks(plan_: dict) -> list[tuple[int, ...]]:
    return sorted({tuple(member.index for member in chunk) for chunk in plan_.values()})


def test_jobs_differing_in_vectorizable_keys_group_and_large_groups_chunk_evenly(tmp_path: Path) -> None:
    lrs = [[f"optimizer.lr={lr}"] for lr in (1e-3, 2e-3, 3e-3, 4e-3, 5e-3)]
    # early stopping and hidden_units=[16] are other graphs (groups of one); the last duplicates job 0.
    others = [["trainer.early_stopping_patience=2"], ["model.hidden_units=[16]"], ["optimizer.lr=1e-3"]]
    found = candidates(_sweep_configs(*lrs, *others, sweep_dir=tmp_path))
    assert len(found) == 8
    assert _chunks(plan(found, max_population=64)) == [(0, 1, 2, 3, 4)]
    assert _chunks(plan(found, max_population=4)) == [(0, 1), (2, 3, 4)]  # near-equal, not 4 + 1
    assert _chunks(plan(found, max_population=2)) == [(1, 2), (3, 4)]  # a chunk of one trains on its own


def test_jobs_are_planned_in_batches_of_likely_populations_in_order_of_first_appearance() -> None:
    jobs = [
        ["optimizer.lr=1e-3", "model.hidden_units=[8]", "validation.fold=0"],
        ["optimizer.lr=1e-3", "model.hidden_units=[16]", "validation.fold=0"],
        ["optimizer.lr=1e-2", "model.hidden_units=[8]", "validation.fold=1"],
        ["+seed=3", "model.hidden_units=[16]", "validation.fold=1"],
        ["optimizer.lr=1e-1", "model.hidden_units=[8]", "validation.fold=2"],
    ]
    # only model.hidden_units is not a key a population varies; its groups are cut as populations are
    assert batches(jobs, max_population=64) == [[0, 2, 4], [1, 3]]
    assert batches(jobs, max_population=2) == [[0], [2, 4], [1, 3]]


def _added(overrides: list[list[str]], sweep_dir: Path) -> Results:
    """The jobs of ``overrides`` composed and added to the launch's results batch by batch, as the launcher does (no trainer process)."""
    from omegaconf import OmegaConf

    jobs = _sweep_configs(*overrides, sweep_dir=sweep_dir)
    results = Results(OmegaConf.create({}), max_population=64, trainer=None)
    for batch in batches(overrides, max_population=64):
        results.add(candidates({position: jobs[position] for position in batch}))
    return results


def test_jobs_a_batch_leaves_alone_are_planned_together_at_the_end(tmp_path: Path) -> None:
    # trainer.epochs=01 is epochs 1 too: a config of the first job's population, in a batch of its own
    overrides = [["optimizer.lr=1e-3", "trainer.epochs=1"], ["optimizer.lr=1e-2", "trainer.epochs=01"]]
    assert batches(overrides, max_population=64) == [[0], [1]]
    results = _added(overrides, tmp_path)
    assert results.chunks == {}
    results.finish()
    assert _chunks(results.chunks) == [(0, 1)]
    trained = results.take(1)
    assert [fit.population_size for _, fit in trained.fits] == [2]


def test_the_first_job_of_a_config_takes_the_training_of_its_twin_in_a_later_population(tmp_path: Path) -> None:
    # job 0 is job 2's config (epochs=01 is 1) but alone in its batch; jobs 1-3 are one population
    overrides = [["optimizer.lr=1e-3", "trainer.epochs=01"], *([f"optimizer.lr={lr}", "trainer.epochs=1"] for lr in ("1e-2", "1e-3", "1e-1"))]
    results = _added(overrides, tmp_path)
    results.finish()
    assert _chunks(results.chunks) == [(1, 2, 3)]
    first = results.take(0)
    assert [fit.population_size for _, fit in first.fits] == [3]
    assert results.take(2) is None  # its job reuses job 0's record


def test_jobs_with_a_completed_record_in_the_sweep_are_left_out(tmp_path: Path) -> None:
    configs = _sweep_configs(["optimizer.lr=1e-3"], ["optimizer.lr=1e-2"], ["optimizer.lr=1e-1"], sweep_dir=tmp_path)
    first = candidates(configs)[0]
    job_dir = tmp_path / "0"
    job_dir.mkdir()
    record = {"status": "completed", "fingerprint": first.fingerprint, "artifacts": [], **flatten(first.cfg)}
    (job_dir / "result.json").write_text(json.dumps(record))
    assert _chunks(plan(candidates(configs), max_population=64)) == [(1, 2)]


def test_other_apps_configs_are_not_members(tmp_path: Path) -> None:
    job = _sweep_configs([], sweep_dir=tmp_path)[0]
    with open_dict(job.task):
        del job.task["model"]
    assert candidates({0: job}) == []


# ----------------------------------------------------------------------------- the grouped path, in process


def test_grouped_jobs_pass_the_suites_per_job_checks(hydra_sweep_runner, tmp_path: Path) -> None:
    from sweep.app import run

    overrides = ["hydra.job.chdir=true", "optimizer.lr=1e-3,1e-2", "validation=kfold", "validation.fold=0,1", "trainer.epochs=1", "trainer.save_model=false"]
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="sweep.app",
        task_function=run.__wrapped__,
        config_path=config_dir(),
        config_name="config",
        overrides=["hydra/launcher=vectorized", *overrides],
        temp_dir=tmp_path / "sweep",
    )
    with sweep:
        returns = sweep.returns[0]
        assert len(returns) == 4
        records = records_under(tmp_path / "sweep")
        assert (tmp_path / "sweep" / "results.csv").is_file()
        for num, (job_return, record) in enumerate(zip(returns, records)):
            verify_dir_outputs(job_return, job_return.overrides)
            assert job_return.hydra_cfg.hydra.job.num == num == record["job_num"]
            assert job_return.hydra_cfg.hydra.launcher.max_population == 64
            assert record["status"] == "completed"
            assert job_return.return_value == pytest.approx(record["val_accuracy"])
            assert Path(job_return.working_dir) == tmp_path / "sweep" / str(num)


def test_a_launch_holds_a_few_batches_of_configs_and_its_returns_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """24 jobs in populations of 2 (12 batches): jobs are composed a few batches ahead of the one running and let go once run,
    and what the launch returns holds no config, so its memory does not grow with its jobs."""
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext, RunMode
    from omegaconf import DictConfig

    from hydra_plugins.sweep_vectorized.vectorized_launcher import AHEAD
    from sweep import hydra_job
    from sweep.app import run

    composed: list[weakref.ref] = []
    live = []
    compose = hydra_job.compose_job
    monkeypatch.setattr(hydra_job, "compose_job", lambda *args: _kept(composed, compose(*args)))

    def counting(cfg: DictConfig, trained=None):  # noqa: ANN001, ANN202  sweep's task function, counting the composed jobs alive
        live.append(sum(ref() is not None for ref in composed))
        return run.__wrapped__(cfg, trained=trained)

    jobs = [[f"optimizer.lr={k}e-3", "validation=kfold", f"validation.fold={fold}", "trainer.epochs=1"] for k in range(1, 13) for fold in (0, 1)]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        setup_globals()
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", [f"hydra.sweep.dir={tmp_path}", "trainer.save_model=false"], RunMode.MULTIRUN)
        launcher = VectorizedLauncher(max_population=2, trainer_process=False)
        launcher.setup(hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks()), task_function=counting, config=master)
        returns = launcher.launch(jobs, initial_job_idx=0)
    assert len(live) == len(returns) == 24
    assert max(live) <= (AHEAD + 1) * 2 < 24  # never every job's config at once
    assert all(not any(isinstance(value, DictConfig) for value in vars(ret).values()) for ret in returns)
    assert [ret.hydra_cfg.hydra.job.num for ret in returns] == list(range(24))  # read back from each job's .hydra files
    records = records_under(tmp_path)
    assert [(r["status"], r["population_size"]) for r in records] == [("completed", 2)] * 24


def _kept(refs: list[weakref.ref], job: ComposedJob) -> ComposedJob:
    refs.append(weakref.ref(job))
    return job


# ----------------------------------------------------------------------------- end to end, against the basic launcher


def _populations(proc) -> list[int]:
    return [int(n) for n in POPULATION.findall(proc.stdout + proc.stderr)]


def _reused(proc) -> int:
    return (proc.stdout + proc.stderr).count("(reused)")


def _files(job_dir: Path) -> list[str]:
    return sorted(str(path.relative_to(job_dir)) for path in job_dir.rglob("*") if path.is_file())


@pytest.mark.slow
def test_the_default_sweep_writes_what_the_basic_launcher_writes_to_the_bit(tmp_path: Path) -> None:
    basic = run_sweep("-m", *EIGHT_JOBS, "hydra/launcher=basic", "hydra.sweep.dir=basic", cwd=tmp_path)
    vectorized = run_sweep("-m", *EIGHT_JOBS, "hydra.sweep.dir=vec", cwd=tmp_path)
    assert _populations(basic) == [] and _populations(vectorized) == [8]
    expected, got = records_under(tmp_path / "basic"), records_under(tmp_path / "vec")
    assert len(got) == len(expected) == 8
    for num, (want, have) in enumerate(zip(expected, got)):
        assert have["status"] == "completed" and have["job_num"] == num
        assert _files(tmp_path / "vec" / str(num)) == _files(tmp_path / "basic" / str(num))
        assert set(have) == set(want)
        for key, value in want.items():
            if any(word in key for word in VOLATILE) or key in ("fingerprint", "population_size", "hydra"):
                continue
            assert have[key] == value, key  # every metric to the bit
        assert have["fingerprint"] == want["fingerprint"]
        assert (have["trained_by"], want["trained_by"]) == ("graph", "graph")
        assert (have["population_size"], want["population_size"]) == (8, 1)
        history = [(tmp_path / d / str(num) / "history.csv").read_bytes() for d in ("basic", "vec")]
        assert history[0] == history[1]
    for table in ("results.csv", "summary.csv", "results.parquet"):
        assert (tmp_path / "vec" / table).is_file()
    summaries = [pd.read_csv(tmp_path / d / "summary.csv") for d in ("basic", "vec")]
    timeless = [summary.drop(columns=[c for c in summary.columns if "time" in c]) for summary in summaries]
    pd.testing.assert_frame_equal(*timeless)  # a config's row and rank do not depend on how it trained

    # Resume: every record is reused, nothing trains; the lost records are the only runs trained again.
    again = run_sweep("-m", *EIGHT_JOBS, "hydra.sweep.dir=vec", cwd=tmp_path)
    assert _populations(again) == [] and _reused(again) == 8
    (tmp_path / "vec" / "3" / "result.json").unlink()
    (tmp_path / "vec" / "5" / "result.json").unlink()
    partial = run_sweep("-m", *EIGHT_JOBS, "hydra.sweep.dir=vec", cwd=tmp_path)
    assert _populations(partial) == [2] and _reused(partial) == 6
    records = records_under(tmp_path / "vec")
    assert [record["status"] for record in records] == ["completed"] * 8
    for num in (3, 5):
        assert records[num]["val_accuracy"] == got[num]["val_accuracy"]
        assert records[num]["started_at"] >= got[num]["started_at"]


@pytest.mark.slow
def test_jobs_that_cannot_group_run_ordinarily(tmp_path: Path) -> None:
    proc = run_sweep(
        "-m", "model.activation=relu,selu", "optimizer.lr=1e-3,1e-2", "model.hidden_units=[32],[16]", "trainer.epochs=1",
        "trainer.save_model=false", "hydra.sweep.dir=mixed", cwd=tmp_path,
    )  # fmt: skip
    # relu: one population per hidden_units (2 learning rates each); selu (not in the graph): 4 model.fit runs.
    assert _populations(proc) == [2, 2]
    records = records_under(tmp_path / "mixed")
    assert [record["status"] for record in records] == ["completed"] * 8
    assert (tmp_path / "mixed" / "results.csv").is_file()


@pytest.mark.slow
def test_a_population_whose_data_cannot_load_falls_back_to_ordinary_runs(tmp_path: Path) -> None:
    proc = run_sweep(
        "-m", "dataset=npz", "dataset.path=missing.npz", "optimizer.lr=1e-3,1e-2", "fail_on_error=false",
        "hydra.sweep.dir=broken", cwd=tmp_path,
    )  # fmt: skip
    assert _populations(proc) == []
    records = records_under(tmp_path / "broken")
    assert len(records) == 2
    assert all(record["status"] == "failed" and "missing.npz" in record["error"] for record in records)
    assert all(math.isnan(record["fit_time_s"]) for record in records)
