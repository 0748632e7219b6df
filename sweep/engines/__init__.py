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
from dataclasses import replace
from typing import TypeVar

from omegaconf import DictConfig

from sweep.config import fingerprint, flatten
from sweep.engines import graph
from sweep.engines.fitted import LOSS_BOUND, LOSS_GROWTH, Fitted, exploded
from sweep.engines.member import Checkpoint, Member, TrainedState

__all__ = [
    "LOSS_BOUND", "LOSS_GROWTH", "VECTORIZABLE", "Checkpoint", "Fitted", "Member", "TrainedState", "chunked", "exploded", "fit_members",
    "group_key", "resumable",
]  # fmt: skip

T = TypeVar("T")

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
    """``None`` if ``cfg`` trains alone (not a network the graph trains); else a hash of its config without the :data:`VECTORIZABLE` keys.

    Configs with equal keys can train together; ``cfg`` must have passed
    :func:`sweep.config.validate`.
    """
    if cfg.task.name not in ("classify", "regress") or graph.unsupported(cfg) is not None:
        return None
    return fingerprint({k: v for k, v in flatten(cfg).items() if k not in VECTORIZABLE})


def resumable(cfg: DictConfig) -> bool:
    """Whether a member of ``cfg`` goes on from its :attr:`Member.start`: the graph trains it, without early stopping (whose bookkeeping a start does not hold)."""
    return group_key(cfg) is not None and not _stops_early(cfg)


def _stops_early(cfg: DictConfig) -> bool:
    return cfg.trainer.get("early_stopping_patience") is not None


def fit_members(members: Sequence[Member], max_population: int = 64) -> list[Fitted | None]:
    """Train every member; one :class:`Fitted` each, in order.

    Members the graph trains form populations of at most ``max_population`` (bounds the
    graph's memory), split into the fewest near-equal chunks; a member's numbers are the
    same whatever its population. A member trained alone after one of its config's diverged
    is not trained (``None``): a config's folds after its first diverged one count for nothing.
    A member's :attr:`Member.start` is taken where it is :func:`resumable`; elsewhere it trains from scratch.
    """
    if max_population < 1:
        raise ValueError(f"max_population={max_population} must be >= 1")
    members = list(members)
    keys: dict[int, str | None] = {}  # by config, so a config's folds cost one fingerprint
    populations: dict[tuple, list[int]] = {}
    fits: dict[int, Fitted | None] = {}
    diverged: set[int] = set()  # configs, by id, one of whose members trained alone diverged
    for i, member in enumerate(members):
        if id(member.cfg) not in keys:
            keys[id(member.cfg)] = group_key(member.cfg)
        key = keys[id(member.cfg)]
        if member.start is not None and (key is None or _stops_early(member.cfg)):  # not resumable(), its key known
            members[i] = member = replace(member, start=None)
        if key is None:
            fits[i] = None if id(member.cfg) in diverged else _fit_alone(member)
            if fits[i] is not None and fits[i].diverged:
                diverged.add(id(member.cfg))
        else:  # a fold missing a class has a narrower softmax: it trains apart; starts at one epoch train together
            start = len(member.start.history) if member.start is not None else 0
            populations.setdefault((key, id(member.x), member.output.units, start), []).append(i)
    for group in populations.values():
        for chunk in chunked(group, max_population):
            fits |= zip(chunk, graph.fit_population([members[i] for i in chunk]))
    return [fits[i] for i in range(len(members))]


def chunked(items: Sequence[T], max_size: int) -> list[Sequence[T]]:
    """``items`` in order, cut into the fewest near-equal chunks of at most ``max_size`` (5 by 4: 2 and 3, not 4 and 1)."""
    n_chunks = -(-len(items) // max_size)
    return [items[part * len(items) // n_chunks : (part + 1) * len(items) // n_chunks] for part in range(n_chunks)]


def _fit_alone(member: Member) -> Fitted:
    """Train one member with ``model.fit`` or scikit-learn; its ``fit_time_s`` is the fit alone.

    ``model.fit`` stops at its deadline (:attr:`Member.deadline`); a scikit-learn fit that ends past it fails then.
    """
    if member.cfg.task.name == "cluster":
        from sweep.engines.sklearn_fit import cluster

        start = time.perf_counter()
        fitted = cluster(member)
        fitted.metrics["fit_time_s"] = time.perf_counter() - start
        if member.deadline is not None and time.monotonic() > member.deadline:  # a scikit-learn fit cannot be stopped midway
            raise TimeoutError(f"trainer.timeout_s={member.cfg.trainer.timeout_s:g}: the fit ended past it")
    else:
        from sweep.engines.keras_fit import fit_keras

        fitted = fit_keras(member)
        fitted.graph_unsupported = graph.unsupported(member.cfg)
    fitted.n_train_rows, fitted.n_val_rows = len(member.train), len(member.val)
    return fitted
