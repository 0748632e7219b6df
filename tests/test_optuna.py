"""``hparams_search=optuna``: sweep's own sweeper on the current Optuna's ask-and-tell API.

Real studies in subprocesses (``sweep -m hparams_search=optuna ...``), read back from their
records, their ``optimization_results.yaml`` and the study's own storage through Optuna.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import SWEEP, run_sweep
from sweep.results import load, summarize

optuna = pytest.importorskip("optuna", reason="the optuna extra")

pytestmark = pytest.mark.slow

#: Two folds trained in-process per trial, one epoch: a trial is about a second.
QUICK_STUDY = ["hparams_search=optuna", "trainer.epochs=1", "trainer.save_model=false", "validation.n_splits=2"]


def study(sweep_dir: Path) -> optuna.Study:
    """The study a sweep kept in its sweep dir's journal."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name="sweep", storage=JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.journal"))))


def records(sweep_dir: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")}


def test_a_rerun_continues_the_study_and_retrains_nothing_already_told(tmp_path):
    sweep_dir = tmp_path / "study"
    first = run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert "2 runs: 2 completed" in first.stdout
    before = {n: (sweep_dir / str(n) / "result.json").read_bytes() for n in records(sweep_dir)}
    second = run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert "2 runs: 2 completed" in second.stdout  # trials 2 and 3; 0 and 1 were told by the first run
    assert {n: (sweep_dir / str(n) / "result.json").read_bytes() for n in before} == before
    recorded = records(sweep_dir)
    trials = study(sweep_dir).trials
    assert [t.number for t in trials] == sorted(recorded) == [0, 1, 2, 3]
    for trial in trials:  # job n is trial n, told its record's value
        record = recorded[trial.number]
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == record["val_accuracy"]
        assert trial.params["optimizer.lr"] == record["optimizer.lr"] and trial.params["regularizer"] == record["regularizer.name"]
    assert len({r["optimizer.lr"] for r in recorded.values()}) == 4, "a continued sampler does not draw its first trials again"
    for batch in ((0, 1), (2, 3)):  # a batch's trials train as one population when their structure agrees
        if recorded[batch[0]]["regularizer.name"] == recorded[batch[1]]["regularizer.name"]:
            assert [recorded[n]["population_size"] for n in batch] == [4, 4]
    third = run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert "0 runs: 0 completed" in third.stdout and sorted(records(sweep_dir)) == [0, 1, 2, 3]


def test_a_killed_study_asks_its_cut_off_trials_again_with_the_same_params(tmp_path):
    sweep_dir = tmp_path / "killed"
    args = [SWEEP, "-m", *QUICK_STUDY, "trainer.epochs=3", "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (_running(sweep_dir, 2) and (sweep_dir / "2").is_dir()):  # the second batch is asked and launched
            assert proc.poll() is None and time.monotonic() < deadline, "the study ended before its second batch"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    cut_off = {t.number: t.params for t in study(sweep_dir).trials if t.state == optuna.trial.TrialState.RUNNING}
    assert 2 in cut_off
    run_sweep("-m", *QUICK_STUDY, "trainer.epochs=3", "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    trials = study(sweep_dir).trials
    retries = [t for t in trials if "retry_of" in t.user_attrs]
    assert sorted(t.user_attrs["retry_of"] for t in retries) == sorted(cut_off)
    for retry in retries:
        assert retry.params == cut_off[retry.user_attrs["retry_of"]] and retry.state == optuna.trial.TrialState.COMPLETE
        assert trials[retry.user_attrs["retry_of"]].state == optuna.trial.TrialState.FAIL
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and len({t.params["optimizer.lr"] for t in done}) == 4
    recorded = records(sweep_dir)
    assert all(recorded[t.number]["val_accuracy"] == t.value for t in done)


def _running(sweep_dir: Path, number: int) -> bool:
    try:
        trials = study(sweep_dir).trials
    except Exception:  # noqa: BLE001  the journal is not written yet
        return False
    return len(trials) > number and trials[number].state == optuna.trial.TrialState.RUNNING


def test_two_objectives_put_the_pareto_front_in_the_summary(tmp_path):
    sweep_dir = tmp_path / "pareto"
    run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.n_trials=6", "hydra.sweeper.objectives=[val_accuracy,val_loss]", "regularizer.dropout=0",
              f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)  # fmt: skip
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["objectives"] == ["val_accuracy", "val_loss"] and results["directions"] == ["maximize", "minimize"]
    recorded = records(sweep_dir)
    points = {n: np.array([r["val_accuracy"], -r["val_loss"]]) for n, r in recorded.items()}  # both up
    front = {n for n, p in points.items() if not any((q >= p).all() and (q > p).any() for q in points.values())}
    assert {s["trial"] for s in results["solutions"]} == front
    summary = summarize(load(sweep_dir))
    flagged = {float(v) for v in summary[summary["pareto_front"]]["optimizer.lr"]}
    assert flagged == {recorded[n]["optimizer.lr"] for n in front}


def test_any_sampler_by_target_draws_the_same_trials_for_the_same_seed(tmp_path):
    random_sampler = ["hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler", "hydra.sweeper.n_trials=2"]
    for name in ("a", "b"):
        run_sweep("-m", *QUICK_STUDY, *random_sampler, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    keys = ("optimizer.lr", "regularizer.dropout", "regularizer.name", "val_accuracy", "val_loss")
    assert [[r[k] for k in keys] for r in a.values()] == [[r[k] for k in keys] for r in b.values()]
    assert len({r["optimizer.lr"] for r in a.values()}) == 2


def test_a_database_storage_continues_the_study_quietly(tmp_path):
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'studies.db'}"
    outputs = []
    for n_trials, where in ((1, "one"), (2, "two")):  # two sweep dirs, one study
        proc = run_sweep("-m", *QUICK_STUDY, storage, f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweep.dir={tmp_path / where}", cwd=tmp_path)
        outputs.append(proc.stdout + proc.stderr)
    kept = optuna.load_study(study_name="sweep", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert [t.state for t in kept.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert sorted(records(tmp_path / "two")) == [1]
    assert not any("alembic" in line.lower() or "A new study created" in line for out in outputs for line in out.splitlines())


def test_bad_directions_and_a_study_of_other_directions_are_one_line(tmp_path):
    proc = run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.objectives=[val_accuracy,fit_time_s]", "hydra.sweeper.direction=maximize",
                     f"hydra.sweep.dir={tmp_path / 'a'}", cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("sweep: hydra.sweeper.direction=['maximize']: give maximize")
    run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path / 'b'}", cwd=tmp_path)
    proc = run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.direction=minimize", f"hydra.sweep.dir={tmp_path / 'b'}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "sweep: hydra.sweeper.direction=['minimize']: study 'sweep' in this storage optimizes ['maximize']; use another study_name"
    )


def test_a_sampler_that_cannot_be_made_is_one_line(tmp_path):
    proc = run_sweep("-m", *QUICK_STUDY, "hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler", f"hydra.sweep.dir={tmp_path / 's'}",
                     cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sweep: hydra.sweeper.sampler: ") and "NoSuchSampler" in last, last


def test_the_grid_sampler_takes_the_sweeps_lists_and_visits_each_point_once(tmp_path):
    grid = ["hydra.sweeper.sampler._target_=optuna.samplers.GridSampler", "hydra.sweeper.params={}", "hydra.sweeper.custom_search_space=null",
            "optimizer.lr=0.001,0.01", "regularizer.dropout=0,0.5", "hydra.sweeper.n_trials=10"]  # fmt: skip
    run_sweep("-m", *QUICK_STUDY, *grid, f"hydra.sweep.dir={tmp_path / 'grid'}", cwd=tmp_path)
    points = sorted((r["optimizer.lr"], r["regularizer.dropout"]) for r in records(tmp_path / "grid").values())
    assert points == [(0.001, 0.0), (0.001, 0.5), (0.01, 0.0), (0.01, 0.5)]
    proc = run_sweep("-m", *QUICK_STUDY, *grid[:3], "optimizer.lr=interval(1e-3,1e-2)", f"hydra.sweep.dir={tmp_path / 'interval'}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("sweep: optimizer.lr: GridSampler lists values")
