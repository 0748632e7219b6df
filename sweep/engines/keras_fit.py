"""The ``model.fit`` engine: Keras' own loop, for every network the batched graph does not cover (CNNs, user models)."""

from __future__ import annotations

import time
from functools import partial

from omegaconf import DictConfig

from sweep.backend import keras, reset, save_model, seed_everything
from sweep.config import build
from sweep.engines.fitted import Fitted, summarize
from sweep.engines.hooks import class_weights, learning_rate, time_limit, user_callbacks
from sweep.engines.member import Member
from sweep.models import Output, checked_model, in_target_units


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], output: Output):
    """The compiled model that ``cfg.model``, ``cfg.regularizer`` and ``cfg.optimizer`` describe, ending in ``output``.

    The builder's model is checked first (:func:`sweep.models.checked_model`), so a builder returning
    the wrong thing is named in one line instead of failing inside ``compile`` or ``fit``. A
    classifier is compiled with the sparse cross-entropy and ``accuracy``; a regression with
    ``task.loss`` and ``mae``, ``mse``, after :func:`sweep.models.in_target_units`.
    """
    reg = cfg.regularizer
    width = {"n_outputs": 1} if output.regression else {"n_classes": output.classes}
    built = build(
        cfg.model, input_shape=list(input_shape), **width, l1=reg.get("l1", 0.0), l2=reg.get("l2", 0.0), dropout=reg.get("dropout", 0.0)
    )
    model = checked_model(built, cfg.model.get("_target_"), input_shape, output)
    optimizer = build(cfg.optimizer, reserved=("lr",), learning_rate=learning_rate(cfg.optimizer))
    if output.regression:
        model = in_target_units(model, input_shape, output)
        model.compile(optimizer=optimizer, loss=cfg.task.loss, metrics=["mae", "mse"])
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_keras(member: Member) -> Fitted:
    """Train a fresh model on the member's rows with ``model.fit``, validating every epoch, from a clean, seeded start.

    Stops at once when the loss becomes NaN/inf; with early stopping, Keras restores the best
    epoch's weights and the metrics are that epoch's. The session is cleared and every
    generator seeded first (op determinism as ``trainer.deterministic`` says), so a fit's
    numbers never depend on what ran before it in the process; its ``fit_time_s`` is the
    model's build and fit alone. ``trainer.callbacks`` run after sweep's own, in their order
    (:mod:`sweep.engines.hooks`); past ``trainer.timeout_s`` the fit stops and raises ``TimeoutError``.
    """
    cfg, trainer = member.cfg, member.cfg.trainer
    reset(collect=True)
    seed_everything(cfg.seed, trainer.get("deterministic", True))
    x_train, y_train, x_val, y_val = member.arrays()
    start = time.perf_counter()
    model = build_model(cfg, x_train.shape[1:], member.output)
    stopping = None
    if trainer.get("early_stopping_patience") is not None:
        stopping = keras().callbacks.EarlyStopping(
            monitor=trainer.early_stopping_monitor, patience=trainer.early_stopping_patience, restore_best_weights=True
        )
    limit = time_limit(member.deadline)
    callbacks = [keras().callbacks.TerminateOnNaN(), *(c for c in (stopping, limit) if c), *user_callbacks(member)]
    fit = model.fit(
        x_train,
        y_train,
        epochs=trainer.epochs,
        batch_size=trainer.batch_size,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        class_weight=class_weights(member),
        verbose=trainer.verbose,
    )
    if limit is not None and limit.stopped_in is not None:
        raise TimeoutError(f"trainer.timeout_s={trainer.timeout_s:g}: stopped in epoch {limit.stopped_in} of {trainer.epochs}")
    history = [
        {"epoch": epoch, **dict(zip(fit.history, map(float, values)))}
        for epoch, values in enumerate(zip(*fit.history.values()), start=1)
    ]
    # Keras 3 restores the best epoch's weights at the end of training, stopped early or not
    restored = stopping.best_epoch if stopping is not None and stopping.best_weights is not None else None
    artifacts = {"model.keras": partial(save_model, model)} if trainer.save_model else {}
    fitted = summarize(history, restored, artifacts, "model.fit", y_val if member.output.regression else None)
    fitted.metrics["fit_time_s"] = time.perf_counter() - start
    return fitted
