"""The population trainer (sweep.population): each member trains as its ordinary compiled run would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from sweep.population import fit_population, group_key
from sweep.run import _fit_folds, check
from sweep.tasks import LOSS_BOUND, Fitted
from sweep.tasks.compiled import COLUMNS

KFOLD = ("trainer.epochs=2", "trainer.save_model=false", "validation=kfold")
#: Each update rule a population trains (momentum and rho are the group's, the learning rate each member's).
RULES = {
    "adam": (),
    "sgd": ("optimizer=sgd", "optimizer.momentum=0.0"),
    "sgd_momentum": ("optimizer=sgd",),
    "sgd_nesterov": ("optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0.8"),
    "rmsprop": ("optimizer=rmsprop", "optimizer.rho=0.8"),
    "rmsprop_momentum": ("optimizer=rmsprop", "optimizer.momentum=0.5"),
}


def _solo(cfg) -> list[tuple[int | None, Fitted]]:
    """The ordinary path: sweep.run's per-fold loop, which takes sweep.tasks.compiled for these configs."""
    return _fit_folds(cfg, *check(cfg))


def _curve(fit: Fitted) -> np.ndarray:
    return np.array([[row[c] for c in COLUMNS] for row in fit.history])


def _assert_same_runs(ours, theirs, tol: float) -> None:
    assert [index for index, _ in ours] == [index for index, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs):
        assert a.diverged == b.diverged
        np.testing.assert_allclose(_curve(a), _curve(b), rtol=tol, atol=tol)
        assert set(a.metrics) == set(b.metrics)


@pytest.mark.parametrize(("rule", "dropout"), [("adam", 0.0), ("adam", 0.5), ("sgd_momentum", 0.5), ("rmsprop", 0.0)])
def test_a_one_member_population_follows_the_compiled_trajectory(rule: str, dropout: float) -> None:
    cfg = compose_config("trainer.epochs=3", "trainer.save_model=false", f"regularizer.dropout={dropout}", "seed=4", *RULES[rule])
    [ours] = fit_population([cfg])
    _assert_same_runs(ours, _solo(cfg), tol=1e-5)


@pytest.mark.parametrize("rule", RULES)
def test_a_member_out_of_rows_stands_still_while_the_others_step(rule: str) -> None:
    """Batches of 383: folds 0 and 1 (1149 rows) take 3 steps an epoch, the others (1150) a 4th; momentum must not move them."""
    cfg = compose_config(*KFOLD, "trainer.batch_size=383", "optimizer.lr=0.01", "regularizer.l2=0.001", *RULES[rule])
    [ours] = fit_population([cfg])
    _assert_same_runs(ours, _solo(cfg), tol=1e-5)


@pytest.mark.parametrize("rule", ["adam", "sgd_nesterov", "rmsprop_momentum"])
def test_each_member_of_a_mixed_population_matches_its_own_run_and_a_diverging_one_disturbs_none(rule: str) -> None:
    cfgs = [
        compose_config(*KFOLD, *RULES[rule]),  # every fold
        compose_config(*KFOLD, *RULES[rule], "validation.fold=3", "optimizer.lr=0.003", "regularizer.l2=0.01", "seed=7"),
        compose_config(*KFOLD, *RULES[rule], "validation.fold=0", "regularizer.dropout=0.5", "regularizer.l1=0.001", "seed=1"),
        compose_config(*KFOLD, *RULES[rule], "optimizer.lr=1e30"),  # diverges in its first fold's first epoch
    ]
    population = fit_population(cfgs)
    assert [len(runs) for runs in population] == [5, 1, 1, 1]
    diverged = population[3][0][1]
    assert diverged.diverged and len(diverged.history) == 1 and not np.isfinite(diverged.history[0]["loss"])
    for cfg, runs in zip(cfgs, population):
        _assert_same_runs(runs, _solo(cfg), tol=1e-4)
    # chunks of two members train the same numbers as one population of eight
    for runs, chunked in zip(population, fit_population(cfgs, max_population=2)):
        _assert_same_runs(chunked, runs, tol=1e-5)


def test_a_member_whose_loss_explodes_is_diverged_and_keeps_no_model() -> None:
    # save_model stays on: the healthy member keeps its model, the exploding one none
    cfgs = [compose_config("trainer.epochs=1", "validation=kfold", "validation.fold=0", "optimizer=sgd", f"optimizer.lr={lr}") for lr in (0.05, 10)]
    [[(_, healthy)], [(_, exploding)]] = fit_population(cfgs)
    assert not healthy.diverged and "model.keras" in healthy.artifacts
    assert exploding.diverged and exploding.artifacts == {} and exploding.history[0]["loss"] > LOSS_BOUND


def test_members_say_they_trained_as_a_population_and_share_its_time_equally() -> None:
    cfgs = [compose_config(*KFOLD, "validation.fold=0", f"seed={seed}") for seed in (0, 1, 2)]
    fits = [runs[0][1] for runs in fit_population(cfgs)]
    assert [fit.trained_by for fit in fits] == ["population of 3"] * 3
    assert len({fit.metrics["fit_time_s"] for fit in fits}) == 1
    assert all(fit.metrics["restored_epoch"] == fit.metrics["epochs_run"] == 2 for fit in fits)
    chunked = [runs[0][1] for runs in fit_population(cfgs, max_population=2)]
    assert [fit.trained_by for fit in chunked] == ["population of 2", "population of 2", "population of 1"]


def test_members_differ_when_their_hyperparameters_do() -> None:
    cfgs = [compose_config(*KFOLD, "validation.fold=0", override) for override in ("seed=0", "seed=1", "optimizer.lr=0.01", "regularizer.dropout=0.5")]
    curves = [_curve(runs[0][1]) for runs in fit_population(cfgs)]
    for i in range(1, len(curves)):
        assert not np.allclose(curves[0], curves[i])


@pytest.mark.parametrize("rule", ["adam", "sgd_momentum", "rmsprop_momentum"])
def test_a_member_saves_the_model_its_weights_make_with_its_runs_optimizer_state(rule: str, tmp_path: Path) -> None:
    from sweep.backend import keras
    from sweep.data import load_dataset
    from sweep.splits import make_folds

    cfg = compose_config("trainer.epochs=2", "validation=kfold", "validation.fold=1", "optimizer.lr=0.01", *RULES[rule])
    [[(index, fit)]] = fit_population([cfg])
    [(_, solo)] = _solo(cfg)
    fit.artifacts["model.keras"](str(tmp_path / "model.keras"))
    solo.artifacts["model.keras"](str(tmp_path / "solo.keras"))
    model, solo_model = (keras().models.load_model(tmp_path / name) for name in ("model.keras", "solo.keras"))
    data = load_dataset(cfg.dataset)
    val = make_folds(cfg.validation, data.y)[0].val
    accuracy = model.evaluate(data.x[val], data.y[val], verbose=0, return_dict=True)["accuracy"]
    assert index == 1 and accuracy == pytest.approx(fit.metrics["val_accuracy"], abs=1e-6)
    assert len(model.optimizer.variables) > 2
    for ours, theirs in zip(model.optimizer.variables, solo_model.optimizer.variables, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6, err_msg=ours.path)


def test_group_key_is_equal_exactly_when_only_vectorizable_keys_differ() -> None:
    base = group_key(compose_config(*KFOLD))
    assert base is not None
    same = ["optimizer.lr=0.5", "regularizer.l2=0.1", "regularizer.l1=0.1", "regularizer.dropout=0.2", "validation.fold=2", "seed=9"]
    for override in same:
        assert group_key(compose_config(*KFOLD, override)) == base, override
    others = ["trainer.epochs=3", "trainer.batch_size=16", "model.hidden_units=[64]", "validation.n_splits=4"]
    for override in others:
        assert group_key(compose_config(*KFOLD, override)) not in (base, None), override
    # the optimizer's settings other than the learning rate are the group's
    keys = [group_key(compose_config(*KFOLD, *RULES[rule])) for rule in RULES]
    keys += [group_key(compose_config(*KFOLD, "optimizer=sgd", "optimizer.momentum=0.5"))]
    keys += [group_key(compose_config(*KFOLD, "optimizer=rmsprop", "optimizer.rho=0.95"))]
    assert None not in keys and len(set(keys)) == len(keys)
    assert group_key(compose_config(*KFOLD, "optimizer=sgd", "optimizer.lr=0.1")) == keys[2]
    unfits = [("optimizer=sgd", "optimizer.momentum=1.5"), ("model=cnn",), ("trainer.early_stopping_patience=2",)]
    for unfit in [*unfits, ("optimizer.lr=-1",), ("task=cluster",)]:
        assert group_key(compose_config(*KFOLD, *unfit)) is None, unfit
    with pytest.raises(ValueError, match="group key"):
        fit_population([compose_config(*KFOLD), compose_config(*KFOLD, "trainer.epochs=3")])
