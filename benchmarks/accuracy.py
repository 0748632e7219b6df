"""Does sweep's reused graph learn as well as ``model.fit``? ``python -m benchmarks.accuracy [--seeds N]``.

One seed's validation accuracy on digits' 287-row holdout moves by a point or more from seed to
seed (one row is 0.35 points), so a single run per contender cannot tell a real difference from
a lucky draw. This trains a few W1 configs with seeds ``0..N-1`` both ways, sweep's compiled path
and ``model.fit`` (:func:`sweep.tasks.classify.fit_keras`), and prints each config's
mean validation accuracy with its standard error.
"""

from __future__ import annotations

import argparse
import statistics

CONFIGS = [
    ("optimizer.lr=0.001", "regularizer.l2=0", "regularizer.dropout=0"),
    ("optimizer.lr=0.01", "regularizer.l2=0", "regularizer.dropout=0.5"),
    ("optimizer.lr=0.001", "regularizer.l2=0.01", "regularizer.dropout=0.5"),
]


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    seeds = range(parser.parse_args(argv).seeds)

    from sweep.backend import reset, seed_everything
    from sweep.config import compose
    from sweep.data import load_dataset
    from sweep.splits import make_folds
    from sweep.tasks.classify import classify, fit_keras

    found: dict[str, dict[str, list[float]]] = {}
    for overrides in CONFIGS:
        label = " ".join(o.split(".", 1)[1] for o in overrides)
        found[label] = {"sweep": [], "model.fit": []}
        for seed in seeds:
            cfg = compose(*overrides, f"seed={seed}", "trainer.save_model=false")
            data = load_dataset(cfg.dataset)
            (fold,) = make_folds(cfg.validation, data.y)
            rows = (data.x[fold.train], data.y[fold.train], data.x[fold.val], data.y[fold.val])
            for path, task in (("sweep", classify), ("model.fit", fit_keras)):
                reset()
                seed_everything(seed)
                found[label][path].append(task(cfg, *rows).metrics["val_accuracy"])
        cells = []
        for path, accs in found[label].items():
            sem = statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else float("nan")
            cells.append(f"{path} {statistics.mean(accs):.4f} +- {sem:.4f}")
        print(f"{label:<20}  " + "   ".join(cells), flush=True)
    return found


if __name__ == "__main__":
    main()
