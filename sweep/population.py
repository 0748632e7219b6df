"""Many configs and folds of the tutorial MLP trained together as one population (issue 7).

A launcher groups the jobs of a sweep by :func:`group_key` (configs that differ only in
:data:`VECTORIZABLE` keys) and hands each group to :func:`fit_population`, which returns,
per config, what :func:`sweep.run._fit_folds` would have returned for it.

This first version trains each member through the ordinary compiled path
(:func:`sweep.tasks.compiled.classify`) one after another.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from sweep.config import SweepConfigError, fingerprint, flatten, validate
from sweep.tasks import Fitted, compiled

#: Keys in which the members of one population may differ.
VECTORIZABLE: tuple[str, ...] = (
    "optimizer.lr",
    "regularizer.l1",
    "regularizer.l2",
    "regularizer.dropout",
    "validation.fold",
    "seed",
)


def group_key(cfg: DictConfig) -> str | None:
    """``None`` if ``cfg`` can't join a population; else a hash of its resolved config without the :data:`VECTORIZABLE` keys.

    A config joins when it passes :func:`sweep.config.validate`, has ``task.name=classify``
    and is one :func:`sweep.tasks.compiled.supports`. Equal keys: trainable together.
    """
    try:
        validate(cfg)
        if cfg.task.name != "classify" or not compiled.supports(cfg):
            return None
    except (SweepConfigError, AttributeError, KeyError):
        return None
    return fingerprint({k: v for k, v in flatten(cfg).items() if k not in VECTORIZABLE})


def fit_population(cfgs: Sequence[DictConfig], max_population: int = 64) -> list[list[tuple[int | None, Fitted]]]:
    """For each config, what :func:`sweep.run._fit_folds` returns for it: ``[(fold index, Fitted), ...]``.

    All ``cfgs`` must share one :func:`group_key`; at most ``max_population`` members
    (config x fold) train at a time.
    """
    from sweep.run import _fit_folds, check

    keys = {group_key(cfg) for cfg in cfgs}
    if len(keys) > 1 or None in keys:
        raise ValueError(f"fit_population: the configs must share one group key, not {sorted(map(str, keys))}")
    return [_fit_folds(cfg, *check(cfg)) for cfg in cfgs]
