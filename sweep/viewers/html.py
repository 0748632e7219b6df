"""A sweep as one self-contained HTML page: the ranked configs, every figure, the failures and the full tables.

Nothing is fetched when the page opens: the figures are PNGs embedded as ``data:`` URLs and
the style is inline, so the file can be mailed, archived or opened from any disk.

    >>> write_report(runs, summarize(runs), Path("report.html"))
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from sweep.records import write_text
from sweep.results import for_file, greater_is_better, is_config_key, metric_names, shown_columns, status_line

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; }
#ranked tbody tr:first-child td { font-weight: 600; }
#failures td { text-align: left; white-space: normal; }
figure { display: inline-block; margin: 0 1.5em 1.5em 0; }
figcaption { color: #666; font-size: 12px; }
img { max-width: 100%; }
.scroll { overflow-x: auto; }
"""


def write_report(runs: pd.DataFrame, summary: pd.DataFrame, path: Path, top: int = 3) -> Path:
    """Write the report of ``runs`` (ranked as ``summary``, :func:`sweep.results.summarize`'s) to ``path``; return it."""
    from sweep.plots import DPI, figures

    metric = summary.columns[0].removeprefix("rank_")
    sweeps = ", ".join(sorted(runs["sweep_dir"].astype(str).unique()))
    direction = "higher" if greater_is_better(metric) else "lower"
    body = [
        f"<h1>Sweep {html.escape(sweeps)}</h1>",
        f"<p id='status'>{html.escape(status_line(list(runs['status'])))}; {len(summary)} configs ranked by "
        f"<b>{html.escape(metric)}</b> ({direction} is better).</p>",
        "<h2>Ranked configs</h2>",
        _table(summary[shown_columns(summary)], "ranked"),
        "<h2>Figures</h2>",
        *(_figure(name, figure, DPI) for name, figure in figures(runs, summary, top).items()),
        *_failures(runs),
        "<details><summary>Every summary column</summary>",
        _table(summary, "summary"),
        "</details><details><summary>Every run</summary>",
        _table(_run_columns(runs), "runs"),
        "</details>",
    ]
    page = f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>sweep {html.escape(sweeps)}</title><style>{STYLE}</style></head>\n"
    write_text(path, page + "<body>\n" + "\n".join(body) + "\n</body></html>\n")
    return path


def _table(frame: pd.DataFrame, table_id: str) -> str:
    table = for_file(frame).to_html(index=False, table_id=table_id, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)
    return f"<div class='scroll'>{table}</div>"


def _figure(name: str, figure: object, dpi: int) -> str:
    png = io.BytesIO()
    figure.savefig(png, dpi=dpi, format="png")
    data = base64.b64encode(png.getvalue()).decode("ascii")
    return f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(name)}</figcaption></figure>"


def _failures(runs: pd.DataFrame) -> list[str]:
    """A table of the runs that did not complete, with their errors; nothing when every run completed."""
    failed = runs[runs["status"] != "completed"]
    if failed.empty:
        return []
    columns = [c for c in ("output_dir", "status", "error") if c in failed]
    return [f"<h2>Runs that did not complete ({len(failed)})</h2>", _table(failed[columns], "failures")]


def _run_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table without the columns every run shares (they say nothing about the sweep) and without the nested ones."""
    keys = [c for c in runs.columns if is_config_key(c) and runs[c].astype(str).nunique() > 1]
    lead = [c for c in ("job_num", "status") if c in runs]
    timing = [c for c in ("fit_time_s", "output_dir") if c in runs]
    return runs[lead + keys + [m for m in metric_names(runs) if m in runs] + timing]
