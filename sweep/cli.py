"""The ``sweep-results`` command: print a sweep's ranked summary; optionally write its tables, plot, refit.

    sweep-results outputs/multirun/<date>/<time>                  # the ranked summary
    sweep-results <sweep dir> --metric val_loss --top 5
    sweep-results <sweep dir a> <sweep dir b>                     # several sweeps in one table
    sweep-results <sweep dir> --plot                              # PNG figures next to the tables
    sweep-results <sweep dir> --write                             # (re)write results.csv/.parquet, summary.csv
    sweep-results <sweep dir> --refit                             # retrain rank 1 on train+val, score on test
    sweep-results <sweep dir> --tensorboard tb                    # TensorBoard's HParams dashboard: tensorboard --logdir tb
    sweep-results <sweep dir> --html report.html                  # one self-contained page: tables and figures
    sweep-results <sweep dir> --optuna-journal sweep.journal      # an Optuna study: optuna-dashboard sweep.journal
    sweep-results <sweep dir> --write --refit --out DIR           # the same, written into DIR (a read-only sweep dir)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from sweep.results import SkippedRecordWarning, format_summary, load, seeds_swept, summarize, write_tables


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep-results", description="Rank the configs of one or more sweeps from their records.")
    p.add_argument("paths", nargs="+", type=Path, help="sweep dirs (outputs/multirun/<date>/<time>), run dirs or result.json files")
    p.add_argument("--metric", help="metric to rank by (default: the runs' task.metric)")
    p.add_argument("--top", type=int, default=10, help="rows of the summary to print (0: all; default 10)")
    p.add_argument("--aggregate-seeds", action=argparse.BooleanOptionalAction, default=None,
                   help="average over seed as well as folds (default: when the runs' seeds differ)")  # fmt: skip
    p.add_argument("--write", action="store_true", help="write results.csv, results.parquet, summary.csv into each sweep dir (or --out)")
    p.add_argument("--plot", action="store_true", help="write PNG figures into --out")
    p.add_argument("--out", type=Path, help="where --write, --plot and --refit write (default: the sweep dir, <sweep dir>/refit for "
                   "--refit; . for --plot of several paths); --write there puts every path's runs in one table")  # fmt: skip
    p.add_argument("--tensorboard", type=Path, metavar="OUT", help="write the runs as TensorBoard's HParams dashboard into OUT")
    p.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report (tables and figures) to FILE")
    p.add_argument("--optuna-journal", type=Path, metavar="FILE", help="write the configs as an Optuna study into the journal FILE (optuna-dashboard FILE)")
    p.add_argument("--refit", action="store_true", help="retrain the rank-1 config on train+validation rows, score it on the test split")
    return p


class CommandError(Exception):
    """What the command cannot do, in one line (exit 2)."""


class Unwritable(CommandError):
    """A dir the command was asked to write into cannot be written."""

    def __init__(self, target: Path, error: OSError) -> None:
        reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error)).lower()
        super().__init__(f"cannot write {target}: {reason}; use --out DIR")


@contextmanager
def writing(target: Path) -> Iterator[None]:
    """Turn an ``OSError`` on ``target`` or a file below it into :class:`Unwritable` naming ``target``."""
    try:
        yield
    except OSError as error:
        if error.filename is None or not Path(os.path.abspath(error.filename)).is_relative_to(os.path.abspath(target)):
            raise
        raise Unwritable(target, error) from None


def main(argv: list[str] | None = None) -> int:
    """Run ``sweep-results``; exit 0, 1 (a refit failed) or 2 (nothing to rank, or a dir it cannot write)."""
    args = parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRecordWarning)
        runs = load(*args.paths)
    for warning in caught:
        print(f"sweep-results: {warning.message}", file=sys.stderr)
    if runs.empty:
        print(f"sweep-results: no run records under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    if args.aggregate_seeds is None:  # decided once, on every run, for the table printed, written and refit
        args.aggregate_seeds = seeds_swept(runs)
    try:
        summary = summarize(runs, args.metric, args.aggregate_seeds)
    except ValueError as error:
        print(f"sweep-results: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, args.top or None))
    try:
        if args.write:
            _write(args, runs)
        if args.plot:
            _plot(args, runs, summary)
        if args.tensorboard:
            _tensorboard(args.tensorboard, runs)
        if args.html:
            _html(args.html, runs, summary)
        if args.optuna_journal:
            _optuna_journal(args.optuna_journal, runs, summary)
        return _refit(args) if args.refit else 0
    except CommandError as error:
        print(f"sweep-results: {error}", file=sys.stderr)
        return 2


def _write(args: argparse.Namespace, runs: pd.DataFrame) -> None:
    """The tables of each sweep dir into it, or of all the runs into ``--out``."""
    one_table = args.out is not None or len(args.paths) == 1
    for target in [args.out] if args.out is not None else [p for p in args.paths if p.is_dir()]:
        with writing(target), warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedRecordWarning)
            target.mkdir(parents=True, exist_ok=True)
            write_tables(target, args.metric, runs=runs if one_table else None, aggregate_seeds=args.aggregate_seeds)
        print(f"wrote tables into {target}")


def _plot(args: argparse.Namespace, runs: pd.DataFrame, summary: pd.DataFrame) -> None:
    from sweep.plots import plot_sweep

    out = args.out or (args.paths[0] if len(args.paths) == 1 and args.paths[0].is_dir() else Path("."))
    with writing(out):
        written = plot_sweep(runs, summary, out)
    for path in written:
        print(f"wrote {path}")


def _tensorboard(out: Path, runs: pd.DataFrame) -> None:
    from sweep.viewers.tensorboard import write_tensorboard

    with writing(out):
        written = write_tensorboard(runs, out)
    print(f"wrote {len(written)} runs into {out} (tensorboard --logdir {out})")


def _html(path: Path, runs: pd.DataFrame, summary: pd.DataFrame) -> None:
    from sweep.viewers.html import write_report

    with writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_report(runs, summary, path)
    print(f"wrote {path}")


def _optuna_journal(path: Path, runs: pd.DataFrame, summary: pd.DataFrame) -> None:
    from importlib.util import find_spec

    from sweep.viewers.optuna_journal import write_journal

    if find_spec("optuna") is None:
        raise CommandError("--optuna-journal needs Optuna: pip install 'sweep[optuna]'")
    with writing(path.parent):
        study = write_journal(runs, summary, path)
    print(f"wrote {len(study.trials)} configs as study {study.study_name!r} into {path} (optuna-dashboard {path})")


def _refit(args: argparse.Namespace) -> int:
    if len(args.paths) != 1:
        print("sweep-results: --refit takes one sweep dir", file=sys.stderr)
        return 2
    import sweep.backend  # noqa: F401  (quiet TensorFlow before a task imports it)
    from sweep.refit import REFIT_DIR, refit

    out = args.out or args.paths[0] / REFIT_DIR
    with warnings.catch_warnings(), writing(out):
        warnings.simplefilter("ignore", SkippedRecordWarning)
        try:
            record = refit(args.paths[0], args.metric, args.aggregate_seeds, out_dir=out)
        except ValueError as error:
            print(f"sweep-results: {error}", file=sys.stderr)
            return 2
    shown = {k: v for k, v in record.items() if k in ("status", "error", "refit_of", "n_train_rows", "n_test_rows") or k.startswith("test_")}
    print(f"\nRefit of rank 1 ({record['selected_by']}) -> {out / 'result.json'}")
    print(json.dumps(shown, indent=1))
    return 0 if record["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
