"""A sweep's records as pandas tables: one row per run (:func:`load`), one row per config (:func:`summarize`).

Tables are read from the ``result.json`` records on disk, so they work for any launcher,
while a sweep runs and after it crashed. The summary follows scikit-learn's
``GridSearchCV.cv_results_``: ``mean_<m>``, ``std_<m>`` (ddof=0), ``split<k>_<m>`` and
``rank_<metric>`` (1 = best), with the folds of a config aggregated.

    >>> runs = load("outputs/multirun/2026-11-26/14-00-00")
    >>> summary = summarize(runs, metric="val_accuracy")
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweep.records import HISTORY, MOVED, RECORD, atomic_write, find_records, read_record
from sweep.splits import MIN_VALIDATION_ROWS

RESULTS_CSV = "results.csv"
#: Hydra's record of a multirun's config, at the root of its sweep dir.
MULTIRUN_YAML = "multirun.yaml"
RESULTS_PARQUET = "results.parquet"
SUMMARY_CSV = "summary.csv"

#: The key that names a run's fold; it is aggregated over, never grouped by.
FOLD = "validation.fold"

#: Config keys without a dot (the others are ``group.key``).
TOP_LEVEL_KEYS = frozenset({"seed"})

#: Record fields that are neither config keys nor metrics.
BOOKKEEPING = frozenset(
    {
        "sweep_dir", "job_num", "status", "error", "fingerprint", "overrides", "output_dir", "started_at",
        "fit_time_s", "elapsed_s", "versions", "fold_metrics", "artifacts", "reused_from", "refit_of", "n_val_rows",
        "n_train_rows", "trained_by", "population_size", "graph_unsupported", "resumed_epochs", "trainer.warm_start",
        "iter", "n_resources", "bracket", "halving_stopped", "pareto_front", "sweep_run", "classes", "test_split_stratified",
    }
)  # fmt: skip

#: Whether a larger value is better, by metric name without its ``train_``/``val_``/``test_``/``best_`` prefixes.
GREATER_IS_BETTER = {
    "accuracy": True,
    "ari": True,
    "nmi": True,
    "silhouette": True,
    "r2": True,
    "loss": False,
    "mse": False,
    "mae": False,
    "inertia": False,
    "fit_time_s": False,
}


class SkippedRecordWarning(UserWarning):
    """A record that is missing or unreadable; :func:`load` skipped it."""


def greater_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better (``val_accuracy``: yes, ``val_loss``: no); ``ValueError`` if unknown."""
    name = re.sub(r"^(?:mean_|train_|val_|test_|best_)+", "", metric)
    if name not in GREATER_IS_BETTER:
        known = ", ".join(sorted(GREATER_IS_BETTER))
        raise ValueError(f"metric {metric!r}: no known direction to rank by (known, with prefixes val_/train_: {known})")
    return GREATER_IS_BETTER[name]


def is_config_key(column: str) -> bool:
    """Whether a per-run column holds a config value (``optimizer.lr``, ``seed``)."""
    return column not in BOOKKEEPING and ("." in column or column in TOP_LEVEL_KEYS)


# ------------------------------------------------------------------------- per run


def load(*paths: str | Path) -> pd.DataFrame:
    """One row per run found under ``paths`` (sweep dirs, run dirs or ``result.json`` files).

    Columns: ``sweep_dir``, ``job_num``, ``status``, ``error``, the dotted config keys,
    the metrics under their plain names, ``fit_time_s`` and the other record fields;
    ``output_dir`` is the dir the record was read from. Lists become tuples, so they can
    be grouped. Job dirs without a record and unreadable records are skipped with a
    :class:`SkippedRecordWarning` naming the path, and listed in ``df.attrs["skipped"]``.
    Refit records (``refit_of``) are not runs of the sweep and are left out. Paths that
    overlap (a sweep dir and one of its run dirs) give each run once.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()
    searches: dict[str, Any] = {}  # sweep dir -> (its halving search's rungs, its study's Pareto front), each or None
    for root in map(Path, paths):
        if not root.exists():
            skipped.append((str(root), "no such file or directory"))
            continue
        skipped += [(str(d), "no result.json (crashed, killed or still running)") for d in _dirs_without_record(root)]
        for path in find_records(root):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                record = read_record(path)
            except (OSError, ValueError) as error:
                skipped.append((str(path), f"unreadable record ({error})"))
                continue
            if "refit_of" not in record:
                rows.append(_row(record, path.parent.resolve(), searches))
    for path, reason in skipped:
        warnings.warn(f"skipped {path}: {reason}", SkippedRecordWarning, stacklevel=2)
    runs = _frame(rows)
    runs.attrs["skipped"] = skipped
    return runs


def _dirs_without_record(root: Path) -> list[Path]:
    """Hydra job dirs (they hold ``.hydra/``) under ``root`` that have no record, and whose record was not moved elsewhere."""
    if not root.is_dir():
        return []
    return sorted(d.parent for d in root.rglob(".hydra") if not any((d.parent / name).exists() for name in (RECORD, MOVED)))


def _row(record: dict[str, Any], job_dir: Path, searches: dict[str, Any]) -> dict[str, Any]:
    """A record's row; in a halving search's sweep dir, with its rung (:func:`sweep.halving.standing`); in a multi-objective study's, whether it is on the Pareto front."""
    from sweep.halving import rungs_of, standing
    from sweep.search import pareto_trials

    row = {key: value if key == "fold_metrics" else _cell(value) for key, value in record.items()}
    row["output_dir"] = str(job_dir)
    sweep_dir = next((d for d in (job_dir, *job_dir.parents) if (d / MULTIRUN_YAML).is_file()), job_dir)
    row["sweep_dir"] = str(sweep_dir)
    if str(sweep_dir) not in searches:
        searches[str(sweep_dir)] = (rungs_of(sweep_dir), pareto_trials(sweep_dir))
    rungs, pareto = searches[str(sweep_dir)]
    if rungs is not None:
        row |= standing(rungs.rungs, rungs.metric, record.get("overrides") or [], record.get("trainer.epochs"))
    if pareto is not None:
        row["pareto_front"] = record.get("job_num") in pareto and job_dir.parent == sweep_dir
    return row


def _cell(value: Any) -> Any:
    """A hashable, readable table cell: lists become tuples, dicts JSON text."""
    if isinstance(value, (list, tuple)):
        return tuple(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame with typed columns, in a readable column order, sorted by sweep and job."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    series = {c: _series([row.get(c) for row in rows]) for c in columns}
    lead = [c for c in ("sweep_dir", "job_num", "status", "error") if c in series]
    config = [c for c in columns if is_config_key(c)]
    metrics = [c for c in columns if _is_metric(c, series[c])]
    timing = [c for c in ("fit_time_s", "elapsed_s") if c in series]
    rest = [c for c in columns if c not in {*lead, *config, *metrics, *timing}]
    runs = pd.DataFrame({c: series[c] for c in lead + config + metrics + timing + rest})
    if rows:
        order = runs["job_num"].astype("Float64").fillna(-1) if "job_num" in runs else 0
        runs = runs.assign(_order=order).sort_values(["sweep_dir", "_order"], kind="stable").drop(columns="_order")
    return runs.reset_index(drop=True)


def _series(values: list[Any]) -> pd.Series:
    """A column keeping the records' types: ints stay ints (nullable if some are missing), floats floats."""
    present = [v for v in values if v is not None]
    complete = len(present) == len(values)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype=bool if complete else "boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="int64" if complete else "Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else v for v in values], dtype="float64")
    return pd.Series(values, dtype=object)


def _is_metric(column: str, values: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return numeric and "." not in column and column not in BOOKKEEPING and column not in TOP_LEVEL_KEYS


def metric_names(runs: pd.DataFrame) -> list[str]:
    """The metrics the runs report (numeric record fields that are not config or bookkeeping)."""
    names = [c for c in runs.columns if _is_metric(c, runs[c])]
    for folds in runs.get("fold_metrics", pd.Series(dtype=object)):
        if isinstance(folds, list):
            names += [k for fold in folds for k in fold if k not in names and k != "fold" and k not in BOOKKEEPING]
    return names


# ------------------------------------------------------------------------- summary


def default_metric(runs: pd.DataFrame) -> str:
    """The runs' ``task.metric``; ``ValueError`` when they name none or several."""
    named = runs["task.metric"].dropna().unique() if "task.metric" in runs else []
    if len(named) != 1:
        raise ValueError(f"the runs name {len(named)} task.metric values ({', '.join(map(str, named))}); name the metric to rank by")
    return str(named[0])


def seeds_swept(runs: pd.DataFrame) -> bool:
    """Whether every config of ``runs`` ran the same several seeds (``seed=0,1,2`` crossed with the grid): then a table averages over them by default, since a seed is not a setting to pick.

    Configs that ran different seeds (a random search or halving that drew or kept each seed
    on its own, sweeps of other seeds put together) keep each seed a row of its own.
    """
    if "seed" not in runs or runs["seed"].nunique() < 2:
        return False
    keys = group_keys(runs, aggregate_seeds=True)
    seeds = runs.groupby(keys, dropna=False)["seed"].agg(frozenset) if keys else pd.Series([frozenset(runs["seed"])])
    return seeds.nunique() == 1


def group_keys(runs: pd.DataFrame, aggregate_seeds: bool = False) -> list[str]:
    """The config keys whose value varies across ``runs``, except ``validation.fold`` (and ``seed``)."""
    left_out = {FOLD, "seed"} if aggregate_seeds else {FOLD}
    return [
        c for c in runs.columns if is_config_key(c) and c not in left_out and runs[c].nunique(dropna=False) > 1
    ]


def fold_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per fold trained: a run that trained every fold in-process becomes one row per ``fold_metrics`` entry."""
    if "fold_metrics" not in runs:
        return runs
    expanded = runs["fold_metrics"].map(lambda folds: isinstance(folds, list) and len(folds) > 0)
    rows = [
        {**run, **{k: v for k, v in fold.items() if k != "fold"}, FOLD: fold["fold"]}
        for run in runs[expanded].to_dict("records")
        for fold in run["fold_metrics"]
    ]
    parts = [runs[~expanded], pd.DataFrame(rows, columns=runs.columns)] if rows else [runs]
    return pd.concat(parts, ignore_index=True).drop(columns="fold_metrics")


def summarize(runs: pd.DataFrame, metric: str | None = None, aggregate_seeds: bool | None = None) -> pd.DataFrame:
    """One row per config, its folds (and seeds: by default when the runs' seeds differ) aggregated, ranked by ``metric``.

    Columns: ``rank_<metric>`` (1 = best), the varying config keys (:func:`group_keys`),
    ``n_runs``, ``n_failed``, ``n_missing`` (:func:`missing_folds`), ``min_n_val_rows`` (the
    smallest validation set it was scored on), ``mean_fit_time_s`` (per fold), then for each
    metric ``mean_<m>``, ``std_<m>`` (population std, ddof=0, as scikit-learn) and
    ``split<k>_<m>`` (fold ``k``; the mean when several runs share a fold). A failed fold
    makes the mean NaN; a missing fold makes every mean and std NaN, so no config is ranked
    on fewer folds than the others. ``metric`` defaults to the runs' ``task.metric``.
    Configs without a score (:func:`scored`) share the last rank, the number of configs:
    when none has one, none is ranked 1. In a halving search (the runs have ``iter``), a
    row is a config at a rung, with ``iter``, ``n_resources`` and ``halving_stopped`` (a multi-objective Optuna study adds ``pareto_front``); the
    last rung's rows rank first, then each earlier rung's, by ``metric`` within a rung (as
    scikit-learn's halving searches rank). Sorted by rank.
    """
    metric = metric or default_metric(runs)
    higher = greater_is_better(metric)
    aggregate_seeds = seeds_swept(runs) if aggregate_seeds is None else aggregate_seeds
    keys = group_keys(runs, aggregate_seeds)
    names = [metric] + [m for m in metric_names(runs) if m != metric]
    seeds = list(runs["seed"].dropna().unique()) if aggregate_seeds and "seed" in runs else [None]
    folds = fold_rows(runs).reset_index(drop=True)
    metrics = np.array([_floats(folds, m) for m in names])  # [metric, fold row], converted once for every config
    groups = folds.groupby(keys, dropna=False, sort=False) if keys else [((), folds)]
    asked = asked_folds(runs)
    summary = pd.DataFrame([{**dict(zip(keys, key)), **_config_row(sub, names, metrics[:, sub.index], seeds, asked)} for key, sub in groups])
    score = summary[f"mean_{metric}"].where(scored(summary, metric))
    if "n_resources" in summary:  # a halving search, as scikit-learn ranks one: the last rung's configs first, each rung's by its metric
        order = summary.assign(_score=score).sort_values(["n_resources", "_score"], ascending=[False, not higher], kind="stable").index
        rank = pd.Series(range(1, len(summary) + 1), index=order).reindex(summary.index)
    else:
        rank = score.rank(method="min", ascending=not higher).fillna(len(summary)).astype(int)
    summary.insert(0, f"rank_{metric}", rank)
    return summary.sort_values(f"rank_{metric}", kind="stable").reset_index(drop=True)


def _config_row(sub: pd.DataFrame, names: list[str], metrics: np.ndarray, seeds: list[Any], asked: frozenset[int]) -> dict[str, Any]:
    """The summary columns of one config from its fold rows ``sub`` (``metrics``: their values of ``names``, a row each), except its keys and rank."""
    per_run = sub.drop_duplicates("output_dir")
    row: dict[str, Any] = {
        "n_runs": len(per_run),
        "n_failed": int((per_run["status"] != "completed").sum()),
        "n_missing": missing_folds(sub, seeds, asked),
        "min_n_val_rows": _ignoring_nan(np.nanmin, _floats(sub, "n_val_rows")),
        "mean_fit_time_s": _ignoring_nan(np.nanmean, _floats(sub, "fit_time_s")),
    }
    for column in ("iter", "n_resources", "bracket", "halving_stopped", "pareto_front"):  # a halving rung or the Pareto front: the same for every fold
        if column in sub:
            row[column] = sub[column].dropna().iloc[0] if sub[column].notna().any() else None
    fold = sub[FOLD].to_numpy(dtype=float, na_value=math.nan) if FOLD in sub else np.full(len(sub), math.nan)
    by_fold = [(int(k), np.flatnonzero(fold == k)) for k in np.unique(fold[~np.isnan(fold)])]
    for m, values in zip(names, metrics):
        whole = values if row["n_missing"] == 0 else np.array([math.nan])
        row[f"mean_{m}"], row[f"std_{m}"] = float(whole.mean()), float(whole.std())
        for k, rows in by_fold:
            row[f"split{k}_{m}"] = float(values[rows].mean())
    return row


def asked_folds(runs: pd.DataFrame) -> frozenset[int]:
    """The folds the runs' sweeps asked for: on their command lines or ``hydra.sweeper.params``, or trained.

    A sweep's ``multirun.yaml`` says which ``validation.fold`` values it sweeps, so a fold lost
    from every config still counts; runs from elsewhere add the folds they trained as their own
    jobs, and a run that trains every fold in-process asks for all of them.
    """
    asked = set(runs[FOLD].dropna().astype(int)) if FOLD in runs else set()
    for sweep_dir in runs["sweep_dir"].dropna().unique() if "sweep_dir" in runs else []:
        asked |= _folds_swept_in(Path(sweep_dir))
    if "fold_metrics" in runs and runs["fold_metrics"].map(lambda folds: isinstance(folds, list)).any():
        asked |= set(range(_n_splits(runs)))
    return frozenset(asked)


def _n_splits(runs: pd.DataFrame) -> int:
    """The largest ``validation.n_splits`` of ``runs`` (0 when none has one: holdouts)."""
    n_splits = pd.to_numeric(runs.get("validation.n_splits", pd.Series(dtype=float)), errors="coerce").max()
    return 0 if pd.isna(n_splits) else int(n_splits)


def _folds_swept_in(sweep_dir: Path) -> set[int]:
    """The ``validation.fold`` values a sweep dir's ``multirun.yaml`` sweeps (none when it has no such file or key)."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where it is built in
        hydra = yaml.load((sweep_dir / MULTIRUN_YAML).read_text(), Loader=loader)["hydra"]
        params = hydra["sweeper"].get("params") or {}
        lines = [*hydra["overrides"]["task"], *(f"{key}={value}" for key, value in params.items())]
        overrides = [o for o in OverridesParser.create().parse_overrides(lines) if o.key_or_group == FOLD]
        values = [v for o in overrides for v in (o.sweep_string_iterator() if o.is_sweep_override() else [o.value()])]
    except Exception:  # noqa: BLE001  no multirun.yaml, or not a sweep's: the trained folds decide
        return set()
    return {int(v) for v in values if str(v).isdigit()}


def missing_folds(sub: pd.DataFrame, seeds: list[Any], asked: frozenset[int]) -> int:
    """How many folds of one config (its fold rows ``sub``) have no record: a killed job, a deleted record.

    The config asks for the folds of its ``validation.n_splits`` among ``asked``
    (:func:`asked_folds`; 1 for a holdout), for each of ``seeds`` (``[None]``: seeds are not
    pooled; else every seed of the table, so a seed lost whole is counted too):
    ``validation.fold=0,1`` of 5 ranks every config on folds 0 and 1. A run that trained every fold in-process brings one row per entry of its
    ``fold_metrics``; one that failed or diverged on the way accounts for all its folds (they
    are failed, counted in ``n_failed``, not missing).
    """
    n_splits = _n_splits(sub) or 1
    expected = {k for k in asked if k < n_splits}
    missing = 0
    for seed in seeds:
        rows = sub if seed is None else sub[sub["seed"] == seed]
        folds = rows[FOLD] if FOLD in rows else pd.Series(math.nan, index=rows.index)
        unfinished = rows[rows["status"] != "completed"]
        unfinished_in_process = folds[unfinished.index].isna().any() or unfinished["output_dir"].duplicated().any()
        if rows.empty:
            missing += max(len(expected), 1)
        elif n_splits > 1 and not unfinished_in_process:
            missing += len(expected - set(folds.dropna().astype(int)))
    return missing


def scored(summary: pd.DataFrame, metric: str) -> pd.Series:
    """Which configs of ``summary`` have a score to rank by: every run completed, no fold missing, a mean ``metric``."""
    return summary[f"mean_{metric}"].notna() & (summary["n_failed"] == 0) & (summary["n_missing"] == 0)


def _ignoring_nan(reduce: Any, values: np.ndarray) -> float:
    """``reduce`` (``np.nanmin``, ``np.nanmean``) of ``values``; NaN, without a warning, when none is a number."""
    return float(reduce(values)) if not np.isnan(values).all() else math.nan


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), math.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=math.nan)


def history_of(job_dir: Path) -> pd.DataFrame | None:
    """A run's ``history.csv`` (one row per epoch, a ``fold`` column for in-process folds); ``None`` when it has none or it cannot be read."""
    try:
        return pd.read_csv(job_dir / HISTORY)
    except (OSError, ValueError):
        return None


def runs_of(runs: pd.DataFrame, config: pd.Series) -> pd.DataFrame:
    """The rows of ``runs`` that belong to ``config`` (a row of :func:`summarize`): equal on its config keys."""
    match = pd.Series(True, index=runs.index)
    for key in (k for k in config.index if is_config_key(k) and k in runs):
        match &= runs[key].map(lambda value, want=config[key]: _same(value, want))
    return runs[match]


def _same(a: Any, b: Any) -> bool:
    missing_a, missing_b = _missing(a), _missing(b)
    return missing_a and missing_b if missing_a or missing_b else bool(a == b)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------- on disk


def for_file(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` ready for CSV and parquet: tuples, lists and other non-text objects become JSON text (``[128, 64]``)."""
    out = table.copy()
    out.attrs = {}
    for column in out.columns[out.dtypes == object]:
        out[column] = out[column].map(_text)
    return out


def _text(value: Any) -> Any:
    if _missing(value) or isinstance(value, str):
        return None if _missing(value) else value
    return json.dumps(value, default=str)


def write_tables(sweep_dir: str | Path, metric: str | None = None, runs: pd.DataFrame | None = None, aggregate_seeds: bool | None = None) -> pd.DataFrame:
    """Write ``results.csv``, ``results.parquet`` and ``summary.csv`` (:func:`summarize`'s) into ``sweep_dir``, atomically; return the summary.

    ``runs`` defaults to ``load(sweep_dir)``. With no run records, nothing is written and the summary is empty.
    """
    sweep_dir = Path(sweep_dir)
    runs = load(sweep_dir) if runs is None else runs
    if runs.empty:
        return pd.DataFrame()
    summary = summarize(runs, metric, aggregate_seeds)
    on_disk = for_file(runs)
    atomic_write(sweep_dir / RESULTS_CSV, lambda tmp: on_disk.to_csv(tmp, index=False))
    atomic_write(sweep_dir / RESULTS_PARQUET, lambda tmp: on_disk.to_parquet(tmp, index=False))
    atomic_write(sweep_dir / SUMMARY_CSV, lambda tmp: for_file(summary).to_csv(tmp, index=False))
    return summary


def status_line(statuses: list[str]) -> str:
    """``"40 runs: 38 completed, 1 failed, 1 diverged"`` (statuses that occur, in that order)."""
    counts = {status: statuses.count(status) for status in ("completed", "failed", "diverged")}
    parts = [f"{n} {status}" for status, n in counts.items() if n or status == "completed"]
    return f"{len(statuses)} run{'' if len(statuses) == 1 else 's'}: " + ", ".join(parts)


def shown_columns(summary: pd.DataFrame) -> list[str]:
    """The columns of ``summary`` a reader looks at first: rank, rung, varying keys, the ranking metric's mean and std, counts, time."""
    rank = summary.columns[0]
    metric = rank.removeprefix("rank_")
    keys = [c for c in summary.columns if is_config_key(c)]
    rung = [c for c in ("bracket", "iter", "n_resources", "pareto_front") if c in summary]
    return [rank, *rung, *keys, f"mean_{metric}", f"std_{metric}", "n_runs", "n_failed", "n_missing", "mean_fit_time_s"]


def format_summary(summary: pd.DataFrame, top: int | None = 10) -> str:
    """The top ``top`` rows of ``summary`` as text, in its :func:`shown_columns`.

    The title says when no config has a score; a last line when a config shown was scored
    on fewer than :data:`sweep.splits.MIN_VALIDATION_ROWS` validation rows.
    """
    if summary.empty:
        return "no runs recorded"
    metric = summary.columns[0].removeprefix("rank_")
    shown = summary.head(top) if top else summary
    direction = "higher" if greater_is_better(metric) else "lower"
    title = f"{len(shown)} of {len(summary)} configs ranked by {metric} ({direction} is better)"
    if not scored(summary, metric).any():
        title = f"no config completed: {len(shown)} of {len(summary)} configs, none ranked by {metric} (each has a failed, diverged or missing run)"
    lines = [title, shown[shown_columns(summary)].to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    few = shown[shown["min_n_val_rows"] < MIN_VALIDATION_ROWS]
    if not few.empty:
        lines.append(
            f"{len(few)} of these configs scored on fewer than {MIN_VALIDATION_ROWS} validation rows "
            f"(as few as {int(few['min_n_val_rows'].min())}): their {metric} moves in coarse steps"
        )
    return "\n".join(lines)
