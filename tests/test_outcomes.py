"""How a fit ended and what it returned: diverged runs are called diverged on every training path,
each fit says how it was trained and which epoch's weights its model holds, and a user's model
builder that returns the wrong thing is named before any training."""

from __future__ import annotations

from pathlib import Path

import pytest

import custom_builders
from conftest import MODEL_FIT, QUICK, compose_config
from sweep.data import load_dataset
from sweep.run import Job, run_job
from sweep.splits import make_folds
from sweep.engines import LOSS_BOUND, LOSS_GROWTH, Member, exploded, fit_members
from sweep.engines.keras_fit import fit_keras

#: SGD at lr 10 on digits: the train loss is ~1e11 after one epoch and ~1e35 after three, when val_loss is inf.
EXPLODING = ("optimizer=sgd", "optimizer.lr=10")


def _member(cfg) -> Member:
    data = load_dataset(cfg.dataset)
    (fold,) = make_folds(cfg.validation, data.y)
    return Member(cfg, data.x, data.y, fold.train, fold.val)


def _epochs(*losses: tuple[float, float]) -> list[dict[str, float]]:
    return [{"epoch": i, "loss": loss, "val_loss": val} for i, (loss, val) in enumerate(losses, start=1)]


def test_a_loss_that_is_not_finite_or_explodes_is_divergence_and_a_falling_one_is_not() -> None:
    assert exploded(_epochs((2.3, 1.9), (float("nan"), 1.0)))
    assert exploded(_epochs((2.3, 1.9), (1.2, float("inf"))))  # the validation loss counts too
    assert exploded(_epochs((4e11, 7e13)))  # above the bound in the first epoch already
    assert exploded(_epochs((2.3, 2.0), (2.3 * LOSS_GROWTH * 1.01, 3.0)))
    assert not exploded(_epochs((2.3, 2.0), (2.3 * LOSS_GROWTH * 0.99, 3.0)))
    assert not exploded(_epochs((LOSS_BOUND * 0.5, 50.0), (0.4, 0.5)))  # a huge penalty that training shrinks
    assert not exploded(_epochs((2.3, 1.9), (0.5, 0.6)))


@pytest.mark.parametrize(
    "overrides",
    [("trainer.epochs=1",), ("trainer.epochs=3",), ("trainer.epochs=1", *MODEL_FIT)],
    ids=["graph-finite-loss", "graph-val-loss-inf", "model.fit-finite-loss"],
)
def test_a_run_whose_loss_explodes_is_recorded_diverged_and_keeps_no_model(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    record = run_job(compose_config(*EXPLODING, *overrides), Job(tmp_path))
    assert record["status"] == "diverged" and record["train_loss"] > LOSS_BOUND
    assert not (tmp_path / "model.keras").exists()


def test_a_model_fit_config_whose_first_fold_diverges_trains_no_other_fold(tmp_path: Path) -> None:
    custom_builders.BUILT.clear()
    cfg = compose_config(*EXPLODING, "model._target_=custom_builders.recorded_mlp", "validation=kfold", "trainer.epochs=1", *QUICK[1:])
    record = run_job(cfg, Job(tmp_path))
    assert record["status"] == "diverged" and "fold_metrics" not in record  # the record is fold 0's alone
    assert len(custom_builders.BUILT) == 1  # folds 1 to 4 were never built, let alone fitted


@pytest.mark.parametrize(
    ("overrides", "trained_by"),
    [((), "graph"), (("trainer.early_stopping_patience=5",), "graph"), (MODEL_FIT, "model.fit"), (("task=cluster",), "sklearn")],
)
def test_every_fit_says_how_it_was_trained(overrides: tuple[str, ...], trained_by: str) -> None:
    cfg = compose_config(*QUICK, *overrides)
    [fitted] = fit_members([_member(cfg)])
    assert fitted.trained_by == trained_by
    assert (fitted.graph_unsupported is None) == (trained_by != "model.fit")  # model.fit says why the graph could not


def test_without_early_stopping_the_model_holds_the_last_epoch() -> None:
    cfg = compose_config(*QUICK)
    [graph] = fit_members([_member(cfg)])
    keras_fit = fit_keras(_member(cfg))
    assert keras_fit.trained_by == "model.fit"
    for fitted in (graph, keras_fit):
        assert fitted.metrics["restored_epoch"] == fitted.metrics["epochs_run"] == 2
        assert fitted.metrics["val_loss"] == fitted.history[-1]["val_loss"]


def test_a_builder_returning_no_model_fails_the_run_naming_the_target(tmp_path: Path) -> None:
    record = run_job(compose_config("model._target_=custom_builders.returns_none", *QUICK), Job(tmp_path))
    assert record["status"] == "failed"
    assert record["error"].startswith("SweepConfigError: model._target_=custom_builders.returns_none returned NoneType;")
