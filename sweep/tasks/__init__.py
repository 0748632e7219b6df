"""Task functions: arrays in, metrics out. They know nothing of files or Hydra.

A task is called as ``task(cfg, x_train, y_train, x_val, y_val)`` with the composed
config and one fold's rows, and returns a :class:`Fitted`. ``task.name`` picks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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
