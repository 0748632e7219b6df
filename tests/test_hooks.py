"""Keras' own hooks: ``trainer.callbacks`` by ``_target_``, a schedule as ``optimizer.lr``, ``trainer.class_weight``.

A config with any of them trains with ``model.fit`` and its record says why the batched
graph did not take it (``graph_unsupported``). A callback that writes files writes them in
its job's dir (``fold<k>/`` for each fold of a k-fold run) unless given an absolute path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from conftest import MODEL_FIT, records_under, run_sweep
from sweep.config import SweepConfigError, compose
from sweep.engines import Member, graph
from sweep.engines.hooks import class_weights
from sweep.refit import refit_config
from sweep.run import check, train

QUICK = ("trainer.epochs=3", "trainer.save_model=false")
LOGGED = "+trainer/callbacks=[reduce_lr_on_plateau,csv_logger,tensorboard]"  # the rate is logged before the logger writes
CUT_EVERY_EPOCH = (
    "trainer.callbacks.reduce_lr_on_plateau.patience=0",
    "+trainer.callbacks.reduce_lr_on_plateau.min_delta=1e9",  # never an improvement: the rate is cut every epoch
)


def _fit(*overrides: str, job_dir=None):
    """The one fold's ``Fitted`` of ``sweep <overrides>``, trained in this process."""
    cfg = compose(*QUICK, *overrides)
    return train([cfg], [check(cfg)], job_dir=job_dir)[0].fits[0][1]


def test_callbacks_by_target_write_into_each_folds_dir_and_act_on_the_fit(tmp_path):
    sweep_dir = tmp_path / "sweep"
    run_sweep("-m", *QUICK, LOGGED, *CUT_EVERY_EPOCH, "trainer.callbacks.reduce_lr_on_plateau.factor=0.5,0.25",
              "validation=kfold", "validation.n_splits=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)  # fmt: skip
    records = records_under(sweep_dir)
    assert len(records) == 2
    for record in records:
        job_dir = Path(record["output_dir"])
        assert record["trained_by"] == "model.fit" and record["graph_unsupported"].startswith("trainer.callbacks.")
        history = pd.read_csv(job_dir / "history.csv")
        factor = record["trainer.callbacks.reduce_lr_on_plateau.factor"]
        for fold in (0, 1):
            logged = pd.read_csv(job_dir / f"fold{fold}" / "csv_logger.csv")
            assert np.allclose(logged["val_loss"], history[history["fold"] == fold]["val_loss"], rtol=1e-6)
            # logged as each epoch starts; the first epoch always counts as an improvement
            assert np.allclose(logged["learning_rate"], 1e-3 * factor ** np.array([0, 0, 1]), rtol=1e-5)
            assert list((job_dir / f"fold{fold}" / "tensorboard" / "train").glob("events.out.tfevents.*"))


def test_a_schedule_as_optimizer_lr_is_the_rate_keras_trains_with():
    constant = _fit(*MODEL_FIT, "optimizer.lr=0.01")
    flat = _fit(*MODEL_FIT, "optimizer.lr={_target_:keras.optimizers.schedules.ExponentialDecay,"
                "initial_learning_rate:0.01,decay_steps:1,decay_rate:1.0}")  # fmt: skip
    decaying = _fit("optimizer.lr={_target_:keras.optimizers.schedules.ExponentialDecay,"
                    "initial_learning_rate:0.01,decay_steps:1,decay_rate:0.9}")  # fmt: skip
    assert flat.history == constant.history  # a schedule that never decays trains bit for bit as the constant rate
    assert decaying.history != constant.history and decaying.trained_by == "model.fit"
    assert decaying.graph_unsupported.startswith("optimizer.lr._target_=keras.optimizers.schedules.ExponentialDecay")


def test_class_weight_balanced_weighs_the_training_rows_as_scikit_learn_does():
    y = np.array([0] * 8 + [1] * 2 + [0, 1])  # training rows 8:2, validation rows 1:1
    member = Member(compose("trainer.class_weight=balanced"), np.zeros((12, 2)), y, np.arange(10), np.arange(10, 12))
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=y[:10])
    assert class_weights(member) == {0: expected[0], 1: expected[1]} == {0: 0.625, 1: 2.5}
    unit = _fit(*MODEL_FIT, "trainer.class_weight={0:1,1:1}", "dataset=synthetic")
    plain = _fit(*MODEL_FIT, "dataset=synthetic")
    weighted = _fit(*MODEL_FIT, "trainer.class_weight={1:5}", "dataset=synthetic")
    assert unit.history == plain.history and weighted.history != plain.history
    assert graph.unsupported(compose("trainer.class_weight={1:5}")) == "trainer.class_weight={1: 5}: the graph weighs every row alike"


def test_class_weight_keys_are_a_tables_own_labels():
    cfg = compose("trainer.class_weight={cat:4}")
    y = np.array([0, 1, 1, 2, 2, 2])
    member = Member(cfg, np.zeros((6, 2)), y, np.arange(6), np.arange(6), classes=("bird", "cat", "dog"))
    assert class_weights(member) == {0: 1.0, 1: 4.0, 2: 1.0}
    cfg = compose("trainer.class_weight={cow:4}")
    with pytest.raises(SweepConfigError, match=r"^trainer.class_weight.cow: not a label of the dataset \(its labels: bird, cat, dog\)$"):
        class_weights(Member(cfg, np.zeros((6, 2)), y, np.arange(6), np.arange(6), classes=("bird", "cat", "dog")))


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (("+trainer.callbacks.log.filename=x.csv",), "trainer.callbacks.log={'filename': 'x.csv'}: must be a node with a _target_"),
        (("task=regress", "trainer.class_weight=balanced"), "trainer.class_weight='balanced': weighs classes; task=regress has none"),
        (("trainer.class_weight={0:0}",), "trainer.class_weight={0: 0}: must be null, balanced or {label: weight > 0}"),
        (("optimizer.lr=fast",), "optimizer.lr='fast': must be a finite number > 0 or a schedule's _target_ node"),
    ],
)
def test_malformed_hooks_are_one_line_before_training(overrides, line):
    with pytest.raises(SweepConfigError) as error:
        compose(*overrides)
    assert str(error.value).startswith(line)


def test_a_callback_target_returning_something_else_fails_the_run_naming_the_key(tmp_path):
    proc = run_sweep("+trainer.callbacks.mine._target_=collections.OrderedDict", *QUICK, "hydra.run.dir=run", cwd=tmp_path, check=False)
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert proc.returncode == 1 and record["status"] == "failed"
    assert record["error"] == "SweepConfigError: trainer.callbacks.mine._target_=collections.OrderedDict: returned OrderedDict, not a keras.callbacks.Callback"


def test_a_refit_runs_without_callbacks_which_would_see_the_test_rows():
    cfg = refit_config(compose(LOGGED, *CUT_EVERY_EPOCH))
    assert dict(cfg.trainer.callbacks) == {} and cfg.optimizer.lr == 1e-3


def test_a_job_past_its_time_limit_is_stopped_and_recorded_failed_while_the_sweep_goes_on(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_sweep("-m", "trainer.save_model=false", "trainer.timeout_s=10", "trainer.epochs=2,10000", "validation=kfold",
                     "validation.n_splits=2", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, check=False)  # fmt: skip
    by_epochs = {r["trainer.epochs"]: r for r in records_under(sweep_dir)}
    assert proc.returncode == 1 and by_epochs[2]["status"] == "completed" and by_epochs[2]["trained_by"] == "model.fit"
    stopped = by_epochs[10000]
    assert stopped["status"] == "failed" and stopped["error"].startswith("TimeoutError: trainer.timeout_s=10: stopped in epoch ")
    assert int(stopped["error"].split("epoch ")[1].split(" of")[0]) < 10000  # the first fold stopped; the second never trained


def test_a_clustering_fit_that_ends_past_the_limit_fails_the_job():
    cfg = compose("task=cluster", "trainer.timeout_s=1e-9")
    with pytest.raises(TimeoutError, match=r"^trainer.timeout_s=1e-09: the fit ended past it$"):
        train([cfg], [check(cfg)])
    assert compose("task=cluster", "trainer.timeout_s=60").trainer.timeout_s == 60
