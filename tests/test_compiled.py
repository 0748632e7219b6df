"""The reused MLP graph (sweep.tasks.compiled): model.fit's math, and a job's numbers independent of what ran before it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from sweep.backend import keras, reset, seed_everything
from sweep.data import load_dataset
from sweep.run import Job, run_job
from sweep.splits import make_folds
from sweep.tasks import compiled
from sweep.tasks.classify import build_model, classify


def _rows(cfg):
    data = load_dataset(cfg.dataset)
    (fold,) = make_folds(cfg.validation, data.y)
    return data.x[fold.train], data.y[fold.train], data.x[fold.val], data.y[fold.val]


def _fit(*overrides: str):
    cfg = compose_config("trainer.save_model=false", *overrides)
    reset()
    seed_everything(cfg.seed)
    return classify(cfg, *_rows(cfg))


#: Optimizer settings whose update the compiled graph reproduces, each with a learning rate that moves the weights.
OPTIMIZERS = {
    "adam": ("optimizer.lr=0.01",),
    "sgd": ("optimizer=sgd", "optimizer.momentum=0.0", "optimizer.lr=0.05"),
    "sgd_momentum": ("optimizer=sgd", "optimizer.lr=0.05"),  # the schema's momentum, 0.9
    "sgd_nesterov": ("optimizer=sgd", "optimizer.nesterov=true", "optimizer.lr=0.05"),
    "rmsprop": ("optimizer=rmsprop", "optimizer.rho=0.8", "optimizer.lr=0.01"),
    "rmsprop_momentum": ("optimizer=rmsprop", "optimizer.momentum=0.5", "optimizer.lr=0.01"),
}


def test_the_tutorial_mlp_takes_the_compiled_path_and_nothing_else_does() -> None:
    assert compiled.supports(compose_config())
    assert compiled.supports(compose_config("regularizer=l1_l2", "regularizer.dropout=0.3", "model.hidden_units=[32,16]"))
    for overrides in OPTIMIZERS.values():
        assert compiled.supports(compose_config(*overrides)), overrides
    assert not compiled.supports(compose_config("optimizer=sgd", "optimizer.momentum=1.5"))  # Keras' ValueError, via model.fit
    assert not compiled.supports(compose_config("optimizer=rmsprop", "optimizer.momentum=-0.5"))
    assert not compiled.supports(compose_config("optimizer._target_=keras.optimizers.Nadam"))
    assert not compiled.supports(compose_config("model=cnn"))
    assert not compiled.supports(compose_config("trainer.early_stopping_patience=2"))
    assert not compiled.supports(compose_config("trainer.verbose=1"))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_steps_equal_keras_train_on_batch_and_leave_the_optimizers_state(optimizer: str) -> None:
    """Same weights, same batches: the compiled steps and Keras' land on the same weights, loss and optimizer state.

    The state is checked as ``keras_model`` hands it to the saved model: its optimizer's
    variables (step count, learning rate, slots) equal those of the Keras model that trained.
    """
    import tensorflow as tf

    cfg = compose_config("regularizer=l1_l2", "regularizer.l1=0.001", "regularizer.l2=0.01", *OPTIMIZERS[optimizer])
    x, y, _, _ = _rows(cfg)
    model = build_model(cfg, x.shape[1:], 10)
    trainer = compiled.Trainer(compiled.Shape(64, (128,), "relu", 10), compiled.Rule.of(cfg), own_session=False)
    for ours, theirs in zip(trainer.weights, model.get_weights()):
        ours.assign(theirs)
    lr, opt = cfg.optimizer.lr, compiled.optimizer_inputs(cfg)

    @tf.function
    def step(xb, yb):
        return trainer._step(xb, yb, lr, 0.001, 0.01, 0.0, tf.constant(opt), tf.constant([0, 0], tf.int64))

    for start in (0, 32, 64, 0, 96):  # a batch seen twice: the slots' decay, not only their first value
        xb, yb = x[start : start + 32], y[start : start + 32]
        loss, _ = step(tf.constant(xb.reshape(32, -1)), tf.constant(yb))
        keras_loss = model.train_on_batch(xb, yb, return_dict=True)["loss"]
        assert float(loss) == pytest.approx(keras_loss, rel=1e-5)
    for ours, theirs in zip(trainer.weights, model.get_weights()):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-6)
    state = trainer.state([v.numpy() for v in trainer.variables])
    assert len(model.optimizer.variables) == 2 + len(state.slots) * len(state.weights)  # iterations, learning rate, slots
    reset()
    kept = compiled.keras_model(cfg, x.shape[1:], 10, state)
    for ours, theirs in zip(kept.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6, err_msg=ours.path)


def test_a_job_gives_the_same_numbers_first_or_after_others() -> None:
    first = _fit("trainer.epochs=3", "regularizer.dropout=0.5")
    _fit("trainer.epochs=2", "optimizer.lr=0.01", "regularizer.l2=0")
    _fit("trainer.epochs=3", "seed=1", "validation=kfold", "validation.fold=2")
    _fit("trainer.epochs=2", "optimizer=rmsprop", "optimizer.momentum=0.5")  # another graph in between
    again = _fit("trainer.epochs=3", "regularizer.dropout=0.5")
    compiled.trainer.cache_clear()  # a brand-new graph, as in a fresh process
    fresh = _fit("trainer.epochs=3", "regularizer.dropout=0.5")
    assert first.history == again.history == fresh.history
    assert first.metrics == again.metrics == fresh.metrics


def test_seed_and_hyperparameters_change_the_numbers() -> None:
    base = _fit("trainer.epochs=2")
    for other in ("seed=1", "optimizer.lr=0.01", "regularizer.l2=0", "regularizer.dropout=0.5"):
        assert _fit("trainer.epochs=2", other).history != base.history, other


def test_optimizer_settings_are_inputs_of_one_graph_per_update_rule() -> None:
    """Momentum and rho change the numbers, not the graph; a momentum slot or Nesterov's update is another graph."""
    compiled.trainer.cache_clear()
    sgd = [_fit("trainer.epochs=1", "optimizer=sgd", f"optimizer.momentum={m}") for m in (0.9, 0.5)]
    rmsprop = [_fit("trainer.epochs=1", "optimizer=rmsprop", f"optimizer.rho={rho}") for rho in (0.9, 0.5)]
    assert compiled.trainer.cache_info().currsize == 2
    assert sgd[0].history != sgd[1].history and rmsprop[0].history != rmsprop[1].history
    sgd_rules = [(), ("optimizer.nesterov=true",), ("optimizer.momentum=0.0",), ("optimizer.momentum=0.0", "optimizer.nesterov=true")]
    rules = [compiled.Rule.of(compose_config("optimizer=sgd", *more)) for more in sgd_rules]
    assert rules == [compiled.Rule("sgd", True), compiled.Rule("sgd", True, True), compiled.Rule("sgd"), compiled.Rule("sgd")]


def test_a_diverging_run_stops_after_the_first_nan_epoch(tmp_path: Path) -> None:
    record = run_job(compose_config("optimizer.lr=1e30", "trainer.epochs=5"), Job(tmp_path))
    assert record["status"] == "diverged" and record["epochs_run"] < 5
    assert not math.isfinite(record["train_loss"])
    assert not (tmp_path / "model.keras").exists()


@pytest.mark.parametrize(("optimizer", "slots"), [("adam", 2), ("sgd", 0), ("sgd_momentum", 1), ("rmsprop_momentum", 2)])
def test_the_saved_model_is_the_trained_one_with_its_optimizer_state(optimizer: str, slots: int, tmp_path: Path) -> None:
    cfg = compose_config("trainer.epochs=2", *OPTIMIZERS[optimizer])
    record = run_job(cfg, Job(tmp_path))
    model = keras().models.load_model(tmp_path / "model.keras")
    _, y_train, x_val, y_val = _rows(cfg)
    assert (model.predict(x_val, verbose=0).argmax(1) == y_val).mean() == pytest.approx(record["val_accuracy"], abs=1e-6)
    assert int(model.optimizer.iterations.numpy()) == 2 * math.ceil(len(y_train) / 32)
    assert len(model.optimizer.variables) == 2 + slots * len(model.trainable_variables)
    assert all(np.abs(v.numpy()).max() > 0 for v in model.optimizer.variables[2:])  # trained state, not zeros


def test_the_kept_keras_model_saves_the_config_a_fresh_build_would() -> None:
    """Whatever configs came before in the process, model.keras gets a fresh build's config (names included)."""
    x, _, _, _ = _rows(compose_config())
    weights = [w.numpy() for w in compiled.Trainer(compiled.Shape(64, (128,), "relu", 10), own_session=False).weights]
    for overrides in [
        ("regularizer.l2=0.01", "regularizer.dropout=0.5", "optimizer.lr=0.001"),
        ("regularizer.l2=0.1", "regularizer.dropout=0.2", "optimizer.lr=0.01"),
        ("regularizer=l1_l2", "regularizer.dropout=0.3"),
        ("regularizer.l2=0", "regularizer.dropout=0"),
        ("optimizer=sgd", "optimizer.momentum=0.5"),
        ("optimizer=rmsprop", "optimizer.momentum=0.5", "optimizer.lr=0.01"),
        ("regularizer.l2=0.01", "regularizer.dropout=0.5", "optimizer.lr=0.001"),
    ]:
        cfg = compose_config(*overrides)
        state = compiled.TrainedState(weights, [[np.zeros_like(w) for w in weights] for _ in compiled.Rule.of(cfg).slots], 0)
        reset()  # as run_job does before every fit
        kept = compiled.keras_model(cfg, x.shape[1:], 10, state)
        reset()
        fresh = build_model(cfg, x.shape[1:], 10)
        assert kept.get_config() == fresh.get_config(), overrides
        assert kept.optimizer.get_config() == fresh.optimizer.get_config(), overrides


def test_saving_with_keras_skip_sets_kept_writes_the_same_model_file(tmp_path: Path) -> None:
    """``sweep.backend.save_model`` (Keras' cache of attribute skip-sets mended) writes what ``model.save`` writes."""
    import zipfile

    from sweep.backend import save_model

    cfg = compose_config("regularizer.dropout=0.5")
    reset()
    model = build_model(cfg, (64,), 10)
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "plain.keras")
    save_model(model, str(tmp_path / "kept.keras"))
    save_model(model, str(tmp_path / "again.keras"))
    for name in ("kept.keras", "again.keras"):
        plain_zip, kept_zip = zipfile.ZipFile(tmp_path / "plain.keras"), zipfile.ZipFile(tmp_path / name)
        assert plain_zip.namelist() == kept_zip.namelist()
        assert plain_zip.read("config.json") == kept_zip.read("config.json")
    plain, *kept = [keras().models.load_model(tmp_path / name) for name in ("plain.keras", "kept.keras", "again.keras")]
    for other in kept:
        pairs = zip(plain.weights + plain.optimizer.variables, other.weights + other.optimizer.variables, strict=True)
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)
