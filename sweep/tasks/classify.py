"""Supervised classification: build the configured Keras model, fit it on one fold, report metrics."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from omegaconf import DictConfig

from sweep.backend import keras, save_model
from sweep.config import build
from sweep.models import checked_model
from sweep.tasks import Fitted, exploded


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], n_classes: int):
    """The compiled model that ``cfg.model``, ``cfg.regularizer`` and ``cfg.optimizer`` describe.

    The builder's model is checked first (:func:`sweep.models.checked_model`), so a builder returning
    the wrong thing is named in one line instead of failing inside ``compile`` or ``fit``.
    """
    reg = cfg.regularizer
    built = build(
        cfg.model,
        input_shape=list(input_shape),
        n_classes=n_classes,
        l1=reg.get("l1", 0.0),
        l2=reg.get("l2", 0.0),
        dropout=reg.get("dropout", 0.0),
    )
    model = checked_model(built, cfg.model.get("_target_"), input_shape, n_classes)
    optimizer = build(cfg.optimizer, reserved=("lr",), learning_rate=cfg.optimizer.lr)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def classify(cfg: DictConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Fitted:
    """Train a fresh model on the training rows, validating every epoch; stop at once if the loss becomes NaN/inf.

    Metrics come from the last epoch, or from the best one when early stopping restored
    its weights: ``train_loss``/``train_accuracy`` (epoch averages, as Keras reports them),
    ``val_loss``/``val_accuracy``, ``best_val_accuracy``, ``best_epoch`` (1-based, the best
    ``val_accuracy``), ``epochs_run`` and ``restored_epoch`` (1-based, the epoch whose weights
    the model holds). A fit whose loss diverged (:func:`sweep.tasks.exploded`) keeps no model.

    The tutorial's MLP with Adam, SGD or RMSprop (:func:`sweep.tasks.compiled.supports`) runs the same
    math on a graph traced once per process and reused by every job (``sweep.tasks.compiled``).
    """
    from sweep.tasks import compiled

    if compiled.supports(cfg):
        return compiled.classify(cfg, x_train, y_train, x_val, y_val)
    return fit_keras(cfg, x_train, y_train, x_val, y_val)


def fit_keras(cfg: DictConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> Fitted:
    """:func:`classify` through ``model.fit`` on a freshly built model, whatever the config."""
    trainer = cfg.trainer
    n_classes = int(max(y_train.max(), y_val.max())) + 1
    model = build_model(cfg, x_train.shape[1:], n_classes)
    callbacks = [keras().callbacks.TerminateOnNaN()]
    patience = trainer.get("early_stopping_patience")
    if patience is not None:
        callbacks.append(
            keras().callbacks.EarlyStopping(
                monitor=trainer.early_stopping_monitor, patience=patience, restore_best_weights=True
            )
        )
    fit = model.fit(
        x_train,
        y_train,
        epochs=trainer.epochs,
        batch_size=trainer.batch_size,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        verbose=trainer.verbose,
    )
    history = [
        {"epoch": epoch, **dict(zip(fit.history, map(float, values)))}
        for epoch, values in enumerate(zip(*fit.history.values()), start=1)
    ]
    # Keras 3 restores the best epoch's weights at the end of training, stopped early or not
    restored = callbacks[-1].best_epoch if patience is not None and callbacks[-1].best_weights is not None else None
    artifacts = {"model.keras": partial(save_model, model)} if trainer.save_model else {}
    return summarize(history, restored, artifacts, trained_by="model.fit")


def summarize(history: list[dict[str, float]], restored: int | None, artifacts: dict, trained_by: str) -> Fitted:
    """The :class:`Fitted` of a per-epoch ``history``: metrics of the last epoch, or of epoch ``restored`` (0-based) whose weights the model holds.

    Whether it diverged is decided here, for every training path (:func:`sweep.tasks.exploded`);
    a diverged fit's ``artifacts`` are dropped, so its model is never written.
    """
    val_acc = [row.get("val_accuracy", math.nan) for row in history]
    best = int(np.nanargmax(val_acc)) if not np.isnan(val_acc).all() else len(history) - 1
    kept = len(history) - 1 if restored is None else restored
    final = history[kept]
    metrics = {
        "train_loss": final.get("loss", math.nan),
        "train_accuracy": final.get("accuracy", math.nan),
        "val_loss": final.get("val_loss", math.nan),
        "val_accuracy": final.get("val_accuracy", math.nan),
        "best_val_accuracy": val_acc[best],
        "best_epoch": best + 1,
        "epochs_run": len(history),
        "restored_epoch": kept + 1,
    }
    diverged = exploded(history)
    return Fitted(metrics, history, {} if diverged else artifacts, diverged, trained_by)
