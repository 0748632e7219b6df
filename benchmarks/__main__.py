"""``make bench``: sweep against a hand-written Keras loop and keras-tuner on the tutorial's grid.

Runs W1 (8 configs, holdout) and W2 (8 configs x 5 folds) with every contender in a
fresh process, alternating the contenders round by round so that a busy machine slows
them alike; prints wall times, the ratios sweep/loop and sweep/keras-tuner (median over
rounds of the per-round ratios), each contender's best mean validation accuracy, sweep's
per-job overhead outside ``fit`` and peak RSS; appends one row to ``benchmarks/results.csv``.
The contenders include ``population`` (:func:`sweep.run.train` called directly),
``sweep-basic`` (the real ``sweep -m ... hydra/launcher=basic``: jobs one by one, each a
population of one; the CSV's ``*_sweep_*`` columns and the per-job overheads are its) and
``sweep-vectorized`` (``sweep -m ... hydra/launcher=vectorized``, sweep's default launcher, end
to end). W2's records of the two launchers are compared bit for bit (``W2_records_bitwise_equal``).

Then W3 (:mod:`benchmarks.w3`, once): 300 jobs with the default launcher, against the loop's time
estimated from its W2 run; W5 (:mod:`benchmarks.w5`, once): successive halving against the full grid, keras-tuner's
Hyperband and Optuna's TPE with its HyperbandPruner, 60 configs x 5 folds up to 27 epochs;
and W6 (:mod:`benchmarks.w6`, once): the tutorial's grid on 60,000 rows of 28x28, time and peak
memory against the hand-written loop.

    python -m benchmarks [--quick] [--rounds N] [--csv FILE] [--no-memory] [--no-w3] [--no-w5] [--no-w6]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import commit, scaling, w3, w5, w6
from benchmarks.contenders import Result, run
from benchmarks.workloads import QUICK, WORKLOADS

CSV = Path(__file__).with_name("results.csv")

#: Accuracies of the contenders must agree within this many points.
AGREEMENT_POINTS = 1.5

COLUMNS = [
    "timestamp", "commit", "mode", "rounds", "cpus", "load_1m",
    "tensorflow", "keras",
    "W1_loop_s", "W1_tuner_s", "W1_sweep_s", "W1_sweep_over_loop", "W1_sweep_over_tuner",
    "W1_loop_acc", "W1_tuner_acc", "W1_sweep_acc", "W1_loop_seed1_acc",
    "W2_loop_s", "W2_sweep_s", "W2_sweep_over_loop", "W2_loop_acc", "W2_sweep_acc",
    "W2_joblib_s", "W2_joblib_speedup", "W2_joblib_acc", "W2_joblib_bound",
    "W2_hydra_sweeper_s", "W2_grid_sweeper_speedup",
    "W1_population_s", "W1_population_over_loop", "W1_population_acc",
    "W2_population_s", "W2_population_over_loop", "W2_population_acc",
    "W1_vectorized_s", "W1_vectorized_over_loop", "W1_vectorized_acc",
    "W2_vectorized_s", "W2_vectorized_over_loop", "W2_vectorized_acc", "W2_records_bitwise_equal",
    "overhead_per_job_ms", "in_job_overhead_ms", "first_job_s", "fit_first_s", "fit_rest_ms",
    "loop_fit_mean_s",
    "peak_rss_loop_mb", "peak_rss_tuner_mb", "peak_rss_sweep_mb", "peak_rss_vectorized_mb",
    "rss_10_jobs_mb", "rss_50_jobs_mb", "rss_growth_mb",
    "acc_agree",
    *(f"W5_{name}_{what}" for name in ("grid", "halving", "tuner", "optuna") for what in ("s", "acc", "own_acc", "epochs", "config")),
    "W5_halving_over_grid", "W5_halving_over_tuner", "W5_halving_over_optuna", "W5_halving_gap_points",
    "W5_winner_equals_grid_record", "W5_halving_jobs", "W5_tuner_trials", "W5_optuna_trials",
    *(f"W5_{name}_{what}" for name in ("optuna", "optuna2") for what in ("version", "early_acc", "early_s", "final_acc", "search_s")),
    "W3_jobs", "W3_configs", "W3_epochs", "W3_sweep_s", "W3_loop_estimate_s", "W3_sweep_over_loop", "W3_first_record_s", "W3_sweep_rss_mb", "W3_sweep_acc",
    "W3_train_s", "W3_train_gflops", "W3_train_warm_gflops", "W3_floor_gflops", "W3_floor_over_train", "W3_floor_over_warm",
    "W6_rows", "W6_configs", "W6_epochs", "W6_dataset_mb", "W6_loop_s", "W6_sweep_s", "W6_sweep_over_loop",
    "W6_loop_rss_mb", "W6_sweep_rss_mb", "W6_sweep_rss_over_loop", "W6_loop_acc", "W6_sweep_acc",
]


def _has_joblib_launcher() -> bool:
    return importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is not None


def _contenders(workload: str, full: bool = True) -> list[str]:
    """The contenders of ``workload``; the quick mode leaves out joblib and the seed calibration."""
    names = ["loop", "tuner", "sweep-basic", "population"] if workload == "W1" else ["loop", "sweep-basic", "population"]
    names.append("sweep-vectorized")
    if workload == "W1" and full:
        names.append("loop-seed1")
    if workload == "W2":
        names.append("sweep-hydra-sweeper")
        if full and _has_joblib_launcher():
            names.append("sweep-joblib")
    return names


JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
#: Extra ``sweep -m`` overrides of the sweep contenders. Each names its launcher: the default
#: (``conf/config.yaml``) is ``hydra/launcher=vectorized``.
OVERRIDES = {
    "sweep-basic": ["hydra/launcher=basic"],
    "sweep-joblib": JOBLIB,
    "sweep-vectorized": ["hydra/launcher=vectorized"],
    # Hydra's own sweeper, composing every job from scratch; against sweep-basic, only the sweeper differs
    "sweep-hydra-sweeper": ["hydra/launcher=basic", "hydra/sweeper=basic"],
}
#: Short names of those contenders in the CSV columns (``sweep``: the basic launcher, as in every earlier row).
SHORT = {
    "sweep-basic": "sweep",
    "sweep-joblib": "joblib",
    "sweep-vectorized": "vectorized",
    "sweep-hydra-sweeper": "hydra_sweeper",
    "loop-seed1": "loop_seed1",
}
#: Contenders that calibrate the others rather than compete: left out of the accuracy agreement.
CALIBRATION = ("loop_seed1",)


def _versions() -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("tensorflow", "keras")}


def _memory() -> dict[str, float]:
    """Peak RSS of 10- and 50-job sweeps from ``benchmarks/memory.py`` (issue 4), when it exists."""
    if importlib.util.find_spec("benchmarks.memory") is None:
        return {}
    from benchmarks import memory

    found = memory.main([])
    return {
        "rss_10_jobs_mb": found.get("peak_rss_mb_10_jobs"),
        "rss_50_jobs_mb": found.get("peak_rss_mb_50_jobs"),
        "rss_growth_mb": found.get("peak_rss_growth_mb"),
    }


def bench(quick: bool, rounds: int, memory: bool) -> dict[str, Any]:
    """Run every contender on W1 and W2 ``rounds`` times, alternating; return one CSV row."""
    workloads = QUICK if quick else WORKLOADS
    results: dict[tuple[str, str], list[Result]] = {}
    row: dict[str, Any] = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "mode": "quick" if quick else "full",
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
        **_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        for r in range(rounds):
            for name, workload in workloads.items():
                names = _contenders(name, full=not quick)
                names = names[r % len(names) :] + names[: r % len(names)]  # a different one goes first each round
                for contender in names:
                    round_dir = Path(tmp) / f"round{r}"
                    round_dir.mkdir(exist_ok=True)
                    overrides = OVERRIDES.get(contender, [])
                    result = run(contender, workload, quick, round_dir, overrides)
                    results.setdefault((name, contender), []).append(result)
                    print(f"  round {r + 1}/{rounds} {name} {contender:<16} {result.wall_s:7.2f} s  best acc {result.best:.4f}", flush=True)

    def wall(w: str, c: str) -> float:
        return statistics.median(res.wall_s for res in results[(w, c)])

    def ratio(w: str, a: str, b: str) -> float:
        return statistics.median(x.wall_s / y.wall_s for x, y in zip(results[(w, a)], results[(w, b)]))

    def acc(w: str, c: str) -> float:
        return results[(w, c)][-1].best

    for w in workloads:
        for c in _contenders(w, full=not quick):
            short = SHORT.get(c, c)
            row[f"{w}_{short}_s"] = wall(w, c)
            row[f"{w}_{short}_acc"] = acc(w, c)
        row[f"{w}_sweep_over_loop"] = ratio(w, "sweep-basic", "loop")
        row[f"{w}_population_over_loop"] = ratio(w, "population", "loop")
        row[f"{w}_vectorized_over_loop"] = ratio(w, "sweep-vectorized", "loop")
    row["W1_sweep_over_tuner"] = ratio("W1", "sweep-basic", "tuner")
    sweep_w2 = results[("W2", "sweep-basic")]
    if ("W2", "sweep-joblib") in results:
        row["W2_joblib_speedup"] = ratio("W2", "sweep-basic", "sweep-joblib")
        row["W2_joblib_bound"] = statistics.median(parallel_bound(res, workers=2) for res in sweep_w2)
    if ("W2", "sweep-hydra-sweeper") in results:
        row["W2_grid_sweeper_speedup"] = ratio("W2", "sweep-hydra-sweeper", "sweep-basic")
    row["W2_records_bitwise_equal"] = bitwise_equal(results[("W2", "sweep-vectorized")], sweep_w2)
    row["overhead_per_job_ms"] = 1000 * statistics.median(res.extra["overhead_per_job_s"] for res in sweep_w2)
    row["in_job_overhead_ms"] = 1000 * statistics.median(res.extra["in_job_overhead_s"] for res in sweep_w2)
    row["first_job_s"] = statistics.median(res.extra["first_job_s"] for res in sweep_w2)
    row["fit_first_s"] = statistics.median(res.extra["fit_first_s"] for res in sweep_w2)
    row["fit_rest_ms"] = 1000 * statistics.median(res.extra["fit_rest_mean_s"] for res in sweep_w2)
    row["loop_fit_mean_s"] = statistics.median(statistics.mean(res.fit_s) for res in results[("W2", "loop")])
    for c in ("loop", "tuner", "sweep-basic", "sweep-vectorized"):
        row[f"peak_rss_{SHORT.get(c, c)}_mb"] = max(res.extra["peak_rss_mb"] for (w, name), rs in results.items() if name == c for res in rs)
    row["acc_agree"] = all(
        (max(accs) - min(accs)) * 100 <= AGREEMENT_POINTS
        for w in workloads
        for accs in [
            [v for k, v in row.items() if k.startswith(f"{w}_") and k.endswith("_acc") and k[len(w) + 1 : -4] not in CALIBRATION]
        ]
    )
    if memory:
        row.update(_memory())
    return row


def bitwise_equal(ours: list[Result], basic: list[Result]) -> str:
    """``"<equal>/<runs>"``: of the runs (config, fold) of ``basic`` (a basic-launcher sweep), how many
    ``ours`` recorded with the same bits of every :data:`~benchmarks.contenders.COMPARED` metric, in every round.

    A record's floats are written as ``repr`` (``json``), which reads back to the same bits.
    """
    def bits(res: Result, run: str) -> list[str] | None:
        values = res.records.get(run)
        return None if values is None else [repr(v) for v in values]  # repr: 0.0 and -0.0 differ, as their bits do

    runs = set().union(*(res.records for res in basic))
    equal = sum(all(bits(b, run) is not None and bits(o, run) == bits(b, run) for o, b in zip(ours, basic)) for run in runs)
    return f"{equal}/{len(runs)}"


def parallel_bound(basic: Result, workers: int) -> float:
    """The most ``workers`` processes could speed up ``basic`` (a basic-launcher sweep), by Amdahl's law.

    Each worker is a fresh process that pays what ``basic`` paid before its first record
    (interpreter, Hydra, TensorFlow import, the first trace: ``first_job_s``) before its own
    jobs; only the rest, the later jobs, is shared out. Launching costs nothing here, so the
    real speed-up is lower still.
    """
    first = basic.extra["first_job_s"]
    return basic.wall_s / (first + (basic.wall_s - first) / workers)


def report(row: dict[str, Any]) -> str:
    """The row as a short human-readable table."""

    def f(k: str, fmt: str = ".2f") -> str:
        v = row.get(k)
        return "n/a" if v is None or v == "" else format(v, fmt) if isinstance(v, float) else str(v)

    lines = [
        f"sweep benchmark ({row['mode']}, {row['rounds']} round(s), {row['cpus']} CPUs, load {row['load_1m']}, "
        f"TF {row['tensorflow']}, Keras {row['keras']}, commit {row['commit']})",
        f"W1 wall s      loop {f('W1_loop_s')}  keras-tuner {f('W1_tuner_s')}  sweep (basic launcher) {f('W1_sweep_s')}",
        f"W1 ratios      sweep/loop {f('W1_sweep_over_loop')}  sweep/keras-tuner {f('W1_sweep_over_tuner')}  (sweep: basic launcher; target <= 0.6)",
        f"W1 best acc    loop {f('W1_loop_acc', '.4f')}  keras-tuner {f('W1_tuner_acc', '.4f')}  sweep (basic launcher) {f('W1_sweep_acc', '.4f')}  "
        f"(the loop seeded 1 instead of 0: {f('W1_loop_seed1_acc', '.4f')})",
        f"W2 wall s      loop {f('W2_loop_s')}  sweep (basic launcher) {f('W2_sweep_s')}  sweep joblib(2) {f('W2_joblib_s')}  "
        f"sweep with hydra/sweeper=basic (basic launcher) {f('W2_hydra_sweeper_s')}",
        f"W2 ratios      sweep/loop {f('W2_sweep_over_loop')}  basic/joblib(2) speed-up {f('W2_joblib_speedup')}  (sweep: basic launcher; targets <= 0.6, >= 1.6; "
        f"at most {f('W2_joblib_bound')} when each worker pays the start-up)  grid sweeper's speed-up over Hydra's {f('W2_grid_sweeper_speedup')}",
        f"W2 best acc    loop {f('W2_loop_acc', '.4f')}  sweep (basic launcher) {f('W2_sweep_acc', '.4f')}  joblib {f('W2_joblib_acc', '.4f')}",
        f"population     W1 {f('W1_population_s')} s ({f('W1_population_over_loop')} x loop)  W2 {f('W2_population_s')} s "
        f"({f('W2_population_over_loop')} x loop, target <= 0.10)  best acc W1 {f('W1_population_acc', '.4f')}  W2 {f('W2_population_acc', '.4f')}",
        f"vectorized     sweep -m ... hydra/launcher=vectorized (the default): W1 {f('W1_vectorized_s')} s ({f('W1_vectorized_over_loop')} x loop)  "
        f"W2 {f('W2_vectorized_s')} s ({f('W2_vectorized_over_loop')} x loop, target <= 0.10)  "
        f"best acc W1 {f('W1_vectorized_acc', '.4f')}  W2 {f('W2_vectorized_acc', '.4f')}",
        f"W2 records default vs basic: {row.get('W2_records_bitwise_equal', 'n/a')} bitwise equal (val_loss, val_accuracy, train_loss, train_accuracy; every round)",
        f"accuracies agree within {AGREEMENT_POINTS} points: {row['acc_agree']}",
        f"sweep per job  (basic launcher) overhead outside fit {f('overhead_per_job_ms', '.1f')} ms (target <= 50)  "
        f"inside run_job {f('in_job_overhead_ms', '.1f')} ms  fit: first {f('fit_first_s')} s, later {f('fit_rest_ms', '.0f')} ms "
        f"(loop: {f('loop_fit_mean_s')} s per fit)",
        f"sweep start    (basic launcher) process start to first record {f('first_job_s')} s",
        f"peak RSS MB    loop {f('peak_rss_loop_mb', '.0f')}  keras-tuner {f('peak_rss_tuner_mb', '.0f')}  sweep (basic launcher) {f('peak_rss_sweep_mb', '.0f')}  "
        f"vectorized {f('peak_rss_vectorized_mb', '.0f')}",
        f"RSS MB         10 jobs {f('rss_10_jobs_mb', '.0f')}  50 jobs {f('rss_50_jobs_mb', '.0f')}  growth {f('rss_growth_mb', '.0f')}",
    ]
    return "\n".join(lines)


def append_csv(row: dict[str, Any], path: Path) -> None:
    """Append ``row`` to ``path`` (header first if the file is new); floats rounded for reading.

    A file whose header is not :data:`COLUMNS` (written before columns were added) is first
    rewritten under the current header, its old rows keeping their values by column name.
    """
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as old:
            reader = csv.DictReader(old)
            rows = list(reader) if reader.fieldnames != COLUMNS else None
        if rows is not None:
            with open(path, "w", newline="") as out:
                writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
    with open(path, "a", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 configs (W1), 1 config x 5 folds (W2), 2 epochs, 1 round, no joblib or memory runs")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2, quick 1)")
    parser.add_argument("--csv", type=Path, default=CSV, help="where to append the row (default benchmarks/results.csv)")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS-growth sweeps of benchmarks/memory.py")
    parser.add_argument("--no-w3", action="store_true", help="skip W3, the 300-job sweep of benchmarks/w3.py (about 20 s on 2 cores)")
    parser.add_argument("--no-w5", action="store_true", help="skip W5, the multi-fidelity search of benchmarks/w5.py (about 17 minutes on 2 cores)")
    parser.add_argument("--no-w6", action="store_true", help="skip W6, the tutorial's grid on 60,000 rows of benchmarks/w6.py (about 8 minutes on 2 cores)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table of benchmarks/scaling.py (about 15 minutes on 2 cores)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    started = time.perf_counter()
    row = bench(args.quick, rounds, memory=not (args.no_memory or args.quick))
    if not args.no_w3:
        row |= w3.bench(row["W2_loop_s"], row["loop_fit_mean_s"], args.quick)
    if not args.no_w5:
        row |= w5.bench(args.quick)
    if not args.no_w6:
        row |= w6.bench(args.quick)
    print(report(row))
    if not args.no_w3:
        print(w3.report(row))
    if not args.no_w5:
        print(w5.report(row))
    if not args.no_w6:
        print(w6.report(row))
    if not args.no_scaling:
        print(scaling.report(scaling.bench(args.quick, args.csv.with_name("scaling.csv"), row["commit"])))
    append_csv(row, args.csv)
    print(f"appended to {args.csv} ({time.perf_counter() - started:.0f} s in all)")
    return row


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
