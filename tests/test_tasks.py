"""Runs end in a record: real Keras training, real scikit-learn clustering, a fresh model for every fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, pairwise_distances_argmin, silhouette_score
from sklearn.mixture import GaussianMixture

import custom_builders
from conftest import QUICK, compose_config, records_under, run_sweep
from sweep.backend import keras
from sweep.config import SweepConfigError, compose
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


def _rows(cfg: DictConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The flattened holdout rows a cluster run of ``cfg`` fits and scores: ``(x_train, y_train, x_val, y_val)``."""
    data = load_dataset(cfg.dataset)
    (fold,) = make_folds(cfg.validation, data.y)
    flat = data.x.reshape(len(data.x), -1)
    return flat[fold.train], data.y[fold.train], flat[fold.val], data.y[fold.val]


#: Each clustering preset, the key that counts its clusters, and the metric beyond ari/nmi/silhouette it alone reports.
CLUSTERERS = [("minibatch_kmeans", "n_clusters", "inertia"), ("gaussian_mixture", "n_components", "log_likelihood"), ("agglomerative", "n_clusters", None)]


@pytest.mark.parametrize(("preset", "count", "extra"), CLUSTERERS, ids=[preset for preset, _, _ in CLUSTERERS])
def test_each_clustering_preset_sweeps_its_cluster_count_into_the_ranked_table(tmp_path: Path, preset: str, count: str, extra: str | None) -> None:
    run_sweep("-m", "task=cluster", f"model={preset}", f"model.{count}=3,6", "hydra.sweep.dir=sw", cwd=tmp_path)
    records = records_under(tmp_path / "sw")
    assert [(r["status"], r["model.name"], r[f"model.{count}"]) for r in records] == [("completed", preset, 3), ("completed", preset, 6)]
    for record in records:
        scores = {"ari", "nmi", "silhouette", *([extra] if extra else [])}
        assert all(np.isfinite(record[m]) and np.isfinite(record[f"train_{m}"]) for m in scores)
        assert not ({"inertia", "log_likelihood"} - scores) & set(record), "a metric the estimator does not have is left out"
        assert np.load(Path(record["output_dir"]) / "centers.npy").shape == (record[f"model.{count}"], 8, 8)
    summary = pd.read_csv(tmp_path / "sw" / "summary.csv")
    assert list(summary["rank_ari"]) == [1, 2] and summary["mean_ari"].is_monotonic_decreasing
    assert {"mean_nmi", "mean_silhouette"} <= set(summary) and ("mean_inertia" in summary) == (extra == "inertia")


def test_a_sweep_over_clusterers_ranks_them_all_with_inertia_only_for_k_means(tmp_path: Path) -> None:
    run_sweep("-m", "task=cluster", "model=kmeans,gaussian_mixture,agglomerative", "hydra.sweep.dir=sw", cwd=tmp_path)
    summary = pd.read_csv(tmp_path / "sw" / "summary.csv").set_index("model.name")
    assert sorted(summary["rank_ari"]) == [1, 2, 3] and summary["mean_ari"].notna().all() and summary["mean_silhouette"].notna().all()
    assert list(summary.index[summary["mean_inertia"].notna()]) == ["kmeans"]
    assert list(summary.index[summary["mean_log_likelihood"].notna()]) == ["gaussian_mixture"]
    with pytest.raises(SweepConfigError, match=r"^task.metric='inertia': model._target_=sklearn.mixture.GaussianMixture reports no inertia"):
        compose("task=cluster", "model=gaussian_mixture", "task.metric=inertia")


def test_gaussian_mixture_metrics_equal_scikit_learns_on_the_same_rows_and_seed(tmp_path: Path) -> None:
    cfg = compose_config("task=cluster", "model=gaussian_mixture", "model.n_components=6", "seed=3")
    record = run_job(cfg, Job(tmp_path))
    x_train, _, x_val, y_val = _rows(cfg)
    mixture = GaussianMixture(n_components=6, covariance_type="diag", random_state=3).fit(x_train)
    assert record["ari"] == pytest.approx(adjusted_rand_score(y_val, mixture.predict(x_val)), rel=1e-12)
    assert record["log_likelihood"] == pytest.approx(mixture.score(x_val), rel=1e-12)
    assert np.array_equal(np.load(tmp_path / "centers.npy"), mixture.means_.reshape(6, 8, 8))


def test_agglomerative_puts_each_validation_row_in_the_training_cluster_with_the_nearest_centroid(tmp_path: Path) -> None:
    cfg = compose_config("task=cluster", "model=agglomerative", "model.n_clusters=5")
    record = run_job(cfg, Job(tmp_path))
    x_train, y_train, x_val, y_val = _rows(cfg)
    labels = AgglomerativeClustering(n_clusters=5).fit_predict(x_train)
    centroids = np.stack([x_train[labels == k].mean(axis=0) for k in range(5)])
    assigned = pairwise_distances_argmin(x_val, centroids)
    assert record["train_ari"] == pytest.approx(adjusted_rand_score(y_train, labels), rel=1e-12)
    assert record["ari"] == pytest.approx(adjusted_rand_score(y_val, assigned), rel=1e-12)
    assert record["silhouette"] == pytest.approx(silhouette_score(x_val, assigned), rel=1e-12)
    assert np.array_equal(np.load(tmp_path / "centers.npy"), centroids.reshape(5, 8, 8))


def _metrics(record: dict) -> dict:
    return {key: value for key, value in record.items() if key.split("_")[-1] in ("ari", "nmi", "silhouette", "inertia", "likelihood")}


@pytest.mark.parametrize("preset", ["minibatch_kmeans", "gaussian_mixture", "agglomerative"])
def test_the_same_seed_gives_the_same_clustering_metrics_bit_for_bit(tmp_path: Path, preset: str) -> None:
    first, again, other = (run_job(compose_config("task=cluster", f"model={preset}", f"seed={seed}"), Job(tmp_path / str(i)))
                           for i, seed in enumerate([4, 4, 5]))  # fmt: skip
    assert _metrics(first) and _metrics(first) == _metrics(again)
    assert (_metrics(other) == _metrics(first)) == (preset == "agglomerative"), "the seed reaches the estimators that take one"


@pytest.mark.parametrize("target", ["sklearn.linear_model.LinearRegression", "sklearn.preprocessing.StandardScaler"])
def test_a_target_that_is_not_a_clusterer_fails_with_one_line_naming_model_target(tmp_path: Path, target: str) -> None:
    proc = run_sweep("task=cluster", f"model._target_={target}", "hydra.run.dir=run", cwd=tmp_path, check=False)
    (record,) = records_under(tmp_path / "run")
    assert proc.returncode == 1 and record["status"] == "failed" and "Traceback" not in proc.stderr
    assert record["error"].startswith(f"SweepConfigError: model._target_='{target}': not a clustering estimator")
    assert [line for line in proc.stderr.splitlines() if "model._target_" in line] == [f"sweep: failed: {record['error']}"]


def test_a_mixture_gets_as_many_components_as_training_rows_at_most(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match=r"^model.n_components=1: must be >= 2"):
        compose("task=cluster", "model=gaussian_mixture", "model.n_components=1")
    record = run_job(compose_config("task=cluster", "model=gaussian_mixture", "model.n_components=5000"), Job(tmp_path))
    assert record["status"] == "failed" and record["error"].startswith("SweepConfigError: model.n_components=5000: more clusters than the")
