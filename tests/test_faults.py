"""Faults that must not stop a sweep: a joblib worker killed outright, an Optuna study in which no trial completes.

A worker killed with SIGKILL (what the out-of-memory killer does) fails the job it was running,
and only that job: the others run, the tables are written, the command exits 1 because a run
failed. An Optuna study whose trials all fail ends with its tables and one line, not a traceback.
All of them run the real ``sweep`` command in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import MODEL_FIT, SWEEP, records_under, run_sweep


def _workers_running(proc: subprocess.Popen, *job_dirs: Path, timeout: float) -> list[int]:
    """The pids of the processes under ``proc`` running each of ``job_dirs`` (holding its log open), once all run."""
    deadline = time.monotonic() + timeout
    while True:
        holders: dict[Path, int] = {}
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                opened = [Path(f.path) for f in child.open_files()]
            except psutil.Error:
                continue
            holders |= {job_dir: child.pid for job_dir in job_dirs for path in opened if path.parent == job_dir}
        if len(holders) == len(job_dirs):
            return [holders[job_dir] for job_dir in job_dirs]
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended early ({proc.returncode}):\n{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the jobs to start")
        time.sleep(0.05)


def _kill_tree(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and every process it started, if any is left."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for process in [psutil.Process(proc.pid), *family] if proc.poll() is None else family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)


def _kill_own_worker(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize(("signum", "told"), [
    (signal.SIGKILL, "worker process killed by SIGKILL (out of memory?)"),
    (signal.SIGTERM, "worker process killed by SIGTERM"),
])  # fmt: skip
def test_a_dead_workers_signal_is_read_from_lokys_error(signum, told):
    from joblib import Parallel, delayed

    from hydra_plugins.sweep_joblib._launch import death

    with pytest.raises(BrokenProcessPool) as broken:
        Parallel(n_jobs=2, backend="loky")(delayed(_kill_own_worker)(signum) for _ in range(2))
    assert death(broken.value) == told


def test_after_a_break_only_jobs_whose_worker_died_unrecorded_are_blamed(tmp_path):
    from hydra_plugins.sweep_joblib._launch import killed_jobs
    from hydra_plugins.sweep_joblib._watch import KILLED, RUNNING

    since = time.time()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a witness that has exited
    note = {"witness_pid": gone.pid, "started": since + 1, "job_num": 0, "overrides": [], "config": {}}
    marks = {"died": KILLED, "recorded_then_died": KILLED, "survivor": RUNNING}
    for name, mark in marks.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / mark).write_text(json.dumps(note))
    (tmp_path / "recorded_then_died" / "result.json").write_text("{}")  # written after the job started
    os.utime(tmp_path / "recorded_then_died" / "result.json", (since + 2, since + 2))

    killed = killed_jobs(tmp_path, since)
    assert [path.parent.name for path, _ in killed] == ["died"]
    assert sorted(p.parent.name for p in [*tmp_path.rglob(KILLED), *tmp_path.rglob(RUNNING)]) == ["died"]


@pytest.mark.slow
def test_a_joblib_worker_killed_by_sigkill_fails_its_job_and_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "killed"
    # Jobs 0 and 1 (5 epochs of model.fit) run first, one per worker.
    args = [
        "-m", "trainer.epochs=5,1", "optimizer.lr=1e-3,1e-2", *MODEL_FIT,
        "trainer.save_model=false", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    proc = subprocess.Popen([SWEEP, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        target_worker, _ = _workers_running(proc, sweep_dir / "0", sweep_dir / "1", timeout=240)
        time.sleep(1.1)  # both jobs are still importing TensorFlow or training; records time whole seconds
        killed_at = time.time()
        os.kill(target_worker, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_tree(proc)

    assert proc.returncode == 1, stderr  # a run failed
    assert "Traceback" not in stderr and "TerminatedWorkerError" not in stdout + stderr, stderr
    records = {r["job_num"]: r for r in records_under(sweep_dir)}
    assert sorted(records) == [0, 1, 2, 3]
    assert records[0]["status"] == "failed"
    assert records[0]["error"] == "worker process killed by SIGKILL (out of memory?)"
    assert records[0]["trainer.epochs"] == 5 and records[0]["optimizer.lr"] == 1e-3  # the whole config, as any record
    assert records[0]["fingerprint"] and records[0]["output_dir"] == str(sweep_dir / "0")
    assert all(records[n]["status"] == "completed" for n in (1, 2, 3)), [records[n]["error"] for n in (1, 2, 3)]
    # Job 1 was in progress in the other worker when the pool broke: it ran again, from the start.
    assert datetime.fromisoformat(records[1]["started_at"]).timestamp() >= int(killed_at)
    assert records[0]["elapsed_s"] >= 1  # from the job's start to its worker's death
    assert not [*sweep_dir.rglob(".sweep-running"), *sweep_dir.rglob(".sweep-killed")], "the launcher's marks are gone"

    table = pd.read_csv(sweep_dir / "results.csv")
    assert sorted(table["job_num"]) == [0, 1, 2, 3]
    assert table.set_index("job_num").loc[0, "status"] == "failed"
    assert (sweep_dir / "summary.csv").is_file()


@pytest.mark.slow
def test_an_optuna_study_whose_trials_all_fail_ends_with_its_tables_and_one_line(tmp_path):
    sweep_dir = tmp_path / "all_failed"
    proc = run_sweep(
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "optimizer.lr=-1", "trainer.epochs=1",
        f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == "sweep: no Optuna trial completed (2 failed); see the tables", lines
    records = records_under(sweep_dir)
    assert len(records) == 2 and all(r["status"] == "failed" and "optimizer.lr" in r["error"] for r in records)
    table = pd.read_csv(sweep_dir / "results.csv")
    assert len(table) == 2 and set(table["status"]) == {"failed"}
    assert not (sweep_dir / "optimization_results.yaml").exists()  # there is no best trial to report


@pytest.mark.slow
def test_an_optuna_study_of_zero_trials_ends_in_one_line_and_exit_0(tmp_path):
    sweep_dir = tmp_path / "no_trials"
    proc = run_sweep(
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=0", f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == "sweep: no Optuna trial ran (hydra.sweeper.n_trials=0)", lines
    assert records_under(tmp_path) == []


@pytest.mark.slow
def test_a_joblib_worker_killed_between_jobs_fails_no_job_and_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "idle_killed"
    args = [
        "-m", "trainer.epochs=40,1", *MODEL_FIT, "trainer.save_model=false",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    proc = subprocess.Popen([SWEEP, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, idle_worker = _workers_running(proc, sweep_dir / "0", sweep_dir / "1", timeout=240)
        deadline = time.monotonic() + 240
        while not (sweep_dir / "1" / "result.json").is_file():  # job 1 (1 epoch) done, job 0 (40 epochs of model.fit) still training
            assert time.monotonic() < deadline and proc.poll() is None, "job 1 did not finish"
            time.sleep(0.05)
        assert not (sweep_dir / "0" / "result.json").is_file()
        os.kill(idle_worker, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        _kill_tree(proc)

    assert proc.returncode == 0, stderr  # no run failed: the job the broken pool interrupted ran again
    assert "Traceback" not in stderr, stderr
    records = {r["job_num"]: r for r in records_under(sweep_dir)}
    assert sorted(records) == [0, 1] and all(r["status"] == "completed" for r in records.values())
    assert len(pd.read_csv(sweep_dir / "results.csv")) == 2
