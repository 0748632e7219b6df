"""Where a job's time goes, piece by piece, in one fresh process: ``python -m benchmarks.profile``.

Times the pieces of a W1 job (the tutorial MLP on digits, holdout, 10 epochs, batch 32):
imports, Hydra composition, the dataset, ``model.fit`` (build and compile, first epoch,
later epochs) against sweep's batched graph (a population of one: the first fit, its trace
included, and later fits), reset and seeding, writing ``model.keras`` and the record.
Medians over ``--repeats``; milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn`` over ``repeats`` calls (ms), and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), result


def _from_template(overrides: list[str], repeats: int) -> float:
    """Median ms for the grid sweeper's loader to give a job's config once its template exists."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from sweep.compose_once import ComposeOnce
    from sweep.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        loader = ComposeOnce(GlobalHydra.instance().config_loader())
        master = loader.load_configuration("config", ["hydra.sweep.dir=profile"], RunMode.MULTIRUN)
        loader.load_sweep_config(master, [*overrides, "seed=0"])  # the template: Hydra composes it
        seeds = iter(range(1, repeats + 1))
        ms, _ = _ms(lambda: loader.load_sweep_config(master, [*overrides, f"seed={next(seeds)}"]), repeats)
    return ms


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    n = parser.parse_args(argv).repeats
    out: dict[str, float] = {}

    out["import hydra + sweep"], _ = _ms(lambda: __import__("sweep.run"), 1)
    from sweep.backend import keras, reset, seed_everything

    out["import tensorflow + keras"], _ = _ms(keras, 1)
    from sweep.config import compose
    from sweep.data import _load, load_dataset
    from sweep.engines import Member, fit_members, graph
    from sweep.engines.keras_fit import build_model
    from sweep.records import write_record
    from sweep.splits import make_folds

    overrides = ("optimizer.lr=0.001", "regularizer.l2=0.01", "regularizer.dropout=0.5")
    out["hydra composition (per compose)"], cfg = _ms(lambda: compose(*overrides), n)
    out["job config from a template (grid sweeper)"] = _from_template(list(overrides), n)
    _load.cache_clear()
    out["dataset load, first"], data = _ms(lambda: load_dataset(cfg.dataset), 1)
    out["dataset load, cached"], _ = _ms(lambda: load_dataset(cfg.dataset), n)
    out["splits"], (fold,) = _ms(lambda: make_folds(cfg.validation, data.y), n)
    rows = (data.x[fold.train], data.y[fold.train], data.x[fold.val], data.y[fold.val])
    member = Member(cfg, data.x, data.y, fold.train, fold.val, fold.index)
    out["reset + seed"], _ = _ms(lambda: (reset(), seed_everything(cfg.seed)), n)

    # model.fit, as the tutorial (and sweep before issue 6) runs it
    epochs: list[list[float]] = []

    class Clock(keras().callbacks.Callback):
        def on_train_begin(self, logs=None):
            epochs.append([])

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epochs[-1].append(1000 * (time.perf_counter() - self.start))

    def keras_fit() -> None:
        reset()
        seed_everything(cfg.seed)
        model = build_model(cfg, rows[0].shape[1:], 10)
        model.fit(rows[0], rows[1], epochs=10, batch_size=32, validation_data=rows[2:], verbose=0, callbacks=[Clock()])

    out["model.fit: build + compile"], _ = _ms(lambda: build_model(cfg, rows[0].shape[1:], 10), n)
    out["model.fit: whole fit"], _ = _ms(keras_fit, min(n, 3))
    out["model.fit: first epoch (tracing)"] = statistics.median(e[0] for e in epochs)
    out["model.fit: each later epoch"] = statistics.median(t for e in epochs for t in e[1:])

    # sweep's path: the batched graph for a population of one, traced once per plan and reused
    graph.compiled.cache_clear()
    out["sweep fit: first (trace + compile)"], [fitted] = _ms(lambda: fit_members([member]), 1)
    out["sweep fit: each later fit"], [fitted] = _ms(lambda: fit_members([member]), n)
    if fitted.trained_by != "graph":
        raise RuntimeError(f"trained by {fitted.trained_by}, not the graph: {fitted.graph_unsupported}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        out["write model.keras"], _ = _ms(lambda: fitted.artifacts["model.keras"](str(path / "model.keras")), n)
        out["write result.json"], _ = _ms(lambda: write_record(path, {"status": "completed", **fitted.metrics}), n)

    width = max(map(len, out))
    for name, value in out.items():
        print(f"{name:<{width}}  {value:8.1f} ms")
    return out


if __name__ == "__main__":
    main()
