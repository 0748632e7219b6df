"""Datasets: digits is bundled, Keras-format files are read from disk (downloads: test_download.py), inputs are scaled by the sweep's rows, labels become class indices."""

from __future__ import annotations

import re
import socket
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


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: a download from it is refused at once, never leaving the machine."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("name", "cached_as"), [("mnist", "mnist.npz"), ("fashion_mnist", "fashion-mnist/train-labels-idx1-ubyte.gz")])
def test_a_keras_file_neither_cached_nor_downloadable_says_where_to_put_it(
    name: str, cached_as: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    origin = f"http://127.0.0.1:{closed_port()}/{'mnist.npz' if name == 'mnist' else ''}"
    expected = re.escape(str(tmp_path / "datasets" / cached_as))
    with pytest.raises(SweepConfigError, match=rf"^dataset.origin: cannot download .*; put .* at {expected}, pass dataset.path=<file>"):
        load_dataset(compose_config(f"dataset={name}", f"dataset.origin={origin}").dataset)


def test_a_keras_format_file_keras_does_not_ship_is_never_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    expected = re.escape(str(tmp_path / "datasets" / "mine.npz"))
    with pytest.raises(SweepConfigError, match=rf"^dataset.path: no file at {expected}; put mine.npz \(Keras format"):
        load_dataset(compose_config("dataset=mnist", "dataset.filename=mine.npz").dataset)


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


# ----------------------------------------------------------------- the test split's strata


def load_npz(path: Path, **arrays: np.ndarray):
    """Write ``arrays`` to ``path`` and load it as ``dataset=npz`` (or ``dataset=mnist`` for a Keras-format file)."""
    np.savez(path, **arrays)
    preset = "mnist" if "x_train" in arrays else "npz"
    return load_dataset(compose_config(f"dataset={preset}", f"dataset.path={path}").dataset)


def test_the_test_split_is_stratified_on_the_labels_present(tmp_path: Path) -> None:
    y = np.array([0] * 70 + [2] * 30)  # no label 1
    data = load_npz(tmp_path / "gap.npz", x=np.arange(100.0)[:, None], y=y)
    assert data.stratified is True
    assert np.bincount(data.y_test).tolist() == [14, 6]  # 70% and 30% of 20 rows (labels 0 and 2, as 0 and 1)


def test_a_class_of_one_row_cannot_be_stratified_and_the_dataset_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    y = np.array([0] * 50 + [1] * 49 + [7])
    with caplog.at_level("WARNING", logger="sweep.data"):
        data = load_npz(tmp_path / "single.npz", x=np.arange(100.0)[:, None], y=y)
    assert data.stratified is False and len(data.y_test) == 20
    assert any("class(es) 7 have a single row" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_a_test_split_too_small_for_every_class_is_cut_unstratified(tmp_path: Path) -> None:
    y = np.arange(30) % 5  # 5 classes, but 10% of 30 rows is 3 test rows
    np.savez(tmp_path / "small.npz", x=np.arange(30.0)[:, None], y=y)
    data = load_dataset(compose_config("dataset=npz", f"dataset.path={tmp_path / 'small.npz'}", "dataset.test_size=0.1").dataset)
    assert data.stratified is False and len(data.y_test) == 3


def test_a_loader_with_its_own_test_split_is_neither_stratified_nor_not(tmp_path: Path) -> None:
    write_keras_npz(tmp_path / "own.npz")
    data = load_dataset(compose_config("dataset=mnist", f"dataset.path={tmp_path / 'own.npz'}").dataset)
    assert data.stratified is None


# ------------------------------------------------------------------------------- labels


LABELS = {
    "1..10": list(range(1, 11)),
    "hundreds": list(range(0, 1000, 100)),
    "strings": ["cat", "dog", "emu"],
    "whole floats": [1.0, 2.0, 3.0],
    "negative": [-1, 1],
}


@pytest.mark.parametrize("labels", LABELS.values(), ids=LABELS.keys())
def test_labels_become_class_indices_in_sorted_order_and_the_dataset_keeps_them(tmp_path: Path, labels: list) -> None:
    k = np.arange(120) % len(labels)  # row i has label labels[k[i]] and every input equal to k[i]
    x = np.repeat(k[:, None].astype("float32"), 3, axis=1)
    data = load_npz(tmp_path / "labels.npz", x=x, y=np.array(labels)[k])
    assert data.classes == tuple(labels) and all(type(c) in (int, str) for c in data.classes)  # JSON-friendly
    for inputs, y in ((data.x, data.y), (data.x_test, data.y_test)):
        np.testing.assert_array_equal(y, np.round(inputs[:, 0] * (len(labels) - 1)))


def test_a_dataset_with_string_labels_trains(tmp_path: Path) -> None:
    from sweep.run import Job, run_job

    k = np.arange(150) % 3
    x = np.random.default_rng(0).normal(size=(150, 4)) + k[:, None]
    np.savez(tmp_path / "animals.npz", x=x, y=np.array(["cat", "dog", "emu"])[k])
    cfg = compose_config("dataset=npz", f"dataset.path={tmp_path / 'animals.npz'}", "trainer.epochs=1", "trainer.save_model=false")
    record = run_job(cfg, Job(tmp_path / "run"))
    assert record["status"] == "completed" and 0 <= record["val_accuracy"] <= 1
    assert record["classes"] == ["cat", "dog", "emu"] and record["test_split_stratified"] is True
    assert (record["n_train_rows"], record["n_val_rows"], record["trained_by"]) == (96, 24, "graph")  # 150 - 30 test rows, 20% held out


def test_labels_already_0_to_k_minus_1_are_kept_without_a_mapping() -> None:
    data = load_dataset(compose_config().dataset)
    assert data.classes is None and sorted(set(data.y)) == list(range(10))


def test_a_test_label_never_seen_in_training_is_refused_naming_it(tmp_path: Path) -> None:
    x = np.zeros((40, 4), "uint8")
    with pytest.raises(SweepConfigError, match=r"own\.npz.*test label\(s\) 7 .*not among the training labels"):
        load_npz(tmp_path / "own.npz", x_train=x, y_train=np.arange(40) % 3, x_test=x[:10], y_test=np.array([0, 1, 2, 7] * 2 + [0, 1]))


def test_string_training_labels_with_numeric_test_labels_are_refused(tmp_path: Path) -> None:
    x = np.zeros((40, 4), "uint8")
    with pytest.raises(SweepConfigError, match=r"mixed\.npz: training labels are strings but test labels numbers"):
        load_npz(tmp_path / "mixed.npz", x_train=x, y_train=np.array(["a", "b"] * 20), x_test=x[:4], y_test=np.arange(4) % 2)


@pytest.mark.parametrize(("y", "phrase"), [([0.0, 1.0, np.nan, 1.0], "NaN"), ([0.0, 0.5, 1.0, 1.0], "class labels")], ids=["nan", "fraction"])
def test_labels_that_are_not_classes_are_refused_naming_the_file(tmp_path: Path, y: list, phrase: str) -> None:
    file = tmp_path / "bad_labels.npz"
    with pytest.raises(SweepConfigError, match=phrase) as caught:
        load_npz(file, x=np.zeros((40, 2)), y=np.array(y * 10))
    assert str(file) in str(caught.value)


# ---------------------------------------------------------------------- users' loaders


def returns_none():
    return None


def returns_dict():
    return {"x": np.zeros((10, 2)), "y": np.arange(10) % 2}


@pytest.mark.parametrize(
    ("loader", "kind"),
    [(returns_none, "NoneType"), (returns_dict, "dict")],
)
def test_a_loader_returning_something_else_than_arrays_is_refused_naming_it(loader, kind: str) -> None:
    target = f"test_data.{loader.__name__}"
    with pytest.raises(SweepConfigError) as caught:
        load_dataset(compose_config(f"dataset._target_={target}").dataset)
    assert str(caught.value) == (
        f"dataset._target_={target} returned {kind}; expected sweep.data.Arrays(x, y), an (x, y) tuple "
        "or a pandas DataFrame (with dataset.target naming its label column)"
    )
