"""Overrides reach the built Keras model: layers and units, penalties, dropout, optimizer and learning rate."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import compose_config
from sweep.backend import keras
from sweep.config import SweepConfigError
from sweep.engines.keras_fit import build_model
from sweep.models import Output


def layers_of(model, kind: str) -> list:
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def test_the_default_model_is_the_tutorials_l2_mlp() -> None:
    model = build_model(compose_config(), (8, 8), Output(10))
    hidden, output = layers_of(model, "Dense")
    assert (hidden.units, hidden.activation.__name__, output.units, output.activation.__name__) == (128, "relu", 10, "softmax")
    assert float(hidden.kernel_regularizer.l2) == pytest.approx(0.01) and output.kernel_regularizer is None
    assert not layers_of(model, "Dropout")
    assert type(model.optimizer).__name__ == "Adam" and float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_layers_units_and_dropout_follow_the_config() -> None:
    cfg = compose_config("model.hidden_units=[256,64,32]", "regularizer=dropout", "regularizer.dropout=0.3")
    model = build_model(cfg, (8, 8), Output(10))
    assert [layer.units for layer in layers_of(model, "Dense")] == [256, 64, 32, 10]
    assert [layer.rate for layer in layers_of(model, "Dropout")] == [0.3, 0.3, 0.3]
    assert all(layer.kernel_regularizer is None for layer in layers_of(model, "Dense"))


@pytest.mark.parametrize(
    ("overrides", "l1", "l2"),
    [
        (["regularizer=l1", "regularizer.l1=1e-4"], 1e-4, None),
        (["regularizer=l2", "regularizer.l2=0.05"], None, 0.05),
        (["regularizer=l1_l2", "regularizer.l1=0.002", "regularizer.l2=0.003"], 0.002, 0.003),
    ],
)
def test_penalties_go_on_every_hidden_kernel(overrides: list[str], l1: float | None, l2: float | None) -> None:
    model = build_model(compose_config("model.hidden_units=[32,16]", *overrides), (8, 8), Output(10))
    *hidden, output = layers_of(model, "Dense")
    for layer in hidden:
        penalty = layer.kernel_regularizer.get_config()
        assert penalty.get("l1") == pytest.approx(l1) if l1 else "l1" not in penalty or penalty["l1"] == 0
        assert penalty.get("l2") == pytest.approx(l2) if l2 else "l2" not in penalty or penalty["l2"] == 0
    assert output.kernel_regularizer is None


@pytest.mark.parametrize(("name", "cls", "lr"), [("sgd", "SGD", 0.05), ("rmsprop", "RMSprop", 0.002), ("adam", "Adam", 0.02)])
def test_optimizer_class_and_learning_rate(name: str, cls: str, lr: float) -> None:
    model = build_model(compose_config(f"optimizer={name}", f"optimizer.lr={lr}"), (8, 8), Output(10))
    assert type(model.optimizer).__name__ == cls and float(model.optimizer.learning_rate) == pytest.approx(lr)


def test_sgd_momentum_reaches_the_optimizer() -> None:
    model = build_model(compose_config("optimizer=sgd", "optimizer.momentum=0.5", "optimizer.nesterov=true"), (8, 8), Output(10))
    assert float(model.optimizer.momentum) == pytest.approx(0.5) and model.optimizer.nesterov


def test_the_cnn_convolves_images_and_ends_in_a_softmax() -> None:
    model = build_model(compose_config("model=cnn", "model.filters=[4,8]", "regularizer.l2=0.001"), (8, 8), Output(10))
    convs = layers_of(model, "Conv2D")
    assert [c.filters for c in convs] == [4, 8] and all(float(c.kernel_regularizer.l2) == pytest.approx(0.001) for c in convs)
    assert model.output_shape == (None, 10)


def test_a_users_own_builder_plugs_in_through_target() -> None:
    import custom_builders

    custom_builders.BUILT.clear()
    model = build_model(compose_config("model._target_=custom_builders.recorded_mlp"), (8, 8), Output(10))
    assert custom_builders.BUILT[0][0] is model and isinstance(model, keras().Model)


@pytest.mark.parametrize(
    ("builder", "message"),
    [
        ("returns_none", "returned NoneType; expected a keras.Model ending in a softmax over 10 classes"),
        ("three_classes", "outputs 3 values per row; the data has 10 classes"),
        ("logits", "outputs values that are not probabilities; expected a keras.Model ending in a softmax over 10 classes"),
    ],
)
def test_a_builder_that_breaks_the_contract_is_named_with_what_was_expected(builder: str, message: str) -> None:
    cfg = compose_config(f"model._target_=custom_builders.{builder}")
    with pytest.raises(SweepConfigError) as raised:
        build_model(cfg, (8, 8), Output(10))
    assert str(raised.value) == f"model._target_=custom_builders.{builder} {message}"


def test_a_builder_may_return_a_sequential_model_that_is_not_built_yet() -> None:
    model = build_model(compose_config("model._target_=custom_builders.sequential"), (8, 8), Output(10))
    assert model.predict(np.zeros((2, 8, 8)), verbose=0).shape == (2, 10)
