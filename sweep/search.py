"""Optuna studies for ``hparams_search=optuna``: what to ask, how to tell, where the study lives.

The sweeper (``hydra_plugins/sweep_optuna``) asks Optuna for a batch of trials, launches them
as ordinary jobs (the default launcher trains a batch as one population) and tells each
trial its job's record; everything it asks and tells goes through here:

* :func:`search_space`: Hydra's sweep syntax (``tag(log, interval(a, b))``, ``interval``,
  ``choice``, ``range``, lists) as Optuna distributions; the plain overrides stay fixed.
  :func:`l2_or_none` adds the conditional L2 penalty (off, or log-uniform).
* :func:`open_study`: the study lives in the sweep dir's Optuna journal by default, so a
  rerun of the same command continues it; a trial cut off by a killed sweep is asked again
  with the same params (:func:`retry_interrupted`) and its job, if it was recorded, is reused,
  not retrained.
* :func:`tell`: a trial's values are its record's objectives (``task.metric`` by default;
  several for a multi-objective study); a failed or diverged run is a failed trial.
* A fold is not a hyperparameter (:func:`refuse_data_sweeps`): with ``validation=kfold
  validation.fold=null`` every trial trains each fold and is scored on their mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from sweep.config import SweepConfigError

if TYPE_CHECKING:
    import optuna

#: Keys that must never be searched over: they pick data, not a model.
NOT_HYPERPARAMETERS = ("validation.fold",)
#: The log-uniform range of ``regularizer.l2`` when :func:`l2_or_none` keeps the penalty.
L2_RANGE = (1e-5, 1e-1)
#: The study's journal in the sweep dir, when ``storage`` names none.
JOURNAL = "optuna.journal"
#: Best trials (or the Pareto front) of the study, at the sweep root.
RESULTS_YAML = "optimization_results.yaml"
#: The trial attribute naming the trial a retry replaces (cut off by a killed sweep).
RETRY_OF = "retry_of"


def refuse_data_sweeps(overrides: Sequence[str]) -> None:
    """Raise :class:`SweepConfigError` if an override sweeps one of :data:`NOT_HYPERPARAMETERS`."""
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element().lstrip("+~")
        if key in NOT_HYPERPARAMETERS and override.is_sweep_override():
            raise SweepConfigError(
                f"{override.input_line}: a fold is not a hyperparameter. "
                "With hparams_search=optuna each trial is scored by the mean over all folds "
                "(validation=kfold validation.fold=null); for a faster search use validation=holdout."
            )


def search_space(lines: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The overrides ``lines`` as (Optuna distributions of the swept keys, the fixed overrides as given)."""
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(lines)):
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            fixed.append(override.input_line or f"{override.get_key_element()}={override.get_value_element_as_str()}")
    return space, fixed


def distribution(override: Any) -> Any:
    """One sweep override as an Optuna distribution: intervals as floats or ints (log-scaled when tagged ``log``), integer ranges as stepped ints, the rest as choices."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if isinstance(value, RangeSweep) and not value.shuffle and ints and len(values) > 1:
        return IntDistribution(values[0], values[-1], step=values[1] - values[0]) if values[1] > values[0] else CategoricalDistribution(values)
    return CategoricalDistribution(values)


def grid(space: dict[str, Any]) -> dict[str, list[Any]]:
    """``space`` as Optuna's ``GridSampler`` takes it, every value of each key; an interval, which has no list of values, is refused."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values: dict[str, list[Any]] = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise SweepConfigError(f"{key}: GridSampler lists values and cannot sweep an interval; give a list, choice(...) or range(...)")
    return values


def l2_or_none(cfg: DictConfig, trial: Any) -> None:
    """Search the L2 penalty as "off, or log-uniform in :data:`L2_RANGE`" (``custom_search_space``).

    Optuna first picks the ``regularizer`` group, ``none`` or ``l2``, so each record's
    ``regularizer.name`` says which; for ``l2`` it then draws ``regularizer.l2`` on a log
    scale. ``regularizer.dropout`` and other params apply with either choice.
    """
    if trial.suggest_categorical("regularizer", ["none", "l2"]) == "l2":
        trial.suggest_float("regularizer.l2", *L2_RANGE, log=True)


def open_study(storage: str | None, name: str, directions: list[str], sweep_dir: Path) -> optuna.Study:
    """The study ``name`` in ``storage`` (a database URL, a journal file, or by default the sweep dir's :data:`JOURNAL`), created or continued; the caller sets its sampler."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # sweep says what each batch did; no "new study created" lines
    if storage is None or "://" not in storage:
        path = Path(storage) if storage is not None else sweep_dir / JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(path)))
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    except (ValueError, ImportError) as error:
        raise SweepConfigError(f"hydra.sweeper.storage: cannot open study {name!r}: {error}") from None
    if [d.name.lower() for d in study.directions] != directions:
        kept = [d.name.lower() for d in study.directions]
        raise SweepConfigError(f"hydra.sweeper.direction={directions}: study {name!r} in this storage optimizes {kept}; use another study_name")
    return study


def retry_interrupted(study: optuna.Study) -> list[int]:
    """Fail the trials a killed sweep left running and ask for each again with the same params; return their numbers.

    The retry's job has the same config, so a job that was recorded before the kill is reused by its fingerprint.
    """
    from optuna.trial import TrialState

    cut_off = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in cut_off:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
    return [t.number for t in cut_off]


def finished(study: optuna.Study) -> int:
    """The trials the study has done: completed or failed, not counting those cut off and asked again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}
    return sum(1 for t in trials if t.state.is_finished() and t.number not in retried)


def tell(study: optuna.Study, trial: Any, job_dir: Path, objectives: list[str]) -> str | None:
    """Tell ``trial`` its job's record: the values of ``objectives``, or failed; return why it failed (``None``: it completed)."""
    from optuna.trial import TrialState

    from sweep.records import RECORD, read_record

    trial.set_user_attr("job_dir", str(job_dir))
    try:
        record = read_record(job_dir / RECORD)
    except (OSError, ValueError) as error:
        record, why = {}, f"no record ({error})"
    else:
        values = [record.get(name) for name in objectives]
        missing = [n for n, v in zip(objectives, values) if not isinstance(v, (int, float)) or not math.isfinite(v)]
        done = record.get("status") == "completed" and not missing
        why = None if done else record.get("error") or f"{record.get('status')}: no {', '.join(missing)}"
    if why is not None:
        _told(study, trial, state=TrialState.FAIL)
        return why
    _told(study, trial, values=[float(v) for v in values])
    return None


def _told(study: optuna.Study, trial: Any, **outcome: Any) -> None:
    """``study.tell``, where ``GridSampler``'s "every point visited" (``study.stop()``, allowed only inside ``optimize``) is not an error: the trial is stored."""
    try:
        study.tell(trial, **outcome)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def write_results(study: optuna.Study, objectives: list[str], sweep_dir: Path) -> Path | None:
    """Write :data:`RESULTS_YAML`: the best trial (one objective) or the Pareto front (several); ``None`` when no trial completed."""
    from optuna.trial import TrialState

    from sweep.records import write_text

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    results: dict[str, Any] = {"name": "optuna", "objectives": objectives, "directions": [d.name.lower() for d in study.directions]}
    if len(objectives) == 1:
        best = study.best_trial
        results |= {"best_trial": best.number, "best_params": best.params, "best_value": best.value}
    else:
        results["solutions"] = [{"trial": t.number, "params": t.params, "values": t.values} for t in study.best_trials]
    write_text(sweep_dir / RESULTS_YAML, OmegaConf.to_yaml(OmegaConf.create(results)))
    return sweep_dir / RESULTS_YAML


def pareto_trials(sweep_dir: Path) -> frozenset[int] | None:
    """The trial (job) numbers of a multi-objective study's Pareto front in ``sweep_dir``; ``None`` when it holds no such study."""
    import yaml

    try:
        results = yaml.safe_load((Path(sweep_dir) / RESULTS_YAML).read_text())
        return frozenset(int(solution["trial"]) for solution in results["solutions"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None


def no_trial_completed(n_trials: int, failed: int) -> str:
    """The line that ends a study without a completed trial."""
    if n_trials == 0:
        return "sweep: no Optuna trial ran (hydra.sweeper.n_trials=0)"
    return f"sweep: no Optuna trial completed ({failed} failed); see the tables"
