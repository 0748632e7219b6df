"""Issue 4, points 2-6: failed and diverged runs, resume, interruption, determinism, flat memory.

All runs are real: ``model.fit`` with SGD (the path that traces new graphs every job; early
stopping keeps these runs on it), the compiled MLP, and KMeans, on digits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweep
from sweep.records import RECORD
from sweep.run import Job, run_job
from tests.conftest import MODEL_FIT, SWEEP, records_under, run_sweep

#: SGD through ``model.fit`` (an activation the batched graph does not have).
SGD_FIT = ["optimizer=sgd", *MODEL_FIT]
FIT = [*SGD_FIT, "trainer.epochs=1"]  # about a second a job


def _but_run(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "sweep_run"}


def _job(cfg_overrides: list[str], job_dir: Path, sweep_dir: Path | None = None) -> dict:
    return run_job(sweep.compose(*cfg_overrides), Job(job_dir, sweep_dir=sweep_dir))


def test_the_model_fit_runs_here_do_not_take_the_batched_graph() -> None:
    from sweep.engines import graph

    assert graph.unsupported(sweep.compose(*FIT)) == "model.activation=selu: the graph has relu, tanh, sigmoid, elu, linear"


# ------------------------------------------------------------------- failed and diverged


def test_a_nan_loss_stops_training_at_once_and_is_recorded_diverged(tmp_path: Path) -> None:
    record = _job([*SGD_FIT, "optimizer.lr=1e6", "trainer.epochs=5"], tmp_path)
    assert record["status"] == "diverged" and "NaN or inf" in record["error"]
    assert record["epochs_run"] == 1  # TerminateOnNaN stopped the first epoch; 4 were never run
    assert not (tmp_path / "model.keras").exists()
    assert json.loads((tmp_path / RECORD).read_text())["status"] == "diverged"


def test_a_run_whose_model_cannot_be_written_is_recorded_failed_not_completed(tmp_path: Path) -> None:
    (tmp_path / "model.keras").mkdir()  # the model's path is taken by a directory
    record = _job(["trainer.epochs=1"], tmp_path)
    assert record["status"] == "failed" and "model.keras" in record["error"]
    assert json.loads((tmp_path / RECORD).read_text())["status"] == "failed"


def test_a_job_that_raises_is_recorded_failed_with_type_and_message(tmp_path: Path) -> None:
    record = _job([*FIT, "model.activation=nosuch"], tmp_path)
    assert record["status"] == "failed"
    assert "Could not interpret activation function identifier: nosuch" in record["error"]
    assert record["error"].startswith("InstantiationException: ")


@pytest.mark.slow
def test_a_sweep_goes_on_past_failed_and_diverged_jobs(tmp_path: Path) -> None:
    proc = run_sweep(
        "-m", "optimizer=sgd", "optimizer.lr=0.01,1e6", "model.activation=relu,nosuch",
        "trainer.epochs=3", "trainer.save_model=false", "hydra.sweep.dir=sw", cwd=tmp_path, check=False,
    )  # fmt: skip
    by_point = {(r["optimizer.lr"], r["model.activation"]): r for r in records_under(tmp_path / "sw")}
    assert by_point[(0.01, "relu")]["status"] == "completed"
    assert by_point[(0.01, "relu")]["epochs_run"] == 3
    assert by_point[(1e6, "relu")]["status"] == "diverged"
    assert by_point[(1e6, "relu")]["epochs_run"] == 1
    assert {by_point[(lr, "nosuch")]["status"] for lr in (0.01, 1e6)} == {"failed"}
    # the traceback goes to the failed job's log file, not to the console
    failed_dir = Path(by_point[(0.01, "nosuch")]["output_dir"])
    log_text = "".join(p.read_text() for p in failed_dir.glob("*.log"))
    assert "Traceback (most recent call last)" in log_text and "nosuch" in log_text
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "failed: InstantiationException" in proc.stdout + proc.stderr
    # the tables are written all the same; the last lines count the runs; failures make the exit code 1
    assert (tmp_path / "sw" / "results.csv").is_file() and (tmp_path / "sw" / "summary.csv").is_file()
    last = proc.stdout.strip().splitlines()[-2:]
    assert last[0].rsplit(" in ", 1)[0] == "4 runs: 1 completed, 2 failed, 1 diverged" and last[1].startswith("failed runs: see the error column")
    assert proc.returncode == 1


@pytest.mark.slow
def test_fail_on_error_false_exits_zero_and_diverged_runs_never_fail_a_sweep(tmp_path: Path) -> None:
    tolerant = run_sweep(
        "-m", "task=cluster", "model.n_clusters=1,4", "fail_on_error=false", "hydra.sweep.dir=a", cwd=tmp_path, check=False
    )
    assert tolerant.returncode == 0 and tolerant.stdout.strip().splitlines()[-2].rsplit(" in ", 1)[0] == "2 runs: 1 completed, 1 failed"
    diverged = run_sweep(
        "-m", *SGD_FIT, "optimizer.lr=1e6", "trainer.epochs=2", "trainer.save_model=false", "hydra.sweep.dir=b",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert diverged.returncode == 0 and diverged.stdout.strip().splitlines()[-1].rsplit(" in ", 1)[0] == "1 run: 0 completed, 1 diverged"


# ------------------------------------------------------------------------------- resume


def test_a_completed_record_is_reused_untouched_and_a_changed_value_is_not(tmp_path: Path) -> None:
    first = _job(["task=cluster", "model.n_clusters=3"], tmp_path)
    stat = (tmp_path / RECORD).stat()
    again = _job(["task=cluster", "model.n_clusters=3", "trainer.verbose=1"], tmp_path)  # verbosity: same run
    assert again["reused_from"] == str(tmp_path)
    assert (tmp_path / RECORD).stat().st_mtime_ns == stat.st_mtime_ns
    assert again["ari"] == first["ari"]
    (tmp_path / ".tmp-99999-centers.npy").write_bytes(b"half a file from a killed run")
    changed = _job(["task=cluster", "model.n_clusters=4"], tmp_path)
    assert not list(tmp_path.glob(".tmp-*"))
    assert "reused_from" not in changed and changed["model.n_clusters"] == 4
    assert json.loads((tmp_path / RECORD).read_text())["fingerprint"] == changed["fingerprint"] != first["fingerprint"]


def test_failed_and_diverged_records_are_never_reused(tmp_path: Path) -> None:
    for overrides in (["task=cluster", "model.n_clusters=1200"], [*SGD_FIT, "optimizer.lr=1e6", "trainer.epochs=1"]):
        first = _job(overrides, tmp_path)
        assert first["status"] in ("failed", "diverged")
        stat = (tmp_path / RECORD).stat()
        rerun = _job(overrides, tmp_path)
        assert "reused_from" not in rerun and rerun["status"] == first["status"]
        assert (tmp_path / RECORD).stat().st_mtime_ns != stat.st_mtime_ns


def test_a_record_moved_by_a_changed_grid_is_copied_from_its_sibling_dir(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sw"
    done = _job(["task=cluster", "model.n_clusters=5"], sweep_dir / "3", sweep_dir)
    copied = _job(["task=cluster", "model.n_clusters=5"], sweep_dir / "0", sweep_dir)
    assert copied["reused_from"] == str(sweep_dir / "3")
    on_disk = json.loads((sweep_dir / "0" / RECORD).read_text())
    assert on_disk["output_dir"] == str(sweep_dir / "0") and on_disk["ari"] == done["ari"]
    assert (sweep_dir / "0" / "centers.npy").read_bytes() == (sweep_dir / "3" / "centers.npy").read_bytes()


def test_a_stop_signal_that_a_library_swallowed_still_stops_the_next_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import sweep.app

    monkeypatch.setattr(sweep.app, "_stopped_by", None)
    previous = signal.signal(signal.SIGTERM, sweep.app._interrupt)
    try:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted at once by the handler's KeyboardInterrupt
        except BaseException:  # noqa: BLE001,S110  what a bare ``except:`` in a library does with it
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        sweep.app.stop_if_asked()  # what every job does first


def test_a_stop_signal_landing_in_a_finalizer_prints_no_traceback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Python cannot raise an exception from a weakref callback or ``__del__``; it prints it, unless sweep's hook takes it."""
    import sweep.app

    class Finalized:
        def __del__(self) -> None:
            sweep.app._interrupt(signal.SIGTERM, None)  # the handler, as if the signal arrived here

    monkeypatch.setattr(sweep.app, "_stopped_by", None)
    monkeypatch.setattr(sys, "unraisablehook", sweep.app._unraisable)
    Finalized()
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        sweep.app.stop_if_asked()  # what the next job does first


@pytest.mark.slow
def test_sigterm_stops_a_sweep_cleanly_and_a_rerun_resumes_it(tmp_path: Path) -> None:
    args = [*FIT, "seed=range(8)", "hydra.sweep.dir=sw"]
    proc = subprocess.Popen([SWEEP, "-m", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("sw/*/result.json"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in stderr and "hydra.sweep.dir=sw" in stderr
    assert "Traceback" not in stdout + stderr
    records = sorted(tmp_path.glob("sw/*/result.json"))
    assert 2 <= len(records) < 8
    before = {p: _but_run(json.loads(p.read_text())) for p in records}
    assert all(record["status"] == "completed" for record in before.values())  # whole, never partial
    assert not [p for p in tmp_path.rglob(".tmp-*")], "temporary files must not survive"

    resumed = run_sweep("-m", *args, cwd=tmp_path)
    assert resumed.stdout.count("reused completed run") + resumed.stderr.count("reused completed run") == len(before)
    for path, record in before.items():  # reused, not retrained: only the sweep run that last reused it changed
        assert _but_run(json.loads(path.read_text())) == record
    final = records_under(tmp_path / "sw")
    assert len(final) == 8 and {r["status"] for r in final} == {"completed"}
    assert sorted(r["seed"] for r in final) == list(range(8))


@pytest.mark.slow
def test_resume_with_the_joblib_launcher_reuses_unchanged_points_only(tmp_path: Path) -> None:
    joblib = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "task=cluster", "hydra.sweep.dir=sw"]
    run_sweep(*joblib, "model.n_clusters=3,4,5", cwd=tmp_path)
    before = {p.parent.name: _but_run(json.loads(p.read_text())) for p in tmp_path.glob("sw/*/result.json")}
    run_sweep(*joblib, "model.n_clusters=3,4,7", cwd=tmp_path)
    after = {p.parent.name: _but_run(json.loads(p.read_text())) for p in tmp_path.glob("sw/*/result.json")}
    assert after["0"] == before["0"] and after["1"] == before["1"]
    assert after["2"]["model.n_clusters"] == 7 and after["2"]["started_at"] >= before["2"]["started_at"]
    assert [r["model.n_clusters"] for r in records_under(tmp_path / "sw" / "kept")] == [5], "the run no longer swept is kept"
    assert all("reused completed run" in "".join(f.read_text() for f in (tmp_path / "sw" / n).glob("*.log")) for n in ("0", "1"))


# -------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_two_identical_sweeps_give_the_same_numbers_bit_for_bit(tmp_path: Path) -> None:
    # the batched graph and model.fit (an activation the graph does not have)
    grid = ["-m", "model.activation=relu,selu", "trainer.epochs=2", "trainer.save_model=false", "seed=7"]
    for name in ("a", "b"):
        run_sweep(*grid, f"hydra.sweep.dir={name}", cwd=tmp_path)
    for job in ("0", "1"):
        a, b = (json.loads((tmp_path / name / job / RECORD).read_text()) for name in ("a", "b"))
        assert "reused_from" not in b
        metrics = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_val_accuracy"]
        assert [a[m] for m in metrics] == [b[m] for m in metrics]
        assert (tmp_path / "a" / job / "history.csv").read_bytes() == (tmp_path / "b" / job / "history.csv").read_bytes()
        assert a["seed"] == 7 and a["trainer.deterministic"] is True
        assert {"tensorflow", "keras", "scikit-learn", "sweep"} <= set(a["versions"])


def test_op_determinism_can_be_switched_off(tmp_path: Path) -> None:
    from tensorflow.python.framework import config as tf_config

    record = _job([*FIT, "trainer.save_model=false", "trainer.deterministic=false"], tmp_path / "off")
    assert record["status"] == "completed" and record["trainer.deterministic"] is False
    assert not tf_config.is_op_determinism_enabled()
    _job([*FIT, "trainer.save_model=false"], tmp_path / "on")
    assert tf_config.is_op_determinism_enabled()


# ------------------------------------------------------------------------- flat memory


def test_model_fit_jobs_leave_no_gradient_registrations_behind(tmp_path: Path) -> None:
    """Every ``model.fit`` trace registers a custom gradient that pins its whole graph (~5 MB); reset drops them."""
    from tensorflow.python.framework import ops

    def registered() -> int:
        return sum(name.startswith("CustomGradient-") for name in ops._gradient_registry._registry)

    _job([*FIT, "trainer.save_model=false"], tmp_path / "0")
    after_one = registered()
    for n in range(1, 5):
        assert _job([*FIT, "trainer.save_model=false", f"seed={n}"], tmp_path / str(n))["status"] == "completed"
    assert registered() <= after_one
