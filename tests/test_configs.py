"""Every config group and preset composes, and the presets say what the tutorial's cells say."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import compose_config
from sweep.config import config_dir, fingerprint, flatten, validate

CONF = Path(config_dir())
GROUPS = ["task", "dataset", "model", "regularizer", "optimizer", "validation", "trainer", "experiment"]
PRESETS = [(group, p.stem) for group in GROUPS for p in sorted((CONF / group).glob("*.yaml"))]
#: Presets that only make sense with another choice.
PARTNERS = {("model", name): ["task=cluster"] for name in ("kmeans", "minibatch_kmeans", "gaussian_mixture", "agglomerative")}


@pytest.mark.parametrize(("group", "preset"), PRESETS, ids=[f"{g}={p}" for g, p in PRESETS])
def test_every_preset_composes(group: str, preset: str) -> None:
    cfg = compose_config(f"{group}={preset}", *PARTNERS.get((group, preset), []))
    assert {"task", "dataset", "model", "regularizer", "optimizer", "validation", "trainer", "seed"} <= set(cfg)
    validate(cfg)


def test_defaults_are_the_tutorials_l2_model_with_holdout_validation() -> None:
    cfg = compose_config()
    assert (cfg.task.name, cfg.dataset.name, cfg.model.name, cfg.validation.name) == ("classify", "digits", "mlp", "holdout")
    assert list(cfg.model.hidden_units) == [128] and cfg.model.activation == "relu"
    assert (cfg.regularizer.l2, cfg.regularizer.l1, cfg.regularizer.dropout) == (0.01, 0.0, 0.0)
    assert (cfg.optimizer.name, cfg.optimizer.lr) == ("adam", 0.001)


def test_choosing_the_cluster_task_selects_kmeans() -> None:
    cfg = compose_config("task=cluster")
    assert cfg.model.name == "kmeans" and cfg.model.n_clusters == 10 and cfg.task.metric == "ari"


def test_tutorial_experiments() -> None:
    kfold = compose_config("experiment=tutorial_kfold")
    assert (kfold.validation.name, kfold.validation.n_splits, kfold.validation.shuffle) == ("kfold", 5, False)
    assert kfold.validation.fold is None and kfold.trainer.epochs == 5
    dropout = compose_config("experiment=tutorial_dropout")
    assert (dropout.regularizer.dropout, dropout.regularizer.l2) == (0.5, 0.0)
    holdout = compose_config("experiment=tutorial_mnist_holdout")
    assert (holdout.dataset.name, holdout.validation.size, holdout.validation.shuffle) == ("mnist", 10000, False)
    kmeans = compose_config("experiment=tutorial_kmeans")
    assert (kmeans.task.name, kmeans.model.name, kmeans.model.n_clusters) == ("cluster", "kmeans", 10)


def test_overrides_reach_the_config() -> None:
    cfg = compose_config("optimizer=sgd", "optimizer.lr=0.05", "trainer.epochs=20", "trainer.batch_size=64", "model.hidden_units=[256,128]")
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum) == ("sgd", 0.05, 0.9)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, list(cfg.model.hidden_units)) == (20, 64, [256, 128])


def test_the_fingerprint_changes_with_any_value_but_not_with_verbosity() -> None:
    base = fingerprint(flatten(compose_config()))
    assert base == fingerprint(flatten(compose_config()))
    assert base == fingerprint(flatten(compose_config("trainer.verbose=1")))
    assert base != fingerprint(flatten(compose_config("optimizer.lr=0.0011")))
    assert base != fingerprint(flatten(compose_config("seed=1")))


def test_flatten_gives_dotted_keys() -> None:
    flat = flatten(compose_config("validation=kfold", "validation.fold=3"))
    assert flat["optimizer.lr"] == 0.001 and flat["validation.fold"] == 3 and flat["model.hidden_units"] == [128]
