"""``task=regress``: a Keras MLP with one linear output, ranked by ``val_mse`` (low is better).

The network learns a standardized target: its output goes through Keras'
``Normalization(invert=True)`` holding the training rows' target mean and variance, so every
loss, metric and saved model is in the target's own units. The same config groups apply
(regularizers, optimizers, holdout and k-fold), and the batched graph trains it as it trains
classifiers: populations, early stopping, warm starts, the same bits alone or together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from conftest import MODEL_FIT, compose_config, records_under, run_sweep
from sweep.config import SweepConfigError, compose
from sweep.data import Arrays, load_dataset
from sweep.run import Job, check, run_job, train
from test_warm_start import _stable

QUICK = ("task=regress", "trainer.epochs=3")


def _validation_rows(cfg):
    data, [fold] = check(cfg)
    return data.x[fold.val], data.y[fold.val]


def _predictions(job_dir: Path, x: np.ndarray) -> np.ndarray:
    from sweep.backend import keras

    return keras().models.load_model(job_dir / "model.keras").predict(x, verbose=0).reshape(-1)


# ------------------------------------------------------------------------------ the task


def test_task_regress_defaults_to_diabetes_and_reports_scikit_learns_metrics_of_its_saved_model(tmp_path: Path) -> None:
    cfg = compose_config(*QUICK)
    assert (cfg.dataset.name, cfg.task.metric, cfg.task.loss) == ("diabetes", "val_mse", "mse")
    record = run_job(cfg, Job(tmp_path))
    assert record["status"] == "completed" and record["trained_by"] == "graph"
    x_val, y_val = _validation_rows(cfg)
    predicted = _predictions(tmp_path, x_val)  # in the target's units: the model ends in Normalization(invert=True)
    assert record["val_mse"] == pytest.approx(mean_squared_error(y_val, predicted), rel=1e-4)
    assert record["val_mae"] == pytest.approx(mean_absolute_error(y_val, predicted), rel=1e-4)
    assert record["val_r2"] == pytest.approx(r2_score(y_val, predicted), abs=1e-4)
    assert 0.1 < record["val_r2"] < 1 and record["best_val_mse"] <= record["val_mse"]
    assert record["test_split_stratified"] is False and "classes" not in record


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_the_graphs_loss_is_the_one_keras_computes_for_the_saved_model(loss: str, tmp_path: Path) -> None:
    cfg = compose_config(*QUICK, f"task.loss={loss}", "regularizer=none")
    record = run_job(cfg, Job(tmp_path))
    x_val, y_val = _validation_rows(cfg)
    from sweep.backend import keras

    model = keras().models.load_model(tmp_path / "model.keras")
    loss_value, mae, mse = model.evaluate(x_val, y_val, verbose=0)
    assert record["val_loss"] == pytest.approx(loss_value, rel=1e-4)
    assert (record["val_mae"], record["val_mse"]) == (pytest.approx(mae, rel=1e-4), pytest.approx(mse, rel=1e-4))


def test_model_fit_trains_what_the_graph_does_not_and_reports_the_same_metrics(tmp_path: Path) -> None:
    cfg = compose_config(*QUICK, *MODEL_FIT)
    record = run_job(cfg, Job(tmp_path))
    assert record["status"] == "completed" and record["trained_by"] == "model.fit"
    x_val, y_val = _validation_rows(cfg)
    assert record["val_r2"] == pytest.approx(r2_score(y_val, _predictions(tmp_path, x_val)), abs=1e-4)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "mae", "mse", "val_loss", "val_mae", "val_mse", "val_r2"]


def test_folds_and_configs_train_as_one_population_with_the_bits_of_each_alone() -> None:
    overrides = [(*QUICK, "validation=kfold", "validation.n_splits=3", f"optimizer.lr={lr}") for lr in (1e-3, 1e-2)]
    cfgs = [compose_config(*o) for o in overrides]
    together = train(cfgs, [check(cfg) for cfg in cfgs])
    assert {(fit.trained_by, fit.population_size) for trained in together for _, fit in trained.fits} == {("graph", 6)}
    [alone] = train([cfgs[1]], [check(cfgs[1])])
    for (_, fit), (_, solo) in zip(together[1].fits, alone.fits):
        assert solo.population_size == 3 and fit.history == solo.history


def test_early_stopping_monitors_val_mae_in_the_graph() -> None:
    cfg = compose_config(*QUICK, "trainer.epochs=30", "optimizer.lr=0.1", "trainer.early_stopping_patience=2", "trainer.early_stopping_monitor=val_mae")
    [trained] = train([cfg], [check(cfg)])
    [(_, fit)] = trained.fits
    assert fit.trained_by == "graph" and fit.metrics["epochs_run"] < 30
    maes = [row["val_mae"] for row in fit.history]
    assert fit.metrics["val_mae"] == min(maes) and fit.metrics["restored_epoch"] == int(np.argmin(maes)) + 1


def test_a_warm_started_regression_ends_with_the_bits_of_one_run(tmp_path: Path) -> None:
    full = run_job(compose_config(*QUICK, "trainer.epochs=4"), Job(tmp_path / "full"))
    run_job(compose_config(*QUICK, "trainer.epochs=2"), Job(tmp_path / "short"))
    continued = run_job(compose_config(*QUICK, "trainer.epochs=4", f"trainer.warm_start={tmp_path / 'short'}"), Job(tmp_path / "continued"))
    assert continued["resumed_epochs"] == 2 and _stable(continued) == _stable(full)


# ---------------------------------------------------------------------------- datasets


def test_a_csv_with_a_numeric_target_and_synthetic_regression_data_regress(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"area": rng.uniform(20, 200, 300), "district": rng.choice(["north", "south"], 300)})
    frame["price"] = 3.0 * frame.area + np.where(frame.district == "north", 100.0, 0.0) + rng.normal(0, 5, 300)
    frame.to_csv(tmp_path / "homes.csv", index=False)
    homes = run_job(compose_config(*QUICK, "dataset=csv", f"dataset.path={tmp_path / 'homes.csv'}", "dataset.target=price", "trainer.epochs=20"), Job(tmp_path / "homes"))  # fmt: skip
    assert homes["status"] == "completed" and homes["val_r2"] > 0.5
    made = run_job(compose_config(*QUICK, "dataset=synthetic_regression", "dataset.n_samples=300"), Job(tmp_path / "made"))
    assert made["status"] == "completed" and made["dataset._target_"] == "sweep.data.synthetic_regression"


def test_california_housing_not_downloaded_is_one_line_naming_the_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    with pytest.raises(SweepConfigError, match=rf"^dataset=california_housing: not in scikit-learn's data home \({tmp_path}\)"):
        load_dataset(compose_config("task=regress", "dataset=california_housing", "dataset.download=false").dataset, regression=True)


def nan_targets() -> Arrays:
    return Arrays(np.arange(40.0).reshape(-1, 1), np.r_[np.ones(39), np.nan], source="nan targets")


def string_targets() -> Arrays:
    return Arrays(np.arange(40.0).reshape(-1, 1), np.array(["low", "high"] * 20), source="string targets")


@pytest.mark.parametrize(
    ("loader", "message"),
    [
        ("nan_targets", "dataset: nan targets: training y has 1 NaN or infinite target(s)"),
        ("string_targets", "dataset: string targets: training y must hold numbers for task=regress (its first value: 'low')"),
    ],
)
def test_targets_that_are_not_finite_numbers_are_refused(loader: str, message: str) -> None:
    with pytest.raises(SweepConfigError) as caught:
        check(compose_config("task=regress", f"dataset._target_=test_regression.{loader}"))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=regress", "validation=stratified_kfold"], "validation='stratified_kfold': task=regress has no classes to stratify by; use validation=kfold"),
        (["task=regress", "task.loss=hinge"], "task.loss='hinge': must be one of mse, mae, huber"),
        (["task=regress", "task.metric=val_accuracy"], "task.metric='val_accuracy': not a metric of task=regress (one of: train_loss, train_mae, train_mse, val_loss, val_mae, val_mse, val_r2, best_val_mse, best_epoch, epochs_run, restored_epoch, fit_time_s)"),
        (["task.loss=mse"], "task.loss='mse': task=regress's alone; task=classify has its own"),
        (["task=regress", "trainer.early_stopping_monitor=val_accuracy"], "trainer.early_stopping_monitor='val_accuracy': must be one of val_loss, val_mae, val_mse, loss, mae, mse"),
    ],
)  # fmt: skip
def test_settings_a_regression_cannot_take_are_refused_before_any_work(overrides: list[str], message: str) -> None:
    with pytest.raises(SweepConfigError) as caught:
        compose(*overrides)
    assert str(caught.value) == message


# ------------------------------------------------------------------------------ a sweep


@pytest.mark.slow
def test_a_regression_sweep_ranks_the_lowest_val_mse_first(tmp_path: Path) -> None:
    run_sweep("-m", "task=regress", "trainer.epochs=5", "optimizer.lr=1e-4,1e-2", "validation=kfold", "validation.n_splits=3", cwd=tmp_path)
    records = records_under(tmp_path / "outputs")
    assert len(records) == 2 and all(r["status"] == "completed" and r["population_size"] == 6 for r in records)
    [summary] = list((tmp_path / "outputs").rglob("summary.csv"))
    ranked = pd.read_csv(summary)
    assert ranked["mean_val_mse"].is_monotonic_increasing and ranked["optimizer.lr"].iloc[0] == 1e-2
