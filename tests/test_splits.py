"""Validation rows: folds are disjoint, cover the training rows, are fixed by their seed, and never touch the test split."""

from __future__ import annotations

import numpy as np
import pytest

import sweep
from conftest import compose_config
from sweep.config import SweepConfigError
from sweep.data import load_dataset
from sweep.run import check
from sweep.splits import holdout, kfold, make_folds


@pytest.fixture
def numbered_rows(tmp_path, monkeypatch) -> str:
    """An .npz whose row i has every feature equal to i, so a row's identity survives splitting and scaling."""
    n = 300
    x = np.repeat(np.arange(n, dtype="float32")[:, None], 4, axis=1)
    y = np.arange(n) % 3
    path = tmp_path / "rows.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def row_ids(x: np.ndarray) -> set[float]:
    return set(np.round(x[:, 0] * 299).astype(int).tolist())


@pytest.mark.parametrize("validation", ["kfold", "stratified_kfold"])
def test_folds_partition_the_training_rows_and_never_include_a_test_row(numbered_rows: str, validation: str) -> None:
    cfg = compose_config("dataset=npz", f"dataset.path={numbered_rows}", f"validation={validation}")
    data = load_dataset(cfg.dataset)
    test_ids, dev_ids = row_ids(data.x_test), row_ids(data.x)
    assert len(test_ids) == 60 and not test_ids & dev_ids and len(test_ids | dev_ids) == 300
    folds = make_folds(cfg.validation, data.y)
    assert len(folds) == 5
    val_sets = [set(f.val.tolist()) for f in folds]
    assert all(not a & b for i, a in enumerate(val_sets) for b in val_sets[i + 1 :])
    assert set().union(*val_sets) == set(range(len(data.y)))
    for fold in folds:
        assert not set(fold.train.tolist()) & set(fold.val.tolist())
        assert len(fold.train) + len(fold.val) == len(data.y)
        assert not row_ids(data.x[fold.val]) & test_ids and not row_ids(data.x[fold.train]) & test_ids


def test_a_fold_index_is_the_same_rows_in_every_job() -> None:
    y = np.arange(100) % 4
    first = kfold(y, 5, shuffle=True, seed=0)
    again = kfold(y, 5, shuffle=True, seed=0)
    assert all(np.array_equal(a.val, b.val) for a, b in zip(first, again))
    cfg = compose_config("validation=kfold", "validation.fold=3", "seed=7")
    (chosen,) = make_folds(cfg.validation, y)
    assert chosen.index == 3 and np.array_equal(chosen.val, first[3].val)


def test_stratified_folds_keep_class_proportions() -> None:
    y = np.array([0] * 80 + [1] * 20)
    for fold in kfold(y, 5, stratified=True):
        assert np.bincount(y[fold.val]).tolist() == [16, 4]


def test_holdout_sizes_as_fraction_or_row_count() -> None:
    assert len(holdout(1000, 0.2).val) == 200
    unshuffled = holdout(60000, 10000, shuffle=False)
    assert unshuffled.val[0] == 50000 and unshuffled.val[-1] == 59999 and len(unshuffled.train) == 50000
    with pytest.raises(SweepConfigError, match=r"validation.size=1000.*at least one row"):
        holdout(1000, 1000)


def test_the_test_split_is_fixed_by_its_own_seed_not_the_training_seed() -> None:
    a = load_dataset(compose_config("seed=1").dataset)
    b = load_dataset(compose_config("seed=2").dataset)
    c = load_dataset(compose_config("dataset.split_seed=5").dataset)
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_a_validation_size_of_one_is_refused_not_read_as_one_row() -> None:
    for size in (1, 1.0):
        with pytest.raises(SweepConfigError) as caught:
            holdout(1000, size)
        assert str(caught.value) == "validation.size=1.0: a fraction must be in (0, 1); a row count must be >= 10"
    with pytest.raises(SweepConfigError, match=r"^validation\.size=1\.0: a fraction"):
        check(sweep.compose("validation.size=1.0"))


@pytest.mark.parametrize(("n_rows", "size", "n_val"), [(100, 0.05, 5), (1000, 9, 9), (1000, 0.001, 1)])
def test_a_holdout_of_fewer_than_10_rows_is_refused(n_rows: int, size: float, n_val: int) -> None:
    with pytest.raises(SweepConfigError, match=rf"^validation\.size={size}.*holds out {n_val} of {n_rows} rows.*at least 10"):
        holdout(n_rows, size)
    assert len(holdout(n_rows, 10).val) == 10


def test_folds_of_fewer_than_10_rows_are_refused() -> None:
    with pytest.raises(SweepConfigError, match=r"^validation\.n_splits=5: .*49 rows.*9 rows.*at least 10"):
        kfold(np.arange(49) % 2, 5)
    assert min(len(f.val) for f in kfold(np.arange(50) % 2, 5)) == 10
