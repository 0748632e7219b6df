"""Speed-up of a population against one-member populations, by population size.

A single fit is a population of one (:mod:`sweep.engines.graph`): what a job trains on its
own, e.g. under ``hydra/launcher=basic``. This takes the first M (config, fold) members of W2
and trains them in one process both ways: one after another, each as
``sweep.run.train([cfg], [check(cfg)])`` (its one-member graph already traced, as in a long
sweep), and as one population of M, ``sweep.run.train(members, ...)`` (timed cold, trace
included, and warm); and times the trace of the population's graph alone
(:func:`sweep.engines.graph.compiled` of its :class:`~sweep.engines.graph.Plan`). Prints the
table, how many members got the same bits both ways (val/train loss and accuracy), and each
config's largest gap in mean validation accuracy between the two.

    python -m benchmarks.population [--sizes 1 5 10 20 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.contenders import COMPARED, population_configs
from benchmarks.workloads import WORKLOADS


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    from sweep.engines import Member, graph
    from sweep.run import check, train

    parser = argparse.ArgumentParser(prog="python -m benchmarks.population", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    args = parser.parse_args(argv)
    cfgs = population_configs(WORKLOADS["W2"])

    def members_of(cfgs: list) -> list[Member]:
        return [Member(cfg, data.x, data.y, fold.train, fold.val, fold.index) for cfg in cfgs for data, folds in [check(cfg)] for fold in folds]

    def warm_singles(cfgs: list) -> None:
        """Trace each one-member graph ``cfgs`` need (one per :class:`Plan`: dropout, L1, L2 on or off), untimed."""
        seen = set()
        for cfg, member in zip(cfgs, members_of(cfgs)):
            plan = graph.Plan.of([member])
            if plan not in seen:
                seen.add(plan)
                train([cfg], [check(cfg)])

    def metrics(fit) -> list[str]:
        return [repr(fit.metrics[name]) for name in COMPARED]

    rows = []
    for size in args.sizes:
        members = cfgs[:size]
        warm_singles(members)  # as in a long sweep; the previous size's cold runs cleared the cache
        start = time.perf_counter()
        ordinary = [train([cfg], [check(cfg)])[0].fits[0][1] for cfg in members]
        ordinary_s = time.perf_counter() - start
        graph.compiled.cache_clear()  # cold: this size's graph traced as part of the run
        start = time.perf_counter()
        train(members, [check(cfg) for cfg in members], max_population=size)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = [done.fits[0][1] for done in train(members, [check(cfg) for cfg in members], max_population=size)]
        warm_s = time.perf_counter() - start
        if {fit.population_size for fit in ours} != {size} or {fit.population_size for fit in ordinary} != {1}:
            raise RuntimeError(f"M={size}: the members did not train as one population of {size} and as populations of one")
        plan = graph.Plan.of(members_of(members))
        graph.compiled.cache_clear()
        start = time.perf_counter()
        graph.compiled(plan)
        trace_s = time.perf_counter() - start
        same = sum(metrics(a) == metrics(b) for a, b in zip(ours, ordinary))
        accs = [[fit.metrics["val_accuracy"] for fit in fits] for fits in (ours, ordinary)]
        gap = np.abs(np.subtract(*accs)).reshape(-1, min(size, 5)).mean(axis=1).max() * 100
        rows.append(
            {"M": size, "ordinary_s": ordinary_s, "cold_s": cold_s, "warm_s": warm_s, "trace_s": trace_s, "bitwise_equal": same, "max_config_gap_points": gap}
        )
        print(
            f"M={size:3d}  one-member populations {ordinary_s:6.2f} s  population of {size} cold {cold_s:5.2f} s ({ordinary_s / cold_s:5.1f}x)  "
            f"warm {warm_s:5.2f} s ({ordinary_s / warm_s:5.1f}x)  trace {trace_s:4.2f} s  cold - warm {cold_s - warm_s:4.2f} s  "
            f"members bitwise equal {same}/{size}  largest per-config accuracy gap {gap:.3f} points",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
