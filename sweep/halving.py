"""Successive halving over epochs, decided on fold means: what to train at each rung, and who goes on.

scikit-learn's ``HalvingGridSearchCV`` with the epoch count as the resource and
``min_resources="exhaust"``: with ``n`` configs and ``factor``, there are
``1 + floor(log_factor(n))`` rungs (fewer when the budgets run out), rung ``i`` trains for
``min_resources * factor**i`` epochs (the last one: ``max_resources``) and keeps the best
``ceil(n_i / factor)`` configs by the mean of the rung's metric over each config's folds. A
config with a failed, diverged or missing fold has no mean and goes no further. Survivors go
on from where their previous rung ended (``trainer.warm_start``), so a survivor's last record
is that of one run of all its epochs.

:func:`schedule` and :func:`survivors` are the decisions (the Oracle; random candidates are :func:`sweep.search_space.sample`'s); the halving sweeper
(``hydra_plugins/sweep_halving``) launches the rungs (the Tuner), and :func:`write_rungs`
keeps what was decided in ``halving.json``, which the tables read (:func:`rungs_of`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sweep.config import SweepConfigError
from sweep.records import write_text
from sweep.search_space import FOLD

#: The file in a sweep dir that holds a halving search's rungs.
RUNGS_FILE = "halving.json"
#: Keys a rung sets in a config's jobs, or that tell its folds apart: a config is its jobs' other overrides.
RUNG_KEYS = (FOLD, "trainer.epochs", "trainer.warm_start")


@dataclass
class Rung:
    """One rung: its budget (``n_resources``, epochs in all), each config's fold-mean score (``None``: none) and who went on."""

    iter: int
    n_resources: int
    configs: list[list[str]]  # each config's overrides, folds left out
    scores: list[float | None]
    kept: list[bool] = field(default_factory=list)  # empty at the last rung: nobody goes on
    bracket: int = 0  # Hyperband's (successive halving has one)


@dataclass
class Search:
    """A halving search as ``halving.json`` keeps it: the metric it decides on, its factor and its rungs so far."""

    metric: str
    factor: float
    rungs: list[Rung]


def schedule(n_candidates: int, factor: float, max_resources: int, min_resources: int | None = None) -> list[int]:
    """Each rung's epochs in all: ``min_resources`` (default: as scikit-learn's ``"exhaust"``) times ``factor**i``, the last ``max_resources``."""
    if factor <= 1:
        raise SweepConfigError(f"hydra.sweeper.factor={factor}: must be greater than 1")
    if max_resources < 1 or (min_resources is not None and not 1 <= min_resources <= max_resources):
        raise SweepConfigError(f"hydra.sweeper.min_resources={min_resources}: must be between 1 and trainer.epochs={max_resources}")
    required = 1 + int(math.floor(math.log(n_candidates, factor) + 1e-9)) if n_candidates > 1 else 1
    if min_resources is None:
        min_resources = max(1, int(max_resources // factor ** (required - 1)))
    possible = 1 + int(math.floor(math.log(max_resources // min_resources, factor) + 1e-9))
    n_rungs = min(required, possible)
    budgets = [min(int(min_resources * factor**i), max_resources) for i in range(n_rungs)]
    budgets[-1] = max_resources  # the last rung trains to the full budget
    return budgets


def halving_plan(n_candidates: int, factor: float, max_resources: int, min_resources: int | None = None) -> list[tuple[int, int]]:
    """Successive halving's rungs as ``(configs, epochs)``: :func:`schedule`'s epochs, ``ceil(n / factor)`` configs kept each time."""
    plan, n = [], n_candidates
    for epochs in schedule(n_candidates, factor, max_resources, min_resources):
        plan.append((n, epochs))
        n = math.ceil(n / factor)
    return plan


def hyperband(factor: float, max_resources: int) -> list[list[tuple[int, int]]]:
    """Hyperband's brackets (Li et al. 2018), most exploratory first, each a halving plan of ``(configs, epochs)`` rungs ending at ``max_resources``.

    With ``s_max = floor(log_factor(max_resources))``, bracket ``s`` starts ``ceil((s_max + 1) / (s + 1) * factor**s)``
    configs at ``max_resources / factor**s`` epochs; rung ``i`` keeps ``floor(n / factor**i)`` of them at ``factor**i`` times the epochs.
    """
    if factor <= 1:
        raise SweepConfigError(f"hydra.sweeper.factor={factor}: must be greater than 1")
    s_max = int(math.floor(math.log(max_resources, factor) + 1e-9))
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * factor**s - 1e-9)
        brackets.append([(max(1, int(n / factor**i + 1e-9)), max(1, round(max_resources / factor ** (s - i)))) for i in range(s + 1)])
    return brackets


def survivors(scores: list[float | None], keep: int, higher: bool) -> list[bool]:
    """Which configs go on: the best ``keep`` of those with a score (ties: the earlier config)."""
    ranked = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i] if higher else scores[i])
    chosen = set(ranked[:keep])
    return [i in chosen for i in range(len(scores))]


def fold_mean(values: list[float]) -> float | None:
    """A config's score at a rung: the mean of its folds' metrics, ``None`` if any is missing or not finite."""
    if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return None
    return float(sum(values) / len(values))


def config_of(overrides: list[str]) -> list[str]:
    """The config a job of the search belongs to: its overrides but :data:`RUNG_KEYS`."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in RUNG_KEYS]


def standing(rungs: list[Rung], metric: str, overrides: list[str], epochs: int) -> dict[str, object]:
    """A run's place in the search: ``iter`` and ``n_resources``, and ``halving_stopped`` when its config went no further; ``{}`` if not a run of it."""
    config = config_of(list(overrides))
    for rung in rungs:
        if rung.n_resources != epochs or config not in rung.configs:
            continue
        out: dict[str, object] = {"iter": rung.iter, "n_resources": rung.n_resources}
        if any(r.bracket for r in rungs):
            out["bracket"] = rung.bracket
        i = rung.configs.index(config)
        if rung.kept and not rung.kept[i]:
            score, n_kept = rung.scores[i], sum(rung.kept)
            why = f"{metric} {score:.4g} not among the best {n_kept} of {len(rung.configs)}" if score is not None else f"no fold-mean {metric} (a fold failed, diverged or is missing)"
            out["halving_stopped"] = f"rung {rung.iter}: {why}"
        return out
    return {}


def write_rungs(sweep_dir: Path, search: Search) -> None:
    """Keep ``search`` in ``sweep_dir/halving.json`` (after every rung)."""
    write_text(Path(sweep_dir) / RUNGS_FILE, json.dumps(asdict(search), indent=1) + "\n")


def rungs_of(sweep_dir: Path) -> Search | None:
    """The halving search kept in ``sweep_dir``; ``None`` if it holds none (or an unreadable one)."""
    try:
        about = json.loads((Path(sweep_dir) / RUNGS_FILE).read_text())
        return Search(about["metric"], about["factor"], [Rung(**rung) for rung in about["rungs"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None
