"""Keras model builders; ``model._target_`` names one of them or a user's own.

A builder is called with the ``model`` node's keys (minus ``name``) plus what the task
knows: ``input_shape``, ``n_classes`` and the ``regularizer`` node's ``l1``, ``l2`` and
``dropout``. It returns an uncompiled ``keras.Model`` ending in a softmax over
``n_classes``; the task compiles it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sweep.backend import keras
from sweep.config import SweepConfigError


def _penalty(l1: float, l2: float):
    if l1 and l2:
        return keras().regularizers.L1L2(l1=l1, l2=l2)
    if l1:
        return keras().regularizers.L1(l1)
    if l2:
        return keras().regularizers.L2(l2)
    return None


def _dense_head(
    x, hidden_units: Sequence[int], activation: str, n_classes: int, l1: float, l2: float, dropout: float
):
    layers = keras().layers
    for units in hidden_units:
        x = layers.Dense(units, activation=activation, kernel_regularizer=_penalty(l1, l2))(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return layers.Dense(n_classes, activation="softmax")(x)


def mlp(
    input_shape: Sequence[int],
    n_classes: int,
    hidden_units: Sequence[int] = (128,),
    activation: str = "relu",
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float = 0.0,
):
    """Flatten, then ``Dense(units, activation)`` per entry of ``hidden_units`` (penalised, each followed by dropout), then softmax."""
    layers = keras().layers
    inputs = keras().Input(shape=tuple(input_shape))
    x = layers.Flatten()(inputs)
    return keras().Model(inputs, _dense_head(x, hidden_units, activation, n_classes, l1, l2, dropout), name="mlp")


def cnn(
    input_shape: Sequence[int],
    n_classes: int,
    filters: Sequence[int] = (16, 32),
    kernel_size: int = 3,
    hidden_units: Sequence[int] = (64,),
    activation: str = "relu",
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float = 0.0,
):
    """A small conv net for 2-D images: per entry of ``filters`` a same-padded conv and 2x2 max-pool, then an MLP head.

    Penalties go on every conv and hidden kernel; dropout follows every hidden dense layer.
    """
    if len(input_shape) not in (2, 3):
        raise ValueError(f"model=cnn needs 2-D images, got rows of shape {tuple(input_shape)}; use model=mlp")
    layers = keras().layers
    inputs = keras().Input(shape=tuple(input_shape))
    x = layers.Reshape((*input_shape, 1))(inputs) if len(input_shape) == 2 else inputs
    for n_filters in filters:
        x = layers.Conv2D(n_filters, kernel_size, padding="same", activation=activation, kernel_regularizer=_penalty(l1, l2))(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Flatten()(x)
    return keras().Model(inputs, _dense_head(x, hidden_units, activation, n_classes, l1, l2, dropout), name="cnn")


def checked_model(model, target: str, input_shape: Sequence[int], n_classes: int):
    """``model``, built by ``model._target_=target``, if it keeps the builder's contract; else a :class:`SweepConfigError` saying what was expected.

    A user's model is called once on a row of zeros: its output must be one row of
    ``n_classes`` probabilities (>= 0, summing to 1), whatever kind of model it is (functional,
    a ``Sequential`` not built yet, subclassed). The package's own builders keep the contract
    (tests check them), so their models skip the call and cost nothing more.
    """
    expected = f"expected a keras.Model ending in a softmax over {n_classes} classes"
    if not isinstance(model, keras().Model):
        raise SweepConfigError(f"model._target_={target} returned {type(model).__name__}; {expected}")
    if target.startswith(f"{__name__}."):
        return model
    out = model(np.zeros((1, *input_shape), np.float32), training=False)
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 2:
        got = f"rows of shape {shape[1:]}" if shape else f"a {type(out).__name__}"
        raise SweepConfigError(f"model._target_={target} outputs {got}; {expected}")
    if shape[1] != n_classes:
        raise SweepConfigError(f"model._target_={target} outputs {shape[1]} values per row; the data has {n_classes} classes")
    probabilities = np.asarray(out, np.float64)
    if probabilities.min() < 0 or abs(probabilities.sum() - 1.0) > 1e-3:
        raise SweepConfigError(f"model._target_={target} outputs values that are not probabilities; {expected}")
    return model
