"""A sweep dir has one writer at a time, and records of configs no longer swept are kept, not lost.

* :func:`claim` is taken by the process that runs a multirun (its end-of-sweep callback's
  ``on_multirun_start``) before any job starts, and released when the sweep ends or the
  process exits. It is a :class:`filelock.SoftFileLease`: a marker file created atomically
  (no ``fcntl``, so it works on the NFS and Lustre dirs SLURM and Ray users share between
  machines), renewed by a heartbeat; a holder that was killed is detected at once on its own
  machine (its pid is gone) and after the lease expires from any other. A second sweep into
  a claimed dir is refused with one line naming the dir and the holder.
* :func:`records_lock` serialises the few milliseconds in which a job decides whether to reuse
  a record and moves records between job dirs, across every process of the sweep (joblib,
  Ray and SLURM workers included). It is a lease too: a holder that died is detected on its
  machine at once and from any other after :data:`RECORDS_LEASE_S`.
* :data:`KEPT` is where a job dir's record goes when the dir is taken by a job of another
  config (the grid changed): ``<sweep dir>/kept/<fingerprint>/``, still read by
  :func:`sweep.results.load` and reused, moved back, when its config is swept again.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from sweep.config import SweepConfigError
from sweep.records import RECORD, write_text

LOCK = ".sweep.lock"
HOLDER = ".sweep-holder.json"
RECORDS_LOCK = ".records.lock"
KEPT = "kept"
#: Seconds a contender on another machine waits past a holder's last heartbeat before taking over.
LEASE_S = 30.0
#: Seconds a job waits for another job's reuse decision (each takes milliseconds).
RECORDS_WAIT_S = 120.0
#: Seconds without a heartbeat after which the records lock of a holder on another machine lapses.
RECORDS_LEASE_S = 10.0


@dataclass(frozen=True)
class Job:
    """Where a run writes and how the launcher knows it."""

    dir: Path
    num: int | None = None
    overrides: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None  # a multirun's root: its completed records may be reused


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep into its dir: the token its records carry, and whether the dir held no record before it."""

    token: str
    fresh: bool  # nothing of an earlier run to reuse, move or keep: its jobs need not take the records lock


@dataclass
class Claim:
    """This process's hold on a sweep dir: the lease, and the run it marks."""

    dir: Path
    run: SweepRun
    lease: Any


#: The claim this process holds, if any: released at exit, named by the interruption message.
_held: Claim | None = None


def claim(sweep_dir: Path) -> Claim:
    """Create ``sweep_dir`` if needed and hold it for this process.

    Raises :class:`SweepConfigError` when another live sweep holds it (naming the holder), or
    naming ``hydra.sweep.dir`` when the dir cannot be made or written. A holder on another
    machine is only known to be gone once its lease has gone unrenewed for :data:`LEASE_S`:
    the claim waits that long for it, saying so.
    """
    from filelock import SoftFileLease, Timeout

    global _held
    sweep_dir = Path(sweep_dir)
    if _held is not None and _held.dir == sweep_dir:
        return _held
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        lease = SoftFileLease(str(sweep_dir / LOCK), timeout=0, lease_duration=LEASE_S)
        _take(lease, sweep_dir)
    except Timeout:
        raise SweepConfigError(f"{sweep_dir} is in use by another sweep ({holder(sweep_dir)}); "
                               "wait for it to end, or choose another hydra.sweep.dir") from None
    except OSError as error:
        raise SweepConfigError(f"hydra.sweep.dir={sweep_dir}: cannot write there ({error.strerror or error})") from None
    run = SweepRun(uuid.uuid4().hex[:12], fresh=next(sweep_dir.rglob(RECORD), None) is None)
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    info = {"run": run.token, "fresh": run.fresh, "pid": os.getpid(), "host": socket.gethostname(), "since": since,
            "command": " ".join(sys.argv)}  # fmt: skip
    write_text(sweep_dir / HOLDER, json.dumps(info) + "\n")
    _held = Claim(sweep_dir, run, lease)
    return _held


def _take(lease: Any, sweep_dir: Path) -> None:
    """Acquire ``lease`` at once; when its holder may be on another machine, once its lease has lapsed."""
    from filelock import Timeout

    try:
        lease.acquire()
    except Timeout:
        if _holder_alive_here(sweep_dir):
            raise
        print(f"sweep: {sweep_dir} is held from another machine ({holder(sweep_dir)}); "
              f"waiting up to {1.5 * LEASE_S:.0f} s for that lease to lapse", flush=True)
        lease.acquire(timeout=1.5 * LEASE_S)


def _holder_info(sweep_dir: Path) -> dict[str, Any]:
    """What the process that last claimed ``sweep_dir`` wrote of itself (:data:`HOLDER`); ``{}`` when nothing readable."""
    try:
        info = json.loads((Path(sweep_dir) / HOLDER).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder_alive_here(sweep_dir: Path) -> bool:
    """Whether the process that last claimed ``sweep_dir`` runs on this machine and is alive."""
    info = _holder_info(sweep_dir)
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return False
    try:
        os.kill(info["pid"], 0)
    except PermissionError:  # alive, another user's
        return True
    except OSError:  # gone
        return False
    return True


def release() -> None:
    """Give up this process's claim, if it holds one."""
    global _held
    if _held is not None:
        _held.lease.release(force=True)
        _held = None


def held() -> Claim | None:
    """The claim this process holds."""
    return _held


def holder(sweep_dir: Path) -> str:
    """Who holds (or last held) ``sweep_dir``: ``pid 123 on host since ...: command``."""
    info = _holder_info(sweep_dir)
    if not {"pid", "host", "since", "command"} <= info.keys():
        return "a process that has not said who it is yet"
    return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"


def current_run(sweep_dir: Path) -> SweepRun | None:
    """The run that holds ``sweep_dir`` now (its records carry its token), or ``None``."""
    if _held is not None and _held.dir.resolve() == Path(sweep_dir).resolve():
        return _held.run
    info = _holder_info(sweep_dir)
    return SweepRun(str(info["run"]), bool(info.get("fresh", False))) if "run" in info else None


def records_lock(sweep_dir: Path | None, run: SweepRun | None = None) -> ContextManager[Any]:
    """Held while a job of ``sweep_dir`` looks for a reusable record and moves records.

    Nothing for a single run, nor in a sweep run into a dir that held no record when it began
    (``run.fresh``): there, no record of an earlier run can be moved, so no job races another.
    """
    if sweep_dir is None or (run is not None and run.fresh):
        return nullcontext()
    return _records_lock(Path(sweep_dir))


#: This process's records lock of each sweep dir: one object per dir, not one per job.
_records_locks: dict[Path, Any] = {}


@contextmanager
def _records_lock(sweep_dir: Path) -> Iterator[None]:
    from filelock import SoftFileLease, Timeout

    lock = _records_locks.get(sweep_dir)
    if lock is None:
        path = str(sweep_dir / RECORDS_LOCK)
        lock = _records_locks[sweep_dir] = SoftFileLease(path, timeout=RECORDS_WAIT_S, lease_duration=RECORDS_LEASE_S)
    try:
        lock.acquire()
    except Timeout:
        raise SweepConfigError(f"{sweep_dir / RECORDS_LOCK}: held for {RECORDS_WAIT_S:.0f} s by {lock_holder_text(sweep_dir)}; "
                               "if that process is gone, delete the file") from None
    try:
        yield
    finally:
        lock.release()


def lock_holder_text(sweep_dir: Path) -> str:
    """``pid 123 on host``, from the ``key=value`` lines of the records lock's marker file."""
    try:
        lines = (Path(sweep_dir) / RECORDS_LOCK).read_text().splitlines()
    except OSError:
        return "another process"
    fields = dict(line.split("=", 1) for line in lines if "=" in line)
    return f"pid {fields.get('pid', '?')} on {fields.get('host', '?')}"


def kept_dirs(sweep_dir: Path, fprint: str) -> list[Path]:
    """The dirs under :data:`KEPT` that hold a record of the config with fingerprint ``fprint``."""
    return sorted(Path(sweep_dir, KEPT).glob(f"{fprint}*"))


def new_kept_dir(sweep_dir: Path, fprint: str) -> Path:
    """A fresh dir for a record of ``fprint`` set aside: ``kept/<fprint>``, or ``kept/<fprint>-2``, ... when taken."""
    base = Path(sweep_dir, KEPT, fprint)
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{fprint}-{n}")
    return candidate
