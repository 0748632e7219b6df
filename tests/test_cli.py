"""The ``sweep`` command as a user runs it: from any directory, single runs and multiruns, quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK, records_under, run_sweep

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_a_single_run_from_another_directory_is_quiet_and_leaves_a_record(tmp_path: Path) -> None:
    proc = run_sweep("regularizer=dropout", "regularizer.dropout=0.5", *QUICK, cwd=tmp_path)
    (record,) = records_under(tmp_path / "outputs" / "runs")
    assert record["status"] == "completed" and record["regularizer.dropout"] == 0.5
    assert "val_accuracy=" in proc.stdout + proc.stderr
    for noise in ("oneDNN", "cuda", "E0000", "W0000", "absl"):
        assert noise not in proc.stderr, proc.stderr


def test_a_multirun_leaves_one_record_per_job(tmp_path: Path) -> None:
    run_sweep(
        "-m", "optimizer.lr=1e-3,1e-2", "regularizer.l2=0,1e-2", "validation=kfold", "validation.fold=0,1", *QUICK,
        cwd=tmp_path,
    )
    (sweep_dir,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    records = records_under(sweep_dir)
    assert len(records) == 8 and sorted(r["job_num"] for r in records) == list(range(8))
    assert {(r["optimizer.lr"], r["regularizer.l2"], r["validation.fold"]) for r in records} == {
        (lr, l2, fold) for lr in (1e-3, 1e-2) for l2 in (0.0, 1e-2) for fold in (0, 1)
    }
    assert all(r["status"] == "completed" and (sweep_dir / str(r["job_num"]) / "result.json").is_file() for r in records)


def test_the_cluster_task_runs_kmeans(tmp_path: Path) -> None:
    run_sweep("task=cluster", "model.n_clusters=8", cwd=tmp_path)
    (record,) = records_under(tmp_path)
    assert record["model.name"] == "kmeans" and record["model.n_clusters"] == 8 and 0 < record["ari"] <= 1


def test_a_bad_value_is_one_line_naming_the_key(tmp_path: Path) -> None:
    proc = run_sweep("optimizer.lr=-1", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "sweep: failed: SweepConfigError: optimizer.lr=-1: must be a finite number > 0 or a schedule's _target_ node"


def test_a_built_wheel_finds_its_configs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", REPO],
        check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("sweep-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", tmp_path / "site", wheel],
        check=True, capture_output=True,
    )
    assert (tmp_path / "site" / "sweep" / "conf" / "experiment" / "tutorial_kfold.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    code = "import sweep.config as c, sys; print(c.config_dir()); sys.argv = ['sweep', 'task=cluster']; import sweep.app; sweep.app.main()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(tmp_path / "site" / "sweep" / "conf")
    (record,) = records_under(work / "outputs")
    assert record["task.name"] == "cluster"

