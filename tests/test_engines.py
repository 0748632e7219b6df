"""The engines (sweep.engines): how members are trained, and what their numbers do not depend on.

A member is one (config, fold). Members whose configs differ only in VECTORIZABLE keys train
together as one population of the batched graph (sweep.engines.graph); a single fit is a
population of one. The graph's math is Keras' (same steps, same optimizer state, the same
early stopping as ``EarlyStopping(restore_best_weights=True)``), and a member's numbers are
bitwise the same whatever population it trains in. Configs the graph does not cover train
with ``model.fit`` and say why.
"""

from __future__ import annotations

import json
import math
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config

from sweep.backend import keras, reset, save_model, seed_everything
from sweep.engines import (
    LOSS_BOUND,
    VECTORIZABLE,
    Fitted,
    Member,
    fit_members,
    graph,
    group_key,
    saved,
)
from sweep.engines.fitted import CLASSIFICATION_COLUMNS
from sweep.engines.keras_fit import build_model
from sweep.engines.optimizers import Rule
from sweep.engines.saved import TrainedState, keras_model
from sweep.models import Output
from sweep.run import Job, check, run_job, train

KFOLD = ("trainer.epochs=2", "trainer.save_model=false", "validation=kfold")
HOLDOUT = ("trainer.epochs=8", "trainer.save_model=false")

#: Optimizer settings whose update the graph reproduces, each with a learning rate that moves the weights.
OPTIMIZERS = {
    "adam": ("optimizer.lr=0.01",),
    "sgd": ("optimizer=sgd", "optimizer.momentum=0.0", "optimizer.lr=0.05"),
    "sgd_momentum": ("optimizer=sgd", "optimizer.lr=0.05"),  # the schema's momentum, 0.9
    "sgd_nesterov": ("optimizer=sgd", "optimizer.nesterov=true", "optimizer.lr=0.05"),
    "rmsprop": ("optimizer=rmsprop", "optimizer.rho=0.8", "optimizer.lr=0.01"),
    "rmsprop_momentum": ("optimizer=rmsprop", "optimizer.momentum=0.5", "optimizer.lr=0.01"),
}
#: Each update rule a population trains (momentum and rho are the population's, the learning rate each member's).
RULES = {
    "adam": (),
    "sgd": ("optimizer=sgd", "optimizer.momentum=0.0"),
    "sgd_momentum": ("optimizer=sgd",),
    "sgd_nesterov": ("optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0.8"),
    "rmsprop": ("optimizer=rmsprop", "optimizer.rho=0.8"),
    "rmsprop_momentum": ("optimizer=rmsprop", "optimizer.momentum=0.5"),
}
#: Eight configs differing only in VECTORIZABLE keys; with validation=kfold, 40 members.
MIXED = [
    (),
    ("optimizer.lr=0.003",),
    ("regularizer.l2=0",),
    ("regularizer.l2=0.001", "seed=7"),
    ("regularizer.dropout=0.5",),
    ("regularizer.dropout=0.2", "optimizer.lr=0.002", "seed=3"),
    ("seed=1",),
    ("regularizer.l1=0.001", "regularizer.dropout=0.3", "seed=2"),
]


def _members(cfg) -> list[Member]:
    """Every fold of ``cfg`` as a member, as :func:`sweep.run.train` makes them."""
    data, folds = check(cfg)
    return [Member(cfg, data.x, data.y, fold.train, fold.val, fold.index) for fold in folds]


def _solo(*overrides: str) -> Fitted:
    """The one fold ``overrides`` name, trained alone: a population of one."""
    cfg = compose_config(*overrides)
    [(_, fit)] = train([cfg], [check(cfg)])[0].fits
    return fit


@cache
def _holdout(*overrides: str) -> Fitted:
    """A holdout run of eight epochs (kept: several tests read the same one)."""
    return _solo(*HOLDOUT, *overrides)


def _curve(fit: Fitted) -> np.ndarray:
    """The history as an array: one row of a classifier's columns per epoch run."""
    return np.array([[row[c] for c in CLASSIFICATION_COLUMNS] for row in fit.history])


def _assert_same_bits(ours: Fitted, theirs: Fitted) -> None:
    """Equal to the last bit: every epoch's numbers, the final metrics (but the time), divergence."""
    assert ours.diverged == theirs.diverged
    assert np.array_equal(_curve(ours), _curve(theirs), equal_nan=True)
    assert [row["epoch"] for row in ours.history] == [row["epoch"] for row in theirs.history]
    names = [name for name in ours.metrics if name != "fit_time_s"]
    assert names == [name for name in theirs.metrics if name != "fit_time_s"]
    assert np.array_equal([ours.metrics[n] for n in names], [theirs.metrics[n] for n in names], equal_nan=True)


def _assert_close(ours: np.ndarray, theirs: np.ndarray, what: str = "") -> None:
    """Equal up to float32 rounding, relative to the array's own scale (a slot of 1e-9s is compared as such)."""
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * float(np.abs(theirs).max()) + 1e-12, err_msg=what)


# --- which configs the graph takes ------------------------------------------------------------------


def test_the_graph_takes_the_tutorial_mlp_and_names_the_key_it_cannot_take() -> None:
    for overrides in [
        (),
        ("regularizer=l1_l2", "regularizer.dropout=0.3", "model.hidden_units=[32,16]"),
        ("trainer.early_stopping_patience=2",),
        ("trainer.early_stopping_patience=0", "trainer.early_stopping_monitor=val_accuracy"),
        *OPTIMIZERS.values(),
    ]:
        assert graph.unsupported(compose_config(*overrides)) is None, overrides
    for overrides, key in [
        (("model=cnn",), "model._target_="),
        (("optimizer._target_=keras.optimizers.Nadam",), "optimizer._target_="),
        (("optimizer=rmsprop", "optimizer.momentum=-0.5"), "optimizer.momentum="),
        (("optimizer=sgd", "optimizer.momentum=1.5"), "optimizer.momentum="),  # Keras' ValueError, via model.fit
        (("trainer.verbose=1",), "trainer.verbose="),
    ]:
        reason = graph.unsupported(compose_config(*overrides))
        assert isinstance(reason, str) and reason.startswith(key) and "\n" not in reason, (overrides, reason)


def test_a_config_the_graph_does_not_cover_trains_with_model_fit_and_says_why() -> None:
    """Its Fitted names the engine and why; the graph kept from before is untouched by model.fit's reset and seeding."""
    overrides = (*KFOLD, "validation.fold=1", "regularizer.dropout=0.5")
    first = _solo(*overrides)
    cfg = compose_config(*KFOLD, "trainer.epochs=1", "validation.fold=0", "optimizer._target_=keras.optimizers.Nadam")
    [fit] = fit_members(_members(cfg))
    assert fit.trained_by == "model.fit" and fit.population_size == 1
    assert fit.graph_unsupported == graph.unsupported(cfg) and fit.graph_unsupported.startswith("optimizer._target_=")
    assert fit.metrics["epochs_run"] == 1 and 0.3 < fit.metrics["val_accuracy"] <= 1.0
    assert (fit.n_train_rows, fit.n_val_rows) == (1149, 288)
    _assert_same_bits(_solo(*overrides), first)  # the graph kept from before model.fit, untouched by it


def test_a_graph_traced_after_a_model_fit_fit_has_the_bits_of_one_traced_before() -> None:
    """The model.fit engine seeds every generator and turns op determinism on before its fit; a graph traced after has the same bits.

    (TensorFlow traces ``tf.nn.sparse_softmax_cross_entropy_with_logits`` as another
    implementation under op determinism, whose gradient differs in the last bits: the graph
    must not depend on it.)
    """
    from tensorflow.python.framework import config as tf_config

    overrides = (*KFOLD, "validation.fold=1")
    tf_config.disable_op_determinism()  # as in a sweep process where no model.fit ran yet
    graph.compiled.cache_clear()  # a brand-new graph, as in a fresh process
    before = _solo(*overrides)
    seed_everything(0)  # what sweep.engines.keras_fit.fit_keras calls first: op determinism on
    graph.compiled.cache_clear()
    _assert_same_bits(_solo(*overrides), before)


def test_optimizer_settings_are_inputs_of_one_graph_per_update_rule() -> None:
    """Momentum and rho change the numbers, not the graph; a momentum slot or Nesterov's update is another graph."""
    for name, values in [("momentum", (0.9, 0.5)), ("rho", (0.9, 0.5))]:
        opt = "optimizer=sgd" if name == "momentum" else "optimizer=rmsprop"
        cfgs = [compose_config(*KFOLD, "trainer.epochs=1", "validation.fold=0", opt, f"optimizer.{name}={v}") for v in values]
        plans = [graph.Plan.of(_members(cfg)) for cfg in cfgs]
        assert plans[0] == plans[1], name
        if name == "momentum":
            first, second = (fit_members(_members(cfg))[0] for cfg in cfgs)
            assert not np.array_equal(_curve(first), _curve(second)), name
        else:
            feeds = [graph._inputs(graph.Plan.of(members), members)[8] for members in map(_members, cfgs)]
            assert not np.array_equal(*feeds)  # Feeds.opt
    sgd_rules = [(), ("optimizer.nesterov=true",), ("optimizer.momentum=0.0",), ("optimizer.momentum=0.0", "optimizer.nesterov=true")]
    rules = [Rule.of(compose_config("optimizer=sgd", *more)) for more in sgd_rules]
    assert rules == [Rule("sgd", True), Rule("sgd", True, True), Rule("sgd"), Rule("sgd")]
    assert [Rule.of(compose_config(*RULES[r])).slots for r in ("adam", "sgd", "sgd_momentum", "rmsprop", "rmsprop_momentum")] == [
        ("_momentums", "_velocities"),
        (),
        ("momentums",),
        ("_velocities",),
        ("_velocities", "_momentums"),
    ]


# --- the graph's math is Keras' -------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_steps_equal_keras_train_on_batch_and_leave_the_optimizers_state(optimizer: str) -> None:
    """Same weights, same batches: the graph's steps and Keras' land on the same weights, loss and optimizer state.

    The graph's pieces are driven by hand, a population of one: its state starts from the
    Keras model's initial weights. The state is then checked as ``keras_model`` hands it to the
    saved model: its optimizer's variables (step count, learning rate, slots) equal those of
    the Keras model that trained.
    """
    import tensorflow as tf

    cfg = compose_config("regularizer=l1_l2", "regularizer.l1=0.001", "regularizer.l2=0.01", *OPTIMIZERS[optimizer])
    [member] = _members(cfg)
    x, y = member.x, member.y
    reset()
    seed_everything(cfg.seed)
    model = build_model(cfg, x.shape[1:], member.output)
    plan = graph.Plan.of([member])
    population = graph.Population(plan)
    feeds = graph.Feeds.of([tf.constant(v) for v in graph._inputs(plan, [member])])
    params = [tf.constant(w.reshape(1, -1, w.shape[-1])) for w in model.get_weights()]  # a leading member axis; biases [1, 1, units]
    state = graph.State(params, [[tf.zeros_like(p) for p in params] for _ in plan.rule.slots], tf.zeros([1]))
    one, active = tf.constant([32], tf.int32), tf.constant([True])

    for start in (0, 32, 64, 0, 96):  # a batch seen twice: the slots' decay, not only their first value
        rows = member.train[start : start + 32]
        state, (loss_sum, hits) = population.step(feeds, state, tf.constant(rows[None], tf.int32), one, active, [])
        theirs = model.train_on_batch(x[rows], y[rows], return_dict=True)
        assert float(loss_sum[0]) / 32 == pytest.approx(theirs["loss"], rel=1e-5)  # penalty included
        assert float(hits[0]) / 32 == pytest.approx(theirs["accuracy"], abs=1e-6)
    for ours, theirs in zip(state.params, model.get_weights(), strict=True):
        _assert_close(ours.numpy()[0].reshape(theirs.shape), theirs, "weights")
    assert int(state.iterations.numpy()[0]) == int(model.optimizer.iterations.numpy()) == 5
    for name, slot in zip(plan.rule.slots, state.slots, strict=True):
        for ours, theirs in zip(slot, getattr(model.optimizer, name), strict=True):
            _assert_close(ours.numpy()[0].reshape(theirs.shape), theirs.numpy(), name)
    unstacked = [w.shape for w in model.get_weights()]
    weights = [p.numpy()[0].reshape(shape) for p, shape in zip(state.params, unstacked)]
    slots = [[s.numpy()[0].reshape(shape) for s, shape in zip(slot, unstacked)] for slot in state.slots]
    assert len(model.optimizer.variables) == 2 + len(slots) * len(weights)  # iterations, learning rate, slots
    reset()
    kept = keras_model(cfg, x.shape[1:], member.output, TrainedState(weights, slots, 5))
    for ours, theirs in zip(kept.optimizer.variables, model.optimizer.variables, strict=True):
        _assert_close(ours.numpy(), theirs.numpy(), ours.path)
    for ours, theirs in zip(kept.get_weights(), model.get_weights(), strict=True):
        _assert_close(ours, theirs, "kept weights")


# --- a member's numbers do not depend on its population ------------------------------------------------


@pytest.mark.parametrize("rule", ["adam", "sgd_nesterov", "rmsprop_momentum"])
def test_a_member_alone_has_the_bits_it_has_in_a_mixed_population(rule: str) -> None:
    """8 configs x 5 folds in one population of 40: each member picked equals its run alone, bit for bit.

    The picks differ from the population in their graph too: one alone without dropout or
    L1 leaves those terms out of its graph, which must change no bit. (RMSprop's
    ``g / sqrt(v + eps)`` is where TensorFlow's graph rewrites, turning it into ``g * rsqrt``,
    once gave a member other last bits in another population.)
    """
    cfgs = [compose_config(*KFOLD, *RULES[rule], *overrides) for overrides in MIXED]
    population = train(cfgs, [check(cfg) for cfg in cfgs])
    assert [len(trained.fits) for trained in population] == [5] * 8
    fits = [fit for trained in population for _, fit in trained.fits]
    assert {(fit.trained_by, fit.population_size) for fit in fits} == {("graph", 40)}
    assert not any(fit.diverged for fit in fits)
    for config, fold in [(2, 1), (7, 4)]:  # no penalty; l1, l2 and dropout with another seed
        alone = _solo(*KFOLD, *RULES[rule], *MIXED[config], f"validation.fold={fold}")
        assert alone.population_size == 1
        index, member = population[config].fits[fold]
        assert index == fold
        _assert_same_bits(alone, member)
    # and the members are not all the same run: every config's fold 0 has numbers of its own
    curves = [_curve(trained.fits[0][1]).tobytes() for trained in population]
    assert len(set(curves)) == len(curves)


def test_chunks_of_a_population_train_the_same_bits_and_share_their_time() -> None:
    """fit_members splits members into the fewest near-equal populations of at most max_population."""
    cfgs = [compose_config(*KFOLD, *overrides) for overrides in MIXED[3:6]]
    folds = [_members(cfg) for cfg in cfgs]
    members = [folds[0][0], folds[0][1], folds[1][2], folds[2][1], folds[2][4]]  # l2 and seed; dropout; dropout, lr and seed
    whole = fit_members(members)
    assert [(fit.trained_by, fit.population_size) for fit in whole] == [("graph", 5)] * 5
    assert len({fit.metrics["fit_time_s"] for fit in whole}) == 1  # the population's time, shared equally
    chunked = fit_members(members, max_population=2)
    assert [fit.population_size for fit in chunked] == [1, 2, 2, 2, 2]  # 5 in 3 chunks: 1, 2, 2
    assert chunked[1].metrics["fit_time_s"] == chunked[2].metrics["fit_time_s"]
    assert chunked[3].metrics["fit_time_s"] == chunked[4].metrics["fit_time_s"]
    for ours, theirs in zip(chunked, whole, strict=True):
        _assert_same_bits(ours, theirs)
    assert all(fit.metrics["restored_epoch"] == fit.metrics["epochs_run"] == 2 for fit in whole)
    with pytest.raises(ValueError, match="max_population"):
        fit_members(members, max_population=0)


@pytest.mark.parametrize("rule", ["adam", "sgd_momentum", "sgd_nesterov", "rmsprop", "rmsprop_momentum"])
def test_a_member_out_of_rows_stands_still_while_the_others_step(rule: str) -> None:
    """Batches of 383: folds 0 and 1 (1149 rows) take 3 steps an epoch, the others (1150) a 4th; momentum must not move them."""
    overrides = (*KFOLD, "trainer.batch_size=383", "optimizer.lr=0.01", "regularizer.l2=0.001", *RULES[rule])
    members = _members(compose_config(*overrides))
    assert [len(m.train) for m in members] == [1149, 1149, 1150, 1150, 1150]
    *_, iterations, _ = graph.compiled(graph.Plan.of(members))(*graph._inputs(graph.Plan.of(members), members))
    assert iterations.tolist() == [6, 6, 8, 8, 8]  # 2 epochs of 3 and of 4 steps
    fits = graph.fit_population(members)
    for fold, fit in enumerate(fits):
        _assert_same_bits(_solo(*overrides, f"validation.fold={fold}"), fit)


def test_a_member_with_fewer_steps_draws_its_own_dropout_masks_in_any_population() -> None:
    """Dropout masks are drawn for a chunk of steps at once (two batches of 383 at a time), keyed on the member's
    seed and epoch: folds 0 and 1 take 3 steps an epoch, so alone their second chunk is one step, in the population two."""
    overrides = (*KFOLD, "trainer.batch_size=383", "regularizer.dropout=0.5")
    assert graph.DRAW_ROWS // 384 == 2
    fits = graph.fit_population(_members(compose_config(*overrides)))
    for fold in (0, 1, 4):
        _assert_same_bits(_solo(*overrides, f"validation.fold={fold}"), fits[fold])


# --- divergence ---------------------------------------------------------------------------------------


def test_a_member_whose_loss_explodes_is_diverged_keeps_no_model_and_disturbs_no_other() -> None:
    # save_model stays on: the healthy member keeps its model, the exploding ones none
    base = ("trainer.epochs=3", "validation=kfold", "optimizer=sgd")
    cfgs = [
        compose_config(*base, "validation.fold=0", "optimizer.lr=0.05"),
        compose_config(*base, "validation.fold=0", "optimizer.lr=10"),  # finite but exploding: ~1e11 in its first epoch
        compose_config(*base, "optimizer.lr=1e30"),  # NaN/inf in its first fold's first epoch
    ]
    healthy, exploding, nan = train(cfgs, [check(cfg) for cfg in cfgs])
    [(_, healthy)], [(_, exploding)] = healthy.fits, exploding.fits
    assert healthy.population_size == 7  # one population: 1 + 1 + 5 folds
    assert not healthy.diverged and list(healthy.artifacts) == ["model.keras"]
    assert exploding.diverged and exploding.artifacts == {} and exploding.history[0]["loss"] > LOSS_BOUND
    [(index, first_fold)] = nan.fits  # the folds after its first diverged one are left out
    assert index == 0 and first_fold.diverged and first_fold.artifacts == {}
    assert len(first_fold.history) == 1 and not math.isfinite(first_fold.history[0]["loss"])  # it stopped, like TerminateOnNaN
    _assert_same_bits(_solo(*base, "validation.fold=0", "optimizer.lr=0.05"), healthy)


def test_a_diverging_run_is_recorded_diverged_after_its_first_nan_epoch(tmp_path: Path) -> None:
    record = run_job(compose_config("optimizer.lr=1e30", "trainer.epochs=5"), Job(tmp_path))
    assert record["status"] == "diverged" and record["epochs_run"] < 5
    assert not math.isfinite(record["train_loss"])
    assert (record["trained_by"], record["population_size"]) == ("graph", 1)
    assert not (tmp_path / "model.keras").exists()


# --- early stopping, inside the graph, as Keras decides it ---------------------------------------------


def _keras_early_stopping(history: list[dict[str, float]], monitor: str, patience: int) -> tuple[int, int, bool]:
    """What Keras 3's ``EarlyStopping(restore_best_weights=True)`` decides on ``history``: (epochs run, restored epoch, stopped), 1-based.

    A tiny compiled model, trained one batch so that its accuracy metric exists, stands in for
    the trained one: the callback's ``mode="auto"`` reads the monitored metric's direction from it.
    """
    k = keras()
    model = k.Sequential([k.Input((2,)), k.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(np.zeros((2, 2), np.float32), np.array([0, 1]))
    callback = k.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    for epoch, row in enumerate(history):
        callback.on_epoch_end(epoch, {name: row[name] for name in CLASSIFICATION_COLUMNS})
        if model.stop_training:
            assert callback.stopped_epoch == epoch
            break
    return epoch + 1, callback.best_epoch + 1, bool(model.stop_training)


#: (the run's overrides, monitor, patience, whether it stops before its 8 epochs)
STOPPING = [
    (("optimizer.lr=0.01",), "val_loss", 1, True),
    (("optimizer.lr=0.01",), "val_loss", 2, False),  # never fires, yet restores an earlier epoch than the last
    (("optimizer.lr=0.01",), "val_accuracy", 0, True),
    (("optimizer.lr=0.03",), "val_accuracy", 2, True),  # restores the first epoch
]


@pytest.mark.parametrize(("overrides", "monitor", "patience", "stops"), STOPPING)
def test_early_stopping_stops_and_restores_where_keras_early_stopping_would(overrides, monitor, patience, stops) -> None:
    full = _holdout(*overrides)
    stopped = _holdout(*overrides, f"trainer.early_stopping_patience={patience}", f"trainer.early_stopping_monitor={monitor}")
    assert stopped.trained_by == "graph"
    epochs_run, restored, keras_stops = _keras_early_stopping(full.history, monitor, patience)
    assert keras_stops == stops and (epochs_run < 8) == stops
    assert stopped.metrics["epochs_run"] == len(stopped.history) == epochs_run
    assert stopped.metrics["restored_epoch"] == restored < epochs_run
    assert np.array_equal(_curve(stopped), _curve(full)[:epochs_run])  # the same epochs up to where it stops
    best = full.history[restored - 1]
    assert [stopped.metrics[k] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")] == [
        best[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")
    ]


@pytest.mark.parametrize(("overrides", "monitor"), [(("optimizer.lr=0.01",), "val_loss"), (("optimizer.lr=0.03",), "val_accuracy")])
def test_a_patience_that_never_fires_changes_no_bit_and_restores_the_best_epoch(overrides, monitor) -> None:
    full = _holdout(*overrides)
    watched = _holdout(*overrides, "trainer.early_stopping_patience=100", f"trainer.early_stopping_monitor={monitor}")
    assert np.array_equal(_curve(watched), _curve(full)) and len(watched.history) == 8
    values = [row[monitor] for row in full.history]
    best = int(np.argmax(values) if "acc" in monitor else np.argmin(values)) + 1  # the first best, as Keras keeps it
    assert watched.metrics["restored_epoch"] == best == _keras_early_stopping(full.history, monitor, 100)[1]
    assert best < 8 and watched.metrics["val_loss"] == full.history[best - 1]["val_loss"] != full.metrics["val_loss"]


def test_members_stopping_early_in_a_population_have_the_bits_of_their_runs_alone() -> None:
    stopping = ("trainer.early_stopping_patience=1", "trainer.early_stopping_monitor=val_loss")
    variants = [("optimizer.lr=0.01",), ("optimizer.lr=0.03",), ("optimizer.lr=0.001",), ("optimizer.lr=0.01", "seed=1"), ("optimizer.lr=0.02", "regularizer.dropout=0.3")]
    cfgs = [compose_config(*HOLDOUT, *v, *stopping) for v in variants]
    population = [fit for trained in train(cfgs, [check(cfg) for cfg in cfgs]) for _, fit in trained.fits]
    assert {(fit.trained_by, fit.population_size) for fit in population} == {("graph", 5)}
    assert len({fit.metrics["epochs_run"] for fit in population}) >= 3  # they stop at different epochs
    for v, member in zip(variants, population, strict=True):
        _assert_same_bits(_holdout(*v, *stopping), member)


# --- the saved model ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "slots", "more"),
    [
        ("adam", 2, ()),
        ("sgd_momentum", 1, ()),
        ("rmsprop_momentum", 2, ()),
        ("adam", 2, ("trainer.epochs=8", "trainer.early_stopping_patience=1")),  # stops at 6, restores epoch 5's weights
    ],
)
def test_the_saved_model_is_the_trained_one_with_its_optimizer_state(optimizer: str, slots: int, more: tuple, tmp_path: Path) -> None:
    overrides = ("trainer.epochs=2", *OPTIMIZERS[optimizer], *more)
    cfg = compose_config(*overrides)
    fit = _solo(*overrides)
    fit.artifacts["model.keras"](str(tmp_path / "model.keras"))
    model = keras().saving.load_model(tmp_path / "model.keras")
    [member] = _members(cfg)
    _, y_train, x_val, y_val = member.arrays()
    assert (model.predict(x_val, verbose=0).argmax(1) == y_val).mean() == pytest.approx(fit.metrics["val_accuracy"], abs=1e-6)
    scores = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(fit.metrics["val_loss"], rel=1e-5)  # penalty included
    epochs = fit.metrics["epochs_run"]
    assert int(model.optimizer.iterations.numpy()) == epochs * math.ceil(len(y_train) / 32)  # the last step's, as model.fit leaves it
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(cfg.optimizer.lr)
    assert len(model.optimizer.variables) == 2 + slots * len(model.trainable_variables)
    assert all(np.abs(v.numpy()).max() > 0 for v in model.optimizer.variables[2:])  # trained state, not zeros
    if more:
        assert (fit.metrics["restored_epoch"], epochs) == (5, 6)
        assert fit.metrics["val_loss"] != fit.history[-1]["val_loss"]  # the model holds the restored weights, not the last


def test_the_kept_keras_model_saves_the_config_a_fresh_build_would() -> None:
    """After a reset, as the model.fit engine makes before its fits, the kept model is given the config a fresh build has (names included)."""
    saved._TEMPLATES.clear()  # kept models built by earlier tests, in other sessions  # noqa: SLF001
    reset()
    weights = build_model(compose_config(), (8, 8), Output(10)).get_weights()
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
        state = TrainedState(weights, [[np.zeros_like(w) for w in weights] for _ in Rule.of(cfg).slots], 0)
        reset()  # as the model.fit engine does before every fit
        kept = keras_model(cfg, (8, 8), Output(10), state)
        reset()
        fresh = build_model(cfg, (8, 8), Output(10))
        assert kept.get_config() == fresh.get_config(), overrides
        assert kept.optimizer.get_config() == fresh.optimizer.get_config(), overrides


def test_a_graph_members_model_file_has_a_fresh_builds_layer_names_whatever_was_saved_before(tmp_path: Path) -> None:
    """model.keras holds what load_model rebuilds: the same for a config whether or not other structures were saved before it."""
    saved._TEMPLATES.clear()  # noqa: SLF001
    reset()
    cfgs = [compose_config("trainer.epochs=1", f"regularizer.dropout={rate}") for rate in (0.0, 0.5)]  # two structures
    for cfg, trained in zip(cfgs, train(cfgs, [check(cfg) for cfg in cfgs]), strict=True):
        [(_, fit)] = trained.fits
        fit.artifacts["model.keras"](str(tmp_path / "model.keras"))
        written = json.loads(zipfile.ZipFile(tmp_path / "model.keras").read("config.json"))
        reset()
        fresh = build_model(cfg, (8, 8), Output(10))
        assert [layer["config"]["name"] for layer in written["config"]["layers"]] == [layer.name for layer in fresh.layers]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop_momentum"])
def test_every_folds_model_file_is_what_keras_saves_of_it_and_reads_back_as_its_state(optimizer: str, tmp_path: Path) -> None:
    """A structure's first member is saved by Keras; every other member's file (its arrays, learning rate and config written
    into a copy) holds the config and weights Keras would write of it."""
    saved._ARCHIVES.clear()  # noqa: SLF001
    base = ("trainer.epochs=1", "validation=kfold", "validation.n_splits=3", "validation.fold=null", "regularizer.dropout=0.25", *OPTIMIZERS[optimizer])
    other = ("seed=1", "optimizer.lr=0.002", "regularizer.l2=0.003", "regularizer.dropout=0.5")  # one structure, another config.json
    cfgs = [compose_config(*base, "seed=0"), compose_config(*base, *other)]
    kernels = []
    for c, (cfg, trained) in enumerate(zip(cfgs, train(cfgs, [check(cfg) for cfg in cfgs]), strict=True)):
        for fold, fit in trained.fits:
            ours, theirs = tmp_path / f"{c}-{fold}.keras", tmp_path / f"{c}-{fold}-keras.keras"
            fit.artifacts["model.keras"](str(ours))
            state = saved.load_state(cfg, str(ours), (8, 8), Output(10))
            save_model(keras_model(cfg, (8, 8), Output(10), state), str(theirs))
            ours_zip, theirs_zip = zipfile.ZipFile(ours), zipfile.ZipFile(theirs)
            assert ours_zip.namelist() == theirs_zip.namelist()
            assert all(ours_zip.read(name) == theirs_zip.read(name) for name in ("config.json", "model.weights.h5"))
            written = json.loads(ours_zip.read("config.json"))["compile_config"]["optimizer"]["config"]["learning_rate"]
            assert written == pytest.approx(cfg.optimizer.lr)
            assert fit.metrics["val_accuracy"] == pytest.approx(_accuracy(cfg, fold, ours), abs=1e-6)  # this fold's own weights
            kernels.append(state.weights[0])
    assert len({k.tobytes() for k in kernels}) == 6  # every fold's file holds its own arrays


def _accuracy(cfg, fold: int, path: Path) -> float:
    """The validation accuracy on ``fold``'s rows of the model saved at ``path``."""
    data, folds = check(cfg)
    [val] = [f.val for f in folds if f.index == fold]
    model = keras().saving.load_model(path)
    return float((model.predict(data.x[val], verbose=0).argmax(1) == data.y[val]).mean())


def test_saving_with_keras_skip_sets_kept_writes_the_same_model_file(tmp_path: Path) -> None:
    """``sweep.backend.save_model`` (Keras' cache of attribute skip-sets mended) writes what ``model.save`` writes."""
    cfg = compose_config("regularizer.dropout=0.5")
    reset()
    model = build_model(cfg, (64,), Output(10))
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


# --- which configs train together -----------------------------------------------------------------------


def test_group_key_is_equal_exactly_when_only_vectorizable_keys_differ() -> None:
    base = group_key(compose_config(*KFOLD))
    assert base is not None
    same = ["optimizer.lr=0.5", "regularizer.l2=0.1", "regularizer.l1=0.1", "regularizer.dropout=0.2", "validation.fold=2", "seed=9"]
    assert {f"{o.split('=')[0]}" for o in same} == set(VECTORIZABLE)
    for override in same:
        assert group_key(compose_config(*KFOLD, override)) == base, override
    others = [
        "trainer.epochs=3",
        "trainer.batch_size=16",
        "model.hidden_units=[64]",
        "model.activation=tanh",
        "validation.n_splits=4",
        "trainer.early_stopping_patience=2",
    ]
    keys = [group_key(compose_config(*KFOLD, override)) for override in others]
    assert None not in keys and base not in keys and len(set(keys)) == len(keys), others
    stopping = [group_key(compose_config(*KFOLD, "trainer.early_stopping_patience=2", f"trainer.early_stopping_monitor={m}")) for m in CLASSIFICATION_COLUMNS]
    assert None not in stopping and len(set(stopping)) == len(stopping)
    # the optimizer's settings other than the learning rate are the population's
    keys = [group_key(compose_config(*KFOLD, *RULES[rule])) for rule in RULES]
    keys += [group_key(compose_config(*KFOLD, "optimizer=sgd", "optimizer.momentum=0.5"))]
    keys += [group_key(compose_config(*KFOLD, "optimizer=rmsprop", "optimizer.rho=0.95"))]
    assert None not in keys and len(set(keys)) == len(keys)
    assert group_key(compose_config(*KFOLD, "optimizer=sgd", "optimizer.lr=0.1")) == keys[2]
    for alone in [("model=cnn",), ("task=cluster",), ("optimizer=sgd", "optimizer.momentum=1.5"), ("trainer.verbose=1",)]:
        assert group_key(compose_config(*KFOLD, *alone)) is None, alone
