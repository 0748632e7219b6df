"""Keras model builders; ``model._target_`` names one of them or a user's own.

A builder is called with the ``model`` node's keys (minus ``name``) plus what the task
knows: ``input_shape``, ``n_classes`` (task=classify) or ``n_outputs=1`` (task=regress) and
the ``regularizer`` node's ``l1``, ``l2`` and ``dropout``. It returns an uncompiled
``keras.Model`` ending in a softmax over ``n_classes``, or in ``n_outputs`` linear units (sweep
appends the layer mapping them to the target's units); the task compiles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sweep.backend import keras
from sweep.config import SweepConfigError


@dataclass(frozen=True)
class Output:
    """A network's last layer: a softmax over ``classes`` (task=classify), or (``classes`` 0, task=regress) one linear
    unit mapped to the target's units by Keras' ``Normalization(mean, variance, invert=True)``, holding the training
    rows' target ``mean`` and ``variance``: the network learns a standardized target and predicts in the target's units."""

    classes: int = 0
    mean: float = 0.0
    variance: float = 1.0

    @property
    def regression(self) -> bool:
        return self.classes == 0

    @property
    def units(self) -> int:
        """The last Dense layer's width."""
        return self.classes or 1



def _penalty(l1: float, l2: float):
    if l1 and l2:
        return keras().regularizers.L1L2(l1=l1, l2=l2)
    if l1:
        return keras().regularizers.L1(l1)
    if l2:
        return keras().regularizers.L2(l2)
    return None


def _dense_head(
    x, hidden_units: Sequence[int], activation: str, n_classes: int | None, l1: float, l2: float, dropout: float, n_outputs: int | None
):
    layers = keras().layers
    for units in hidden_units:
        x = layers.Dense(units, activation=activation, kernel_regularizer=_penalty(l1, l2))(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return layers.Dense(n_outputs)(x) if n_outputs else layers.Dense(n_classes, activation="softmax")(x)


def mlp(
    input_shape: Sequence[int],
    n_classes: int | None = None,
    hidden_units: Sequence[int] = (128,),
    activation: str = "relu",
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float = 0.0,
    n_outputs: int | None = None,
):
    """Flatten, then ``Dense(units, activation)`` per entry of ``hidden_units`` (penalised, each followed by dropout), then softmax (or linear)."""
    layers = keras().layers
    inputs = keras().Input(shape=tuple(input_shape))
    x = layers.Flatten()(inputs)
    return keras().Model(inputs, _dense_head(x, hidden_units, activation, n_classes, l1, l2, dropout, n_outputs), name="mlp")


def cnn(
    input_shape: Sequence[int],
    n_classes: int | None = None,
    filters: Sequence[int] = (16, 32),
    kernel_size: int = 3,
    hidden_units: Sequence[int] = (64,),
    activation: str = "relu",
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float = 0.0,
    n_outputs: int | None = None,
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
    return keras().Model(inputs, _dense_head(x, hidden_units, activation, n_classes, l1, l2, dropout, n_outputs), name="cnn")


def checked_model(model, target: str, input_shape: Sequence[int], output: Output):
    """``model``, built by ``model._target_=target``, if it keeps the builder's contract; else a :class:`SweepConfigError` saying what was expected.

    A user's model is called once on a row of zeros: its output must be one row of
    ``output.classes`` probabilities (>= 0, summing to 1), or of one value for a regression,
    whatever kind of model it is (functional, a ``Sequential`` not built yet, subclassed). The
    package's own builders keep the contract (tests check them), so their models skip the call.
    """
    what = "one linear output (n_outputs=1)" if output.regression else f"a softmax over {output.classes} classes"
    expected = f"expected a keras.Model ending in {what}"
    if not isinstance(model, keras().Model):
        raise SweepConfigError(f"model._target_={target} returned {type(model).__name__}; {expected}")
    if target.startswith(f"{__name__}."):
        return model
    out = model(np.zeros((1, *input_shape), np.float32), training=False)
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 2:
        got = f"rows of shape {shape[1:]}" if shape else f"a {type(out).__name__}"
        raise SweepConfigError(f"model._target_={target} outputs {got}; {expected}")
    if shape[1] != output.units:
        has = "one target" if output.regression else f"{output.classes} classes"
        raise SweepConfigError(f"model._target_={target} outputs {shape[1]} values per row; the data has {has}")
    probabilities = np.asarray(out, np.float64)
    if not output.regression and (probabilities.min() < 0 or abs(probabilities.sum() - 1.0) > 1e-3):
        raise SweepConfigError(f"model._target_={target} outputs values that are not probabilities; {expected}")
    return model


def in_target_units(model, input_shape: Sequence[int], output: Output):
    """``model`` (a regression's linear output) followed by Keras' ``Normalization(invert=True)`` holding the
    training targets' mean and variance, so it learns a standardized target and predicts in the target's units.

    A functional model stays one flat model (its layers and then this one); any other is wrapped.
    """
    unscale = keras().layers.Normalization(mean=[output.mean], variance=[output.variance], invert=True, name="target_units")
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if isinstance(model, keras().Sequential) or not inputs or not outputs:  # not a functional graph of layers
        inputs = keras().Input(shape=tuple(input_shape))
        return keras().Model(inputs, unscale(model(inputs)), name=model.name)
    return keras().Model(inputs, unscale(outputs[0]), name=model.name)
