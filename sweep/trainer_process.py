"""Populations trained in a child process forked before TensorFlow is imported, so the import overlaps the launcher's work.

Importing TensorFlow and Keras costs about 2 s of one core and holds the GIL, so in a
thread it overlaps nothing. ``hydra/launcher=vectorized`` therefore forks a
:class:`TrainerProcess` as it starts: while the child imports TensorFlow, the launcher
composes the jobs, plans the populations and loads their data and folds (importing
scikit-learn). The child then trains each population it is sent
(:func:`train_population`, through :func:`sweep.run.train`), writes every member's
artifacts (``model.keras``) to a staging dir inside the sweep dir, and sends back each
config's per-fold results as soon as its artifacts are written; their artifact writers move the staged files into the
job dir (a rename). The launcher records each job as its results arrive, while the
child writes the next member's model.

Recording a job (Hydra's ``run_job``: its ``.hydra/`` files, log and record) costs about
25 ms, mostly copying and writing Hydra's config, so the launcher may also give some jobs
to the child (:meth:`TrainerProcess.submit`): once it has trained and staged the others,
the child records them with the same job function (its copy of the launcher, from the
fork), writing their models itself, while the launcher records the rest, and it sends
back each job's return.

Forking is safe only before TensorFlow starts its thread pools, so :meth:`TrainerProcess.start`
returns ``None`` (train in this process) when TensorFlow is already imported here, or
off Linux (macOS and Windows have no safe ``fork``). The child ends with its last
population; if it dies, the jobs it had not returned train on their own in this process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweep.data import Dataset
from sweep.engines import Fitted
from sweep.splits import Fold

log = logging.getLogger(__name__)

#: One config's per-fold results (:attr:`sweep.run.Trained.fits`): ``[(fold index, Fitted), ...]``.
Fits = list[tuple[int | None, Fitted]]


def train_population(
    cfgs: Sequence[DictConfig], launcher: Mapping[str, Any] | None, max_population: int, checked: Sequence[tuple[Dataset, list[Fold]]]
) -> tuple[list[Any], float]:
    """Each config's :class:`sweep.run.Trained` from training them together (:func:`sweep.run.train`), and the wall time.

    Threads are set as a job of ``cfgs[0]`` would set them under ``launcher``. ``checked``
    is each config's :func:`sweep.run.check` (its dataset and folds).
    """
    from sweep.run import train
    from sweep.scaling import apply_threads

    apply_threads(cfgs[0], launcher)
    start = time.perf_counter()
    results = train(list(cfgs), list(checked), max_population)
    return results, time.perf_counter() - start


class TrainerProcess:
    """A forked child that imports TensorFlow at once, then trains the populations it is sent, in order.

    :meth:`submit` sends a population, some of whose jobs the child may run itself once the
    population has trained; :meth:`fits` returns one config's results and :meth:`ran` one
    such job's return, each receiving (and keeping) whatever arrives before it; :meth:`close`
    ends the child.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection, stage_dir: Path) -> None:
        self.process = process
        self.conn = conn
        self.stage_dir = stage_dir
        self._next_id = 0
        self._open: dict[int, int] = {}  # population -> how many configs' results are still to arrive
        self._fits: dict[tuple[int, int], Fits] = {}
        self._delegated: dict[Any, int] = {}  # job key -> its population, until the job's return arrives
        self._ran: dict[Any, Any] = {}

    @classmethod
    def start(cls, stage_dir: Path, job: Callable[..., Any] | None = None) -> TrainerProcess | None:
        """Fork the child, or ``None`` where forking is unsafe: train in this process.

        Its artifacts go to ``stage_dir``; ``job`` is what it calls for the jobs :meth:`submit`
        gives it (its own copy, from the fork: nothing of it is pickled).
        """
        if not sys.platform.startswith("linux") or "tensorflow" in sys.modules:
            return None
        context = multiprocessing.get_context("fork")
        conn, child_conn = context.Pipe()
        process = context.Process(target=_serve, args=(child_conn, conn, job), name="sweep-trainer", daemon=True)
        process.start()
        child_conn.close()
        return cls(process, conn, stage_dir)

    def submit(
        self,
        cfgs: Sequence[DictConfig],
        launcher: Mapping[str, Any] | None,
        max_population: int,
        checked: Sequence[tuple[Dataset, list[Fold]]],
        jobs: Mapping[int, tuple[Any, Any]] | None = None,
    ) -> int | None:
        """Send one population to train; returns its id for :meth:`fits` (``None``: the child has ended, train it here).

        ``jobs`` maps a config's index to ``(key, argument)``: once trained, the child calls
        ``job(argument, trained)`` with that config's :class:`sweep.run.Trained`; :meth:`ran`
        ``(key)`` returns what it returned. The other configs' results come back through :meth:`fits`.
        """
        jobs = dict(jobs or {})
        population = self._next_id
        self._next_id += 1
        request = (list(cfgs), launcher, max_population, checked, jobs, str(self.stage_dir / str(population)))
        if not self._send(("train", population, request)):
            return None
        if len(cfgs) > len(jobs):
            self._open[population] = len(cfgs) - len(jobs)
        self._delegated |= {key: population for key, _ in jobs.values()}
        return population

    def fits(self, population: int, config: int) -> Fits | None:
        """Config ``config``'s results in population ``population``, waiting for them; ``None`` if the population failed."""
        while (population, config) not in self._fits and population in self._open:
            self._receive()
        return self._fits.pop((population, config), None)

    def ran(self, key: Any) -> Any | None:
        """What the child's job ``key`` returned, waiting for it; ``None`` if it did not run there (run it here)."""
        while key not in self._ran and key in self._delegated:
            self._receive()
        return self._ran.pop(key, None)

    @property
    def busy(self) -> bool:
        """Whether results are still to come or to be taken."""
        return bool(self._open or self._fits or self._delegated or self._ran)

    def close(self) -> None:
        """End the child (at once if it is still working) and remove the artifacts no job took."""
        import shutil

        self.conn.close()  # an idle child reads end-of-file and returns
        self.process.join(timeout=0 if self._open or self._delegated else 1)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self._open.clear()
        self._fits.clear()
        self._delegated.clear()
        self._ran.clear()
        shutil.rmtree(self.stage_dir, ignore_errors=True)

    def _send(self, message: tuple) -> bool:
        try:
            self.conn.send(message)
        except OSError:  # a broken pipe: the child has died
            self._ended()
            return False
        return True

    def _receive(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self._ended()
            return
        kind, key, payload = message
        if kind == "trained":
            log.info("trained a population of %d jobs in %.1fs, in the trainer process", *payload)
        elif kind == "fits":
            config, fits = payload
            self._fits[(key, config)] = fits
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]
        elif kind == "ran":
            self._ran[key] = payload
            del self._delegated[key]
        elif kind == "job failed":
            log.warning("the trainer process could not record the launch's job %s; it runs here\n%s", key, payload)
            del self._delegated[key]
        else:
            log.warning("population of %d jobs failed; they run one by one\n%s", *payload)
            self._open.pop(key, None)
            self._delegated = {job: population for job, population in self._delegated.items() if population != key}

    def _ended(self) -> None:
        """The child is gone: what it did not return will not come."""
        if self._open or self._delegated or not self.conn.closed:
            self.process.join()
            log.warning("the trainer process ended (exit code %s); its jobs run one by one", self.process.exitcode)
        self._open.clear()
        self._delegated.clear()


def _serve(conn: Connection, parent_conn: Connection, job: Callable[..., Any] | None) -> None:
    """The child: import TensorFlow, then train each population received (and run its jobs), in order, until the pipe closes."""
    parent_conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends the child
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's KeyboardInterrupt (sweep.app)
    requests: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_read, args=(conn, requests), daemon=True).start()
    from sweep.backend import keras

    keras()
    while (request := requests.get()) is not None:
        _, population, (cfgs, launcher, max_population, checked, jobs, stage) = request
        try:
            results, elapsed = train_population(cfgs, launcher, max_population, checked)
            conn.send(("trained", population, (len(cfgs), elapsed)))
            for config, trained in enumerate(results):  # the parent's first: it is waiting for them
                if config not in jobs:  # the parent has the data: only the fits go back
                    _stage(trained.fits, Path(stage) / str(config))
                    conn.send(("fits", population, (config, trained.fits)))
        except Exception:  # noqa: BLE001  reported to the parent, whose jobs without results then train on their own
            conn.send(("failed", population, (len(cfgs), traceback.format_exc())))
            continue
        for config, (key, argument) in jobs.items():
            _run(conn, job, key, argument, results[config])


def _run(conn: Connection, job: Callable[..., Any] | None, key: Any, argument: Any, trained: Any) -> None:
    """Run ``job(argument, trained)`` (a :class:`sweep.run.Trained`); send its return, or why it failed."""
    if job is None:
        conn.send(("job failed", key, "the trainer process was started without a job function"))
        return
    try:
        conn.send(("ran", key, job(argument, trained)))
    except Exception:  # noqa: BLE001  the parent runs the job instead
        conn.send(("job failed", key, traceback.format_exc()))


def _read(conn: Connection, requests: queue.SimpleQueue) -> None:
    """Queue every request as it arrives (``None`` at the end), so the parent's sends never wait for training."""
    while True:
        try:
            requests.put(conn.recv())
        except (EOFError, OSError):
            requests.put(None)
            return


def _stage(fits: Fits, where: Path) -> None:
    """Write each fit's artifacts under ``where`` now; its writers then move the written file into place."""
    where.mkdir(parents=True, exist_ok=True)
    for index, fit in fits:
        for name, write in list(fit.artifacts.items()):
            staged = where / f"{index}-{name}"
            write(str(staged))
            fit.artifacts[name] = partial(os.replace, str(staged))
