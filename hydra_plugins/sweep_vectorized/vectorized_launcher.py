"""``hydra/launcher=vectorized``, sweep's default: Hydra's basic launcher, except that sweep's jobs that can train together do.

The jobs of a launch are composed as the basic launcher composes them (with sweep's default
``hydra/sweeper=grid``, each is a copy of a template: :mod:`sweep.compose_once`). Those that are
sweep runs and differ only in :data:`sweep.engines.VECTORIZABLE` keys (equal
:func:`sweep.engines.group_key`) are trained together (:func:`sweep.run.train`), their folds
as populations of at most ``max_population`` members. Then every job runs in order as Hydra's
``run_job`` runs it (:func:`sweep.hydra_job.run_composed`, without its copies), exactly as under
``hydra/launcher=basic``: its job dir, ``.hydra/`` files, log, callbacks and ``JobReturn`` are
Hydra's, and sweep's task function is called with the job's :class:`sweep.run.Trained` (its
``trained`` argument) and records it as its own.
A member's numbers are the same bits as its job's under ``hydra/launcher=basic``.

The populations train in a child process forked as the launch starts
(:mod:`sweep.trainer_process`; ``hydra.launcher.trainer_process=false`` trains them here),
so that importing TensorFlow there overlaps composing the jobs and loading their data here;
each job is recorded as soon as its member's results arrive.

A job that cannot join a population (another app's, ``group_key`` ``None``, a group of
one, a completed record already in the sweep, a duplicate config) trains on its own as
usual; so does every member of a population that raised, or whose trainer process died
(logged as a warning).

This module is imported whenever Hydra starts (it scans ``hydra_plugins``): sweep's
training code is imported only when a population trains. No ``from __future__ import
annotations``: Hydra's scan runs the module outside ``sys.modules``, where dataclasses
cannot resolve string annotations.
"""

import functools
import inspect
import logging
import os
import weakref
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:  # imported when a launch starts, not at Hydra's plugin scan (sweep's configs are its own app's)
    from sweep.hydra_job import ComposedJob, YamlTexts

log = logging.getLogger(__name__)

#: Top-level keys every sweep config has: jobs of other apps always run one by one.
SWEEP_KEYS = ("dataset", "model", "optimizer", "regularizer", "validation", "trainer", "task")


@dataclass
class VectorizedLauncherConf:
    """``hydra/launcher=vectorized``: at most ``max_population`` jobs are sent to train together, and at most as many members (config x fold) train in one graph (bounds its memory).

    ``trainer_process``: train populations in a child forked before TensorFlow is imported
    (:mod:`sweep.trainer_process`), so the import overlaps composing the jobs; ``false``
    trains in the launcher's own process. Either way, the records are the same.
    """

    _target_: str = "hydra_plugins.sweep_vectorized.vectorized_launcher.VectorizedLauncher"
    max_population: int = 64
    trainer_process: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="vectorized", node=VectorizedLauncherConf, provider="sweep")


@dataclass(frozen=True)
class Candidate:
    """A sweep job that may train with others: its task config (no ``hydra`` node) and its run's identity."""

    index: int  # position in the launch
    cfg: DictConfig
    fingerprint: str
    reusable: bool  # a completed record of this config is already in the sweep


class VectorizedLauncher(Launcher):
    """Runs jobs one by one in this process like Hydra's basic launcher, training sweep's groupable jobs as populations first."""

    def __init__(self, max_population: int = 64, trainer_process: bool = True) -> None:
        super().__init__()
        if max_population < 1:
            raise ValueError(f"hydra.launcher.max_population={max_population}: must be a positive integer")
        self.max_population = max_population
        self.trainer_process = trainer_process
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self.trains_together = False
        self.trainer: Any = None  # the TrainerProcess, kept from launch to launch (a sweeper's rungs or batches)
        self._ending: weakref.finalize | None = None  # closes it, at the latest when this launcher is collected

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        # sweep runs whose task function takes the launcher's training (``trained``) train together
        takes = "trained" in inspect.signature(task_function).parameters
        self.trains_together = takes and all(key in config for key in SWEEP_KEYS)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the jobs in order, each member with its population's results, composing and planning them a batch ahead (:class:`Composer`).

        Each job's line is printed as it returns (:mod:`sweep.progress`); the returns hold no
        configs (:class:`sweep.hydra_job.FiledReturn`).
        """
        from sweep.hydra_job import YamlTexts, filed
        from sweep.progress import current

        setup_globals()
        progress = current()  # its clock starts before the first job, if no callback started it
        texts = YamlTexts()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, populations of up to {self.max_population}")
        # started first, so that the child's import of TensorFlow overlaps composing the jobs
        trainer = self._trainer(sweep_dir) if len(job_overrides) > 1 and self.trains_together else None
        try:
            composer = Composer(self, job_overrides, initial_job_idx, Results(self.config.hydra.launcher, self.max_population, trainer))
            results, runs = composer.results, []
            for position in range(len(job_overrides)):
                job = composer.job(position)
                coming = results.coming(position)
                if self.trainer is not None and composer.done and not self.trainer.busy and not coming and position not in results.reused:
                    self.close()  # its memory back before a job that trains here
                trained = results.take(position) if coming else None
                if trained is not None:
                    configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
                ret = self._run(job, texts, trained)
                progress.report(ret)
                runs.append(filed(ret, job))  # holds no config: a launch's memory does not grow with its jobs
                results.release(position)
        except BaseException:
            self.close()
            raise
        return runs

    def _trainer(self, sweep_dir: Path) -> Any:
        """The trainer process of this launch: the last launch's while it lives, else a new one (``None``: train here)."""
        if self.trainer is not None and not self.trainer.alive:
            self.close()
        if self.trainer is None and self.trainer_process:
            from sweep.trainer_process import TrainerProcess

            self.trainer = TrainerProcess.start(sweep_dir / f".trainer-{os.getpid()}")
            if self.trainer is not None:
                self._ending = weakref.finalize(self, self.trainer.close)
        return self.trainer

    def close(self) -> None:
        """End the trainer process, if one is running: sweepers call it once their last launch has returned."""
        if self._ending is not None:
            self._ending()
        self.trainer = self._ending = None

    def _run(self, job: "ComposedJob", texts: "YamlTexts", trained: Any = None) -> JobReturn:
        """Run one composed job as Hydra's ``run_job`` does, as the basic launcher does.

        ``trained``, the job's :class:`sweep.run.Trained` when it trained with others, is handed to the task function.
        """
        from sweep.hydra_job import run_composed

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        log.info(f"\t#{job.idx} : {' '.join(filter_overrides(job.overrides))}")
        task = self.task_function if trained is None else functools.partial(self.task_function, trained=trained)
        ret = run_composed(job, task, self.hydra_context, texts)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret


#: Batches composed (and sent to train) beyond the running job's: the first ones while the trainer imports TensorFlow.
AHEAD = 4


class Composer:
    """A launch's jobs composed a batch at a time (:func:`batches`) as the run reaches them.

    Before a job runs, its batch and the :data:`AHEAD` next are composed and their populations
    planned and sent to train, so the trainer always has the next population while this one's
    jobs are recorded; a job that may train with the candidates batches leave alone waits for
    every batch (:meth:`Results.finish`). A composed job is let go once it is taken: the launch
    holds at most ``AHEAD + 1`` batches of configs, however many jobs it has.
    """

    def __init__(self, launcher: "VectorizedLauncher", job_overrides: Sequence[Sequence[str]], initial_job_idx: int, results: "Results") -> None:
        self.launcher = launcher
        self.job_overrides = job_overrides
        self.initial_job_idx = initial_job_idx
        self.results = results
        together = launcher.trains_together
        self.order = batches(job_overrides, launcher.max_population) if together else [range(len(job_overrides))]
        self.batch_of = {position: i for i, batch in enumerate(self.order) for position in batch}
        self.composed = 0  # batches composed so far, in order
        self.jobs: dict[int, "ComposedJob"] = {}

    @property
    def done(self) -> bool:
        """Whether every batch has been composed."""
        return self.composed == len(self.order)

    def job(self, position: int) -> "ComposedJob":
        """The composed job at ``position`` in the launch: its batch and the next ones composed first (every batch, if it waits for them)."""
        self._through(self.batch_of[position] + AHEAD)
        if self.results.waiting(position):
            self._through(len(self.order))
        return self.jobs.pop(position)

    def _through(self, last: int) -> None:
        """Compose the batches up to ``last`` (counted in :attr:`order`) not composed yet, and plan theirs."""
        from sweep.hydra_job import compose_job

        launcher = self.launcher
        assert launcher.hydra_context is not None and launcher.config is not None
        while not self.done and self.composed <= last:
            batch = {}
            for position in self.order[self.composed]:
                overrides = self.job_overrides[position]
                config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
                batch[position] = compose_job(self.initial_job_idx + position, overrides, config, "hydra.sweep.dir", "hydra.sweep.subdir")
            self.jobs |= batch
            self.composed += 1
            if launcher.trains_together:
                self.results.add(candidates(batch))
            if self.done:
                self.results.finish()


def batches(job_overrides: Sequence[Sequence[str]], max_population: int) -> list[Sequence[int]]:
    """The jobs' positions in batches to plan and send to train one after the other, so that the first trains while the rest are composed.

    Jobs are grouped by their overrides of keys that are neither :data:`sweep.engines.VECTORIZABLE`
    nor left out of fingerprints, in order of first appearance: those with equal such overrides
    differ only in keys a population may vary, so they can most likely train together (equal
    :func:`sweep.engines.group_key`). Each group is cut as a population would be
    (:func:`sweep.engines.chunked`). It is a guess only in what goes first: each batch's
    populations are planned from its composed configs, and those a batch leaves alone are
    planned together at the end (:meth:`Results.finish`).
    """
    from sweep.config import UNFINGERPRINTED
    from sweep.engines import VECTORIZABLE, chunked

    groups: dict[tuple[str, ...], list[int]] = {}
    for position, overrides in enumerate(job_overrides):
        fixed = tuple(line for line in overrides if line.split("=", 1)[0].lstrip("+~") not in (*VECTORIZABLE, *UNFINGERPRINTED))
        groups.setdefault(fixed, []).append(position)
    return [batch for group in groups.values() for batch in chunked(group, max_population)]


def candidates(jobs: Mapping[int, "ComposedJob"]) -> list[Candidate]:
    """The sweep runs among ``jobs`` (by position in the launch), with resolved task configs, fingerprints and whether they are reusable.

    A job that is not a sweep run, or whose fingerprint cannot be computed (it is then left to
    fail on its own, with its message), is left out.
    """
    if not any(all(key in job.task for key in SWEEP_KEYS) for job in jobs.values()):
        return []
    from sweep.config import fingerprint, flatten
    from sweep.config_copy import copied
    from sweep.hydra_job import pointing_at
    from sweep.resume import reusable
    from sweep.sweep_dir import Job

    found = []
    for index, composed in jobs.items():
        if not all(key in composed.task for key in SWEEP_KEYS):
            continue
        config = composed.config
        try:
            with pointing_at(config):  # for ${hydra:...} in the job's config
                cfg = copied(composed.task)
                OmegaConf.resolve(cfg)  # a population may train where this job's hydra node is not set
                sweep_dir = Path(str(config.hydra.sweep.dir))
            flat = flatten(cfg)
            fprint = fingerprint(flat)
            job = Job(Path(str(config.hydra.runtime.output_dir)), index, [], sweep_dir)
            found.append(Candidate(index, cfg, fprint, reusable(fprint, job, flat)))
        except Exception as error:  # noqa: BLE001  the job reports it when it runs
            log.debug("job #%d runs on its own: %s", index, error)
    return found


def plan(candidates: Sequence[Candidate], max_population: int, planned: Collection[str] = ()) -> dict[int, list[Candidate]]:
    """Each job's population (its position -> the members), for the candidates that train with others.

    Candidates with equal :func:`sweep.engines.group_key` form a group, in job order;
    reusable and duplicate configs (of each other, or of a fingerprint already ``planned``)
    are left out (the run reuses the first's record); a group is split into the fewest
    near-equal chunks of at most ``max_population``. Chunks of one member are left out.
    """
    if not candidates:
        return {}
    from sweep.config import SweepConfigError, validate
    from sweep.engines import chunked, group_key

    groups: dict[str, list[Candidate]] = {}
    seen = set(planned)
    for candidate in candidates:
        if candidate.reusable or candidate.fingerprint in seen:
            continue
        seen.add(candidate.fingerprint)
        try:
            validate(candidate.cfg)
            key = group_key(candidate.cfg)
        except (SweepConfigError, AttributeError, KeyError):  # the job reports it when it runs
            key = None
        if key is not None:
            groups.setdefault(key, []).append(candidate)
    chunks: dict[int, list[Candidate]] = {}
    for group in groups.values():
        for chunk in chunked(group, max_population):
            if len(chunk) > 1:
                chunks |= {member.index: chunk for member in chunk}
    return chunks


class Results:
    """Each population member's training (a :class:`sweep.run.Trained`), for its job: :meth:`take`.

    The launch's candidates are added a batch at a time (:meth:`add`): their populations are
    planned, and each population's data and folds checked. With a trainer process, each
    population is then sent to it (the first while the child may still import TensorFlow)
    and each member waits for its own results. Without a trainer process, a population
    trains here before its first member's job. A member whose population failed gets
    nothing, and trains on its own.
    """

    def __init__(self, launcher: DictConfig, max_population: int, trainer: Any) -> None:
        self.launcher = launcher
        self.max_population = max_population
        self.trainer = trainer
        self.chunks: dict[int, list[Candidate]] = {}  # position -> its population
        self.reused: set[int] = set()  # positions of jobs whose completed record is in the sweep
        self.planned: dict[str, int] = {}  # fingerprint -> the position of its population's member
        self.alone: dict[int, Candidate] = {}  # position -> a candidate of the batches so far in no population
        self.twins: dict[int, int] = {}  # position -> a later member of the same config, whose training it takes
        self.taken: set[int] = set()  # members whose training was taken, by their job or an earlier twin
        self.checked: dict[int, list] = {}  # id(chunk) -> each member's dataset and folds
        self.ready: dict[int, Any] = {}  # position -> its Trained, once its population trained here
        self.trained_here: set[int] = set()  # id(chunk)
        self.sent: dict[int, int | None] = {}  # id(chunk) -> its population in the trainer process (None: it had died)

    def add(self, found: Sequence[Candidate]) -> None:
        """Plan ``found``'s populations (:func:`plan`) and :meth:`send` them; those left alone wait for :meth:`finish`."""
        chunks = plan(found, self.max_population, self.planned)
        self.reused |= {candidate.index for candidate in found if candidate.reusable}
        self.alone |= {candidate.index: candidate for candidate in found if candidate.index not in chunks and not candidate.reusable}
        self.send(chunks)

    def finish(self) -> None:
        """Plan together the candidates that their batches left alone (a batch was a wrong guess), and :meth:`send` them.

        A candidate still alone whose config a later job's population member has (batches go
        by group, not in launch order) takes that member's training: the first job of a
        config trains it, and the later one reuses its record, as with no batches.
        """
        self.send(plan(list(self.alone.values()), self.max_population, self.planned))
        for candidate in self.alone.values():
            member = self.planned.get(candidate.fingerprint)
            if candidate.index not in self.chunks and member is not None and candidate.index < member:
                self.twins[candidate.index] = member
        self.alone = {}

    def waiting(self, position: int) -> bool:
        """Whether the job at ``position`` is a candidate its batch left alone: :meth:`finish` decides whether it trains with others."""
        return position in self.alone

    def coming(self, position: int) -> bool:
        """Whether the job at ``position`` may get its training from a population (:meth:`take`)."""
        return position in self.chunks or position in self.twins

    def release(self, position: int) -> None:
        """Let go of what the job at ``position`` needed, now that it has run: its candidate, and its population's data and
        folds once every member has run."""
        chunk = self.chunks.pop(position, None)
        if chunk is not None and not any(member.index in self.chunks for member in chunk):
            self.checked.pop(id(chunk), None)
            self.sent.pop(id(chunk), None)
            self.trained_here.discard(id(chunk))

    def send(self, chunks: dict[int, list[Candidate]]) -> None:
        """Check each population's data and folds and, with a trainer process, send it to train."""
        from sweep.run import check

        self.chunks |= chunks
        self.planned |= {candidate.fingerprint: candidate.index for chunk in chunks.values() for candidate in chunk}
        for chunk in {id(chunk): chunk for chunk in chunks.values()}.values():
            try:
                self.checked[id(chunk)] = [check(candidate.cfg) for candidate in chunk]
            except Exception:  # noqa: BLE001  each job reports its own error when it runs
                continue
            if self.trainer is not None:
                self.sent[id(chunk)] = self.trainer.submit([c.cfg for c in chunk], self.launcher, self.max_population, self.checked[id(chunk)])

    def take(self, position: int) -> Any:
        """The training of the job at ``position`` in the launch (its own, or its later twin's), waiting for it; ``None``: it trains on its own."""
        from sweep.run import Trained

        position = self.twins.pop(position, position)
        if position in self.taken:
            return None
        self.taken.add(position)
        chunk = self.chunks[position]
        member = next(i for i, candidate in enumerate(chunk) if candidate.index == position)
        checked = self.checked.get(id(chunk))
        if checked is None:
            return None
        if id(chunk) in self.sent:
            population = self.sent[id(chunk)]
            fits = None if population is None else self.trainer.fits(population, member)
            return None if fits is None else Trained(checked[member][0], fits)
        if id(chunk) not in self.trained_here:
            self.trained_here.add(id(chunk))
            self.ready |= {c.index: t for c, t in zip(chunk, train(chunk, checked, self.launcher, self.max_population))}
        return self.ready.pop(position, None)


def train(chunk: Sequence[Candidate], checked: list, launcher: DictConfig, max_population: int) -> list[Any]:
    """Each candidate's :class:`sweep.run.Trained` from training ``chunk`` in this process; ``[]`` if it raised."""
    from sweep.trainer_process import train_population

    try:
        results, elapsed = train_population([c.cfg for c in chunk], launcher, max_population, checked)
    except Exception:  # noqa: BLE001  a failed population must not sink the sweep
        log.warning("population of %d jobs failed; they run one by one", len(chunk), exc_info=True)
        return []
    log.info("trained a population of %d jobs in %.1fs", len(chunk), elapsed)
    return results
