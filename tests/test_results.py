"""Results tables: every sweep becomes a pandas DataFrame, summarized and ranked like GridSearchCV.

Each fixture runs a real small sweep once (``sweep -m ...`` in a subprocess); the tests
read what it left on disk, as a user would, and compare with numpy over the raw records.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from conftest import QUICK, records_under, run_sweep
from sweep.plots import plot_sweep
from sweep.results import (
    SkippedRecordWarning,
    format_summary,
    greater_is_better,
    load,
    summarize,
)

SWEEP_RESULTS = str(Path(sys.executable).with_name("sweep-results"))

#: KMeans on digits, 2 x 2 configs x 3 folds as a sweep axis: 12 jobs of ~0.1 s.
CLUSTER_CV = ["task=cluster", "model.n_clusters=3,6", "model.max_iter=5,300", "validation=kfold", "validation.n_splits=3"]

pytestmark = pytest.mark.slow


def sweep_into(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Run ``sweep -m <overrides>`` with its outputs in ``sweep_dir``; failed runs do not stop it."""
    return run_sweep("-m", *overrides, f"hydra.sweep.dir={sweep_dir}", cwd=sweep_dir.parent, check=False)


def sweep_results(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SWEEP_RESULTS, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cluster_cv(tmp_path_factory) -> Path:
    """12 jobs: n_clusters x max_iter, each config scored on 3 folds run as separate jobs."""
    sweep_dir = tmp_path_factory.mktemp("cluster_cv") / "sweep"
    proc = sweep_into(sweep_dir, *CLUSTER_CV, "validation.fold=0,1,2")
    assert proc.returncode == 0, proc.stderr
    return sweep_dir


@pytest.fixture(scope="module")
def cluster_in_process(tmp_path_factory) -> Path:
    """2 jobs: the same folds as ``cluster_cv`` (max_iter=300), all trained in-process (``validation.fold=null``)."""
    sweep_dir = tmp_path_factory.mktemp("cluster_null") / "sweep"
    proc = sweep_into(sweep_dir, "task=cluster", "model.n_clusters=3,6", "validation=kfold", "validation.n_splits=3", "validation.fold=null")
    assert proc.returncode == 0, proc.stderr
    return sweep_dir


@pytest.fixture(scope="module")
def classify_mixed(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """8 Keras jobs, lr x L2 x 2 folds; the 4 with ``optimizer.lr=-1`` fail (SweepConfigError) and are recorded so."""
    sweep_dir = tmp_path_factory.mktemp("classify") / "sweep"
    grid = ["optimizer.lr=-1,0.01", "regularizer.l2=0,0.01", "validation=kfold", "validation.n_splits=2", "validation.fold=0,1"]
    return sweep_dir, sweep_into(sweep_dir, *grid, *QUICK)


# ----------------------------------------------------------------------- load: one row per run


def test_load_gives_one_row_per_job_with_config_keys_and_metrics(cluster_cv):
    runs = load(cluster_cv)
    job_dirs = [d for d in cluster_cv.iterdir() if (d / ".hydra").is_dir()]
    assert len(runs) == len(job_dirs) == 12
    assert list(runs["job_num"]) == list(range(12))
    for column in ("model.n_clusters", "model.max_iter", "validation.fold", "task.name", "dataset.name", "model.name",
                   "ari", "nmi", "inertia", "silhouette", "status", "error", "fit_time_s", "output_dir"):  # fmt: skip
        assert column in runs, column
    assert runs["model.n_clusters"].dtype == np.int64 and runs["dataset.test_size"].dtype == np.float64
    assert (runs["status"] == "completed").all()
    assert runs["output_dir"].map(lambda d: (Path(d) / "result.json").is_file()).all()


def test_load_keeps_lists_readable_and_groupable(classify_mixed):
    sweep_dir, _ = classify_mixed
    runs = load(sweep_dir)
    assert set(runs["model.hidden_units"]) == {(128,)}
    assert runs["optimizer.lr"].dtype == np.float64 and runs["validation.fold"].dtype == np.int64
    raw = {r["job_num"]: r for r in records_under(sweep_dir)}
    for row in runs.itertuples():
        assert row.status == raw[row.job_num]["status"]


def test_load_accepts_a_run_dir_a_record_file_and_several_sweeps(cluster_cv, cluster_in_process):
    assert len(load(cluster_cv / "4")) == 1
    assert load(cluster_cv / "4" / "result.json")["job_num"].tolist() == [4]
    both = load(cluster_cv, cluster_in_process)
    assert len(both) == 12 + 2
    assert both["sweep_dir"].value_counts().to_dict() == {str(cluster_cv.resolve()): 12, str(cluster_in_process.resolve()): 2}


def test_corrupt_and_missing_records_are_reported_by_path_and_skipped(cluster_cv, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(cluster_cv, copy)
    (copy / "0" / "result.json").write_text('{"status": "compl')  # a half-written file
    (copy / "1" / "result.json").unlink()  # a job killed before it wrote its record
    with pytest.warns(SkippedRecordWarning) as caught:
        runs = load(copy)
    messages = " ".join(str(w.message) for w in caught)
    assert str(copy / "0" / "result.json") in messages and str(copy / "1") in messages
    assert len(runs) == 10 and len(runs.attrs["skipped"]) == 2
    summary = summarize(runs)
    assert summary["n_runs"].sum() == 10 and summary["n_missing"].sum() == 2


# ------------------------------------------------------------------- summarize: one row per config


def test_summary_means_stds_and_splits_equal_numpy_over_the_fold_records(cluster_cv):
    summary = summarize(load(cluster_cv), metric="ari")
    assert len(summary) == 4
    records = records_under(cluster_cv)
    for row in summary.to_dict("records"):
        mine = [r for r in records if (r["model.n_clusters"], r["model.max_iter"]) == (row["model.n_clusters"], row["model.max_iter"])]
        assert row["n_runs"] == len(mine) == 3
        for metric in ("ari", "inertia", "nmi"):
            values = np.array([r[metric] for r in sorted(mine, key=lambda r: r["validation.fold"])])
            assert row[f"mean_{metric}"] == pytest.approx(np.mean(values), rel=1e-12)
            assert row[f"std_{metric}"] == pytest.approx(np.std(values), rel=1e-12)  # ddof=0, as scikit-learn
            assert [row[f"split{k}_{metric}"] for k in range(3)] == pytest.approx(values.tolist())


def test_rank_follows_each_metrics_direction(cluster_cv):
    runs = load(cluster_cv)
    by_ari = summarize(runs)  # default: the runs' task.metric, ari
    assert "rank_ari" in by_ari and list(by_ari["rank_ari"]) == [1, 2, 3, 4]
    assert by_ari["mean_ari"].is_monotonic_decreasing
    by_inertia = summarize(runs, metric="inertia")
    assert list(by_inertia["rank_inertia"]) == [1, 2, 3, 4]
    assert by_inertia["mean_inertia"].is_monotonic_increasing
    assert (greater_is_better("val_accuracy"), greater_is_better("val_loss"), greater_is_better("train_inertia")) == (True, False, False)
    with pytest.raises(ValueError, match="epochs_run"):
        summarize(runs, metric="epochs_run")


def test_folds_run_in_process_fill_the_same_columns_as_folds_run_as_jobs(cluster_cv, cluster_in_process):
    as_jobs = summarize(load(cluster_cv))
    in_process = summarize(load(cluster_in_process))
    assert len(in_process) == 2 and set(in_process["n_runs"]) == {1}
    for n_clusters in (3, 6):
        a = as_jobs[(as_jobs["model.n_clusters"] == n_clusters) & (as_jobs["model.max_iter"] == 300)].iloc[0]
        b = in_process[in_process["model.n_clusters"] == n_clusters].iloc[0]
        for column in ("mean_ari", "std_ari", "split0_ari", "split1_ari", "split2_ari", "mean_inertia", "split2_silhouette"):
            assert b[column] == pytest.approx(a[column], rel=1e-6), column


def test_failed_configs_rank_last_and_completed_ones_are_ranked(classify_mixed):
    sweep_dir, _ = classify_mixed
    runs = load(sweep_dir)
    assert len(runs) == 8
    failed = runs[runs["optimizer.lr"] == -1]
    assert (failed["status"] == "failed").all() and failed["error"].str.contains("SweepConfigError").all()
    assert (runs[runs["optimizer.lr"] == 0.01]["status"] == "completed").all()
    summary = summarize(runs)
    assert list(summary["optimizer.lr"]) == [0.01, 0.01, -1, -1]
    assert list(summary["n_failed"]) == [0, 0, 2, 2]
    assert summary["mean_val_accuracy"].iloc[2:].isna().all()
    assert summary["mean_val_accuracy"].iloc[0] >= summary["mean_val_accuracy"].iloc[1]
    assert summary["rank_val_accuracy"].iloc[2:].tolist() == [4, 4]  # tied, last: the number of configs


def test_swept_seeds_are_averaged_into_each_config_unless_kept_apart(tmp_path):
    """A seed is not a setting to pick: with seeds swept, every table ranks each config on its mean over seeds and folds."""
    sweep_dir = tmp_path / "sweep"
    assert sweep_into(sweep_dir, "task=cluster", "model.n_clusters=3,6", "seed=0,1").returncode == 0
    runs = load(sweep_dir)
    pooled = pd.read_csv(sweep_dir / "summary.csv")  # the end of the sweep's table
    assert len(pooled) == 2 and "seed" not in pooled and set(pooled["n_runs"]) == {2}
    for row in pooled.to_dict("records"):
        ari = [r["ari"] for r in records_under(sweep_dir) if r["model.n_clusters"] == row["model.n_clusters"]]
        assert row["mean_ari"] == pytest.approx(np.mean(ari)) and row["std_ari"] == pytest.approx(np.std(ari))
    assert summarize(runs)["mean_ari"].tolist() == pytest.approx(pooled["mean_ari"].tolist())
    apart = summarize(runs, aggregate_seeds=False)
    assert len(apart) == 4 and set(apart["seed"]) == {0, 1} and set(apart["n_runs"]) == {1}
    proc = sweep_results(str(sweep_dir), "--no-aggregate-seeds", "--write", "--out", str(tmp_path / "apart"))
    assert proc.returncode == 0 and len(pd.read_csv(tmp_path / "apart" / "summary.csv")) == 4

    for record in records_under(sweep_dir):  # now each config ran one seed, not the other's (as a random search draws them)
        if (record["model.n_clusters"], record["seed"]) in {(3, 0), (6, 1)}:
            shutil.rmtree(record["output_dir"])
    alone = summarize(load(sweep_dir))
    assert len(alone) == 2 and set(alone["seed"]) == {0, 1}
    assert alone["n_missing"].tolist() == [0, 0] and alone["mean_ari"].notna().all()  # ranked, not missing the seed they never ran


# ------------------------------------------------------------------------- end of sweep and CLI


def test_every_sweep_ends_with_tables_on_disk_and_the_ranked_summary_printed(classify_mixed):
    sweep_dir, proc = classify_mixed  # some of its jobs failed
    assert "4 of 4 configs ranked by val_accuracy" in proc.stdout
    runs, summary = load(sweep_dir), summarize(load(sweep_dir))
    csv = pd.read_csv(sweep_dir / "results.csv")
    parquet = pd.read_parquet(sweep_dir / "results.parquet")
    for table in (csv, parquet):
        assert len(table) == 8
        assert table["val_accuracy"].tolist() == pytest.approx(runs["val_accuracy"].tolist(), nan_ok=True)
        assert [json.loads(v) for v in table["model.hidden_units"]] == [[128]] * 8
    written = pd.read_csv(sweep_dir / "summary.csv")
    assert written.columns.tolist() == summary.columns.tolist()
    assert written["mean_val_accuracy"].tolist() == pytest.approx(summary["mean_val_accuracy"].tolist(), nan_ok=True)
    assert format_summary(summary).splitlines()[0] in proc.stdout


def test_sweep_results_prints_the_summary_ranked_by_the_metric_asked_for(classify_mixed):
    sweep_dir, _ = classify_mixed
    proc = sweep_results(str(sweep_dir), "--metric", "val_loss", "--top", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "1 of 4 configs ranked by val_loss (lower is better)"
    best = summarize(load(sweep_dir), metric="val_loss").iloc[0]
    assert len(lines) == 3 and f"{best['mean_val_loss']:.4g}" in lines[2]
    assert sweep_results(str(sweep_dir), "--metric", "no_such_metric").returncode == 2


# ------------------------------------------------------------------------------------- plots


def assert_png(path: Path, min_side: int = 250) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = matplotlib.image.imread(path)
    assert min(image.shape[:2]) >= min_side and image[..., :3].std() > 0.05, (path, image.shape)


def test_two_swept_numbers_give_a_heatmap_and_kmeans_its_centres_as_images(cluster_cv, tmp_path):
    written = plot_sweep(load(cluster_cv), summarize(load(cluster_cv)), tmp_path)
    assert sorted(p.name for p in written) == ["centers.png", "heatmap_ari.png"]
    assert_png(tmp_path / "heatmap_ari.png")
    assert_png(tmp_path / "centers.png", min_side=100)


def test_one_swept_number_gives_a_line_and_the_cli_writes_it_next_to_the_tables(cluster_in_process):
    proc = sweep_results(str(cluster_in_process), "--plot")
    assert proc.returncode == 0, proc.stderr
    assert_png(cluster_in_process / "line_ari.png")
    assert (cluster_in_process / "summary.csv").is_file()


def test_keras_sweeps_get_learning_curves_and_a_heatmap_with_failed_cells(classify_mixed, tmp_path):
    sweep_dir, _ = classify_mixed
    written = plot_sweep(load(sweep_dir), summarize(load(sweep_dir)), tmp_path)
    assert sorted(p.name for p in written) == ["heatmap_val_accuracy.png", "learning_curves_val_accuracy.png"]
    for path in written:
        assert_png(path)


# ------------------------------------------------------------------------------------- refit


@pytest.fixture(scope="module")
def poisoned_test_split(tmp_path_factory) -> Path:
    """A dataset whose test rows lie ~1000 units away from every other row: any use of them shows in the inertia."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 1, size=(3, 4, 4))
    y = np.repeat(np.arange(3), 100)
    x = (centres[y] + rng.normal(0, 0.02, size=(300, 4, 4))).astype("float32")
    y_test = np.repeat(np.arange(3), 10)
    x_test = (1000 + centres[y_test]).astype("float32")
    path = tmp_path_factory.mktemp("data") / "poisoned.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    return path


def test_refit_trains_on_all_sweep_rows_and_is_the_only_thing_that_sees_the_test_split(poisoned_test_split, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = sweep_into(sweep_dir, "dataset=mnist", f"dataset.path={poisoned_test_split}", "dataset.name=poisoned",
                      "task=cluster", "model.n_clusters=2,3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = sweep_results(str(sweep_dir), "--refit")
    assert proc.returncode == 0, proc.stderr
    refit = json.loads((sweep_dir / "refit" / "result.json").read_text())
    sweep_records = records_under(sweep_dir)[:2]
    assert [r.get("refit_of") for r in sweep_records] == [None, None]
    assert refit["status"] == "completed" and refit["model.n_clusters"] == 3  # rank 1 by ARI
    assert (refit["n_train_rows"], refit["n_test_rows"]) == (300, 30)  # training + validation rows, then test
    # In the sweep, 3 centres found the 3 blobs exactly (a far test row in training would have taken one)
    # and no far row was among the validation rows; the refit scored on them once.
    assert max(r["ari"] for r in sweep_records) > 0.99
    assert max(r["inertia"] for r in sweep_records) < 1e3 < 1e6 < refit["test_inertia"]
    assert refit["train_inertia"] < 1e3
    assert len(load(sweep_dir)) == 2  # the refit record is not a run of the sweep
    assert f"{refit['test_ari']}" in proc.stdout.replace(" ", "")


def test_refit_of_a_keras_sweep_reports_test_metrics_only_from_the_final_model(classify_mixed):
    sweep_dir, _ = classify_mixed
    proc = sweep_results(str(sweep_dir), "--refit")
    assert proc.returncode == 0, proc.stderr
    refit = json.loads((sweep_dir / "refit" / "result.json").read_text())
    best = summarize(load(sweep_dir)).iloc[0]
    assert (refit["optimizer.lr"], refit["regularizer.l2"]) == (best["optimizer.lr"], best["regularizer.l2"])
    assert refit["n_train_rows"] == 1437 and refit["n_test_rows"] == 360
    assert 0 < refit["test_accuracy"] <= 1 and refit["test_loss"] > 0
    assert not {"val_accuracy", "best_val_accuracy", "best_epoch"} & set(refit)
