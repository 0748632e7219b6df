"""Speed-up of a population (``sweep.population``) against the ordinary compiled path, by population size.

Takes the first M (config, fold) members of W2 and trains them in one process both ways:
one after another through ``sweep.run._fit_folds`` (the compiled graph, already traced)
and as one population (timed cold, trace included, and warm), and times the trace of the
population's graph alone (``get_concrete_function``); prints the table and each config's
largest gap in mean validation accuracy between the two paths.

    python -m benchmarks.population [--sizes 1 5 10 20 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.contenders import population_configs
from benchmarks.workloads import WORKLOADS


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    from sweep import population
    from sweep.population import fit_population
    from sweep.run import _fit_folds, check
    from sweep.tasks import compiled

    parser = argparse.ArgumentParser(prog="python -m benchmarks.population", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    args = parser.parse_args(argv)
    cfgs = population_configs(WORKLOADS["W2"])
    _fit_folds(cfgs[0], *check(cfgs[0]))  # the ordinary graph traced once, as in a long sweep
    rows = []
    for size in args.sizes:
        members = cfgs[:size]
        start = time.perf_counter()
        ordinary = [_fit_folds(cfg, *check(cfg))[0][1].metrics["val_accuracy"] for cfg in members]
        ordinary_s = time.perf_counter() - start
        start = time.perf_counter()
        fit_population(members)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = [runs[0][1].metrics["val_accuracy"] for runs in fit_population(members)]
        warm_s = time.perf_counter() - start
        data, [fold] = check(members[0])
        n_classes = population._n_classes(data, fold)
        hp = np.array([compiled.hyperparameters(cfg) for cfg in members], np.float32)
        shape = compiled.Shape.of(members[0], data.x.shape[1:], n_classes)
        population._population_graph.cache_clear()
        flags = (bool(hp[:, k].any()) for k in (3, 1, 2))  # dropout, l1, l2
        graph = population._population_graph(shape, size, *flags, compiled.Rule.of(members[0]))
        start = time.perf_counter()
        graph.get_concrete_function()
        trace_s = time.perf_counter() - start
        gap = np.abs(np.subtract(ours, ordinary)).reshape(-1, min(size, 5)).mean(axis=1).max() * 100
        rows.append({"M": size, "ordinary_s": ordinary_s, "cold_s": cold_s, "warm_s": warm_s, "trace_s": trace_s, "max_config_gap_points": gap})
        print(
            f"M={size:3d}  ordinary {ordinary_s:6.2f} s  population cold {cold_s:5.2f} s ({ordinary_s / cold_s:5.1f}x)  "
            f"warm {warm_s:5.2f} s ({ordinary_s / warm_s:5.1f}x)  trace {trace_s:4.2f} s  cold - warm {cold_s - warm_s:4.2f} s  largest per-config accuracy gap {gap:.3f} points",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
