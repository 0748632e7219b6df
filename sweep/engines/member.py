"""A member: one (config, fold) to train, the unit every engine takes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from sweep.models import Output


@dataclass(frozen=True)
class TrainedState:
    """A member's weights, the optimizer's slots (per :attr:`sweep.engines.optimizers.Rule.slots`, each in the weights' order) and its step count."""

    weights: list[np.ndarray]
    slots: list[list[np.ndarray]]
    iterations: int


@dataclass(frozen=True)
class Checkpoint:
    """Where a shorter fit of the same member ended: its state and its per-epoch history (one dict per epoch)."""

    state: TrainedState
    history: list[dict[str, float]]


@dataclass(frozen=True)
class Member:
    """Config ``cfg`` fitted on rows ``train`` of ``x``/``y`` and scored on rows ``val``; ``fold`` is the fold's index (``None``: holdout).

    Members of one sweep share ``x`` and ``y`` (the dataset's rows, never copied per member).
    ``start``: the fit goes on from there, to ``cfg.trainer.epochs`` in all, with the same
    numbers as a fit from scratch (the graph's; other engines train from scratch).
    ``out_dir``: its job's dir, where its callbacks write (``None``: where they say).
    ``classes``: the dataset's original label of each class index (``None``: the indices are the labels).
    ``deadline``: the ``time.monotonic()`` past which its job's training stops (``trainer.timeout_s``; ``None``: no limit).
    """

    cfg: DictConfig
    x: np.ndarray
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    fold: int | None = None
    start: Checkpoint | None = None
    out_dir: Path | None = None
    classes: tuple[int | str, ...] | None = None
    deadline: float | None = None

    @classmethod
    def of_arrays(cls, cfg: DictConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Member:
        """The member fitted on ``x_train`` and scored on ``x_val`` (a refit's: all non-test rows, then the test rows)."""
        n_train, n_val = len(x_train), len(x_val)
        x, y = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
        return cls(cfg, x, y, np.arange(n_train), np.arange(n_train, n_train + n_val))

    @cached_property
    def output(self) -> Output:
        """Its network's last layer: for a classifier, one more class than the largest label among its rows; for a
        regression, its training rows' target mean and variance (as float32, as Keras holds them)."""
        if self.cfg.task.name == "regress":
            targets = self.y[self.train].astype(np.float64)
            return Output(0, float(np.float32(targets.mean())), float(np.float32(targets.var())))
        return Output(int(max(self.y[self.train].max(), self.y[self.val].max())) + 1)

    @property
    def callback_dir(self) -> Path | None:
        """Where its callbacks write: the job dir, or the job dir's ``fold<k>`` for a fold of a k-fold run."""
        if self.out_dir is None or self.fold is None:
            return self.out_dir
        return self.out_dir / f"fold{self.fold}"

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Its rows as ``(x_train, y_train, x_val, y_val)``."""
        return self.x[self.train], self.y[self.train], self.x[self.val], self.y[self.val]
