"""What a fit produced (:class:`Fitted`), and how a per-epoch history becomes one: the same for every engine."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Fitted:
    """What one fit produced: final metrics, per-epoch history, and writers for its artifacts.

    ``artifacts`` maps a file name (``model.keras``) to a function that writes the
    artifact to the path it is given; the caller picks the path and makes it atomic.
    ``diverged``: the loss went NaN/inf or exploded (:func:`exploded`); such a fit has no artifacts.
    ``trained_by`` names the engine: ``"graph"`` (the batched graph, :mod:`sweep.engines.graph`),
    ``"model.fit"`` (Keras' own loop; ``graph_unsupported`` says why the graph could not) or
    ``"sklearn"``. ``population_size`` is how many members trained together in one graph; its
    ``fit_time_s`` is then the graph's wall time divided equally among them.
    """

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    artifacts: dict[str, Callable[[str], Any]] = field(default_factory=dict)
    diverged: bool = False
    trained_by: str = "model.fit"
    population_size: int = 1
    graph_unsupported: str | None = None
    n_train_rows: int = 0  # the rows it was fitted on
    n_val_rows: int = 0  # the rows it was scored on
    resumed_epochs: int = 0  # epochs of its history it went on from (a warm start's), not trained here


#: The columns of a classifier's and a regression's per-epoch history (as Keras logs them: training, then validation).
CLASSIFICATION_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")
REGRESSION_COLUMNS = ("loss", "mae", "mse", "val_loss", "val_mae", "val_mse")

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


def summarize(
    history: list[dict[str, float]], restored: int | None, artifacts: dict, trained_by: str, val_targets: np.ndarray | None = None
) -> Fitted:
    """The :class:`Fitted` of a per-epoch ``history``: metrics of the last epoch, or of epoch ``restored`` (0-based) whose weights the model holds.

    Metrics: each history column, ``train_`` before the training ones (``train_loss``,
    ``train_accuracy``; ``val_loss`` ...), then ``best_val_accuracy`` and ``best_epoch`` (1-based,
    the best ``val_accuracy``), ``epochs_run`` and ``restored_epoch`` (1-based). A regression
    (``val_targets``: its validation rows' targets) gets each epoch's ``val_r2``, R² as
    scikit-learn's ``r2_score`` computes it (1 - squared error / the targets' squared deviation),
    and ``best_val_mse`` in place of ``best_val_accuracy``. Whether it diverged is decided here,
    for every engine (:func:`exploded`); a diverged fit's ``artifacts`` are dropped, so its model is never written.
    """
    if val_targets is not None:
        spread = float(np.var(np.asarray(val_targets, np.float64)))
        history = [row | {"val_r2": 1.0 - row["val_mse"] / spread if spread > 0 else math.nan} for row in history]
    judged, higher = ("val_mse", False) if val_targets is not None else ("val_accuracy", True)
    scores = np.array([row.get(judged, math.nan) for row in history], np.float64)
    best = len(history) - 1 if np.isnan(scores).all() else int(np.nanargmax(scores) if higher else np.nanargmin(scores))
    kept = len(history) - 1 if restored is None else restored
    final = history[kept]
    names = (*REGRESSION_COLUMNS, "val_r2") if val_targets is not None else CLASSIFICATION_COLUMNS
    metrics = {(name if name.startswith("val_") else f"train_{name}"): final.get(name, math.nan) for name in names}
    metrics |= {f"best_{judged}": float(scores[best]), "best_epoch": best + 1, "epochs_run": len(history), "restored_epoch": kept + 1}
    diverged = exploded(history)
    return Fitted(metrics, history, {} if diverged else artifacts, diverged, trained_by)
