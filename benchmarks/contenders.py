"""The contenders, each run as a fresh process so every wall time includes its own start-up.

* ``loop``: the tutorial's own style, a Python loop of ``model.fit`` calls on a fresh
  ``keras.Sequential`` per config and fold; ``loop-seed1`` is the same loop seeded 1 instead
  of 0, to show how far a contender's best accuracy moves with the seed alone;
* ``tuner``: keras-tuner ``GridSearch`` over the same grid (holdout workloads only);
* ``population``: every config and fold as one population (:func:`sweep.run.train`), called
  directly (process start-up, TensorFlow import and trace included; no launcher, no records);
* ``sweep``: the real ``sweep -m ...`` command with the overrides it is given: ``sweep-basic``
  (``hydra/launcher=basic``: the jobs one by one, each a population of one),
  ``sweep-vectorized`` (``hydra/launcher=vectorized``, sweep's default launcher: the
  populations end to end, with Hydra composing every job and every job writing its record),
  ``sweep-joblib`` (``hydra/launcher=joblib``), ``sweep-hydra-sweeper`` (``hydra/sweeper=basic``:
  Hydra's own sweeper instead of sweep's grid sweeper, under the basic launcher).

``python -m benchmarks.contenders loop|tuner|population W1|W2 [--quick] [--seed N] OUT`` runs one
of the child contenders and writes its result as JSON to ``OUT``; :func:`run` is the parent's side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import ROOT
from benchmarks.workloads import QUICK, WORKLOADS, Workload, folds

SWEEP = str(Path(sys.executable).with_name("sweep"))


@dataclass
class Result:
    """What one contender did on one workload."""

    contender: str
    workload: str
    wall_s: float
    accuracy: dict[str, float]  # "lr,l2,dropout" -> final-epoch val_accuracy, mean over folds
    fit_s: list[float]  # per fit (loop, tuner) or per job (sweep)
    extra: dict[str, Any] = field(default_factory=dict)
    #: sweep contenders: per run (:func:`run_key`), its record's :data:`COMPARED` metrics as written
    records: dict[str, list[float]] = field(default_factory=dict)

    @property
    def best(self) -> float:
        """The best config's mean validation accuracy."""
        return max(self.accuracy.values())


def key(lr: float, l2: float, dropout: float) -> str:
    """One config as a dict key shared by every contender."""
    return f"{float(lr):g},{float(l2):g},{float(dropout):g}"


# ------------------------------------------------------------------- child processes


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def tutorial_model(lr: float, l2: float, dropout: float, input_shape: tuple[int, ...]):
    """The tutorial's MLP: Flatten, Dense(128, relu) with an optional L2 penalty and dropout, softmax; Adam."""
    import keras
    from keras import layers, regularizers

    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),
            layers.Dense(128, activation="relu", kernel_regularizer=regularizers.l2(l2) if l2 else None),
            *([layers.Dropout(dropout)] if dropout else []),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def loop(workload: Workload, seed: int = 0) -> dict[str, Any]:
    """A hand-written loop in the tutorial's style: a fresh model per config and fold, ``model.fit`` with validation data."""
    _quiet_tf()
    import keras

    x, y, parts = folds(workload)
    accuracy, fit_s = {}, []
    for lr, l2, dropout in workload.configs:
        scores = []
        for train, val in parts:
            keras.utils.set_random_seed(seed)
            model = tutorial_model(lr, l2, dropout, x.shape[1:])
            start = time.perf_counter()
            history = model.fit(
                x[train], y[train], epochs=workload.epochs, batch_size=workload.batch_size,
                validation_data=(x[val], y[val]), verbose=0,
            )
            fit_s.append(time.perf_counter() - start)
            scores.append(history.history["val_accuracy"][-1])
        accuracy[key(lr, l2, dropout)] = sum(scores) / len(scores)
    return {"accuracy": accuracy, "fit_s": fit_s}


def tuner(workload: Workload) -> dict[str, Any]:
    """keras-tuner ``GridSearch`` over the workload's grid on its holdout split."""
    if workload.folds is not None:
        raise ValueError("keras-tuner has no cross-validation; run it on holdout workloads only")
    _quiet_tf()
    import keras
    import keras_tuner

    x, y, [(train, val)] = folds(workload)

    def build(hp):
        return tutorial_model(
            hp.Choice("lr", list(workload.lrs)),
            hp.Choice("l2", list(workload.l2s)),
            hp.Choice("dropout", list(workload.dropouts)),
            x.shape[1:],
        )

    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        search = keras_tuner.GridSearch(
            build, objective="val_accuracy", directory=tmp, project_name="bench", overwrite=True, seed=0
        )
        start = time.perf_counter()
        search.search(
            x[train], y[train], epochs=workload.epochs, batch_size=workload.batch_size,
            validation_data=(x[val], y[val]), verbose=0,
        )
        search_s = time.perf_counter() - start
        accuracy = {}
        for trial in search.oracle.trials.values():
            hp = trial.hyperparameters.values
            last = trial.metrics.get_history("val_accuracy")[-1].value
            accuracy[key(hp["lr"], hp["l2"], hp["dropout"])] = float(last[0] if isinstance(last, list) else last)
    return {"accuracy": accuracy, "fit_s": [search_s]}


def population_configs(workload: Workload) -> list:
    """One sweep config per (config, fold) of ``workload``, as ``sweep -m`` gives them to its jobs.

    Hydra composes the workload's config once; each member is a copy with its values set
    (what sweep's grid sweeper does), so this contender's time is not Hydra composing 40 configs.
    """
    import copy

    from omegaconf import OmegaConf

    from sweep.config import compose

    shared = [f"trainer.epochs={workload.epochs}", f"trainer.batch_size={workload.batch_size}"]
    if workload.folds is not None:
        shared += ["validation=kfold", f"validation.n_splits={workload.folds}", "validation.fold=0"]
    base = compose(*shared)
    cfgs = []
    for lr, l2, dropout in workload.configs:
        for fold in range(workload.folds or 1):
            cfg = copy.deepcopy(base)
            values = {"optimizer.lr": lr, "regularizer.l2": l2, "regularizer.dropout": dropout}
            values |= {"validation.fold": fold} if workload.folds is not None else {}
            for key, value in values.items():
                OmegaConf.update(cfg, key, value)
            cfgs.append(cfg)
    return cfgs


def population(workload: Workload) -> dict[str, Any]:
    """The workload as one population (:func:`sweep.run.train`: check, then every config and fold at once), no Hydra launcher or records."""
    from sweep.run import check, train

    cfgs = population_configs(workload)
    start = time.perf_counter()
    trained = train(cfgs, [check(cfg) for cfg in cfgs])  # W2: 40 members, one population (at most 64)
    fit_s = time.perf_counter() - start
    by_config: dict[str, list[float]] = defaultdict(list)
    for cfg, done in zip(cfgs, trained):
        reg = cfg.regularizer
        by_config[key(cfg.optimizer.lr, reg.l2, reg.dropout)] += [fit.metrics["val_accuracy"] for _, fit in done.fits]
    return {"accuracy": {k: sum(v) / len(v) for k, v in by_config.items()}, "fit_s": [fit_s]}


CHILDREN = {"loop": loop, "tuner": tuner, "population": population}


# ---------------------------------------------------------------------- parent side


def measured(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd`` to completion (with ``env`` added to the environment) and its output in ``log``; return its wall time (s) and peak RSS (MB).

    The peak is the child's own (``wait4``), so contenders run one after another are not mixed up.
    """
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def _child(label: str, workload: Workload, quick: bool, tmp: Path) -> Result:
    """Run a child contender: ``loop``, ``tuner``, ``population``, or ``loop-seed<N>`` (the loop seeded ``N``)."""
    name, _, seed = label.partition("-seed")
    out = tmp / f"{label}-{workload.name}.json"
    cmd = [sys.executable, "-m", "benchmarks.contenders", name, workload.name, str(out)] + (["--quick"] if quick else [])
    cmd += ["--seed", seed] if seed else []
    wall, rss = measured(cmd, ROOT, tmp / f"{label}-{workload.name}.log")
    data = json.loads(out.read_text())
    return Result(label, workload.name, wall, data["accuracy"], data["fit_s"], {"peak_rss_mb": rss})


#: The metrics of a record that two launchers must write bit for bit alike.
COMPARED = ("val_loss", "val_accuracy", "train_loss", "train_accuracy")


def config_key(record: dict[str, Any]) -> str:
    """A sweep record's config as :func:`key` has it."""
    return key(record["optimizer.lr"], record["regularizer.l2"], record["regularizer.dropout"])


def run_key(record: dict[str, Any]) -> str:
    """One run of a sweep (config and fold) as a key shared by every sweep contender."""
    return config_key(record) + f",fold={record.get('validation.fold')}"


def sweep_records(sweep_dir: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(mtime_ns, record)`` for every ``result.json`` below ``sweep_dir``, in the order they were written."""
    found = [(p.stat().st_mtime_ns, json.loads(p.read_text())) for p in sweep_dir.rglob("result.json")]
    return sorted(found, key=lambda item: item[0])


def _sweep(workload: Workload, tmp: Path, overrides: list[str], label: str) -> Result:
    sweep_dir = tmp / f"{label}-{workload.name}"
    cmd = [SWEEP, "-m", *workload.sweep_overrides(), *overrides, f"hydra.sweep.dir={sweep_dir}"]
    launched = time.time_ns()
    wall, rss = measured(cmd, tmp, tmp / f"{label}-{workload.name}.log")
    records = sweep_records(sweep_dir)
    failed = [r for _, r in records if r["status"] != "completed"]
    if len(records) != workload.fits or failed:
        raise RuntimeError(f"{label}: {len(records)} records of {workload.fits}, {len(failed)} not completed")
    by_config: dict[str, list[float]] = defaultdict(list)
    for _, r in records:
        by_config[config_key(r)].append(r["val_accuracy"])
    times = [t for t, _ in records]
    fits = [r["fit_time_s"] for _, r in records]
    span = (times[-1] - times[0]) / 1e9
    extra = {
        "peak_rss_mb": rss,
        # process start until the first record exists: interpreter, Hydra, TensorFlow import, first job
        "first_job_s": (times[0] - launched) / 1e9,
        # between the first and the last record, what was not fit time, per job
        "overhead_per_job_s": (span - sum(fits[1:])) / (len(records) - 1) if len(records) > 1 else float("nan"),
        # inside run_job but outside the task call: data, splits, record (no Hydra)
        "in_job_overhead_s": sum(r["elapsed_s"] - r["fit_time_s"] for _, r in records) / len(records),
        "fit_first_s": fits[0],
        "fit_rest_mean_s": sum(fits[1:]) / max(1, len(fits) - 1),
    }
    accuracy = {k: sum(v) / len(v) for k, v in by_config.items()}
    runs = {run_key(r): [r[name] for name in COMPARED] for _, r in records}
    return Result(label, workload.name, wall, accuracy, fits, extra, runs)


def run(contender: str, workload: Workload, quick: bool, tmp: Path, overrides: list[str] | None = None) -> Result:
    """Run ``contender`` (``loop``, ``loop-seed<N>``, ``tuner``, ``population`` or ``sweep-<variant>``) on ``workload`` in a fresh process.

    A ``sweep-*`` contender runs ``sweep -m`` with ``overrides`` only: it runs sweep's default
    launcher (``hydra/launcher=vectorized``) unless they name another.
    """
    if contender.startswith("sweep"):
        return _sweep(workload, tmp, overrides or [], contender)
    return _child(contender, workload, quick, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("contender", choices=sorted(CHILDREN))
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="the loop's seed (the others are seeded 0)")
    args = parser.parse_args()
    workload = (QUICK if args.quick else WORKLOADS)[args.workload]
    extra = {"seed": args.seed} if args.contender == "loop" else {}
    args.out.write_text(json.dumps(CHILDREN[args.contender](workload, **extra)))


if __name__ == "__main__":
    main()
