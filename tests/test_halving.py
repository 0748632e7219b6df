"""``sweep -m hparams_search=halving``: successive halving over epochs, each rung decided on the configs' fold means.

Every config of the grid trains a few epochs; the best third by the mean over its folds goes
on with three times the epochs, continuing from where it ended, up to ``trainer.epochs``.
The rungs are scikit-learn's (``HalvingGridSearchCV`` with ``min_resources="exhaust"``), a
survivor's last record is that of one run of all its epochs, and the summary ranks the last
rung's configs first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import records_under, run_sweep
from sweep.halving import fold_mean, halving_plan, hyperband, schedule, survivors
from sweep.plots import plot_sweep
from sweep.refit import refit
from sweep.results import load, summarize
from sweep.search_space import sample
from test_warm_start import _stable

#: 8 configs x 3 folds; with factor 3 and 9 epochs: 8 configs for 3 epochs, then the best 3 for 9.
GRID = [
    "optimizer.lr=0.0003,0.001,0.003,0.03",
    "regularizer.dropout=0.0,0.5",
    "validation=kfold",
    "validation.n_splits=3",
    "validation.fold=0,1,2",
    "trainer.epochs=9",
]


def _same_run(record: dict) -> dict:
    """What a config's run must have whichever sweep it ran in (not its job number, overrides, sweep run or population)."""
    return {k: v for k, v in _stable(record).items() if k not in ("overrides", "job_num", "sweep_run", "population_size")}


@pytest.mark.parametrize(("n_candidates", "factor", "max_resources"), [(8, 3, 270), (60, 3, 2700), (30, 2, 640), (5, 3, 810), (100, 4, 1000)])
def test_the_rungs_are_scikit_learns_with_the_last_one_at_the_full_budget(n_candidates: int, factor: int, max_resources: int) -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    x, y = np.zeros((max_resources, 1)), np.arange(max_resources) % 2
    grid = {"constant": [0], "strategy": ["most_frequent"], "random_state": list(range(n_candidates))}
    search = HalvingGridSearchCV(DummyClassifier(), grid, factor=factor, min_resources="exhaust", cv=2).fit(x, y)
    ours = schedule(n_candidates, factor, max_resources)
    assert len(ours) == len(search.n_resources_)
    assert ours[:-1] == search.n_resources_[:-1] and ours[-1] == max_resources


def test_a_rung_keeps_the_best_third_by_fold_mean_so_a_config_best_on_one_fold_only_is_stopped() -> None:
    folds = {"good on one fold": [0.99, 0.50, 0.50], "steady": [0.80, 0.80, 0.80], "fair": [0.70, 0.75, 0.70], "a failed fold": [0.99, math.nan, 0.99]}
    scores = [fold_mean(values) for values in folds.values()]
    assert scores[3] is None
    assert halving_plan(len(scores), 3, 9) == [(4, 3), (2, 9)]  # 2 of the 4 go on
    assert survivors(scores, 2, higher=True) == [False, True, True, False]  # the best single fold is not enough
    assert survivors(scores, 1, higher=True) == [False, True, False, False]
    assert survivors([0.3, 0.1, 0.2], 1, higher=False) == [False, True, False]  # a loss: lower is better


def test_hyperbands_brackets_are_li_et_als() -> None:
    """Table 1 of Li et al. (2018), R = 81 and eta = 3: each bracket's rungs as (configs, epochs)."""
    assert hyperband(3, 81) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ]


@pytest.mark.slow
def test_halving_trains_the_rungs_as_decided_on_fold_means_and_survivors_equal_full_runs(tmp_path: Path) -> None:
    run_sweep("-m", "hparams_search=halving", *GRID, "hydra.sweep.dir=sw", cwd=tmp_path)
    search = json.loads((tmp_path / "sw" / "halving.json").read_text())
    assert [rung["n_resources"] for rung in search["rungs"]] == [3, 9]
    first, last = search["rungs"]
    records = records_under(tmp_path / "sw")
    assert len(records) == 8 * 3 + 3 * 3 and all(r["status"] == "completed" for r in records)
    by_config: dict[tuple, list[float]] = {}
    for record in records:
        if record["trainer.epochs"] == 3:
            by_config.setdefault((record["optimizer.lr"], record["regularizer.dropout"]), []).append(record["val_accuracy"])
    means = [float(np.mean(v)) for v in by_config.values()]
    assert sorted(first["scores"]) == pytest.approx(sorted(means), abs=1e-12)
    assert sum(first["kept"]) == 3 and sorted(s for s, k in zip(first["scores"], first["kept"]) if k) == sorted(means)[-3:]
    assert last["configs"] == [c for c, k in zip(first["configs"], first["kept"]) if k] and last["kept"] == []

    survivors_overrides = [",".join(sorted({o.split("=")[1] for c in last["configs"] for o in c if o.startswith(key)})) for key in ("optimizer.lr", "regularizer.dropout")]
    continued = {(r["optimizer.lr"], r["regularizer.dropout"], r["validation.fold"]): r for r in records if r["trainer.epochs"] == 9}
    assert all(r["resumed_epochs"] == 3 for r in continued.values())
    run_sweep("-m", f"optimizer.lr={survivors_overrides[0]}", f"regularizer.dropout={survivors_overrides[1]}", *GRID[2:], "hydra.sweep.dir=full", cwd=tmp_path)
    for full in records_under(tmp_path / "full"):
        key = (full["optimizer.lr"], full["regularizer.dropout"], full["validation.fold"])
        if key in continued:
            mine = continued.pop(key)
            assert _same_run(mine) == _same_run(full)
            assert (Path(mine["output_dir"]) / "history.csv").read_bytes() == (Path(full["output_dir"]) / "history.csv").read_bytes()
    assert not continued, "every survivor's run has a full run of the same config"

    summary = pd.read_csv(tmp_path / "sw" / "summary.csv")
    assert list(summary["iter"]) == [1] * 3 + [0] * 8 and summary["rank_val_accuracy"].tolist() == list(range(1, 12))
    assert summary["mean_val_accuracy"].iloc[:3].is_monotonic_decreasing
    stopped = summary[summary["halving_stopped"].notna()]
    assert len(stopped) == 5 and all(text.startswith("rung 0: val_accuracy") for text in stopped["halving_stopped"])

    [figure] = [p for p in plot_sweep(load(tmp_path / "sw"), summarize(load(tmp_path / "sw")), tmp_path / "plots") if p.name == "halving_rungs.png"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    winner = refit(tmp_path / "sw", out_dir=tmp_path / "refit")  # the last rung's best, retrained from scratch on train + validation
    assert winner["status"] == "completed" and winner["trainer.epochs"] == 9 and winner["trainer.warm_start"] is None
    assert (winner["optimizer.lr"], winner["regularizer.dropout"]) == (summary["optimizer.lr"][0], summary["regularizer.dropout"][0])

    trained = {path: path.stat().st_mtime_ns for path in (tmp_path / "sw").rglob("model*.keras")}
    run_sweep("-m", "hparams_search=halving", *GRID, "hydra.sweep.dir=sw", cwd=tmp_path)  # the same command again: nothing trains
    assert json.loads((tmp_path / "sw" / "halving.json").read_text()) == search  # the same decisions, from the same records
    assert len(trained) == 33 and {path: path.stat().st_mtime_ns for path in trained} == trained


def test_random_candidates_are_drawn_by_seed_from_hydras_sweep_syntax_every_one_with_every_fold() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = ["optimizer.lr=tag(log,interval(1e-4,1e-1))", "regularizer.dropout=interval(0,0.6)", "optimizer=adam,sgd", "validation.fold=0,1,2", "trainer.batch_size=64"]
    overrides = OverridesParser.create().parse_overrides(space)
    jobs = sample(overrides, 200, seed=0)
    assert jobs == sample(overrides, 200, seed=0) and jobs != sample(overrides, 200, seed=1)
    assert len(jobs) == 600 and [job[-1] for job in jobs[:3]] == ["validation.fold=0", "validation.fold=1", "validation.fold=2"]
    values = pd.DataFrame([dict(o.split("=") for o in job) for job in jobs[::3]])
    lr, dropout = values["optimizer.lr"].astype(float), values["regularizer.dropout"].astype(float)
    assert lr.between(1e-4, 1e-1).all() and (np.log10(lr) < -2.5).mean() == pytest.approx(0.5, abs=0.1)  # log-uniform: half below the log midpoint
    assert dropout.between(0, 0.6).all() and set(values["optimizer"]) == {"adam", "sgd"} and set(values["trainer.batch_size"]) == {"64"}


@pytest.mark.slow
def test_random_halving_trains_each_rung_as_one_population(tmp_path: Path) -> None:
    space = ["optimizer.lr=tag(log,interval(1e-4,1e-1))", "regularizer.dropout=interval(0,0.6)", "validation=kfold", "validation.n_splits=3", "validation.fold=0,1,2"]
    run_sweep("-m", "hparams_search=halving", "hydra.sweeper.n_candidates=6", *space, "trainer.epochs=3", "hydra.sweep.dir=sw", cwd=tmp_path)
    search = json.loads((tmp_path / "sw" / "halving.json").read_text())
    assert [(len(rung["configs"]), rung["n_resources"]) for rung in search["rungs"]] == [(6, 1), (2, 3)]
    records = sorted(records_under(tmp_path / "sw"), key=lambda r: r["job_num"])
    assert [r["population_size"] for r in records] == [18] * 18 + [6] * 6


@pytest.mark.slow
def test_hyperband_runs_its_brackets_of_drawn_configs_and_ranks_the_full_budget_first(tmp_path: Path) -> None:
    space = ["optimizer.lr=tag(log,interval(1e-4,1e-1))", "regularizer.dropout=interval(0,0.6)", "trainer.save_model=true"]
    run_sweep("-m", "hparams_search=hyperband", *space, "trainer.epochs=9", "hydra.sweep.dir=sw", cwd=tmp_path)
    rungs = json.loads((tmp_path / "sw" / "halving.json").read_text())["rungs"]
    assert [(r["bracket"], len(r["configs"]), r["n_resources"]) for r in rungs] == [(0, 9, 1), (0, 3, 3), (0, 1, 9), (1, 5, 3), (1, 1, 9), (2, 3, 9)]
    records = records_under(tmp_path / "sw")
    assert len(records) == 22 and all(r["status"] == "completed" for r in records)
    assert sorted(r.get("resumed_epochs", 0) for r in records if r["trainer.epochs"] == 9) == [0, 0, 0, 3, 3]
    summary = pd.read_csv(tmp_path / "sw" / "summary.csv")
    assert list(summary["n_resources"][:5]) == [9] * 5 and summary["mean_val_accuracy"][:5].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task=cluster", "model=kmeans", "model.n_clusters=3,4"], "hparams_search=halving: task=cluster has no epochs to halve over"),
        (["optimizer.lr=0.001,0.01", "trainer.epochs=3,9"], "trainer.epochs: halving sets it at each rung"),
        (["optimizer.lr=0.001,0.01", "hydra.sweeper.factor=1"], "hydra.sweeper.factor=1.0: must be greater than 1"),
        (["optimizer.lr=0.001,0.01", "trainer.epochs=4", "hydra.sweeper.min_resources=5"], "hydra.sweeper.min_resources=5: must be between 1 and"),
    ],
)
def test_a_search_halving_cannot_run_is_refused_in_one_line_before_anything_trains(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run_sweep("-m", "hparams_search=halving", *args, "hydra.sweep.dir=sw", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"sweep: {message}")
    assert records_under(tmp_path / "sw") == []
