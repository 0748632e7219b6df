"""A sweep dir can be trusted: one writer at a time, no finished run deleted or overwritten, reuse checked.

The sweeps are real ``sweep -m`` commands in subprocesses (the compiled MLP, one epoch, or
KMeans); the reuse checks call :func:`sweep.run.run_job` as the entrypoint does.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest

import sweep
from sweep.records import RECORD
from sweep.results import SkippedRecordWarning, load
import sweep.sweep_dir as sweep_dir_module
from sweep.run import Job, record_failure, run_job
from sweep.sweep_dir import LOCK, claim, release
from tests.conftest import SWEEP, records_under, run_sweep

GRID = ["regularizer.l2=0,1e-2", "trainer.epochs=2", "hydra.sweep.dir=d"]
ONE_EPOCH = ["trainer.epochs=1", "hydra.sweep.dir=d"]


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([SWEEP, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path_glob: str, root: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(root.glob(path_glob))) < count:
        assert proc.poll() is None and time.monotonic() < deadline, f"the sweep ended before {count} x {path_glob} appeared"
        time.sleep(0.05)


def _but_run(record: dict) -> dict:
    """``record`` without the token of the sweep run that last reused it."""
    return {key: value for key, value in record.items() if key != "sweep_run"}


def _runs(sweep_dir: Path) -> dict[float, dict]:
    return {record["optimizer.lr"]: record for record in records_under(sweep_dir)}


# ------------------------------------------------------------------------ one writer


@pytest.mark.slow
def test_a_second_sweep_into_a_live_sweeps_dir_is_refused_and_the_first_is_untouched(tmp_path: Path) -> None:
    first = _start("-m", "optimizer.lr=1e-3,1e-2", *GRID, cwd=tmp_path)
    _wait_for(f"d/{LOCK}", tmp_path, 1, first)
    second = run_sweep("-m", "optimizer.lr=1e-3,1e-2", *GRID, "trainer.epochs=3", cwd=tmp_path, check=False)
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()
    assert line.startswith("sweep: d is in use by another sweep") and f"pid {first.pid} " in line
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    records = records_under(tmp_path / "d")
    assert len(records) == 4 and {r["trainer.epochs"] for r in records} == {2}
    assert (load(tmp_path / "d")["trainer.epochs"] == 2).all()
    assert not (tmp_path / "d" / LOCK).exists(), "the lock is released when the sweep ends"


@pytest.mark.slow
def test_a_killed_sweeps_lock_is_stale_and_the_rerun_resumes_what_it_finished(tmp_path: Path) -> None:
    args = ["-m", "task=cluster", "model.n_clusters=2,3,4,5,6,7,8,9", "hydra.sweep.dir=d"]
    killed = _start(*args, cwd=tmp_path)
    _wait_for("d/*/result.json", tmp_path, 2, killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert (tmp_path / "d" / LOCK).exists(), "a killed sweep leaves its lock file behind"
    finished = {p: _but_run(json.loads(p.read_text())) for p in tmp_path.glob("d/*/result.json")}
    finished = {p: record for p, record in finished.items() if record["status"] == "completed"}
    rerun = run_sweep(*args, cwd=tmp_path)
    assert "Sweep dir: d (to resume it, rerun the same command with hydra.sweep.dir=d)" in rerun.stdout
    assert all(_but_run(json.loads(path.read_text())) == record for path, record in finished.items()), "reused, not retrained"
    assert sorted(r["model.n_clusters"] for r in records_under(tmp_path / "d")) == list(range(2, 10))


@pytest.mark.slow
def test_an_interrupted_vectorized_sweep_says_which_dir_to_resume(tmp_path: Path) -> None:
    proc = _start("-m", "optimizer.lr=1e-3,1e-2", "regularizer.l2=0,1e-2", "trainer.epochs=200", "hydra/launcher=vectorized",
                  "hydra.sweep.dir=vd", cwd=tmp_path)
    _wait_for(f"vd/{LOCK}", tmp_path, 1, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines()[-1].endswith("; rerun the same command with hydra.sweep.dir=vd to resume")
    assert "Sweep dir: vd " in stdout


@pytest.mark.slow
@pytest.mark.parametrize("where", ["a_file/d", "a_file"])
def test_a_sweep_dir_that_cannot_be_made_is_refused_in_one_line(tmp_path: Path, where: str) -> None:
    (tmp_path / "a_file").write_text("not a dir\n")
    proc = run_sweep("-m", "task=cluster", "model.n_clusters=2,3", f"hydra.sweep.dir={where}", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"sweep: hydra.sweep.dir={where}: cannot write there")


@pytest.mark.slow
def test_a_read_only_run_dir_is_refused_in_one_line(tmp_path: Path) -> None:
    """``chattr +i`` makes the dir unwritable even for root, who ignores file modes (the suite runs as root in CI)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        proc = run_sweep("task=cluster", "hydra.run.dir=locked/run", cwd=tmp_path, check=False)
        multi = run_sweep("-m", "task=cluster", "model.n_clusters=2,3", "hydra.sweep.dir=locked/sw", cwd=tmp_path, check=False)
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "sweep: hydra.run.dir=locked/run: cannot write there (Operation not permitted)"
    ]
    assert multi.returncode == 1 and multi.stderr.strip().splitlines() == [
        "sweep: hydra.sweep.dir=locked/sw: cannot write there (Operation not permitted)"
    ]


# ------------------------------------------------------------------- a changed grid


@pytest.mark.slow
def test_a_grown_grid_reuses_every_finished_run_wherever_it_sits(tmp_path: Path) -> None:
    run_sweep("-m", "optimizer.lr=1e-3,1e-2", *ONE_EPOCH, cwd=tmp_path)
    before = _runs(tmp_path / "d")
    run_sweep("-m", "optimizer.lr=1e-4,1e-3,1e-2", *ONE_EPOCH, cwd=tmp_path)
    after = _runs(tmp_path / "d")
    assert sorted(after) == [1e-4, 1e-3, 1e-2]
    assert "reused_from" not in after[1e-4]
    for lr in (1e-3, 1e-2):  # moved into their new job dirs, not retrained
        assert after[lr]["reused_from"] and after[lr]["started_at"] == before[lr]["started_at"]
        assert after[lr]["val_accuracy"] == before[lr]["val_accuracy"]
    assert len(records_under(tmp_path / "d")) == 3, "each finished run is in the dir once"


@pytest.mark.slow
def test_a_changed_grid_keeps_the_runs_it_no_longer_sweeps(tmp_path: Path) -> None:
    run_sweep("-m", "optimizer.lr=1e-3,1e-2", *ONE_EPOCH, cwd=tmp_path)
    before = _runs(tmp_path / "d")
    run_sweep("-m", "optimizer.lr=1e-2,1e-1", *ONE_EPOCH, cwd=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedRecordWarning)  # no job dir looks like a crashed run
        runs = load(tmp_path / "d")
    assert sorted(runs["optimizer.lr"]) == [1e-3, 1e-2, 1e-1] and set(runs["status"]) == {"completed"}
    kept = runs[runs["optimizer.lr"] == 1e-3].iloc[0]
    assert kept["val_accuracy"] == before[1e-3]["val_accuracy"] and "kept" in Path(kept["output_dir"]).parts
    summary = (tmp_path / "d" / "summary.csv").read_text()
    assert len(summary.strip().splitlines()) == 1 + 3, "the end-of-sweep table holds every finished run of the dir"


@pytest.mark.slow
def test_a_failure_an_earlier_run_left_in_the_dir_does_not_fail_the_next_run(tmp_path: Path) -> None:
    first = run_sweep("-m", "task=cluster", "model.n_clusters=1,3", "hydra.sweep.dir=d", cwd=tmp_path, check=False)
    assert first.returncode == 1
    fixed = run_sweep("-m", "task=cluster", "model.n_clusters=4,3", "hydra.sweep.dir=d", cwd=tmp_path)
    assert "2 runs: 2 completed" in fixed.stdout
    runs = load(tmp_path / "d")
    assert sorted(runs["status"]) == ["completed", "completed", "failed"], "the failed run stays in the dir's table"


@pytest.mark.slow
def test_a_kept_run_that_ranks_first_is_the_one_refit(tmp_path: Path) -> None:
    run_sweep("-m", "task=cluster", "model.n_clusters=10,2", "hydra.sweep.dir=d", cwd=tmp_path)
    run_sweep("-m", "task=cluster", "model.n_clusters=2,3", "hydra.sweep.dir=d", cwd=tmp_path)
    best = load(tmp_path / "d").sort_values("ari").iloc[-1]
    assert best["model.n_clusters"] == 10 and "kept" in Path(best["output_dir"]).parts
    results = str(Path(SWEEP).with_name("sweep-results"))
    refit = subprocess.run([results, "d", "--refit"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refit.returncode == 0, refit.stderr
    record = json.loads((tmp_path / "d" / "refit" / RECORD).read_text())
    assert record["status"] == "completed" and record["model.n_clusters"] == 10
    assert record["refit_of"] == best["output_dir"]


# ------------------------------------------------------------------- what reuse checks


def _cluster(job_dir: Path, sweep_dir: Path | None = None, *extra: str) -> dict:
    return run_job(sweep.compose("task=cluster", "model.n_clusters=3", *extra), Job(job_dir, sweep_dir=sweep_dir))


def test_a_record_whose_artifact_was_cut_short_is_retrained_saying_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = _cluster(tmp_path)
    centers = tmp_path / "centers.npy"
    centers.write_bytes(centers.read_bytes()[:20])
    with caplog.at_level(logging.INFO, logger="sweep.resume"):
        again = _cluster(tmp_path)
    assert "reused_from" not in again and again["started_at"] >= first["started_at"]
    assert centers.stat().st_size == first["artifacts"]["centers.npy"]
    assert any("not reusing" in message and "centers.npy" in message for message in caplog.messages)


def test_a_record_whose_config_does_not_match_its_fingerprint_is_retrained(tmp_path: Path) -> None:
    first = _cluster(tmp_path)
    tampered = json.loads((tmp_path / RECORD).read_text()) | {"model.n_init": 7}  # edited by hand, fingerprint kept
    (tmp_path / RECORD).write_text(json.dumps(tampered))
    again = _cluster(tmp_path)
    assert "reused_from" not in again and again["model.n_init"] == first["model.n_init"] != 7


def test_a_run_reused_across_a_major_version_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _cluster(tmp_path)
    old = json.loads((tmp_path / RECORD).read_text())
    old["versions"]["scikit-learn"] = "0.24.2"
    (tmp_path / RECORD).write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING, logger="sweep.resume"):
        again = _cluster(tmp_path)
    assert again["reused_from"] == str(tmp_path)
    assert any("scikit-learn 0.24.2" in message for message in caplog.messages)


def test_a_single_run_into_a_dir_of_another_config_keeps_that_run(tmp_path: Path) -> None:
    first = _cluster(tmp_path)
    second = run_job(sweep.compose("task=cluster", "model.n_clusters=4"), Job(tmp_path))
    runs = load(tmp_path)
    assert sorted(runs["model.n_clusters"]) == [3, 4]
    assert runs.set_index("model.n_clusters").loc[3, "ari"] == first["ari"] and second["status"] == "completed"


# ------------------------------------------------------------------------ user code


def test_sys_exit_in_user_code_fails_the_job_not_the_sweep(tmp_path: Path) -> None:
    record = run_job(sweep.compose("model._target_=user_targets.calls_sys_exit"), Job(tmp_path))
    assert record["status"] == "failed" and record["error"] == "SystemExit: 3"
    assert json.loads((tmp_path / RECORD).read_text())["status"] == "failed"


def test_an_error_is_stored_in_one_line(tmp_path: Path) -> None:
    record = run_job(sweep.compose("model._target_=user_targets.raises_a_long_error"), Job(tmp_path))
    assert "\n" not in record["error"]
    assert record["error"].endswith("the first line [2 more lines in the job's log]")


def _die_holding_the_lease(sweep_dir: Path, host: str | None = None) -> None:
    """A process (on ``host``, when given) that takes the sweep dir's lease and dies without releasing it."""
    fake_host = f"import socket; socket.gethostname = lambda: {host!r}; " if host else ""
    lease = f"SoftFileLease({str(sweep_dir / LOCK)!r}, timeout=0, lease_duration={sweep_dir_module.LEASE_S})"
    code = f"{fake_host}import os; from filelock import SoftFileLease; lock = {lease}; lock.acquire(); os._exit(0)"
    subprocess.run([str(Path(SWEEP).with_name("python")), "-c", code], check=True)
    assert (sweep_dir / LOCK).exists()


def test_the_lease_of_a_process_that_died_on_this_machine_is_taken_at_once(tmp_path: Path) -> None:
    _die_holding_the_lease(tmp_path)
    start = time.monotonic()
    try:
        assert claim(tmp_path).dir == tmp_path
    finally:
        release()
    assert time.monotonic() - start < 5 and not (tmp_path / LOCK).exists()


def test_the_lease_of_a_holder_on_another_machine_is_taken_once_it_lapses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sweep_dir_module, "LEASE_S", 1.0)
    _die_holding_the_lease(tmp_path, host="node7")
    start = time.monotonic()
    try:
        claim(tmp_path)
    finally:
        release()
    assert 1.0 <= time.monotonic() - start < 10
    assert "waiting up to 2 s for that lease to lapse" in capsys.readouterr().out


def test_a_duplicate_config_of_a_resumed_run_copies_the_run_it_reuses_in_place(tmp_path: Path) -> None:
    """``threads`` is not part of the fingerprint: ``threads=1,2`` runs one config twice."""
    def sweep_run(*jobs: list[str]) -> None:
        claim(tmp_path)
        try:
            for num, overrides in enumerate(jobs):
                run_job(sweep.compose("task=cluster", *overrides), Job(tmp_path / str(num), num, overrides, tmp_path))
        finally:
            release()

    sweep_run(["threads=1"])
    for _ in range(2):
        sweep_run(["threads=1"], ["threads=2"])
        assert [r["job_num"] for r in records_under(tmp_path)] == [0, 1], "each job dir keeps its run"
    assert len(load(tmp_path)) == 2


def test_a_killed_workers_failure_never_overwrites_a_finished_run(tmp_path: Path) -> None:
    other = run_job(sweep.compose("task=cluster", "model.n_clusters=4"), Job(tmp_path / "0", 0, [], tmp_path))
    record = record_failure(sweep.compose("task=cluster"), Job(tmp_path / "0", 0, [], tmp_path), "worker process killed by SIGKILL", time.time(), 1.0)
    assert record["status"] == "failed"
    kept = [r for r in records_under(tmp_path) if r["status"] == "completed"]
    assert [r["fingerprint"] for r in kept] == [other["fingerprint"]], "the other config's run was set aside, not overwritten"
    done = run_job(sweep.compose("task=cluster"), Job(tmp_path / "1", 1, [], tmp_path))
    again = record_failure(sweep.compose("task=cluster"), Job(tmp_path / "1", 1, [], tmp_path), "worker process killed by SIGKILL", time.time(), 1.0)
    assert again["status"] == "completed" and again["ari"] == done["ari"]
