"""How members are trained. :func:`fit_members` is the one seam between what to train and how.

A member is one (config, fold) (:class:`Member`). Members whose configs differ only in
:data:`VECTORIZABLE` keys, on one dataset and class count, train together as one
population in the batched graph (:mod:`sweep.engines.graph`); a single fit is a population
of one, with the same bits as a member of any population. Classifiers the graph does not
cover (CNNs, user models, verbose runs) train with ``model.fit``
(:mod:`sweep.engines.keras_fit`), and clustering with scikit-learn
(:mod:`sweep.engines.sklearn_fit`); each :class:`Fitted` names its engine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from omegaconf import DictConfig

from sweep.config import fingerprint, flatten
from sweep.engines import graph
from sweep.engines.fitted import LOSS_BOUND, LOSS_GROWTH, Fitted, exploded
from sweep.engines.member import Member

__all__ = ["LOSS_BOUND", "LOSS_GROWTH", "VECTORIZABLE", "Fitted", "Member", "exploded", "fit_members", "group_key"]

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
    """``None`` if ``cfg`` trains alone (not a classifier the graph trains); else a hash of its config without the :data:`VECTORIZABLE` keys.

    Configs with equal keys can train together; ``cfg`` must have passed
    :func:`sweep.config.validate`.
    """
    if cfg.task.name != "classify" or graph.unsupported(cfg) is not None:
        return None
    return fingerprint({k: v for k, v in flatten(cfg).items() if k not in VECTORIZABLE})


def fit_members(members: Sequence[Member], max_population: int = 64) -> list[Fitted]:
    """Train every member; one :class:`Fitted` each, in order.

    Members the graph trains form populations of at most ``max_population`` (bounds the
    graph's memory), split into the fewest near-equal chunks; a member's numbers are the
    same whatever its population.
    """
    if max_population < 1:
        raise ValueError(f"max_population={max_population} must be >= 1")
    keys: dict[int, str | None] = {}  # by config, so a config's folds cost one fingerprint
    populations: dict[tuple, list[int]] = {}
    fits: dict[int, Fitted] = {}
    for i, member in enumerate(members):
        if id(member.cfg) not in keys:
            keys[id(member.cfg)] = group_key(member.cfg)
        key = keys[id(member.cfg)]
        if key is None:
            fits[i] = _fit_alone(member)
        else:  # a fold missing a class has a narrower softmax: it trains apart
            populations.setdefault((key, id(member.x), member.n_classes), []).append(i)
    for group in populations.values():
        n_chunks = -(-len(group) // max_population)
        for part in range(n_chunks):
            chunk = group[part * len(group) // n_chunks : (part + 1) * len(group) // n_chunks]
            fits |= zip(chunk, graph.fit_population([members[i] for i in chunk]))
    return [fits[i] for i in range(len(members))]


def _fit_alone(member: Member) -> Fitted:
    """Train one member with ``model.fit`` or scikit-learn; its ``fit_time_s`` is the fit alone."""
    start = time.perf_counter()
    if member.cfg.task.name == "cluster":
        from sweep.engines.sklearn_fit import cluster

        fitted = cluster(member)
    else:
        from sweep.engines.keras_fit import fit_keras

        fitted = fit_keras(member)
        fitted.graph_unsupported = graph.unsupported(member.cfg)
    fitted.metrics["fit_time_s"] = time.perf_counter() - start
    fitted.n_train_rows, fitted.n_val_rows = len(member.train), len(member.val)
    return fitted
