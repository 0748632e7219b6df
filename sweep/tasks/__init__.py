"""Task functions: arrays in, metrics out. They know nothing of files or Hydra.

A task is called as ``task(cfg, x_train, y_train, x_val, y_val)`` with the composed
config and one fold's rows, and returns a :class:`Fitted`. ``task.name`` picks it;
:func:`fit` is how a run (or a refit) calls it.
"""

from __future__ import annotations

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
    """

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    artifacts: dict[str, Callable[[str], Any]] = field(default_factory=dict)
    diverged: bool = False


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
    return fitted
