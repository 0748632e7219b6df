"""Every bad input is caught before any training, in one line naming the key.

A metric the task does not report, a key no schema knows (added with ``+``, as Hydra's
hint for a misspelt key suggests) and a value out of range are refused by
:func:`sweep.compose` and by every job's check (:func:`sweep.run.check`), before
TensorFlow is imported. The messages read ``key=value: what is allowed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sweep
from conftest import MODEL_FIT, QUICK, run_sweep
from sweep.config import TASK_METRICS
from sweep.data import load_dataset
from sweep.splits import make_folds
from sweep.engines import Member, fit_members

CLASSIFY_METRICS = (
    "train_loss, train_accuracy, val_loss, val_accuracy, best_val_accuracy, best_epoch, epochs_run, restored_epoch, fit_time_s"
)
LEARNING_RATE = "optimizer.learning_rate=0.1: not a key of optimizer=adam (its keys: lr); did you mean optimizer.lr?"
MONITORS = "must be one of val_loss, val_accuracy, loss, accuracy"


def _refusal(*overrides: str) -> str:
    with pytest.raises(sweep.SweepConfigError) as caught:
        sweep.compose(*overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- task.metric


def test_a_metric_the_task_does_not_report_is_refused() -> None:
    assert _refusal("task.metric=foo") == f"task.metric='foo': not a metric of task=classify (one of: {CLASSIFY_METRICS})"


@pytest.mark.parametrize(
    ("overrides", "ending"),
    [
        (["task.metric=val_acc"], "not a metric of task=classify (one of: ...); did you mean val_accuracy?"),
        (["task=cluster", "task.metric=val_accuracy"], "not a metric of task=cluster (one of: ...)"),
        (["task=cluster", "task.metric=train_inertial"], "not a metric of task=cluster (one of: ...); did you mean train_inertia?"),
    ],
)
def test_a_wrong_metric_is_refused_with_the_closest_name(overrides: list[str], ending: str) -> None:
    message = _refusal(*overrides)
    before, after = ending.split("...")
    assert before in message and message.endswith(after)


@pytest.mark.parametrize(("task", "metric"), [(task, m) for task, names in TASK_METRICS.items() for m in names])
def test_every_metric_a_task_reports_can_be_chosen(task: str, metric: str) -> None:
    assert sweep.compose(f"task={task}", f"task.metric={metric}").task.metric == metric


@pytest.mark.parametrize(
    "overrides",
    [["task=classify"], ["task=classify", *MODEL_FIT], ["task=cluster"]],
    ids=["classify", "classify-model.fit", "cluster"],
)
def test_the_metrics_task_metric_may_name_are_those_the_task_reports(overrides: list[str]) -> None:
    cfg = sweep.compose(*overrides, "trainer.epochs=1")
    data = load_dataset(cfg.dataset)
    (fold,) = make_folds(cfg.validation, data.y)
    [fitted] = fit_members([Member(cfg, data.x, data.y, fold.train, fold.val)])
    assert sorted(fitted.metrics) == sorted(TASK_METRICS[cfg.task.name])


# ----------------------------------------------------------------------- keys no schema knows


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+optimizer.learning_rate=0.1"], LEARNING_RATE),
        (
            ["optimizer=sgd", "+optimizer.momentun=0.5"],
            "optimizer.momentun=0.5: not a key of optimizer=sgd (its keys: lr, momentum, nesterov); did you mean optimizer.momentum?",
        ),
        (["+trainer.epoch=3"], "trainer.epoch=3: not a key of trainer (its keys: "),
        (["+regularizer.l3=0.1"], "regularizer.l3=0.1: not a key of regularizer=l2"),
        (["validation=kfold", "+validation.folds=2"], "validation.folds=2: not a key of validation=kfold"),
        (["+task.metrics=val_loss"], "task.metrics='val_loss': not a key of task=classify"),
        (["+dataset.testsize=0.3"], "dataset.testsize=0.3: not a key of dataset=digits"),
        (["+model.hidden_unit=[64]"], "model.hidden_unit=[64]: not a key of model=mlp"),
        (["+foo=1"], "foo=1: not a key of the config (its keys: "),
        (["+sed=1"], "sed=1: not a key of the config (its keys: "),
    ],
)
def test_a_key_added_with_plus_that_no_schema_knows_is_refused(overrides: list[str], message: str) -> None:
    assert _refusal(*overrides).startswith(message)


@pytest.mark.parametrize(
    ("overrides", "suggestion"),
    [
        (["+trainer.epoch=3"], "did you mean trainer.epochs?"),
        (["validation=kfold", "+validation.folds=2"], "did you mean validation.fold?"),
        (["+model.hidden_unit=[64]"], "did you mean model.hidden_units?"),
        (["+sed=1"], "did you mean seed?"),
    ],
)
def test_a_misspelt_key_gets_the_schemas_spelling(overrides: list[str], suggestion: str) -> None:
    assert _refusal(*overrides).endswith(suggestion)


def test_a_users_own_target_takes_keys_of_its_own() -> None:
    cfg = sweep.compose("optimizer._target_=keras.optimizers.Adamax", "+optimizer.beta_1=0.8")
    assert cfg.optimizer.beta_1 == 0.8
    cfg = sweep.compose("model._target_=custom_builders.recorded_mlp", "+model.width=3")
    assert cfg.model.width == 3


def test_a_users_own_preset_without_a_schema_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "adamax.yaml").write_text("_target_: keras.optimizers.Adamax\nname: adamax\nlr: 0.002\nbeta_1: 0.8\n")
    cfg = sweep.compose("optimizer=adamax", f"hydra.searchpath=[file://{tmp_path}]")
    assert (cfg.optimizer.name, cfg.optimizer.beta_1) == ("adamax", 0.8)


# ------------------------------------------------------------------------------------ ranges

#: (overrides, the whole message)
OUT_OF_RANGE = [
    (["threads=0"], "threads=0: must be auto, null or a positive integer"),
    (["threads=-2"], "threads=-2: must be auto, null or a positive integer"),
    (["threads=many"], "threads='many': must be auto, null or a positive integer"),
    (["optimizer.lr=inf"], "optimizer.lr=inf: must be a finite number > 0 or a schedule's _target_ node"),
    (["optimizer.lr=nan"], "optimizer.lr=nan: must be a finite number > 0 or a schedule's _target_ node"),
    (["optimizer.lr=0"], "optimizer.lr=0: must be a finite number > 0 or a schedule's _target_ node"),
    (["regularizer.l1=inf"], "regularizer.l1=inf: must be a finite number >= 0"),
    (["regularizer.l2=nan"], "regularizer.l2=nan: must be a finite number >= 0"),
    (["regularizer.dropout=nan"], "regularizer.dropout=nan: must be in [0, 1)"),
    (["optimizer=rmsprop", "optimizer.rho=1"], "optimizer.rho=1.0: must be in [0, 1)"),
    (["optimizer=rmsprop", "optimizer.rho=-0.1"], "optimizer.rho=-0.1: must be in [0, 1)"),
    (["optimizer=rmsprop", "optimizer.rho=nan"], "optimizer.rho=nan: must be in [0, 1)"),
    (["optimizer=sgd", "optimizer.momentum=1.5"], "optimizer.momentum=1.5: must be in [0, 1]"),
    (["optimizer=rmsprop", "optimizer.momentum=-0.1"], "optimizer.momentum=-0.1: must be in [0, 1]"),
    (["seed=-1"], "seed=-1: must be in [0, 4294967295] (NumPy's seed range)"),
    (["seed=4294967296"], "seed=4294967296: must be in [0, 4294967295] (NumPy's seed range)"),
    (["validation.seed=-1"], "validation.seed=-1: must be in [0, 4294967295] (NumPy's seed range)"),
    (["dataset.split_seed=-5"], "dataset.split_seed=-5: must be in [0, 4294967295] (NumPy's seed range)"),
    (["trainer.early_stopping_patience=-3"], "trainer.early_stopping_patience=-3: must be null (no early stopping) or >= 0"),
    (["trainer.early_stopping_monitor=val_acc"], f"trainer.early_stopping_monitor='val_acc': {MONITORS}; did you mean val_accuracy?"),
    (["trainer.early_stopping_monitor=f1"], f"trainer.early_stopping_monitor='f1': {MONITORS}"),
    (["dataset.test_size=nan"], "dataset.test_size=nan: must be a fraction in (0, 1)"),
]


@pytest.mark.parametrize(("overrides", "message"), OUT_OF_RANGE, ids=[" ".join(o) for o, _ in OUT_OF_RANGE])
def test_a_value_out_of_range_is_refused_in_one_line_naming_the_key(overrides: list[str], message: str) -> None:
    assert _refusal(*overrides) == message


def test_values_at_the_edges_of_their_ranges_pass() -> None:
    sweep.compose("optimizer=sgd", "optimizer.momentum=1", "seed=4294967295", "threads=1", "trainer.early_stopping_patience=0")
    sweep.compose("optimizer=rmsprop", "optimizer.rho=0", "optimizer.momentum=0", "threads=null")
    sweep.compose("trainer.early_stopping_monitor=accuracy", "validation.seed=0", "dataset.split_seed=4294967295")


# ------------------------------------------------------------------------ the command, for real


@pytest.fixture
def no_tensorflow(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment in which importing TensorFlow leaves a marker file and fails: proof that nothing imported it."""
    tripwire, marker = tmp_path / "tripwire", tmp_path / "tensorflow-imported"
    (tripwire / "tensorflow").mkdir(parents=True)
    module = f"open({str(marker)!r}, 'w').close()\nraise ImportError('TensorFlow was imported')\n"
    (tripwire / "tensorflow" / "__init__.py").write_text(module)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tripwire), os.environ.get("PYTHONPATH")]))}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env={**os.environ, **env}, capture_output=True, text=True)
    assert probe.returncode != 0 and marker.exists(), "the tripwire must catch an import"
    marker.unlink()
    return env, marker


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("threads=0", "threads=0: must be auto, null or a positive integer"),
        ("task.metric=foo", f"task.metric='foo': not a metric of task=classify (one of: {CLASSIFY_METRICS})"),
        ("+optimizer.learning_rate=0.1", LEARNING_RATE),
    ],
)
def test_the_command_refuses_a_bad_value_before_tensorflow_is_imported(
    tmp_path: Path, no_tensorflow: tuple[dict[str, str], Path], override: str, error: str
) -> None:
    env, marker = no_tensorflow
    proc = run_sweep(override, *QUICK, "hydra.run.dir=run", cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"sweep: failed: SweepConfigError: {error}"]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (record["status"], record["error"]) == ("failed", f"SweepConfigError: {error}")
    assert "val_accuracy" not in record and not marker.exists()
