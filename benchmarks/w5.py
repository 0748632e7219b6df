"""W5 (issue 14): successive halving against the full grid, keras-tuner's Hyperband and Optuna's TPE with its HyperbandPruner.

The tutorial's search widened to 60 configs (``optimizer.lr`` 5 values x ``regularizer.l2`` 4 x
``regularizer.dropout`` 3) x 5 folds, up to 27 epochs, on digits. Each contender runs once, in a
fresh process, and its wall time includes its own start-up:

* ``grid``: ``sweep -m`` over the 60 configs, all 27 epochs (sweep's default launcher; each
  config one job training its 5 folds in-process, ``validation.fold=null``);
* ``halving``: the same command with ``hparams_search=halving`` (factor 3);
* ``tuner``: keras-tuner's ``Hyperband(max_epochs=27, factor=3)`` over the same space, on a
  holdout split (keras-tuner has no cross-validation: a fifth of the training);
* ``optuna``: Optuna's TPE sampler with its ``HyperbandPruner`` (1 to 27 epochs, factor 3)
  around a plain Keras loop on the same holdout, ``TRIALS`` trials, on the installed Optuna;
* ``optuna2``: the same on Optuna 2.10 (what hydra-optuna-sweeper pinned), from the dir
  ``make bench`` installs it into (:data:`OPTUNA2`; skipped when it is absent). Both report
  their best after ``EARLY`` trials and after all, with the time each took.

Every contender's choice is scored alike: the grid's record of that config (its 5-fold mean
validation accuracy after 27 epochs). The target: halving's choice within 0.5 points of the
grid's best, in at most 0.3x the grid's wall time and 0.25x keras-tuner's and Optuna's.

    python -m benchmarks.w5 [--quick]          # the four contenders, a table
    python -m benchmarks.w5 child tuner|optuna|optuna2 OUT [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.contenders import ROOT, SWEEP, _quiet_tf, config_key, key, measured, sweep_records, tutorial_model
from benchmarks.workloads import Workload, folds

W5 = Workload("W5", lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2), l2s=(0.0, 1e-4, 1e-3, 1e-2), dropouts=(0.0, 0.25, 0.5), folds=5, epochs=27)
QUICK = Workload("W5", lrs=(1e-3, 1e-2), l2s=(0.0,), dropouts=(0.0, 0.5), folds=5, epochs=3)
#: Optuna's trials: as many as the grid has configs (TPE may draw a config twice).
TRIALS = 60
#: The trials after which Optuna's best so far is reported too.
EARLY = 20
#: Optuna 2.10 installed apart (``pip install --target``; ``make bench`` does), put first on the optuna2 child's path.
OPTUNA2 = ROOT / ".venv" / "optuna2"
FACTOR = 3
#: How far (points of accuracy) halving's choice may be from the grid's best.
WITHIN_POINTS = 0.5


@dataclass
class Outcome:
    """One contender's run: its wall time, the config it chose, and what it says of it."""

    wall_s: float
    chosen: str  # key(lr, l2, dropout)
    own_score: float  # the contender's own best score (holdout for keras-tuner and Optuna)
    extra: dict[str, Any]


def _overrides(workload: Workload) -> list[str]:
    """``sweep -m`` overrides of ``workload`` with every config's folds in one job (``validation.fold=null``)."""
    return [o for o in workload.sweep_overrides() if not o.startswith("validation.fold=")] + ["validation.fold=null"]


# ------------------------------------------------------------------- child processes


def _holdout(workload: Workload) -> tuple:
    """``x``, ``y`` and the one (train rows, validation rows) split keras-tuner and Optuna search on: W1's holdout."""
    return folds(Workload("holdout", workload.lrs, workload.l2s, workload.dropouts, None))


def tuner(workload: Workload) -> dict[str, Any]:
    """keras-tuner's ``Hyperband`` on the holdout split: its best config, score, trials and model-epochs trained."""
    _quiet_tf()
    import keras
    import keras_tuner

    x, y, [(train, val)] = _holdout(workload)

    def build(hp):
        values = hp.Choice("lr", list(workload.lrs)), hp.Choice("l2", list(workload.l2s)), hp.Choice("dropout", list(workload.dropouts))
        return tutorial_model(*values, x.shape[1:])

    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        search = keras_tuner.Hyperband(
            build, objective="val_accuracy", max_epochs=workload.epochs, factor=FACTOR, seed=0, directory=tmp, project_name="w5", overwrite=True
        )
        search.search(x[train], y[train], batch_size=workload.batch_size, validation_data=(x[val], y[val]), verbose=0)
        [best] = search.oracle.get_best_trials(1)
        trials = list(search.oracle.trials.values())
        epochs = sum(t.hyperparameters.values["tuner/epochs"] - t.hyperparameters.values["tuner/initial_epoch"] for t in trials)
    hp = best.hyperparameters.values
    return {"chosen": key(hp["lr"], hp["l2"], hp["dropout"]), "own_score": float(best.score), "trials": len(trials), "epochs": epochs}


def optuna_tpe(workload: Workload) -> dict[str, Any]:
    """Optuna's TPE with its ``HyperbandPruner`` around ``model.fit`` on the holdout split: the best config, score, trials and epochs."""
    _quiet_tf()
    import keras
    import optuna

    x, y, [(train, val)] = _holdout(workload)
    epochs_trained = []

    class Prune(keras.callbacks.Callback):
        """Report each epoch's validation accuracy to the trial; stop the fit when the pruner says so."""

        def __init__(self, trial: Any) -> None:
            super().__init__()
            self.trial, self.pruned, self.epochs = trial, False, 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epochs = epoch + 1
            self.trial.report(float(logs["val_accuracy"]), epoch + 1)
            if self.trial.should_prune():
                self.pruned = self.model.stop_training = True

    def objective(trial: Any) -> float:
        values = (trial.suggest_categorical(name, list(grid)) for name, grid in (("lr", workload.lrs), ("l2", workload.l2s), ("dropout", workload.dropouts)))
        keras.utils.set_random_seed(0)
        model, prune = tutorial_model(*values, x.shape[1:]), Prune(trial)
        history = model.fit(
            x[train], y[train], epochs=workload.epochs, batch_size=workload.batch_size, validation_data=(x[val], y[val]), verbose=0, callbacks=[prune]
        )
        epochs_trained.append(prune.epochs)
        if prune.pruned:
            raise optuna.TrialPruned()
        return float(history.history["val_accuracy"][-1])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=workload.epochs, reduction_factor=FACTOR)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0), pruner=pruner)
    early, started = (EARLY, 2) if workload is W5 else (2, 2), time.perf_counter()
    at_early: dict[str, Any] = {}

    def note_early(study: Any, trial: Any) -> None:
        if len(study.trials) == early[0] and study.best_trial is not None:
            at_early.update(chosen_early=_chosen(study.best_trial.params), early_s=time.perf_counter() - started)

    study.optimize(objective, n_trials=TRIALS if workload is W5 else 4, callbacks=[note_early])
    return {"chosen": _chosen(study.best_trial.params), "own_score": study.best_value, "trials": len(study.trials), "epochs": sum(epochs_trained),
            "version": optuna.__version__, "search_s": time.perf_counter() - started, **at_early}  # fmt: skip


def _chosen(params: dict[str, Any]) -> str:
    return key(params["lr"], params["l2"], params["dropout"])


CHILDREN = {"tuner": tuner, "optuna": optuna_tpe, "optuna2": optuna_tpe}


# ---------------------------------------------------------------------- parent side


def _child(name: str, quick: bool, tmp: Path) -> Outcome:
    out = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "benchmarks.w5", "child", name, str(out), *(["--quick"] if quick else [])]
    env = {"PYTHONPATH": os.pathsep.join([str(OPTUNA2), str(ROOT)])} if name == "optuna2" else None
    wall, rss = measured(cmd, ROOT, tmp / f"{name}.log", env=env)
    data = json.loads(out.read_text())
    return Outcome(wall, data.pop("chosen"), data.pop("own_score"), {**data, "peak_rss_mb": rss})


def _sweep(name: str, workload: Workload, tmp: Path, extra: list[str]) -> tuple[Outcome, list[dict]]:
    """Run ``sweep -m`` on ``workload`` (plus ``extra``); its outcome and every record."""
    sweep_dir = tmp / name
    wall, rss = measured([SWEEP, "-m", *_overrides(workload), *extra, f"hydra.sweep.dir={sweep_dir}"], tmp, tmp / f"{name}.log")
    records = [record for _, record in sweep_records(sweep_dir)]
    failed = [r for r in records if r["status"] != "completed"]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} of {len(records)} records not completed")
    last = [r for r in records if r["trainer.epochs"] == workload.epochs]
    best = max(last, key=lambda r: r["val_accuracy"])
    chosen = config_key(best)
    epochs = workload.folds * sum(r["trainer.epochs"] - r.get("resumed_epochs", 0) for r in records)  # model-epochs
    return Outcome(wall, chosen, best["val_accuracy"], {"jobs": len(records), "epochs": epochs, "peak_rss_mb": rss}), records


def bench(quick: bool = False) -> dict[str, Any]:
    """Run the four contenders once each; return W5's columns of the benchmark's CSV row."""
    workload = QUICK if quick else W5
    with tempfile.TemporaryDirectory(prefix="sweep-w5-") as tmp:
        grid, records = _sweep("grid", workload, Path(tmp), [])
        halving, rungs = _sweep("halving", workload, Path(tmp), ["hparams_search=halving"])
        tuner_, optuna_ = _child("tuner", quick, Path(tmp)), _child("optuna", quick, Path(tmp))
        optuna2 = _child("optuna2", quick, Path(tmp)) if (OPTUNA2 / "optuna").is_dir() else None
    truth = {config_key(r): r for r in records}
    row: dict[str, Any] = {}
    for name, outcome in (("grid", grid), ("halving", halving), ("tuner", tuner_), ("optuna", optuna_)):
        row |= {f"W5_{name}_s": outcome.wall_s, f"W5_{name}_acc": truth[outcome.chosen]["val_accuracy"], f"W5_{name}_epochs": outcome.extra["epochs"]}
        row[f"W5_{name}_own_acc"] = outcome.own_score
        row[f"W5_{name}_config"] = outcome.chosen
    for name in ("grid", "tuner", "optuna"):
        row[f"W5_halving_over_{name}"] = halving.wall_s / row[f"W5_{name}_s"]
    row["W5_halving_gap_points"] = 100 * (row["W5_grid_acc"] - row["W5_halving_acc"])
    winner = next(r for r in rungs if r["trainer.epochs"] == workload.epochs and config_key(r) == halving.chosen)
    row["W5_winner_equals_grid_record"] = all(repr(winner[m]) == repr(truth[halving.chosen][m]) for m in ("val_accuracy", "val_loss", "train_loss"))
    row["W5_halving_jobs"], row["W5_tuner_trials"], row["W5_optuna_trials"] = halving.extra["jobs"], tuner_.extra["trials"], optuna_.extra["trials"]
    for name, outcome in (("optuna", optuna_), ("optuna2", optuna2)):
        if outcome is not None:
            row |= _optuna_columns(name, outcome, truth)
    return row


def _optuna_columns(name: str, outcome: Outcome, truth: dict[str, dict]) -> dict[str, Any]:
    """An Optuna contender's version and its choice after ``EARLY`` trials and after all, each scored by the grid's record, with its search time."""
    columns = {f"W5_{name}_version": outcome.extra["version"], f"W5_{name}_search_s": outcome.extra["search_s"]}
    columns[f"W5_{name}_final_acc"] = truth[outcome.chosen]["val_accuracy"]
    if "chosen_early" in outcome.extra:
        columns[f"W5_{name}_early_acc"] = truth[outcome.extra["chosen_early"]]["val_accuracy"]
        columns[f"W5_{name}_early_s"] = outcome.extra["early_s"]
    return columns


def report(row: dict[str, Any]) -> str:
    """W5's lines of the benchmark's report."""
    lines = ["W5             60 configs x 5 folds, up to 27 epochs (each choice scored by the grid's 5-fold record of it)"]
    for name, label in (("grid", "sweep full grid"), ("halving", "sweep halving"), ("tuner", "keras-tuner Hyperband"), ("optuna", "Optuna TPE+Hyperband")):
        ratio = "" if name == "halving" else f"  halving/this {row[f'W5_halving_over_{name}']:.2f}"
        lines.append(
            f"  {label:<22} {row[f'W5_{name}_s']:7.1f} s  {row[f'W5_{name}_epochs']:5d} model-epochs  chose {row[f'W5_{name}_config']:<16} "
            f"5-fold acc {row[f'W5_{name}_acc']:.4f}  own {row[f'W5_{name}_own_acc']:.4f}{ratio}"
        )
    for name in ("optuna", "optuna2"):
        if f"W5_{name}_version" in row:
            lines.append(
                f"  Optuna {row[f'W5_{name}_version']:<8} TPE: 5-fold acc of its best after {EARLY} trials {row.get(f'W5_{name}_early_acc', float('nan')):.4f} "
                f"({row.get(f'W5_{name}_early_s', float('nan')):.1f} s), after {row['W5_optuna_trials']} {row[f'W5_{name}_final_acc']:.4f} ({row[f'W5_{name}_search_s']:.1f} s)"
            )
    if "W5_optuna2_version" not in row:
        lines.append(f"  Optuna 2 not run: install it with make bench (into {OPTUNA2.relative_to(ROOT)})")
    lines.append(
        f"  halving: {row['W5_halving_gap_points']:.2f} points below the grid's best (target <= {WITHIN_POINTS}), "
        f"{row['W5_halving_over_grid']:.2f}x the grid (<= 0.3), {row['W5_halving_over_tuner']:.2f}x keras-tuner and "
        f"{row['W5_halving_over_optuna']:.2f}x Optuna (<= 0.25); its winner's record equals the grid's: {row['W5_winner_equals_grid_record']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w5", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 configs, 3 epochs, 4 Optuna trials: a smoke test")
    parser.add_argument("child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _, name, out = args.child
        Path(out).write_text(json.dumps(CHILDREN[name](QUICK if args.quick else W5)))
        return {}
    row = bench(args.quick)
    print(report(row))
    return row


if __name__ == "__main__":
    main()
