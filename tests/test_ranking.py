"""Ranking that can be trusted: a config is ranked on all of its folds or not at all.

Each fixture runs a real small sweep once (``sweep -m ...`` in a subprocess); a test that
needs a lost record copies the sweep dir and deletes the record, as a killed job would
leave it, then reads the tables as a user would.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from conftest import QUICK, run_sweep
from sweep.refit import best_config, refit_config
from sweep.results import SkippedRecordWarning, format_summary, load, summarize

SWEEP_RESULTS = str(Path(sys.executable).with_name("sweep-results"))

pytestmark = pytest.mark.slow


def sweep_into(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """Run ``sweep -m <overrides>`` with its outputs in ``sweep_dir``; failed runs do not stop it."""
    return run_sweep("-m", *overrides, f"hydra.sweep.dir={sweep_dir}", cwd=sweep_dir.parent, check=False)


def sweep_results(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SWEEP_RESULTS, *args], capture_output=True, text=True, timeout=300)


def copy_of(sweep_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    return copy


def job_dir(sweep_dir: Path, config: dict) -> Path:
    """The one job dir of ``sweep_dir`` whose record has these config values."""
    (found,) = [
        path.parent
        for path in sweep_dir.glob("*/result.json")
        if all(json.loads(path.read_text())[key] == value for key, value in config.items())
    ]
    return found


def edit_record(path: Path, **fields) -> None:
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, **fields}))


def row_of(summary, config: dict) -> dict:
    """The summary row with these config values."""
    match = summary
    for key, value in config.items():
        match = match[match[key] == value]
    (row,) = match.to_dict("records")
    return row


@pytest.fixture(scope="module")
def folds_as_jobs(tmp_path_factory) -> Path:
    """12 KMeans jobs: n_clusters 3, 6 x seed 0, 1 x 3 folds run as separate jobs. n_clusters=6 scores the higher ARI."""
    sweep_dir = tmp_path_factory.mktemp("folds_as_jobs") / "sweep"
    proc = sweep_into(sweep_dir, "task=cluster", "model.n_clusters=3,6", "seed=0,1", "validation=kfold", "validation.n_splits=3",
                      "validation.fold=0,1,2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return sweep_dir


@pytest.fixture(scope="module")
def folds_in_process(tmp_path_factory) -> Path:
    """2 KMeans jobs, n_clusters 3 and 6, each training its 3 folds in-process (``validation.fold=null``)."""
    sweep_dir = tmp_path_factory.mktemp("folds_in_process") / "sweep"
    proc = sweep_into(sweep_dir, "task=cluster", "model.n_clusters=3,6", "validation=kfold", "validation.n_splits=3")
    assert proc.returncode == 0, proc.stderr
    return sweep_dir


@pytest.fixture(scope="module")
def all_failed(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """2 Keras jobs that both fail their config check (a negative learning rate)."""
    sweep_dir = tmp_path_factory.mktemp("all_failed") / "sweep"
    return sweep_dir, sweep_into(sweep_dir, "optimizer.lr=-1,-2", *QUICK)


@pytest.fixture(scope="module")
def small_validation(tmp_path_factory) -> Path:
    """2 KMeans jobs, n_clusters 3 and 6, scored on a 10-row holdout validation set (the fewest allowed)."""
    sweep_dir = tmp_path_factory.mktemp("small_validation") / "sweep"
    proc = sweep_into(sweep_dir, "task=cluster", "model.n_clusters=3,6", "validation.size=10")
    assert proc.returncode == 0, proc.stderr
    return sweep_dir


# ------------------------------------------------------------------------------ missing folds


def test_a_config_with_a_lost_fold_record_ranks_last_and_is_never_refit(folds_as_jobs, tmp_path):
    sweep_dir = copy_of(folds_as_jobs, tmp_path)
    (job_dir(sweep_dir, {"model.n_clusters": 6, "seed": 0, "validation.fold": 1}) / "result.json").unlink()  # the job was killed
    with pytest.warns(SkippedRecordWarning):
        summary = summarize(load(sweep_dir), aggregate_seeds=False)  # each seed a config of its own, here
    partial = row_of(summary, {"model.n_clusters": 6, "seed": 0})
    assert (partial["n_runs"], partial["n_failed"], partial["n_missing"]) == (2, 0, 1)
    assert math.isnan(partial["mean_ari"]) and math.isnan(partial["mean_nmi"])
    assert not math.isnan(partial["split0_ari"]) and not math.isnan(partial["split2_ari"])  # the folds it has stay visible
    assert partial["rank_ari"] == 4 and summary["rank_ari"].tolist() == [1, 2, 3, 4]
    assert (summary["n_missing"].tolist()) == [0, 0, 0, 1]
    whole = row_of(summary, {"model.n_clusters": 6, "seed": 1})
    assert whole["rank_ari"] == 1
    with pytest.warns(SkippedRecordWarning):
        _, cfg, _ = best_config(sweep_dir, aggregate_seeds=False)
    assert (cfg.model.n_clusters, cfg.seed) == (6, 1)
    with pytest.warns(SkippedRecordWarning):
        _, cfg, _ = best_config(sweep_dir)  # by default over both seeds: n_clusters=6 has a fold missing
    assert cfg.model.n_clusters == 3
    header = format_summary(summary).splitlines()[1].split()
    assert header[header.index("n_failed") + 1] == "n_missing"


def _drop_fold_2(sweep_dir: Path) -> None:
    for path in sweep_dir.glob("*/result.json"):
        if json.loads(path.read_text())["validation.fold"] == 2:
            shutil.rmtree(path.parent)


def test_a_sweep_over_some_of_the_folds_ranks_every_config_on_those_folds(folds_as_jobs, tmp_path):
    sweep_dir = copy_of(folds_as_jobs, tmp_path)
    _drop_fold_2(sweep_dir)  # and its command line, as if the sweep had been validation.fold=0,1 of 3
    multirun = sweep_dir / "multirun.yaml"
    multirun.write_text(multirun.read_text().replace("validation.fold=0,1,2", "validation.fold=0,1"))
    summary = summarize(load(sweep_dir), aggregate_seeds=False)
    assert summary["n_missing"].tolist() == [0, 0, 0, 0] and summary["rank_ari"].tolist() == [1, 2, 3, 4]
    assert not summary["mean_ari"].isna().any() and "split2_ari" not in summary


def test_a_fold_lost_from_every_config_is_missing_from_every_config(folds_as_jobs, tmp_path):
    sweep_dir = copy_of(folds_as_jobs, tmp_path)
    _drop_fold_2(sweep_dir)  # the command line asked for folds 0, 1 and 2
    summary = summarize(load(sweep_dir), aggregate_seeds=False)
    assert summary["n_missing"].tolist() == [1, 1, 1, 1] and summary["mean_ari"].isna().all()
    assert format_summary(summary).startswith("no config completed")


def test_with_seeds_aggregated_a_config_expects_every_fold_of_every_seed(folds_as_jobs, tmp_path):
    sweep_dir = copy_of(folds_as_jobs, tmp_path)
    for fold in (0, 1, 2):  # every run of n_clusters=6 with seed 1 lost
        shutil.rmtree(job_dir(sweep_dir, {"model.n_clusters": 6, "seed": 1, "validation.fold": fold}))
    pooled = summarize(load(sweep_dir), aggregate_seeds=True)  # not by default: the configs no longer ran the same seeds
    assert pooled["model.n_clusters"].tolist() == [3, 6] and pooled["n_missing"].tolist() == [0, 3]
    assert pooled["n_runs"].tolist() == [6, 3] and math.isnan(pooled["mean_ari"].iloc[1])


def test_a_run_of_every_fold_in_process_expects_one_entry_per_fold(folds_in_process, tmp_path):
    sweep_dir = copy_of(folds_in_process, tmp_path)
    record = job_dir(sweep_dir, {"model.n_clusters": 6}) / "result.json"
    folds = json.loads(record.read_text())["fold_metrics"]
    edit_record(record, fold_metrics=folds[:2])  # a record that lost its last fold
    summary = summarize(load(sweep_dir))
    assert summary["model.n_clusters"].tolist() == [3, 6] and summary["n_missing"].tolist() == [0, 1]
    assert summary["rank_ari"].tolist() == [1, 2] and math.isnan(summary["mean_ari"].iloc[1])


def test_a_run_of_every_fold_that_diverged_midway_has_failed_folds_not_missing_ones(folds_in_process, tmp_path):
    sweep_dir = copy_of(folds_in_process, tmp_path)
    record = job_dir(sweep_dir, {"model.n_clusters": 6}) / "result.json"
    folds = json.loads(record.read_text())["fold_metrics"]
    edit_record(record, status="diverged", fold_metrics=folds[:2])  # as run.py records a run whose fold 1 diverged: no fold 2
    summary = summarize(load(sweep_dir))
    assert summary["model.n_clusters"].tolist() == [3, 6]
    assert summary["n_failed"].tolist() == [0, 1] and summary["n_missing"].tolist() == [0, 0]


def test_refit_refuses_in_one_line_when_no_config_is_whole(folds_in_process, tmp_path):
    sweep_dir = copy_of(folds_in_process, tmp_path)
    for record in sweep_dir.glob("*/result.json"):
        edit_record(record, fold_metrics=json.loads(record.read_text())["fold_metrics"][1:])
    with pytest.raises(ValueError, match="nothing to refit"):
        best_config(sweep_dir)
    proc = sweep_results(str(sweep_dir), "--refit")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("nothing to refit")
    assert not (sweep_dir / "refit").exists()


def test_paths_that_overlap_give_each_run_once(folds_in_process):
    sweep_dir = folds_in_process
    runs = load(sweep_dir, sweep_dir / "1", sweep_dir / "1" / "result.json")
    assert len(runs) == 2
    assert summarize(runs)["n_runs"].tolist() == [1, 1] and summarize(runs)["std_ari"].equals(summarize(load(sweep_dir))["std_ari"])


# --------------------------------------------------------------------------- everything failed


def test_when_every_run_failed_no_config_is_ranked_first(all_failed):
    sweep_dir, proc = all_failed
    summary = summarize(load(sweep_dir))
    assert summary["n_failed"].tolist() == [1, 1] and summary["n_missing"].tolist() == [0, 0]
    assert summary["rank_val_accuracy"].tolist() == [2, 2]  # tied, last
    title = format_summary(summary).splitlines()[0]
    assert title.startswith("no config completed: ") and title in proc.stdout
    with pytest.raises(ValueError, match="nothing to refit"):
        best_config(sweep_dir)


# ------------------------------------------------------------------- few validation rows


def test_a_score_on_a_handful_of_validation_rows_is_flagged_under_the_table(small_validation, tmp_path):
    sweep_dir = copy_of(small_validation, tmp_path)
    runs = load(sweep_dir)
    assert runs["n_val_rows"].tolist() == [10, 10]  # each record says how many rows scored it
    summary = summarize(runs)
    assert summary["min_n_val_rows"].tolist() == [10, 10]
    assert not [c for c in summary if "n_train_rows" in c or "n_val_rows" in c and c != "min_n_val_rows"]  # row counts, not metrics
    assert len(format_summary(summary).splitlines()) == 2 + 2  # title, header, 2 configs
    # a record of a run scored on 4 rows (validation sets that small are refused today; older records may have them)
    edit_record(job_dir(sweep_dir, {"model.n_clusters": 3}) / "result.json", n_val_rows=4)
    summary = summarize(load(sweep_dir))
    assert row_of(summary, {"model.n_clusters": 3})["min_n_val_rows"] == 4
    _title, _header, *rows, note = format_summary(summary).splitlines()
    assert len(rows) == 2 and note.startswith("1 of these configs") and "fewer than 10 validation rows" in note


# ------------------------------------------------------------------ refit with early stopping


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory) -> Path:
    """2 Keras jobs (model.fit) with early stopping on val_loss, patience 1, up to 6 epochs."""
    sweep_dir = tmp_path_factory.mktemp("early_stopped") / "sweep"
    proc = sweep_into(sweep_dir, "optimizer.lr=1e-3,3e-2", "trainer.epochs=6", "trainer.early_stopping_patience=1",
                      "trainer.save_model=false")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return sweep_dir


def test_refit_trains_for_the_epoch_early_stopping_restored_not_the_best_accuracy_epoch(early_stopped, tmp_path):
    sweep_dir = copy_of(early_stopped, tmp_path)
    for record in sweep_dir.glob("*/result.json"):  # the restored (best val_loss) epoch and the best val_accuracy one differ
        edit_record(record, restored_epoch=4, best_epoch=2)
    _, cfg, chosen = best_config(sweep_dir)
    refit_cfg = refit_config(cfg, chosen["restored_epochs"])
    assert (refit_cfg.trainer.epochs, refit_cfg.trainer.early_stopping_patience) == (4, None)
    for record in sweep_dir.glob("*/result.json"):  # a record written before restored_epoch existed
        old = json.loads(record.read_text())
        del old["restored_epoch"]
        record.write_text(json.dumps(old))
    _, cfg, chosen = best_config(sweep_dir)
    assert refit_config(cfg, chosen["restored_epochs"]).trainer.epochs == 2


# ------------------------------------------------------------------------- read-only sweep dirs


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """No file can be created in ``path`` while inside.

    File modes do not stop root (the tests run as root here), so for root the dir is made
    immutable (``chattr +i``), which stops root too; other users get ``chmod a-w``.
    """
    if os.geteuid() != 0:
        path.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_a_read_only_sweep_dir_gets_one_line_per_option_and_out_writes_elsewhere(small_validation, tmp_path):
    sweep_dir = copy_of(small_validation, tmp_path)
    out = tmp_path / "elsewhere"
    with read_only(sweep_dir):
        for option, target in (("--write", sweep_dir), ("--plot", sweep_dir), ("--refit", sweep_dir / "refit")):
            proc = sweep_results(str(sweep_dir), option)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
            assert proc.stderr.strip().splitlines()[-1] == f"sweep-results: cannot write {target}: permission denied; use --out DIR"
        proc = sweep_results(str(sweep_dir), "--write", "--refit", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    refit = json.loads((out / "result.json").read_text())
    assert refit["status"] == "completed" and Path(refit["refit_of"]).parent == sweep_dir.resolve()
    assert (out / "centers.npy").is_file() and not (sweep_dir / "refit").exists()
    assert len(pd.read_csv(out / "results.csv")) == 2 and len(pd.read_csv(out / "summary.csv")) == 2


def test_a_refit_of_an_early_stopped_sweep_trains_its_runs_mean_restored_epoch(early_stopped, tmp_path):
    sweep_dir = copy_of(early_stopped, tmp_path)
    proc = sweep_results(str(sweep_dir), "--refit")
    assert proc.returncode == 0, proc.stderr
    refit = json.loads((sweep_dir / "refit" / "result.json").read_text())
    runs = load(sweep_dir)  # the sweep's 2 runs, not the refit
    best = summarize(runs).iloc[0]
    (run,) = runs[runs["optimizer.lr"] == best["optimizer.lr"]].to_dict("records")
    assert 1 <= run["restored_epoch"] <= run["epochs_run"] <= 6
    assert refit["trainer.epochs"] == refit["epochs_run"] == refit["restored_epoch"] == run["restored_epoch"]
    assert refit["trainer.early_stopping_patience"] is None
