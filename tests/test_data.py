"""Datasets: digits is bundled, Keras-format files are read from disk (never downloaded), inputs land in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import compose_config
from sweep.config import SweepConfigError
from sweep.data import load_dataset


def write_keras_npz(path: Path, n_train: int = 120, n_test: int = 30) -> None:
    """A small file in the format of Keras' mnist.npz: uint8 28x28 images, int labels, its own test split."""
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=np.arange(n_train) % 10,
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=np.arange(n_test) % 10,
    )


def test_digits_are_bundled_scaled_and_split() -> None:
    data = load_dataset(compose_config().dataset)
    assert data.x.shape[1:] == (8, 8) and len(data.x) + len(data.x_test) == 1797
    assert len(data.x_test) == 360 and sorted(set(data.y)) == list(range(10))
    assert data.x.min() == 0.0 and data.x.max() == 1.0 and data.x.dtype == np.float32


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_a_missing_keras_file_says_where_to_put_it(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    expected = tmp_path / "datasets" / f"{name}.npz"
    with pytest.raises(SweepConfigError, match=rf"dataset.path: no file at {expected}; put {name}.npz"):
        load_dataset(compose_config(f"dataset={name}").dataset)


def test_mnist_is_read_from_keras_cache_dir_and_keeps_its_own_test_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "datasets").mkdir()
    write_keras_npz(tmp_path / "datasets" / "mnist.npz")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    data = load_dataset(compose_config("dataset=mnist").dataset)
    assert data.x.shape == (120, 28, 28) and data.x_test.shape == (30, 28, 28)
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0


def test_a_file_given_by_path(tmp_path: Path) -> None:
    write_keras_npz(tmp_path / "fmnist.npz", n_train=50)
    data = load_dataset(compose_config("dataset=fashion_mnist", f"dataset.path={tmp_path / 'fmnist.npz'}").dataset)
    assert len(data.x) == 50


def test_a_users_npz_with_x_and_y(tmp_path: Path) -> None:
    np.savez(tmp_path / "mine.npz", x=np.linspace(-5, 5, 400).reshape(100, 4), y=np.arange(100) % 2)
    data = load_dataset(compose_config("dataset=npz", f"dataset.path={tmp_path / 'mine.npz'}").dataset)
    assert len(data.x) == 80 and len(data.x_test) == 20 and data.x.min() >= 0 and data.x.max() <= 1


def test_synthetic_data_sized_by_config() -> None:
    data = load_dataset(compose_config("dataset=synthetic", "dataset.n_samples=250", "dataset.n_features=6").dataset)
    assert data.x.shape == (200, 6) and len(data.x_test) == 50
