"""Runs end in a record: real Keras training, real KMeans, a fresh model for every fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

import custom_builders
from conftest import QUICK, compose_config
from sweep.backend import keras
from sweep.data import load_dataset
from sweep.run import Job, run_job
from sweep.splits import make_folds


def _saved_model_accuracy(job_dir: Path, cfg: DictConfig) -> float:
    """The accuracy of the job's ``model.keras`` on its (holdout) validation rows."""
    model = keras().models.load_model(job_dir / "model.keras")
    data = load_dataset(cfg.dataset)
    (fold,) = make_folds(cfg.validation, data.y)
    return float((model.predict(data.x[fold.val], verbose=0).argmax(1) == data.y[fold.val]).mean())


def test_a_classify_run_writes_record_history_and_model(tmp_path: Path) -> None:
    cfg = compose_config("trainer.epochs=3")
    record = run_job(cfg, Job(tmp_path, overrides=["trainer.epochs=3"]))
    assert record["status"] == "completed" and record["error"] is None
    assert record["val_accuracy"] > 0.8 and record["epochs_run"] == 3 and 1 <= record["best_epoch"] <= 3
    assert record["optimizer.lr"] == 0.001 and record["regularizer.l2"] == 0.01 and record["seed"] == 0
    assert record["fit_time_s"] > 0 and len(record["fingerprint"]) == 16
    assert set(record["versions"]) >= {"tensorflow", "keras", "scikit-learn", "sweep"}
    assert json.loads((tmp_path / "result.json").read_text()) == json.loads(json.dumps(record))
    history = (tmp_path / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    assert header[0] == "epoch" and set(header) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2", "3"]

    assert _saved_model_accuracy(tmp_path, cfg) == pytest.approx(record["val_accuracy"], abs=1e-6)


@pytest.mark.parametrize(("lr", "epochs", "stops_early"), [(0.05, 10, True), (0.02, 6, False)], ids=["stopped", "ran-every-epoch"])
def test_with_early_stopping_the_record_describes_the_model_it_keeps(tmp_path: Path, lr: float, epochs: int, stops_early: bool) -> None:
    # EarlyStopping(monitor=val_loss, restore_best_weights=True): Keras 3 restores the best
    # epoch's weights at the end of training, whether it stopped early or not.
    cfg = compose_config("trainer.early_stopping_patience=2", f"trainer.epochs={epochs}", f"optimizer.lr={lr}")
    record = run_job(cfg, Job(tmp_path))
    history = np.genfromtxt(tmp_path / "history.csv", delimiter=",", names=True)
    restored = int(np.argmin(history["val_loss"]))
    assert (record["epochs_run"] < epochs) == stops_early and restored < record["epochs_run"] - 1
    assert record["val_loss"] == pytest.approx(history["val_loss"][restored]) and record["restored_epoch"] == restored + 1

    assert _saved_model_accuracy(tmp_path, cfg) == pytest.approx(record["val_accuracy"], abs=1e-6)


def test_every_fold_trains_a_fresh_model_from_the_same_start(tmp_path: Path) -> None:
    custom_builders.BUILT.clear()
    cfg = compose_config(
        "validation=kfold", "validation.n_splits=3", "model._target_=custom_builders.recorded_mlp", *QUICK
    )
    record = run_job(cfg, Job(tmp_path))
    models = [model for model, _ in custom_builders.BUILT]
    assert len(models) == 3 and len({id(m) for m in models}) == 3
    first_weights = [weights for _, weights in custom_builders.BUILT]
    assert all(np.array_equal(a, b) for w in first_weights[1:] for a, b in zip(first_weights[0], w))
    folds = record["fold_metrics"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert record["val_accuracy"] == pytest.approx(np.mean([f["val_accuracy"] for f in folds]))


def test_one_fold_in_process_equals_that_fold_run_alone(tmp_path: Path) -> None:
    all_folds = run_job(compose_config("validation=kfold", "validation.n_splits=3", *QUICK), Job(tmp_path / "all"))
    alone = run_job(compose_config("validation=kfold", "validation.n_splits=3", "validation.fold=1", *QUICK), Job(tmp_path / "one"))
    assert alone["val_accuracy"] == all_folds["fold_metrics"][1]["val_accuracy"]


def test_kmeans_metrics_equal_scikit_learns_on_the_same_rows_and_seed(tmp_path: Path) -> None:
    cfg = compose_config("task=cluster", "seed=3")
    record = run_job(cfg, Job(tmp_path))
    data = load_dataset(cfg.dataset)
    (fold,) = make_folds(cfg.validation, data.y)
    x_train, x_val = data.x[fold.train].reshape(len(fold.train), -1), data.x[fold.val].reshape(len(fold.val), -1)
    kmeans = KMeans(n_clusters=10, random_state=3).fit(x_train)
    labels = kmeans.predict(x_val)
    assert record["inertia"] == pytest.approx(-kmeans.score(x_val), rel=1e-12)
    assert record["ari"] == pytest.approx(adjusted_rand_score(data.y[fold.val], labels), rel=1e-12)
    assert record["nmi"] == pytest.approx(normalized_mutual_info_score(data.y[fold.val], labels), rel=1e-12)
    assert record["silhouette"] == pytest.approx(silhouette_score(x_val, labels), rel=1e-12)
    assert record["train_inertia"] == pytest.approx(-kmeans.score(x_train), rel=1e-12)
    assert np.load(tmp_path / "centers.npy").shape == (10, 8, 8)
