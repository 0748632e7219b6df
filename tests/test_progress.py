"""Progress lines: one ``[k/N] overrides -> outcome`` line per finished job under each launcher and sweeper, then the totals.

Real ``sweep -m`` runs in subprocesses; the assertions are on the lines' structure, not on their wording,
and hold whether the runs complete or fail (each line's count is checked against the records).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus

from sweep.progress import Progress, duration
from sweep.results import status_line

from conftest import records_under, run_sweep

#: A job's line: ``[k/N] <overrides> -> <outcome>``.
JOB_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.*?) -> (.*)$")

#: Two learning rates x two folds of a 2-fold split, one epoch each.
FOUR_JOBS = ("trainer.epochs=1", "trainer.save_model=false", "validation=kfold", "validation.n_splits=2", "optimizer.lr=1e-3,1e-2", "validation.fold=0,1")


def job_lines(proc: subprocess.CompletedProcess) -> list[tuple[int, int, str, str]]:
    """Every job line of the sweep's stdout as ``(k, N, overrides, outcome)``."""
    found = [JOB_LINE.match(line) for line in proc.stdout.splitlines()]
    return [(int(m[1]), int(m[2]), m[3], m[4]) for m in found if m]


def assert_progress(proc: subprocess.CompletedProcess, sweep_dir: Path, n: int) -> list[tuple[int, int, str, str]]:
    """One line per job, numbered 1..n of n, each job's overrides once; the totals line counts the records; return the lines."""
    lines = job_lines(proc)
    records = records_under(sweep_dir)
    assert len(records) == n, proc.stdout + proc.stderr
    assert [k for k, _, _, _ in lines] == list(range(1, n + 1)), proc.stdout
    assert {total for _, total, _, _ in lines} == {n}, proc.stdout
    assert sorted(overrides for _, _, overrides, _ in lines) == sorted(" ".join(r["overrides"]) for r in records)
    out = proc.stdout.splitlines()
    totals = [i for i, line in enumerate(out) if re.fullmatch(r"\d+ runs?: .* in \S+", line)]
    assert len(totals) == 1, proc.stdout
    assert out[totals[0]].rsplit(" in ", 1)[0] == status_line([r["status"] for r in records])
    results = out.index(f"Results: {sweep_dir}")
    assert max(i for i, line in enumerate(out) if JOB_LINE.match(line)) < results < totals[0], "job lines, then the table, then the totals"
    return lines


def test_a_line_counts_the_sweep_and_estimates_the_rest() -> None:
    progress = Progress(total=3)
    progress.launched(3)
    ret = JobReturn(overrides=["optimizer.lr=0.1"], status=JobStatus.FAILED, _return_value=ValueError("bad"), working_dir="/nonexistent")
    assert re.fullmatch(r"\[1/3\] optimizer.lr=0.1 -> failed: ValueError: bad · ETA \d+s", progress.finished(ret))
    assert [duration(s) for s in (4.4, 72, 7500)] == ["4s", "1m12s", "2h05m"]


@pytest.mark.slow
def test_the_default_launcher_numbers_each_job_once_and_a_rerun_says_reused(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "grid"
    first = run_sweep("-m", *FOUR_JOBS, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    lines = assert_progress(first, sweep_dir, 4)
    assert all(outcome.startswith("val_accuracy=") and "(reused)" not in outcome for *_, outcome in lines), first.stdout
    again = run_sweep("-m", *FOUR_JOBS, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert all("(reused)" in outcome for *_, outcome in assert_progress(again, sweep_dir, 4)), again.stdout


def test_a_record_started_earlier_in_the_same_second_as_the_sweep_is_reused() -> None:
    from datetime import datetime, timezone

    from sweep.records import timestamp

    progress = Progress()
    progress.started = 1_800_000_000.9  # a rerun started 0.9 s into a second: a fast first run's last job began in it
    at = lambda t: timestamp(datetime.fromtimestamp(t, timezone.utc))  # noqa: E731  as records say it
    assert progress._reused({"started_at": at(1_800_000_000.2)})
    assert not progress._reused({"started_at": at(1_800_000_000.9)})  # this sweep's own


@pytest.mark.slow
def test_joblib_numbers_each_job_once_and_names_the_failed_ones(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "joblib"
    proc = run_sweep(
        "-m", "trainer.epochs=1", "trainer.save_model=false", "validation=kfold", "validation.n_splits=1,2", "optimizer.lr=1e-3,1e-2",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, check=False,
    )  # fmt: skip
    lines = assert_progress(proc, sweep_dir, 4)
    refused = [outcome for _, _, overrides, outcome in lines if "validation.n_splits=1" in overrides]
    assert len(refused) == 2 and all(outcome.startswith("failed: ") for outcome in refused), proc.stdout


@pytest.mark.slow
def test_optuna_batches_number_the_trials_of_the_whole_study(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "optuna"
    proc = run_sweep(
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "trainer.epochs=1",
        "trainer.save_model=false", "validation.n_splits=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert_progress(proc, sweep_dir, 4)


@pytest.mark.slow
def test_ray_prints_no_colour_codes_and_no_token_warning(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep_dir = tmp_path / "ray"
    proc = run_sweep(
        "-m", "trainer.epochs=1", "trainer.save_model=false", "optimizer.lr=1e-3,1e-2", "hydra/launcher=ray_local",
        f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, timeout=300, check=False, env={"HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert_progress(proc, sweep_dir, 2)
    out = proc.stdout + proc.stderr
    assert "\x1b" not in out
    # A home Ray never ran in (as here): Ray says once, as information, where it saved the token it made.
    assert not [line for line in out.splitlines() if "token" in line.lower() and "Generated new authentication token" not in line], out


def test_a_long_population_says_which_epoch_it_is_in_and_trains_the_same_bits(capfd, monkeypatch):
    from sweep.config import compose
    from sweep.engines import graph
    from sweep.run import check, train

    cfgs = [compose("trainer.epochs=3", "trainer.save_model=false", f"optimizer.lr={lr}") for lr in (1e-3, 1e-2)]
    monkeypatch.setattr(graph.EPOCHS, "every_s", 0.0)  # every epoch counts as long
    told = train(cfgs, [check(c) for c in cfgs])
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("population of")]
    assert [re.sub(r" \(\d+s\)$", "", line) for line in lines] == [f"population of 2 jobs: epoch {e} of 3" for e in (1, 2)]
    monkeypatch.setattr(graph.EPOCHS, "every_s", float("inf"))  # never long: nothing printed
    quiet = train(cfgs, [check(c) for c in cfgs])
    assert not [line for line in capfd.readouterr().err.splitlines() if line.startswith("population of")]
    assert [t.fits[0][1].trained_by for t in told] == ["graph", "graph"] and told[0].fits[0][1].population_size == 2
    assert [t.fits[0][1].history for t in told] == [t.fits[0][1].history for t in quiet]
