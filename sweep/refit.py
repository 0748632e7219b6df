"""Refit: retrain a sweep's rank-1 config on all its rows (training + validation) and score it once on the test split.

The test split (``sweep.data.Dataset.x_test``) is used here and nowhere else: the sweep
chose the config without it. The refit record, ``<sweep dir>/refit/result.json``, holds
``test_*`` metrics, ``train_*`` metrics on the rows it was fitted on, and ``refit_of`` (the
job whose config it is), which keeps :func:`sweep.results.load` from counting it as a run.
"""

from __future__ import annotations

import math
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.config import fingerprint, flatten, unflatten, validate
from sweep.data import load_dataset
from sweep.engines import Member, fit_members
from sweep.records import atomic_write, read_record, timestamp, versions, write_record
from sweep.results import fold_rows, load, runs_of, scored, summarize

REFIT_DIR = "refit"

#: Task metrics kept under their own name: they describe the fit, not the rows it is scored on.
UNRENAMED = frozenset({"epochs_run", "restored_epoch"})
#: Task metrics dropped: picking an epoch by its test score would be tuning on the test split.
DROPPED = frozenset({"best_val_accuracy", "best_val_mse", "best_epoch"})


def best_config(sweep_dir: str | Path, metric: str | None = None, aggregate_seeds: bool | None = None) -> tuple[Path, DictConfig, dict[str, Any]]:
    """The rank-1 config of the sweep: a completed job dir of it, its config (``.hydra/config.yaml``) and how it was chosen.

    The last is the metric, its mean and the config's :func:`restored_epochs` (for
    :func:`refit_config`). ``ValueError`` when no config has a score
    (:func:`sweep.results.scored`): every config has a failed, diverged or missing run.
    """
    runs = load(sweep_dir)
    if runs.empty:
        raise ValueError(f"{sweep_dir}: no run records to choose a config from")
    summary = summarize(runs, metric, aggregate_seeds)
    metric = summary.columns[0].removeprefix("rank_")
    if not scored(summary, metric).iloc[0]:
        raise ValueError(f"{sweep_dir}: no config completed all its runs and folds with a {metric}; nothing to refit")
    best = summary.iloc[0]
    done = runs_of(runs, best)
    job_dir = Path(done[done["status"] == "completed"]["output_dir"].iloc[0])
    cfg = config_of(job_dir)
    chosen = {"metric": metric, f"mean_{metric}": float(best[f"mean_{metric}"]), "restored_epochs": restored_epochs(done)}
    return job_dir, cfg, chosen


def config_of(job_dir: Path) -> DictConfig:
    """The config of the run recorded in ``job_dir``: its ``.hydra/config.yaml``, or rebuilt from the record.

    A record kept aside from a job dir that a later sweep took (``kept/<fingerprint>/``) has
    no ``.hydra`` of its own, and the one in its old dir belongs to that dir's new job.
    """
    record = read_record(job_dir)
    saved = job_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(saved) if saved.is_file() else None
    if isinstance(cfg, DictConfig) and fingerprint(flatten(cfg)) == record.get("fingerprint"):
        return cfg
    return unflatten(record)


def restored_epochs(runs: pd.DataFrame) -> list[float]:
    """The epoch whose weights each fold's model held at the end (``restored_epoch``; ``best_epoch`` in older records).

    With early stopping that is the best ``trainer.early_stopping_monitor`` epoch, which
    Keras restores; ``best_epoch`` is the best ``val_accuracy`` epoch, which can differ.
    """
    folds = fold_rows(runs)
    return _numbers(folds, "restored_epoch").fillna(_numbers(folds, "best_epoch")).dropna().tolist()


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as floats (NaN where it is not a number, all NaN when the column is absent)."""
    return pd.to_numeric(frame[column], errors="coerce") if column in frame else pd.Series(math.nan, index=frame.index)


def refit_config(cfg: DictConfig, epochs: list[float] | None = None) -> DictConfig:
    """``cfg`` made ready to train without validation rows: early stopping is replaced by a fixed epoch count.

    The count is the mean of ``epochs`` (:func:`restored_epochs` of the sweep's runs), rounded.
    A warm start is dropped: the refit trains from scratch on other rows than the run it named.
    So is ``trainer.callbacks``: its validation rows are the test rows, which no callback may see.
    """
    cfg = cfg.copy()
    trainer = cfg.get("trainer")
    if trainer is None:
        return cfg
    if trainer.get("warm_start") is not None:
        trainer.warm_start = None
    if trainer.get("callbacks"):
        trainer.callbacks = {}
    if trainer.get("early_stopping_patience") is not None:
        if epochs:
            trainer.epochs = max(1, round(sum(epochs) / len(epochs)))
        trainer.early_stopping_patience = None
    return cfg


def as_test_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The task's metrics renamed for a fit scored on the test rows: ``val_x``/``x`` become ``test_x``; ``train_*`` stay."""
    out = {}
    for name, value in metrics.items():
        if name in DROPPED:
            continue
        out[name if name.startswith("train_") or name in UNRENAMED or name == "fit_time_s" else f"test_{name.removeprefix('val_')}"] = value
    return out


def refit(sweep_dir: str | Path, metric: str | None = None, aggregate_seeds: bool | None = None, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Retrain the sweep's rank-1 config on all non-test rows, score it on the test rows, write and return its record.

    The record and the model go to ``out_dir`` (default ``<sweep dir>/refit``). Never raises
    for a failing fit: the record then has ``status`` ``failed`` and ``error``. An
    ``OSError`` when ``out_dir`` cannot be written is raised before any training.
    """
    sweep_dir = Path(sweep_dir)
    job_dir, cfg, chosen = best_config(sweep_dir, metric, aggregate_seeds)
    cfg = refit_config(cfg, chosen.pop("restored_epochs"))
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir / REFIT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    tempfile.NamedTemporaryFile(dir=out_dir, prefix=".tmp-").close()  # writable: a refit that cannot be recorded is not started
    flat = flatten(cfg)
    record: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "refit_of": str(job_dir),
        "selected_by": chosen.pop("metric"),
        **chosen,
        "fingerprint": fingerprint({**flat, "refit": True}),  # never equal to a sweep job's, so never reused as one
        "output_dir": str(out_dir),
        "seed": cfg.get("seed"),
        "started_at": timestamp(datetime.now(timezone.utc)),
        **flat,
    }
    try:
        validate(cfg)
        data = load_dataset(cfg.dataset, regression=cfg.task.name == "regress")
        record |= data.about() | {"n_train_rows": len(data.y), "n_test_rows": len(data.y_test)}
        [fit] = fit_members([Member.of_arrays(cfg, data.x, data.y, data.x_test, data.y_test)])
        record |= as_test_metrics(fit.metrics)
        record["status"] = "diverged" if fit.diverged else "completed"
        for name, write in {**fit.artifacts, **(data.artifacts() if fit.artifacts else {})}.items():
            atomic_write(out_dir / name, write)
    except Exception as error:
        record["error"] = f"{type(error).__name__}: {error}"
    record["versions"] = versions()
    write_record(out_dir, record)
    return record
