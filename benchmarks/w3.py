"""W3 (issue 17): a 300-job sweep, ``optimizer.lr`` 5 values x ``regularizer.l2`` 4 x ``regularizer.dropout`` 3 x 5 folds, 10 epochs.

sweep's default ``sweep -m`` runs it end to end, once, in a fresh process. The hand-written
loop is not run on it (some 300 fits of about a second): its cost is linear in fits, so
W3's loop time is the W2 loop's fixed part (its process start and data, the W2 wall time
less its fits) plus its mean fit times W3's fits, both measured in the same run. Reported:
wall time, the ratio to that loop (target <= 0.03), the time from launch to the first
record, the peak RSS of its largest process, and the best fold-mean validation accuracy.
It also reports the training's GFLOP/s beside the floor's (:mod:`benchmarks.floor`: a minimal
batched kernel timed warm on an idle machine, one population of W3's size, the faster of one
intra-op thread and one per core; target: within 2x). The training time is the records' fit
times, which share each population's time among its members. It is reported in two ways: all
populations, and all but the first, which traces the graph while the launcher composes the
later jobs. Both run beside the launcher recording jobs.

    python -m benchmarks.w3 [--quick]   (with the loop timed on W2 first)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import floor
from benchmarks.contenders import ROOT, run
from benchmarks.workloads import QUICK as QUICK_WORKLOADS
from benchmarks.workloads import WORKLOADS, Workload
from hydra_plugins.sweep_vectorized.vectorized_launcher import VectorizedLauncherConf

W3 = Workload("W3", lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2), l2s=(0.0, 1e-4, 1e-3, 1e-2), dropouts=(0.0, 0.25, 0.5), folds=5)
QUICK = Workload("W3", lrs=(1e-3, 1e-2), l2s=(0.0, 1e-2), dropouts=(0.0,), folds=5, epochs=2)


def loop_estimate(loop_s: float, loop_fit_s: float, loop_fits: int, fits: int) -> float:
    """The loop's time for ``fits`` fits, from a run of ``loop_fits`` fits of mean ``loop_fit_s`` in ``loop_s``: its fixed part, plus a fit each.

    A lower bound: building and compiling each fit's model fall outside its fit time, in
    the fixed part, and are not scaled up with the fits.
    """
    return loop_s - loop_fits * loop_fit_s + fits * loop_fit_s


def bench(loop_s: float, loop_fit_s: float, quick: bool = False) -> dict[str, Any]:
    """Run W3 with sweep's default launcher once; its columns of the benchmark's CSV row, against the W2 loop's ``loop_s`` and mean ``loop_fit_s``."""
    workload = QUICK if quick else W3
    loop_fits = (QUICK_WORKLOADS if quick else WORKLOADS)["W2"].fits
    with tempfile.TemporaryDirectory(prefix="sweep-w3-") as tmp:
        result = run("sweep-default", workload, quick, Path(tmp))
        population = workload.fits // -(-workload.fits // MAX_POPULATION)  # the launcher's near-equal chunks
        floor_gflops = max(_floor(population, workload.epochs, threads, Path(tmp)) for threads in {1, os.cpu_count() or 1})
    loop = loop_estimate(loop_s, loop_fit_s, loop_fits, workload.fits)
    train_s, warm_s = sum(result.fit_s), sum(result.fit_s[population:])  # fit_s: in the order the records were written
    train_gflops = floor.flops(workload.fits, floor.ROWS, floor.VAL_ROWS, workload.epochs) / train_s / 1e9
    warm_gflops = floor.flops(workload.fits - population, floor.ROWS, floor.VAL_ROWS, workload.epochs) / warm_s / 1e9 if warm_s else float("nan")
    return {
        "W3_jobs": workload.fits, "W3_configs": len(workload.configs), "W3_epochs": workload.epochs, "W3_sweep_s": result.wall_s, "W3_loop_estimate_s": loop, "W3_sweep_over_loop": result.wall_s / loop,
        "W3_first_record_s": result.extra["first_job_s"], "W3_sweep_rss_mb": result.extra["peak_rss_mb"], "W3_sweep_acc": result.best,
        "W3_train_s": train_s, "W3_train_gflops": train_gflops, "W3_train_warm_gflops": warm_gflops, "W3_floor_gflops": floor_gflops,
        "W3_floor_over_train": floor_gflops / train_gflops, "W3_floor_over_warm": floor_gflops / warm_gflops,
    }  # fmt: skip


#: The default launcher's ``max_population``.
MAX_POPULATION = VectorizedLauncherConf.max_population


def _floor(members: int, epochs: int, threads: int, tmp: Path) -> float:
    """The floor's GFLOP/s (:mod:`benchmarks.floor`) for one population of ``members`` with ``threads`` intra-op threads, in a fresh process."""
    out = tmp / f"floor-{threads}.json"
    args = ["--members", str(members), "--epochs", str(epochs), "--threads", str(threads)]  # a W3 fold's rows: the floor's defaults
    subprocess.run([sys.executable, "-m", "benchmarks.floor", *args, "--json", str(out)], cwd=ROOT, check=True, capture_output=True)
    return json.loads(out.read_text())["floor_gflops"]


def report(row: dict[str, Any]) -> str:
    """W3's lines of the benchmark's report."""
    return "\n".join([
        f"W3             {row['W3_jobs']} jobs ({row['W3_configs']} configs x 5 folds, {row['W3_epochs']} epochs), sweep -m with its default launcher",
        f"  sweep {row['W3_sweep_s']:.1f} s (first record {row['W3_first_record_s']:.1f} s after launch, largest process's peak RSS {row['W3_sweep_rss_mb']:.0f} MB, "
        f"best val acc {row['W3_sweep_acc']:.4f})  loop, from W2's: {row['W3_loop_estimate_s']:.0f} s",
        f"  sweep/loop {row['W3_sweep_over_loop']:.3f}x (target <= 0.03)",
        f"  training {row['W3_train_s']:.1f} s, {row['W3_train_gflops']:.1f} GFLOP/s ({row['W3_train_warm_gflops']:.1f} after the first population); "
        f"the floor (a minimal batched kernel, warm, machine idle) {row['W3_floor_gflops']:.1f} GFLOP/s: "
        f"{row['W3_floor_over_train']:.1f}x ({row['W3_floor_over_warm']:.1f}x) (target <= 2)",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w3", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 configs x 5 folds, 2 epochs")
    args = parser.parse_args(argv)
    w2 = (QUICK_WORKLOADS if args.quick else WORKLOADS)["W2"]
    with tempfile.TemporaryDirectory(prefix="sweep-w3-loop-") as tmp:
        loop = run("loop", w2, args.quick, Path(tmp))
    row = bench(loop.wall_s, sum(loop.fit_s) / len(loop.fit_s), args.quick)
    print(report(row))
    return row


if __name__ == "__main__":
    main()
