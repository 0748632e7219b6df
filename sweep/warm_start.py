"""``trainer.warm_start``: go on from an earlier, shorter run of the same config instead of training from the start.

The key names a job dir (``model.keras`` and ``history.csv`` beside its ``result.json``)
holding a completed run of this config with fewer ``trainer.epochs`` and every other key
equal. Each fold then starts from that run's saved state and history
(:class:`sweep.engines.Checkpoint`), and the batched graph trains only the remaining epochs:
the epoch's batch order and dropout draws are keyed on the epoch's number, so the record is
the same, to the bit, as a run of all the epochs at once (successive halving's survivors
continue this way). A dir that holds no such run (missing, another config, a failed or
diverged run, no model saved), and configs the graph does not train or that stop early,
train from scratch; the numbers are the same either way, only the time differs.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweep.config import UNFINGERPRINTED, flatten
from sweep.engines import Checkpoint, Member, resumable
from sweep.records import HISTORY, RECORD, read_record
from sweep.resume import recorded_as

log = logging.getLogger(__name__)

#: Keys in which a run may differ from the one it continues.
CONTINUED = frozenset({"trainer.epochs", "trainer.warm_start", "trainer.save_model"})


def started(cfg: DictConfig, members: list[Member]) -> list[Member]:
    """``cfg``'s members (one per fold), each with its start from ``cfg.trainer.warm_start`` (unchanged: from scratch, logged when the dir was named)."""
    where = cfg.trainer.get("warm_start")
    if where is None or not resumable(cfg):
        return members
    why = _why_not(cfg, Path(str(where)))
    if why is None:
        try:
            return _read(cfg, Path(str(where)), members)
        except (OSError, ValueError, KeyError) as error:
            why = f"its saved state is unreadable ({error})"
    log.info("trainer.warm_start=%s: %s; training from the first epoch", where, why)
    return members


def _why_not(cfg: DictConfig, where: Path) -> str | None:
    """Why ``where`` holds no earlier run of ``cfg`` to go on from, or ``None``."""
    try:
        record = read_record(where / RECORD)
    except (OSError, ValueError) as error:
        return f"no readable {RECORD} ({error})"
    if record.get("status") != "completed":
        return f"its run {record.get('status')}"
    flat = flatten(cfg)
    skipped = UNFINGERPRINTED | CONTINUED
    changed = next((key for key, value in flat.items() if key not in skipped and not recorded_as(record.get(key), value)), None)
    if changed is not None:
        return f"its {changed}={record.get(changed)!r} is not this config's {flat[changed]!r}"
    if not record.get("trainer.epochs", 0) < cfg.trainer.epochs:
        return f"its trainer.epochs={record.get('trainer.epochs')} is not fewer than {cfg.trainer.epochs}"
    if record.get("epochs_run") != record.get("trainer.epochs"):
        return f"it stopped after {record.get('epochs_run')} of its {record.get('trainer.epochs')} epochs"
    return None


def _read(cfg: DictConfig, where: Path, members: list[Member]) -> list[Member]:
    """Each member with its fold's saved state and history in ``where`` (``model.keras``, or ``model_fold<i>.keras`` for several folds)."""
    from sweep.engines.saved import load_state

    several = len(members) > 1
    with open(where / HISTORY, newline="") as file:
        rows = list(csv.DictReader(file))
    out = []
    for member in members:
        model = where / (f"model_fold{member.fold}.keras" if several else "model.keras")
        if not model.is_file():
            raise OSError(f"no {model.name}")
        history = [_epoch(row) for row in rows if not several or int(row["fold"]) == member.fold]
        state = load_state(cfg, str(model), member.x.shape[1:], member.output)
        out.append(replace(member, start=Checkpoint(state, history)))
    return out


def _epoch(row: dict[str, str]) -> dict[str, Any]:
    """One ``history.csv`` row as the engines' history has it: ``epoch`` an int, the metrics floats (their repr, read back exactly)."""
    return {"epoch": int(row["epoch"]), **{k: float(v) for k, v in row.items() if k not in ("epoch", "fold")}}
