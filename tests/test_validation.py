"""Issue 4, point 1: every bad override or dataset file is refused before any training, with one short message naming it.

Most cases are checked in-process (:func:`sweep.compose` and :func:`sweep.run.check`, the
exact code the command runs); a handful run the ``sweep`` command to check its exit code,
its message and the absence of a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import sweep
from sweep.run import check
from tests.conftest import run_sweep

#: (overrides, what the message must name)
BAD_OVERRIDES = [
    (["optimizer.lr=0"], "optimizer.lr"),
    (["optimizer.lr=-0.1"], "optimizer.lr"),
    (["regularizer.dropout=1"], "regularizer.dropout"),
    (["regularizer.dropout=-0.2"], "regularizer.dropout"),
    (["regularizer.l1=-1e-4"], "regularizer.l1"),
    (["regularizer.l2=-0.01"], "regularizer.l2"),
    (["validation=kfold", "validation.n_splits=1"], "validation.n_splits"),
    (["validation=kfold", "validation.fold=5"], "validation.fold"),
    (["validation=kfold", "validation.fold=-1"], "validation.fold"),
    (["validation.size=0"], "validation.size"),
    (["validation.size=-5"], "validation.size"),
    (["validation.size=2.5"], "validation.size"),
    (["trainer.epochs=0"], "trainer.epochs"),
    (["trainer.batch_size=0"], "trainer.batch_size"),
    (["model.hidden_units=[]"], "model.hidden_units"),
    (["model.hidden_units=[64,0]"], "model.hidden_units"),
    (["model.hidden_units=[-8]"], "model.hidden_units"),
    (["task=cluster", "model.n_clusters=1"], "model.n_clusters"),
    (["dataset.test_size=1.5"], "dataset.test_size"),
    # Hydra's own checks: wrong types, unknown keys and groups
    (["optimizer.lr=abc"], "optimizer.lr"),
    (["trainer.epochs=2.5"], "trainer.epochs"),
    (["trainer.epochs=ten"], "trainer.epochs"),
    (["trainer.foo=1"], "trainer.foo"),
    (["nosuchgroup=x"], "nosuchgroup"),
    (["optimizer=nope"], "optimizer/nope"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD_OVERRIDES, ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_overrides_raise_the_package_error_naming_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(sweep.SweepConfigError) as caught:
        sweep.compose(*overrides)
    assert key in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_good_overrides_pass() -> None:
    cfg = sweep.compose("optimizer.lr=0.5", "regularizer.dropout=0.99", "validation=kfold", "validation.fold=4")
    data, folds = check(cfg)
    assert len(folds) == 1 and folds[0].index == 4 and len(data.y) > 0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["validation.size=1437"], "validation.size"),  # digits keeps 1437 rows after the test split
        (["validation.size=0.9999"], "validation.size"),
        (["task=cluster", "model.n_clusters=1200"], "model.n_clusters"),  # 1149 training rows
        (["validation=kfold", "validation.n_splits=2000"], "validation.n_splits"),
    ],
)
def test_limits_that_depend_on_the_row_count_are_checked_before_training(overrides: list[str], key: str) -> None:
    with pytest.raises(sweep.SweepConfigError, match=key.replace(".", r"\.")):
        check(sweep.compose(*overrides))


# ----------------------------------------------------------------------------- bad files


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase its message must hold)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype("float32"), np.arange(40) % 2
    x_nan, x_inf = x.copy(), x.copy()
    x_nan[3, 1], x_inf[5, 0] = np.nan, np.inf
    not_npz = tmp / "data.csv"
    not_npz.write_text("x,y\n1,0\n")
    return {
        "missing": (tmp / "nowhere.npz", "no file"),
        "not_npz": (not_npz, "not an .npz"),
        "corrupt": (tmp / "corrupt.npz", "cannot read"),
        "no_y": (_npz(tmp / "no_y.npz", x=x), "lacks array(s) y"),
        "no_x": (_npz(tmp / "no_x.npz", y=y), "lacks array(s) x"),
        "lengths": (_npz(tmp / "lengths.npz", x=x, y=y[:-1]), "40 rows but y has 39"),
        "nan": (_npz(tmp / "nan.npz", x=x_nan, y=y), "NaN, inf"),
        "inf": (_npz(tmp / "inf.npz", x=x_inf, y=y), "NaN, inf"),
        "one_class": (_npz(tmp / "one_class.npz", x=x, y=np.zeros(40, dtype=int)), "single class"),
    }


@pytest.mark.parametrize("name", ["missing", "not_npz", "corrupt", "no_y", "no_x", "lengths", "nan", "inf", "one_class"])
def test_bad_dataset_files_raise_the_package_error_naming_the_file(tmp_path: Path, name: str) -> None:
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    file, phrase = _bad_files(tmp_path)[name]
    with pytest.raises(sweep.SweepConfigError) as caught:
        check(sweep.compose("dataset=npz", f"dataset.path={file}"))
    message = str(caught.value)
    assert str(file) in message and phrase in message
    assert "\n" not in message


# ------------------------------------------------------------------ the command, for real


def _assert_refused(proc, *phrases: str) -> None:
    assert proc.returncode != 0
    assert all(phrase in proc.stderr for phrase in phrases), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 12  # short: our messages are one line, Hydra's a few


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "phrases"),
    [
        (["regularizer.l2=abc"], ["regularizer.l2", "could not be converted to Float"]),
        (["optimizer.lr=abc"], ["optimizer.lr='abc'", "must be a finite number > 0 or a schedule's _target_ node"]),
        (["trainer.epochs=2.5"], ["trainer.epochs"]),
        (["trainer.foo=1"], ["trainer.foo"]),
        (["regularizer.dropout=1"], ["regularizer.dropout=1.0: must be in [0, 1)"]),
        (["validation.size=5000"], ["validation.size=5000.0", "at least one row"]),
        (["task=cluster", "model.n_clusters=1"], ["model.n_clusters=1: must be >= 2"]),
    ],
)
def test_the_command_refuses_bad_overrides_in_one_message(tmp_path: Path, overrides: list[str], phrases: list[str]) -> None:
    proc = run_sweep(*overrides, "trainer.epochs=1", cwd=tmp_path, check=False)
    _assert_refused(proc, *phrases)
    assert not list(tmp_path.rglob("history.csv")), "nothing may be trained"


@pytest.mark.slow
def test_the_command_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    file, phrase = _bad_files(tmp_path)["nan"]
    proc = run_sweep("dataset=npz", f"dataset.path={file}", cwd=tmp_path, check=False)
    _assert_refused(proc, str(file), phrase)
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_hydra_full_error_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_sweep("regularizer.l2=abc", cwd=tmp_path, check=False, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.slow
def test_a_bad_grid_point_is_recorded_failed_without_training_and_the_rest_run(tmp_path: Path) -> None:
    proc = run_sweep("-m", "task=cluster", "model.n_clusters=1,4", "hydra.sweep.dir=sw", cwd=tmp_path, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr
    bad, good = (json.loads((tmp_path / "sw" / str(n) / "result.json").read_text()) for n in (0, 1))
    assert bad["status"] == "failed" and bad["error"] == "SweepConfigError: model.n_clusters=1: must be >= 2"
    assert not (tmp_path / "sw" / "0" / "centers.npy").exists()
    assert good["status"] == "completed" and good["model.n_clusters"] == 4
