"""``trainer.warm_start``: a run goes on from an earlier, shorter run of the same config, with the numbers of a run from scratch.

This is how successive halving's survivors continue: a rung's run names the job dir of the
same config's run at the previous rung. Only the remaining epochs train (``resumed_epochs``
in the record says how many were taken over), and the record, history and saved model are
the same, to the bit, as those of one run of all the epochs. A dir that holds no such run
is not an error: the run trains from its first epoch, with the same numbers.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest

from conftest import compose_config
from sweep.config import fingerprint, flatten
from sweep.engines import Checkpoint, Member, fit_members
from sweep.engines.saved import load_state
from sweep.models import Output
from sweep.run import Job, check, run_job
from test_engines import OPTIMIZERS

#: What differs between two records of one config's runs, however they were trained.
VOLATILE = ("time", "elapsed", "started_at", "output_dir", "versions", "resumed_epochs", "trainer.warm_start")


def _stable(record: dict) -> dict:
    """``record`` without what differs between runs of one config (times, dirs, how it was started), in its folds' metrics too."""
    kept = {k: v for k, v in record.items() if not any(word in k for word in VOLATILE)}
    if "fold_metrics" in kept:
        kept["fold_metrics"] = [_stable(fold) for fold in kept["fold_metrics"]]
    return kept


def _weights(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("model.weights.h5")


def _history(job_dir: Path) -> list[dict]:
    with open(job_dir / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum", "rmsprop_momentum"])
def test_a_run_continued_from_a_shorter_one_has_the_record_and_model_of_one_run_of_all_its_epochs(optimizer: str, tmp_path: Path) -> None:
    overrides = (*OPTIMIZERS[optimizer], "regularizer.dropout=0.3", "regularizer.l1=0.0001")
    full = run_job(compose_config(*overrides, "trainer.epochs=5"), Job(tmp_path / "full"))
    short = run_job(compose_config(*overrides, "trainer.epochs=2"), Job(tmp_path / "short"))
    continued = run_job(compose_config(*overrides, "trainer.epochs=5", f"trainer.warm_start={tmp_path / 'short'}"), Job(tmp_path / "continued"))
    assert short["status"] == continued["status"] == "completed"
    assert continued["resumed_epochs"] == 2 and "resumed_epochs" not in full
    assert _stable(continued) == _stable(full)
    assert _history(tmp_path / "continued") == _history(tmp_path / "full")
    assert _weights(tmp_path / "continued" / "model.keras") == _weights(tmp_path / "full" / "model.keras")


def test_warm_started_folds_continue_together_as_one_population_with_their_bits(tmp_path: Path) -> None:
    kfold = ("validation=kfold", "validation.fold=null", "regularizer.dropout=0.2")
    full = run_job(compose_config(*kfold, "trainer.epochs=4"), Job(tmp_path / "full"))
    run_job(compose_config(*kfold, "trainer.epochs=1"), Job(tmp_path / "short"))
    continued = run_job(compose_config(*kfold, "trainer.epochs=4", f"trainer.warm_start={tmp_path / 'short'}"), Job(tmp_path / "continued"))
    assert continued["population_size"] == 5 and continued["resumed_epochs"] == 1
    assert _stable(continued) == _stable(full)
    assert _history(tmp_path / "continued") == _history(tmp_path / "full")
    for fold in range(5):
        assert _weights(tmp_path / "continued" / f"model_fold{fold}.keras") == _weights(tmp_path / "full" / f"model_fold{fold}.keras")


def test_members_continuing_in_a_population_have_the_bits_of_their_full_runs(tmp_path: Path) -> None:
    """Three configs' saved two-epoch states go on together to five epochs, each as if trained five epochs alone."""
    configs = [("optimizer.lr=0.01",), ("optimizer.lr=0.003", "regularizer.dropout=0.5"), ("seed=3", "regularizer.l2=0.001")]
    starts, fulls = [], []
    for i, overrides in enumerate(configs):
        run_job(compose_config(*overrides, "trainer.epochs=2"), Job(tmp_path / str(i)))
        cfg = compose_config(*overrides, "trainer.epochs=5")
        history = [{"epoch": int(row["epoch"]), **{k: float(v) for k, v in row.items() if k != "epoch"}} for row in _history(tmp_path / str(i))]
        data, [fold] = check(cfg)
        start = Checkpoint(load_state(cfg, str(tmp_path / str(i) / "model.keras"), data.x.shape[1:], Output(10)), history)
        starts.append(Member(cfg, data.x, data.y, fold.train, fold.val, fold.index, start))
        fulls.append(Member(cfg, data.x, data.y, fold.train, fold.val, fold.index))
    together = fit_members(starts)
    for member, continued, alone in zip(starts, together, fit_members(fulls[:1]) + fit_members(fulls[1:2]) + fit_members(fulls[2:])):
        assert continued.population_size == 3 and continued.resumed_epochs == 2
        assert continued.history == alone.history, member.cfg.optimizer.lr
        assert {k: v for k, v in continued.metrics.items() if k != "fit_time_s"} == {k: v for k, v in alone.metrics.items() if k != "fit_time_s"}


@pytest.mark.parametrize(
    ("earlier", "why"),
    [
        (("optimizer.lr=0.003", "trainer.epochs=2"), "another config"),
        (("trainer.epochs=2", "trainer.save_model=false"), "no model saved"),
        (("trainer.epochs=5",), "as many epochs"),
        (("optimizer.lr=1e30", "trainer.epochs=2"), "a diverged run"),
        (("trainer.epochs=2", "model.activation=selu"), "another config, trained by model.fit"),
    ],
)
def test_a_warm_start_from_a_dir_without_an_earlier_run_of_the_config_trains_from_the_first_epoch(earlier, why, tmp_path: Path) -> None:
    run_job(compose_config(*earlier), Job(tmp_path / "earlier"))
    full = run_job(compose_config("trainer.epochs=5"), Job(tmp_path / "full"))
    record = run_job(compose_config("trainer.epochs=5", f"trainer.warm_start={tmp_path / 'earlier'}"), Job(tmp_path / "run"))
    assert record["status"] == "completed" and "resumed_epochs" not in record, why
    assert _stable(record) == _stable(full)


def test_a_warm_start_from_a_missing_dir_trains_from_the_first_epoch(tmp_path: Path) -> None:
    record = run_job(compose_config("trainer.epochs=2", f"trainer.warm_start={tmp_path / 'nowhere'}"), Job(tmp_path / "run"))
    assert record["status"] == "completed" and record["epochs_run"] == 2 and "resumed_epochs" not in record


def test_model_fit_and_early_stopping_runs_train_from_scratch_with_a_warm_start(tmp_path: Path) -> None:
    for name, more in {"model.fit": ("model.activation=selu",), "early stopping": ("trainer.early_stopping_patience=1",)}.items():
        run_job(compose_config(*more, "trainer.epochs=2"), Job(tmp_path / name / "short"))
        full = run_job(compose_config(*more, "trainer.epochs=4"), Job(tmp_path / name / "full"))
        record = run_job(compose_config(*more, "trainer.epochs=4", f"trainer.warm_start={tmp_path / name / 'short'}"), Job(tmp_path / name / "run"))
        assert "resumed_epochs" not in record, name
        assert _stable(record) == _stable(full), name


def test_a_warm_start_does_not_change_a_runs_fingerprint(tmp_path: Path) -> None:
    """A continued run is the run of all the epochs: a sweep that has one reuses it for the other."""
    plain, warm = compose_config("trainer.epochs=5"), compose_config("trainer.epochs=5", f"trainer.warm_start={tmp_path}")
    assert fingerprint(flatten(plain)) == fingerprint(flatten(warm))
