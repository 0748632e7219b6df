"""``hydra/launcher=vectorized`` trains its populations in a child process that imports TensorFlow while the launcher composes the jobs.

The child is forked as the launch starts (Linux only, and only while TensorFlow is not yet
imported: never inside this pytest process, so these tests run real sweeps in
subprocesses). What a sweep writes does not depend on where its populations trained, and
a child that dies or a sweep that is interrupted loses nothing already recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import SWEEP, records_under, run_sweep
from test_launchers import VOLATILE
from test_vectorized_launcher import EIGHT_JOBS  # one population of 8 jobs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the trainer process is forked on Linux only"),
]

IN_CHILD = "in the trainer process"


def _stable(record: dict) -> dict:
    """``record`` without what differs between two runs of one config (times, dirs, versions, the ``hydra`` node)."""
    return {k: v for k, v in record.items() if not any(word in k for word in VOLATILE) and k != "hydra"}


def _weights(job_dir: Path) -> bytes:
    with zipfile.ZipFile(job_dir / "model.keras") as archive:
        return archive.read("model.weights.h5")


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _start(*args: str, cwd: Path) -> tuple[subprocess.Popen, int]:
    """Start ``sweep -m <args>`` and wait for its trainer process; return both."""
    proc = subprocess.Popen([SWEEP, "-m", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        if children:
            return proc, children[0]
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no trainer process started\n{proc.communicate()}")


def test_a_sweep_writes_the_same_records_and_models_whether_its_population_trains_in_the_child_or_here(tmp_path: Path) -> None:
    child = run_sweep("-m", *EIGHT_JOBS, "hydra/launcher=vectorized", "hydra.sweep.dir=child", cwd=tmp_path)
    here = run_sweep("-m", *EIGHT_JOBS, "hydra/launcher=vectorized", "hydra.launcher.trainer_process=false", "hydra.sweep.dir=here", cwd=tmp_path)
    assert "trained a population of 8 jobs" in child.stderr + child.stdout and IN_CHILD in child.stderr + child.stdout
    assert "trained a population of 8 jobs" in here.stderr + here.stdout and IN_CHILD not in here.stderr + here.stdout
    expected, got = records_under(tmp_path / "here"), records_under(tmp_path / "child")
    assert [record["status"] for record in got] == ["completed"] * 8
    for num, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert _stable(have) == _stable(want)
        assert _weights(tmp_path / "child" / str(num)) == _weights(tmp_path / "here" / str(num))
    assert not list((tmp_path / "child").glob(".trainer-*")), "staged models are moved into the job dirs or removed"


def test_if_the_trainer_process_dies_its_jobs_train_here(tmp_path: Path) -> None:
    proc, trainer = _start(*EIGHT_JOBS, "hydra/launcher=vectorized", "hydra.sweep.dir=sw", cwd=tmp_path)
    os.kill(trainer, signal.SIGKILL)  # still importing TensorFlow: nothing has trained yet
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "the trainer process ended (exit code -9); its jobs run one by one" in stdout + stderr
    records = records_under(tmp_path / "sw")
    assert [record["status"] for record in records] == ["completed"] * 8
    assert all((tmp_path / "sw" / str(num) / "model.keras").is_file() for num in range(8))
    assert [record["population_size"] for record in records] == [1] * 8  # each trained on its own


def test_an_interrupted_sweep_ends_its_trainer_process_and_leaves_no_staged_files(tmp_path: Path) -> None:
    proc, trainer = _start(*EIGHT_JOBS, "hydra/launcher=vectorized", "hydra.sweep.dir=sw", cwd=tmp_path)
    time.sleep(0.5)  # the launcher is composing the jobs, the child importing TensorFlow
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM; finished runs are kept" in stderr
    assert not Path(f"/proc/{trainer}").exists() or "Z" in Path(f"/proc/{trainer}/stat").read_text().split()[2]
    assert not list((tmp_path / "sw").glob(".trainer-*"))
    assert records_under(tmp_path / "sw") == []


def test_every_rung_of_a_halving_search_trains_in_one_trainer_process(tmp_path: Path) -> None:
    """The launcher keeps its child from launch to launch: a search of many rungs imports TensorFlow once, not once a rung."""
    from test_halving import GRID  # 8 configs x 3 folds: rungs of 3 and 9 epochs, two launches

    proc, trainer = _start("hparams_search=halving", *GRID, "hydra.sweep.dir=sw", cwd=tmp_path)
    seen = {trainer}
    while proc.poll() is None:
        seen |= set(_children(proc.pid))
        time.sleep(0.05)
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert seen == {trainer}, "one trainer process served both rungs"
    records = records_under(tmp_path / "sw")
    assert sorted(r["trainer.epochs"] for r in records) == [3] * 24 + [9] * 9
    assert all(r["status"] == "completed" and r["population_size"] > 1 for r in records)
    assert not list((tmp_path / "sw").glob(".trainer-*")), "the sweeper ended it and its staging dir"
