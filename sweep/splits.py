"""Which of the sweep's rows train and which validate: a holdout set or K folds.

Splits depend only on the ``validation`` node and the labels, never on the training
seed, so fold ``k`` is the same rows in every job of a sweep. Indices refer to the rows
of :class:`sweep.data.Dataset` ``x``/``y``; the test rows are not among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from sweep.config import SweepConfigError


@dataclass(frozen=True)
class Fold:
    """One train/validation partition; ``index`` is the fold number (``None`` for a holdout)."""

    index: int | None
    train: np.ndarray
    val: np.ndarray


#: The fewest rows a validation set may have: fewer score in steps too coarse to rank configs by.
MIN_VALIDATION_ROWS = 10


def holdout(n_rows: int, size: float, shuffle: bool = True, seed: int = 0) -> Fold:
    """Hold out ``size`` rows (a fraction if < 1, else a count); unshuffled, the last rows are held out.

    ``size`` 1 is refused: as a fraction it holds out everything, as a count one row.
    """
    key = f"validation.size={float(size)!r}"
    if size == 1:
        raise SweepConfigError(f"{key}: a fraction must be in (0, 1); a row count must be >= {MIN_VALIDATION_ROWS}")
    n_val = int(round(size * n_rows)) if size < 1 else int(size)
    if not n_val < n_rows:
        raise SweepConfigError(f"{key}: holds out {n_val} of {n_rows} rows; it must leave at least one row on each side")
    if n_val < MIN_VALIDATION_ROWS:
        raise SweepConfigError(
            f"{key}: holds out {n_val} of {n_rows} rows; a validation set needs at least {MIN_VALIDATION_ROWS}"
        )
    order = np.random.default_rng(seed).permutation(n_rows) if shuffle else np.arange(n_rows)
    return Fold(None, np.sort(order[: n_rows - n_val]), np.sort(order[n_rows - n_val :]))


def kfold(y: np.ndarray, n_splits: int, shuffle: bool = True, seed: int = 0, stratified: bool = False) -> list[Fold]:
    """All ``n_splits`` folds, from scikit-learn's ``KFold`` or ``StratifiedKFold``."""
    if len(y) // n_splits < MIN_VALIDATION_ROWS:
        raise SweepConfigError(
            f"validation.n_splits={n_splits}: {len(y)} rows make folds of {len(y) // n_splits} rows; "
            f"a validation set needs at least {MIN_VALIDATION_ROWS}"
        )
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter_class = StratifiedKFold if stratified else KFold
    splitter = splitter_class(n_splits=n_splits, shuffle=shuffle, random_state=seed if shuffle else None)
    rows = np.zeros((len(y), 1))
    return [Fold(k, train, val) for k, (train, val) in enumerate(splitter.split(rows, y))]


def make_folds(cfg: DictConfig, y: np.ndarray) -> list[Fold]:
    """The folds a run trains on, from the ``validation`` node: one for a holdout or a chosen fold, else all."""
    if cfg.name == "holdout":
        return [holdout(len(y), cfg.size, cfg.shuffle, cfg.seed)]
    if cfg.name in ("kfold", "stratified_kfold"):
        folds = kfold(y, cfg.n_splits, cfg.shuffle, cfg.seed, stratified=cfg.name == "stratified_kfold")
        return folds if cfg.get("fold") is None else [folds[cfg.fold]]
    raise SweepConfigError(f"validation.name={cfg.name!r}: must be holdout, kfold or stratified_kfold")
