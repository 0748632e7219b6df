"""One ``result.json`` per run: written atomically, read back tolerantly.

A record is a flat JSON object: ``status``, the resolved config under dotted keys,
metrics under their plain names, timing, seed, versions and the config's fingerprint.
It is written last, after the run's other files, so its presence means the run is whole.
Nothing here knows about Keras or Hydra.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD = "result.json"
HISTORY = "history.csv"
#: Left in a job dir whose record was moved to another dir: where it went.
MOVED = "moved.txt"

#: A run's outcome: ``completed``, ``failed`` (it raised) or ``diverged`` (its loss became NaN/inf).
STATUSES = ("completed", "failed", "diverged")


def timestamp(when: datetime) -> str:
    """``when`` as a record says when its run started (``started_at``): ISO 8601, to the millisecond."""
    return when.isoformat(timespec="milliseconds")


def before(started_at: Any, when: float) -> bool:
    """Whether a record's ``started_at`` (see :func:`timestamp`) is earlier than ``when`` (seconds since the epoch) as it can tell:
    to the millisecond, so a run that started at ``when`` is never earlier. Unreadable: no."""
    try:
        started = datetime.fromisoformat(str(started_at)).timestamp()
    except ValueError:
        return False
    return started < math.floor(when * 1000) / 1000


def atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Call ``write`` on a temporary sibling of ``path`` (same suffix), then rename it into place.

    A reader, or a run killed at any instant, sees the old file or the new one, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_record(job_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``job_dir/result.json``, atomically."""
    path = Path(job_dir) / RECORD
    write_text(path, json.dumps(record, indent=1, sort_keys=False, default=str) + "\n")
    return path


def read_record(path: Path) -> dict[str, Any]:
    """The record in ``path`` (a ``result.json`` or the dir holding one); raises ``OSError``/``ValueError`` if unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or "status" not in record:
        raise ValueError(f"{path}: not a sweep record")
    return record


def find_records(root: Path) -> Iterable[Path]:
    """Every ``result.json`` below ``root`` (or ``root`` itself if it is one), in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(root.rglob(RECORD), key=lambda p: (len(p.parts), str(p)))


def artifact_sizes(job_dir: Path, names: Iterable[str]) -> dict[str, int]:
    """``{name: size in bytes}`` of the artifacts ``names`` written in ``job_dir``: a record lists them so reuse can check them."""
    return {name: (Path(job_dir) / name).stat().st_size for name in names}


def artifact_problem(job_dir: Path, record: dict[str, Any]) -> str | None:
    """Why the artifacts ``record`` lists are not whole in ``job_dir`` (missing, or not the size recorded), or ``None``."""
    listed = record.get("artifacts") or []
    sizes = listed if isinstance(listed, dict) else dict.fromkeys(listed)
    for name, size in sizes.items():
        path = Path(job_dir) / name
        if not path.is_file():
            return f"its {name} is missing"
        if size is not None and path.stat().st_size != size:
            return f"its {name} has {path.stat().st_size} bytes, {size} when recorded"
    return None


def move_record(source: Path, dest: Path) -> None:
    """Move the record in ``source`` and the artifacts it lists into ``dest``, the record last (renames, same file system).

    A new ``dest`` is filled under a temporary name and renamed into place whole. ``source``
    keeps a :data:`MOVED` note saying where the record went, so a job dir left without a
    record is not taken for a crashed run.
    """
    source, dest = Path(source), Path(dest)
    record = read_record(source)
    into = dest if dest.is_dir() else dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
    into.mkdir(parents=True, exist_ok=True)
    for name in [*(record.get("artifacts") or []), RECORD]:
        if (source / name).is_file():
            os.replace(source / name, into / name)
    if into != dest:
        os.rename(into, dest)
    write_text(source / MOVED, f"{dest}\n")


def history_csv(history: list[dict[str, float]]) -> str:
    """Per-epoch rows as CSV text, columns in first-seen order."""
    columns: list[str] = []
    for row in history:
        columns += [c for c in row if c not in columns]
    lines = [",".join(columns)] + [",".join(repr(row.get(c, "")) for c in columns) for row in history]
    return "\n".join(lines) + "\n"


@cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    found = []
    for name in ("sweep", "tensorflow", "keras", "scikit-learn", "numpy"):
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, "missing"))
    return tuple(found)


def versions() -> dict[str, str]:
    """Installed versions of the libraries that decide a run's numbers (read once per process)."""
    return dict(_installed_versions())
