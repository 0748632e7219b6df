"""Figures of a sweep, written as PNG files: no display, no pyplot state (``matplotlib.figure.Figure`` on Agg).

:func:`figures` picks the figures the sweep supports, :func:`plot_sweep` writes them; each ``*_figure`` function
returns a ``Figure`` (or ``None`` when the sweep has nothing to draw for it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweep.records import atomic_write
from sweep.results import greater_is_better, history_of, is_config_key, runs_of, scored

#: Keys swept over orders of magnitude: drawn on log axes.
LOG_KEYS = ("optimizer.lr", "regularizer.l2", "regularizer.l1")
#: Resolution of the PNG files.
DPI = 100


def ranked_metric(summary: pd.DataFrame) -> str:
    """The metric ``summary`` is ranked by (from its ``rank_<metric>`` column)."""
    return summary.columns[0].removeprefix("rank_")


def numeric_keys(summary: pd.DataFrame) -> list[str]:
    """The swept config keys holding numbers, lr and L2/L1 first."""
    keys = [
        k
        for k in summary.columns
        if is_config_key(k) and pd.api.types.is_numeric_dtype(summary[k]) and not pd.api.types.is_bool_dtype(summary[k])
    ]
    return sorted(keys, key=lambda k: LOG_KEYS.index(k) if k in LOG_KEYS else len(LOG_KEYS))


def plot_sweep(runs: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path, top: int = 3) -> list[Path]:
    """Write every figure of :func:`figures` into ``out_dir`` as ``<name>.png``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures(runs, summary, top).items():
        atomic_write(out_dir / name, lambda tmp, figure=figure: figure.savefig(tmp, dpi=DPI, format="png"))
        written.append(out_dir / name)
    return written


def figures(runs: pd.DataFrame, summary: pd.DataFrame, top: int = 3) -> dict[str, Figure]:
    """Every figure the sweep supports, by file name.

    Two or more numeric keys: ``heatmap_<metric>.png``; one: ``line_<metric>.png``; runs with
    a ``history.csv``: ``learning_curves_<metric>.png`` (top ``top`` configs); KMeans on
    images: ``centers.png`` (the rank-1 config's cluster centres); a halving search:
    ``halving_rungs.png`` (:func:`rungs_figure`).
    """
    metric = ranked_metric(summary)
    keys = numeric_keys(summary)
    facets = keys[2:] + [k for k in summary.columns if is_config_key(k) and k not in keys]
    drawn = {
        f"heatmap_{metric}.png": heatmap_figure(summary, *keys[:2], *facets[:1]) if len(keys) >= 2 else None,
        f"line_{metric}.png": line_figure(summary, keys[0]) if len(keys) == 1 else None,
        f"learning_curves_{metric}.png": learning_curves_figure(runs, summary, top),
        "centers.png": centers_figure(runs, summary),
        "halving_rungs.png": rungs_figure(summary) if "iter" in summary else None,
    }
    return {name: figure for name, figure in drawn.items() if figure is not None}


def rungs_figure(summary: pd.DataFrame) -> Figure:
    """A halving search: each config's fold-mean metric against its epochs, one line through its rungs, the last rung's bold; configs kept per rung in the title."""
    metric = ranked_metric(summary)
    keys = [k for k in summary.columns if is_config_key(k) and k != "trainer.epochs"]
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    last = summary["iter"].max()
    groups = summary.groupby(keys, dropna=False, sort=False) if keys else [((), summary)]
    for key, rows in groups:
        rows = rows.sort_values("n_resources")
        survived = rows["iter"].max() == last
        label = ", ".join(f"{k}={_label(v)}" for k, v in zip(keys, key)) if survived else None
        ax.plot(rows["n_resources"], rows[f"mean_{metric}"], marker="o", lw=2.5 if survived else 0.8, alpha=1 if survived else 0.5, label=label)
    counts = summary.groupby("iter").size().sort_index()
    ax.set_xscale("log")
    ax.set_xticks(sorted(summary["n_resources"].unique()), [_label(v) for v in sorted(summary["n_resources"].unique())])
    ax.set_xlabel("epochs (n_resources)")
    ax.set_ylabel(f"{metric} (mean over folds)")
    ax.set_title("configs per rung: " + " -> ".join(str(n) for n in counts), fontsize=10)
    ax.legend(fontsize=7)
    return figure


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def heatmap_figure(summary: pd.DataFrame, x: str, y: str, facet: str | None = None) -> Figure:
    """Mean metric over ``x`` by ``y`` (cells in value order, annotated), one panel per ``facet`` value.

    Where other keys vary too, a cell shows the best config's mean; a cell without a score
    (:func:`sweep.results.scored`: a failed, diverged or missing run) says "failed".
    """
    metric = ranked_metric(summary)
    mean = f"mean_{metric}"
    best = "max" if greater_is_better(metric) else "min"
    panels = sorted(summary[facet].unique(), key=str) if facet else [None]
    xs, ys = np.sort(summary[x].unique()), np.sort(summary[y].unique())
    scores = summary[mean].where(scored(summary, metric))
    low, high = np.nanmin(scores) if scores.notna().any() else 0, np.nanmax(scores) if scores.notna().any() else 1
    figure = Figure(figsize=(4.2 * len(panels) + 1, 4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        rows = summary.assign(_score=scores)
        rows = rows if facet is None else rows[rows[facet].map(str) == str(panel)]
        grid = rows.pivot_table(index=y, columns=x, values="_score", aggfunc=best).reindex(index=ys, columns=xs)
        image = ax.imshow(grid.to_numpy(float), origin="lower", cmap="viridis" if best == "max" else "viridis_r", vmin=low, vmax=high)
        for (i, j), value in np.ndenumerate(grid.to_numpy(float)):
            ax.text(j, i, "failed" if math.isnan(value) else f"{value:.3g}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(xs)), [_label(v) for v in xs])
        ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
        ax.set_xlabel(_axis_label(x, xs))
        ax.set_ylabel(_axis_label(y, ys))
        if facet is not None:
            ax.set_title(f"{facet}={_label(panel)}")
    figure.colorbar(image, ax=list(axes), label=mean)
    return figure


def _axis_label(key: str, values: np.ndarray) -> str:
    """The key, noting when its cells are log-spaced values (an lr or L2 grid of positive values)."""
    return f"{key} (log steps)" if key in LOG_KEYS and (values > 0).all() else key


def line_figure(summary: pd.DataFrame, x: str) -> Figure:
    """Mean metric against ``x`` with a ±std band; one line per combination of the other swept keys."""
    metric = ranked_metric(summary)
    others = [k for k in summary.columns if is_config_key(k) and k != x]
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    groups = summary.groupby(others, dropna=False, sort=False) if others else [((), summary)]
    for key, rows in groups:
        rows = rows.sort_values(x)
        mean, std = rows[f"mean_{metric}"].to_numpy(float), rows[f"std_{metric}"].to_numpy(float)
        label = ", ".join(f"{k}={_label(v)}" for k, v in zip(others, key)) or None
        (line,) = ax.plot(rows[x], mean, marker="o", label=label)
        ax.fill_between(rows[x], mean - std, mean + std, alpha=0.2, color=line.get_color())
    values = summary[x].to_numpy(float)
    if x in LOG_KEYS and (values > 0).any():
        positive = values[values > 0].min()
        ax.set_xscale("log") if (values > 0).all() else ax.set_xscale("symlog", linthresh=positive)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{metric} (mean ± std over folds)")
    if others:
        ax.legend(fontsize=8)
    return figure


def learning_curves_figure(runs: pd.DataFrame, summary: pd.DataFrame, top: int = 3) -> Figure | None:
    """Per-epoch metric of the ``top`` best configs (validation solid, training dashed), averaged over their folds.

    ``None`` when the metric is not in the runs' ``history.csv`` files (KMeans has none).
    """
    metric = ranked_metric(summary)
    curves = []
    for _, config in summary.head(top).iterrows():
        histories = [history_of(Path(d)) for d in runs_of(runs, config)["output_dir"]]
        histories = [h for h in histories if h is not None and metric in h]
        if histories:
            curve = pd.concat(histories).groupby("epoch").mean(numeric_only=True)
            label = ", ".join(f"{k}={_label(v)}" for k, v in config.items() if is_config_key(k)) or "config"
            curves.append((f"#{int(config.iloc[0])} {label}", curve))
    if not curves:
        return None
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    train = metric.removeprefix("val_")
    for label, curve in curves:
        (line,) = ax.plot(curve.index, curve[metric], marker="o", markersize=3, label=label)
        if train != metric and train in curve:
            ax.plot(curve.index, curve[train], linestyle="--", marker="o", markersize=3, color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (dashed: {train})" if train != metric else metric)
    ax.legend(fontsize=7)
    return figure


def centers_figure(runs: pd.DataFrame, summary: pd.DataFrame) -> Figure | None:
    """The rank-1 config's cluster centres drawn as images, from its first run's ``centers.npy``.

    ``None`` unless a completed run of it saved centres of image shape ``(n_clusters, h, w)``.
    """
    best = runs_of(runs, summary.iloc[0])
    for job_dir in best[best["status"] == "completed"]["output_dir"].map(Path):
        files = sorted(job_dir.glob("centers*.npy"))
        centers = np.load(files[0]) if files else None
        if centers is not None and centers.ndim == 3:
            break
    else:
        return None
    n = len(centers)
    cols = min(n, 10)
    figure = Figure(figsize=(1.2 * cols, 1.3 * math.ceil(n / cols) + 0.4), layout="constrained")
    axes = figure.subplots(math.ceil(n / cols), cols, squeeze=False).ravel()
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < n:
            ax.imshow(centers[k], cmap="gray_r")
            ax.set_title(f"cluster {k}", fontsize=8)
    figure.suptitle(f"cluster centres, rank 1 ({files[0].name})", fontsize=9)
    return figure
