"""Optuna through Hydra (``hparams_search=optuna``): sweep's rules for the Optuna sweeper.

``conf/hparams_search/optuna.yaml`` selects ``hydra_plugins.sweep_optuna.OptunaSweeper``:
hydra-optuna-sweeper's sweeper (Hydra only loads sweepers from the ``hydra_plugins``
package, hence its home) with the two rules defined here:

* A run that fails or diverges is recorded like any other and its job returns NaN. Optuna 2
  (the version the plugin is written for) refuses a NaN value, and the plugin then crashes
  while marking the trial failed. :class:`NanAsFailure` hands a NaN result to Optuna as a
  *failed* trial instead, left out of the sampler's model, as Optuna 3 and later do by
  themselves. The study goes on while the share of failed trials in a batch stays within
  ``max_failure_rate``.
* A study in which no trial completed (all failed, or ``n_trials=0``) has no best trial,
  and the plugin raises asking for one. It ends with one line instead
  (:func:`no_trial_completed`), after which the end-of-sweep tables show the failed trials
  and the command exits 1 (0 when no trial ran).
* A fold is not a hyperparameter: :func:`refuse_data_sweeps` refuses a sweep over
  ``validation.fold``, since Optuna would pick the easiest fold. With ``validation=kfold``
  and ``validation.fold=null`` every trial trains each fold and its objective is their mean.

:func:`l2_or_none` adds the one part of the search space a single Optuna distribution cannot
express: an L2 penalty that is either off (exactly 0) or log-uniform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig

from sweep.config import SweepConfigError

#: Keys that must never be searched over: they pick data, not a model.
NOT_HYPERPARAMETERS = ("validation.fold",)

#: The log-uniform range of ``regularizer.l2`` when :func:`l2_or_none` keeps the penalty.
L2_RANGE = (1e-5, 1e-1)


class TrialFailed(RuntimeError):
    """A trial whose run failed or diverged (its record in the job dir says why)."""


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


class NanAsFailure:
    """A launcher whose jobs that return NaN come back as failed jobs (the rest is the wrapped launcher).

    ``completed`` and ``failed`` count the trials it has launched, by outcome.
    """

    def __init__(self, launcher: Any) -> None:
        self._launcher = launcher
        self.completed = 0
        self.failed = 0

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        returns = self._launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for ret in returns:
            value = ret._return_value
            if ret.status == JobStatus.COMPLETED and isinstance(value, float) and math.isnan(value):
                ret.status = JobStatus.FAILED
                ret._return_value = TrialFailed(f"no {_metric(ret)}: see {_job_dir(ret)}/result.json")
            if ret.status == JobStatus.COMPLETED:
                self.completed += 1
            else:
                self.failed += 1
        return returns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._launcher, name)


def no_trial_completed(n_trials: int, failed: int) -> str:
    """The line that ends a study without a completed trial (instead of Optuna's ``ValueError`` on its best trial)."""
    if n_trials == 0:
        return "sweep: no Optuna trial ran (hydra.sweeper.n_trials=0)"
    return f"sweep: no Optuna trial completed ({failed} failed); see the tables"


def _metric(ret: JobReturn) -> str:
    try:
        return str(ret.cfg.task.metric)  # type: ignore[union-attr]
    except Exception:
        return "metric"


def _job_dir(ret: JobReturn) -> str:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)  # type: ignore[union-attr]
    except Exception:
        return str(ret.working_dir)


def l2_or_none(cfg: DictConfig, trial: Any) -> None:
    """Search the L2 penalty as "off, or log-uniform in :data:`L2_RANGE`" (``custom_search_space``).

    Optuna first picks the ``regularizer`` group, ``none`` or ``l2``, so each record's
    ``regularizer.name`` says which; for ``l2`` it then draws ``regularizer.l2`` on a log
    scale. ``regularizer.dropout`` and other params apply with either choice.
    """
    if trial.suggest_categorical("regularizer", ["none", "l2"]) == "l2":
        trial.suggest_float("regularizer.l2", *L2_RANGE, log=True)
