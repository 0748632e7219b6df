"""A sweep as TensorBoard's HParams dashboard: one session per run, its hyperparameters, metrics and per-epoch curves.

Written with TensorBoard's own summary protos and event-file writer (``tensorboard`` comes
with TensorFlow), without importing TensorFlow: ``tensorboard --logdir OUT`` reads it.

    >>> write_tensorboard(load("outputs/multirun/2026-11-26/14-00-00"), Path("tb"))
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.records import atomic_write
from sweep.viewers import plain
from sweep.results import group_keys, history_of, metric_names

#: A key with more distinct numbers than this gets an interval domain, not a list of values.
MAX_DISCRETE = 32
#: The tag prefix of a run's per-epoch curves from ``history.csv`` (the record's metrics keep their own names).
CURVE = "epoch"
#: Record fields shown beside the metrics, though they are not metrics of the model.
COSTS = ("fit_time_s",)
#: What TensorBoard looks for in an event file's name, and the version its first event names.
EVENTS = "events.out.tfevents."
FILE_VERSION = "brain.Event:2"


def write_tensorboard(runs: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``out/`` (the experiment: hyperparameters and metrics) and one ``out/<run>/`` per run; return the run dirs.

    A run's hyperparameters are the config keys that vary across ``runs`` (:func:`group_keys`),
    so the runs of one config (its folds) are one session group, which the dashboard
    aggregates; its metrics are the record's, at the step of its last epoch; its curves each
    ``history.csv`` column as ``epoch_<column>`` (``fold<k>/epoch_<column>`` for a run that
    trained its folds in-process).
    """
    from tensorboard.plugins.hparams import summary_v2 as hp  # the module behind ``hparams.api``, which imports TensorFlow

    keys = group_keys(runs)
    metrics = [*metric_names(runs), *(c for c in COSTS if c in runs)]
    experiment = hp.hparams_config_pb([hp.HParam(key, _domain(runs[key])) for key in keys], [hp.Metric(m) for m in metrics])
    _write(out, [_event(experiment, 0)])
    dirs = []
    for name, run in zip(_names(runs), runs.to_dict("records")):
        values = {key: value for key in keys if (value := _value(run.get(key))) is not None}
        step = int(run.get("n_resources") or run.get("epochs_run") or run.get("trainer.epochs") or 0)
        group = ", ".join(f"{key}={value}" for key, value in values.items()) or "config"
        events = [_event(hp.hparams_pb(values, trial_id=group), 0)]
        events += [_scalar(m, run[m], step) for m in metrics if _number(run.get(m))]
        events += list(_curves(Path(run["output_dir"])))
        dirs.append(out / name)
        _write(dirs[-1], events)
    return dirs


def _names(runs: pd.DataFrame) -> list[str]:
    """Each run's name: its job dir relative to the dir that holds every sweep dir of ``runs`` (``"3"``, or ``"14-00-00/3"`` for several sweeps)."""
    dirs = [os.path.abspath(d) for d in runs["output_dir"]]
    sweeps = {os.path.abspath(d) for d in runs["sweep_dir"]}
    root = next(iter(sweeps)) if len(sweeps) == 1 else os.path.commonpath(sweeps)
    return [Path(os.path.relpath(d, root)).as_posix() if d != root else Path(d).name for d in dirs]


def _domain(values: pd.Series) -> Any:
    """The values a key takes, as TensorBoard's domain: the list of them, or the interval between the least and the greatest number."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    taken = sorted({v for v in map(_value, values) if v is not None}, key=lambda v: (type(v).__name__, v))
    kinds = {type(v) for v in taken}
    if not taken or len(kinds) > 1:
        return None  # TensorBoard's domains hold one type
    if kinds == {float} and len(taken) > MAX_DISCRETE:
        return hp.RealInterval(min(taken), max(taken))
    return hp.Discrete(taken)


def _value(value: Any) -> bool | float | str | None:
    """A cell as a hyperparameter: :func:`sweep.viewers.plain`, with ints as floats (TensorBoard has one number type)."""
    value = plain(value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def _curves(job_dir: Path) -> Iterator[Any]:
    """The scalar events of a run's ``history.csv``: each column against ``epoch``, per fold when it has a ``fold`` column."""
    history = history_of(job_dir)
    if history is None or "epoch" not in history:
        return
    folds = history.groupby("fold") if "fold" in history else [(None, history)]
    for fold, rows in folds:
        prefix = "" if fold is None else f"fold{int(fold)}/"
        for column in (c for c in rows.columns if c not in ("epoch", "fold")):
            for epoch, value in zip(rows["epoch"], rows[column]):
                if _number(value):
                    yield _scalar(f"{prefix}{CURVE}_{column}", value, int(epoch))


def _scalar(tag: str, value: float, step: int) -> Any:
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    return _event(scalar_pb(tag, float(value)), step)


def _event(summary: Any, step: int) -> Any:
    from tensorboard.compat.proto.event_pb2 import Event

    return Event(summary=summary, step=step, wall_time=time.time())


def _write(log_dir: Path, events: list[Any]) -> None:
    """Replace ``log_dir``'s event files with one holding ``events``, framed by TensorBoard's record writer (a rewrite shows each session once, not twice)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter  # EventFileWriter would import TensorFlow for its gfile

    def write(tmp: str) -> None:
        with open(tmp, "wb") as file:
            records = RecordWriter(file)
            for event in [Event(wall_time=time.time(), file_version=FILE_VERSION), *events]:
                records.write(event.SerializeToString())

    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob(f"{EVENTS}*"):
        old.unlink()
    atomic_write(log_dir / f"{EVENTS}{int(time.time()):010d}.sweep", write)
