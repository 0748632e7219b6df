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

Forking is safe only before TensorFlow starts its thread pools, so :meth:`TrainerProcess.start`
returns ``None`` (train in this process) when TensorFlow is already imported here, or
off Linux (macOS and Windows have no safe ``fork``). The launcher keeps the child from one
launch to the next (a sweeper's rungs or batches pay one import) and ends it when the sweeper
is done; if it dies, the jobs it had not returned train on their own in this process.
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
from collections.abc import Mapping, Sequence
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

    :meth:`submit` sends a population; :meth:`fits` returns one config's results, receiving
    (and keeping) whatever arrives before them; :meth:`close` ends the child.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection, stage_dir: Path) -> None:
        self.process = process
        self.conn = conn
        self.stage_dir = stage_dir
        self._next_id = 0
        self._open: dict[int, int] = {}  # population -> how many configs' results are still to arrive
        self._fits: dict[tuple[int, int], Fits] = {}

    @classmethod
    def start(cls, stage_dir: Path) -> TrainerProcess | None:
        """Fork the child, or ``None`` where forking is unsafe: train in this process. Its artifacts go to ``stage_dir``."""
        if not sys.platform.startswith("linux") or "tensorflow" in sys.modules:
            return None
        context = multiprocessing.get_context("fork")
        conn, child_conn = context.Pipe()
        process = context.Process(target=_serve, args=(child_conn, conn), name="sweep-trainer", daemon=True)
        process.start()
        child_conn.close()
        return cls(process, conn, stage_dir)

    def submit(
        self,
        cfgs: Sequence[DictConfig],
        launcher: Mapping[str, Any] | None,
        max_population: int,
        checked: Sequence[tuple[Dataset, list[Fold]]],
    ) -> int | None:
        """Send one population to train; returns its id for :meth:`fits` (``None``: the child has ended, train it here)."""
        population = self._next_id
        self._next_id += 1
        request = (list(cfgs), launcher, max_population, checked, str(self.stage_dir / str(population)))
        if not self._send(("train", population, request)):
            return None
        self._open[population] = len(cfgs)
        return population

    def fits(self, population: int, config: int) -> Fits | None:
        """Config ``config``'s results in population ``population``, waiting for them; ``None`` if the population failed."""
        while (population, config) not in self._fits and population in self._open:
            self._receive()
        return self._fits.pop((population, config), None)

    @property
    def alive(self) -> bool:
        """Whether the child can still take a population."""
        return not self.conn.closed and self.process.is_alive()

    @property
    def busy(self) -> bool:
        """Whether results are still to come or to be taken."""
        return bool(self._open or self._fits)

    def close(self) -> None:
        """End the child (at once if it is still working) and remove the artifacts no job took."""
        import shutil

        self.conn.close()  # an idle child reads end-of-file and returns
        self.process.join(timeout=0 if self._open else 1)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self._open.clear()
        self._fits.clear()
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
        else:
            log.warning("population of %d jobs failed; they run one by one\n%s", *payload)
            self._open.pop(key, None)

    def _ended(self) -> None:
        """The child is gone: what it did not return will not come."""
        if self._open or not self.conn.closed:
            self.process.join()
            log.warning("the trainer process ended (exit code %s); its jobs run one by one", self.process.exitcode)
        self._open.clear()


def _serve(conn: Connection, parent_conn: Connection) -> None:
    """The child: import TensorFlow, then train each population received, in order, until the pipe closes."""
    parent_conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends the child
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's KeyboardInterrupt (sweep.app)
    requests: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_read, args=(conn, requests), daemon=True).start()
    from sweep.backend import keras

    keras()
    while (request := requests.get()) is not None:
        _, population, (cfgs, launcher, max_population, checked, stage) = request
        try:
            results, elapsed = train_population(cfgs, launcher, max_population, checked)
            conn.send(("trained", population, (len(cfgs), elapsed)))
            for config, trained in enumerate(results):  # the parent has the data: only the fits go back
                _stage(trained.fits, Path(stage) / str(config))
                conn.send(("fits", population, (config, trained.fits)))
        except Exception:  # noqa: BLE001  reported to the parent, whose jobs without results then train on their own
            conn.send(("failed", population, (len(cfgs), traceback.format_exc())))


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
