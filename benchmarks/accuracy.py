"""Does sweep's batched graph learn as well as ``model.fit``? ``python -m benchmarks.accuracy [--seeds N]``.

One seed's validation accuracy on digits' 287-row holdout moves by a point or more from seed to
seed (one row is 0.35 points), so a single run per contender cannot tell a real difference from
a lucky draw. This trains a few W1 configs with seeds ``0..N-1`` both ways, as sweep trains one
(:func:`sweep.engines.fit_members`: the batched graph, a population of one) and with ``model.fit``
(:func:`sweep.engines.keras_fit.fit_keras`), and prints each config's mean validation accuracy
with its standard error.
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

    from sweep.config import compose
    from sweep.data import load_dataset
    from sweep.engines import Member, fit_members
    from sweep.engines.keras_fit import fit_keras
    from sweep.splits import make_folds

    def graph_fit(member: Member):
        [fitted] = fit_members([member])
        if fitted.trained_by != "graph":
            raise RuntimeError(f"trained by {fitted.trained_by}, not the graph: {fitted.graph_unsupported}")
        return fitted

    found: dict[str, dict[str, list[float]]] = {}
    for overrides in CONFIGS:
        label = " ".join(o.split(".", 1)[1] for o in overrides)
        found[label] = {"sweep": [], "model.fit": []}
        for seed in seeds:
            cfg = compose(*overrides, f"seed={seed}", "trainer.save_model=false")
            data = load_dataset(cfg.dataset)
            (fold,) = make_folds(cfg.validation, data.y)
            member = Member.of_arrays(cfg, data.x[fold.train], data.y[fold.train], data.x[fold.val], data.y[fold.val])
            for path, fit in (("sweep", graph_fit), ("model.fit", fit_keras)):  # each seeds itself from cfg.seed
                found[label][path].append(fit(member).metrics["val_accuracy"])
        cells = []
        for path, accs in found[label].items():
            sem = statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else float("nan")
            cells.append(f"{path} {statistics.mean(accs):.4f} +- {sem:.4f}")
        print(f"{label:<20}  " + "   ".join(cells), flush=True)
    return found


if __name__ == "__main__":
    main()
