"""Flat memory: peak RSS of a 10-job and a 50-job sweep, each run by the basic launcher in one process.

Every job trains a fresh one-epoch MLP on digits and saves it, so anything a job leaves
behind (Keras graphs, layers, cached data, log handlers) would pile up over 50 jobs. The
sweeps pass ``hydra/launcher=basic`` (the default, ``vectorized``, would train the jobs
together as one population). Both training paths are measured: ``graph``, the tutorial MLP
with Adam on sweep's batched graph (each job a population of one, :mod:`sweep.engines.graph`;
one traced graph per process), and ``fit``, ``model.fit``, which traces new graphs every job
(the selu activation, which the graph does not have: it keeps the runs on ``model.fit``, as
the tests' ``MODEL_FIT`` does). Every record must name
its path's engine (``trained_by``).
Each sweep is its own ``sweep -m`` process; its peak RSS is read from the kernel's
accounting of that child (``os.wait4``), so nothing is sampled and nothing is missed.

    python -m benchmarks.memory            # prints the figures
    python -m benchmarks.memory --jobs 10 50 --limit-mb 100 --paths fit
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The growth from the small to the large sweep that counts as a leak.
LIMIT_MB = 100.0

#: Training path -> the overrides that select it.
PATHS = {
    "graph": ["optimizer=adam"],
    "fit": ["model.activation=selu"],
}
#: Training path -> the engine its records must name (``trained_by``).
ENGINES = {"graph": "graph", "fit": "model.fit"}
#: Every sweep's launcher: the jobs one by one in the sweep's process.
LAUNCHER = "hydra/launcher=basic"


def sweep_command() -> str:
    """The ``sweep`` console script next to this interpreter."""
    return str(Path(sys.executable).with_name("sweep"))


def peak_rss_mb(jobs: int, workdir: Path, overrides: list[str] = ()) -> tuple[float, float, int, set[str]]:
    """Run a ``jobs``-job sweep (seeds 0..jobs-1, 1 epoch) in a child process; return (peak RSS MB, seconds, records, their engines)."""
    out = workdir / f"jobs{jobs}"
    args = [
        sweep_command(),
        "-m",
        LAUNCHER,
        *overrides,
        f"seed=range({jobs})",
        "trainer.epochs=1",
        f"hydra.sweep.dir={out}",
        "hydra/job_logging=none",
    ]
    start = time.perf_counter()
    with open(workdir / f"jobs{jobs}.log", "w") as log:
        child = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {child.returncode}; see {workdir / f'jobs{jobs}.log'}")
    records = [json.loads(path.read_text()) for path in out.rglob("result.json")]
    return usage.ru_maxrss / 1024, seconds, len(records), {r.get("trained_by") for r in records}  # Linux reports KiB


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    """Measure, print one line per sweep and the growth per path; return the figures (MB, seconds).

    Keys: ``<path>_peak_rss_mb_<n>_jobs``, ``<path>_seconds_<n>_jobs``, ``<path>_peak_rss_growth_mb``
    per path (``graph``, ``fit``), and ``peak_rss_mb_<n>_jobs``/``peak_rss_growth_mb`` of the
    path that grew most (named by ``worst_path``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs=2, default=(10, 50), metavar=("SMALL", "LARGE"))
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    opts = parser.parse_args(argv)
    small, large = opts.jobs
    figures: dict[str, float | str] = {}
    for path in opts.paths:
        with tempfile.TemporaryDirectory(prefix="sweep-memory-") as tmp:
            for jobs in (small, large):
                rss, seconds, records, engines = peak_rss_mb(jobs, Path(tmp), PATHS[path])
                if records != jobs:
                    raise RuntimeError(f"the {jobs}-job sweep wrote {records} records")
                if engines != {ENGINES[path]}:
                    raise RuntimeError(f"the {path} path's {jobs}-job sweep was trained by {sorted(map(str, engines))}, not {ENGINES[path]}")
                figures[f"{path}_peak_rss_mb_{jobs}_jobs"] = round(rss, 1)
                figures[f"{path}_seconds_{jobs}_jobs"] = round(seconds, 1)
                print(f"memory [{path}]: {jobs:>3} jobs, basic launcher: peak RSS {rss:7.1f} MB ({seconds:.0f}s)", flush=True)
        growth = figures[f"{path}_peak_rss_mb_{large}_jobs"] - figures[f"{path}_peak_rss_mb_{small}_jobs"]
        figures[f"{path}_peak_rss_growth_mb"] = round(growth, 1)
        verdict = "flat" if growth < opts.limit_mb else "LEAK"
        print(f"memory [{path}]: {large} vs {small} jobs: {growth:+.1f} MB (limit {opts.limit_mb:.0f} MB): {verdict}", flush=True)
    # Unprefixed keys: the path that grew most, for harnesses that report one figure each.
    worst = max(opts.paths, key=lambda path: figures[f"{path}_peak_rss_growth_mb"])
    for key in (f"peak_rss_mb_{small}_jobs", f"peak_rss_mb_{large}_jobs", "peak_rss_growth_mb"):
        figures[key] = figures[f"{worst}_{key}"]
    figures["worst_path"] = worst
    return figures


if __name__ == "__main__":
    main()
