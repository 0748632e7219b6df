"""A sweep as an Optuna study in a journal file, for optuna-dashboard (``optuna-dashboard OUT``): one trial per config.

Any sweep (a grid, a random search, halving's last rung) becomes a study: each config of the
summary is a trial with its varying keys as params, its fold-mean metric as value (failed when
it has no score) and its fold-mean per-epoch curve as intermediate values, so the dashboard's
history, slice, parallel-coordinate and importance plots work on it. A study run by
``hparams_search=optuna`` needs none of this: its sweep dir's ``optuna.journal`` is the study.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.viewers import plain
from sweep.results import greater_is_better, history_of, is_config_key, runs_of, scored


def write_journal(runs: pd.DataFrame, summary: pd.DataFrame, path: Path, study_name: str = "sweep") -> Any:
    """Write the study ``study_name`` (replacing one of that name) into the journal file ``path``; return it."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = summary.columns[0].removeprefix("rank_")
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    if study_name in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=study_name, storage=storage)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize" if greater_is_better(metric) else "minimize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the dashboard shows the metric's name
        study.set_metric_names([metric])
    keys = [k for k in summary.columns if is_config_key(k)]
    distributions = {key: _distribution(summary[key]) for key in keys}
    ok = scored(summary, metric)
    for index, config in summary.iterrows():
        params = {key: plain(config[key]) for key in keys}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=float(config[f"mean_{metric}"]) if ok[index] else None,
                state=optuna.trial.TrialState.COMPLETE if ok[index] else optuna.trial.TrialState.FAIL,
                intermediate_values=_curve(runs_of(runs, config), metric),
                user_attrs={"rank": int(config.iloc[0]), "n_runs": int(config["n_runs"]), "n_failed": int(config["n_failed"])},
            )
        )
    return study


def _distribution(values: pd.Series) -> Any:
    """A key's distribution: the values it takes, as choices (a sweep lists or draws them; the dashboard plots choices of numbers in order)."""
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution(sorted({plain(v) for v in values}, key=lambda v: (type(v).__name__, v)))


def _curve(runs: pd.DataFrame, metric: str) -> dict[int, float]:
    """The config's ``metric`` per epoch, averaged over its runs' ``history.csv`` files (and folds); empty without one."""
    histories = [h for h in map(history_of, map(Path, runs["output_dir"])) if h is not None and metric in h and "epoch" in h]
    if not histories:
        return {}
    curve = pd.concat(histories).groupby("epoch")[metric].mean()
    return {int(epoch): float(value) for epoch, value in curve.items() if np.isfinite(value)}
