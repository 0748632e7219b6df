"""The benchmark's workloads: the tutorial's grid on digits, with a holdout (W1) or 5 folds (W2).

Every contender trains on the same rows: the dataset and its splits come from
:mod:`sweep.data` and :mod:`sweep.splits` with sweep's default settings (digits, the
test split cut off, a shuffled 0.2 holdout or ``KFold(5, shuffle, seed 0)``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    """A grid of (lr, l2, dropout) configs, each trained on a holdout or on every fold."""

    name: str
    lrs: tuple[float, ...]
    l2s: tuple[float, ...]
    dropouts: tuple[float, ...]
    folds: int | None  # None: holdout 0.2; k: KFold(k, shuffle, seed 0), a fresh model per fold
    epochs: int = 10
    batch_size: int = 32

    @property
    def configs(self) -> list[tuple[float, float, float]]:
        """Every (lr, l2, dropout) of the grid, in sweep's order (the last axis varies fastest)."""
        return list(itertools.product(self.lrs, self.l2s, self.dropouts))

    @property
    def fits(self) -> int:
        """How many models the workload trains."""
        return len(self.configs) * (self.folds or 1)

    def sweep_overrides(self) -> list[str]:
        """The ``sweep -m`` overrides that run this workload with sweep's default settings otherwise."""
        join = lambda values: ",".join(repr(float(v)) for v in values)  # noqa: E731
        overrides = [
            f"optimizer.lr={join(self.lrs)}",
            f"regularizer.l2={join(self.l2s)}",
            f"regularizer.dropout={join(self.dropouts)}",
            f"trainer.epochs={self.epochs}",
            f"trainer.batch_size={self.batch_size}",
        ]
        if self.folds:
            overrides += ["validation=kfold", f"validation.n_splits={self.folds}", f"validation.fold=range({self.folds})"]
        return overrides


GRID = dict(lrs=(1e-3, 1e-2), l2s=(0.0, 1e-2), dropouts=(0.0, 0.5))

WORKLOADS = {
    "W1": Workload("W1", **GRID, folds=None),
    "W2": Workload("W2", **GRID, folds=5),
}
QUICK = {
    "W1": Workload("W1", lrs=(1e-2,), l2s=(0.0,), dropouts=(0.0, 0.5), folds=None, epochs=2),
    "W2": Workload("W2", lrs=(1e-2,), l2s=(0.0,), dropouts=(0.0,), folds=5, epochs=2),
}


def folds(workload: Workload) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """``x``, ``y`` and the (train rows, validation rows) of each fold, exactly as sweep selects them."""
    from omegaconf import OmegaConf

    from sweep.config import DigitsConfig
    from sweep.data import load_dataset
    from sweep.splits import holdout, kfold

    data = load_dataset(OmegaConf.structured(DigitsConfig()))
    if workload.folds is None:
        parts = [holdout(len(data.y), 0.2, shuffle=True, seed=0)]
    else:
        parts = kfold(data.y, workload.folds, shuffle=True, seed=0)
    return data.x, data.y, [(part.train, part.val) for part in parts]
