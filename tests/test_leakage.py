"""The held-out test rows never move the numbers a sweep sees: not its inputs' scaling, not its validation metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

import sweep
from sweep.data import load_dataset
from sweep.run import Job, run_job

N_ROWS = 200


def _rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(N_ROWS) % 3
    x = (rng.normal(size=(N_ROWS, 6)) + y[:, None]).astype("float32")
    return x, y


def _test_rows(y: np.ndarray) -> np.ndarray:
    """The rows ``dataset=npz`` holds out with its defaults (test_size 0.2, stratified, split_seed 0)."""
    _, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    return test


def _npz_with_and_without_an_outlier(tmp_path: Path) -> tuple[Path, Path]:
    x, y = _rows()
    clean, poisoned = tmp_path / "clean.npz", tmp_path / "poisoned.npz"
    np.savez(clean, x=x, y=y)
    x_out = x.copy()
    x_out[_test_rows(y)[0], 0] = 1e6  # far outside every other value, in a row of the test split
    np.savez(poisoned, x=x_out, y=y)
    return clean, poisoned


def test_a_test_row_outlier_changes_no_training_input_and_no_validation_metric(tmp_path: Path) -> None:
    clean, poisoned = _npz_with_and_without_an_outlier(tmp_path)
    overrides = ["dataset=npz", "trainer.epochs=1", "trainer.save_model=false"]
    cfgs = {f.stem: sweep.compose(*overrides, f"dataset.path={f}") for f in (clean, poisoned)}
    data = {name: load_dataset(cfg.dataset) for name, cfg in cfgs.items()}
    np.testing.assert_array_equal(data["clean"].x, data["poisoned"].x)
    np.testing.assert_array_equal(data["clean"].x_test[1:], data["poisoned"].x_test[1:])
    assert data["poisoned"].x_test.max() > 1  # the outlier is scaled like every test row, not clipped
    records = {name: run_job(cfg, Job(tmp_path / name)) for name, cfg in cfgs.items()}
    assert [r["status"] for r in records.values()] == ["completed", "completed"]
    for metric in ("val_loss", "val_accuracy", "train_loss", "train_accuracy"):
        assert records["clean"][metric] == records["poisoned"][metric], metric
