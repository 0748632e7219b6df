"""What a config adds to Keras' loop: ``trainer.callbacks``, a learning-rate schedule as ``optimizer.lr``,
``trainer.class_weight`` and ``trainer.timeout_s``.

Configs with any of them train with ``model.fit`` (:func:`sweep.engines.graph.unsupported`
names the key in the record). A callback's file arguments (:data:`FILE_ARGUMENTS`) default
to, and relative ones resolve in, the member's own dir: the job dir, or its ``fold<k>``
for one fold of several, so no two jobs or folds write over each other.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_object
from omegaconf import DictConfig

from sweep.backend import keras
from sweep.config import SweepConfigError, build
from sweep.engines.member import Member

#: A callback's arguments naming where it writes, and what each defaults to in the member's dir (``{name}``: the callback's key).
FILE_ARGUMENTS = {"log_dir": "{name}", "filename": "{name}.csv", "filepath": "{name}.keras"}


def learning_rate(opt: DictConfig) -> Any:
    """``opt.lr`` as Keras takes it: a float (``optimizer.lr=10`` is an int), or the ``keras.optimizers.schedules`` schedule its node builds."""
    if not isinstance(opt.lr, DictConfig):
        return float(opt.lr)
    schedule = build(opt.lr)
    if not isinstance(schedule, keras().optimizers.schedules.LearningRateSchedule):
        raise SweepConfigError(
            f"optimizer.lr._target_={opt.lr._target_}: returned {type(schedule).__name__}, not a keras.optimizers.schedules.LearningRateSchedule"
        )
    return schedule


def user_callbacks(member: Member) -> list[Any]:
    """The Keras callbacks ``trainer.callbacks`` names, built in order, their files in the member's dir."""
    built = []
    for name, node in (member.cfg.trainer.get("callbacks") or {}).items():
        files = _file_arguments(str(name), node, member.callback_dir)
        callback = build(node, **files)
        if not isinstance(callback, keras().callbacks.Callback):
            raise SweepConfigError(
                f"trainer.callbacks.{name}._target_={node._target_}: returned {type(callback).__name__}, not a keras.callbacks.Callback"
            )
        built.append(callback)
    return built


def time_limit(deadline: float | None) -> Any:
    """A callback that stops the fit at the first batch end past ``deadline`` (``time.monotonic()``), keeping the epoch
    it stopped in (``stopped_in``, 1-based; ``None`` while in time); ``None`` for no deadline."""
    if deadline is None:
        return None

    class TimeLimit(keras().callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch, self.stopped_in = 0, None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if time.monotonic() > deadline:
                self.model.stop_training, self.stopped_in = True, self.epoch + 1

    return TimeLimit()


def _file_arguments(name: str, node: DictConfig, where: Path | None) -> dict[str, str]:
    """The :data:`FILE_ARGUMENTS` that ``node``'s callback takes, placed in ``where`` (``None``: left as given)."""
    if where is None:
        return {}
    try:
        parameters = inspect.signature(get_object(node._target_)).parameters
    except (ValueError, TypeError):  # no signature to read: the callback gets its arguments as given
        return {}
    out = {}
    for argument, default in FILE_ARGUMENTS.items():
        if argument in parameters:
            path = Path(str(node.get(argument) or default.format(name=name))).expanduser()
            out[argument] = str(path if path.is_absolute() else where / path)
    return out


def class_weights(member: Member) -> dict[int, float] | None:
    """``trainer.class_weight`` as Keras takes it: a weight per class index (1 where not given); ``None`` when unset.

    ``balanced`` is scikit-learn's ``compute_class_weight`` on the member's training rows; a
    dict's keys are the dataset's labels (a table's original labels, else the class indices).
    """
    spec = member.cfg.trainer.get("class_weight")
    if spec is None:
        return None
    y = member.y[member.train]
    if spec == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        weights = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y).tolist()))
    else:
        labels = [str(label) for label in (member.classes or range(member.output.units))]
        weights = {}
        for key, weight in spec.items():
            if str(key) not in labels:
                raise SweepConfigError(f"trainer.class_weight.{key}: not a label of the dataset (its labels: {', '.join(labels)})")
            weights[labels.index(str(key))] = float(weight)
    return {index: float(weights.get(index, 1.0)) for index in range(member.output.units)}
