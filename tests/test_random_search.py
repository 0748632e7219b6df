"""``sweep -m hparams_search=random``: configs drawn from Hydra's sweep syntax, each trained on every fold.

``hydra.sweeper.n_trials`` configs are drawn (``hydra.sweeper.seed`` fixes them) from
``interval``, ``tag(log, interval)``, ``choice``, lists and ``range``; folds are never drawn.
The drawn jobs launch together, so they train as populations, and a rerun of the same command
draws the same configs and reuses their records. A grid cannot sweep an interval: it says so
in one line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import records_under, run_sweep
from sweep.results import load, summarize

SPACE = [
    "optimizer.lr=tag(log,interval(1e-4,1e-1))",
    "regularizer.dropout=interval(0,0.6)",
    "regularizer.l2=0,0.001",
    "validation=kfold",
    "validation.n_splits=3",
    "validation.fold=0,1,2",
    "trainer.epochs=2",
]


def _jobs(sweep_dir: Path) -> list[dict]:
    return sorted(records_under(sweep_dir), key=lambda r: r["job_num"])


@pytest.mark.slow
def test_random_search_draws_n_trials_configs_by_seed_each_on_every_fold_trained_as_one_population(tmp_path: Path) -> None:
    command = ["-m", "hparams_search=random", "hydra.sweeper.n_trials=5", "hydra.sweeper.seed=3", *SPACE]
    run_sweep(*command, "hydra.sweep.dir=a", cwd=tmp_path)
    records = _jobs(tmp_path / "a")
    assert len(records) == 15 and all(r["status"] == "completed" for r in records)
    configs = pd.DataFrame(records).groupby(["optimizer.lr", "regularizer.dropout", "regularizer.l2"])["validation.fold"].apply(sorted)
    assert len(configs) == 5 and all(folds == [0, 1, 2] for folds in configs)  # every drawn config on every fold
    lrs, rates = configs.index.get_level_values(0), configs.index.get_level_values(1)
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs) and all(0 <= rate <= 0.6 for rate in rates)
    assert {r["population_size"] for r in records} == {15}  # the drawn jobs trained together
    assert len(summarize(load(tmp_path / "a"))) == 5  # one ranked row per drawn config, its folds aggregated

    run_sweep(*command, "hydra.sweep.dir=b", cwd=tmp_path)  # the same seed, another sweep dir: the same configs, the same bits
    again = _jobs(tmp_path / "b")
    assert [(r["overrides"], r["val_accuracy"], r["val_loss"]) for r in again] == [(r["overrides"], r["val_accuracy"], r["val_loss"]) for r in records]

    trained = {path: path.stat().st_mtime_ns for path in (tmp_path / "a").rglob("model.keras")}
    run_sweep(*command, "hydra.sweep.dir=a", cwd=tmp_path)  # rerun into the same dir: the same configs, none trained again
    assert len(trained) == 15 and {path: path.stat().st_mtime_ns for path in trained} == trained

    run_sweep(*command[:-len(SPACE)], "hydra.sweeper.seed=4", *SPACE, "hydra.sweep.dir=c", cwd=tmp_path)
    other = {tuple(o for o in r["overrides"] if not o.startswith("validation.fold")) for r in _jobs(tmp_path / "c")}
    assert other.isdisjoint({tuple(o for o in r["overrides"] if not o.startswith("validation.fold")) for r in records})


@pytest.mark.parametrize(
    ("search", "advice"),
    [([], "hparams_search=random hydra.sweeper.n_trials=N"), (["hparams_search=halving"], "hydra.sweeper.n_candidates=N")],
)
def test_a_grid_over_an_interval_is_refused_in_one_line_saying_how_to_draw_from_it(search: list[str], advice: str, tmp_path: Path) -> None:
    proc = run_sweep("-m", *search, "optimizer.lr=tag(log,interval(1e-4,1e-1))", "trainer.epochs=1", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("sweep: optimizer.lr=tag(log,interval(1e-4,1e-1)): ") and line.endswith(advice)
    assert records_under(tmp_path) == []  # refused before any job ran


def test_random_search_of_no_trials_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = run_sweep("-m", "hparams_search=random", "hydra.sweeper.n_trials=0", "optimizer.lr=interval(1e-4,1e-1)", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == ["sweep: hydra.sweeper.n_trials=0: must be at least 1"]
    assert records_under(tmp_path) == []


@pytest.mark.slow
def test_a_config_drawn_twice_is_one_job(tmp_path: Path) -> None:
    run_sweep("-m", "hparams_search=random", "hydra.sweeper.n_trials=6", "regularizer.dropout=0,0.5", "trainer.epochs=1", "hydra.sweep.dir=sw", cwd=tmp_path)
    assert sorted(r["regularizer.dropout"] for r in records_under(tmp_path / "sw")) == [0.0, 0.5]
