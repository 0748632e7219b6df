"""Smoke test of ``make bench``: the quick mode runs every contender end to end and appends a CSV row."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_benchmark_appends_a_row(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--csv", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sweep/loop" in proc.stdout
    [row] = list(csv.DictReader(out.open()))
    assert row["mode"] == "quick"
    for key in ("W1_loop_s", "W1_tuner_s", "W1_sweep_s", "W2_loop_s", "W2_sweep_s"):
        assert float(row[key]) > 0, key
    for key in (
        "W1_sweep_over_loop", "W1_sweep_over_tuner", "W2_sweep_over_loop", "W2_grid_sweeper_speedup",
        "overhead_per_job_ms", "peak_rss_sweep_mb",
    ):
        assert float(row[key]) > 0, key
    for key in ("W1_loop_acc", "W1_tuner_acc", "W1_sweep_acc", "W2_loop_acc", "W2_sweep_acc"):
        assert 0.7 < float(row[key]) <= 1.0, (key, row[key])
    # W3: many jobs with the default launcher, against the loop's time estimated from its W2 run
    assert int(row["W3_jobs"]) == 20 and float(row["W3_sweep_s"]) > 0 and 0 < float(row["W3_sweep_over_loop"]) < 1
    assert 0.7 < float(row["W3_sweep_acc"]) <= 1.0
    assert float(row["W3_train_gflops"]) > 0 and float(row["W3_floor_gflops"]) > 0
    # W5: halving against the grid, keras-tuner's Hyperband and Optuna, each choice scored by the grid's record of it
    for name in ("grid", "halving", "tuner", "optuna"):
        assert float(row[f"W5_{name}_s"]) > 0 and 0.7 < float(row[f"W5_{name}_acc"]) <= 1.0, name
    assert int(row["W5_halving_epochs"]) < int(row["W5_grid_epochs"]), "halving trains fewer epochs than the grid"
    assert row["W5_winner_equals_grid_record"] == "True", "the winner's last record is the grid's run of its config"
    # W6: the tutorial's grid on MNIST-shaped rows, time and peak memory beside the hand-written loop's
    for what in ("s", "rss_mb"):
        assert float(row[f"W6_loop_{what}"]) > 0 and float(row[f"W6_sweep_{what}"]) > 0, what
    assert 0.7 < float(row["W6_sweep_acc"]) <= 1.0 and int(row["W6_configs"]) == 2
    # the scaling table: jobs and epochs grown, each sweep's overhead per job and peak RSS, beside the CSV
    table = list(csv.DictReader((tmp_path / "scaling.csv").open()))
    assert [(r["launcher"], int(r["jobs"]), int(r["epochs"])) for r in table] == [
        ("default", 4, 1), ("default", 4, 2), ("default", 8, 1), ("default", 8, 2), ("basic", 4, 1), ("basic", 4, 2),
    ]
    for r in table:
        assert float(r["wall_s"]) > float(r["train_s"]) > 0 and float(r["overhead_ms"]) > 0 and float(r["gflops"]) > 0
        assert float(r["sweep_rss_mb"]) > 0 and (float(r["trainer_rss_mb"]) > 0) == (r["launcher"] == "default")


@pytest.mark.slow
def test_the_population_size_benchmark_runs_and_its_members_match_their_ordinary_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.population", "--sizes", "1", "5"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("M=")]
    assert len(rows) == 2 and all(line.endswith("largest per-config accuracy gap 0.000 points") for line in rows)
