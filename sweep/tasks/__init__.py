"""Task functions: arrays in, metrics out. They know nothing of files or Hydra.

A task is called as ``task(cfg, x_train, y_train, x_val, y_val)`` with the composed
config and one fold's rows, and returns a :class:`Fitted`. ``task.name`` picks it;
:func:`fit` is how a run (or a refit) calls it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig


@dataclass
class Fitted:
    """What one fit produced: final metrics, per-epoch history, and writers for its artifacts.

    ``artifacts`` maps a file name (``model.keras``) to a function that writes the
    artifact to the path it is given; the caller picks the path and makes it atomic.
    ``diverged``: the loss went NaN/inf or exploded (:func:`exploded`); such a fit has no artifacts.
    ``trained_by`` says which code trained it: ``"model.fit"`` (Keras' own loop),
    ``"graph"`` (the reused graph of :mod:`sweep.tasks.compiled`), ``"population of N"``
    (one of N members trained together in one batched graph by :mod:`sweep.population`;
    its ``fit_time_s`` is then that graph's wall time divided equally among the N) or
    ``"sklearn"`` (a scikit-learn estimator's ``fit``).
    """

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    artifacts: dict[str, Callable[[str], Any]] = field(default_factory=dict)
    diverged: bool = False
    trained_by: str = "model.fit"
    n_train_rows: int = 0  # the rows it was fitted on
    n_val_rows: int = 0  # the rows it was scored on


#: A train loss above this is divergence, whatever the first epoch's was.
LOSS_BOUND = 1e10
#: A train loss above this many times the first epoch's is divergence.
LOSS_GROWTH = 1e6


def exploded(history: list[dict[str, float]]) -> bool:
    """Whether a per-epoch ``history`` diverged: a NaN/inf ``loss`` or ``val_loss`` in any epoch, or a
    finite train ``loss`` above :data:`LOSS_BOUND` or above :data:`LOSS_GROWTH` times the first epoch's.

    The loss is the mean cross-entropy plus the L1/L2 penalty. A healthy fit's cross-entropy
    stays within a few times ``log(n_classes)`` and its penalty shrinks from its initial
    value as training goes, so neither bound is near: a mean cross-entropy of 1e10 takes
    logits 1e10 apart, and a millionfold growth of the first epoch's mean (which includes
    the untrained start) the same kind of blow-up. An exploding loss (SGD at lr 10 on
    digits: ~1e11 in the first epoch, ~1e35 in the third) crosses them while still finite,
    so it counts even when it never reaches inf. Only a penalty above 1e10 by itself (an L2
    strength of ~1e8 on the tutorial MLP's initial weights) would count without a blow-up.
    """
    if not history:
        return False
    losses = [row.get("loss", math.nan) for row in history]
    if not all(math.isfinite(value) for value in losses + [row.get("val_loss", 0.0) for row in history]):
        return True
    growth = LOSS_GROWTH * losses[0] if losses[0] > 0 else math.inf  # a first loss of 0 bounds nothing
    return max(losses) > min(LOSS_BOUND, growth)


def get_task(name: str) -> Callable[..., Fitted]:
    """The task function registered under ``name`` (``classify`` or ``cluster``)."""
    if name == "classify":
        from sweep.tasks.classify import classify

        return classify
    if name == "cluster":
        from sweep.tasks.cluster import cluster

        return cluster
    raise KeyError(name)


def fit(cfg: DictConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Fitted:
    """Run ``cfg.task.name`` on one fold's rows from a clean, seeded start; its ``fit_time_s`` is the task call alone.

    A Keras task first drops the previous fit's session state and seeds every generator
    (with op determinism as ``trainer.deterministic`` says), so a fold's numbers never
    depend on what ran before it in the process.
    """
    if cfg.task.name == "classify":
        from sweep.backend import reset, seed_everything
        from sweep.tasks.compiled import supports

        reset(collect=not supports(cfg))
        seed_everything(cfg.seed, cfg.trainer.get("deterministic", True))
    task = get_task(cfg.task.name)
    start = time.perf_counter()
    fitted = task(cfg, x_train, y_train, x_val, y_val)
    fitted.metrics["fit_time_s"] = time.perf_counter() - start
    fitted.n_train_rows, fitted.n_val_rows = len(x_train), len(x_val)
    return fitted
