"""The population trainer (sweep.population): each member trains as its ordinary compiled run would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from sweep.population import fit_population, group_key
from sweep.run import _fit_folds, check
from sweep.tasks import Fitted
from sweep.tasks.compiled import COLUMNS

KFOLD = ("trainer.epochs=2", "trainer.save_model=false", "validation=kfold")


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


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_a_one_member_population_follows_the_compiled_trajectory(dropout: float) -> None:
    cfg = compose_config("trainer.epochs=3", "trainer.save_model=false", f"regularizer.dropout={dropout}", "seed=4")
    [ours] = fit_population([cfg])
    _assert_same_runs(ours, _solo(cfg), tol=1e-5)


def test_each_member_of_a_mixed_population_matches_its_own_run_and_a_diverging_one_disturbs_none() -> None:
    cfgs = [
        compose_config(*KFOLD),  # every fold
        compose_config(*KFOLD, "validation.fold=3", "optimizer.lr=0.003", "regularizer.l2=0.01", "seed=7"),
        compose_config(*KFOLD, "validation.fold=0", "regularizer.dropout=0.5", "regularizer.l1=0.001", "seed=1"),
        compose_config(*KFOLD, "optimizer.lr=1e30"),  # diverges in its first fold's first epoch
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


def test_members_differ_when_their_hyperparameters_do() -> None:
    cfgs = [compose_config(*KFOLD, "validation.fold=0", override) for override in ("seed=0", "seed=1", "optimizer.lr=0.01", "regularizer.dropout=0.5")]
    curves = [_curve(runs[0][1]) for runs in fit_population(cfgs)]
    for i in range(1, len(curves)):
        assert not np.allclose(curves[0], curves[i])


def test_a_member_saves_the_model_its_weights_make(tmp_path: Path) -> None:
    from sweep.backend import keras
    from sweep.data import load_dataset
    from sweep.splits import make_folds

    cfg = compose_config("trainer.epochs=2", "validation=kfold", "validation.fold=1", "optimizer.lr=0.01")
    [[(index, fit)]] = fit_population([cfg])
    fit.artifacts["model.keras"](str(tmp_path / "model.keras"))
    model = keras().models.load_model(tmp_path / "model.keras")
    data = load_dataset(cfg.dataset)
    val = make_folds(cfg.validation, data.y)[0].val
    accuracy = model.evaluate(data.x[val], data.y[val], verbose=0, return_dict=True)["accuracy"]
    assert index == 1 and accuracy == pytest.approx(fit.metrics["val_accuracy"], abs=1e-6)


def test_group_key_is_equal_exactly_when_only_vectorizable_keys_differ() -> None:
    base = group_key(compose_config(*KFOLD))
    assert base is not None
    same = ["optimizer.lr=0.5", "regularizer.l2=0.1", "regularizer.l1=0.1", "regularizer.dropout=0.2", "validation.fold=2", "seed=9"]
    for override in same:
        assert group_key(compose_config(*KFOLD, override)) == base, override
    for override in ("trainer.epochs=3", "trainer.batch_size=16", "model.hidden_units=[64]", "validation.n_splits=4"):
        assert group_key(compose_config(*KFOLD, override)) not in (base, None), override
    for unfit in ("optimizer=sgd", "optimizer=rmsprop", "model=cnn", "trainer.early_stopping_patience=2", "optimizer.lr=-1", "task=cluster"):
        assert group_key(compose_config(*KFOLD, unfit)) is None, unfit
    with pytest.raises(ValueError, match="group key"):
        fit_population([compose_config(*KFOLD), compose_config(*KFOLD, "trainer.epochs=3")])
