"""The scaling table (issue 17): wall time, per-job overhead, training GFLOP/s and peak RSS as jobs and epochs grow.

Sweeps of 40 jobs (W2's grid), 300 (W3's) and 3,000 (W3's crossed with ``seed=range(10)``),
each at 10 and 30 epochs, with sweep's default launcher; ``hydra/launcher=basic`` runs the
40- and 300-job ones (3,000 jobs one by one would take it most of an hour on 2 cores). Each
sweep is a fresh ``sweep -m`` process. Its columns:

- ``train_s``: the records' fit times summed (a population's time is shared among its members);
- ``overhead_ms``: the wall time less ``train_s``, per job: start-up, composing, recording and
  whatever of them training did not hide;
- ``gflops``: the matmul FLOPs (:func:`benchmarks.floor.flops`) over ``train_s``;
- ``sweep_rss_mb`` and ``trainer_rss_mb``: the peak RSS of the sweep process itself and of
  its largest child (the trainer process), each its own high-water mark (``VmHWM``), read
  from ``/proc`` while it runs.

Cost that grows with the arithmetic, not with the job count, shows as an overhead per job
that falls or stays as jobs grow, and a sweep RSS that does not grow with them.

    python -m benchmarks.scaling [--quick] [--csv FILE]   (--quick: 4 and 8 jobs, 1 and 2 epochs)
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import commit, floor
from benchmarks.contenders import SWEEP, sweep_records
from benchmarks.w3 import W3
from benchmarks.workloads import WORKLOADS, Workload

CSV = Path(__file__).with_name("scaling.csv")
COLUMNS = ["launcher", "jobs", "epochs", "wall_s", "train_s", "overhead_ms", "gflops", "sweep_rss_mb", "trainer_rss_mb"]
#: How often the running sweep's processes are looked at for their high-water marks.
POLL_S = 0.2


@dataclass(frozen=True)
class Size:
    """One row's sweep: ``workload`` (its grid and folds) crossed with ``seeds`` seeds, at ``epochs``, by ``launcher``."""

    launcher: str  # default or basic
    workload: Workload
    seeds: int = 1

    @property
    def jobs(self) -> int:
        return self.workload.fits * self.seeds

    def overrides(self, sweep_dir: Path) -> list[str]:
        seeds = [f"seed=range({self.seeds})"] if self.seeds > 1 else []
        launcher = ["hydra/launcher=basic"] if self.launcher == "basic" else []
        return [*self.workload.sweep_overrides(), *seeds, *launcher, f"hydra.sweep.dir={sweep_dir}"]


def sizes(quick: bool) -> list[Size]:
    """The table's sweeps, smallest first."""
    if quick:
        small = Workload("S", lrs=(1e-2,), l2s=(0.0,), dropouts=(0.0,), folds=4, epochs=1)
        grid = [(small, 1), (small, 2)]
        epochs, basic_up_to = (1, 2), 4
    else:
        grid = [(WORKLOADS["W2"], 1), (W3, 1), (W3, 10)]
        epochs, basic_up_to = (10, 30), 300
    found = []
    for launcher in ("default", "basic"):
        for workload, seeds in grid:
            for n in epochs:
                size = Size(launcher, replace(workload, epochs=n), seeds)
                if launcher == "default" or size.jobs <= basic_up_to:
                    found.append(size)
    return found


def measure(size: Size, tmp: Path) -> dict[str, Any]:
    """Run ``size``'s sweep in a fresh process: its row of the table."""
    sweep_dir = tmp / f"{size.launcher}-{size.jobs}-{size.workload.epochs}"
    wall, peaks = watched([SWEEP, "-m", *size.overrides(sweep_dir)], tmp, sweep_dir.with_suffix(".log"))
    records = [record for _, record in sweep_records(sweep_dir)]
    if len(records) != size.jobs or any(r["status"] != "completed" for r in records):
        raise RuntimeError(f"{sweep_dir.name}: {len(records)} records of {size.jobs}, not all completed")
    train_s = sum(r["fit_time_s"] for r in records)
    epochs = size.workload.epochs
    sweep_rss, *children = peaks
    return {
        "launcher": size.launcher, "jobs": size.jobs, "epochs": epochs, "wall_s": wall, "train_s": train_s,
        "overhead_ms": (wall - train_s) / size.jobs * 1e3,
        "gflops": floor.flops(size.jobs, floor.ROWS, floor.VAL_ROWS, epochs) / train_s / 1e9,
        "sweep_rss_mb": sweep_rss, "trainer_rss_mb": max(children, default=0.0),
    }  # fmt: skip


def watched(cmd: list[str], cwd: Path, log: Path) -> tuple[float, list[float]]:
    """Run ``cmd`` to completion, its output in ``log``: its wall time and the peak RSS in MB of it, then of each child it had."""
    peaks: dict[int, float] = {}
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while proc.poll() is None:
            for pid in [proc.pid, *_children(proc.pid)]:
                peaks[pid] = max(peaks.get(pid, 0.0), _high_water_mb(pid))
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return wall, [peaks.pop(proc.pid, 0.0), *peaks.values()]


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _high_water_mb(pid: int) -> float:
    """``pid``'s peak RSS so far (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def report(rows: list[dict[str, Any]]) -> str:
    """The table, one sweep a line."""
    lines = ["scaling     launcher   jobs  epochs   wall s  train s  overhead ms/job  GFLOP/s  sweep RSS MB  trainer RSS MB"]
    for r in rows:
        lines.append(
            f"            {r['launcher']:<8} {r['jobs']:>6} {r['epochs']:>7} {r['wall_s']:>8.1f} {r['train_s']:>8.1f} "
            f"{r['overhead_ms']:>16.1f} {r['gflops']:>8.1f} {r['sweep_rss_mb']:>13.0f} {r['trainer_rss_mb']:>15.0f}"
        )
    return "\n".join(lines)


def bench(quick: bool = False, out: Path = CSV, commit: str = "") -> list[dict[str, Any]]:
    """Measure every size of the table and append its rows to ``out``."""
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        rows = [measure(size, Path(tmp)) for size in sizes(quick)]
    new = not out.exists()
    with open(out, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["timestamp", "commit", "mode", "cpus", *COLUMNS])
        if new:
            writer.writeheader()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        for row in rows:
            writer.writerow({"timestamp": stamp, "commit": commit, "mode": "quick" if quick else "full", "cpus": os.cpu_count(), **row})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 and 8 jobs at 1 and 2 epochs")
    parser.add_argument("--csv", type=Path, default=CSV, help="where to append the rows (default benchmarks/scaling.csv)")
    args = parser.parse_args(argv)
    rows = bench(args.quick, args.csv, commit())
    print(report(rows))
    return rows


if __name__ == "__main__":
    main()
